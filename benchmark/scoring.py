"""Scoring: a streaming scorer over sequences, and a submission scored against a release.

:class:`Scorer` is the thin stateful wrapper around :mod:`benchmark.metrics`: ``update`` takes one
sequence (ground truth, prediction), keeps one small row per sequence (for the means, the
bootstrap and the breakdowns) and nothing else, so a split is never held in memory at once.

:func:`score_submission` validates a submission file against a release and scores it in one
pass over the release's records (one ground-truth sequence and one prediction in memory).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark import metrics
from benchmark.protocol import emotion_name
from benchmark.submission import (
    Issue,
    SubmissionError,
    ValidationReport,
    check_declared,
    open_submission,
    read_prediction,
)

if TYPE_CHECKING:
    from mmface4d_datasets.release import Release
    from mmface4d_datasets.release.info import ReleaseInfo

#: Conventions a report can carry: the authors' (always) and CodeTalker's (on request).
CONVENTIONS = ("authors", "codetalker")


@dataclass
class SequenceRow:
    """The per-sequence results the split scores are made of.

    ``lip_max``, ``lip_mean``, ``upper_max``, ``face_max``: the authors' metrics (metres).
    ``lve_sq_sum``: sum over the scored frames of max over lips of the squared distance (m^2),
    so that CodeTalker's pooled LVE is sum(lve_sq_sum) / sum(num_frames).
    ``fdd``: the sequence's upper-face dynamics deviation (m^2), None when not computed.
    ``num_frames``: frames scored; ``trimmed_frames``: frames dropped to match lengths.
    """

    id: str
    subject_id: str
    emotion: str
    num_frames: int
    trimmed_frames: int
    lip_max: float
    lip_mean: float
    upper_max: float
    face_max: float
    lve_sq_sum: float
    fdd: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class Scorer:
    """Accumulates per-sequence rows; :meth:`summary` gives the split scores.

    Args:
        lips, upper_face: vertex index arrays of the benchmark's regions.
        fdd: also compute CodeTalker's FDD (needs a template per sequence; costs a second,
            smaller pass over the upper-face vertices).
    """

    def __init__(self, lips: np.ndarray, upper_face: np.ndarray, *, fdd: bool = False):
        self.lips = np.sort(np.asarray(lips)).astype(np.intp)
        self.upper_face = np.sort(np.asarray(upper_face)).astype(np.intp)
        self.compute_fdd = bool(fdd)
        self.rows: list[SequenceRow] = []

    def update(
        self,
        sequence_id: str,
        gt: np.ndarray,
        pred: np.ndarray,
        *,
        subject_id: str = "",
        emotion: str = "",
        template: np.ndarray | None = None,
    ) -> SequenceRow:
        """Score one sequence. Lengths that differ are cut to the shorter (the caller decides
        whether a difference is allowed; the submission validator allows one frame)."""
        num_frames = min(len(gt), len(pred))
        trimmed = max(len(gt), len(pred)) - num_frames
        gt, pred = gt[:num_frames], pred[:num_frames]
        frames = metrics.frame_errors(gt, pred, self.lips, self.upper_face)
        errors = frames.sequence_errors()
        fdd = None
        if self.compute_fdd:
            if template is None:
                raise ValueError(f"{sequence_id}: FDD needs the subject's template")
            fdd = metrics.upper_face_dynamics_deviation(gt, pred, template, self.upper_face)
        row = SequenceRow(
            id=str(sequence_id),
            subject_id=str(subject_id),
            emotion=str(emotion),
            num_frames=num_frames,
            trimmed_frames=trimmed,
            lve_sq_sum=float(frames.lip_max_sq.sum()),
            fdd=fdd,
            **errors,
        )
        self.rows.append(row)
        return row

    def summary(self) -> dict[str, Any]:
        """Split scores: the authors' means over sequences (metres) and CodeTalker's pooled LVE
        (m^2) and mean FDD (m^2, None unless computed). Empty when no sequence was scored."""
        return summarise(self.rows)


def summarise(rows: list[SequenceRow]) -> dict[str, Any]:
    """Split scores of ``rows`` (see :meth:`Scorer.summary`)."""
    if not rows:
        return {"num_sequences": 0, "num_frames": 0, "authors": {}, "codetalker": {}}
    frames = sum(row.num_frames for row in rows)
    authors = {name: float(np.mean([getattr(row, name) for row in rows])) for name in metrics.METRIC_NAMES}
    fdd_values = [row.fdd for row in rows if row.fdd is not None]
    codetalker = {
        "lve_sq": float(sum(row.lve_sq_sum for row in rows) / frames),
        "fdd": float(np.mean(fdd_values)) if len(fdd_values) == len(rows) else None,
    }
    return {"num_sequences": len(rows), "num_frames": frames, "authors": authors, "codetalker": codetalker}


def non_finite_fields(row: SequenceRow) -> list[str]:
    """Names of the row's error values that are NaN or infinite."""
    names = (*metrics.METRIC_NAMES, "lve_sq_sum", "fdd")
    return [name for name in names if getattr(row, name) is not None and not np.isfinite(getattr(row, name))]


