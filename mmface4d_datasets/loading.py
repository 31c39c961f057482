"""`load_dataset`: an MMFace4D release as a Hugging Face `datasets` object, decoded.

Where the release comes from, in this order:
1. `name="mini"`: a small synthetic release (8 subjects x 3 sentences, 1,000 vertices) built on first
   use into `mmface4d_datasets.paths.cache_dir()` (under `HF_HOME`), then reused. Needs no network.
2. `data_dir=...`, else the environment variable `MMFACE4D_DATA_DIR`: a local release folder.
3. `path` naming an existing folder: that release folder.
4. The Hub: repository `path` when it contains "/", else `$MMFACE4D_REPO_ID`, else `DEFAULT_REPO_ID`;
   only the README, `meta/` and the files of the asked config and split are downloaded; with
   `streaming=True` only the README and `meta/`, and the shards are read remotely (`hf://` paths).

What comes back: `datasets.DatasetDict` (no `split`), `Dataset` (a split) or `IterableDataset`
(`streaming=True`). Rows of the default config have the DESIGN.md fields with `vertices` decoded to
(T, N, 3) float32 (metres, canonical head frame), `head_pose` (T, 4, 4) float32 and `audio`
`{"array": float32 samples at 16 kHz, "sampling_rate": 16000}` (resampled when stored at another
rate), as numpy arrays; `.with_format("torch")` gives torch tensors with the same decoding.
`templates` rows: `vertices` (N, 3). `raw` rows: `intrinsics` (C, 3, 3), `extrinsics` (C, 4, 4),
`landmarks` a list of (T, K, 2) arrays, one per camera. `decode=False` keeps the stored bytes.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from mmface4d_datasets.errors import MMFace4DError

DEFAULT_REPO_ID = "mmface4d/mmface4d"
REPO_ENV = "MMFACE4D_REPO_ID"
DATA_DIR_ENV = "MMFACE4D_DATA_DIR"
CONFIGS = ("default", "templates", "raw", "mini")
SAMPLE_RATE = 16000
_TENSOR_FORMATS = {"torch", "pt"}
_PLAIN_FORMATS = {None, "numpy", "np", "python", "torch", "pt"}


class DatasetNotAvailableError(MMFace4DError):
    """No release could be found or downloaded; the message says what to do."""


def load_dataset(path: str = "mmface4d", name: str | None = None, split: str | None = None, streaming: bool = False,
                 data_dir: str | os.PathLike | None = None, revision: str | None = None, *, decode: bool = True):
    """Load an MMFace4D release (see the module docstring for where it is found and what rows hold).

    path: "mmface4d" (the default Hub repo or a local release given by data_dir / MMFACE4D_DATA_DIR),
        a Hub repo id "owner/name", or a release folder.
    name: None or "default" (sequences), "templates", "raw", or "mini" (the default config of the
        small synthetic release, built offline on first use).
    split: "train" or "test" (None: all splits of the release as a DatasetDict).
    streaming: an IterableDataset that reads the shards as it goes.
    revision: Hub revision (branch, tag or commit); ignored for local folders.
    decode: False returns the stored bytes (codec `vertices`, WAV/FLAC `audio`).
    Raises `DatasetNotAvailableError` (with the ways out) when no release can be found.
    """
    config = "default" if name in (None, "default") else name
    if config not in CONFIGS:
        raise MMFace4DError(f"load_dataset: unknown config name {name!r} (known: {', '.join(CONFIGS)})")
    if config == "mini":
        from mmface4d_datasets.release.mini import ensure_mini_release

        folder, config = ensure_mini_release(), "default"
    elif data_dir is not None or os.environ.get(DATA_DIR_ENV):
        folder = Path(data_dir if data_dir is not None else os.environ[DATA_DIR_ENV]).expanduser()
        if not (folder / "meta" / "info.json").is_file():
            given = "data_dir" if data_dir is not None else DATA_DIR_ENV
            raise DatasetNotAvailableError(f"{folder} (from {given}) is not an MMFace4D release folder: it has no "
                                           f"meta/info.json. Build one with `mmface4d build release`.")
    elif path not in ("mmface4d", "") and Path(path).expanduser().is_dir():
        folder = Path(path).expanduser()
    else:
        repo_id = path if "/" in path else os.environ.get(REPO_ENV, DEFAULT_REPO_ID)
        # Streaming downloads only the card and meta/; the shards are read remotely through hf:// paths.
        folder = download_release(repo_id, config, split, revision, metadata_only=streaming)
        if streaming:
            from mmface4d_datasets.release.reader import Release

            remote = hub_stream_files(repo_id, revision, Release(folder).info, config, split)
            return _open_files(remote, config, split, streaming=True, decode=decode)
    return open_release_dataset(folder, config, split, streaming=streaming, decode=decode)


def hub_patterns(config: str, split: str | None) -> list[str]:
    """The `allow_patterns` of a Hub download: card, meta/ and the shards of one config (and split)."""
    patterns = ["README.md", "meta/*"]
    if config == "templates":
        return patterns + ["templates/*.parquet"]
    folder = "raw" if config == "raw" else "data"
    return patterns + [f"{folder}/{split or '*'}/*.parquet"]


def hub_stream_files(repo_id: str, revision: str | None, info: dict, config: str, split: str | None) -> dict[str, list[str]]:
    """`hf://` paths of the shards of one config (per split), from the file list of `meta/info.json`."""
    base = f"hf://datasets/{repo_id}@{revision or 'main'}/"
    if config == "templates":
        return {"train": [base + "templates/templates.parquet"]}
    folder = "raw" if config == "raw" else "data"
    splits = [split] if split is not None else sorted(info.get("splits", {}), key=lambda s: (s != "train", s))
    files = {}
    for name in splits:
        listed = sorted(path for path in info.get("files", {}) if path.startswith(f"{folder}/{name}/"))
        if not listed:
            raise MMFace4DError(f"Hub repository {repo_id!r}: meta/info.json lists no {folder}/{name}/ shards "
                                f"(splits: {sorted(info.get('splits', {}))})")
        files[name] = [base + path for path in listed]
    return files


def download_release(repo_id: str, config: str, split: str | None, revision: str | None, *,
                     metadata_only: bool = False) -> Path:
    """snapshot_download of only the needed files (only README.md and meta/ with `metadata_only`);
    any failure becomes a `DatasetNotAvailableError` saying what to do."""
    patterns = hub_patterns(config, split)[:2] if metadata_only else hub_patterns(config, split)
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(repo_id, repo_type="dataset", revision=revision, allow_patterns=patterns)
    except Exception as exc:  # offline mode, no network, no such repo, gated and not logged in: same ways out
        raise DatasetNotAvailableError(
            f"could not get the MMFace4D release {repo_id!r} from the Hugging Face Hub ({type(exc).__name__}: {exc}). "
            f"Ways out: (1) use a local release: load_dataset('mmface4d', data_dir=PATH) or set {DATA_DIR_ENV}=PATH "
            f"(make one with `mmface4d build release`); (2) use the small synthetic release, built offline: "
            f"load_dataset('mmface4d', name='mini'); (3) for the gated Hub release: accept its conditions at "
            f"https://huggingface.co/datasets/{repo_id}, log in with `hf auth login`, make sure HF_HUB_OFFLINE is not set "
            f"(another repository: set {REPO_ENV})."
        ) from exc
    folder = Path(folder)
    if not (folder / "meta" / "info.json").is_file():
        raise DatasetNotAvailableError(f"Hub repository {repo_id!r} has no meta/info.json: it is not an MMFace4D release")
    return folder


def _data_files(release, config: str, split: str | None) -> dict[str, list[str]]:
    if config == "templates":
        if split not in (None, "train"):
            raise MMFace4DError(f"{release.path}: the templates config has one split, 'train' (asked: {split!r})")
        return {"train": [str(release.path / "templates" / "templates.parquet")]}
    folder = "raw" if config == "raw" else "data"
    splits = [split] if split is not None else release.split_names
    files = {}
    for name in splits:
        shards = release.shards(name, folder)
        if not shards:
            raise MMFace4DError(f"{release.path}: split {name!r} has no {folder}/{name}/shard-*.parquet files")
        files[name] = [str(p) for p in shards]
    return files


def open_release_dataset(folder, config: str = "default", split: str | None = None, *, streaming: bool = False,
                         decode: bool = True):
    """A local release folder's config as DatasetDict / Dataset / IterableDataset with decoding (see `load_dataset`)."""
    from mmface4d_datasets.release.reader import Release

    release = Release(folder)  # checks the format version first
    return _open_files(_data_files(release, config, split), config, split, streaming=streaming, decode=decode)


