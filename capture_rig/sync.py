"""Put the cameras of one take, and its audio, on one clock.

Wired-synchronised Azure Kinects share the master's frame clock: a subordinate's captures carry
device timestamps its configured delay (``K4A_SUBORDINATE_DELAY_NS``, 160 or 320 us in our rig)
after the master's. :func:`match_frames` subtracts each camera's delay and puts every capture on
one frame grid (frame k at ``anchor + k / fps``); a capture off the grid by more than
:data:`TOLERANCE_FRACTION` of a frame means the cameras were not synchronised (a named error,
never a silent shift), and a grid frame that a camera lacks is reported as missing for that camera.

Audio: the recorder notes the host-clock time of the first audio sample and the host-clock time
and device timestamp of the master's first capture. :func:`audio_offset` turns them into the time
of the first audio sample relative to video frame 0, and :func:`align_audio` shifts the samples so
that sample 0 is frame 0's time (leading samples dropped, or silence prepended).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from capture_rig.errors import TimestampMismatch

#: Largest distance of a capture from its grid frame, as a fraction of the frame period.
TOLERANCE_FRACTION = 0.1


@dataclass
class Timeline:
    """The take's frame grid: frame k is at device time ``anchor_usec + k * 1e6 / fps`` (master clock).

    ``captures[c][k]`` is the index (in file order) of camera c's capture on frame k, or -1 where
    that camera has none; ``missing[c]`` lists those frames.
    """

    fps: float
    anchor_usec: float
    num_frames: int
    captures: list[np.ndarray]
    missing: dict[int, list[int]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not any(self.missing.values())


def match_frames(timestamps: list, delays_usec: list[int], fps: float, names: list[str]) -> Timeline:
    """Match the cameras' captures by device timestamps.

    ``timestamps[c]``: camera c's capture timestamps (microseconds, file order); ``delays_usec[c]``:
    its configured delay behind the master; ``names[c]``: what to call it in errors (its file).
    Raises :class:`TimestampMismatch` naming the camera and capture when a capture is off the
    grid, or two captures of one camera fall on the same frame.
    """
    period = 1e6 / fps
    aligned = [np.asarray(ts, dtype=np.float64) - delay for ts, delay in zip(timestamps, delays_usec)]
    starts = [a.min() for a in aligned if a.size]
    if not starts:
        raise TimestampMismatch(f"{', '.join(names)}: no capture in any recording")
    anchor = min(starts)
    frames, captures = [], []
    for camera, (a, name) in enumerate(zip(aligned, names)):
        k = np.rint((a - anchor) / period).astype(np.int64)
        residual = a - anchor - k * period
        bad = np.flatnonzero(np.abs(residual) > TOLERANCE_FRACTION * period)
        if bad.size:
            i = int(bad[0])
            raise TimestampMismatch(
                f"{name}: capture {i} (device time {timestamps[camera][i]} us, delay {delays_usec[camera]} us) is "
                f"{residual[i] / 1000:+.2f} ms off the take's {fps:g} fps frame grid ({bad.size} capture(s) off by "
                f"more than {TOLERANCE_FRACTION * period / 1000:.2f} ms); were the cameras wired-synchronised, "
                "and recorded in one session?"
            )
        unique, counts = np.unique(k, return_counts=True)
        if (counts > 1).any():
            frame = int(unique[counts > 1][0])
            raise TimestampMismatch(
                f"{name}: two captures fall on frame {frame} of the take's frame grid "
                f"(device time {anchor + frame * period + delays_usec[camera]:.0f} us)"
            )
        frames.append(k)
    num_frames = int(max((k.max() for k in frames if k.size), default=-1)) + 1
    missing = {}
    for camera, k in enumerate(frames):
        table = np.full(num_frames, -1, dtype=np.int64)
        table[k] = np.arange(k.size)
        captures.append(table)
        missing[camera] = np.flatnonzero(table < 0).tolist()
    return Timeline(fps=fps, anchor_usec=float(anchor), num_frames=num_frames, captures=captures, missing=missing)


def audio_offset(
    audio_first_sample_host_s: float, master_first_capture_host_s: float, master_first_capture_device_usec: float, anchor_usec: float
) -> float:
    """Seconds from video frame 0 to the first audio sample (positive: the audio started later).

    The master's first capture ties the device clock to the host clock: frame 0 (device time
    ``anchor_usec``) is at host time ``master_first_capture_host_s + (anchor - first) / 1e6``.
    """
    frame0_host = master_first_capture_host_s + (anchor_usec - master_first_capture_device_usec) / 1e6
    return float(audio_first_sample_host_s - frame0_host)


def align_audio(samples: np.ndarray, sample_rate: int, offset_s: float) -> np.ndarray:
    """Samples shifted so that sample 0 is video frame 0: ``offset_s`` > 0 prepends silence, < 0
    drops the samples recorded before frame 0."""
    shift = int(round(offset_s * sample_rate))
    samples = np.asarray(samples, dtype=np.float32)
    if shift >= 0:
        return np.concatenate([np.zeros(shift, dtype=np.float32), samples])
    return samples[-shift:].copy()
