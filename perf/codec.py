"""Size and speed of our mesh-sequence codec on the authors' sample take (prints one JSON object).

DESIGN.md, Performance: storage and decode. On the fixture take (67 frames, 35,709 vertices, read
with ``mmface4d_datasets.official.read_mesh_sequence``), all in one run:

- bytes per frame: ours at 10 um and at 2 um maximum per-coordinate error (every byte a decoder
  needs: header, tables, payload), the authors' ``.nut`` encoding (the three files / frames) and raw
  float32 (N * 3 * 4); the ratios between them; the maximum error actually measured;
- the same sizes at zstd level 19 (smallest, slowest to encode; decoding is as fast);
- seconds (best of ``--repeats``, and the median): our encode and decode at both bounds, and the
  previous decoder (the pre-speed-up copy kept in ``perf/codec_previous.py``,
  timed interleaved with the current one on the same bytes, which it must match bit for bit); the authors'
  way through PyAV (``read_mesh_sequence``: FFV1 decode + header parse + dequantise); the authors'
  scripts' way (one ``ffmpeg`` process per axis piping raw gray16le, then the header parse) when an
  ``ffmpeg`` binary is given (``--ffmpeg``) or on PATH; ``np.load`` of the same float32 array saved as ``.npy`` in a temporary
  folder, read once before timing (warm page cache).

The process is single-threaded numpy work (zstd decompression is single-threaded too); the load
average is printed because the machine may be shared.

    .venv/bin/python perf/codec.py [--repeats 7] [--ffmpeg /path/to/ffmpeg]

(An ffmpeg binary without root: ``pip install --target /tmp/ffm imageio-ffmpeg`` ships one under
``/tmp/ffm/imageio_ffmpeg/binaries/``.)
"""

from __future__ import annotations

import argparse
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


def timed_pair(first, second, repeats: int) -> tuple[dict, dict]:
    """Like :func:`timed` for two functions, run alternately so both see the same machine load."""
    times = ([], [])
    for _ in range(repeats):
        for function, seconds in zip((first, second), times):
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
            "threads": "one (numpy element-wise work and zstd decompression are single-threaded)",
            "python": platform.python_version(),
            "numpy": np.__version__,
            "zstandard": zstandard.__version__,
            "zstd_library": zstandard.ZSTD_VERSION and ".".join(map(str, zstandard.ZSTD_VERSION)),
            "codec_version": codec.CODEC_VERSION,
            "zstd_level": f"{codec.DEFAULT_LEVEL} (default) and 19 (the *_level19 figures)",
            "ffmpeg": args.ffmpeg and subprocess.run([args.ffmpeg, "-version"], capture_output=True, text=True).stdout.split("\n")[0],
        },
        "bytes_per_frame": {
            "authors_nut": round(authors_bytes / num_frames, 1),
            "raw_float32": vertices[0].nbytes,
        },
        "max_error_measured_m": {},
        "seconds": {},
    }
    sizes = report["bytes_per_frame"]
    seconds = report["seconds"]
    for name, bound in BOUNDS.items():
        seconds[f"ours_encode_{name}"], data = timed(lambda: codec.encode(vertices, bound), max(1, args.repeats // 2))
        seconds[f"ours_decode_{name}"], seconds[f"previous_decoder_{name}"] = timed_pair(
            lambda: codec.decode(data), lambda: reference_decode(data), args.repeats
        )
        decoded = codec.decode(data)
        report.setdefault("decode_bit_identical_to_previous", {})[name] = decoded.tobytes() == reference_decode(data).tobytes()
        sizes[f"ours_{name}"] = round(len(data) / num_frames, 1)
        report["max_error_measured_m"][name] = float(np.abs(decoded.astype(np.float64) - vertices).max())
        report["max_error_measured_m"][f"{name}_bound"] = bound
        seconds[f"ours_encode_{name}_level19"], smallest = timed(lambda: codec.encode(vertices, bound, level=19), 1)
        sizes[f"ours_{name}_level19"] = round(len(smallest) / num_frames, 1)

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
    report["ratios"] = {
        "authors_bytes_over_ours_10um": round(sizes["authors_nut"] / sizes["ours_10um"], 3),
        "authors_bytes_over_ours_2um": round(sizes["authors_nut"] / sizes["ours_2um"], 3),
        "float32_bytes_over_ours_10um": round(sizes["raw_float32"] / sizes["ours_10um"], 3),
        "float32_bytes_over_ours_2um": round(sizes["raw_float32"] / sizes["ours_2um"], 3),
        "authors_bytes_over_ours_10um_level19": round(sizes["authors_nut"] / sizes["ours_10um_level19"], 3),
        "authors_bytes_over_ours_2um_level19": round(sizes["authors_nut"] / sizes["ours_2um_level19"], 3),
        "authors_pyav_decode_over_ours_10um": round(best["authors_pyav_read_mesh_sequence"] / best["ours_decode_10um"], 2),
        "authors_pyav_decode_over_ours_2um": round(best["authors_pyav_read_mesh_sequence"] / best["ours_decode_2um"], 2),
        "previous_decoder_over_ours_10um": round(best["previous_decoder_10um"] / best["ours_decode_10um"], 3),
        "previous_decoder_over_ours_2um": round(best["previous_decoder_2um"] / best["ours_decode_2um"], 3),
        "ours_decode_10um_over_np_load": round(best["ours_decode_10um"] / best["np_load_warm"], 2),
    }
    if "authors_ffmpeg_per_axis" in best:
        report["ratios"]["authors_ffmpeg_decode_over_ours_10um"] = round(best["authors_ffmpeg_per_axis"] / best["ours_decode_10um"], 2)
        report["ratios"]["authors_ffmpeg_decode_over_ours_2um"] = round(best["authors_ffmpeg_per_axis"] / best["ours_decode_2um"], 2)
    report["conditions"]["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
