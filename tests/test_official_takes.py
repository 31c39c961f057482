"""Finding takes in flat folders and folders per take; missing and unexpected files by name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.official import (
    Take,
    find_takes,
    read_mesh_sequence,
    read_take,
    scan_takes,
    write_audio,
    write_mesh_sequence,
)

NUM_VERTICES = 12


def _make_take(folder, take_id, per_take_folder=False, axes=(0, 1, 2), audio=True, seed=0):
    """A small take written with the package's writers; returns its (T, N, 3) vertices."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vertices = rng.normal(0, 0.05, (3, NUM_VERTICES, 3)).astype(np.float32)
    stem = "reconstruct_filt" if per_take_folder else f"{take_id}_filt"
    write_mesh_sequence(folder / stem, vertices)
    for axis in {0, 1, 2} - set(axes):
        (folder / f"{stem}_{axis}.nut").unlink()
    if audio:
        write_audio(folder / f"{take_id}.wav", np.zeros(1600, dtype=np.float32))
    return vertices


def test_fixture_is_one_take_in_its_own_folder(official_sample):
    takes = find_takes(official_sample)
    assert [t.take_id for t in takes] == ["000337"]
    take = takes[0]
    assert take.folder == official_sample
    assert take.mesh_prefix == official_sample / "reconstruct_filt"
    assert take.audio == official_sample / "000337.wav"
    assert sorted(take.calibrations) == [0, 1, 2] and take.calibrations[1].name == "000337_1.json"
    assert sorted(take.landmarks) == [0, 1, 2] and take.landmarks[2].name == "000337_2.pkl"
    assert take.meta is None and take.ground_truth is None
    assert read_take(official_sample) == take
    assert len({take, read_take(official_sample)}) == 1  # hashable despite its dict fields
    assert read_take(official_sample / "000337.wav") == take


def test_flat_and_per_take_folders_are_found_together(tmp_path, official_sample):
    flat = tmp_path / "release" / "flat"
    expected_a = _make_take(flat, "000002", seed=1)
    _make_take(flat, "000001", seed=2)
    (flat / "000001.meta.json").write_text(json.dumps({"subject_id": "s1"}))
    (flat / "000001.gt.npz").write_bytes(b"")
    (flat / "000001_1.json").symlink_to(official_sample / "000337_1.json")
    (flat / "000001_1.landmarks.npy").write_bytes(b"")
    (flat / "000001_1.mp4").write_bytes(b"")  # camera videos are known and not part of Take
    (flat / "README.md").write_text("ignored")
    nested = tmp_path / "release" / "by_take" / "000003"
    _make_take(nested, "000003", per_take_folder=True)
    (tmp_path / "release" / ".hidden").mkdir()
    (tmp_path / "release" / ".hidden" / "000009_filt_0.nut").write_bytes(b"")  # hidden folders are skipped

    takes = find_takes(tmp_path / "release")
    assert [t.take_id for t in takes] == ["000001", "000002", "000003"]
    one, two, three = takes
    assert one.meta == flat / "000001.meta.json" and one.ground_truth == flat / "000001.gt.npz"
    assert one.calibrations == {1: flat / "000001_1.json"} and one.landmarks == {1: flat / "000001_1.landmarks.npy"}
    assert two.mesh_prefix == flat / "000002_filt" and two.calibrations == {} and two.meta is None
    assert three.mesh_prefix == nested / "reconstruct_filt" and three.folder == nested
    assert [p.name for p in three.mesh_paths] == [f"reconstruct_filt_{a}.nut" for a in range(3)]
    assert np.array_equal(two.vertices(NUM_VERTICES), read_mesh_sequence(flat / "000002_filt", NUM_VERTICES))
    assert np.abs(two.vertices(NUM_VERTICES) - expected_a).max() < 1e-5
    samples, rate = two.read_audio()
    assert rate == 16000 and len(samples) == 1600


def test_missing_files_are_reported_by_name_all_at_once(tmp_path):
    _make_take(tmp_path / "a", "000001", axes=(0, 2))
    _make_take(tmp_path / "a", "000002", audio=False)
    _make_take(tmp_path / "b", "000004", per_take_folder=True, axes=(1,))
    with pytest.raises(FormatError) as caught:
        find_takes(tmp_path)
    message = str(caught.value)
    assert "3 problem(s)" in message
    assert f"{tmp_path / 'a'}: take 000001: missing 000001_filt_1.nut" in message
    assert f"{tmp_path / 'a'}: take 000002: missing 000002.wav" in message
    assert f"{tmp_path / 'b'}: take 000004: missing reconstruct_filt_0.nut, reconstruct_filt_2.nut" in message


