"""The leaderboard: scored reports in one table, sorted by ``lip_max``, with the paper's rows for reference.

The reference rows are MMFace4D's Table II (the paper's own numbers, on the paper's own data and
split, with the authors' evaluation script, which fed the target sequence or picked the style
input by ground-truth error). They are shown as reference lines, marked "paper, own data", and
are never ranked among the reports: the numbers are not comparable with ours one to one.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from benchmark.metrics import METRIC_NAMES

#: MMFace4D Table II, metres: lip_max ("LVE"), lip_mean, upper_max, face_max.
PAPER_TABLE_II = (
    ("MeshTalk", (0.00208, 0.00087, 0.00360, 0.00387)),
    ("FaceFormer", (0.00186, 0.00073, 0.00300, 0.00330)),
    ("MMFace4D (paper's model)", (0.00152, 0.00054, 0.00236, 0.00268)),
)
PAPER_SOURCE = "paper, own data"


@dataclass(frozen=True)
class Entry:
    """One line of the leaderboard; values in metres (None when not reported)."""

    model: str
    values: dict[str, float | None]
    lip_max_ci: tuple[float, float] | None
    num_sequences: int | None
    source: str
    release: str
    split: str

    @property
    def is_reference(self) -> bool:
        return self.source == PAPER_SOURCE


def entry_from_report(report: dict, source: str = "") -> Entry:
    """A leaderboard line from a scored report (benchmark.report.build_report)."""
    values = report["metrics"]["authors"]["values"]
    release = report.get("release", {})
    ci = values.get("lip_max", {}).get("ci")
    return Entry(
        model=report.get("model") or "unnamed",
        values={name: values.get(name, {}).get("value") for name in METRIC_NAMES},
        lip_max_ci=tuple(ci) if ci and None not in ci else None,
        num_sequences=report.get("num_sequences"),
        source=source or report.get("submission", {}).get("path", ""),
        release=f"format {release.get('format_version')}, splits {release.get('splits_version')}, "
                f"codec {release.get('codec_version')}, regions {release.get('region_rule_version')}",
        split=str(release.get("split", "")),
    )


def paper_entries() -> list[Entry]:
    """The paper's Table II rows as reference lines."""
    return [Entry(model=name, values=dict(zip(METRIC_NAMES, values)), lip_max_ci=None, num_sequences=None,
                  source=PAPER_SOURCE, release="MMFace4D paper, Table II", split="paper's test split")
            for name, values in PAPER_TABLE_II]


def build_leaderboard(reports: Sequence[dict], *, sources: Sequence[str] | None = None,
                      include_paper: bool = True) -> tuple[list[Entry], list[Entry]]:
    """(ranked entries sorted by lip_max then face_max, reference entries).

    Reports that did not pass validation (``ok`` false) are skipped by the caller's choice:
    they raise ValueError here so that nothing unscored is ranked silently.
    """
    ranked = []
    for index, report in enumerate(reports):
        if not report.get("ok") or "metrics" not in report:
            raise ValueError(f"report {index} ({report.get('model', '?')}) was not scored (validation failed)")
        ranked.append(entry_from_report(report, sources[index] if sources else ""))

    def key(entry: Entry):
        lip = entry.values.get("lip_max")
        face = entry.values.get("face_max")
        return (math.inf if lip is None else lip, math.inf if face is None else face, entry.model)

    ranked.sort(key=key)
    return ranked, (paper_entries() if include_paper else [])


def _mm(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1e3:.3f}"


def render_markdown(ranked: Sequence[Entry], references: Sequence[Entry]) -> str:
    """One Markdown table: ranked reports (mm), then the reference lines, then notes."""
    header = "| rank | model | " + " | ".join(f"{name} (mm)" for name in METRIC_NAMES) + \
             " | lip_max 95% CI (mm) | sequences | source | release |"
    lines = [header, "|" + " --- |" * (len(METRIC_NAMES) + 6)]
    for rank, entry in enumerate(ranked, start=1):
        ci = "n/a" if entry.lip_max_ci is None else f"[{_mm(entry.lip_max_ci[0])}, {_mm(entry.lip_max_ci[1])}]"
        lines.append(f"| {rank} | {entry.model} | " + " | ".join(_mm(entry.values.get(n)) for n in METRIC_NAMES)
                     + f" | {ci} | {entry.num_sequences} | {entry.source} | {entry.release} |")
    for entry in references:
        lines.append(f"| ref. | _{entry.model}_ | " + " | ".join(f"_{_mm(entry.values.get(n))}_" for n in METRIC_NAMES)
                     + f" | n/a | n/a | **{entry.source}** | {entry.release} |")
    lines.append("")
    lines.append("Ranked by lip_max (the authors' convention: mean over frames of the maximum Euclidean lip-vertex "
                 "error, per sequence, then mean over sequences).")
    if references:
        lines.append("Reference lines (italic) are the MMFace4D paper's Table II: the paper's own numbers on its own "
                     "data and split, with its evaluation script (style input chosen with the ground truth); they are "
                     "not ranked and not directly comparable.")
    releases = {entry.release for entry in ranked}
    if len(releases) > 1:
        lines.append("**Warning: the ranked reports come from different release/split/region versions.**")
    return "\n".join(lines) + "\n"


def render_csv(ranked: Sequence[Entry], references: Sequence[Entry]) -> str:
    """The same table as CSV, values in metres (reference rows have rank ``ref``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["rank", "model", *[f"{n}_m" for n in METRIC_NAMES], "lip_max_ci_low_m", "lip_max_ci_high_m",
                     "num_sequences", "source", "release"])
    rows = [(str(i), e) for i, e in enumerate(ranked, start=1)] + [("ref", e) for e in references]
    for rank, entry in rows:
        low, high = entry.lip_max_ci if entry.lip_max_ci else ("", "")
        writer.writerow([rank, entry.model, *["" if entry.values.get(n) is None else repr(entry.values[n]) for n in METRIC_NAMES],
                         low, high, "" if entry.num_sequences is None else entry.num_sequences, entry.source, entry.release])
    return buffer.getvalue()
