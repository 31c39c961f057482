"""The release writer: sources in, a release folder out (DESIGN.md, A release)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mmface4d_datasets.release.schema import BuildReport, SequenceSource, TopologyInfo

DEFAULT_SHARD_SIZE_BYTES = 256 * 2**20
DEFAULT_ROW_GROUP_SIZE_BYTES = 128 * 2**20


def write_release(
    sources: Iterable[SequenceSource],
    out_dir: str | Path,
    *,
    topology: TopologyInfo,
    seed: int = 0,
    max_error: float = 1e-5,
    shard_size_bytes: int = DEFAULT_SHARD_SIZE_BYTES,
    row_group_size_bytes: int = DEFAULT_ROW_GROUP_SIZE_BYTES,
    on_error: str = "stop",
    progress: bool = True,
    card_info: dict | None = None,
    keep_staging: bool = False,
) -> BuildReport:
    """Write a release folder from `sources` (contract; the implementation lands next).

    Stages: (1) each source is loaded, checked and staged atomically under `out_dir/.staging/`
    (a rerun skips staged keys without loading them); (2) per subject a template and the canonical
    head frame; (3) each take's vertices moved into that frame (`head_pose` keeps the rigid motion)
    and encoded with the codec at `max_error` metres per coordinate; (4) splits, shards
    (`data/{split}/shard-XXXXX.parquet`, `raw/...`, `templates/templates.parquet`), `meta/` and the
    card. Same inputs -> byte-identical files. `on_error="stop"` raises naming the take,
    `"skip"` leaves it out and lists it in the report. Returns a `BuildReport`.
    """
    raise NotImplementedError("write_release: the implementation lands in the next commit")
