"""Run a build: sources in, the core's release writer, a build report out.

:func:`build_release` (the authors' layout) and :func:`build_synthetic_release` (the embedded
generator) both hand their takes to ``mmface4d_datasets.release.writer.write_release``, which owns
staging, resume (with its stale-build check on the sources' fingerprints), determinism and atomic
shards. What this module adds is the report: every take left out under ``on_error="skip"`` is
listed by id with its reason, in the returned
:class:`BuildSummary` and in ``<out>/.build-report.json`` (hidden, so never pushed to the Hub).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from builders.sources import DEFAULT_DURATION_TOLERANCE_S, scan_source
from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.release.card import SYNTHETIC_CARD_INFO
from mmface4d_datasets.files import atomic_write_bytes, json_bytes

REPORT_NAME = ".build-report.json"
#: What the build in a folder was asked to make (hidden, never pushed): a rerun with other parameters is refused.
PARAMETERS_NAME = ".build-parameters.json"
ON_ERROR = ("stop", "skip")


@dataclass(frozen=True)
class SkippedTake:
    take_id: str
    reason: str


@dataclass
class BuildSummary:
    """What a build did (also written, as JSON, to ``<out>/.build-report.json``)."""

    out_dir: str
    source: str
    topology: str
    sequences: list[str]
    split_counts: dict[str, int]
    skipped: list[SkippedTake] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    manifest_unmatched: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)  # takes of withdrawn actors, left out

    def as_dict(self) -> dict:
        return asdict(self) | {"num_sequences": len(self.sequences), "num_skipped": len(self.skipped)}


def _check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise MMFace4DError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")


def _writer_options(max_error: float | None, shard_size_bytes: int | None) -> dict:
    """Only the options the caller set: the writer's own defaults stay the single source of truth."""
    options = {}
    if max_error is not None:
        if not (math.isfinite(max_error) and max_error >= 0):
            raise MMFace4DError(f"--max-error must be a finite number of metres >= 0, got {max_error}")
        options["max_error"] = float(max_error)
    if shard_size_bytes is not None:
        if shard_size_bytes <= 0:
            raise MMFace4DError(f"--shard-size must be positive, got {shard_size_bytes} bytes")
        options["shard_size_bytes"] = int(shard_size_bytes)
    return options


class _InProcess:
    """The default executor: this process, threads pinned (made on first use: imports stay lazy)."""

    def map(self, function, items, **options):
        from reconstruction.executor import Executor

        return Executor(workers=1).map(function, items, **options)


def _map_with_progress(executor, progress: bool):
    """The writer's ``map``, with a progress bar per pass when ``progress``."""

    def run(function, items):
        description = "release: " + function.__name__.strip("_").replace("_job", "").replace("_", " ")
        return executor.map(function, items, progress=progress, description=description)

    return run


_IN_PROCESS = _InProcess()


def run_writer(
    sources,
    out_dir,
    *,
    topology,
    source_description: str,
    on_error: str,
    seed: int,
    progress: bool,
    writer_options: dict,
    manifest_unmatched=(),
    card_info: dict | None = None,
    withdrawn=(),
    inputs=(),
    executor=None,
    parameters: dict | None = None,
    overwrite: bool = False,
) -> BuildSummary:
    """Hand ``sources`` to the core's writer and turn its report into a :class:`BuildSummary`.

    ``parameters``: what the caller was asked to build (JSON-able), kept in ``out/.build-parameters.json``;
    a folder holding a build of other parameters is refused (:func:`check_build_parameters`) unless
    ``overwrite``, which replaces it. A rerun with the same parameters resumes or rebuilds in place.

    ``card_info``: extra dataset-card fields for the writer (``pretty_name``, ...); ``source`` is
    always ``source_description``. ``inputs``: folders read by the build; ``out_dir`` may not be one
    of them or inside one. The output folder is taken under the rule of
    :mod:`mmface4d_datasets.output_folders` (new, empty or this package's own release; locked).
    ``executor``: a ``reconstruction.executor.Executor`` whose workers load, check and encode the
    takes (default: this process). Either way each take is made with one BLAS / torch thread, so
    the release's bytes do not depend on the executor.
    """
    from mmface4d_datasets.output_folders import output_folder
    from mmface4d_datasets.release.writer import RELEASE_KIND, write_release

    _check_on_error(on_error)
    out = Path(out_dir)
    sources = list(sources)
    with output_folder(out, RELEASE_KIND, inputs=inputs) as output:
        if parameters is not None:
            check_build_parameters(out, output, parameters | {"writer": _all_writer_options(writer_options)}, overwrite=overwrite)
        summary = _write_and_report(
            sources,
            out,
            output,
            topology=topology,
            source_description=source_description,
            on_error=on_error,
            seed=seed,
            progress=progress,
            writer_options=writer_options,
            manifest_unmatched=manifest_unmatched,
            card_info=card_info,
            write_release=write_release,
            withdrawn=withdrawn,
            executor=executor,
        )
    return summary


