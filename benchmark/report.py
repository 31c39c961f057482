"""Benchmark reports: JSON for machines, Markdown for people; bootstrap intervals; paired comparisons.

A report holds the split scores in both units (metres and millimetres; m^2 and mm^2 for the
CodeTalker convention), 95% percentile bootstrap intervals over sequences (seeded), per-emotion
and per-subject breakdowns, the versions of everything the numbers depend on (release format,
splits manifest, codec, region rule, topology), the submission header, the validation notices,
and one row per sequence, so that two reports can later be compared pair-wise on the same ids.

Bootstrap: B resamples of the n sequences with replacement (multinomial counts); every statistic
is a ratio sum(count * numerator) / sum(count * denominator) (a mean over sequences has
denominator 1; CodeTalker's pooled LVE has the frame counts), and the interval is the
(2.5%, 97.5%) quantiles of the B values. All metrics of a report share the same resamples.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.metrics import METRIC_NAMES
from mmface4d_datasets.errors import FormatError

REPORT_KIND = "mmface4d-benchmark-report"
REPORT_VERSION = 2
#: The report versions :func:`load_report` reads (version 1 lacks the submission hash: it can be
#: ranked as unverified but never re-scored).
READABLE_REPORT_VERSIONS = (1, 2)

#: How each convention is labelled wherever its numbers appear.
CONVENTION_LABELS = {
    "authors": (
        "authors' convention (MMFace4D Table II): Euclidean vertex distance d; lip_max = mean over frames of "
        "max over lip vertices of d, lip_mean = mean over frames and lip vertices of d, upper_max and face_max "
        "likewise over the upper face and all vertices; per sequence, then mean over sequences"
    ),
    "codetalker": (
        "CodeTalker convention (CodeTalker/FaceFormer evaluation scripts): lve_sq = mean over all frames pooled "
        "across sequences of max over lip vertices of the SQUARED distance; fdd = mean over sequences of "
        "dyn(ground truth) - dyn(prediction), dyn = mean over upper-face vertices of the temporal std of the "
        "squared displacement from the template (signed)"
    ),
}
CODETALKER_NAMES = ("lve_sq", "fdd")

PROTOCOL_TEXT = (
    "Per test sequence a model gets its audio, the subject's neutral template and the style reference frozen "
    "in meta/splits.json (another sequence of the same test subject), never the target vertices."
)

_CONVENTION_TITLES = {"authors": "Authors'", "codetalker": "CodeTalker"}
_MM = 1e3  # metres -> millimetres
_MM2 = 1e6  # m^2 -> mm^2


# ------------------------------------------------------------------------------------------ bootstrap


def bootstrap_ratios(
    numerators: Sequence[np.ndarray],
    denominators: Sequence[np.ndarray | None],
    *,
    samples: int = 2000,
    seed: int = 0,
    batch: int = 256,
) -> np.ndarray:
    """Bootstrap distribution of k ratio statistics over the same resamples of n items.

    Args:
        numerators: k arrays of shape (n,) (per-sequence values).
        denominators: k arrays of shape (n,), or None for a plain mean (denominator 1).
        samples: B, the number of resamples; seed: the generator's seed.

    Returns:
        (B, k) float64: statistic j of resample b = sum_i c_bi num_ji / sum_i c_bi den_ji, where
        c_b ~ Multinomial(n, 1/n). An empty input gives NaN.
    """
    if isinstance(samples, bool) or not hasattr(samples, "__index__") or int(samples) < 1:
        raise ValueError(f"bootstrap samples must be a whole number >= 1, got {samples!r}")
    samples = int(samples)
    k = len(numerators)
    n = len(numerators[0]) if k else 0
    out = np.full((samples, k), np.nan)
    if n == 0 or k == 0:
        return out
    num = np.stack([np.asarray(v, dtype=np.float64) for v in numerators], axis=1)  # (n, k)
    den = np.stack([np.ones(n) if d is None else np.asarray(d, dtype=np.float64) for d in denominators], axis=1)
    rng = np.random.default_rng(seed)
    uniform = np.full(n, 1.0 / n)
    for start in range(0, samples, batch):
        stop = min(start + batch, samples)
        counts = rng.multinomial(n, uniform, size=stop - start).astype(np.float64)  # (b, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:stop] = (counts @ num) / (counts @ den)
    return out


def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> list[float]:
    """[low, high] percentile interval of ``values`` (NaN ignored; [nan, nan] when none)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [math.nan, math.nan]
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return [float(low), float(high)]


