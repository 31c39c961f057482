"""The leaderboard: scored reports in one table, sorted by ``lip_max``, with the paper's rows for reference.

The reference rows are MMFace4D's Table II (the paper's own numbers, on the paper's own data and
split, with the authors' evaluation script, which fed the target sequence or picked the style
input by ground-truth error). They are shown as reference lines, marked "paper, own data", and
are never ranked among the reports: the numbers are not comparable with ours one to one.

Every report is checked before it is ranked (:func:`benchmark.report.check_report`: no missing or
mistyped field, no negative or non-finite metric; :func:`benchmark.report.check_consistency`: the
headline numbers are the means of its own per-sequence errors). With a release,
:func:`verify_report` re-scores the report's submission file and refuses the report when the
file's SHA-256, the release's identity or any number differs; rows that were not re-scored are
marked "unverified". Reports of different releases (see ``benchmark.scoring.RELEASE_IDENTITY``)
are never ranked together: each release gets its own table under its own heading.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from benchmark.metrics import METRIC_NAMES
from benchmark.report import ReportError, check_consistency, check_report, md_escape

#: MMFace4D Table II, metres: lip_max ("LVE"), lip_mean, upper_max, face_max.
PAPER_TABLE_II = (
    ("MeshTalk", (0.00208, 0.00087, 0.00360, 0.00387)),
    ("FaceFormer", (0.00186, 0.00073, 0.00300, 0.00330)),
    ("MMFace4D (paper's model)", (0.00152, 0.00054, 0.00236, 0.00268)),
)
PAPER_SOURCE = "paper, own data"


@dataclass(frozen=True)
class Entry:
    """One line of the leaderboard; values in metres (None when not reported).

    ``verified``: True when the numbers were re-scored from the submission against the release,
    False when they were only checked for consistency, None for the paper's reference lines.
    ``release_key``: the release identity the numbers belong to (entries rank only within one).
    """

    model: str
    values: dict[str, float | None]
    lip_max_ci: tuple[float, float] | None
    num_sequences: int | None
    source: str
    release: str
    split: str
    verified: bool | None = None
    release_key: tuple = ()

    @property
    def is_reference(self) -> bool:
        return self.source == PAPER_SOURCE


def printable(text) -> str:
    """`text` with control characters (newlines, escape sequences) written as escapes, as the leaderboard prints
    names that come from other people's files; at most 200 characters."""
    text = str(text)
    escaped = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return escaped if len(escaped) <= 200 else escaped[:199] + "…"


def release_key(report: dict) -> tuple:
    """The release identity of a report (benchmark.scoring.RELEASE_IDENTITY), as a sortable tuple."""
    from benchmark.scoring import RELEASE_IDENTITY

    release = report.get("release", {})
    return tuple((key, str(release.get(key))) for key in RELEASE_IDENTITY)


def entry_from_report(report: dict, source: str = "", verified: bool = False) -> Entry:
    """A leaderboard line from a scored report (benchmark.report.build_report)."""
    values = report["metrics"]["authors"]["values"]
    release = report.get("release", {})
    ci = values.get("lip_max", {}).get("ci")
    content = release.get("content_hash")
    return Entry(
        model=printable(report.get("model") or "unnamed"),
        values={name: values.get(name, {}).get("value") for name in METRIC_NAMES},
        lip_max_ci=tuple(ci) if isinstance(ci, list) and len(ci) == 2 and None not in ci else None,
        num_sequences=report.get("num_sequences"),
        source=printable(source or report.get("submission", {}).get("path", "")),
        release=printable(
            f"format {release.get('format_version')}, splits {release.get('splits_version')}, "
            f"codec {release.get('codec_version')}, regions {release.get('region_rule_version')}, "
            f"topology {release.get('topology')} ({release.get('num_vertices')} vertices), "
            f"content {str(content)[:12] if content else 'unknown'}"
        ),
        split=printable(release.get("split", "")),
        verified=bool(verified),
        release_key=release_key(report),
    )


def paper_entries() -> list[Entry]:
    """The paper's Table II rows as reference lines."""
    return [
        Entry(
            model=name,
            values=dict(zip(METRIC_NAMES, values)),
            lip_max_ci=None,
            num_sequences=None,
            source=PAPER_SOURCE,
            release="MMFace4D paper, Table II",
            split="paper's test split",
        )
        for name, values in PAPER_TABLE_II
    ]