def _all_writer_options(writer_options: dict) -> dict:
    """The codec bound and shard size of ``writer_options``, the writer's own defaults filled in (so that giving
    a default explicitly changes nothing)."""
    from mmface4d_datasets.release.writer import DEFAULT_MAX_ERROR, DEFAULT_SHARD_SIZE_BYTES

    defaults = {"max_error": DEFAULT_MAX_ERROR, "shard_size_bytes": DEFAULT_SHARD_SIZE_BYTES}
    return {key: writer_options.get(key, default) for key, default in defaults.items()}


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{key}: {old.get(key)!r} then, {new.get(key)!r} now" for key in keys if old.get(key) != new.get(key)]


def check_build_parameters(out: Path, output, parameters: dict, *, overwrite: bool = False) -> None:
    """Refuse to write over a build of other ``parameters`` in ``out`` (unless ``overwrite``); record them.

    The record is ``out/.build-parameters.json`` (listed in the folder's ownership marker, so it is
    removed with the release and never pushed). A folder of an earlier version without a record is
    taken as it is. Raises ``OutputFolderError`` naming the folder, what differs and the ways out.
    """
    import json

    from mmface4d_datasets.output_folders import OutputFolderError

    record = out / PARAMETERS_NAME
    normalised = json.loads(json_bytes(parameters))
    previous = None
    if not output.new and record.is_file():
        try:
            previous = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = None  # unreadable: treated like an older build without a record
    if isinstance(previous, dict) and previous != normalised and not overwrite:
        changed = "; ".join(_differences(previous, normalised))
        raise OutputFolderError(
            f"{out}: holds a release built with other parameters ({changed}); nothing was changed. Rerun with the "
            "same parameters to resume or rebuild it, give another --out, or add --overwrite to replace it."
        )
    output.will_write(record)
    atomic_write_bytes(record, json_bytes(normalised))


def _write_and_report(
    sources,
    out: Path,
    output,
    *,
    topology,
    source_description,
    on_error,
    seed,
    progress,
    writer_options,
    manifest_unmatched,
    card_info,
    write_release,
    withdrawn,
    executor=None,
) -> BuildSummary:
    card_info = (card_info or {}) | {"source": source_description}
    report = write_release(
        sources,
        out,
        output=output,
        topology=topology,
        seed=seed,
        on_error=on_error,
        progress=progress,
        card_info=card_info,
        map=_map_with_progress(executor or _IN_PROCESS, progress),
        **writer_options,
    )
    # Statistics figures into meta/figures/, meta/info.json and the card (only with matplotlib, the viz extra).
    from builders.stats import add_figures_to_release

    add_figures_to_release(out, card_info, progress=progress, output=output)
    summary = BuildSummary(
        out_dir=str(out),
        source=source_description,
        topology=topology.name,
        sequences=list(report.sequences),
        split_counts=dict(report.split_counts),
        skipped=[SkippedTake(str(key), str(message)) for key, message in report.skipped],
        resumed=list(report.resumed),
        manifest_unmatched=list(manifest_unmatched),
        withdrawn=list(withdrawn),
    )
    output.will_write(out / REPORT_NAME)
    atomic_write_bytes(out / REPORT_NAME, json_bytes(summary.as_dict()))
    return summary


