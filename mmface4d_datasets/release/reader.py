"""Reading a release folder (docs/architecture.md, `release/`).

`Release(path)` opens a release written by `write_release` (or downloaded from the Hub), checks its
format version, and streams records shard by shard, row group by row group, so that memory holds one
row group at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import numpy as np

from mmface4d_datasets.errors import FormatError, MMFace4DError
from mmface4d_datasets.release.info import INFO_FILE, ReleaseInfo, ReleaseVersionError, check_format_version

__all__ = ["Release", "ReleaseVersionError", "check_format_version"]

_BATCH_ROWS = 8  # records decoded together when streaming


class Release:
    """An opened release folder.

    .info (meta/info.json, a `ReleaseInfo`), .splits (meta/splits.json), .topology (meta/topology.npz arrays),
    .region_masks(), .sequences(split), .iter_records(split, decode), .record(id), .templates(),
    .style_reference(id). Raises `InfoFormatError` (a `FormatError`) for a folder that is not a release or
    whose meta/info.json is incomplete, and `ReleaseVersionError` for another format version.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.info = ReleaseInfo.from_file(self.path / INFO_FILE)
        self._last_group = (None, None)

    def __repr__(self) -> str:
        counts = {split: s.sequences for split, s in self.info.splits.items()}
        return f"Release({str(self.path)!r}, topology={self.info.topology!r}, sequences={counts})"

    @cached_property
    def splits(self) -> dict:
        """The split manifest (meta/splits.json)."""
        path = self.path / "meta" / "splits.json"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FormatError(f"{path}: cannot be read ({exc})") from exc
        if not isinstance(manifest, dict):
            raise FormatError(f"{path}: holds a JSON {type(manifest).__name__}, not the split manifest object (run `mmface4d validate`)")
        for key in ("train", "test"):
            if not isinstance(manifest.get(key, []), list):
                raise FormatError(f"{path}: field {key!r} is not a list of subject ids")
        if not isinstance(manifest.get("style_reference", {}), dict):
            raise FormatError(f"{path}: field 'style_reference' is not an object of sequence ids")
        return manifest

    @cached_property
    def topology(self) -> dict[str, np.ndarray]:
        """Arrays of meta/topology.npz: triangles, keypoints, mask_<name>, name, hash, num_vertices."""
        from mmface4d_datasets.files import read_npz

        path = self.path / "meta" / "topology.npz"
        try:
            arrays = read_npz(path)
        except Exception as exc:  # OSError, ValueError, zipfile.BadZipFile, a damaged member (zlib.error, EOFError)
            raise FormatError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc
        for key in ("triangles", "keypoints"):
            if key not in arrays:
                raise FormatError(f"{path}: has no {key!r} array")
        return arrays

    def region_masks(self) -> dict[str, np.ndarray]:
        """Region name -> int64 vertex ids (lips, upper_face, face, eyes, nose, forehead, chin, cheeks, border)."""
        return {name[len("mask_") :]: ids for name, ids in self.topology.items() if name.startswith("mask_")}

    @property
    def split_names(self) -> list[str]:
        """Splits present in this release ("train" first)."""
        return self.info.split_names

    def shards(self, split: str, config: str = "data") -> list[Path]:
        """The shard files of a split (config "data" or "raw") that meta/info.json lists, sorted; never a glob,
        so a stray copy of a shard beside them is not read."""
        if split not in self.info.splits:
            raise MMFace4DError(f"{self.path}: no split {split!r} (this release has {self.split_names})")
        listed = self.info.splits[split].shards if config == "data" else self.info.listed(f"{config}/{split}/", ".parquet")
        return [self.path / relative for relative in sorted(listed)]

    @cached_property
    def _sequence_table(self):
        import pandas as pd

        path = self.path / "meta" / "sequences.parquet"
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise FormatError(f"{path}: cannot be read ({exc})") from exc

    @cached_property
    def _locations(self) -> dict[str, tuple[str, int]]:
        table = self._sequence_table
        return dict(zip(table["id"], zip(table["shard"], table["row"].astype(int))))

    def sequences(self, split: str | None = None):
        """meta/sequences.parquet as a pandas DataFrame (a copy; only `split`'s rows when given)."""
        table = self._sequence_table
        if split is not None:
            return table[table["split"] == split].reset_index(drop=True)
        return table.copy()

    def iter_records(self, split: str, decode: bool = True) -> Iterator[dict]:
        """Records of a split in id order, streamed row group by row group.

        decode=True: `vertices`, `head_pose`, `audio` decoded (`rows.decode_row`, audio at its stored rate); False: the stored
        bytes. `emotion` is the ClassLabel index (names in `info.emotions`).
        """

        for shard in self.shards(split):
            parquet = self._open_shard(shard)
            row = 0
            batches = parquet.iter_batches(batch_size=_BATCH_ROWS)
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                except Exception as exc:  # a damaged page (CRC, header, compression)
                    raise self._read_error(shard, exc, f"reading past row {row}") from exc
                for record in batch.to_pylist():
                    yield self._decoded(record, shard, row) if decode else self._checked(record, shard, row)
                    row += 1

    def _open_shard(self, shard: Path):
        """`pq.ParquetFile` of a listed shard with page CRCs verified; a `ShardReadError` naming it otherwise."""
        import pyarrow.parquet as pq

        from mmface4d_datasets.release.checksums import PAGE_VERIFICATION
        from mmface4d_datasets.release.integrity import footer_problem

        relative = shard.relative_to(self.path).as_posix()
        entry = self.info.files.get(relative)
        problem = footer_problem(shard, entry.footer_sha256) if entry is not None and shard.is_file() else None
        if problem is not None:
            from mmface4d_datasets.release.integrity import ShardReadError

            raise ShardReadError(f"release {self.path}: {relative}: {problem}; run `mmface4d validate {self.path}`")
        try:
            return pq.ParquetFile(shard, **PAGE_VERIFICATION)
        except Exception as exc:  # missing, not Parquet
            raise self._read_error(shard, exc, "opening") from exc

    def _read_error(self, shard: Path, exc: BaseException, what: str):
        from mmface4d_datasets.release.integrity import ShardReadError, root_cause

        cause = root_cause(exc)
        return ShardReadError(
            f"release {self.path}: {shard.relative_to(self.path).as_posix()}: {what}: cannot be read "
            f"({type(cause).__name__}: {cause}); run `mmface4d validate {self.path}`"
        )

    def _checked(self, stored: dict, shard: Path, row: int) -> dict:
        from mmface4d_datasets.release.rows import verify_row

        verify_row(stored, where=self._where(stored, shard, row))
        return stored

    def record(self, id: str, decode: bool = True) -> dict:
        """One record by id, read from its shard's row group only."""

        if id not in self._locations:
            raise MMFace4DError(f"{self.path}: no sequence with id {id!r}")
        relative, row = self._locations[id]
        shard = self.path / relative
        parquet = self._open_shard(shard)
        start = 0
        for group in range(parquet.num_row_groups):
            count = parquet.metadata.row_group(group).num_rows
            if row < start + count:
                # Keep the last row group read: lookups (style references) tend to hit the same one again.
                if self._last_group[0] != (relative, group):
                    try:
                        self._last_group = ((relative, group), parquet.read_row_group(group))
                    except Exception as exc:  # a damaged page
                        raise self._read_error(shard, exc, f"row group {group}") from exc
                stored = self._last_group[1].slice(row - start, 1).to_pylist()[0]
                if stored["id"] != id:
                    raise FormatError(f"{shard} row {row}: holds {stored['id']!r}, meta/sequences.parquet says {id!r}")
                return self._decoded(stored, shard, row) if decode else self._checked(stored, shard, row)
            start += count
        raise FormatError(f"{shard}: has no row {row} (meta/sequences.parquet points there for {id!r})")

    def _decoded(self, stored: dict, shard: Path, row: int) -> dict:
        from mmface4d_datasets.release.rows import decode_row

        return decode_row(stored, "default", where=self._where(stored, shard, row))

    def _where(self, stored: dict, shard: Path, row: int) -> str:
        return f"release {self.path}: {shard.relative_to(self.path).as_posix()} row {row} (id {stored.get('id')!r})"

    def templates(self) -> dict[str, np.ndarray]:
        """subject_id -> template (N, 3) float32, metres, canonical frame (templates/templates.parquet)."""

        path = self.path / "templates" / "templates.parquet"
        from mmface4d_datasets.release.rows import decode_row

        try:
            rows = self._open_shard(path).read().to_pylist()
        except Exception as exc:  # a damaged page
            if isinstance(exc, MMFace4DError):
                raise
            raise self._read_error(path, exc, "reading") from exc
        result = {}
        for index, row in enumerate(rows):
            decoded = decode_row(row, "templates", where=f"release {self.path}: templates/templates.parquet row {index}")
            result[row["subject_id"]] = decoded["vertices"]
        return result

    def style_reference(self, id: str) -> str:
        """Id of the frozen style reference of a test sequence (meta/splits.json)."""
        try:
            return self.splits["style_reference"][id]
        except KeyError:
            raise MMFace4DError(f"{self.path}: {id!r} has no style reference (only test sequences have one)") from None
