"""Size and speed of our mesh-sequence codec on the authors' sample take (prints one JSON object).

DESIGN.md, Performance: storage and decode. On the fixture take (67 frames, 35,709 vertices, read
with ``mmface4d_datasets.official.read_mesh_sequence``), all in one run, for the NEW format (3, the
default: low-rank mode) beside the OLD one (format 2, ``encode(..., version="2")``: grid mode):

- bytes per frame: both formats at 10 um and at 2 um maximum per-coordinate error (every byte a
  decoder needs: header, tables, payload), the authors' ``.nut`` encoding (the three files / frames)
  and raw float32 (N * 3 * 4); the ratios between them; the maximum error actually measured; the
  bytes of each section of the new format;
- the same sizes at zstd level 19 (smallest, slowest to encode; decoding is as fast);
- seconds (best of ``--repeats``, and the median): encode and decode of both formats at both bounds
  (the decoders timed interleaved, call by call, so both see the same machine load), and format 2's
  decoder before its speed-up (``perf/codec_previous.py``, on the format-2 bytes, which it must
  match bit for bit); the authors' way through PyAV (``read_mesh_sequence``: FFV1 decode + header
  parse + dequantise); the authors' scripts' way (one ``ffmpeg`` process per axis piping raw
  gray16le, then the header parse) when an ``ffmpeg`` binary is given (``--ffmpeg``) or on PATH;
  ``np.load`` of the same float32 array saved as ``.npy`` in a temporary folder, read once before
  timing (warm page cache).

The codec runs on one thread (its BLAS product on one BLAS thread where threadpoolctl is installed;
zstd is single-threaded); the load average is printed because the machine may be shared.

    .venv/bin/python perf/codec.py [--repeats 7] [--ffmpeg /path/to/ffmpeg]

(An ffmpeg binary without root: ``pip install --target /tmp/ffm imageio-ffmpeg`` ships one under
``/tmp/ffm/imageio_ffmpeg/binaries/``.)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NUM_VERTICES = 35709
BOUNDS = {"10um": 1e-5, "2um": 2e-6}


def timed(function, repeats: int) -> dict:
    """Best and median wall seconds of ``function()`` over ``repeats`` runs, and its last result."""
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return {"best_s": round(min(seconds), 5), "median_s": round(statistics.median(seconds), 5)}, result


def ffmpeg_decode(ffmpeg: str, prefix: Path, num_vertices: int) -> np.ndarray:
    """The authors' scripts' way: one ffmpeg process per axis (raw gray16le frames), then the header parse."""
    from mmface4d_datasets import official

    side = official.frame_side(num_vertices)
    axes = []
    for axis in range(3):
        raw = subprocess.run(
            [ffmpeg, "-v", "error", "-i", f"{prefix}_{axis}.nut", "-f", "rawvideo", "-pix_fmt", "gray16le", "-"],
            check=True,
            capture_output=True,
        ).stdout
        frames = np.frombuffer(raw, dtype="<u2").reshape(-1, side * side)
        axes.append(official.dequantise(frames, num_vertices, f"{prefix}_{axis}.nut"))
    return np.stack(axes, axis=-1)


def previous_decoder():
    """The decoder before its speed-up (``perf/codec_previous.py``), the anchor of the decode timing."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from codec_previous import decode
    finally:
        sys.path.pop(0)
    return decode


