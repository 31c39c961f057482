"""Error videos for submitters: ground truth and prediction side by side, a panel of the per-vertex
error as a colour map (one scale in millimetres for the whole video, from the data's 99th percentile
unless given, with its colour bar) and the
sequence's four metrics in the frame, with the take's audio. ``mmface4d bench render`` and
``mmface4d bench score --render-worst K`` (render_cli.py) call these.

Drawn with the core renderer (mmface4d_datasets.render); matplotlib (imported here, lazily by the
CLI) draws the static titles, metrics and colour bar once per video.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from benchmark import metrics
from benchmark.submission import SubmissionError, open_submission, read_prediction
from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.render.raster import check_mesh
from mmface4d_datasets.render.video import check_audio, encode_video, render_frame
from mmface4d_datasets.render.views import framing_camera

#: Heights (pixels) of the title band above the panels and the metrics band below them.
TITLE_BAND, METRICS_BAND, BAR_WIDTH = 36, 40, 96
COLORMAP = "viridis"
#: The default top of the error scale: this percentile of the sequence's per-vertex errors, rounded up
#: by :func:`nice_ceiling` (the largest errors, at the border, would otherwise darken everything else).
SCALE_PERCENTILE = 99.0
METRICS = ("lip_max", "lip_mean", "upper_max", "face_max")


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= value (a colour-bar end that reads well)."""
    if not np.isfinite(value) or value <= 0:
        return 1.0
    exponent = np.floor(np.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * 10**exponent >= value * (1 - 1e-9):
            return float(step * 10**exponent)
    return float(10 ** (exponent + 1))


def error_scale(error_mm: np.ndarray, vmax_mm: float | None = None, name: str = "sequence") -> tuple[float, str]:
    """``(top of the colour scale in mm, how it was chosen)`` for per-vertex errors ``error_mm``: the given
    ``vmax_mm``, else the :data:`SCALE_PERCENTILE` th percentile of the errors rounded up by :func:`nice_ceiling`."""
    if vmax_mm is not None:
        if not (np.isfinite(vmax_mm) and vmax_mm > 0):
            raise MMFace4DError(f"{name}: the top of the error scale must be a positive number of millimetres, got {vmax_mm}")
        return float(vmax_mm), "given"
    return nice_ceiling(float(np.percentile(error_mm, SCALE_PERCENTILE))), f"p{SCALE_PERCENTILE:g} of the data"


def _colormap_lut(name: str = COLORMAP) -> np.ndarray:
    import matplotlib

    return np.asarray(matplotlib.colormaps[name](np.linspace(0.0, 1.0, 256)))[:, :3]


def _overlay(panel_w: int, panel_h: int, titles, metric_line: str, vmax_mm: float, name: str, clipped: bool = False) -> np.ndarray:
    """The static frame (H, W, 3) uint8: white panels' places, titles, metrics, colour bar."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colorbar import ColorbarBase
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    width = 3 * panel_w + BAR_WIDTH
    height = TITLE_BAND + panel_h + METRICS_BAND
    fig = Figure(figsize=(width / 100, height / 100), dpi=100, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    for k, title in enumerate(titles):
        fig.text((k + 0.5) * panel_w / width, 1 - TITLE_BAND / 2 / height, title, ha="center", va="center", fontsize=11)
    fig.text(0.5, METRICS_BAND / 2 / height, metric_line, ha="center", va="center", fontsize=10, family="monospace")
    fig.text(1 - 2 / width, 1 - 4 / height, name, ha="right", va="top", fontsize=7, color="0.4")
    cax = fig.add_axes([(3 * panel_w + 12) / width, (METRICS_BAND + 0.1 * panel_h) / height, 18 / width, 0.8 * panel_h / height])
    ColorbarBase(cax, cmap=matplotlib.colormaps[COLORMAP], norm=Normalize(0.0, vmax_mm), extend="max" if clipped else "neither")
    cax.set_ylabel(f"error (mm), 0 to {vmax_mm:g}" + (" and above" if clipped else ""), fontsize=9)
    cax.tick_params(labelsize=8)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def render_comparison(
    gt: np.ndarray,
    pred: np.ndarray,
    triangles: np.ndarray,
    masks: dict,
    out,
    *,
    audio=None,
    fps: float = 30.0,
    name: str = "sequence",
    panel_size: int = 384,
    facing: str = "+z",
    vmax_mm: float | None = None,
    progress: bool = True,
) -> dict:
    """Write the comparison video of one sequence; returns its metrics (metres) and the scale used.

    ``gt``/``pred`` (T, N, 3) metres (cut to the shorter, as the scorer does); ``masks`` holds
    ``lips`` and ``upper_face`` vertex ids; ``vmax_mm`` the top of the colour scale in millimetres
    (default: the :data:`SCALE_PERCENTILE` th percentile of the sequence's per-vertex errors rounded up
    by :func:`nice_ceiling`; larger errors get the top colour, and the colour bar's arrow says so).
    The result's ``vmax_mm`` and ``scale`` (``"p99 of the data"`` or ``"given"``) say which was used.
    """
    T = min(len(gt), len(pred))
    if T == 0:
        raise MMFace4DError(f"{name}: no frames to draw")
    gt, pred = np.asarray(gt[:T], np.float32), np.asarray(pred[:T], np.float32)
    check_mesh(gt[0], triangles, f"{name} (ground truth)")
    check_mesh(pred[0], triangles, f"{name} (prediction)")
    if not np.isfinite(pred).all():
        raise MMFace4DError(f"{name}: the prediction holds NaN or infinite values")
    values = metrics.sequence_errors(gt, pred, masks["lips"], masks["upper_face"])
    error_mm = np.linalg.norm(gt.astype(np.float64) - pred, axis=2) * 1000.0  # (T, N)
    vmax, scale = error_scale(error_mm, vmax_mm, name)
    lut = _colormap_lut()
    panel_size -= panel_size % 2
    camera = framing_camera(np.concatenate([gt, pred]), panel_size, panel_size, "front", facing=facing)
    line = "   ".join(f"{k} {values[k] * 1000:.3f} mm" for k in METRICS)
    clipped = bool(error_mm.max() > vmax)
    background = _overlay(panel_size, panel_size, ("ground truth", "prediction", "per-vertex error"), line, vmax, name, clipped)
    H, W = background.shape[:2]
    if W % 2 or H % 2:
        background = np.pad(background, ((0, H % 2), (0, W % 2), (0, 0)), constant_values=255)
        H, W = background.shape[:2]
    audio = check_audio(audio, T, fps, name)

    def frames():
        outs = [None, None, None]
        for t in range(T):
            frame = background.copy()
            colors = lut[np.clip(error_mm[t] / vmax * 255.0, 0, 255).astype(np.int64)]
            for k, (verts, col) in enumerate(((gt[t], None), (pred[t], None), (gt[t], colors))):
                image, outs[k] = render_frame(verts, triangles, camera, (255, 255, 255), colors=col, out=outs[k])
                frame[TITLE_BAND : TITLE_BAND + panel_size, k * panel_size : (k + 1) * panel_size] = image
            yield frame

    encode_video(out, frames(), T, W, H, fps, audio, progress, name=name)
    return {
        "metrics": values,
        "vmax_mm": vmax,
        "scale": scale,
        "max_error_mm": float(error_mm.max()),
        "num_frames": T,
        "path": str(out),
    }


def video_name(sequence_id: str) -> str:
    """A file name for a sequence id ("S000/000001" -> "S000_000001.mp4")."""
    return str(sequence_id).replace("/", "_").replace(os.sep, "_") + ".mp4"


def render_submission_sequence(
    prediction_path, release, sequence_id: str, out, *, panel_size: int = 384, progress: bool = True, vmax_mm: float | None = None
) -> dict:
    """:func:`render_comparison` of one id of a submission file against the release's ground truth."""
    submission = open_submission(prediction_path)
    try:
        if not submission.usable:
            problems = "; ".join(str(i) for i in submission.issues[:3])
            raise MMFace4DError(f"{prediction_path}: not a readable submission ({problems})")
        if sequence_id not in submission.rows:
            raise MMFace4DError(f"{prediction_path}: no prediction for id {sequence_id!r}")
        try:
            pred = read_prediction(submission, sequence_id)
        except SubmissionError as exc:
            raise MMFace4DError(str(exc)) from None
    finally:
        submission.close()
    record = release.record(sequence_id)
    audio = record.get("audio")
    audio = (np.asarray(audio["array"], np.float32), int(audio["sampling_rate"])) if audio else None
    masks = release.region_masks()
    triangles = release.topology["triangles"].astype(np.int64)
    return render_comparison(
        record["vertices"],
        pred,
        triangles,
        masks,
        out,
        audio=audio,
        fps=float(release.info.uniform_fps or 30),
        name=str(sequence_id),
        panel_size=panel_size,
        progress=progress,
        vmax_mm=vmax_mm,
    )


def worst_sequences(report: dict, k: int, metric: str = "lip_max") -> list[str]:
    """Ids of the ``k`` sequences of a scored report with the largest ``metric`` (ties by id)."""
    rows = sorted(report.get("sequences", []), key=lambda r: (-float(r[metric]), str(r["id"])))
    return [str(r["id"]) for r in rows[:k]]


def render_worst(
    report: dict,
    prediction_path,
    release,
    k: int,
    out_dir,
    *,
    metric: str = "lip_max",
    panel_size: int = 384,
    progress: bool = True,
    vmax_mm: float | None = None,
) -> list[Path]:
    """Comparison videos of the ``k`` worst sequences into ``out_dir`` (``<id>.mp4``); ``vmax_mm``: one
    error scale for all of them (default: each its own, :func:`render_comparison`)."""
    out_dir = Path(out_dir)
    written = []
    for sequence_id in worst_sequences(report, k, metric):
        path = out_dir / video_name(sequence_id)
        render_submission_sequence(prediction_path, release, sequence_id, path, panel_size=panel_size, progress=progress, vmax_mm=vmax_mm)
        written.append(path)
    return written