def test_unexpected_files_are_reported_by_name(tmp_path):
    _make_take(tmp_path, "000001")
    for name in ("000001_filt_3.nut", "000001_5.json", "000001_notes.txt", "mesh_0.nut"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(FormatError) as caught:
        find_takes(tmp_path)
    message = str(caught.value)
    for name in ("000001_filt_3.nut", "000001_5.json", "000001_notes.txt", "mesh_0.nut"):
        assert f"unexpected file {name}" in message
    assert "4 problem(s)" in message


def test_the_same_take_in_two_folders_is_refused(tmp_path):
    _make_take(tmp_path / "x", "000001")
    _make_take(tmp_path / "y", "000001")
    with pytest.raises(FormatError, match=r"take 000001 appears twice: in .*x and in .*y"):
        find_takes(tmp_path)


def test_reconstruct_files_need_exactly_one_take(tmp_path):
    _make_take(tmp_path, "000001", per_take_folder=True)
    _make_take(tmp_path, "000002")
    with pytest.raises(FormatError, match=r"reconstruct_filt_\*\.nut needs exactly one take.*000001, 000002"):
        find_takes(tmp_path)


def test_mixed_mesh_naming_in_one_take_is_refused(tmp_path):
    _make_take(tmp_path, "000001", per_take_folder=True)
    _make_take(tmp_path, "000001")
    with pytest.raises(FormatError, match=r"take 000001: 1 problem\(s\):\n  both ID_filt_\*\.nut and reconstruct_filt_\*\.nut"):
        read_take(tmp_path)


def test_two_landmark_files_for_one_camera_are_refused(tmp_path):
    _make_take(tmp_path, "000001")
    (tmp_path / "000001_0.pkl").write_bytes(b"")
    (tmp_path / "000001_0.landmarks.npy").write_bytes(b"")
    with pytest.raises(FormatError, match=r"camera 0 has two landmark files"):
        read_take(tmp_path)


def test_read_take_in_a_flat_folder(tmp_path):
    _make_take(tmp_path, "000001")
    _make_take(tmp_path, "000002", axes=(0,))  # broken, but not the take asked for
    take = read_take(tmp_path, "000001")
    assert isinstance(take, Take) and take.take_id == "000001"
    assert read_take(tmp_path / "000001.wav").take_id == "000001"
    with pytest.raises(FormatError, match=r"holds 2 takes \(000001, 000002\); pass take_id"):
        read_take(tmp_path)
    with pytest.raises(FormatError, match=r"take 000002: 1 problem\(s\):\n  missing 000002_filt_1\.nut, 000002_filt_2\.nut"):
        read_take(tmp_path, "000002")
    with pytest.raises(FormatError, match=r"no take 000007 here \(takes: 000001\)"):
        read_take(tmp_path, "000007")


def test_absent_folders(tmp_path):
    with pytest.raises(FormatError, match=r"nowhere: no such folder"):
        find_takes(tmp_path / "nowhere")
    with pytest.raises(FormatError, match=r"nowhere: no such take folder"):
        read_take(tmp_path / "nowhere")
    assert find_takes(tmp_path) == []


def test_scan_takes_keeps_the_good_takes_and_lists_the_rest(tmp_path):
    _make_take(tmp_path / "a", "000001")
    _make_take(tmp_path / "a", "000002", audio=False)
    _make_take(tmp_path / "b", "000003")
    _make_take(tmp_path / "c", "000003")
    (tmp_path / "a" / "stray.nut").write_bytes(b"")
    scan = scan_takes(tmp_path)
    assert [t.take_id for t in scan.takes] == ["000001"]
    assert scan.problems == {"000002": [f"{tmp_path / 'a'}: take 000002: missing 000002.wav"]}
    assert len(scan.other_problems) == 2
    assert "unexpected file stray.nut" in scan.other_problems[0]
    assert "take 000003 appears twice" in scan.other_problems[1]
    assert scan.all_problems() == scan.problems["000002"] + scan.other_problems
