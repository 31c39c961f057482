"""The recorder, prompter and consent checks against the pyk4a device double.

Imports only numpy, the standard library and the recorder's modules, so that it runs in the
recording environment too (tests/test_rig_environment.py runs it there, with the real pyk4a).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from capture_rig import consent
from capture_rig.errors import ConsentError, DeviceError
from capture_rig.recorder.audio import SimulatedMicrophone
from capture_rig.recorder.double import SimulatedK4A, daisy_chain
from capture_rig.recorder.prompter import PlanError, PromptSession, read_plan
from capture_rig.recorder.rig import Rig, discover
from capture_rig.recorder.screen import render
from capture_rig.recorder.session import open_session, run_session


def rig_of(devices, **options):
    k4a = SimulatedK4A(devices, **options)
    return k4a, Rig.open(k4a, SimulatedMicrophone(seconds=0.5))


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_three_devices_roles_configs_and_start_order(tmp_path):
    k4a, rig = rig_of(daisy_chain(3))
    assert [(s.camera, s.role, s.delay_usec) for s in rig.slots] == [(0, "subordinate", 160), (1, "master", 0), (2, "subordinate", 320)]
    result = rig.record_take(tmp_path, "000100", max_frames=6)
    master = next(d for d in k4a.devices if d.jack_out and not d.jack_in)
    assert k4a.start_order[-1] == master.serial and len(k4a.start_order) == 3  # subordinates first
    for device in k4a.devices:
        c = device.config
        assert (c.color_resolution, c.color_format, c.depth_mode, c.camera_fps) == (
            k4a.ColorResolution.RES_1080P,
            k4a.ImageFormat.COLOR_MJPG,
            k4a.DepthMode.NFOV_UNBINNED,
            k4a.FPS.FPS_30,
        )
        assert c.synchronized_images_only
    assert sorted(d.config.subordinate_delay_off_master_usec for d in k4a.devices) == [0, 160, 320]
    take = tmp_path / "000100"
    assert sorted(p.name for p in take.iterdir()) == ["000100.take.json", "000100.wav", "000100_0.mkv", "000100_1.mkv", "000100_2.mkv"]
    master_lines = lines(take / "000100_1.mkv")
    assert master_lines[0]["header"] and master_lines[0]["serial"] == master.serial
    assert len(master_lines) - 1 == result.frames[1] >= 6
    sub = lines(take / "000100_2.mkv")[1:]
    assert sub[0]["color_timestamp_usec"] - master_lines[1]["color_timestamp_usec"] == 320  # on the master's clock
    log = json.loads((take / "000100.take.json").read_text())
    assert log["status"] == "ok" and log["master"]["camera"] == 1
    assert log["master"]["first_capture_device_usec"] == master_lines[1]["color_timestamp_usec"]
    assert isinstance(log["master"]["first_capture_host_s"], float)
    assert isinstance(log["audio"]["first_sample_host_s"], float) and log["audio"]["sample_rate"] == 16000
    assert all(not camera["dropped_frames"] for camera in log["cameras"].values())
    session_log = rig.session_log()
    assert [d["serial_number"] for d in session_log["devices"]] == [s.serial for s in rig.slots]
    assert session_log["devices"][1]["role"] == "master" and "firmware" in session_log["devices"][0]


def test_dropped_frames_are_logged(tmp_path):
    _, rig = rig_of(daisy_chain(3, **{"2": {"drop_frames": frozenset({2, 3})}}))
    result = rig.record_take(tmp_path, "000101", max_frames=8)
    camera = next(s.camera for s in rig.slots if s.device_id == 2)
    assert result.dropped[camera] == [2, 3]
    assert json.loads((tmp_path / "000101" / "000101.take.json").read_text())["cameras"][str(camera)]["dropped_frames"] == [2, 3]
    assert all(not d for c, d in result.dropped.items() if c != camera)


def test_disconnect_mid_take_names_the_camera_and_leaves_no_take(tmp_path):
    _, rig = rig_of(daisy_chain(3, **{"1": {"disconnect_after": 3}}))
    with pytest.raises(DeviceError, match=r"camera 0 \(000002000000\) failed during the take"):
        rig.record_take(tmp_path, "000102", max_frames=50)
    assert not (tmp_path / "000102").exists()
    # the rig is usable again once the device is back
    rig.k4a.devices[1].disconnect_after = None
    assert rig.record_take(tmp_path, "000102", max_frames=3).frames[1] >= 3


def test_missing_sync_cable_is_refused(tmp_path):
    with pytest.raises(DeviceError, match="no master found.*sync cable"):
        discover(SimulatedK4A(daisy_chain(3, **{"0": {"jack_out": False}})), 3)
    with pytest.raises(DeviceError, match="000003000000: no cable on Sync In"):
        discover(SimulatedK4A(daisy_chain(3, **{"2": {"jack_in": False}})), 3)
    with pytest.raises(DeviceError, match="2 Azure Kinect"):
        discover(SimulatedK4A(daisy_chain(2)), 3)
    # the double refuses to start a master without a cable, as the SDK does
    k4a = SimulatedK4A(daisy_chain(1, **{"0": {"jack_out": False}}))
    device = k4a.PyK4A(config=k4a.Config(wired_sync_mode=k4a.WiredSyncMode.MASTER))
    with pytest.raises(k4a.K4AException):
        device.start()


def write_plan(path, n=5, actor="A7"):
    emotions = ["neutral", "happy", "angry", "sad", "surprise", "fear", "disgust"]
    prefixes = ["00", "21", "22", "23", "24", "25", "26"]
    items = [
        {"take_id": f"{500 + i:06d}", "sentence_id": f"{prefixes[i % 7]}{i + 1:04d}", "emotion": emotions[i % 7], "text": f"句子{i}"}
        for i in range(n)
    ]
    path.write_text(json.dumps({"version": 1, "actor_id": actor, "items": items}, ensure_ascii=False))
    return path


def test_prompter_keys_and_resume_after_a_crash(tmp_path):
    plan = read_plan(write_plan(tmp_path / "plan.json"))
    state = tmp_path / "state.json"
    session = PromptSession(plan, state)
    assert session.press("r").kind == "start" and session.recording
    assert session.press("s").kind == "none"  # keys other than r wait while recording
    assert session.press("r").kind == "stop"
    session.finished(True)
    assert session.status("000500") == "recorded" and session.current["take_id"] == "000501"
    session.press("s")
    assert session.status("000501") == "skipped" and session.current["take_id"] == "000502"
    assert session.press("b").kind == "mark_bad" and session.status("000500") == "bad"
    action = session.press("t")
    assert session.current["take_id"] == "000500" and "retake" in action.message
    session.press("r")
    session.press("r")
    session.finished(False, "camera 2 disconnected")
    assert session.status("000500") == "pending"
    session.press("r")  # the program dies during this take
    resumed = PromptSession(plan, state)
    assert resumed.status("000500") == "pending" and resumed.current["take_id"] == "000500"
    assert resumed.counts() == {"pending": 4, "recorded": 0, "skipped": 1, "bad": 0}
    assert resumed.press("q").kind == "quit"
    with pytest.raises(PlanError, match="another plan"):
        PromptSession(read_plan(write_plan(tmp_path / "other.json", actor="B1")), state)


def test_screen_shows_sentence_emotion_and_progress(tmp_path):
    session = PromptSession(read_plan(write_plan(tmp_path / "plan.json")), tmp_path / "state.json")
    screen = render(session, 60, 20)
    text = "\n".join(line for _, line in screen)
    assert len(screen) == 20 and "0/5 done" in text and "NEUTRAL" in text and "000500" in text
    assert [line for style, line in screen if style == "sentence"] == ["句 子 0"]
    session.press("r")
    assert "RECORDING" in "\n".join(line for _, line in render(session, 60, 20))


def test_consent_is_required_and_withdrawal_honoured(tmp_path):
    plan = write_plan(tmp_path / "plan.json")
    registry = tmp_path / "registry"
    with pytest.raises(ConsentError, match="no consent record for actor A7"):
        open_session(tmp_path / "s", plan, registry)
    with pytest.raises(ConsentError, match="scope"):
        consent.record_consent(registry, "A7", "2026-11-30", ["selling faces"])
    consent.record_consent(registry, "A7", "2026-11-30", ["research_release", "audio"])
    assert open_session(tmp_path / "s", plan, registry).current["take_id"] == "000500"
    consent.withdraw(registry, "A7", "2026-12-01", "asked by email")
    assert set(consent.read_withdrawals(registry)) == {"A7"}
    with pytest.raises(ConsentError, match="withdrew consent on 2026-12-01"):
        open_session(tmp_path / "s2", plan, registry)


def test_session_runs_headless_with_keys(tmp_path):
    plan = write_plan(tmp_path / "plan.json", n=3)
    registry = tmp_path / "registry"
    consent.record_consent(registry, "A7", "2026-11-30", ["research_release"])
    session_dir = tmp_path / "session"
    session = open_session(session_dir, plan, registry)
    _, rig = rig_of(daisy_chain(3), pace=True)
    keys = iter(["r", "WAIT", "r", "b", "r", "WAIT", "r", "s", "q"])
    screens = []

    def get_key():
        key = next(keys)
        if key == "WAIT":  # let the cameras run a few frames before stopping
            time.sleep(0.2)
            key = next(keys)
        return key

    counts = run_session(session, rig, session_dir, get_key, lambda s, message: screens.append(message))
    assert counts == {"pending": 0, "recorded": 1, "skipped": 1, "bad": 1}
    first = json.loads((session_dir / "takes" / "000500" / "000500.take.json").read_text())
    second = json.loads((session_dir / "takes" / "000501" / "000501.take.json").read_text())
    assert first["status"] == "bad" and second["status"] == "ok"
    assert second["subject_id"] == "A7" and second["sentence_id"] == "210002" and second["text"] == "句子1"
    assert any("saved" in m for m in screens)
    info = json.loads((session_dir / "session.json").read_text())
    assert info["consent"]["actor_id"] == "A7" and len(info["rig"]["devices"]) == 3


def test_double_mirrors_pyk4a_where_it_is_installed(tmp_path):
    """Where pyk4a imports (the recording environment), the double's enums and Config match it,
    and the real PyK4ARecord writes a recording file without a device."""
    pyk4a = pytest.importorskip("pyk4a", reason="pyk4a-bundle is only in the recording environment (.venv-rig)")
    double = SimulatedK4A([])
    for name in ("FPS", "ImageFormat", "DepthMode", "ColorResolution", "WiredSyncMode"):
        real = {m.name: m.value for m in getattr(pyk4a, name)}
        ours = {m.name: m.value for m in getattr(double, name)}
        assert ours.items() <= real.items(), name
    import inspect

    assert list(inspect.signature(pyk4a.Config).parameters) == list(inspect.signature(double.Config).parameters)
    for cls, fake in ((pyk4a.PyK4A, double.PyK4A), (pyk4a.PyK4ARecord, double.PyK4ARecord)):
        used = (
            {"open", "close", "start", "stop", "get_capture", "serial", "sync_jack_status", "calibration_raw"}
            if cls is pyk4a.PyK4A
            else {"create", "write_header", "write_capture", "flush", "close", "created", "captures_count"}
        )
        assert used <= set(dir(cls)) and used <= set(dir(fake))
    from capture_rig.recorder.rig import make_config

    record = pyk4a.PyK4ARecord(tmp_path / "empty.mkv", make_config(pyk4a, "master", 0), device=None)
    record.create()
    record.write_header()
    record.flush()
    record.close()
    assert (tmp_path / "empty.mkv").read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # Matroska
    assert np.__version__ < "2"