# ------------------------------------------------------------------------------------------ building


def _row_value(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, dict) else getattr(row, name)


def _statistics(rows: Sequence[Any], conventions: Sequence[str]) -> list[tuple[str, str, np.ndarray, np.ndarray | None]]:
    """(convention, metric, numerators, denominators) of every statistic of a report."""
    stats = [("authors", name, np.array([_row_value(r, name) for r in rows], dtype=np.float64), None) for name in METRIC_NAMES]
    if "codetalker" in conventions:
        stats.append(
            (
                "codetalker",
                "lve_sq",
                np.array([_row_value(r, "lve_sq_sum") for r in rows], dtype=np.float64),
                np.array([_row_value(r, "num_frames") for r in rows], dtype=np.float64),
            )
        )
        fdd = [_row_value(r, "fdd") for r in rows]
        if all(value is not None for value in fdd):
            stats.append(("codetalker", "fdd", np.array(fdd, dtype=np.float64), None))
    return stats


def _point(numerators: np.ndarray, denominators: np.ndarray | None) -> float:
    if numerators.size == 0:
        return math.nan
    return float(numerators.sum() / (numerators.size if denominators is None else denominators.sum()))


def _scaled(value: float, convention: str) -> float:
    return value * (_MM if convention == "authors" else _MM2)


def _group_scores(rows: Sequence[Any], key: str, conventions: Sequence[str]) -> dict[str, dict]:
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(str(_row_value(row, key)), []).append(row)
    table = {}
    for name in sorted(groups):
        members = groups[name]
        entry = {"num_sequences": len(members), "num_frames": int(sum(_row_value(r, "num_frames") for r in members))}
        for convention, metric, num, den in _statistics(members, conventions):
            value = _point(num, den)
            entry[metric] = value
            entry[f"{metric}_mm" if convention == "authors" else f"{metric}_mm2"] = _scaled(value, convention)
        table[name] = entry
    return table


def build_report(
    rows: Sequence[Any],
    *,
    release: dict,
    header: dict | None,
    conventions: Sequence[str] = ("authors",),
    validation: Any = None,
    bootstrap_samples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    submission_path: str = "",
    submission_sha256: str = "",
) -> dict:
    """The report of a scored split (a JSON-ready dict).

    Args:
        rows: one :class:`benchmark.scoring.SequenceRow` (or its dict) per scored sequence.
        release: the versions and identity of the release (``benchmark.scoring.release_context``).
        header: the submission's header.
        conventions: ``("authors",)`` or ``("authors", "codetalker")``; the first is the headline.
        validation: the :class:`benchmark.submission.ValidationReport` (its warnings are kept).
        submission_path, submission_sha256: where the scored file is and its SHA-256, so that the
            report can be checked by re-scoring the same bytes (``mmface4d bench leaderboard --data``).
    """
    from mmface4d_datasets import __version__

    conventions = list(dict.fromkeys(["authors", *conventions]))
    rows = list(rows)
    stats = _statistics(rows, conventions)
    distribution = bootstrap_ratios([s[2] for s in stats], [s[3] for s in stats], samples=bootstrap_samples, seed=seed)
    metrics: dict[str, dict] = {}
    for column, (convention, name, num, den) in enumerate(stats):
        section = metrics.setdefault(
            convention,
            {
                "label": CONVENTION_LABELS[convention],
                "unit": "m" if convention == "authors" else "m^2",
                "unit_scaled": "mm" if convention == "authors" else "mm^2",
                "values": {},
            },
        )
        value = _point(num, den)
        interval = percentile_interval(distribution[:, column], confidence)
        section["values"][name] = {
            "value": value,
            "value_scaled": _scaled(value, convention),
            "ci": interval,
            "ci_scaled": [_scaled(v, convention) for v in interval],
        }
    row_dicts = [r if isinstance(r, dict) else r.to_dict() for r in rows]
    issues = [] if validation is None else [dict(id=i.id, rule=i.rule, message=i.message, severity=i.severity) for i in validation.issues]
    return {
        "kind": REPORT_KIND,
        "report_version": REPORT_VERSION,
        "ok": True,
        "model": (header or {}).get("model", ""),
        "submission": {"path": submission_path, "sha256": submission_sha256, "header": header},
        "release": dict(release),
        "protocol": PROTOCOL_TEXT,
        "conventions": conventions,
        "scoring": {"headline_convention": conventions[0], "split_score": "mean over sequences", "package_version": __version__},
        "package_version": __version__,
        "num_sequences": len(rows),
        "num_frames": int(sum(r["num_frames"] for r in row_dicts)),
        "metrics": metrics,
        "bootstrap": {
            "samples": bootstrap_samples,
            "seed": seed,
            "confidence": confidence,
            "resampled": "sequences",
            "interval": "percentile",
        },
        "breakdowns": {"emotion": _group_scores(rows, "emotion", conventions), "subject": _group_scores(rows, "subject_id", conventions)},
        "trimmed": {r["id"]: r["trimmed_frames"] for r in row_dicts if r["trimmed_frames"]},
        "notices": issues,
        "comparisons": [],
        "sequences": row_dicts,
    }


