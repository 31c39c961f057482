"""Face models, topology and region masks.

- ``FaceModel``: one interface for a linear 3D morphable face model (mean, 80 identity and 64
  expression modes, triangles, 68 iBUG keypoints, topology name), ``vertices`` in numpy and
  ``vertices_torch`` in torch (imported lazily).
- ``load_face_model("default" | "bfm", **options)`` and ``face_model_for_topology(name)``.
- The embedded model ``synthetic_v1@<N>`` (``embedded``), the BFM 2009 front-face loader (``bfm``).
- ``region_masks(triangles, keypoints, num_vertices)``: lips, upper_face, face, eyes, nose,
  forehead, from one rule on the triangle graph and the keypoints (``regions``).
- Topology utilities (``topology``): edges, adjacency, Laplacians, vertex normals.
"""

from mmface4d_datasets.facemodel.model import (
    NUM_EXPRESSION,
    NUM_IDENTITY,
    NUM_KEYPOINTS,
    FaceModel,
    face_model_for_topology,
    load_face_model,
)
from mmface4d_datasets.facemodel.regions import REGION_NAMES, REGION_RULE_VERSION, region_masks

__all__ = [
    "FaceModel",
    "load_face_model",
    "face_model_for_topology",
    "region_masks",
    "REGION_NAMES",
    "REGION_RULE_VERSION",
    "NUM_IDENTITY",
    "NUM_EXPRESSION",
    "NUM_KEYPOINTS",
    "bfm_topology",
]


def __getattr__(name):
    # The BFM loader needs scipy.io; load it on first use.
    if name == "bfm_topology":
        from mmface4d_datasets.facemodel.bfm import bfm_topology

        return bfm_topology
    raise AttributeError(f"module 'mmface4d_datasets.facemodel' has no attribute {name!r}")