def build_release(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    manifest: str | os.PathLike | None = None,
    bfm_info: str | os.PathLike | None = None,
    on_error: str = "stop",
    raw: bool = True,
    seed: int = 0,
    max_error: float | None = None,
    shard_size_bytes: int | None = None,
    progress: bool = True,
    duration_tolerance_s: float = DEFAULT_DURATION_TOLERANCE_S,
    withdrawals: str | os.PathLike | None = None,
    executor=None,
    overwrite: bool = False,
) -> BuildSummary:
    """Build a release in ``out_dir`` from the takes under ``source`` (the authors' layout).

    ``withdrawals``: a withdrawal list (``capture_rig.consent``; a consent registry folder or its
    ``withdrawals.json``): every take whose subject is on it is left out of the release, and the
    summary lists those takes under ``withdrawn``.

    See :func:`builders.sources.scan_source` for ``manifest``, ``bfm_info``, ``raw`` and the checks.
    ``on_error``: ``"stop"`` raises the first bad take's error (naming it); ``"skip"`` leaves bad
    takes out and lists them in the summary and the build report. ``seed`` fixes the split and the
    style references; ``max_error`` (metres per coordinate) and ``shard_size_bytes`` default to the
    writer's. Rerunning after an interruption resumes the build. ``executor``: see :func:`run_writer`.
    ``out_dir`` holding a build of other arguments is refused unless ``overwrite`` (:func:`check_build_parameters`).
    """
    from mmface4d_datasets.output_folders import refuse_inside_inputs

    _check_on_error(on_error)
    writer_options = _writer_options(max_error, shard_size_bytes)
    refuse_inside_inputs(out_dir, [source])
    plan = scan_source(source, manifest=manifest, bfm_info=bfm_info, raw=raw, duration_tolerance_s=duration_tolerance_s, progress=progress)
    withdrawn = _leave_out_withdrawn(plan, withdrawals) if withdrawals is not None else []
    if on_error == "stop" and plan.problems:
        # Fail before anything is written, naming every take the scan found bad.
        listed = [plan.problems[key] for key in sorted(plan.problems)]
        more = f"\n  ... and {len(listed) - 20} more" if len(listed) > 20 else ""
        raise MMFace4DError(
            f"{source}: {len(listed)} take(s) cannot be built (--on-error skip leaves them out):\n  " + "\n  ".join(listed[:20]) + more
        )
    return run_writer(
        plan.sources,
        out_dir,
        topology=plan.topology,
        source_description=f"takes in the authors' layout ({len(plan.sources)} found)",
        on_error=on_error,
        seed=seed,
        progress=progress,
        writer_options=writer_options,
        manifest_unmatched=plan.manifest_unmatched,
        withdrawn=withdrawn,
        inputs=[source],
        executor=executor,
        parameters={
            "command": "release",
            "source": _absolute(source),
            "manifest": _absolute(manifest),
            "bfm_info": _absolute(bfm_info),
            "raw": bool(raw),
            "withdrawals": _absolute(withdrawals),
            "seed": int(seed),
        },
        overwrite=overwrite,
    )


def _absolute(path) -> str | None:
    return None if path is None else str(Path(path).resolve())


