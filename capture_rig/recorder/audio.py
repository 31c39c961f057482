"""The microphone: 16 kHz mono float32 through ``sounddevice`` (PortAudio).

``Microphone.start()`` opens the input stream; ``stop()`` returns the samples and the host-clock
time (``time.perf_counter``, the clock of pyk4a's system timestamps) of the first sample: the time
the first block arrived minus the block's duration and PortAudio's reported input latency.
``sounddevice`` needs the PortAudio library (Debian: ``apt-get install libportaudio2``); it is
imported when a stream is opened, so the rest of the recorder (and its tests, which use
:class:`SimulatedMicrophone`) works without it.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from mmface4d_datasets.vocabulary import SAMPLE_RATE
from capture_rig.errors import DeviceError


class Microphone:
    def __init__(self, device=None, sample_rate: int = SAMPLE_RATE, clock=time.perf_counter):
        self.device = device
        self.sample_rate = sample_rate
        self.clock = clock
        self._stream = None
        self._blocks: list[np.ndarray] = []
        self._first_host_s: float | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        try:
            import sounddevice
        except OSError as exc:  # the wheel is there but libportaudio is not
            raise DeviceError(f"sounddevice cannot load PortAudio ({exc}); install it (Debian: apt-get install libportaudio2)") from None
        self._blocks, self._first_host_s = [], None

        def callback(indata, frames, time_info, status):
            now = self.clock()
            with self._lock:
                if self._first_host_s is None:
                    latency = self._stream.latency if self._stream is not None else 0.0
                    self._first_host_s = now - frames / self.sample_rate - float(latency or 0.0)
                self._blocks.append(indata[:, 0].copy())

        try:
            self._stream = sounddevice.InputStream(
                samplerate=self.sample_rate, channels=1, dtype="float32", device=self.device, callback=callback
            )
            self._stream.start()
        except sounddevice.PortAudioError as exc:
            raise DeviceError(f"the microphone cannot record 16 kHz mono float32: {exc}") from None

    def stop(self) -> tuple[np.ndarray, float | None]:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
        with self._lock:
            samples = np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.float32)
            return samples.astype(np.float32), self._first_host_s

    def abort(self) -> None:
        if self._stream is not None:
            self._stream.abort()
            self._stream.close()
            self._stream = None


class SimulatedMicrophone:
    """A microphone double: a 220 Hz tone whose first sample is ``lead_s`` before ``start()`` returns."""

    def __init__(self, seconds: float = 1.0, lead_s: float = 0.05, clock=time.perf_counter):
        self.seconds, self.lead_s, self.clock = seconds, lead_s, clock
        self.started_at = None

    def start(self) -> None:
        self.started_at = self.clock() - self.lead_s

    def stop(self):
        n = int(self.seconds * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        return (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), self.started_at

    def abort(self) -> None:
        self.started_at = None
