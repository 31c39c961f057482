"""Cost and effect of the read-path checksums (docs/release_format.md, Checksums; issue 24). Prints one JSON object.

1. `digest`: xxh3-64 (the row checksum, `xxhash`) against zlib's CRC-32 (the codec's, and the Parquet page CRC's
   algorithm) on a 64 MiB buffer: GB/s and seconds per GB, one thread.
2. `loader`: frames per second of `load_dataset(data_dir=..., split="train")` rows decoded in this process, with the
   per-row check (the release as written) and without it (`remove_columns("checksums")`: rows unchecked), the
   two alternated in the same run, on a release of `--copies` copies of the authors' sample take (35,709
   vertices, perf/loader.py's sources); warm cache. `overhead_percent` = 1 - checked / unchecked.
3. `flips`: `--flips` seeded single-bit flips at random positions of the data shards of a small synthetic release,
   each loaded map-style and streaming; per mode: named errors (an MMFace4DError), rows right (the flip landed in
   bytes no reader uses), rows WRONG (silent wrong data: the goal is 0), other exceptions (not named: goal 0).

    .venv/bin/python perf/checksums.py [--copies 4] [--rounds 3] [--flips 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def digest_speed() -> dict:
    import xxhash

    data = np.random.default_rng(0).integers(0, 256, 64 << 20, dtype=np.uint8).tobytes()
    result = {}
    for name, function in (("xxh3_64", xxhash.xxh3_64_intdigest), ("crc32", zlib.crc32)):
        best = min(_timed(function, data) for _ in range(3))
        result[name] = {"GB_per_s": round(len(data) / best / 1e9, 2), "s_per_GB": round(best / len(data) * 1e9, 4)}
    return result


def _timed(function, data) -> float:
    start = time.perf_counter()
    function(data)
    return time.perf_counter() - start


def loader_cost(work: Path, copies: int, rounds: int) -> dict:
    from loader import fixture_sources

    from mmface4d_datasets.loading import load_dataset
    from mmface4d_datasets.paths import official_sample_dir
    from mmface4d_datasets.release.writer import write_release

    fixture = official_sample_dir()
    if fixture is None:
        return {"skipped": "no official_sample fixture"}
    sources, topology = fixture_sources(fixture, copies)
    release = work / "fixture_release"
    write_release(sources, release, topology=topology, progress=False)
    checked = load_dataset(data_dir=release, split="train")
    unchecked = checked.remove_columns(["checksums"])
    frames = sum(int(n) for n in checked.hf_dataset["num_frames"])
    times = {"checked": [], "unchecked": []}
    for _ in range(rounds):
        for name, dataset in (("checked", checked), ("unchecked", unchecked)):
            start = time.perf_counter()
            for row in dataset:
                assert row["vertices"].shape[1] == topology.num_vertices
            times[name].append(time.perf_counter() - start)
    rates = {name: round(frames / min(values), 1) for name, values in times.items()}
    return {
        "rows": len(checked),
        "frames": frames,
        "vertices": topology.num_vertices,
        "frames_per_s": rates,
        "overhead_percent": round(100 * (1 - rates["checked"] / rates["unchecked"]), 2),
        "best_of": rounds,
    }


def _small_release(path: Path) -> None:
    from mmface4d_datasets.facemodel import load_face_model
    from mmface4d_datasets.release.schema import InMemorySource, SourceSequence, TopologyInfo
    from mmface4d_datasets.release.writer import write_release

    model = load_face_model("default", num_vertices=500)
    rng = np.random.default_rng(24)
    sources = []
    for index in range(8):
        frames = 10
        motion = 0.002 * rng.standard_normal((frames, model.num_vertices, 3)).cumsum(axis=0)
        vertices = (np.asarray(model.mean, np.float32)[None] + motion).astype(np.float32)
        sentence = "000001" if index % 2 == 0 else "210001"
        sources.append(
            InMemorySource(
                SourceSequence(
                    take_id=f"{index + 1:06d}",
                    subject_id=f"S{index // 2}",
                    sentence_id=sentence,
                    vertices=vertices,
                    audio=(0.1 * rng.standard_normal(16000 * frames // 30)).astype(np.float32),
                    sample_rate=16000,
                    audio_subtype="FLOAT",
                    topology=model.topology,
                    text="text",
                )
            )
        )
    write_release(sources, path, topology=TopologyInfo.from_face_model(model), progress=False)


def flip_trials(work: Path, count: int) -> dict:
    from mmface4d_datasets.errors import MMFace4DError
    from mmface4d_datasets.loading import load_dataset

    release = work / "small_release"
    _small_release(release)
    shards = sorted(release.glob("data/*/*.parquet"))
    splits = {shard: shard.parent.name for shard in shards}
    reference = {split: [dict(r) for r in load_dataset(data_dir=release, split=split)] for split in set(splits.values())}
    rng = random.Random(24)
    trials = [(shard, *_position(rng, shard)) for shard in (rng.choice(shards) for _ in range(count))]
    result = {}
    for streaming in (False, True):
        counts = {"named": 0, "right": 0, "wrong": 0, "other": 0}
        examples = []
        for index, (shard, position, bit) in enumerate(trials):
            copy = work / f"trial-{int(streaming)}-{index}"
            shutil.copytree(release, copy)
            target = copy / shard.relative_to(release)
            data = bytearray(target.read_bytes())
            data[position] ^= 1 << bit
            target.write_bytes(bytes(data))
            try:
                rows = [dict(r) for r in load_dataset(data_dir=copy, split=splits[shard], streaming=streaming)]
                expected = reference[splits[shard]]
                same = len(rows) == len(expected) and all(_same(a, b) for a, b in zip(rows, expected))
                counts["right" if same else "wrong"] += 1
                if not same:
                    examples.append({"shard": shard.name, "position": position, "outcome": "WRONG ROWS"})
            except MMFace4DError:
                counts["named"] += 1
            except Exception as exc:  # not named: counted and shown
                counts["other"] += 1
                examples.append({"shard": shard.name, "position": position, "outcome": f"{type(exc).__name__}: {str(exc)[:160]}"})
            shutil.rmtree(copy)
        result["streaming" if streaming else "map_style"] = {**counts, "examples": examples[:5]}
    result["trials_per_mode"] = count
    result["shard_bytes"] = sorted({shard.stat().st_size for shard in shards})
    return result


def _position(rng: random.Random, shard: Path) -> tuple[int, int]:
    return rng.randrange(shard.stat().st_size), rng.randrange(8)


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and np.array_equal(a, b)
    return a == b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flips", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmface4d-checksums-"))
    os.environ.setdefault("HF_DATASETS_CACHE", str(work / "hf_cache"))
    import datasets

    datasets.disable_progress_bars()
    try:
        result = {
            "conditions": {
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "cache": "warm (each figure is the best of its rounds)",
            },
            "digest": digest_speed(),
            "loader": loader_cost(work, args.copies, args.rounds),
            "flips": flip_trials(work, args.flips),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
