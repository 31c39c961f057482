"""A stand-in for the ``pyk4a`` module, for tests and ``mmface4d rig record --simulate``.

It honours the part of pyk4a 1.5's API the recorder uses, with the same names, enum values and
exceptions: ``connected_device_count()``, ``Config``, ``PyK4A(config, device_id)`` with
``open/start/stop/close``, ``serial``, ``sync_jack_status``, ``calibration_raw``,
``get_capture(timeout)`` returning captures with ``color``, ``depth``, ``color_timestamp_usec``,
``depth_timestamp_usec``, ``color_system_timestamp_nsec``, and ``PyK4ARecord(path, config, device)``
with ``create/write_header/write_capture/flush/close`` and ``captures_count``. (pyk4a's own tests fake
its C module instead; this double needs neither the SDK nor pyk4a.)

The simulated devices share one frame clock, as wired-synchronised ones do: a subordinate's
captures carry the master's device timestamps plus its ``subordinate_delay_off_master_usec``.
A subordinate delivers frames only while the master runs and only if its Sync In jack is
connected. Faults are set per device: ``drop_frames`` (frame numbers never delivered),
``disconnect_after`` (captures delivered before the device disappears), ``jack_in`` /
``jack_out`` False for a missing sync cable. ``PyK4ARecord`` writes a JSON-lines file (one line
for the header, one per capture) instead of Matroska: enough to check what was recorded.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path


class FPS(IntEnum):
    FPS_5 = 0
    FPS_15 = 1
    FPS_30 = 2


class ImageFormat(IntEnum):
    COLOR_MJPG = 0
    COLOR_NV12 = 1
    COLOR_YUY2 = 2
    COLOR_BGRA32 = 3
    DEPTH16 = 4
    IR16 = 5


class DepthMode(IntEnum):
    OFF = 0
    NFOV_2X2BINNED = 1
    NFOV_UNBINNED = 2
    WFOV_2X2BINNED = 3
    WFOV_UNBINNED = 4
    PASSIVE_IR = 5


class ColorResolution(IntEnum):
    OFF = 0
    RES_720P = 1
    RES_1080P = 2
    RES_1440P = 3
    RES_1536P = 4
    RES_2160P = 5
    RES_3072P = 6


class WiredSyncMode(IntEnum):
    STANDALONE = 0
    MASTER = 1
    SUBORDINATE = 2


class K4AException(Exception):
    pass


class K4ATimeoutException(K4AException):
    pass


class Config:
    """pyk4a.Config's fields and defaults."""

    def __init__(
        self,
        color_resolution=ColorResolution.RES_720P,
        color_format=ImageFormat.COLOR_BGRA32,
        depth_mode=DepthMode.NFOV_UNBINNED,
        camera_fps=FPS.FPS_30,
        synchronized_images_only=True,
        depth_delay_off_color_usec=0,
        wired_sync_mode=WiredSyncMode.STANDALONE,
        subordinate_delay_off_master_usec=0,
        disable_streaming_indicator=False,
    ):
        self.color_resolution = color_resolution
        self.color_format = color_format
        self.depth_mode = depth_mode
        self.camera_fps = camera_fps
        self.synchronized_images_only = synchronized_images_only
        self.depth_delay_off_color_usec = depth_delay_off_color_usec
        self.wired_sync_mode = wired_sync_mode
        self.subordinate_delay_off_master_usec = subordinate_delay_off_master_usec
        self.disable_streaming_indicator = disable_streaming_indicator
        assert self.subordinate_delay_off_master_usec >= 0

    def unpack(self):
        return (
            self.color_format,
            self.color_resolution,
            self.depth_mode,
            self.camera_fps,
            self.synchronized_images_only,
            self.depth_delay_off_color_usec,
            self.wired_sync_mode,
            self.subordinate_delay_off_master_usec,
            self.disable_streaming_indicator,
        )


