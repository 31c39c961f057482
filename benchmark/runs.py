"""What the ``mmface4d bench`` sub-commands do, as library functions (benchmark/cli.py parses the
arguments, calls one of these and prints its result).

- :func:`score_and_report`: score a submission against a release and write its JSON and Markdown
  reports (``bench score``, and ``bench run`` after its predictions);
- :func:`run_model`: a bundled model's predictions of a split, scored (``bench run``);
- :func:`check_submission`: validate a submission against a release without scoring (``bench validate``);
- :func:`write_submission_from_files`: a folder of ``.npy`` files or an ``.npz`` archive into a
  submission file (``bench write-submission``);
- :func:`leaderboard_from_reports`: the leaderboard of report files, optionally re-scored (``bench leaderboard``).

Notes on the way (validation issues, comparisons without shared sequences, reports left out) are
warnings of this module's logger; the ``mmface4d`` command shows them on stderr.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mmface4d_datasets.errors import MMFace4DError

_log = logging.getLogger(__name__)


@dataclass
class ScoredSubmission:
    """What :func:`score_and_report` did: ``report`` (None when the submission failed validation: then no
    report is written), where the reports are (or would be), and the validation's error count."""

    prediction: Path
    json_path: Path
    markdown_path: Path
    report: dict | None
    release: object  # mmface4d_datasets.release.reader.Release
    num_errors: int = 0

    @property
    def ok(self) -> bool:
        return self.report is not None


def score_and_report(
    prediction: str | os.PathLike,
    release,
    split: str,
    json_path: str | os.PathLike,
    *,
    conventions: tuple[str, ...] = ("authors",),
    bootstrap_samples: int = 2000,
    seed: int = 0,
    progress: bool = True,
    compare: Iterable[str | os.PathLike] = (),
) -> ScoredSubmission:
    """Score ``prediction`` on ``split`` of ``release`` (a folder or a ``Release``) and write the reports
    ``json_path`` and its ``.md`` sibling; each report of ``compare`` is checked and compared with it."""
    from benchmark.report import check_report, compare_reports, load_report, write_report
    from benchmark.scoring import score_submission
    from mmface4d_datasets.release.reader import Release

    prediction, json_path = Path(prediction), Path(json_path)
    release = release if isinstance(release, Release) else Release(release)
    result = score_submission(
        prediction, release, split, conventions=conventions, bootstrap_samples=bootstrap_samples, seed=seed, progress=progress
    )
    markdown_path = json_path.with_suffix(".md")
    if result.report is None:  # a rejected submission: its issues are said, nothing is written
        for issue in result.validation.issues:
            _log.warning("%s", issue)
        return ScoredSubmission(prediction, json_path, markdown_path, None, release, len(result.validation.errors))
    report = result.report
    for other in compare:
        other_report = load_report(other)
        check_report(other_report, str(other))
        comparison = compare_reports(report, other_report)
        if not comparison["num_shared"]:
            _log.warning("--compare %s: no shared sequences with this submission; nothing to compare", other)
        report["comparisons"].append(comparison)
    write_report(report, json_path, markdown_path)
    for issue in result.validation.issues:
        _log.warning("%s", issue)
    return ScoredSubmission(prediction, json_path, markdown_path, report, release)


def parse_model_options(pairs: Sequence[str]) -> dict:
    """``KEY=VALUE`` pairs as model options: a value is read as JSON, else kept as a bare string."""
    import json

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise MMFace4DError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value  # a bare string
    return options


def run_model(
    model: str,
    release_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split: str = "test",
    checkpoint: str | os.PathLike | None = None,
    options: dict | None = None,
    encoding: str = "codec",
    progress: bool = True,
    **scoring,
) -> ScoredSubmission:
    """Run bundled model ``model`` over ``split`` of the release, write ``out/submission.parquet`` and
    score it into ``out/report.json`` (``scoring``: the options of :func:`score_and_report`). ``out``
    must be new, empty or an earlier run's (:mod:`mmface4d_datasets.output_folders`)."""
    from benchmark.models import load_model
    from benchmark.protocol import write_predictions
    from mmface4d_datasets.output_folders import output_folder
    from mmface4d_datasets.release.reader import Release

    out = Path(out)
    with output_folder(out, "bench-run", inputs=[release_dir]):
        loaded = load_model(model, checkpoint, **(options or {}))
        release = Release(release_dir)
        submission = write_predictions(
            loaded,
            release,
            out / "submission.parquet",
            split=split,
            encoding=encoding,
            progress=progress,
            header_extra={"checkpoint": str(checkpoint or "")},
        )
        _log.info("submission: %s", submission)
        return score_and_report(submission, release, split, out / "report.json", progress=progress, **scoring)


def check_submission(prediction: str | os.PathLike, release_dir: str | os.PathLike, split: str = "test"):
    """Validate ``prediction`` against ``split`` of the release (every check, payloads included);
    returns the ``ValidationReport``."""
    from benchmark.scoring import expected_sequences, release_context
    from benchmark.submission import validate_submission
    from mmface4d_datasets.release.reader import Release

    release = Release(release_dir)
    context = release_context(release, split)
    expected = {k: v["num_frames"] for k, v in expected_sequences(release, split).items()}
    return validate_submission(
        prediction, expected, context["num_vertices"], topology=context["topology"], release_format_version=context["format_version"]
    )


