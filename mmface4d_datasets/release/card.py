"""The dataset card (README.md of a release): `dataset_card.md` at the repository root, filled in.

The package reads it as `release/dataset_card.md`, a link to the root file that a wheel carries as a copy.

Placeholders are `{{ name }}`; every one must be given (an unknown or missing name is an error, so
the template and this module cannot drift apart silently). Every number comes from the data.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.release.info import ReleaseInfo
from mmface4d_datasets.release.schema import EMOTION_NAMES

CARD_TEMPLATE = Path(__file__).with_name("dataset_card.md")
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")

DEFAULT_CARD_INFO = {
    "pretty_name": "MMFace4D",
    "license": "other",
    "homepage": "https://arxiv.org/abs/2303.09797",
    "source": "MMFace4D (Wu et al.): 431 identities recorded with three Azure Kinect cameras and one microphone",
    "summary": (
        "Speech audio synchronised with topology-uniform 3D face mesh sequences (30 fps) for audio-driven "
        "3D face animation, in the mmface4d release format."
    ),
    "citation": (
        "@article{wu2023mmface4d,\n  title={MMFace4D: A Large-Scale Multi-Modal 4D Face Dataset for "
        "Audio-Driven 3D Face Animation},\n  author={Wu, Haozhe and others},\n"
        "  journal={arXiv preprint arXiv:2303.09797},\n  year={2023}\n}"
    ),
    "consent": (
        "The people recorded consented to the collection and research use of their faces and voices, as stated by the dataset's authors."
    ),
    "data_kind": "3D face meshes and speech of real people (biometric data)",
}

#: Card fields every synthetic release shares (the mini release, `mmface4d build synthetic`).
SYNTHETIC_CARD_INFO = {
    "license": "apache-2.0",
    "source": "the mmface4d synthetic generator (eSpeak NG speech, embedded face model)",
    "consent": (
        "No person was recorded: voices come from eSpeak NG and faces from the embedded synthetic face "
        "model; the paragraph below is about the real release."
    ),
    "data_kind": "synthetic 3D face meshes and synthesised speech (no real person), in the format of a biometric dataset",
}


def configs_yaml(info: ReleaseInfo) -> str:
    """The card's `configs:` list: default (data/), templates, raw, with the shard files of each split listed
    one by one from `meta/info.json` (no globs: plain `datasets.load_dataset(folder)` reads exactly the
    rows the release describes, never a stray copy of a shard)."""
    splits = info.split_names

    def listed(folder: str, split: str) -> list[str]:
        return [f"    - {path}" for path in info.listed(f"{folder}/{split}/", ".parquet")]

    lines = ["- config_name: default", "  default: true", "  data_files:"]
    for split in splits:
        lines += [f"  - split: {split}", "    path:"] + listed("data", split)
    lines += ["- config_name: templates", "  data_files:", "  - split: train", "    path: templates/templates.parquet"]
    raw = [split for split in splits if listed("raw", split)]
    if raw:
        lines += ["- config_name: raw", "  data_files:"]
        for split in raw:
            lines += [f"  - split: {split}", "    path:"] + listed("raw", split)
    return "\n".join(lines)


def _size_category(count: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if count < limit:
            return name
    return "100K<n<1M"


def statistics_table(sequence_rows: list[dict]) -> str:
    """Markdown table per split: subjects, sequences, frames, hours, duration and age ranges, genders."""
    lines = [
        "| split | subjects | sequences | frames | hours | duration s (min / median / max) | age (min / median / max) | gender |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for split in sorted({r["split"] for r in sequence_rows}, key=lambda s: (s != "train", s)):
        rows = [r for r in sequence_rows if r["split"] == split]
        durations = [r["num_frames"] / r["fps"] for r in rows]
        subjects = {}
        for row in sorted(rows, key=lambda r: r["id"]):
            subjects.setdefault(row["subject_id"], row)
        ages = [r["age"] for r in subjects.values() if r["age"] is not None]
        genders: dict[str, int] = {}
        for row in subjects.values():
            genders[row["gender"] or "unknown"] = genders.get(row["gender"] or "unknown", 0) + 1
        age_text = f"{min(ages)} / {statistics.median(ages):g} / {max(ages)}" if ages else "unknown"
        gender_text = ", ".join(f"{g} {n}" for g, n in sorted(genders.items()))
        lines.append(
            f"| {split} | {len(subjects)} | {len(rows)} | {sum(r['num_frames'] for r in rows)} | {sum(durations) / 3600:.3f} | "
            f"{min(durations):.2f} / {statistics.median(durations):.2f} / {max(durations):.2f} | {age_text} | {gender_text} |"
        )
    return "\n".join(lines)


def figures_markdown(info: ReleaseInfo) -> str:
    """The card's figures: images listed under `info.figures` (written by `mmface4d build` with the
    `viz` extra; see builders/stats.py), as Markdown with paths relative to the release, which the
    Hub's viewer shows; a note on how to get them when there are none."""
    figures = info.figures
    images = figures.images if figures is not None else ()
    if not images:
        return (
            "No figures in this build: `mmface4d build` draws them when matplotlib (the `viz` extra) is "
            "installed, and `mmface4d stats RELEASE --out DIR` draws them for any release that has a `lips` region."
        )
    lines = [f"![{image.title}]({image.path})" for image in images]
    if figures.numbers:
        lines.append(f"The numbers behind the figures: [`{figures.numbers}`]({figures.numbers}).")
    return "\n\n".join(lines)


