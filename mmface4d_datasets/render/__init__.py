"""The renderer (DESIGN.md "Cameras"): triangle meshes into a calibrated camera.

- :func:`rasterize` / :func:`rasterize_views` -> :class:`Fragments` (depth in millimetres along the
  optical axis, triangle ids, barycentrics), numpy alone or the ``viz`` extra's numba back end;
- :func:`shade` (Lambert plus ambient: per-vertex colours, region colours, texture) and
  :func:`project_landmarks` (2-D landmarks with visibility);
- ``mmface4d render`` (render/cli.py, render/video.py) writes videos with the take's audio.

Names load on first use, so ``mmface4d`` (which imports render/cli.py) stays off numpy.
"""

_NAMES = {
    "Fragments": "raster",
    "RenderError": "raster",
    "available_backends": "raster",
    "check_mesh": "raster",
    "pixel_rays": "raster",
    "rasterize": "raster",
    "rasterize_views": "raster",
    "interpolate": "shading",
    "project_landmarks": "shading",
    "region_colors": "shading",
    "shade": "shading",
    "vertex_normals": "shading",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(f"mmface4d_datasets.render.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'mmface4d_datasets.render' has no attribute {name!r}")