@dataclass
class SimulatedDevice:
    """One simulated Azure Kinect and its faults."""

    serial: str
    jack_in: bool = False
    jack_out: bool = False
    drop_frames: frozenset = frozenset()
    disconnect_after: int | None = None
    # what happened, for the tests
    started_at: list = field(default_factory=list)
    config: Config | None = None


FPS_VALUE = {FPS.FPS_5: 5, FPS.FPS_15: 15, FPS.FPS_30: 30}


class FakeCapture:
    """The capture attributes the recorder reads; images are tiny placeholders."""

    def __init__(self, device_timestamp_usec: int, system_ns: int, frame: int):
        self.color = b"\xff\xd8 simulated jpeg \xff\xd9"
        self.depth = None
        self.frame = frame
        self.color_timestamp_usec = device_timestamp_usec
        self.depth_timestamp_usec = device_timestamp_usec
        self.color_system_timestamp_nsec = system_ns
        self.depth_system_timestamp_nsec = system_ns


class SimulatedK4A:
    """A module-like object standing in for ``pyk4a`` over simulated devices.

    ``pace``: when True, ``get_capture`` waits for the frame's time as a device would; when
    False (tests), frames come as fast as they are asked for and the clock advances per frame.
    ``start_device_usec``: the master's device timestamp of frame 0.
    """

    FPS, ImageFormat, DepthMode, ColorResolution, WiredSyncMode = FPS, ImageFormat, DepthMode, ColorResolution, WiredSyncMode
    Config = Config
    K4AException, K4ATimeoutException = K4AException, K4ATimeoutException

    def __init__(
        self, devices: list[SimulatedDevice], *, pace: bool = False, start_device_usec: int = 1_000_000, clock=time.perf_counter_ns
    ):
        self.devices = devices
        self.pace = pace
        self.clock = clock
        self.start_device_usec = start_device_usec
        self.lock = threading.Lock()
        self.pulses = threading.Condition(self.lock)
        self.master_frames = 0  # sync pulses the master has sent (its frames, dropped ones included)
        self.start_order: list[str] = []
        self.master_started_ns: int | None = None
        simulator = self

        class PyK4A:
            def __init__(self, config=None, device_id: int = 0, thread_safe: bool = True):
                self._config = config if config is not None else Config()
                self._device_id = device_id
                self._opened = False
                self.is_running = False
                self._next = 0
                self._delivered = 0

            @property
            def _sim(self) -> SimulatedDevice:
                if self._device_id >= len(simulator.devices):
                    raise K4AException(f"no device {self._device_id}")
                return simulator.devices[self._device_id]

            @property
            def opened(self):
                return self._opened

            def open(self):
                if self._opened:
                    raise K4AException("Device already opened")
                _ = self._sim  # raises for a missing device
                self._opened = True

            def close(self):
                self._validate()
                self._opened = False

            def start(self):
                if not self._opened:
                    self.open()
                sim = self._sim
                if self._config.wired_sync_mode == WiredSyncMode.MASTER and not sim.jack_out:
                    # the SDK refuses to start a master with nothing on Sync Out
                    raise K4AException("Failed to start cameras: master mode needs a cable on Sync Out")
                if self._config.wired_sync_mode == WiredSyncMode.SUBORDINATE and not sim.jack_in:
                    raise K4AException("Failed to start cameras: subordinate mode needs a cable on Sync In")
                sim.config = self._config
                with simulator.lock:
                    simulator.start_order.append(sim.serial)
                    if self._config.wired_sync_mode != WiredSyncMode.SUBORDINATE:
                        simulator.master_started_ns = simulator.clock()
                self.is_running = True

            def stop(self):
                self.is_running = False
                self._opened = False

            def _validate(self):
                if not self._opened:
                    raise K4AException("Device is not opened")

            @property
            def serial(self) -> str:
                self._validate()
                return self._sim.serial

            @property
            def sync_jack_status(self):
                self._validate()
                return self._sim.jack_in, self._sim.jack_out

            @property
            def calibration_raw(self) -> str:
                self._validate()
                return json.dumps({"CalibrationInformation": {"Cameras": [], "simulated": self._sim.serial}})

            def get_capture(self, timeout: int = -1):
                self._validate()
                if not self.is_running:
                    raise K4AException("cameras not started")
                sim = self._sim
                if sim.disconnect_after is not None and self._delivered >= sim.disconnect_after:
                    raise K4AException(f"device {sim.serial} disconnected")
                is_sub = self._config.wired_sync_mode == WiredSyncMode.SUBORDINATE
                while self._next in sim.drop_frames:
                    self._next += 1
                if is_sub:  # a subordinate's frame k is taken on the master's k-th sync pulse
                    with simulator.pulses:
                        if not simulator.pulses.wait_for(
                            lambda: simulator.master_frames > self._next, None if timeout < 0 else timeout / 1000
                        ):
                            raise K4ATimeoutException()
                period_us = 1_000_000 // FPS_VALUE[self._config.camera_fps]
                frame = self._next
                delay = self._config.subordinate_delay_off_master_usec if is_sub else 0
                device_us = simulator.start_device_usec + frame * period_us + delay
                base = simulator.master_started_ns or simulator.clock()
                due_ns = base + (frame * period_us + delay) * 1000
                if simulator.pace:
                    wait = (due_ns - simulator.clock()) / 1e9
                    if wait > 0:
                        time.sleep(wait)
                self._next += 1
                self._delivered += 1
                if not is_sub:
                    with simulator.pulses:
                        simulator.master_frames = self._next
                        simulator.pulses.notify_all()
                return FakeCapture(device_us, due_ns, frame)

        class PyK4ARecord:
            def __init__(self, path, config, device=None, thread_safe: bool = True):
                self._path = Path(path)
                self._config = config
                self._device = device
                self._handle = None
                self._header_written = False
                self._captures_count = 0

            def create(self):
                if self._handle is not None:
                    raise K4AException(f"Record already created {self._path}")
                self._handle = open(self._path, "w", encoding="utf-8")

            def write_header(self):
                self._validate()
                if self._header_written:
                    raise K4AException(f"Header already written {self._path}")
                header = {
                    "header": True,
                    "serial": self._device.serial if self._device else None,
                    "config": [int(v) for v in self._config.unpack()],
                }
                self._handle.write(json.dumps(header) + "\n")
                self._header_written = True

            def write_capture(self, capture):
                self._validate()
                if not self._header_written:
                    self.write_header()
                self._handle.write(json.dumps({"frame": capture.frame, "color_timestamp_usec": capture.color_timestamp_usec}) + "\n")
                self._captures_count += 1

            def flush(self):
                self._validate()
                self._handle.flush()

            def close(self):
                self._validate()
                self._handle.close()
                self._handle = None

            def _validate(self):
                if self._handle is None:
                    raise K4AException("Record not created.")

            @property
            def created(self):
                return self._handle is not None

            @property
            def captures_count(self):
                return self._captures_count

            @property
            def path(self):
                return self._path

        self.PyK4A = PyK4A
        self.PyK4ARecord = PyK4ARecord

    def connected_device_count(self) -> int:
        return len(self.devices)


def daisy_chain(count: int = 3, **faults) -> list[SimulatedDevice]:
    """``count`` devices cabled as the rig is: device 0 the master (Sync Out only), the others
    subordinates (Sync In, and Sync Out to the next but the last). ``faults`` maps a device
    number to a dict of :class:`SimulatedDevice` fields to override (e.g. ``{"1": {"disconnect_after": 5}}``)."""
    devices = []
    for i in range(count):
        fields = {"serial": f"00000{i + 1}000000", "jack_in": i > 0, "jack_out": i < count - 1}
        fields.update(faults.get(str(i), {}))
        devices.append(SimulatedDevice(**fields))
    return devices