def render_card(info: ReleaseInfo, manifest: dict, sequence_rows: list[dict], card_info: dict) -> str:
    """README.md text of a release from `meta/info.json`, the split manifest and the sequence rows."""
    if not CARD_TEMPLATE.is_file():
        raise MMFace4DError(f"{CARD_TEMPLATE}: the dataset card template is missing")
    unknown = sorted(set(card_info) - set(DEFAULT_CARD_INFO))
    if unknown:
        raise MMFace4DError(f"card_info: unknown fields {unknown} (known: {sorted(DEFAULT_CARD_INFO)})")
    emotions = {name: 0 for name in EMOTION_NAMES}
    for row in sequence_rows:
        emotions[EMOTION_NAMES[row["emotion"]]] += 1
    values = dict(DEFAULT_CARD_INFO, **card_info)
    values.update(
        configs_yaml=configs_yaml(info),
        size_category=_size_category(info.counts.sequences),
        format_version=info.format_version,
        topology=info.topology,
        num_vertices=str(info.num_vertices),
        fps=_rate_text(info.fps),
        sample_rate=_rate_text(info.sample_rate),
        codec_version=info.codec_version,
        max_error_um=f"{info.max_error * 1e6:g}",
        split_rule=f"Seed {manifest['seed']}. Rule {manifest['rule']}. "
        f"This release: {len(manifest['train'])} train and {len(manifest['test'])} test subjects, "
        f"{len(manifest['style_reference'])} frozen style references.",
        statistics_table=statistics_table(sequence_rows),
        figures=figures_markdown(info),
        emotion_counts=", ".join(f"{name} {count}" for name, count in emotions.items()),
    )
    template = CARD_TEMPLATE.read_text(encoding="utf-8")
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(values))
    if missing:
        raise MMFace4DError(f"{CARD_TEMPLATE}: placeholders without a value: {missing}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def _rate_text(rate: int | tuple[int, ...]) -> str:
    """A frame or sample rate as the card shows it: `30`, or `[25, 30]` when the sequences differ."""
    return str(list(rate) if isinstance(rate, tuple) else rate)


def card_front_matter(path: str | Path) -> str:
    """The YAML front matter of a card file (between the first two `---` lines)."""
    text = Path(path).read_text(encoding="utf-8")
    parts = text.split("---\n", 2)
    if not text.startswith("---\n") or len(parts) < 3:
        raise MMFace4DError(f"{path}: no YAML front matter")
    return parts[1]
