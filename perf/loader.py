"""Loading speed and size of a release against raw float32 .npy files (DESIGN.md, Performance: loading).

Builds two releases from copies of the authors' sample take (each copy a different take of one
subject, BFM front topology, 35,709 vertices), one with the NEW vertex codec (format 3, the default)
and one with the OLD (format 2, `write_release(..., codec_version="2")`), writes the same canonical
frames as one raw float32 `.npy` per take, warms the page cache by reading every file once, then
measures frames per second delivered as torch tensors by a `torch.utils.data.DataLoader` with 1 and
2 workers (batch size 1, one sequence per item), for:
- `release_new` / `release_old`: `load_dataset(data_dir=..., split="train").with_format("torch")`
  (shard read + codec decode + audio decode at 16 kHz);
- `npy`: a map-style dataset doing `torch.from_numpy(np.load(path))`.
The three loaders run one after the other for each worker count, in the same process.
In-process rates (no DataLoader: codec decode alone for each format, one dataset item, np.load)
attribute the cost. Also: shard bytes per frame (whole shard: vertices, audio, head pose, metadata),
vertex bytes per frame, .npy bytes per frame, for both releases. Prints one JSON object.

    .venv/bin/python perf/loader.py [--copies 10] [--epochs 3] [--max-error 1e-5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BFM_VERTICES = 35709


def fixture_sources(fixture: Path, copies: int):
    """(sources, topology): `copies` takes of subject "sample" that are the fixture take."""
    import scipy.io

    from mmface4d_datasets import official
    from mmface4d_datasets.facemodel import REGION_RULE_VERSION, region_masks
    from mmface4d_datasets.release.schema import CallableSource, SourceSequence, TopologyInfo

    info = scipy.io.loadmat(fixture / "BFM" / "facemodel_info.mat")
    triangles = info["tri"].astype(np.int64) - 1
    keypoints = info["keypoints"].reshape(-1).astype(np.int64) - 1
    masks = region_masks(triangles, keypoints, BFM_VERTICES)
    topology = TopologyInfo(
        "bfm_front", BFM_VERTICES, triangles, keypoints, {k: np.asarray(v, np.int64) for k, v in masks.items()}, REGION_RULE_VERSION
    )
    take = official.read_take(fixture)
    vertices = take.vertices(BFM_VERTICES)
    samples, rate = official.read_audio(take.audio)

    def source(index: int):
        take_id = f"{900000 + index:06d}"
        return CallableSource(
            take_id,
            lambda: SourceSequence(
                take_id=take_id,
                subject_id="sample",
                sentence_id="00001",
                vertices=vertices,
                audio=samples,
                sample_rate=rate,
                audio_subtype="FLOAT",
                topology="bfm_front",
            ),
        )

    return [source(i) for i in range(copies)], topology


def build_fixture_release(release_dir: Path, copies: int, max_error: float = 1e-5):
    """Write the release of `fixture_sources` into `release_dir`; returns (topology, build seconds), or
    None (after printing the skip as JSON) when the authors' sample take is absent."""
    from mmface4d_datasets.paths import official_sample_dir
    from mmface4d_datasets.release.writer import write_release

    fixture = official_sample_dir()
    if fixture is None:
        print(json.dumps({"skipped": "the authors' sample take is absent; set MMFACE4D_FIXTURES"}))
        return None
    sources, topology = fixture_sources(fixture, copies)
    start = time.perf_counter()
    write_release(sources, release_dir, topology=topology, max_error=max_error, progress=False)
    return topology, time.perf_counter() - start


def vertices_only(batch):
    """Collate for batch size 1: the sequence's vertex tensor (module level: picklable for workers)."""
    return batch[0]["vertices"]


class NpyFrames:
    """Map-style dataset: item i = torch tensor of the i-th .npy file."""

    def __init__(self, paths):
        self.paths = list(paths)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        import torch

        return {"vertices": torch.from_numpy(np.load(self.paths[index]))}


def frames_per_second(dataset, workers: int, epochs: int) -> dict:
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=1, num_workers=workers, collate_fn=vertices_only, persistent_workers=workers > 0)
    for _ in loader:  # warm-up epoch: worker start-up, page cache, lazy imports
        pass
    frames = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for tensor in loader:
            frames += int(tensor.shape[0])
    seconds = time.perf_counter() - start
    return {"frames": frames, "seconds": round(seconds, 4), "frames_per_s": round(frames / seconds, 1)}