def build_faceformer_release(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    faces: str | os.PathLike | None = None,
    keypoints: str | os.PathLike | None = None,
    fps: int | None = None,
    manifest: str | os.PathLike | None = None,
    topology_name: str | None = None,
    on_error: str = "stop",
    seed: int = 0,
    max_error: float | None = None,
    shard_size_bytes: int | None = None,
    progress: bool = True,
    duration_tolerance_s: float = DEFAULT_DURATION_TOLERANCE_S,
    executor=None,
    overwrite: bool = False,
) -> BuildSummary:
    """Build a release in ``out_dir`` from a FaceFormer-layout folder ``source`` (``vertices_npy/``, ``wav/``,
    ``templates.pkl``; see :mod:`builders.faceformer_source` for ``faces``, ``keypoints``, ``fps``,
    ``manifest`` and ``topology_name``). The other options as :func:`build_release`."""
    from builders.faceformer_source import scan_faceformer_folder
    from mmface4d_datasets.output_folders import refuse_inside_inputs

    _check_on_error(on_error)
    writer_options = _writer_options(max_error, shard_size_bytes)
    refuse_inside_inputs(out_dir, [source])
    plan = scan_faceformer_folder(
        source,
        faces=faces,
        keypoints=keypoints,
        fps=fps,
        manifest=manifest,
        topology_name=topology_name,
        duration_tolerance_s=duration_tolerance_s,
    )
    if on_error == "stop" and plan.problems:
        listed = [plan.problems[key] for key in sorted(plan.problems)]
        raise MMFace4DError(
            f"{source}: {len(listed)} sequence(s) cannot be built (--on-error skip leaves them out):\n  " + "\n  ".join(listed[:20])
        )
    return run_writer(
        plan.sources,
        out_dir,
        topology=plan.topology,
        source_description=f"a FaceFormer-layout folder ({len(plan.sources)} sequences)",
        on_error=on_error,
        seed=seed,
        progress=progress,
        writer_options=writer_options | {"given_templates": plan.templates},
        inputs=[source],
        executor=executor,
        parameters={
            "command": "faceformer",
            "source": _absolute(source),
            "faces": _absolute(faces),
            "keypoints": _absolute(keypoints),
            "fps": fps,
            "manifest": _absolute(manifest),
            "topology": plan.topology.name,
            "seed": int(seed),
        },
        overwrite=overwrite,
    )


def _leave_out_withdrawn(plan, withdrawals) -> list[str]:
    """Drop from ``plan.sources`` the takes of actors on the withdrawal list; returns their take ids."""
    from capture_rig.consent import read_withdrawals

    actors = read_withdrawals(withdrawals)
    out = [s.key for s in plan.sources if s.metadata is not None and s.metadata.subject_id in actors]
    plan.sources = [s for s in plan.sources if s.key not in set(out)]
    if not plan.sources:
        raise MMFace4DError(f"{plan.root}: every take belongs to a withdrawn actor ({len(out)} left out); nothing to build")
    return out


def build_synthetic_release(
    out_dir: str | os.PathLike,
    *,
    subjects: int,
    sentences: int,
    seed: int = 0,
    num_vertices: int | None = None,
    on_error: str = "stop",
    max_error: float | None = None,
    shard_size_bytes: int | None = None,
    progress: bool = True,
    executor=None,
    overwrite: bool = False,
) -> BuildSummary:
    """Build a release of ``subjects`` x ``sentences`` synthetic takes made in memory by the core's
    generator (see :mod:`mmface4d_datasets.release.synthetic_source`); ``seed`` drives both the generator and the split.
    ``out_dir`` holding a build of other arguments is refused unless ``overwrite`` (:func:`check_build_parameters`)."""
    from mmface4d_datasets.release.synthetic_source import synthetic_sources

    _check_on_error(on_error)
    writer_options = _writer_options(max_error, shard_size_bytes)
    sources, topology = synthetic_sources(subjects=subjects, sentences=sentences, seed=seed, num_vertices=num_vertices)
    return run_writer(
        sources,
        out_dir,
        topology=topology,
        source_description=f"synthetic takes ({subjects} subjects x {sentences} sentences, seed {seed})",
        on_error=on_error,
        seed=seed,
        progress=progress,
        writer_options=writer_options,
        card_info=SYNTHETIC_CARD_INFO | {"pretty_name": "MMFace4D synthetic (generated, no real person)"},
        executor=executor,
        parameters={
            "command": "synthetic",
            "subjects": int(subjects),
            "sentences": int(sentences),
            "topology": topology.name,
            "seed": int(seed),
        },
        overwrite=overwrite,
    )
