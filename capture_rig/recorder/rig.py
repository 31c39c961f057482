"""Three wired-synchronised Azure Kinects and a microphone, recording one take at a time.

Runs in the recording environment (numpy < 2, ``pyk4a-bundle``, ``sounddevice``; see docs/rig.md).
``k4a`` is the ``pyk4a`` module, or :class:`capture_rig.recorder.double.SimulatedK4A` in tests.

The rig (DESIGN.md "Cameras"): camera 1 frontal, 0 on the subject's left, 2 on the right, daisy
chained. The MASTER is the device with a cable on Sync Out and none on Sync In; the subordinates
follow in device order (cameras 0 and 2 unless ``--serials`` says otherwise). Every device records
MJPG 1080P colour and NFOV unbinned depth at 30 fps with ``synchronized_images_only``; the
subordinates' captures are staggered 160 and 320 us behind the master
(``subordinate_delay_off_master_usec``) so that the depth lasers never fire together. Subordinates
are started before the master (they wait for its sync pulse).

Per take, ``takes/ID/`` gets ``ID_c.mkv`` per camera (pyk4a's ``PyK4ARecord``), ``ID.wav``
(16 kHz mono float32) and ``ID.take.json``: the device timestamps' gaps (dropped frames), the
host-clock (``time.perf_counter``) time of the first audio sample and of the master's first
capture with its device timestamp, so that conversion can align audio to video.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mmface4d_datasets.vocabulary import SAMPLE_RATE
from capture_rig.errors import DeviceError

#: Staggering of the subordinates' captures behind the master (microseconds), in chain order.
SUBORDINATE_DELAYS_USEC = (160, 320)
#: Camera index of the master and of the subordinates in chain order.
MASTER_CAMERA = 1
SUBORDINATE_CAMERAS = (0, 2)
CAPTURE_TIMEOUT_MS = 1000


@dataclass
class DeviceSlot:
    """One camera of the rig as found at open time."""

    camera: int
    device_id: int
    serial: str
    role: str  # "master" or "subordinate"
    delay_usec: int
    jack_in: bool
    jack_out: bool
    device: object = None
    config: object = None

    def log(self) -> dict:
        return {
            "camera": self.camera,
            "device_id": self.device_id,
            "serial_number": self.serial,
            "role": self.role,
            "subordinate_delay_off_master_usec": self.delay_usec,
            "sync_jack_in": self.jack_in,
            "sync_jack_out": self.jack_out,
            "firmware": "not exposed by pyk4a 1.5; each recording's K4A_*_FIRMWARE_VERSION tags hold it",
        }


def make_config(k4a, role: str, delay_usec: int):
    """The device configuration of the rig (see the module docstring)."""
    return k4a.Config(
        color_resolution=k4a.ColorResolution.RES_1080P,
        color_format=k4a.ImageFormat.COLOR_MJPG,
        depth_mode=k4a.DepthMode.NFOV_UNBINNED,
        camera_fps=k4a.FPS.FPS_30,
        synchronized_images_only=True,
        depth_delay_off_color_usec=0,
        wired_sync_mode=k4a.WiredSyncMode.MASTER if role == "master" else k4a.WiredSyncMode.SUBORDINATE,
        subordinate_delay_off_master_usec=delay_usec if role == "subordinate" else 0,
    )


def discover(k4a, expected: int = 3, serials: list[str] | None = None) -> list[DeviceSlot]:
    """Open every device, read its serial and sync jacks, decide the roles, close them again.

    ``serials``: the serial numbers of cameras 0, 1, 2 when the order is fixed by hand. Raises
    :class:`DeviceError` for too few devices, or a missing sync cable (naming the device).
    """
    count = k4a.connected_device_count()
    if count < expected:
        raise DeviceError(f"{count} Azure Kinect(s) connected, the rig needs {expected}")
    found = []
    for device_id in range(count):
        device = k4a.PyK4A(device_id=device_id)
        device.open()
        try:
            jack_in, jack_out = device.sync_jack_status
            found.append((device_id, device.serial, bool(jack_in), bool(jack_out)))
        finally:
            device.close()
    if expected == 1:
        device_id, serial, jack_in, jack_out = found[0]
        return [DeviceSlot(MASTER_CAMERA, device_id, serial, "standalone", 0, jack_in, jack_out)]
    masters = [f for f in found if f[3] and not f[2]]
    if not masters:
        listed = ", ".join(f"{s} (in {'yes' if i else 'no'}, out {'yes' if o else 'no'})" for _, s, i, o in found)
        raise DeviceError(
            f"no master found: no device has a cable on Sync Out and none on Sync In ({listed}); "
            "the sync cable from the master to the first subordinate is missing"
        )
    if len(masters) > 1:
        raise DeviceError(
            f"{len(masters)} devices look like masters ({', '.join(m[1] for m in masters)}): "
            "check the daisy chain (Sync Out of one device to Sync In of the next)"
        )
    subordinates = [f for f in found if f is not masters[0]][: expected - 1]
    for _device_id, serial, jack_in, _ in subordinates:
        if not jack_in:
            raise DeviceError(f"device {serial}: no cable on Sync In; the master would run without it (connect the daisy chain)")
    if serials:
        by_serial = {f[1]: f for f in found}
        unknown = [s for s in serials if s not in by_serial]
        if unknown:
            raise DeviceError(f"serial(s) {', '.join(unknown)} not connected (found {', '.join(by_serial)})")
    slots = [DeviceSlot(MASTER_CAMERA, masters[0][0], masters[0][1], "master", 0, masters[0][2], masters[0][3])]
    cameras = list(SUBORDINATE_CAMERAS)
    for n, (device_id, serial, jack_in, jack_out) in enumerate(subordinates):
        camera = serials.index(serial) if serials else cameras[n]
        slots.append(DeviceSlot(camera, device_id, serial, "subordinate", SUBORDINATE_DELAYS_USEC[n], jack_in, jack_out))
    if serials and serials.index(masters[0][1]) != MASTER_CAMERA:
        raise DeviceError(f"the master {masters[0][1]} must be camera {MASTER_CAMERA} (the frontal camera)")
    return sorted(slots, key=lambda s: s.camera)


@dataclass
class TakeResult:
    take_id: str
    folder: Path
    frames: dict[int, int]
    dropped: dict[int, list[int]]
    seconds: float
    log: dict = field(default_factory=dict)


class Rig:
    """The opened rig. ``microphone`` follows :class:`capture_rig.recorder.audio.Microphone`'s API."""

    def __init__(self, k4a, slots: list[DeviceSlot], microphone, *, clock=time.perf_counter):
        self.k4a = k4a
        self.slots = slots
        self.microphone = microphone
        self.clock = clock

    @classmethod
    def open(cls, k4a, microphone, *, cameras: int = 3, serials: list[str] | None = None) -> "Rig":
        slots = discover(k4a, cameras, serials)
        for slot in slots:
            role = "master" if slot.role == "standalone" else slot.role
            slot.config = make_config(k4a, role, slot.delay_usec)
            if slot.role == "standalone":
                slot.config.wired_sync_mode = k4a.WiredSyncMode.STANDALONE
            slot.device = k4a.PyK4A(config=slot.config, device_id=slot.device_id)
        return cls(k4a, slots, microphone)

    def session_log(self) -> dict:
        return {
            "devices": [slot.log() for slot in self.slots],
            "modes": {"colour": "MJPG_1080P", "depth": "NFOV_UNBINNED", "fps": 30, "synchronized_images_only": True},
            "start_order": "subordinates first, then the master",
            "audio": {"sample_rate": SAMPLE_RATE, "channels": 1, "dtype": "float32"},
        }

    def record_take(
        self,
        folder: str | os.PathLike,
        take_id: str,
        *,
        stop: threading.Event | None = None,
        max_frames: int | None = None,
        extra_log: dict | None = None,
    ) -> TakeResult:
        """Record one take into ``folder/take_id/`` until ``stop`` is set or the master has
        ``max_frames`` captures. On a device failure the take's folder is removed and
        :class:`DeviceError` names the camera and what happened."""
        from mmface4d_datasets.files import atomic_write_bytes, json_bytes
        from mmface4d_datasets.official import write_audio

        if stop is None and max_frames is None:
            raise ValueError("record_take needs a stop event or max_frames")
        stop = stop or threading.Event()
        take_dir = Path(folder) / take_id
        if take_dir.exists():
            shutil.rmtree(take_dir)  # a retake replaces the earlier attempt
        take_dir.mkdir(parents=True)
        started = self.clock()
        records, threads, errors = {}, [], []
        timestamps = {slot.camera: [] for slot in self.slots}
        first = {}
        try:
            for slot in self.slots:
                slot.device.open()
                record = self.k4a.PyK4ARecord(take_dir / f"{take_id}_{slot.camera}.mkv", slot.config, slot.device)
                record.create()
                records[slot.camera] = record
            self.microphone.start()
            order = [s for s in self.slots if s.role == "subordinate"] + [s for s in self.slots if s.role != "subordinate"]
            for slot in order:
                try:
                    slot.device.start()
                except self.k4a.K4AException as exc:
                    raise DeviceError(f"camera {slot.camera} ({slot.serial}, {slot.role}) did not start: {exc}") from None
            master = next(s for s in self.slots if s.role != "subordinate")

            master_done = threading.Event()

            def caught_up(slot: DeviceSlot) -> bool:
                # after a stop, a subordinate keeps reading until it has the master's last frame
                if not master_done.is_set():
                    return False
                last_master = timestamps[master.camera][-1] if timestamps[master.camera] else None
                mine = timestamps[slot.camera]
                return last_master is None or (bool(mine) and mine[-1] - slot.delay_usec >= last_master)

            def pump(slot: DeviceSlot):
                misses = 0
                try:
                    while not (stop.is_set() and (slot is master or caught_up(slot))):
                        try:
                            capture = slot.device.get_capture(timeout=CAPTURE_TIMEOUT_MS)
                        except self.k4a.K4ATimeoutException:
                            if stop.is_set():
                                break  # nothing more is coming
                            misses += 1
                            if misses * CAPTURE_TIMEOUT_MS >= 3000:
                                raise DeviceError(
                                    f"camera {slot.camera} ({slot.serial}) delivered no capture for "
                                    f"{misses * CAPTURE_TIMEOUT_MS / 1000:.0f} s"
                                ) from None
                            continue
                        misses = 0
                        records[slot.camera].write_capture(capture)
                        timestamps[slot.camera].append(int(capture.color_timestamp_usec))
                        if slot is master and "master" not in first:
                            first["master"] = (capture.color_system_timestamp_nsec / 1e9, capture.color_timestamp_usec)
                        if slot is master and max_frames is not None and len(timestamps[slot.camera]) >= max_frames:
                            stop.set()
                except DeviceError as exc:
                    errors.append(exc)
                    stop.set()
                except self.k4a.K4AException as exc:
                    errors.append(
                        DeviceError(
                            f"camera {slot.camera} ({slot.serial}) failed during the take: {exc or type(exc).__name__} (disconnected?)"
                        )
                    )
                    stop.set()
                finally:
                    if slot is master:
                        master_done.set()

            threads = [threading.Thread(target=pump, args=(slot,), daemon=True) for slot in self.slots]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        except BaseException:
            stop.set()
            self._close(records)
            self.microphone.abort()
            shutil.rmtree(take_dir, ignore_errors=True)
            raise
        samples, first_sample_host_s = self.microphone.stop()
        self._close(records)
        if errors:
            shutil.rmtree(take_dir, ignore_errors=True)
            raise errors[0]
        write_audio(take_dir / f"{take_id}.wav", samples, SAMPLE_RATE)
        dropped = {camera: _gaps(ts) for camera, ts in timestamps.items()}
        log = dict(extra_log or {})
        log.update(
            {
                "take_id": take_id,
                "status": "ok",
                "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "audio": {"sample_rate": SAMPLE_RATE, "samples": int(len(samples)), "first_sample_host_s": first_sample_host_s},
                "master": {
                    "camera": master.camera,
                    "first_capture_host_s": first.get("master", (None, None))[0],
                    "first_capture_device_usec": first.get("master", (None, None))[1],
                },
                "cameras": {str(camera): {"captures": len(ts), "dropped_frames": dropped[camera]} for camera, ts in timestamps.items()},
                "host_clock": "time.perf_counter (pyk4a's system timestamps use the same clock)",
            }
        )
        atomic_write_bytes(take_dir / f"{take_id}.take.json", json_bytes(log))
        return TakeResult(take_id, take_dir, {c: len(t) for c, t in timestamps.items()}, dropped, self.clock() - started, log)

    def _close(self, records):
        for record in records.values():
            try:
                if record.created:
                    record.flush()
                    record.close()
            except self.k4a.K4AException:
                pass
        for slot in self.slots:
            try:
                if slot.device.is_running:
                    slot.device.stop()
                elif slot.device.opened:
                    slot.device.close()
            except self.k4a.K4AException:
                pass


def _gaps(timestamps: list[int], fps: int = 30) -> list[int]:
    """Frame numbers (from the first capture) that the device timestamps skip."""
    if not timestamps:
        return []
    period = 1e6 / fps
    frames = [round((t - timestamps[0]) / period) for t in timestamps]
    present = set(frames)
    return [k for k in range(frames[-1] + 1) if k not in present]
