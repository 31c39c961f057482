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

import importlib

# Names are loaded on first use, so that `mmface4d facemodel --help` (which imports the `cli`
# submodule, and therefore this package) stays on the standard library.
_EXPORTS = {
    "FaceModel": "model",
    "load_face_model": "model",
    "face_model_for_topology": "model",
    "NUM_IDENTITY": "model",
    "NUM_EXPRESSION": "model",
    "NUM_KEYPOINTS": "model",
    "region_masks": "regions",
    "REGION_NAMES": "regions",
    "REGION_RULE_VERSION": "regions",
    "bfm_topology": "bfm",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module(f"mmface4d_datasets.facemodel.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'mmface4d_datasets.facemodel' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