def in_process_rates(stored: dict, dataset, npy_paths, epochs: int) -> dict:
    """Frames/s without a DataLoader, to attribute the cost: codec decode alone (each format), dataset item, np.load."""
    from mmface4d_datasets.codec import decode

    def rate(step):
        frames = 0
        start = time.perf_counter()
        for _ in range(epochs):
            frames += step()
        return round(frames / (time.perf_counter() - start), 1)

    rates = {
        f"codec_decode_only_{label}": rate(lambda blobs=blobs: sum(decode(b).shape[0] for b in blobs)) for label, blobs in stored.items()
    }
    rates["dataset_item_torch_new"] = rate(lambda: sum(int(dataset[i]["vertices"].shape[0]) for i in range(len(dataset))))
    rates["npy_load"] = rate(lambda: sum(np.load(p).shape[0] for p in npy_paths))
    return rates


def warm(paths) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=10, help="copies of the fixture take (default 10)")
    parser.add_argument("--epochs", type=int, default=3, help="timed passes over the data (default 3)")
    parser.add_argument("--max-error", type=float, default=1e-5, help="codec bound in metres (default 1e-5)")
    parser.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)

    import torch

    from mmface4d_datasets.codec import CODEC_VERSION, decode
    from mmface4d_datasets.loading import load_dataset
    from mmface4d_datasets.paths import official_sample_dir
    from mmface4d_datasets.release.reader import Release
    from mmface4d_datasets.release.writer import write_release

    fixture = official_sample_dir()
    if fixture is None:
        print(json.dumps({"skipped": "the authors' sample take is absent; set MMFACE4D_FIXTURES"}))
        return 1
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mmface4d-perf-loader-"))
    npy_dir = work / "npy"
    sources, topology = fixture_sources(fixture, args.copies)
    versions = {"new": CODEC_VERSION, "old": "2"}
    releases, build_seconds, sizes = {}, {}, {}
    for label, version in versions.items():
        folder = work / f"release_{label}"
        start = time.perf_counter()
        write_release(sources, folder, topology=topology, max_error=args.max_error, codec_version=version, progress=False)
        build_seconds[label] = round(time.perf_counter() - start, 2)
        releases[label] = Release(folder)

    npy_dir.mkdir(parents=True, exist_ok=True)
    npy_paths, frames = [], 0
    stored = {label: [r["vertices"] for r in release.iter_records("train", decode=False)] for label, release in releases.items()}
    for record, data in zip(releases["new"].iter_records("train", decode=False), stored["new"]):
        array = decode(data)
        path = npy_dir / f"{record['take_id']}.npy"
        np.save(path, array)
        npy_paths.append(path)
        frames += array.shape[0]
    npy_bytes = sum(p.stat().st_size for p in npy_paths)
    shards = {label: sorted((work / f"release_{label}" / "data").glob("*/*.parquet")) for label in versions}
    for label in versions:
        shard_bytes = sum(p.stat().st_size for p in shards[label])
        sizes[label] = {
            "shard_total": round(shard_bytes / frames, 1),
            "vertices_codec": round(sum(len(b) for b in stored[label]) / frames, 1),
            "npy_over_shard": round(npy_bytes / shard_bytes, 2),
        }
    sizes["npy_float32"] = round(npy_bytes / frames, 1)

    datasets = {label: load_dataset(data_dir=work / f"release_{label}", split="train").with_format("torch") for label in versions}
    npy = NpyFrames(npy_paths)
    warm([p for paths in shards.values() for p in paths] + npy_paths)
    results = {}
    for workers in (1, 2):
        for label, dataset in datasets.items():
            results[f"release_{label}_{workers}_workers"] = frames_per_second(dataset, workers, args.epochs)
        results[f"npy_{workers}_workers"] = frames_per_second(npy, workers, args.epochs)
    results["in_process_frames_per_s"] = in_process_rates(stored, datasets["new"], npy_paths, args.epochs)
    ratios = {
        f"npy_over_release_{label}_{w}_workers": round(
            results[f"npy_{w}_workers"]["frames_per_s"] / results[f"release_{label}_{w}_workers"]["frames_per_s"], 2
        )
        for label in versions
        for w in (1, 2)
    }
    report = {
        "what": "frames/s to torch tensors through a DataLoader (batch 1 sequence), releases (new and old codec) vs raw float32 .npy",
        "data": f"the authors' sample take x {args.copies} copies (one subject), {frames} frames",
        "num_vertices": BFM_VERTICES,
        "max_error_m": args.max_error,
        "codec_versions": versions,
        "cache": "warm (every file read once before timing, one untimed warm-up epoch per loader)",
        "epochs_timed": args.epochs,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "build_seconds": build_seconds,
        "results": results,
        "speed_ratios": ratios,
        "bytes_per_frame": sizes,
        "work_dir": str(work) if args.keep else None,
    }
    print(json.dumps(report, indent=2))
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
