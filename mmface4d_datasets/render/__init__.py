"""The renderer (DESIGN.md "Cameras"): triangle meshes into a calibrated camera.

- :func:`rasterize` -> :class:`Fragments` (depth in millimetres along the optical axis, triangle
  ids, barycentrics), numpy alone or the ``viz`` extra's numba back end;
- :func:`shade` (Lambert plus ambient: per-vertex colours, region colours, texture) and
  :func:`project_landmarks` (2-D landmarks with visibility);
- ``mmface4d render`` (:mod:`mmface4d_datasets.render.cli`) writes videos with the take's audio.

Importing this package loads numpy and the camera model only.
"""

from mmface4d_datasets.render.raster import (
    Fragments,
    RenderError,
    available_backends,
    check_mesh,
    pixel_rays,
    rasterize,
    rasterize_views,
)
from mmface4d_datasets.render.shading import (
    interpolate,
    project_landmarks,
    region_colors,
    shade,
    vertex_normals,
)

__all__ = [
    "Fragments", "RenderError", "available_backends", "check_mesh", "pixel_rays", "rasterize", "rasterize_views",
    "interpolate", "project_landmarks", "region_colors", "shade", "vertex_normals",
]
