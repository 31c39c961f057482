"""Speed of `mmface4d export faceformer` against the PLY export of the same frames (docs/faceformer.md).

Builds a release from copies of the authors' sample take (one subject, BFM front topology, 35,709
vertices; as perf/loader.py does), then, in the same run and from the same release with a warm page
cache, times:
- `faceformer_30fps`: `export_faceformer(release, DIR)` (decode every sequence, write vertices_npy/ at
  30 fps, wav/, templates.pkl, names, README);
- `faceformer_25fps`: the same with the 25 fps resampling;
- `ply` (the anchor, the existing mesh export): every sequence decoded from the release and written
  with `mmface4d_datasets.export.export_sequence`, one binary PLY per frame.
Each is run `--repeats` times into a fresh folder; the best time counts. Prints one JSON object.

    .venv/bin/python perf/faceformer_export.py [--copies 4] [--repeats 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loader import BFM_VERTICES, build_fixture_release  # noqa: E402 (perf/ scripts share the fixture release)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def best_of(repeats: int, work: Path, label: str, run) -> dict:
    times, size = [], 0
    for attempt in range(repeats):
        out = work / f"{label}-{attempt}"
        start = time.perf_counter()
        run(out)
        times.append(time.perf_counter() - start)
        size = folder_bytes(out)
        shutil.rmtree(out)
    return {"seconds": round(min(times), 3), "all_seconds": [round(t, 3) for t in times], "bytes": size}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=4, help="copies of the fixture take (default 4)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each export (default 2; best counts)")
    parser.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)

    from mmface4d_datasets.export import export_sequence
    from mmface4d_datasets.faceformer.export import export_faceformer
    from mmface4d_datasets.release.reader import Release

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mmface4d-perf-faceformer-"))
    release_dir = work / "release"
    built = build_fixture_release(release_dir, args.copies)
    if built is None:
        return 1
    topology = built[0]
    release = Release(release_dir)
    frames = int(release.info.counts.frames)
    for path in release_dir.rglob("*.parquet"):  # warm the page cache
        path.read_bytes()

    def ply(out: Path) -> None:
        for record in release.iter_records("train"):
            export_sequence(record["vertices"], topology.triangles, out / record["take_id"], fmt="ply")

    results = {
        "faceformer_30fps": best_of(args.repeats, work, "ff30", lambda out: export_faceformer(release_dir, out, fps=30)),
        "faceformer_25fps": best_of(args.repeats, work, "ff25", lambda out: export_faceformer(release_dir, out, fps=25)),
        "ply": best_of(args.repeats, work, "ply", ply),
    }
    for result in results.values():
        result["frames_per_s"] = round(frames / result["seconds"], 1)
    report = {
        "what": "export speed from a release: FaceFormer layout (vertices_npy + wav + templates.pkl) vs one binary PLY per frame",
        "data": f"the authors' sample take x {args.copies} copies (one subject), {frames} frames",
        "num_vertices": BFM_VERTICES,
        "cache": "warm (release shards read once before timing)",
        "results": results,
        "ply_over_faceformer_30fps_seconds": round(results["ply"]["seconds"] / results["faceformer_30fps"]["seconds"], 2),
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }
    print(json.dumps(report, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