def _load_array(where, load):
    """``load()``, with a damaged or pickled array file as an error naming ``where``."""
    import pickle
    import zipfile

    from benchmark.submission import SubmissionError

    try:
        return load()
    except (ValueError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, KeyError) as exc:
        text = str(exc)
        if "allow_pickle" in text:
            text = "it holds Python objects (object dtype), which would need unpickling; save float32 arrays"
        raise SubmissionError(f"{where}: not a readable numeric .npy array ({text})") from None


def _iter_npy_predictions(root: Path) -> Iterator:
    """(id, array) of every <subject>/<take>.npy below ``root``, in id order; never unpickles."""
    import numpy as np

    files = sorted(root.rglob("*.npy"))
    if not files:
        raise MMFace4DError(f"{root}: no .npy files (expected <subject_id>/<take_id>.npy)")
    for path in files:
        yield path.relative_to(root).with_suffix("").as_posix(), _load_array(path, lambda: np.load(path, allow_pickle=False))  # noqa: B023 (called at once)


def _iter_npz_predictions(path: Path) -> Iterator:
    import numpy as np

    archive = _load_array(path, lambda: np.load(path, allow_pickle=False))
    if not hasattr(archive, "files"):
        from benchmark.submission import SubmissionError

        raise SubmissionError(f"{path}: not an .npz archive (a single array; use a folder of .npy files)")
    with archive:
        for key in sorted(archive.files):
            yield key, _load_array(f"{path} [{key}]", lambda: archive[key])  # noqa: B023 (called at once)


def read_prediction_files(source: str | os.PathLike) -> Iterator:
    """(id, array) pairs, in id order, of a folder of ``<subject_id>/<take_id>.npy`` files or of an
    ``.npz`` archive keyed by id; numeric arrays only (nothing is unpickled)."""
    source = Path(source)
    if source.is_dir():
        return _iter_npy_predictions(source)
    if source.suffix == ".npz" and source.is_file():
        return _iter_npz_predictions(source)
    raise MMFace4DError(f"{source}: expected a folder of .npy files or an .npz file")


def write_submission_from_files(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str,
    release_dir: str | os.PathLike | None = None,
    release_format_version: str | None = None,
    url: str = "",
    inputs: Sequence[str] = (),
    hardware: str = "",
    split: str = "test",
    encoding: str = "codec",
    max_error: float = 1e-5,
):
    """Write the predictions of ``source`` (:func:`read_prediction_files`) into the submission ``out``.

    The header states the release format: read from the release ``release_dir`` when given (which
    also names the topology, and the written file is then validated against its ``split``), else
    ``release_format_version``. Returns ``(path, validation report or None)``.
    """
    from benchmark.submission import make_header, validate_submission, write_submission

    predictions = read_prediction_files(source)
    release = None
    format_version, topology = release_format_version, ""
    if release_dir:
        from mmface4d_datasets.release.reader import Release

        release = Release(release_dir)
        format_version = release.info.format_version
        topology = release.info.topology
    if not format_version:
        raise MMFace4DError("give --data RELEASE or --release-format-version (the header states the release format)")
    header = make_header(
        model, release_format_version=format_version, url=url, inputs=list(inputs), hardware=hardware, topology=topology, split=split
    )
    path = write_submission(out, predictions, header, encoding=encoding, max_error=max_error)
    if release is None:
        return path, None
    from benchmark.scoring import expected_sequences

    expected = {k: v["num_frames"] for k, v in expected_sequences(release, split).items()}
    report = validate_submission(
        path, expected, release.info.num_vertices, topology=topology, release_format_version=format_version, check_payloads=False
    )
    return path, report


def leaderboard_from_reports(
    paths: Sequence[str | os.PathLike],
    *,
    release_dir: str | os.PathLike | None = None,
    submission_dir: str | os.PathLike | None = None,
    include_paper: bool = True,
):
    """``(ranked, references)`` of the scored reports among ``paths`` (a report that was not scored is left
    out, with a warning). With ``release_dir`` every report is re-scored from its submission against
    that release (:func:`benchmark.leaderboard.verify_report`) and marked verified."""
    from benchmark.leaderboard import build_leaderboard, verify_report
    from benchmark.report import load_report

    release = None
    if release_dir:
        from mmface4d_datasets.release.reader import Release

        release = Release(release_dir)
    elif submission_dir:
        raise MMFace4DError("--submissions needs --data RELEASE (the submissions are re-scored against it)")
    reports, sources, verified = [], [], []
    for path in paths:
        report = load_report(path)
        if not report.get("ok"):
            _log.warning("%s: not scored (validation failed); left out", path)
            continue
        if release is not None:
            verify_report(report, str(path), release, submission_dir=submission_dir)
            _log.info("%s: re-scored from its submission; the numbers agree", path)
        reports.append(report)
        sources.append(str(path))
        verified.append(release is not None)
    if not reports:
        raise MMFace4DError("no scored report among the given files")
    return build_leaderboard(reports, sources=sources, include_paper=include_paper, verified=verified)
