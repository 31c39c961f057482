"""A front-view picture of a face model's mean shape with its regions and landmarks (CPU, matplotlib).

Orthographic projection along -z, triangles drawn back to front (painter's order) with Lambert
shading, each coloured by its region; the 68 keypoints are marked and numbered. matplotlib is
imported inside the function and draws on its own Agg canvas (pyplot's global state is not used).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["REGION_COLOURS", "render_face_model", "front_view_axes", "shaded_front_view", "vertex_region_labels"]

#: Drawing priority, most specific first; a vertex takes the colour of the first region holding it.
REGION_COLOURS = {
    "lips": "#d6455d",
    "eyes": "#3b7dd8",
    "nose": "#e8a33d",
    "forehead": "#5fb35f",
    "upper_face": "#a8d0e6",
    "face": "#d9d4cc",
}


def vertex_region_labels(masks: dict[str, np.ndarray], num_vertices: int) -> np.ndarray:
    """(N,) int index into ``REGION_COLOURS`` order: the first region (by priority) holding each vertex."""
    names = list(REGION_COLOURS)
    labels = np.full(num_vertices, names.index("face"), dtype=np.int64)
    for index in reversed(range(len(names))):  # most specific last, so it wins
        ids = masks.get(names[index])
        if ids is not None:
            labels[np.asarray(ids, dtype=np.int64)] = index
    return labels


def shaded_front_view(points: np.ndarray, triangles: np.ndarray, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangles seen from the front (orthographic along -z), ready for a matplotlib PolyCollection.

    ``points`` (N, 3), ``triangles`` (F, 3), ``colours`` (F, 3) RGB in [0, 1] per triangle. Returns
    ``(polygons, shaded)``: (F, 3, 2) x-y corners in the units of ``points`` and (F, 3) colours
    times a Lambert shade (ambient 0.35) under a light from the upper front, both in painter's
    order (farthest triangle, smallest mean z, first; stable for ties).
    """
    points = np.asarray(points, dtype=np.float64)
    triangles = np.asarray(triangles)
    order = np.argsort(points[triangles].mean(axis=1)[:, 2], kind="stable")
    triangles = triangles[order]
    face_normal = np.cross(points[triangles[:, 1]] - points[triangles[:, 0]], points[triangles[:, 2]] - points[triangles[:, 0]])
    face_normal /= np.maximum(np.linalg.norm(face_normal, axis=1, keepdims=True), 1e-12)
    light = np.array([0.35, 0.45, 1.0]) / np.linalg.norm([0.35, 0.45, 1.0])
    shade = 0.35 + 0.65 * np.clip(face_normal @ light, 0.0, 1.0)
    return points[triangles][:, :, :2], np.asarray(colours, dtype=np.float64)[order] * shade[:, None]


def front_view_axes(ax, points: np.ndarray) -> None:
    """Frame matplotlib axes for a front view of ``points`` (metres) drawn in centimetres: equal
    aspect, 1 cm margins, x and y labels."""
    points = np.asarray(points, dtype=np.float64)
    ax.set_aspect("equal")
    low, high = points.min(axis=0) * 100.0, points.max(axis=0) * 100.0
    ax.set_xlim(low[0] - 1, high[0] + 1)
    ax.set_ylim(low[1] - 1, high[1] + 1)
    ax.set_xlabel("x (cm)")
    ax.set_ylabel("y (cm)")


def render_face_model(
    model,
    out_path,
    *,
    masks: dict[str, np.ndarray] | None = None,
    vertices: np.ndarray | None = None,
    title: str | None = None,
    number_landmarks: bool = True,
    size_inches: tuple[float, float] = (6.0, 7.2),
    dpi: int = 110,
) -> Path:
    """Draw ``vertices`` (default: the model's mean shape) seen from the front and write a PNG.

    ``masks`` defaults to ``model.region_masks()``. The file is written under a temporary name in
    the same folder and renamed when complete. Returns the path written.
    """
    # A Figure with its own Agg canvas: no pyplot, so the caller's backend and figures are untouched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgb
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    out_path = Path(out_path)
    points = np.asarray(model.mean if vertices is None else vertices, dtype=np.float64)
    masks = model.region_masks() if masks is None else masks
    triangles = np.asarray(model.triangles)
    labels = vertex_region_labels(masks, len(points))

    palette = np.array([to_rgb(c) for c in REGION_COLOURS.values()])
    # A triangle takes the most specific label among its corners.
    polygons, colours = shaded_front_view(points, triangles, palette[labels[triangles].min(axis=1)])

    fig = Figure(figsize=size_inches, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    polygons = polygons * 100.0  # centimetres on the axes
    ax.add_collection(PolyCollection(polygons, facecolors=colours, edgecolors="none", antialiased=False))
    keypoints = points[np.asarray(model.keypoints)] * 100.0
    ax.scatter(keypoints[:, 0], keypoints[:, 1], s=6, c="black", zorder=3)
    if number_landmarks:
        for index, (x, y) in enumerate(keypoints[:, :2]):
            ax.annotate(str(index), (x, y), xytext=(2, 2), textcoords="offset points", fontsize=5, zorder=4)
    front_view_axes(ax, points)
    counts = {name: len(masks.get(name, ())) for name in REGION_COLOURS}
    handles = [Patch(color=colour, label=f"{name} ({counts[name]})") for name, colour in REGION_COLOURS.items()]
    ax.legend(handles=handles, loc="upper right", fontsize=6, framealpha=0.85)
    ax.set_title(title or f"{model.topology}: regions and 68 landmarks", fontsize=9)
    fig.tight_layout()

    from mmface4d_datasets.files import removed_on_failure, temporary_path

    temporary = temporary_path(out_path)
    with removed_on_failure(out_path, temporary):
        out_path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(temporary, format="png")
        os.replace(temporary, out_path)
    return out_path
