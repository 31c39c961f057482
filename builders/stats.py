"""Statistics figures of a release: the paper's Figure 4, as PNG with the numbers as JSON beside them.

:func:`compute_statistics` reads a release through the public reader (``Release``), streaming one
record at a time and decoding its vertices with the codec; :func:`draw_figures` draws the PNGs
(matplotlib, imported inside the functions, each figure on its own Agg canvas); :func:`write_statistics`
does both into a folder (``mmface4d stats RELEASE --out DIR``); :func:`add_figures_to_release` puts
them under ``meta/figures/`` of a release, lists them in ``meta/info.json`` (key ``figures``, and
every file with its checksum under ``files``) and shows them in the dataset card.

The figures (docs/stats.md says what each number means):

(a) ``velocity.png``: V(region, axis), the mean absolute vertex velocity of a region along one axis
    per sequence (``mmface4d_datasets.synthetic.quality.region_axis_speed``, in mm/s), scattered over
    V(lips, x), V(lips, y), V(lips, z); a few subjects coloured; how well subjects separate:
    leave-one-out nearest-centroid accuracy (``nearest_centroid_accuracy``) against chance, 1/subjects.
(b) ``ages_by_gender.png``: the subjects' ages, stacked by gender (one count per subject).
(c) ``durations.png``: sequence durations (num_frames / fps) with min, median and max marked.
(d) ``motion_correlation.png``: the face cut into small regions; the within-sequence Pearson
    correlation of their mean displacements (x, y and z; centred per sequence), pooled over all
    sequences and axes; edges below 0.5 removed;
    drawn on the average of all subject templates (a face that is no one's).
(e) ``splits.png``: per split, sequences, subjects, hours and emotion balance.

PNG bytes are deterministic: no software version or date in their metadata, fixed sizes and dpi.
"""

from __future__ import annotations

import io
import logging
import statistics as pystats
from pathlib import Path

import numpy as np

from mmface4d_datasets.errors import MMFace4DError

_log = logging.getLogger(__name__)
STATS_VERSION = "stats-v1"
NUMBERS_FILE = "stats.json"
FIGURE_FILES = {
    "velocity": "velocity.png",
    "ages": "ages_by_gender.png",
    "durations": "durations.png",
    "correlation": "motion_correlation.png",
    "splits": "splits.png",
}
FIGURE_TITLES = {
    "velocity": "(a) V(region, axis) per sequence: how speakers separate",
    "ages": "(b) ages of the subjects by gender",
    "durations": "(c) sequence durations",
    "correlation": "(d) motion correlation between small face regions",
    "splits": "per split: sequences, subjects, hours, emotions",
}
#: Marks a folder that `mmface4d stats` made, so a rerun may write into it again.
MARKER = ".mmface4d-stats"
#: Where `mmface4d build` puts the figures inside a release, and the meta/info.json key listing them.
RELEASE_FIGURES_DIR = "meta/figures"
INFO_KEY = "figures"

VELOCITY_REGIONS = ("lips", "eyes", "nose", "forehead", "upper_face")
AXES = ("x", "y", "z")
SCATTER_COMPONENTS = ("lips.x", "lips.y", "lips.z")
COLOURED_SUBJECTS = 6
SMALL_REGIONS = 24
CORRELATION_THRESHOLD = 0.5
AGE_BIN_YEARS = 5
NOSE_TIP_KEYPOINT = 30
_DPI = 100
_SUBJECT_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf")


# --------------------------------------------------------------------------- small regions


