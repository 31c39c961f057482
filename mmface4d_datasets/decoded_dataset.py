"""The datasets `load_dataset` returns: thin wrappers that HOLD a plain `datasets` object and decode rows.

Why a wrapper and not a subclass of `datasets.Dataset` (measured with datasets 5.2, docs/loading.md):
`with_format(...)` replaces a transform set with `set_transform`, so `.select(...).with_format("torch")`
hands out the stored codec bytes; `map(lambda r: r)` over decoded rows stores vertices as nested float
lists; there is no public way to register a decoding feature type; and a subclass has to copy private
attributes (`_indices`, `_fingerprint`) that operations returning a new dataset drop. LeRobot's dataset
takes the same way out: it keeps a `datasets.Dataset` as `hf_dataset` and decodes in its own
`__getitem__`. Here:

- `MMFace4DDataset` holds `hf_dataset` (a plain `datasets.Dataset` of stored columns, python format),
  a picklable `RowDecoder` and an output format. Every operation users chain (shuffle, select, filter,
  sort, remove_columns, rename_column(s), select_columns, train_test_split, shard, take, skip, map,
  flatten_indices, to_iterable_dataset, with_format / set_format / reset_format) runs on `hf_dataset`
  and comes back wrapped, so the decoding survives any order of operations.
- Formats: "numpy" (the default; also None, "np", "python"): decoded numpy arrays, other fields as
  Python values; "torch" ("pt"): the same decoding as torch tensors (needs the `torch` extra);
  "pandas" and "arrow": the STORED columns (codec bytes, WAV/FLAC bytes), because those formats are
  tables of columns by nature; decode a row of them with `mmface4d_datasets.release.rows.decode_row`.
- `filter` / `map` functions see decoded rows (fields decoded on first access, so a filter on `emotion`
  never decodes vertices); `map` stores what the function returns: new columns as `datasets` stores
  them, decoded fields it returns (vertices, head_pose, audio) encoded back to their stored form
  (vertices by the codec at the release's bound), so the result decodes like the original.
- `MMFace4DIterableDataset` does the same around a `datasets.IterableDataset` (streaming), decoding
  each row as it is yielded (a shuffle buffer holds stored rows, not decoded ones).
- `MMFace4DDatasetDict` / `MMFace4DIterableDatasetDict`: dicts of those, applying operations per split.
- `concatenate_datasets` and `split_dataset_by_node` unwrap, call `datasets`' function and wrap again.

All of it pickles (module-level classes, no closures), so DataLoader workers started with `spawn` work.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, MutableMapping

import numpy as np

from mmface4d_datasets.vocabulary import SAMPLE_RATE
from mmface4d_datasets.release.checksums import CHECKSUM_COLUMN, mismatched_columns, refreshed
from mmface4d_datasets.release.rows import DECODED_FIELDS, RowDecodeError, decode_row, encode_fields, verify_row
from mmface4d_datasets.release.schema import DATA_COLUMNS, RAW_COLUMNS, TEMPLATE_COLUMNS

#: Columns that a `checksums` struct covers, per config.
_CHECKED = {
    config: tuple(c for c in columns if c != CHECKSUM_COLUMN)
    for config, columns in (("default", DATA_COLUMNS), ("raw", RAW_COLUMNS), ("templates", TEMPLATE_COLUMNS))
}

_DECODED_FORMATS = {None: "numpy", "numpy": "numpy", "np": "numpy", "python": "numpy", "torch": "torch", "pt": "torch"}
_STORED_FORMATS = {"pandas", "arrow", "pd", "pa", "polars"}


class RowDecoder:
    """Stored row -> decoded row for one config, with column renames applied; picklable.

    config: "default", "templates" or "raw". decode: False hands rows out as stored.
    release: the release folder (to name shard and row when a value does not decode).
    sample_rate: audio is resampled to it (16 kHz for the loader). max_error: codec bound used when a
    `map` function returns decoded vertices. names: current column name -> the format's field name.
    """

    def __init__(
        self,
        config: str = "default",
        decode: bool = True,
        release: str | None = None,
        sample_rate: int | None = SAMPLE_RATE,
        max_error: float = 1e-5,
        names: dict | None = None,
    ):
        self.config, self.decode, self.release = config, decode, release
        self.sample_rate, self.max_error = sample_rate, max_error
        self.names = dict(names or {})

    def renamed(self, mapping: dict) -> "RowDecoder":
        """The decoder after `rename_columns(mapping)`: it still finds each field under its new name."""
        names = {mapping.get(current, current): field for current, field in self.names.items()}
        for old, new in mapping.items():
            if old not in self.names:
                names[new] = old
        return RowDecoder(
            self.config, self.decode, self.release, self.sample_rate, self.max_error, {k: v for k, v in names.items() if k != v}
        )

    def _to_field_names(self, row: Mapping) -> dict:
        return {self.names.get(key, key): value for key, value in row.items()}

    def _from_field_names(self, row: Mapping) -> dict:
        back = {field: current for current, field in self.names.items()}
        return {back.get(key, key): value for key, value in row.items()}

    def row(self, stored: Mapping) -> dict:
        """A decoded copy of one stored row (as stored, checksums checked, when `decode` is False)."""
        fields = self._to_field_names(stored)
        try:
            if not self.decode:
                if mismatched_columns(fields):
                    verify_row(fields, where=self.where(fields))
                return dict(stored)
            decoded = decode_row(fields, self.config, where=self.where(fields), sample_rate=self.sample_rate)
        except RowDecodeError as exc:
            if self.release is not None:
                raise type(exc)(f"{exc} -- run `mmface4d validate {self.release}` to check the whole release") from exc
            raise
        return self._from_field_names(decoded)

    def checksums_after_map(self, output: Mapping, before: Mapping | None) -> dict | None:
        """`output` (a map function's row, stored forms, current names) with its `checksums` brought up to date
        from the stored row `before`: digests of changed values recomputed, the rest kept. A row whose old
        checksums are not at hand (input_columns) and whose checked columns changed is left unchecked (None)."""
        fields = self._to_field_names(output)
        new = refreshed(fields, self._to_field_names(before) if before is not None else None)
        back = {field: current for current, field in self.names.items()}
        name = back.get(CHECKSUM_COLUMN, CHECKSUM_COLUMN)
        if new is not None:
            return {**output, name: new}
        if before is not None and CHECKSUM_COLUMN in self._to_field_names(before):
            return dict(output)  # the input row holds no checksums (a 1.0 row, or None after an earlier map)
        checked = [f for f in fields if f != CHECKSUM_COLUMN and f in _CHECKED.get(self.config, ())]
        return {**output, name: None} if checked else dict(output)

    def where(self, fields: Mapping) -> str:
        """Names the row for an error: release, shard, row and id (shard and row from meta/sequences.parquet)."""
        record_id = fields.get("id", fields.get("subject_id"))
        text = f"release {self.release}" if self.release else "row"
        location = _locate(self.release, record_id) if self.release and self.config == "default" else None
        if location is not None:
            text += f": {location[0]} row {location[1]}"
        return f"{text} (id {record_id!r})"

    def encode(self, values: Mapping) -> dict:
        """Stored form of decoded fields a `map` function returned (`encode_fields`), under current names."""
        return self._from_field_names(encode_fields(self._to_field_names(values), self.config, max_error=self.max_error))

    def is_decoded_column(self, name: str) -> bool:
        return self.decode and self.names.get(name, name) in DECODED_FIELDS.get(self.config, ())


def _locate(release: str, record_id) -> tuple[str, int] | None:
    """(shard, row) of `record_id` from meta/sequences.parquet; None when it cannot be found.

    Only called to word an error message, so it reads the table then and there."""
    try:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        table = pq.read_table(f"{release}/meta/sequences.parquet", columns=["id", "shard", "row"])
        hit = table.filter(pc.equal(table["id"], str(record_id))).to_pylist()
        return (hit[0]["shard"], int(hit[0]["row"])) if hit else None
    except Exception:  # the message is still useful without the location
        return None


# --------------------------------------------------------------------------- output formats


def _torch_values(values):
    from mmface4d_datasets.extras import require

    torch = require("torch", "torch", 'with_format("torch")')
    return _to_torch(values, torch)


def _to_torch(values, torch):
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "biuf":
            return torch.from_numpy(np.ascontiguousarray(values))
        return values.tolist()
    if isinstance(values, Mapping):
        return {key: _to_torch(value, torch) for key, value in values.items()}
    if isinstance(values, (list, tuple)):
        if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            return torch.tensor([int(v) for v in values])
        if values and all(isinstance(v, (float, np.floating)) for v in values):
            return torch.tensor([float(v) for v in values])
        return [_to_torch(v, torch) for v in values]
    if isinstance(values, (bool, np.bool_)):
        return torch.tensor(bool(values))
    if isinstance(values, (int, np.integer)):
        return torch.tensor(int(values))
    if isinstance(values, (float, np.floating)):
        return torch.tensor(float(values))
    return values


def _output(values, output: str):
    return _torch_values(values) if output == "torch" else values


def _rows_to_columns(rows: list[dict], columns: list[str]) -> dict:
    return {name: [row[name] for row in rows] for name in columns}


def _columns_to_rows(batch: Mapping) -> list[dict]:
    names = list(batch.keys())
    count = len(batch[names[0]]) if names else 0
    return [{name: batch[name][i] for name in names} for i in range(count)]


def _check_format(type) -> str:
    """The output kind of a format name; "torch" needs the torch extra (the error names it)."""
    if type in _DECODED_FORMATS:
        if _DECODED_FORMATS[type] == "torch":
            from mmface4d_datasets.extras import require

            require("torch", "torch", f"with_format({type!r})")
        return _DECODED_FORMATS[type]
    if type in _STORED_FORMATS:
        return type
    raise ValueError(f"unknown format {type!r}: numpy (default), torch, pandas or arrow (pandas and arrow give the stored columns)")


# --------------------------------------------------------------------------- what map/filter functions see


class DecodedRow(MutableMapping):
    """One row as a `map` / `filter` function sees it: stored fields decoded on first access."""

    def __init__(self, stored: Mapping, decoder: RowDecoder):
        self.stored, self.decoder = dict(stored), decoder
        self.decoded: dict = {}
        self.assigned: dict = {}

    def __getitem__(self, key):
        if key in self.assigned:
            return self.assigned[key]
        if key in self.decoded:
            return self.decoded[key]
        if key not in self.stored:
            raise KeyError(key)
        if self.decoder.is_decoded_column(key):
            needed = {k: v for k, v in self.stored.items() if not self.decoder.is_decoded_column(k) or k == key}
            self.decoded[key] = self.decoder.row(needed)[key]
            return self.decoded[key]
        return self.stored[key]

    def __setitem__(self, key, value):
        self.assigned[key] = value

    def __delitem__(self, key):
        raise TypeError("a decoded row does not drop fields: use remove_columns")

    def __iter__(self):
        return iter({**self.stored, **self.assigned})

    def __len__(self):
        return len({**self.stored, **self.assigned})

    def result(self) -> dict:
        """What a map function that returns this row hands back: stored values unless read or assigned."""
        return {**self.stored, **self.decoded, **self.assigned}


class DecodedBatch(Mapping):
    """A batch (column -> values) as a batched function sees it: a decoded column is decoded on first access."""

    def __init__(self, stored: Mapping, decoder: RowDecoder):
        self.stored, self.decoder, self.decoded = {k: list(v) for k, v in stored.items()}, decoder, {}

    def __getitem__(self, key):
        if key in self.decoded:
            return self.decoded[key]
        values = self.stored[key]
        if self.decoder.is_decoded_column(key):
            plain = {k: v for k, v in self.stored.items() if not self.decoder.is_decoded_column(k) or k == key}
            values = [self.decoder.row(row)[key] for row in _columns_to_rows(plain)]
            self.decoded[key] = values
        return values

    def __iter__(self):
        return iter(self.stored)

    def __len__(self):
        return len(self.stored)


class _Function:
    """A user's map/filter function made to see decoded rows; picklable (module level, no closure)."""

    def __init__(self, function, decoder: RowDecoder, batched: bool, input_columns, is_map: bool, has_checksums: bool = False):
        self.function, self.decoder, self.batched = function, decoder, batched
        self.input_columns, self.is_map, self.has_checksums = input_columns, is_map, has_checksums

    def __call__(self, *args):
        if self.input_columns is not None:  # the function takes column values positionally
            names = [self.input_columns] if isinstance(self.input_columns, str) else list(self.input_columns)
            count = len(names)
            stored = dict(zip(names, args[:count]))
            view = DecodedBatch(stored, self.decoder) if self.batched else DecodedRow(stored, self.decoder)
            result = self.function(*[view[name] for name in names], *args[count:])
        else:
            view = DecodedBatch(args[0], self.decoder) if self.batched else DecodedRow(args[0], self.decoder)
            result = self.function(view, *args[1:])
        if not self.is_map or result is None:
            return result
        if isinstance(result, DecodedRow):
            result = result.result()
        elif isinstance(result, DecodedBatch):
            result = {**result.stored, **result.decoded}
        if not isinstance(result, Mapping):
            return result
        if self.batched:
            before = _columns_to_rows(view.stored) if self.input_columns is None else [None] * len(_columns_to_rows(result))
            rows = [self._checked(self.decoder.encode(row), old) for row, old in zip(_columns_to_rows(result), before)]
            return _rows_to_columns(rows, list(rows[0])) if rows else dict(result)
        return self._checked(self.decoder.encode(result), view.stored if self.input_columns is None else None)

    def _checked(self, output: dict, before: Mapping | None) -> dict:
        if not self.has_checksums:
            return output
        return self.decoder.checksums_after_map(output, before)


class _Operations:
    """The operations map-style and streaming datasets share: each runs on `hf_dataset` and is wrapped again
    (subclasses define `_wrap(hf_dataset, decoder=None, columns=None)`)."""

    def shuffle(self, *args, **kwargs):
        return self._wrap(self.hf_dataset.shuffle(*args, **kwargs))

    def shard(self, *args, **kwargs):
        return self._wrap(self.hf_dataset.shard(*args, **kwargs))

    def take(self, n: int):
        return self._wrap(self.hf_dataset.take(n))

    def skip(self, n: int):
        return self._wrap(self.hf_dataset.skip(n))

    def remove_columns(self, column_names):
        return self._wrap(self.hf_dataset.remove_columns(column_names))

    def select_columns(self, column_names):
        return self._wrap(self.hf_dataset.select_columns(column_names))

    def rename_column(self, original_column_name: str, new_column_name: str):
        return self.rename_columns({original_column_name: new_column_name})

    def rename_columns(self, column_mapping: dict):
        """Renamed columns; a renamed stored field (e.g. `vertices` -> `mesh`) is still decoded."""
        columns = [column_mapping.get(c, c) for c in self.columns] if self.columns is not None else None
        return self._wrap(self.hf_dataset.rename_columns(column_mapping), self.decoder.renamed(column_mapping), columns)

    def filter(self, function=None, with_indices: bool = False, input_columns=None, batched: bool = False, **kwargs):
        """Rows for which `function` is true; it sees decoded rows (fields decoded on first access)."""
        wrapped = None if function is None else _Function(function, self.decoder, batched, input_columns, is_map=False)
        return self._wrap(
            self.hf_dataset.filter(wrapped, with_indices=with_indices, input_columns=input_columns, batched=batched, **kwargs)
        )

    def map(self, function=None, with_indices: bool = False, input_columns=None, batched: bool = False, **kwargs):
        """Apply `function` to decoded rows and store what it returns (module docstring: decoded fields it
        returns are encoded back to their stored form; new columns are stored as `datasets` stores them)."""
        known = self.column_names or list(self.features or ())  # a streamed dataset may know only its features
        has_checksums = CHECKSUM_COLUMN in {self.decoder.names.get(c, c) for c in known}
        wrapped = None if function is None else _Function(function, self.decoder, batched, input_columns, True, has_checksums)
        return self._wrap(self.hf_dataset.map(wrapped, with_indices=with_indices, input_columns=input_columns, batched=batched, **kwargs))


# --------------------------------------------------------------------------- map-style


class MMFace4DDataset(_Operations):
    """A split of a release: a plain `datasets.Dataset` (`hf_dataset`) plus the decoding (module docstring).

    `dataset[i]` -> a decoded row dict; `dataset[a:b]` / `dataset[[i, j]]` -> a dict of columns (lists of
    decoded values); `dataset["name"]` -> that column as a list (decoded when it is a stored field).
    """

    def __init__(self, hf_dataset, decoder: RowDecoder | None = None, format: str | None = "numpy", columns: list[str] | None = None):
        formatted = hf_dataset.format
        if formatted.get("type") is not None or formatted.get("columns") not in (None, hf_dataset.column_names):
            hf_dataset = hf_dataset.with_format(None)  # rows are read as stored Python values
        self.hf_dataset = hf_dataset
        self.decoder = decoder or RowDecoder()
        self.format = _check_format(format)
        self.columns = list(columns) if columns is not None else None

    def _wrap(self, hf_dataset, decoder: RowDecoder | None = None, columns=None):
        if columns is None and self.columns is not None:
            columns = [c for c in self.columns if c in hf_dataset.column_names]
        return MMFace4DDataset(hf_dataset, decoder or self.decoder, self.format, columns)

    def __repr__(self) -> str:
        return (
            f"MMFace4DDataset(config={self.decoder.config!r}, format={self.format!r}, num_rows={self.num_rows}, "
            f"columns={self.column_names})"
        )

    # reading ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.hf_dataset.num_rows

    @property
    def num_rows(self) -> int:
        return self.hf_dataset.num_rows

    @property
    def column_names(self) -> list[str]:
        return self.hf_dataset.column_names

    @property
    def features(self):
        """The STORED features (binary `vertices`, `audio`, `head_pose`)."""
        return self.hf_dataset.features

    @property
    def split(self):
        return self.hf_dataset.split

    @property
    def info(self):
        return self.hf_dataset.info

    def _select_output(self, row: dict) -> dict:
        return {k: v for k, v in row.items() if k in self.columns} if self.columns is not None else row

    def _decoded_rows(self, stored_batch: Mapping) -> list[dict]:
        return [self._select_output(self.decoder.row(row)) for row in _columns_to_rows(stored_batch)]

    def __getitem__(self, key):
        if self.format in _STORED_FORMATS:
            return self.hf_dataset.with_format(self.format, columns=self.columns)[key]
        if isinstance(key, str):
            return self._column(key)
        if isinstance(key, (int, np.integer)):
            return _output(self._select_output(self.decoder.row(self.hf_dataset[int(key)])), self.format)
        stored = self.hf_dataset[key]  # slice, range, list or array of indices
        rows = self._decoded_rows(stored)
        names = list(rows[0]) if rows else [c for c in stored if self.columns is None or c in self.columns]
        return _output(_rows_to_columns(rows, names), self.format)

    def __getitems__(self, keys: list) -> list[dict]:
        """Rows for a list of indices, read together (torch's DataLoader calls this for a batch)."""
        rows = self._decoded_rows(self.hf_dataset[list(keys)])
        return [_output(row, self.format) for row in rows]

    def _column(self, name: str):
        if name not in self.hf_dataset.column_names:
            raise KeyError(f"column {name!r} is not in this dataset (columns: {self.hf_dataset.column_names})")
        if self.decoder.is_decoded_column(name):
            needed = [c for c in self.hf_dataset.column_names if c == name or not self.decoder.is_decoded_column(c)]
            stored = self.hf_dataset.select_columns(needed)[:]
            values = [self.decoder.row(row)[name] for row in _columns_to_rows(stored)]
        else:
            values = list(self.hf_dataset[name])
        return _output(values, self.format)

    def __iter__(self):
        for batch in self.hf_dataset.iter(batch_size=16):  # read 16 stored rows at a time, decode one by one
            for stored in _columns_to_rows(batch):
                yield _output(self._select_output(self.decoder.row(stored)), self.format)

    def iter(self, batch_size: int, drop_last_batch: bool = False):
        """Decoded batches (dicts of columns) of `batch_size` rows."""
        for batch in self.hf_dataset.iter(batch_size=batch_size, drop_last_batch=drop_last_batch):
            rows = self._decoded_rows(batch)
            yield _output(_rows_to_columns(rows, list(rows[0]) if rows else []), self.format)

    def to_pandas(self, *args, **kwargs):
        """The STORED columns as a pandas DataFrame (as `with_format("pandas")`)."""
        return self.hf_dataset.to_pandas(*args, **kwargs)

    # formats -----------------------------------------------------------------------------------
    def with_format(self, type: str | None = None, columns: list[str] | None = None, output_all_columns: bool = False, **format_kwargs):
        """A new dataset with that output format (module docstring); `columns` restricts the output."""
        if format_kwargs:
            raise TypeError(f"with_format: unsupported options {sorted(format_kwargs)}")
        kind = _check_format(type)
        return MMFace4DDataset(self.hf_dataset, self.decoder, kind, None if output_all_columns else columns)

    def set_format(
        self, type: str | None = None, columns: list[str] | None = None, output_all_columns: bool = False, **format_kwargs
    ) -> None:
        """In place: as `with_format`."""
        other = self.with_format(type, columns, output_all_columns, **format_kwargs)
        self.format, self.columns = other.format, other.columns

    def reset_format(self) -> None:
        self.format, self.columns = "numpy", None

    @property
    def format_type(self) -> str:
        return self.format

    # operations that return a dataset (more in _Operations) -------------------------------------
    def select(self, *args, **kwargs):
        return self._wrap(self.hf_dataset.select(*args, **kwargs))

    def sort(self, *args, **kwargs):
        return self._wrap(self.hf_dataset.sort(*args, **kwargs))

    def flatten_indices(self, *args, **kwargs):
        return self._wrap(self.hf_dataset.flatten_indices(*args, **kwargs))

    def train_test_split(self, *args, **kwargs) -> "MMFace4DDatasetDict":
        parts = self.hf_dataset.train_test_split(*args, **kwargs)
        return MMFace4DDatasetDict({name: self._wrap(part) for name, part in parts.items()})

    def to_iterable_dataset(self, num_shards: int = 1) -> "MMFace4DIterableDataset":
        return MMFace4DIterableDataset(
            self.hf_dataset.to_iterable_dataset(num_shards=num_shards),
            self.decoder,
            self.format if self.format in _DECODED_FORMATS.values() else "numpy",
            self.columns,
        )


class MMFace4DDatasetDict(dict):
    """Split name -> `MMFace4DDataset`; operations apply to every split. `.hf_dataset`: a `datasets.DatasetDict`."""

    @property
    def hf_dataset(self):
        import datasets

        return datasets.DatasetDict({name: split.hf_dataset for name, split in self.items()})

    @property
    def num_rows(self) -> dict:
        return {name: split.num_rows for name, split in self.items()}

    @property
    def column_names(self) -> dict:
        return {name: split.column_names for name, split in self.items()}

    def set_format(self, *args, **kwargs) -> None:
        for split in self.values():
            split.set_format(*args, **kwargs)


def _per_split(method: str):
    def apply(self, *args, **kwargs):
        return type(self)({name: getattr(split, method)(*args, **kwargs) for name, split in self.items()})

    apply.__name__ = method
    apply.__doc__ = f"`{method}` applied to every split."
    return apply


for _method in ("with_format", "shuffle", "filter", "map", "sort", "remove_columns", "select_columns", "rename_column", "rename_columns"):
    setattr(MMFace4DDatasetDict, _method, _per_split(_method))


# --------------------------------------------------------------------------- streaming


def _torch_iterable_base():
    """torch's IterableDataset when torch is already imported (so DataLoader treats us as iterable); else None.
    (`_Operations` is the base other than `object` that lets `__bases__` grow at run time.)

    Same approach as `datasets` itself: never import torch for this, add the base only when torch is there."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch.utils.data.IterableDataset
    except AttributeError:
        return None


def _named_read_errors(rows, decoder: RowDecoder):
    """`rows`, with a failure of the underlying reader (pyarrow's error for a damaged page or a broken
    connection, as `datasets` passes it on) raised as a `ShardReadError` naming the release and, for a
    local release, the damaged shard."""
    from mmface4d_datasets.errors import MMFace4DError

    while True:
        try:
            stored = next(rows)
        except StopIteration:
            return
        except MMFace4DError:
            raise
        except Exception as exc:
            raise _stream_failure(decoder, exc) from exc
        yield stored


def _stream_failure(decoder: RowDecoder, exc: Exception):
    from pathlib import Path

    from mmface4d_datasets.release.integrity import ShardReadError, read_failure, root_cause

    if decoder.release is not None and (Path(decoder.release) / "meta" / "info.json").is_file():
        from mmface4d_datasets.release.reader import Release

        try:
            release = Release(decoder.release)
            folder = {"raw": "raw/", "templates": "templates/"}.get(decoder.config, "data/")
            return read_failure(release, release.info.listed(folder, ".parquet"), exc, "streaming")
        except Exception:  # the release itself no longer opens: the read error alone names the failure
            pass
    cause = root_cause(exc)
    return ShardReadError(f"release {decoder.release or '?'}: streaming: a shard cannot be read ({type(cause).__name__}: {cause})")


class MMFace4DIterableDataset(_Operations):
    """A streamed split: a plain `datasets.IterableDataset` (`hf_dataset`) decoded row by row as it is read."""

    def __init__(self, hf_dataset, decoder: RowDecoder | None = None, format: str | None = "numpy", columns: list[str] | None = None):
        base = _torch_iterable_base()
        if base is not None and base not in MMFace4DIterableDataset.__bases__:
            MMFace4DIterableDataset.__bases__ += (base,)
        self.hf_dataset = hf_dataset
        self.decoder = decoder or RowDecoder()
        self.format = _check_format(format)
        self.columns = list(columns) if columns is not None else None

    def _wrap(self, hf_dataset, decoder: RowDecoder | None = None, columns=None):
        return MMFace4DIterableDataset(hf_dataset, decoder or self.decoder, self.format, columns if columns is not None else self.columns)

    def __repr__(self) -> str:
        return f"MMFace4DIterableDataset(config={self.decoder.config!r}, format={self.format!r}, n_shards={self.n_shards})"

    def __iter__(self):
        if self.format in _STORED_FORMATS:
            yield from self.hf_dataset.with_format(self.format)
            return
        for stored in _named_read_errors(iter(self.hf_dataset), self.decoder):
            row = self.decoder.row(stored)
            if self.columns is not None:
                row = {k: v for k, v in row.items() if k in self.columns}
            yield _output(row, self.format)

    @property
    def n_shards(self) -> int:
        return self.hf_dataset.num_shards

    @property
    def column_names(self):
        return self.hf_dataset.column_names

    @property
    def features(self):
        return self.hf_dataset.features

    def set_epoch(self, epoch: int) -> None:
        self.hf_dataset.set_epoch(epoch)

    def with_format(self, type: str | None = None, columns: list[str] | None = None):
        kind = _check_format(type)
        return MMFace4DIterableDataset(self.hf_dataset, self.decoder, kind, columns)


class MMFace4DIterableDatasetDict(dict):
    """Split name -> `MMFace4DIterableDataset`. `.hf_dataset`: a `datasets.IterableDatasetDict`."""

    @property
    def hf_dataset(self):
        import datasets

        return datasets.IterableDatasetDict({name: split.hf_dataset for name, split in self.items()})


for _method in ("with_format", "shuffle", "filter", "map", "remove_columns", "select_columns", "rename_column", "rename_columns"):
    setattr(MMFace4DIterableDatasetDict, _method, _per_split(_method))


# --------------------------------------------------------------------------- functions of datasets, wrapped


def _same_decoder(parts) -> RowDecoder:
    decoders = {(p.decoder.config, p.decoder.decode, tuple(sorted(p.decoder.names.items()))) for p in parts}
    if len(decoders) != 1:
        raise ValueError("concatenate_datasets: the datasets come from different configs or column names")
    return parts[0].decoder


def concatenate_datasets(dsets: list, **kwargs):
    """`datasets.concatenate_datasets` for MMFace4D datasets (map-style or streaming), decoding kept."""
    import datasets

    if not dsets:
        raise ValueError("concatenate_datasets: no datasets given")
    decoder = _same_decoder(dsets)
    joined = datasets.concatenate_datasets([d.hf_dataset for d in dsets], **kwargs)
    cls = MMFace4DIterableDataset if isinstance(dsets[0], MMFace4DIterableDataset) else MMFace4DDataset
    return cls(joined, decoder, dsets[0].format, dsets[0].columns)


def split_dataset_by_node(dataset, rank: int, world_size: int):
    """`datasets.distributed.split_dataset_by_node` for MMFace4D datasets, decoding kept.

    Streaming: node `rank` reads whole shards when the split's shard count divides by `world_size`
    (releases are cut into a multiple of 8 shards for that, docs/release_format.md); otherwise every
    node reads every shard and keeps 1 row in `world_size`."""
    from datasets.distributed import split_dataset_by_node as split

    return dataset._wrap(split(dataset.hf_dataset, rank=rank, world_size=world_size))