def build_leaderboard(
    reports: Sequence[dict], *, sources: Sequence[str] | None = None, include_paper: bool = True, verified: Sequence[bool] | None = None
) -> tuple[list[Entry], list[Entry]]:
    """(ranked entries, grouped by release and sorted by lip_max then face_max within each; reference entries).

    Every report is checked first (:func:`check_report`, :func:`check_consistency`): a report that
    was not scored, lacks or mistypes a field, holds a negative or non-finite metric, or whose
    headline numbers disagree with its per-sequence errors raises :class:`ReportError` (a
    ValueError) naming the report (its source) and the field. ``verified[i]`` says whether report
    i was re-scored (:func:`verify_report`); the default is False for all.
    """
    ranked = []
    for index, report in enumerate(reports):
        where = (sources[index] if sources else "") or f"report {index}"
        check_report(report, where)
        check_consistency(report, where)
        ranked.append(entry_from_report(report, sources[index] if sources else "", verified=bool(verified[index]) if verified else False))

    def key(entry: Entry):
        lip = entry.values.get("lip_max")
        face = entry.values.get("face_max")
        return (entry.release_key, math.inf if lip is None else lip, math.inf if face is None else face, entry.model)

    ranked.sort(key=key)
    return ranked, (paper_entries() if include_paper else [])


def _located_submission(report: dict, where: str, submission_dir=None):
    from pathlib import Path

    recorded = report.get("submission", {}).get("path")
    if not isinstance(recorded, str) or not recorded:
        raise ReportError(f"{where}: field 'submission.path' is missing: the scored file cannot be found")
    if submission_dir is not None:
        candidate = Path(submission_dir) / Path(recorded).name
        if candidate.is_file():
            return candidate
        raise ReportError(f"{where}: the submission {Path(recorded).name} is not in {submission_dir}")
    candidate = Path(recorded)
    if not candidate.is_absolute() and not candidate.is_file():
        candidate = Path(where).parent / recorded
    if candidate.is_file():
        return candidate
    raise ReportError(f"{where}: the submission recorded at {recorded} is not there (give --submissions DIR)")


def _differences(stated: dict, rescored: dict) -> str | None:
    """The first field where a report and its re-score disagree (dotted name and both values), or None."""
    if stated["num_sequences"] != rescored["num_sequences"]:
        return f"field 'num_sequences' says {stated['num_sequences']}; the re-score has {rescored['num_sequences']}"
    if stated["num_frames"] != rescored["num_frames"]:
        return f"field 'num_frames' says {stated['num_frames']}; the re-score has {rescored['num_frames']}"
    for convention, section in rescored["metrics"].items():
        for name, entry in section["values"].items():
            dotted = f"metrics.{convention}.values.{name}.value"
            value = stated.get("metrics", {}).get(convention, {}).get("values", {}).get(name, {}).get("value")
            if entry["value"] is None and value is None:
                continue
            if value is None or entry["value"] is None or not math.isclose(value, entry["value"], rel_tol=1e-6, abs_tol=1e-12):
                return f"field {dotted!r} says {value!r}; the re-score gives {entry['value']!r}"
    mine = {row["id"]: row for row in stated["sequences"]}
    for row in rescored["sequences"]:
        other = mine.get(row["id"])
        if other is None:
            return f"field 'sequences' lacks {row['id']!r}, which the re-score has"
        for name in (*METRIC_NAMES, "num_frames"):
            if not math.isclose(float(other[name]), float(row[name]), rel_tol=1e-6, abs_tol=1e-12):
                return f"field 'sequences' ({row['id']}).{name} says {other[name]!r}; the re-score gives {row[name]!r}"
    return None


def verify_report(report: dict, where: str, release, *, submission_dir=None) -> dict:
    """Re-score ``report``'s submission against ``release`` and refuse the report if anything differs.

    The submission is found at its recorded path (or by its file name in ``submission_dir``); its
    SHA-256 must equal the recorded one; the release's identity (format, splits, codec, region
    rule, topology, vertex count, content hash, split) must equal the report's; the re-score (same
    conventions, same bootstrap settings) must give the same sequence and frame counts, split
    values and per-sequence errors. Raises :class:`ReportError` naming ``where`` and the field;
    returns the re-scored report.
    """
    from benchmark.scoring import RELEASE_IDENTITY, release_context, score_submission
    from mmface4d_datasets.files import sha256_file

    check_report(report, where)
    recorded_hash = report.get("submission", {}).get("sha256")
    if not isinstance(recorded_hash, str) or not recorded_hash:
        raise ReportError(
            f"{where}: field 'submission.sha256' is missing (a report written before report version 2 "
            "cannot be checked: score the submission again)"
        )
    path = _located_submission(report, where, submission_dir)
    actual = sha256_file(path)
    if actual != recorded_hash:
        raise ReportError(
            f"{where}: field 'submission.sha256' is {recorded_hash}; the file {path} has {actual} (not the file that was scored)"
        )
    split = str(report["release"].get("split") or "test")
    context = release_context(release, split)
    for key in RELEASE_IDENTITY:
        if str(report["release"].get(key)) != str(context.get(key)):
            raise ReportError(
                f"{where}: field 'release.{key}' is {report['release'].get(key)!r}; the release at "
                f"{release.path} has {context.get(key)!r} (scored against other data)"
            )
    bootstrap = report.get("bootstrap", {}) if isinstance(report.get("bootstrap"), dict) else {}
    result = score_submission(
        path,
        release,
        split,
        conventions=tuple(report["conventions"]),
        bootstrap_samples=int(bootstrap.get("samples", 200)),
        seed=int(bootstrap.get("seed", 0)),
    )
    if result.report is None:
        first = "; ".join(str(issue) for issue in result.validation.errors[:3])
        raise ReportError(f"{where}: its submission {path} does not pass validation against {release.path}: {first}")
    difference = _differences(report, result.report)
    if difference:
        raise ReportError(f"{where}: {difference}")
    return result.report