def _open_files(files: dict[str, list[str]], config: str, split: str | None, *, streaming: bool, decode: bool):
    import datasets

    loaded = datasets.load_dataset("parquet", data_files=files, streaming=streaming)
    decoder = RowDecoder(config, decode)
    result = {name: _decorate(dataset, decoder, streaming) for name, dataset in loaded.items()}
    if split is not None:
        return result[split]
    container = datasets.IterableDatasetDict if streaming else datasets.DatasetDict
    return container(result)


def _decorate(dataset, decoder: "RowDecoder", streaming: bool):
    if streaming:
        return dataset.map(decoder, batched=True, batch_size=8)
    decoded = decoded_dataset_class()(dataset.data, info=dataset.info, split=dataset.split,
                             indices_table=dataset._indices, fingerprint=dataset._fingerprint)
    decoded._row_decoder = decoder
    decoded.set_format("numpy")
    return decoded


class RowDecoder:
    """Batch transform: stored bytes -> arrays for one config; `output` "numpy" or "torch"."""

    def __init__(self, config: str, decode: bool = True, output: str = "numpy"):
        self.config, self.decode, self.output = config, decode, output

    def with_output(self, output: str) -> "RowDecoder":
        return RowDecoder(self.config, self.decode, output)

    def __call__(self, batch: dict) -> dict:
        batch = dict(batch)
        if self.decode:
            if self.config == "default":
                _decode_sequences(batch)
            elif self.config == "templates":
                batch["vertices"] = [np.frombuffer(v, dtype="<f4").reshape(n, 3).copy()
                                     for v, n in zip(batch["vertices"], batch["num_vertices"])]
            elif self.config == "raw":
                _decode_raw(batch)
        if self.output in _TENSOR_FORMATS:
            batch = {key: _to_torch(values) for key, values in batch.items()}
        return batch