def small_regions(points: np.ndarray, count: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cut a mesh into ``count`` small regions: farthest-point seeds, then nearest seed.

    ``points`` (N, 3). Seeds: vertex ``start`` first, then repeatedly the vertex farthest (Euclidean)
    from every seed so far (the first such vertex on ties). Every vertex joins its nearest seed.
    Returns ``(labels, seeds)``: (N,) int64 region index per vertex and (K,) int64 seed vertex ids,
    K = min(count, number of distinct points).
    """
    from mmface4d_datasets.facemodel.topology import farthest_points

    points = np.asarray(points, dtype=np.float64)
    seeds = farthest_points(points, count, start)
    distance = np.linalg.norm(points[:, None, :] - points[seeds][None, :, :], axis=-1)
    return np.argmin(distance, axis=1).astype(np.int64), seeds


def correlation_from_moments(cross: np.ndarray) -> np.ndarray:
    """Pearson correlation matrix from summed cross-products of centred series (K, K); 0 where a
    region never moved (zero variance), 1 on the diagonal."""
    variance = np.diag(cross).copy()
    scale = np.sqrt(np.where(variance > 0, variance, np.nan))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cross / scale[:, None] / scale[None, :]
    corr = np.nan_to_num(corr, nan=0.0)
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1.0, 1.0)


# --------------------------------------------------------------------------- numbers


def _round(value, digits: int = 9):
    """Floats to ``digits`` significant digits for stable, readable JSON (None for NaN)."""
    if value is None:
        return None
    value = float(value)
    if not np.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def _summary(values) -> dict:
    values = [float(v) for v in values]
    if not values:
        return {"count": 0, "min": None, "median": None, "max": None, "mean": None}
    return {
        "count": len(values),
        "min": _round(min(values)),
        "median": _round(pystats.median(values)),
        "max": _round(max(values)),
        "mean": _round(sum(values) / len(values)),
    }


def _progress(items, enabled: bool, total: int, description: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc=f"mmface4d stats: {description}", unit="seq")


def compute_statistics(release, *, small_region_count: int = SMALL_REGIONS, progress: bool = False) -> tuple[dict, dict]:
    """Every number of the figures, from ``release`` (a ``Release`` or a release folder).

    Streams the records split by split (one decoded sequence in memory at a time). Returns
    ``(numbers, drawing)``: ``numbers`` is what ``stats.json`` holds (JSON types only);
    ``drawing`` holds the arrays the figures need besides (the average face, its triangles and the
    small regions).
    """
    from mmface4d_datasets.codec import decode
    from mmface4d_datasets.release.reader import Release
    from mmface4d_datasets.synthetic.quality import nearest_centroid_accuracy, region_axis_speed

    if not isinstance(release, Release):
        release = Release(release)
    release.splits  # noqa: B018 -- a damaged split manifest is a named error before any work
    table = release.sequences()
    if len(table) == 0:
        raise MMFace4DError(f"{release.path}: the release has no sequences (meta/sequences.parquet is empty)")
    masks = release.region_masks()
    regions = [name for name in VELOCITY_REGIONS if name in masks and len(masks[name])]
    if "lips" not in regions:
        raise MMFace4DError(f"{release.path}: meta/topology.npz has no 'lips' region (found {sorted(masks)})")
    components = [f"{region}.{axis}" for region in regions for axis in AXES]
    scatter = [components.index(c) for c in SCATTER_COMPONENTS]

    face, triangles = _average_face(release)
    keypoints = np.asarray(release.topology["keypoints"], dtype=np.int64)
    start = int(keypoints[NOSE_TIP_KEYPOINT]) if len(keypoints) > NOSE_TIP_KEYPOINT else 0
    labels, seeds = small_regions(face, small_region_count, start=start)
    count = len(seeds)
    # (N, K) averaging matrix: positions (T, N) @ it = mean position of each small region per frame.
    membership = np.zeros((len(face), count), dtype=np.float32)
    membership[np.arange(len(face)), labels] = 1.0
    membership /= membership.sum(axis=0, keepdims=True)

    ids, subjects, features = [], [], []
    cross = np.zeros((count, count))
    frames_used = 0
    for split in release.split_names:
        rows = release.iter_records(split, decode=False)
        total = int((table["split"] == split).sum())
        for row in _progress(rows, progress, total, split):
            vertices = decode(row["vertices"])
            fps = float(row["fps"])
            ids.append(row["id"])
            subjects.append(row["subject_id"])
            features.append(np.concatenate([region_axis_speed(vertices, masks[r]) for r in regions]) * fps * 1000.0)
            # Region mean positions per frame and axis, centred on the sequence's own mean: the motion.
            for axis in range(3):
                series = (vertices[:, :, axis] @ membership).astype(np.float64)
                series -= series.mean(axis=0)
                cross += series.T @ series
            frames_used += len(vertices)
    features = np.asarray(features, dtype=np.float64).reshape(len(ids), len(components))
    subject_names = sorted(set(subjects))

    numbers = {
        "version": STATS_VERSION,
        "release": {
            "format_version": release.info.format_version,
            "topology": release.info.topology,
            "num_vertices": release.info.num_vertices,
            "sequences": int(len(table)),
            "subjects": int(table["subject_id"].nunique()),
        },
        "files": dict(FIGURE_FILES),
        "velocity": _velocity_numbers(ids, subjects, subject_names, features, components, scatter, nearest_centroid_accuracy),
        "ages": _age_numbers(table),
        "durations": _duration_numbers(table),
        "correlation": _correlation_numbers(cross, frames_used, labels, seeds, face),
        "splits": _split_numbers(table, release.split_names, release.info.emotions),
    }
    drawing = {"face": face, "triangles": triangles, "labels": labels, "features": features, "subjects": subjects}
    return numbers, drawing


def _average_face(release) -> tuple[np.ndarray, np.ndarray]:
    """The average of all subject templates (canonical frame), float64 (N, 3), and the triangles."""
    total, count = None, 0
    for template in release.templates().values():
        total = template.astype(np.float64) if total is None else total + template
        count += 1
    if count == 0:
        raise MMFace4DError(f"{release.path}: templates/templates.parquet holds no template")
    return total / count, np.asarray(release.topology["triangles"], dtype=np.int64)


def _velocity_numbers(ids, subjects, subject_names, features, components, scatter, accuracy) -> dict:
    labels = np.asarray(subjects)
    enough = len(subject_names) >= 2
    per_subject = {}
    for subject in subject_names:
        rows = features[labels == subject]
        per_subject[subject] = {"sequences": int(len(rows)), "mean": [_round(v) for v in rows.mean(axis=0)]}
    by_size = sorted(subject_names, key=lambda s: (-per_subject[s]["sequences"], s))
    return {
        "unit": "mm/s",
        "definition": "V(region, axis) = fps x mean over frames t and region vertices v of |x[t+1, v, axis] - x[t, v, axis]|",
        "components": components,
        "scatter": [components[i] for i in scatter],
        "coloured_subjects": sorted(by_size[:COLOURED_SUBJECTS]),
        "subjects": len(subject_names),
        "sequences": len(ids),
        "chance": _round(1.0 / len(subject_names)),
        "accuracy_scatter": _round(accuracy(features[:, scatter], labels)) if enough else None,
        "accuracy_all": _round(accuracy(features, labels)) if enough else None,
        "classifier": "nearest class centroid on z-scored features, leave one sequence out",
        "per_subject": per_subject,
        "points": [[i, s, *[_round(v) for v in f[scatter]]] for i, s, f in zip(ids, subjects, features)],
    }


def _subject_rows(table):
    """One row per subject (its first sequence by id), as the dataset card counts them."""
    return table.sort_values("id", kind="stable").drop_duplicates("subject_id", keep="first")


def _age_bins(ages: list[float]) -> list[int]:
    if not ages:
        return []
    low = int(np.floor(min(ages) / AGE_BIN_YEARS) * AGE_BIN_YEARS)
    high = int(np.floor(max(ages) / AGE_BIN_YEARS) * AGE_BIN_YEARS) + AGE_BIN_YEARS
    return list(range(low, high + 1, AGE_BIN_YEARS))


def _age_numbers(table) -> dict:
    import pandas as pd

    subjects = _subject_rows(table)
    genders = [g if isinstance(g, str) and g else "unknown" for g in subjects["gender"]]
    ages = [None if pd.isna(a) else int(a) for a in subjects["age"]]
    known = [a for a in ages if a is not None]
    bins = _age_bins(known)
    by_gender = {}
    for gender in sorted(set(genders)):
        values = [a for g, a in zip(genders, ages) if g == gender and a is not None]
        counts = np.histogram(values, bins=bins)[0].tolist() if bins else []
        by_gender[gender] = {"subjects": int(sum(g == gender for g in genders)), "age": _summary(values), "histogram": counts}
    return {
        "subjects": len(genders),
        "unknown_age": int(sum(a is None for a in ages)),
        "bin_edges": bins,
        "age": _summary(known),
        "by_gender": by_gender,
    }


def _duration_numbers(table) -> dict:
    durations = table["duration_s"].to_numpy(dtype=np.float64)
    edges = np.histogram_bin_edges(durations, bins=min(30, max(1, len(durations))))
    return {
        "unit": "s",
        **_summary(durations),
        "total_hours": _round(durations.sum() / 3600.0),
        "bin_edges": [_round(e) for e in edges],
        "histogram": np.histogram(durations, bins=edges)[0].tolist(),
    }


def _correlation_numbers(cross, frames_used, labels, seeds, face) -> dict:
    corr = correlation_from_moments(cross)
    upper = np.triu_indices(len(seeds), k=1)
    keep = corr[upper] >= CORRELATION_THRESHOLD
    edges = [[int(i), int(j), _round(corr[i, j], 4)] for i, j in zip(upper[0][keep], upper[1][keep])]
    centres = np.stack([face[labels == k].mean(axis=0) for k in range(len(seeds))])
    return {
        "definition": (
            "per small region, the mean position of its vertices per frame along x, y and z, centred on "
            "the sequence's mean (its displacement); Pearson correlation of these series pooled over all "
            "sequences and the three axes; edges with correlation below the threshold removed"
        ),
        "threshold": CORRELATION_THRESHOLD,
        "regions": len(seeds),
        "frames": int(frames_used),
        "region_rule": "farthest-point seeds on the average template from the nose tip (keypoint 30), each vertex to its nearest seed",
        "region_sizes": np.bincount(labels, minlength=len(seeds)).tolist(),
        "region_centres_m": [[_round(v) for v in c] for c in centres],
        "edges": edges,
        "matrix": [[_round(v, 4) for v in row] for row in corr],
    }


def _split_numbers(table, splits, emotion_names) -> dict:
    names = list(emotion_names or sorted(set(table["emotion"])))
    result = {}
    for split in splits:
        rows = table[table["split"] == split]
        emotions = {name: int((rows["emotion"] == name).sum()) for name in names}
        result[split] = {
            "sequences": int(len(rows)),
            "subjects": int(rows["subject_id"].nunique()),
            "frames": int(rows["num_frames"].sum()),
            "hours": _round(rows["duration_s"].sum() / 3600.0),
            "emotions": emotions,
        }
    return result


# --------------------------------------------------------------------------- figures


def _new_figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes without software version or date (deterministic)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _velocity_figure(numbers, drawing):
    velocity = numbers["velocity"]
    features = drawing["features"][:, [velocity["components"].index(c) for c in velocity["scatter"]]]
    subjects = np.asarray(drawing["subjects"])
    fig = _new_figure((6.4, 5.6))
    ax = fig.add_subplot(projection="3d")
    coloured = velocity["coloured_subjects"]
    others = ~np.isin(subjects, coloured)
    if others.any():
        ax.scatter(*features[others].T, s=6, c="#bbbbbb", depthshade=False, label=f"other subjects ({others.sum()} seq.)")
    for colour, subject in zip(_SUBJECT_COLOURS, coloured):
        mine = subjects == subject
        ax.scatter(*features[mine].T, s=16, c=colour, depthshade=False, label=f"{subject} ({mine.sum()})")
    ax.set_xlabel(f"V({velocity['scatter'][0]}) mm/s", fontsize=8)
    ax.set_ylabel(f"V({velocity['scatter'][1]}) mm/s", fontsize=8)
    ax.set_zlabel(f"V({velocity['scatter'][2]}) mm/s", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="upper left")

    def percent(value):
        return "n/a" if value is None else f"{100 * value:.1f}%"

    ax.set_title(
        f"V(region, axis): {velocity['sequences']} sequences, {velocity['subjects']} subjects\n"
        f"nearest-centroid accuracy {percent(velocity['accuracy_scatter'])} (3 shown), "
        f"{percent(velocity['accuracy_all'])} (all {len(velocity['components'])}); chance {percent(velocity['chance'])}",
        fontsize=9,
    )
    return fig


_GENDER_COLOURS = {"female": "#d6455d", "male": "#3b7dd8", "unknown": "#999999"}


def _ages_figure(numbers, drawing):
    ages = numbers["ages"]
    fig = _new_figure((6.4, 4.0))
    ax = fig.add_subplot()
    edges = ages["bin_edges"]
    if edges:
        left = np.asarray(edges[:-1], dtype=np.float64)
        bottom = np.zeros(len(left))
        for index, (gender, part) in enumerate(sorted(ages["by_gender"].items())):
            counts = np.asarray(part["histogram"], dtype=np.float64)
            colour = _GENDER_COLOURS.get(gender, _SUBJECT_COLOURS[index % len(_SUBJECT_COLOURS)])
            ax.bar(
                left, counts, width=AGE_BIN_YEARS * 0.9, bottom=bottom, align="edge", color=colour, label=f"{gender} ({part['subjects']})"
            )
            bottom += counts
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no ages in this release", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("age (years)")
    ax.set_ylabel("subjects")
    _integer_ticks(ax)
    summary = ages["age"]
    extra = f"; age unknown for {ages['unknown_age']}" if ages["unknown_age"] else ""
    range_text = f"min {summary['min']:g}, median {summary['median']:g}, max {summary['max']:g}" if summary["count"] else "no ages"
    ax.set_title(f"Ages of {ages['subjects']} subjects by gender ({range_text}{extra})", fontsize=9)
    fig.tight_layout()
    return fig


def _durations_figure(numbers, drawing):
    durations = numbers["durations"]
    fig = _new_figure((6.4, 4.0))
    ax = fig.add_subplot()
    edges = np.asarray(durations["bin_edges"], dtype=np.float64)
    counts = np.asarray(durations["histogram"], dtype=np.float64)
    widths = np.diff(edges)
    ax.bar(edges[:-1], counts, width=np.where(widths > 0, widths, 0.05), align="edge", color="#5f9ea0", edgecolor="white")
    for key, style in (("min", ":"), ("median", "-"), ("max", "--")):
        ax.axvline(durations[key], color="black", linestyle=style, linewidth=1, label=f"{key} {durations[key]:.2f} s")
    ax.legend(fontsize=8)
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("sequences")
    _integer_ticks(ax)
    ax.set_title(f"Durations of {durations['count']} sequences ({durations['total_hours']:.3g} hours in all)", fontsize=9)
    fig.tight_layout()
    return fig


def _correlation_figure(numbers, drawing):
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection

    from mmface4d_datasets.facemodel.render import front_view_axes
    from mmface4d_datasets.facemodel.topology import vertex_normals

    correlation = numbers["correlation"]
    face, triangles = drawing["face"], drawing["triangles"]
    # The face in grey, Lambert-shaded per vertex and Gouraud-interpolated (fast for 70k triangles),
    # triangles in painter's order (farthest first).
    light = np.array([0.35, 0.45, 1.0]) / np.linalg.norm([0.35, 0.45, 1.0])
    shade = 0.35 + 0.65 * np.clip(vertex_normals(face, triangles) @ light, 0.0, 1.0)
    order = np.argsort(face[triangles].mean(axis=1)[:, 2], kind="stable")
    fig = _new_figure((5.6, 6.4))
    ax = fig.add_subplot()
    ax.tripcolor(face[:, 0] * 100.0, face[:, 1] * 100.0, triangles[order], shade, shading="gouraud", cmap="gray", vmin=0.0, vmax=1.15)
    centres = np.asarray(correlation["region_centres_m"], dtype=np.float64) * 100.0
    edges = correlation["edges"]
    if edges:
        cmap = colormaps["viridis"]
        values = np.array([e[2] for e in edges])
        strength = (values - CORRELATION_THRESHOLD) / (1.0 - CORRELATION_THRESHOLD)
        segments = [[centres[i, :2], centres[j, :2]] for i, j, _ in edges]
        ax.add_collection(
            LineCollection(segments, colors=[cmap(v) for v in strength], linewidths=0.3 + 1.7 * strength, alpha=0.8, zorder=3)
        )
    ax.scatter(centres[:, 0], centres[:, 1], s=18, c="#d6455d", edgecolors="black", linewidths=0.5, zorder=4)
    front_view_axes(ax, face)
    ax.set_title(
        f"Motion correlation of {correlation['regions']} face regions: {len(edges)} edges >= "
        f"{CORRELATION_THRESHOLD} (darker: weaker)\non the average template",
        fontsize=9,
    )
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.08, top=0.91)  # fixed: tight_layout would draw the mesh twice
    return fig


def _splits_figure(numbers, drawing):
    splits = numbers["splits"]
    names = list(next(iter(splits.values()))["emotions"])
    fig = _new_figure((6.4, 4.0))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(splits))
    positions = np.arange(len(names), dtype=np.float64)
    for index, (split, part) in enumerate(splits.items()):
        ax.bar(
            positions + index * width,
            [part["emotions"][n] for n in names],
            width=width,
            label=f"{split}: {part['sequences']} seq., {part['subjects']} subj., {part['hours']:.3g} h",
        )
    ax.set_xticks(positions + width * (len(splits) - 1) / 2, names, fontsize=8)
    ax.set_ylabel("sequences")
    _integer_ticks(ax)
    ax.legend(fontsize=8)
    ax.set_title("Emotion balance per split", fontsize=9)
    fig.tight_layout()
    return fig


_DRAW = {
    "velocity": _velocity_figure,
    "ages": _ages_figure,
    "durations": _durations_figure,
    "correlation": _correlation_figure,
    "splits": _splits_figure,
}


def draw_figures(numbers: dict, drawing: dict) -> dict[str, bytes]:
    """Figure name (``FIGURE_FILES``' keys) -> PNG bytes."""
    return {name: png_bytes(_DRAW[name](numbers, drawing)) for name in FIGURE_FILES}


def viz_available() -> bool:
    """Whether matplotlib (the ``viz`` extra) can be imported."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _require_viz() -> None:
    if not viz_available():
        raise MMFace4DError("drawing the statistics figures needs matplotlib: pip install 'mmface4d-datasets[viz]'")


# --------------------------------------------------------------------------- writing


def prepare_output_folder(out: Path) -> None:
    """Use ``out`` only when it is new, empty, or made by this command earlier (it holds ``MARKER``)."""
    from mmface4d_datasets.files import atomic_write_bytes, json_bytes

    if out.exists() and not out.is_dir():
        raise MMFace4DError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise MMFace4DError(
            f"{out}: the folder is not empty and was not made by `mmface4d stats` (no {MARKER} in it); give a new or empty folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MARKER).is_file():
        atomic_write_bytes(out / MARKER, json_bytes({"made_by": "mmface4d stats", "files": sorted([NUMBERS_FILE, *FIGURE_FILES.values()])}))


def write_statistics(release, out_dir, *, progress: bool = False, marker: bool = True) -> dict:
    """Compute the numbers of ``release`` and write ``stats.json`` and the PNGs into ``out_dir``.

    ``marker``: apply the output-folder rule (:func:`prepare_output_folder`); the build turns it off
    for ``meta/figures/`` of the release it is writing. Every file is written under a temporary name
    and renamed; nothing else in the folder is touched. Returns the numbers.
    """
    from mmface4d_datasets.files import atomic_write_bytes, json_bytes

    _require_viz()
    out = Path(out_dir)
    if marker:
        prepare_output_folder(out)
    else:
        out.mkdir(parents=True, exist_ok=True)
    numbers, drawing = compute_statistics(release, progress=progress)
    for name, data in draw_figures(numbers, drawing).items():
        atomic_write_bytes(out / FIGURE_FILES[name], data)
    atomic_write_bytes(out / NUMBERS_FILE, json_bytes(numbers))
    return numbers


def figure_entries() -> dict:
    """The ``figures`` entry of meta/info.json: the numbers file and the images with their titles."""
    return {
        "numbers": f"{RELEASE_FIGURES_DIR}/{NUMBERS_FILE}",
        "images": [{"path": f"{RELEASE_FIGURES_DIR}/{file}", "title": FIGURE_TITLES[name]} for name, file in FIGURE_FILES.items()],
    }


def card_sequence_rows(release) -> list[dict]:
    """The sequence rows the dataset card is rendered from, read back from meta/sequences.parquet."""
    import pyarrow.parquet as pq

    from mmface4d_datasets.release.schema import EMOTION_NAMES

    fps = release.info.uniform_fps
    rows = []
    for row in pq.read_table(release.path / "meta" / "sequences.parquet").to_pylist():
        rate = fps if fps is not None else int(round(row["num_frames"] / row["duration_s"]))
        rows.append(dict(row, emotion=EMOTION_NAMES.index(row["emotion"]), fps=rate))
    return rows


def add_figures_to_release(release_dir, card_info: dict | None = None, *, progress: bool = False, output=None) -> list[str]:
    """Draw the figures of the release in ``release_dir`` into its ``meta/figures/``, list them in
    ``meta/info.json`` (``figures``, and each file with size and sha256 under ``files``) and render
    the dataset card again with them (``card_info`` as the build gave it). Returns the paths added.

    Without matplotlib, or when the statistics cannot be computed (a topology without a `lips`
    region; the reason is printed), nothing is drawn: earlier figures of ours are removed, so that
    none stays behind unlisted, and the empty list is returned. ``output``: the build's
    ``OutputFolder``, which records the figure files as written by the build.
    """
    import dataclasses

    from mmface4d_datasets.files import atomic_write_bytes, json_bytes, sha256_file
    from mmface4d_datasets.release.card import render_card
    from mmface4d_datasets.release.info import INFO_FILE, Figure, Figures, FileEntry, FrozenMapping
    from mmface4d_datasets.release.reader import Release

    root = Path(release_dir)
    folder = root / RELEASE_FIGURES_DIR
    if output is not None:
        output.will_write(*(folder / name for name in (NUMBERS_FILE, *FIGURE_FILES.values())))

    def remove_ours() -> list[str]:
        for name in (NUMBERS_FILE, *FIGURE_FILES.values()):
            if (folder / name).is_file():
                (folder / name).unlink()
        return []

    if not viz_available():
        return remove_ours()
    release = Release(root)
    try:
        write_statistics(release, folder, progress=progress, marker=False)
    except MMFace4DError as exc:  # the release itself is complete and valid: build it without figures
        _log.warning("mmface4d build: no statistics figures for %s: %s", root, exc)
        return remove_ours()
    entries = figure_entries()
    added = [entries["numbers"], *(image["path"] for image in entries["images"])]
    files = dict(release.info.files)
    for relative in added:
        path = root / relative
        files[relative] = FileEntry(size=path.stat().st_size, sha256=sha256_file(path))
    figures = Figures(numbers=entries["numbers"], images=tuple(Figure(**image) for image in entries["images"]))
    info = dataclasses.replace(release.info, files=FrozenMapping(sorted(files.items())), figures=figures)
    atomic_write_bytes(root / INFO_FILE, json_bytes(info.to_json()))
    card = render_card(info, release.splits, card_sequence_rows(release), card_info or {})
    atomic_write_bytes(root / "README.md", card.encode("utf-8"))
    return added


def main_stats(release: str, out: str, *, progress: bool = True) -> dict:
    """What ``mmface4d stats`` runs: a release (any name of `mmface4d_datasets.release.resolve`) into ``out``."""
    from mmface4d_datasets.release.resolve import resolve_release

    path = resolve_release(release, progress=progress)
    numbers = write_statistics(path, out, progress=progress)
    return {
        "release": str(path),
        "out": str(out),
        "files": sorted([NUMBERS_FILE, *FIGURE_FILES.values()]),
        "sequences": numbers["release"]["sequences"],
        "subjects": numbers["release"]["subjects"],
        "accuracy_all": numbers["velocity"]["accuracy_all"],
        "chance": numbers["velocity"]["chance"],
        "durations_s": {k: numbers["durations"][k] for k in ("min", "median", "max")},
        "correlation_edges": len(numbers["correlation"]["edges"]),
    }


__all__ = [
    "compute_statistics",
    "draw_figures",
    "write_statistics",
    "add_figures_to_release",
    "small_regions",
    "correlation_from_moments",
    "figure_entries",
    "FIGURE_FILES",
    "NUMBERS_FILE",
    "RELEASE_FIGURES_DIR",
    "INFO_KEY",
]
