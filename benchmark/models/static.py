"""The ``static`` baseline: the subject's neutral template repeated for every frame.

It uses only ``inputs.template`` and ``inputs.num_frames``; every model should beat it.
"""

from __future__ import annotations

import numpy as np

from benchmark.protocol import ProtocolInputs


class StaticModel:
    """Predicts ``template`` for each of the ``num_frames`` frames (float32, metres)."""

    name = "static"
    inputs = ("template",)

    def predict(self, inputs: ProtocolInputs) -> np.ndarray:
        template = np.asarray(inputs.template, dtype=np.float32)
        return np.ascontiguousarray(np.broadcast_to(template, (inputs.num_frames, *template.shape)))


def load(name: str = "static", checkpoint: str | None = None, **options) -> StaticModel:
    """Registry loader; ``static`` has no weights, so ``checkpoint`` and options must be empty."""
    from mmface4d_datasets.errors import MMFace4DError

    if checkpoint is not None or options:
        raise MMFace4DError(f"model 'static' takes no checkpoint or options (got {checkpoint!r}, {sorted(options)})")
    return StaticModel()