@dataclass
class ScoreResult:
    """What :func:`score_submission` returns: the validation outcome and, when it passed, the report."""

    validation: ValidationReport
    report: dict | None


def release_context(release: "Release", split: str) -> dict[str, Any]:
    """The versions a report must state: release format, splits manifest, codec, region rule, topology.

    From the release's `ReleaseInfo` (meta/info.json), its split manifest (meta/splits.json) and, for the
    region rule, its topology file (meta/topology.npz)."""
    info = release.info
    splits = dict(release.splits or {})

    def first(mapping: dict, *keys: str) -> Any:
        for key in keys:
            if mapping.get(key) not in (None, ""):
                return mapping[key]
        return None

    return {
        "path": str(getattr(release, "path", "")),
        "split": split,
        "format_version": info.format_version,
        "splits_version": first(splits, "version", "splits_version"),
        "splits_rule": first(splits, "rule"),
        "codec_version": info.codec_version,
        "region_rule_version": _topology_value(release, "region_rule_version"),
        "topology": info.topology,
        "topology_hash": info.topology_hash,
        "num_vertices": info.num_vertices,
        "content_hash": content_hash(info),
    }


#: The fields of :func:`release_context` that identify a release's content: reports that differ in
#: any of them were scored against different data and are never ranked together.
RELEASE_IDENTITY = (
    "format_version",
    "splits_version",
    "codec_version",
    "region_rule_version",
    "topology",
    "topology_hash",
    "num_vertices",
    "content_hash",
    "split",
)