def timed_together(functions, repeats: int) -> tuple[dict, ...]:
    """Like :func:`timed` for several functions, run in turn call by call so all see the same machine load."""
    times = tuple([] for _ in functions)
    for _ in range(repeats):
        for function, seconds in zip(functions, times):
            start = time.perf_counter()
            function()
            seconds.append(time.perf_counter() - start)
    return tuple({"best_s": round(min(s), 5), "median_s": round(statistics.median(s), 5)} for s in times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per figure (best and median reported)")
    parser.add_argument("--ffmpeg", default=shutil.which("ffmpeg"), help="an ffmpeg binary (default: the one on PATH, if any)")
    args = parser.parse_args(argv)

    import zstandard

    from mmface4d_datasets import codec, official
    from mmface4d_datasets.paths import official_sample_dir

    reference_decode = previous_decoder()
    folder = official_sample_dir()
    if folder is None:
        print(json.dumps({"skipped": "the authors' sample take is absent; set MMFACE4D_FIXTURES"}))
        return 1
    prefix = folder / "reconstruct_filt"
    vertices = official.read_mesh_sequence(prefix, NUM_VERTICES)  # also warms the page cache
    num_frames = vertices.shape[0]
    authors_bytes = sum(path.stat().st_size for path in official.mesh_axis_paths(prefix))

    report = {
        "conditions": {
            "data": f"authors' sample take {folder.name} ({prefix.name}_{{0,1,2}}.nut)",
            "frames": num_frames,
            "vertices": NUM_VERTICES,
            "cache": "warm (every file read once before timing)",
            "repeats": args.repeats,
            "cpu_count": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "threads": "one (numpy element-wise work, zstd, and the format-3 product on one BLAS thread)",
            "threadpoolctl": importlib.util.find_spec("threadpoolctl") is not None,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "zstandard": zstandard.__version__,
            "zstd_library": zstandard.ZSTD_VERSION and ".".join(map(str, zstandard.ZSTD_VERSION)),
            "codec_version_new": codec.CODEC_VERSION,
            "codec_version_old": "2",
            "zstd_level": f"{codec.DEFAULT_LEVEL} (default) and 19 (the *_level19 figures)",
            "ffmpeg": args.ffmpeg and subprocess.run([args.ffmpeg, "-version"], capture_output=True, text=True).stdout.split("\n")[0],
        },
        "bytes_per_frame": {
            "authors_nut": round(authors_bytes / num_frames, 1),
            "raw_float32": vertices[0].nbytes,
        },
        "max_error_measured_m": {},
        "sections_bytes_per_frame_new": {},
        "seconds": {},
    }
    sizes = report["bytes_per_frame"]
    seconds = report["seconds"]
    for name, bound in BOUNDS.items():
        streams = {}
        for label, version in (("new", codec.CODEC_VERSION), ("old", "2")):
            seconds[f"{label}_encode_{name}"], streams[label] = timed(
                lambda version=version: codec.encode(vertices, bound, version=version), max(1, args.repeats // 2)
            )
            decoded = codec.decode(streams[label])
            sizes[f"{label}_{name}"] = round(len(streams[label]) / num_frames, 1)
            report["max_error_measured_m"][f"{label}_{name}"] = float(np.abs(decoded.astype(np.float64) - vertices).max())
            seconds[f"{label}_encode_{name}_level19"], smallest = timed(
                lambda version=version: codec.encode(vertices, bound, level=19, version=version), 1
            )
            sizes[f"{label}_{name}_level19"] = round(len(smallest) / num_frames, 1)
        report["max_error_measured_m"][f"{name}_bound"] = bound
        new, old = streams["new"], streams["old"]
        report["sections_bytes_per_frame_new"][name] = {
            key: round(value["stored_bytes"] / num_frames, 1) for key, value in codec.peek(new)["sections"].items()
        }
        report.setdefault("mode_new", {})[name] = codec.peek(new)["mode"]
        seconds[f"new_decode_{name}"], seconds[f"old_decode_{name}"], seconds[f"old_previous_decoder_{name}"] = timed_together(
            [lambda: codec.decode(new), lambda: codec.decode(old), lambda: reference_decode(old)], args.repeats
        )
        report.setdefault("old_decode_bit_identical_to_previous", {})[name] = codec.decode(old).tobytes() == reference_decode(old).tobytes()

    seconds["authors_pyav_read_mesh_sequence"], _ = timed(lambda: official.read_mesh_sequence(prefix, NUM_VERTICES), args.repeats)
    if args.ffmpeg:
        seconds["authors_ffmpeg_per_axis"], from_ffmpeg = timed(lambda: ffmpeg_decode(args.ffmpeg, prefix, NUM_VERTICES), args.repeats)
        report["ffmpeg_matches_pyav"] = bool(np.array_equal(from_ffmpeg, vertices))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "take.npy"
        np.save(path, vertices)
        np.load(path)  # warm
        seconds["np_load_warm"], _ = timed(lambda: np.load(path), args.repeats)

    best = {key: value["best_s"] for key, value in seconds.items()}
    ratios = report["ratios"] = {}
    for name in BOUNDS:
        for label in ("new", "old"):
            ratios[f"authors_bytes_over_{label}_{name}"] = round(sizes["authors_nut"] / sizes[f"{label}_{name}"], 3)
            ratios[f"float32_bytes_over_{label}_{name}"] = round(sizes["raw_float32"] / sizes[f"{label}_{name}"], 3)
            ratios[f"authors_pyav_decode_over_{label}_{name}"] = round(
                best["authors_pyav_read_mesh_sequence"] / best[f"{label}_decode_{name}"], 2
            )
            if "authors_ffmpeg_per_axis" in best:
                ratios[f"authors_ffmpeg_decode_over_{label}_{name}"] = round(
                    best["authors_ffmpeg_per_axis"] / best[f"{label}_decode_{name}"], 2
                )
            ratios[f"{label}_decode_{name}_over_np_load"] = round(best[f"{label}_decode_{name}"] / best["np_load_warm"], 2)
        ratios[f"old_bytes_over_new_{name}"] = round(sizes[f"old_{name}"] / sizes[f"new_{name}"], 3)
        ratios[f"new_encode_over_old_{name}"] = round(best[f"new_encode_{name}"] / best[f"old_encode_{name}"], 3)
        ratios[f"old_decode_over_new_{name}"] = round(best[f"old_decode_{name}"] / best[f"new_decode_{name}"], 3)
    report["conditions"]["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
