"""Named errors of the reconstruction (user-fixable ones subclass the core's)."""

from __future__ import annotations

from mmface4d_datasets.errors import FormatError, MMFace4DError


class ReconstructionError(MMFace4DError):
    """A take that cannot be reconstructed; the message names the take and the reason."""


class TakeInputError(ReconstructionError, FormatError):
    """A take folder whose files are missing or unusable (missing camera, empty landmarks, depth all zero)."""


class FaceLostError(ReconstructionError):
    """The front camera finds no face in too many frames (the take is dropped, as the authors do)."""


class FitDivergedError(ReconstructionError):
    """A fit whose energy or geometry ran away; names the take, the stage and the frame."""

    def __init__(self, take_id: str, stage: str, frame: int, detail: str):
        self.take_id, self.stage, self.frame, self.detail = take_id, stage, frame, detail
        super().__init__(f"take {take_id}: the fit diverged in {stage} at frame {frame}: {detail}; nothing was written")