def content_hash(info: "ReleaseInfo") -> str | None:
    """sha256 over the (path, sha256) list of every file meta/info.json checksums (None when it lists none).

    Two releases with the same content hash hold the same shards, splits and topology bytes
    (``mmface4d validate`` checks the files against these checksums).
    """
    import hashlib

    if not info.files:
        return None
    lines = "".join(f"{name}\t{entry.sha256}\n" for name, entry in sorted(info.files.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _topology_value(release: "Release", key: str) -> Any:
    topology = getattr(release, "topology", None) or {}
    value = topology.get(key) if isinstance(topology, dict) else None
    if value is None:
        return None
    return str(np.asarray(value).reshape(-1)[0]) if isinstance(value, np.ndarray) else str(value)


def expected_sequences(release: "Release", split: str) -> dict[str, dict]:
    """id -> {num_frames, subject_id, emotion} of the split, from the light per-sequence table."""
    table = release.sequences(split)
    return {
        str(row["id"]): {
            "num_frames": int(row["num_frames"]),
            "subject_id": str(row["subject_id"]),
            "emotion": emotion_name(row.get("emotion")),
        }
        for row in table.to_dict("records")
    }


def score_submission(
    submission_path: str | os.PathLike,
    release: "Release",
    split: str = "test",
    *,
    conventions: tuple[str, ...] = ("authors",),
    bootstrap_samples: int = 2000,
    seed: int = 0,
    progress: bool = False,
) -> ScoreResult:
    """Validate ``submission_path`` against ``release``'s ``split`` and score it.

    Every declared property is checked before any payload is read (ids, sizes, header, row-group
    byte counts); then the release's records are streamed and each valid prediction is read,
    checked (size, codec header, decodable, finite) and scored against its ground truth.
    When any error remains, ``report`` is None and ``validation`` lists every issue by id.
    Never raises for a bad submission file.
    """
    from benchmark.report import build_report

    unknown = sorted(set(conventions) - set(CONVENTIONS))
    if unknown:
        raise ValueError(f"unknown convention(s) {unknown}; use {CONVENTIONS}")
    context = release_context(release, split)
    expected = expected_sequences(release, split)
    num_vertices = context["num_vertices"]
    submission = open_submission(submission_path)
    if submission.usable:
        check_declared(
            submission,
            {k: v["num_frames"] for k, v in expected.items()},
            num_vertices,
            topology=context["topology"],
            release_format_version=context["format_version"],
        )

    def validation() -> ValidationReport:
        return ValidationReport(str(submission_path), submission.header, submission.issues, len(submission.rows))

    def fail_payload(issue: Issue, sequence_id: str) -> None:
        submission.issues.append(issue)
        del submission.rows[sequence_id]

    if not submission.usable or any(issue.severity == "error" for issue in submission.issues):
        # Not scoreable: still check the remaining payloads so that every violation is listed.
        for sequence_id in list(submission.rows):
            try:
                read_prediction(submission, sequence_id)
            except SubmissionError as exc:
                fail_payload(exc.issue, sequence_id)
        submission.close()
        return ScoreResult(validation(), None)

    masks = release.region_masks()
    want_fdd = "codetalker" in conventions
    templates = release.templates() if want_fdd else {}
    scorer = Scorer(masks["lips"], masks["upper_face"], fdd=want_fdd)
    records = release.iter_records(split)
    if progress:
        from tqdm import tqdm

        records = tqdm(records, total=len(expected), desc="scoring", unit="seq")
    for record in records:
        sequence_id = str(record["id"])
        if sequence_id not in submission.rows:
            continue
        try:
            prediction = read_prediction(submission, sequence_id)
        except SubmissionError as exc:
            fail_payload(exc.issue, sequence_id)
            continue
        subject = str(record["subject_id"])
        with np.errstate(over="ignore", invalid="ignore"):
            row = scorer.update(
                sequence_id,
                record["vertices"],
                prediction,
                subject_id=subject,
                emotion=emotion_name(record.get("emotion")),
                template=templates.get(subject),
            )
        overflowed = non_finite_fields(row)
        if overflowed:  # finite coordinates whose errors are not (e.g. 1e20 m): not a valid score
            scorer.rows.pop()
            submission.issues.append(
                Issue(
                    sequence_id,
                    "non_finite_score",
                    f"the prediction's errors are not finite ({', '.join(overflowed)}): its "
                    f"coordinates reach {float(np.abs(prediction).max()):.3g} m; predictions are "
                    "in metres, in the canonical head frame",
                )
            )
    submission.close()
    result = validation()
    if not result.ok:
        return ScoreResult(result, None)
    from mmface4d_datasets.files import sha256_file

    report = build_report(
        scorer.rows,
        release=context,
        header=submission.header,
        conventions=conventions,
        validation=result,
        bootstrap_samples=bootstrap_samples,
        seed=seed,
        submission_path=str(Path(submission_path).resolve()),
        submission_sha256=sha256_file(submission_path),
    )
    return ScoreResult(result, report)