def _decode_sequences(batch: dict) -> None:
    from mmface4d_datasets.codec import decode
    from mmface4d_datasets.release.audio import decode_audio, resample
    from mmface4d_datasets.release.reader import head_pose_array

    vertices, poses, audio = [], [], []
    for i, record_id in enumerate(batch["id"]):
        vertices.append(decode(batch["vertices"][i]))
        poses.append(head_pose_array(batch["head_pose"][i], batch["num_frames"][i], f"{record_id}: head_pose"))
        samples, rate = decode_audio(batch["audio"][i], where=f"{record_id}: audio")
        audio.append({"array": resample(samples, rate, SAMPLE_RATE), "sampling_rate": SAMPLE_RATE})
    batch["vertices"], batch["head_pose"], batch["audio"] = vertices, poses, audio
    batch["sample_rate"] = [SAMPLE_RATE] * len(vertices)


def _decode_raw(batch: dict) -> None:
    landmarks = []
    for blob, shapes in zip(batch["landmarks"], batch["landmarks_shape"]):
        flat = np.frombuffer(blob, dtype="<f8")
        arrays, offset = [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            arrays.append(flat[offset:offset + size].reshape(shape).copy())
            offset += size
        landmarks.append(arrays)
    batch["landmarks"] = landmarks
    batch["intrinsics"] = [np.asarray(m, dtype=np.float64).reshape(-1, 3, 3) for m in batch["intrinsics"]]
    batch["extrinsics"] = [np.asarray(m, dtype=np.float64).reshape(-1, 4, 4) for m in batch["extrinsics"]]


def _to_torch(values):
    import torch

    if isinstance(values, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(values))
    if isinstance(values, dict):
        return {key: _to_torch(value) for key, value in values.items()}
    if isinstance(values, list):
        if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            return torch.tensor(values)
        if values and all(isinstance(v, (float, np.floating)) for v in values):
            return torch.tensor(values)
        return [_to_torch(v) for v in values]
    return values


@functools.cache
def decoded_dataset_class():
    """`DecodedDataset`, made on first use (it subclasses `datasets.Dataset`; the import stays lazy)."""
    import datasets

    class DecodedDataset(datasets.Dataset):
        """A `datasets.Dataset` whose plain formats ("numpy", "torch", None) keep the MMFace4D decoding.

        `set_format`/`with_format` with one of those types install the decoding transform with that
        output; other formats (e.g. "pandas", "arrow") show the stored columns as they are.
        """

        _row_decoder: RowDecoder | None = None

        def set_format(self, type=None, columns=None, output_all_columns=False, **format_kwargs):
            if self._row_decoder is not None and type in _PLAIN_FORMATS and not format_kwargs:
                output = "torch" if type in _TENSOR_FORMATS else "numpy"
                return super().set_format("custom", columns=columns, output_all_columns=output_all_columns,
                                          transform=self._row_decoder.with_output(output))
            return super().set_format(type, columns=columns, output_all_columns=output_all_columns, **format_kwargs)

    return DecodedDataset

