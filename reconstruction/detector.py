"""2-D landmarks for takes recorded without landmark files: an adapter for the ``face-alignment``
package (68-point FAN, BSD licence; the ``reconstruct`` extra).

face-alignment downloads its network weights on first use (from its authors' server); a machine
without that access gets :class:`DetectorUnavailable` naming the cause. The adapter returns the
layout of ``ID_c.landmarks.npy``: float32 (T, 68, 2) pixels, NaN where no face was found.
"""

from __future__ import annotations

import numpy as np

from reconstruction.errors import ReconstructionError


class DetectorUnavailable(ReconstructionError):
    """The landmark detector cannot run here (package not installed, or its weights cannot be fetched)."""


class FaceAlignmentDetector:
    """68-point landmarks with face-alignment's 2-D FAN on the CPU."""

    def __init__(self, device: str = "cpu", face_detector: str = "sfd"):
        try:
            import face_alignment
        except ImportError as exc:
            raise DetectorUnavailable(
                f"the landmark detector needs the reconstruct extra: pip install 'mmface4d-datasets[reconstruct]' ({exc})"
            ) from None
        landmarks_type = getattr(face_alignment.LandmarksType, "TWO_D", None) or face_alignment.LandmarksType._2D
        try:
            self._fa = face_alignment.FaceAlignment(landmarks_type, device=device, face_detector=face_detector)
        except Exception as exc:  # network errors come as URLError, OSError, RuntimeError, HTTPError ...
            raise DetectorUnavailable(
                f"face-alignment could not load its model weights ({type(exc).__name__}: {exc}); "
                "they are downloaded on first use, which needs internet access, or copy them "
                "into torch's hub cache (~/.cache/torch/hub/checkpoints)"
            ) from None

    def detect(self, frames) -> np.ndarray:
        """Landmarks (T, 68, 2) float32 of RGB frames (T, H, W, 3) uint8; the largest face per frame."""
        out = np.full((len(frames), 68, 2), np.nan, np.float32)
        for t, frame in enumerate(frames):
            faces = self._fa.get_landmarks_from_image(np.asarray(frame))
            if faces:
                best = max(faces, key=lambda p: np.ptp(p[:, 0]) * np.ptp(p[:, 1]))
                out[t] = best[:, :2]
        return out