def _mm(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1e3:.3f}"


def _status(entry: Entry) -> str:
    return "re-scored" if entry.verified else "unverified"


def render_markdown(ranked: Sequence[Entry], references: Sequence[Entry]) -> str:
    """Markdown tables: ranked reports (mm), one table per release, then the reference lines, then notes."""
    header = (
        "| rank | model | "
        + " | ".join(f"{name} (mm)" for name in METRIC_NAMES)
        + " | lip_max 95% CI (mm) | sequences | checked | source | release |"
    )
    rule = "|" + " --- |" * (len(METRIC_NAMES) + 7)
    groups: dict[tuple, list[Entry]] = {}
    for entry in ranked:
        groups.setdefault(entry.release_key, []).append(entry)
    lines: list[str] = []
    for number, entries in enumerate(groups.values(), start=1):
        if len(groups) > 1:
            lines += [f"### Release {number}: {md_escape(entries[0].release)}, split {md_escape(entries[0].split)}", ""]
        lines += [header, rule]
        for rank, entry in enumerate(entries, start=1):
            ci = "n/a" if entry.lip_max_ci is None else f"[{_mm(entry.lip_max_ci[0])}, {_mm(entry.lip_max_ci[1])}]"
            lines.append(
                f"| {rank} | {md_escape(entry.model)} | "
                + " | ".join(_mm(entry.values.get(n)) for n in METRIC_NAMES)
                + f" | {ci} | {entry.num_sequences} | {_status(entry)} | {md_escape(entry.source)} | "
                f"{md_escape(entry.release)} |"
            )
        lines.append("")
    if references:
        if len(groups) > 1 or not groups:
            lines += ["### Reference lines", "", header, rule]
        else:
            lines.pop()  # the reference lines continue the single table
        for entry in references:
            lines.append(
                f"| ref. | _{md_escape(entry.model)}_ | "
                + " | ".join(f"_{_mm(entry.values.get(n))}_" for n in METRIC_NAMES)
                + f" | n/a | n/a | n/a | **{entry.source}** | {md_escape(entry.release)} |"
            )
        lines.append("")
    lines.append(
        "Ranked by lip_max (the authors' convention: mean over frames of the maximum Euclidean lip-vertex "
        "error, per sequence, then mean over sequences)."
    )
    if len(groups) > 1:
        lines.append(
            f"The reports come from {len(groups)} different releases or splits: each is ranked on its own, never against the others."
        )
    if any(not entry.verified for entry in ranked):
        lines.append(
            "'unverified': the row's numbers agree with its own per-sequence errors but were not re-scored "
            "from the submission (rank with --data RELEASE to re-score them)."
        )
    if references:
        lines.append(
            "Reference lines (italic) are the MMFace4D paper's Table II: the paper's own numbers on its own "
            "data and split, with its evaluation script (style input chosen with the ground truth); they are "
            "not ranked and not directly comparable."
        )
    return "\n".join(lines) + "\n"


def render_csv(ranked: Sequence[Entry], references: Sequence[Entry]) -> str:
    """The same table as CSV, values in metres (reference rows have rank ``ref``; ``rank`` counts
    within a release; ``checked`` is re-scored, unverified or empty for references)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "rank",
            "model",
            *[f"{n}_m" for n in METRIC_NAMES],
            "lip_max_ci_low_m",
            "lip_max_ci_high_m",
            "num_sequences",
            "checked",
            "source",
            "release",
            "split",
        ]
    )
    rows, previous, rank = [], None, 0
    for entry in ranked:
        rank = rank + 1 if entry.release_key == previous else 1
        previous = entry.release_key
        rows.append((str(rank), entry))
    rows += [("ref", e) for e in references]
    for rank, entry in rows:
        low, high = entry.lip_max_ci if entry.lip_max_ci else ("", "")
        writer.writerow(
            [
                rank,
                _csv_text(entry.model),
                *["" if entry.values.get(n) is None else repr(entry.values[n]) for n in METRIC_NAMES],
                low,
                high,
                "" if entry.num_sequences is None else entry.num_sequences,
                "" if entry.is_reference else _status(entry),
                _csv_text(entry.source),
                entry.release,
                entry.split,
            ]
        )
    return buffer.getvalue()


def _csv_text(text: str) -> str:
    """A text cell that a spreadsheet will not run as a formula (a leading = + - @ is quoted with ')."""
    text = " ".join(str(text).splitlines())
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
