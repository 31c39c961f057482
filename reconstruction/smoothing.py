"""Temporal smoothing of a fitted sequence, as the authors do: a zero-phase Butterworth low-pass
(order 5, cut-off 5 Hz at 30 fps) per vertex coordinate, run forwards and backwards
(``scipy.signal.filtfilt``) with the sequence's ends padded by odd reflection."""

from __future__ import annotations

import numpy as np

ORDER = 5
CUTOFF_HZ = 5.0


def smooth_sequence(vertices: np.ndarray, fps: float = 30.0, *, order: int = ORDER, cutoff_hz: float = CUTOFF_HZ) -> np.ndarray:
    """Low-pass ``vertices`` (T, N, 3) along time; returns a float32 copy. Sequences too short for
    the filter's padding use the longest padding they allow; a single frame is returned unchanged."""
    from scipy.signal import butter, filtfilt

    v = np.asarray(vertices, dtype=np.float64)
    T = v.shape[0]
    if T < 2:
        return v.astype(np.float32)
    if not 0 < cutoff_hz < fps / 2:
        raise ValueError(f"cut-off {cutoff_hz} Hz must lie between 0 and the Nyquist frequency {fps / 2} Hz")
    b, a = butter(order, cutoff_hz / (fps / 2))
    padlen = min(3 * max(len(a), len(b)), T - 1)
    return filtfilt(b, a, v, axis=0, padtype="odd", padlen=padlen).astype(np.float32)