# ------------------------------------------------------------------------------------------ checking


class ReportError(FormatError):
    """A report is malformed, disagrees with itself, or disagrees with a re-score (names the report and the field)."""


#: Relative tolerance when a report's numbers are compared with numbers recomputed from it or re-scored.
CHECK_RTOL = 1e-9


def _get(report: dict, dotted: str, where: str) -> Any:
    value: Any = report
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ReportError(f"{where}: field {dotted!r} is missing")
        value = value[part]
    return value


def _number(value: Any, dotted: str, where: str, *, signed: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReportError(f"{where}: field {dotted!r} must be a number, found {type(value).__name__} {str(value)[:40]!r}")
    if not math.isfinite(value) or (not signed and value < 0):
        raise ReportError(f"{where}: field {dotted!r} must be a {'finite' if signed else 'non-negative finite'} number, found {value!r}")
    return float(value)


def _count(value: Any, dotted: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReportError(f"{where}: field {dotted!r} must be a whole number >= 0, found {str(value)[:40]!r}")
    return value


def _typed(report: dict, dotted: str, kind: type, where: str) -> Any:
    value = _get(report, dotted, where)
    if not isinstance(value, kind):
        raise ReportError(f"{where}: field {dotted!r} must be a {kind.__name__}, found {type(value).__name__}")
    return value


def check_report(report: Any, where: str = "report") -> None:
    """Refuse a scored report with a missing or mistyped field, or a negative or non-finite metric.

    Checks the fields a leaderboard reads: ``model``, ``release``, ``conventions``, ``num_sequences``,
    ``num_frames``, every headline value (authors' metrics >= 0; CodeTalker's ``lve_sq`` >= 0 and
    ``fdd`` finite), and every per-sequence row (id, frames, metrics). Raises :class:`ReportError`
    naming ``where`` and the field.
    """
    if not isinstance(report, dict):
        raise ReportError(f"{where}: a report is a JSON object, found {type(report).__name__}")
    if report.get("ok") is not True:
        raise ReportError(f"{where}: ({report.get('model', '?')}) was not scored (validation failed)")
    _typed(report, "model", str, where)
    _typed(report, "release", dict, where)
    _typed(report, "submission", dict, where)
    conventions = _typed(report, "conventions", list, where)
    unknown = [c for c in conventions if c not in CONVENTION_LABELS]
    if unknown or "authors" not in conventions:
        raise ReportError(f"{where}: field 'conventions' must list 'authors' and only {sorted(CONVENTION_LABELS)}, found {conventions!r}")
    _count(_get(report, "num_sequences", where), "num_sequences", where)
    _count(_get(report, "num_frames", where), "num_frames", where)
    for convention in conventions:
        values = _typed(report, f"metrics.{convention}.values", dict, where)
        names = METRIC_NAMES if convention == "authors" else [n for n in CODETALKER_NAMES if n in values or n == "lve_sq"]
        for name in names:
            dotted = f"metrics.{convention}.values.{name}.value"
            _number(_get(report, dotted, where), dotted, where, signed=(name == "fdd"))
    rows = _typed(report, "sequences", list, where)
    for index, row in enumerate(rows):
        prefix = f"sequences[{index}]"
        if not isinstance(row, dict):
            raise ReportError(f"{where}: field {prefix!r} must be an object, found {type(row).__name__}")
        if not isinstance(row.get("id"), str) or not row["id"]:
            raise ReportError(f"{where}: field '{prefix}.id' must be a non-empty string")
        _count(_get(row, "num_frames", f"{where} ({prefix}, {row['id']})"), f"{prefix}.num_frames", where)
        for name in (*METRIC_NAMES, *(["lve_sq_sum"] if "codetalker" in conventions else [])):
            _number(_get(row, name, f"{where} ({row['id']})"), f"{prefix}.{name}", where)


def _close(a: float, b: float, rtol: float = CHECK_RTOL) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-15)


def check_consistency(report: dict, where: str = "report") -> None:
    """Refuse a report whose headline numbers disagree with its own per-sequence errors.

    The sequence count, the frame count and every split value are recomputed from ``sequences``
    (authors' metrics: mean over sequences; CodeTalker's ``lve_sq``: pooled over frames; ``fdd``:
    mean) and compared with the stated ones. Call :func:`check_report` first.
    """
    rows = report["sequences"]
    ids = [row["id"] for row in rows]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ReportError(f"{where}: field 'sequences' lists {repeated[0]!r} more than once")
    if report["num_sequences"] != len(rows):
        raise ReportError(
            f"{where}: field 'num_sequences' says {report['num_sequences']}; the report's per-sequence errors cover {len(rows)} sequences"
        )
    frames = sum(row["num_frames"] for row in rows)
    if report["num_frames"] != frames:
        raise ReportError(f"{where}: field 'num_frames' says {report['num_frames']}; its sequences hold {frames}")
    conventions = report["conventions"]
    for convention, name, num, den in _statistics(rows, conventions):
        dotted = f"metrics.{convention}.values.{name}.value"
        stated = report["metrics"][convention]["values"].get(name, {}).get("value")
        if stated is None and name == "fdd":
            continue
        recomputed = _point(num, den)
        if not _close(float(stated), recomputed):
            raise ReportError(f"{where}: field {dotted!r} says {stated!r}; the mean of its per-sequence errors is {recomputed!r}")


# ------------------------------------------------------------------------------------------ comparing


def compare_reports(report: dict, other: dict, *, samples: int | None = None, seed: int | None = None, confidence: float = 0.95) -> dict:
    """Paired comparison of two scored reports on the sequence ids they share.

    For every metric both reports carry, the difference (report - other) of the split statistic
    over the shared ids, and its bootstrap interval from the SAME resamples of the shared ids for
    both (pairing removes the between-sequence variance). A negative difference means ``report``
    has the smaller error; ``verdict`` says whether the interval excludes 0.
    """
    for name, data in (("report", report), ("other", other)):
        if not data.get("ok") or "sequences" not in data:
            raise FormatError(f"cannot compare: the {name} ({data.get('model', '?')}) has no scored sequences")
    mine = {row["id"]: row for row in report["sequences"]}
    theirs = {row["id"]: row for row in other["sequences"]}
    shared = sorted(set(mine) & set(theirs))
    conventions = [c for c in report.get("conventions", ["authors"]) if c in other.get("conventions", ["authors"])]
    if not shared:
        return {
            "other_model": other.get("model", ""),
            "other_submission": other.get("submission", {}).get("path", ""),
            "num_shared": 0,
            "only_here": len(mine),
            "only_there": len(theirs),
            "same_release_versions": False,
            "verdict": "no shared sequences: nothing to compare",
            "values": {},
        }
    bootstrap = report.get("bootstrap", {})
    samples = int(samples if samples is not None else bootstrap.get("samples", 2000))
    seed = int(seed if seed is not None else bootstrap.get("seed", 0))
    a_stats = _statistics([mine[i] for i in shared], conventions)
    b_stats = _statistics([theirs[i] for i in shared], conventions)
    b_by_name = {(c, n): (num, den) for c, n, num, den in b_stats}
    pairs = [(a, b_by_name[(a[0], a[1])]) for a in a_stats if (a[0], a[1]) in b_by_name]
    distribution = bootstrap_ratios(
        [a[2] for a, _ in pairs] + [b[0] for _, b in pairs],
        [a[3] for a, _ in pairs] + [b[1] for _, b in pairs],
        samples=samples,
        seed=seed,
    )
    k = len(pairs)
    values = {}
    for column, ((convention, name, num, den), (other_num, other_den)) in enumerate(pairs):
        a_value, b_value = _point(num, den), _point(other_num, other_den)
        interval = percentile_interval(distribution[:, column] - distribution[:, k + column], confidence)
        if interval[0] > 0:
            verdict = "other is better"
        elif interval[1] < 0:
            verdict = "this is better"
        else:
            verdict = "no significant difference"
        values[name] = {
            "convention": convention,
            "this": a_value,
            "other": b_value,
            "difference": a_value - b_value,
            "difference_scaled": _scaled(a_value - b_value, convention),
            "ci": interval,
            "ci_scaled": [_scaled(v, convention) for v in interval],
            "verdict": verdict,
        }
    same_release = all(
        report["release"].get(key) == other["release"].get(key)
        for key in ("format_version", "splits_version", "codec_version", "region_rule_version")
    )
    return {
        "other_model": other.get("model", ""),
        "other_submission": other.get("submission", {}).get("path", ""),
        "num_shared": len(shared),
        "only_here": len(set(mine) - set(theirs)),
        "only_there": len(set(theirs) - set(mine)),
        "same_release_versions": same_release,
        "bootstrap": {"samples": samples, "seed": seed, "confidence": confidence, "paired": True},
        "values": values,
    }


# ------------------------------------------------------------------------------------------ writing


_MD_SPECIAL = frozenset("\\`*_[]|#!~")
_MD_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def md_escape(text: Any) -> str:
    """``text`` as literal Markdown inline text: one line, no table cells, links, emphasis or HTML.

    Line breaks and control characters become spaces, ``\\ ` * _ [ ] | # ! ~`` get a backslash,
    and ``< > &`` become entities, so a model name cannot add a row, a link or a heading.
    """
    out = []
    for char in " ".join(str(text).splitlines()):
        if char in _MD_ENTITIES:
            out.append(_MD_ENTITIES[char])
        elif char in _MD_SPECIAL:
            out.append("\\" + char)
        elif ord(char) < 32 or ord(char) == 127:
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _fmt_interval(interval: Sequence[float], digits: int = 3) -> str:
    return f"[{_fmt(interval[0], digits)}, {_fmt(interval[1], digits)}]"


def render_markdown(report: dict) -> str:
    """The human-readable report: headline tables, versions, breakdowns, comparisons, notices."""
    lines = [f"# MMFace4D benchmark: {md_escape(report.get('model') or 'unnamed model')}", ""]
    release = report.get("release", {})
    if not report.get("ok"):
        lines += ["**The submission did not pass validation; it was not scored.**", "", "| id | rule | problem |", "| --- | --- | --- |"]
        for issue in report.get("notices", []):
            lines.append(f"| {md_escape(issue['id'] or '(file)')} | {md_escape(issue['rule'])} | {md_escape(issue['message'])} |")
        return "\n".join(lines) + "\n"
    lines += [
        f"Split {md_escape(release.get('split'))} of the release at {md_escape(release.get('path'))}: "
        f"{report['num_sequences']} sequences, {report['num_frames']} frames.",
        "",
        f"Protocol: {report.get('protocol', PROTOCOL_TEXT)}",
        "",
    ]
    bootstrap = report["bootstrap"]
    ci_name = f"{int(round(bootstrap['confidence'] * 100))}% CI"
    for convention in report["conventions"]:
        section = report["metrics"].get(convention)
        if not section:
            continue
        unit, scaled = section["unit"], section["unit_scaled"]
        lines += [
            f"## {_CONVENTION_TITLES[convention]} convention",
            "",
            f"_{section['label']}._",
            "",
            f"| metric | {unit} | {scaled} | {ci_name} ({scaled}) |",
            "| --- | --- | --- | --- |",
        ]
        for name, entry in section["values"].items():
            lines.append(f"| {name} | {entry['value']:.5g} | {_fmt(entry['value_scaled'], 4)} | {_fmt_interval(entry['ci_scaled'], 4)} |")
        lines.append("")
    lines += [
        f"Intervals: {bootstrap['samples']} bootstrap resamples of the sequences (seed {bootstrap['seed']}, "
        f"{bootstrap['interval']} interval).",
        "",
    ]
    for title, key in (("Per emotion", "emotion"), ("Per subject", "subject")):
        table = report["breakdowns"][key]
        columns = [f"{name}_mm" for name in METRIC_NAMES]
        lines += [
            f"## {title} (authors' convention, mm)",
            "",
            f"| {key} | sequences | " + " | ".join(METRIC_NAMES) + " |",
            "| --- | --- |" + " --- |" * len(METRIC_NAMES),
        ]
        for group, entry in table.items():
            lines.append(f"| {md_escape(group)} | {entry['num_sequences']} | " + " | ".join(_fmt(entry[c]) for c in columns) + " |")
        lines.append("")
    for comparison in report.get("comparisons", []):
        if not comparison["num_shared"]:
            lines += [
                f"## Paired comparison against {md_escape(comparison['other_model'] or comparison['other_submission'])}",
                "",
                f"No shared sequences ({comparison['only_here']} here, {comparison['only_there']} there): nothing to compare.",
                "",
            ]
            continue
        lines += [
            f"## Paired comparison against {md_escape(comparison['other_model'] or comparison['other_submission'])}",
            "",
            f"{comparison['num_shared']} shared sequences; difference = this - other "
            f"(negative: this model has the smaller error)."
            + ("" if comparison["same_release_versions"] else " **The two reports differ in release versions.**"),
            "",
            f"| metric | this | other | difference | {ci_name} | verdict |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, entry in comparison["values"].items():
            unit = "mm" if entry["convention"] == "authors" else "mm^2"
            scale = _MM if entry["convention"] == "authors" else _MM2
            lines.append(
                f"| {name} ({unit}) | {_fmt(entry['this'] * scale, 4)} | {_fmt(entry['other'] * scale, 4)} | "
                f"{_fmt(entry['difference_scaled'], 4)} | {_fmt_interval(entry['ci_scaled'], 4)} | {entry['verdict']} |"
            )
        lines.append("")
    lines += ["## Versions", "", "| item | value |", "| --- | --- |"]
    for key in (
        "format_version",
        "splits_version",
        "splits_rule",
        "codec_version",
        "region_rule_version",
        "topology",
        "topology_hash",
        "num_vertices",
        "content_hash",
    ):
        lines.append(f"| {key} | {md_escape(release.get(key)) if release.get(key) is not None else 'n/a'} |")
    header = report.get("submission", {}).get("header") or {}
    header_json = json.dumps(header, indent=2, sort_keys=True).replace("`", "\\u0060")  # cannot close the fence
    lines += ["", "## Submission header", "", "```json", header_json, "```", ""]
    if report.get("notices"):
        lines += (
            ["## Notices", ""]
            + [f"- {md_escape(n['id'] or '(file)')}: {md_escape(n['rule'])}: {md_escape(n['message'])}" for n in report["notices"]]
            + [""]
        )
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null (strict JSON); numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(report: dict, json_path: str | os.PathLike, markdown_path: str | os.PathLike | None = None) -> None:
    """Write the report as JSON (and Markdown when ``markdown_path`` is given), atomically."""
    from mmface4d_datasets.files import atomic_write_bytes

    text = json.dumps(_json_safe(report), indent=1, allow_nan=False) + "\n"
    atomic_write_bytes(json_path, text.encode("utf-8"))
    if markdown_path is not None:
        atomic_write_bytes(markdown_path, render_markdown(report).encode("utf-8"))


def load_report(path: str | os.PathLike) -> dict:
    """Read a report JSON written by :func:`write_report`; FormatError names the file otherwise."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_REPORT_BYTES:  # checked before reading: a report is a few MB at the full release's size
            raise FormatError(f"{path}: {size:,} bytes, more than a report can be ({MAX_REPORT_BYTES:,}); not read")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: not a readable report JSON ({exc})") from None
    except RecursionError:
        raise FormatError(f"{path}: the report JSON is nested too deeply to be a report") from None
    if not isinstance(data, dict) or data.get("kind") != REPORT_KIND:
        raise FormatError(f"{path}: not an MMFace4D benchmark report (kind {data.get('kind') if isinstance(data, dict) else None!r})")
    sequences = data.get("sequences", [])
    if not isinstance(sequences, list) or len(sequences) > MAX_REPORT_SEQUENCES:
        count = len(sequences) if isinstance(sequences, list) else type(sequences).__name__
        raise FormatError(
            f"{path}: 'sequences' holds {count} entries; a report lists at most {MAX_REPORT_SEQUENCES:,} (the release's size)"
        )
    return data


#: Bounds of what `load_report` reads (the leaderboard reads reports from other people): the whole release has
#: 35,904 sequences, and a report of all of them is a few MB.
MAX_REPORT_BYTES = 64 << 20
MAX_REPORT_SEQUENCES = 100_000
