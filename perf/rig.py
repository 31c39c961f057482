"""Capture rig: conversion speed of a three-camera 1080p take, and the registration's agreement
with the Azure Kinect SDK (prints JSON).

Speed: three Azure Kinect-style recordings (MJPG 1080P colour, NFOV unbinned depth, 30 fps,
subordinates 160 / 320 us behind the master) are made from the real recording's capture (its
colour upscaled to 1920x1080 and re-encoded as MJPEG, its depth as recorded, its calibration
scaled to the 1080P mode) and converted by ``capture_rig.convert.convert_take``: MJPEG decoding,
registration, FFV1 and H.264 encoding. Reported as take frames per second (one take frame = three
camera frames) and camera frames per second, wall-clock and per CPU second (the machine may be
shared: the load average is printed), with the parts timed on their own in CPU seconds. The depth
registration's one-off set-up per device calibration is timed apart (a session's takes share it);
the end-to-end figure includes it only in ``first_take``.

Agreement: on the real recording, the registered depth at the colour pixel where the SDK's
``convert_2d_to_3d`` / ``convert_3d_to_2d`` put each sampled depth pixel
(tests/data/k4a_sdk_oracle.json), in millimetres; and the per-point mapping against the SDK's
(mm and pixels).

Simulation (``--simulate``, issue 17): ``mmface4d rig simulate`` at full resolution (1080p colour,
NFOV unbinned depth, three cameras, default noise), seconds and CPU seconds per take frame (one
take frame = three camera frames), split by stage; two takes on two worker processes (the 2 cores)
after one warm-up take (numba compilation, eSpeak NG); and the MKV round trip at 1080p: the
recordings converted by ``rig convert`` against the directly simulated take (depth equal, colour
PSNR). ``--simulate-only`` skips the conversion figures (which need the real recording).

    .venv/bin/python perf/rig.py [--frames 30] [--recording PATH] [--simulate [--simulate-only] [--sim-frames 15]]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ORACLE = ROOT / "tests" / "data" / "k4a_sdk_oracle.json"
DEFAULT_RECORDING = ROOT.parent / "shared" / "fixtures" / "k4a_recording" / "recording.mkv"


def _jpeg_1080p(recording: Path) -> bytes:
    import av

    from capture_rig import mkv

    info = mkv.read_info(recording)
    frame = next(mkv.iter_frames(recording, info)).colour.reformat(width=1920, height=1080, format="yuvj422p")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = 1920, 1080, "yuvj422p"
    codec.time_base = Fraction(1, 30)
    codec.options = {"q:v": "3"}
    packets = codec.encode(frame) + codec.encode(None)
    return bytes(packets[0])


def make_take(recording: Path, folder: Path, frames: int) -> list[Path]:
    from capture_rig.mkv_write import first_capture, write_kinect_mkv

    _, depth, calibration = first_capture(recording)
    jpeg = _jpeg_1080p(recording)
    paths = []
    for camera, (sync, delay) in enumerate((("SUBORDINATE", 160), ("MASTER", 0), ("SUBORDINATE", 320))):
        stamps = [1_000_000 + round(k * 1e6 / 30) + delay for k in range(frames)]
        paths.append(
            write_kinect_mkv(
                folder / f"rec{camera}.mkv",
                jpegs=[jpeg] * frames,
                depths=[depth] * frames,
                timestamps_usec=stamps,
                calibration_json=calibration,
                colour_mode="MJPG_1080P",
                wired_sync_mode=sync,
                subordinate_delay_usec=delay,
                serial=f"00000{camera}000000",
            )
        )
    return paths


def parts(recording: Path, repeats: int = 10) -> dict:
    """Each stage on one 1080p camera frame, timed alone (median of ``repeats``)."""
    import av

    from capture_rig.mkv_write import first_capture
    from capture_rig.registration import DepthRegistration
    from mmface4d_datasets.camera import k4a_cameras
    from mmface4d_datasets.take_files import ColourVideoWriter, DepthVideoWriter

    _, depth, calibration = first_capture(recording)
    jpeg = _jpeg_1080p(recording)
    cams = k4a_cameras(calibration, "1080P", "NFOV_UNBINNED")
    start = time.perf_counter()
    registration = DepthRegistration(cams.depth, cams.color)
    setup = time.perf_counter() - start
    registered = registration(depth)

    def median(fn):  # CPU seconds of this thread: the machine may be shared
        times = []
        for _ in range(repeats):
            t = time.thread_time()
            fn()
            times.append(time.thread_time() - t)
        return float(np.median(times))

    decoder = av.CodecContext.create("mjpeg", "r")
    frame = decoder.decode(av.Packet(jpeg))[0]
    with tempfile.TemporaryDirectory() as tmp:
        with DepthVideoWriter(Path(tmp) / "d.nut", 1920, 1080) as d, ColourVideoWriter(Path(tmp) / "c.mp4", 1920, 1080) as c:
            ffv1 = median(lambda: d.write(registered))
            h264 = median(lambda: c.write(frame))
    return {
        "note": "CPU seconds of the calling thread (FFmpeg's own threads not counted)",
        "registration_setup_s": round(setup, 3),
        "registration_s_per_frame": round(median(lambda: registration(depth)), 4),
        "mjpeg_decode_s_per_frame": round(median(lambda: decoder.decode(av.Packet(jpeg))), 4),
        "ffv1_encode_s_per_frame": round(ffv1, 4),
        "h264_encode_s_per_frame": round(h264, 4),
        "registered_valid_fraction": round(float((registered > 0).mean()), 4),
    }


def agreement(recording: Path) -> dict:
    from capture_rig import mkv
    from capture_rig.registration import DepthRegistration
    from mmface4d_datasets.camera import k4a_cameras

    oracle = json.loads(ORACLE.read_text())
    info = mkv.read_info(recording)
    depth = next(mkv.iter_frames(recording, info, decode_colour=False)).depth
    cams = k4a_cameras(info.calibration_json, info.colour_mode, info.depth_mode)
    reg = DepthRegistration(cams.depth, cams.color)
    registered = reg(depth).astype(np.float64)
    rows = oracle["samples"]
    pixels = np.array([s["depth_pixel"] for s in rows])
    sdk_points = np.array([s["point_colour_camera_mm"] for s in rows])
    sdk_uv = np.array([s["colour_pixel"] for s in rows])
    points = reg.points(depth, pixels)
    uv = reg.colour_pixels(points)
    at = np.rint(sdk_uv).astype(int)
    h, w = registered.shape
    inside = (at[:, 0] >= 0) & (at[:, 0] < w) & (at[:, 1] >= 0) & (at[:, 1] < h)
    diff = registered[at[inside, 1], at[inside, 0]] - sdk_points[inside, 2]
    visible = np.abs(diff) <= 2.0
    return {
        "recording": str(recording),
        "mode": f"{info.colour_mode} / {info.depth_mode}",
        "samples": len(rows),
        "samples_inside_colour_image": int(inside.sum()),
        "point_max_abs_error_mm": float(np.abs(points - sdk_points).max()),
        "colour_pixel_max_abs_error_px": float(np.nanmax(np.abs(uv - sdk_uv))),
        "registered_depth_abs_diff_mm": {
            "median": float(np.median(np.abs(diff))),
            "p90": float(np.percentile(np.abs(diff), 90)),
            "max_of_visible": float(np.abs(diff[visible]).max()),
        },
        "fraction_within_2mm": float(visible.mean()),
        "others_nearer_surface_in_front": int((diff < -2.0).sum()),
        "others_farther": int((diff > 2.0).sum()),
    }


def simulation(frames: int) -> dict:
    """Simulator figures at 1080p (see the module docstring)."""
    from capture_rig.convert import convert_take
    from capture_rig.simulate import SimulationOptions, simulate
    from mmface4d_datasets.take_files import read_colour_video, read_depth_video

    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="mmface4d-perf-sim-") as tmp:
        tmp = Path(tmp)
        simulate(tmp / "warm", 1, 1, seed=0, options=SimulationOptions(max_frames=2), progress=False)
        start, cpu = time.perf_counter(), _cpu()
        one = simulate(tmp / "one", 1, 1, seed=0, options=SimulationOptions(max_frames=frames), progress=False)
        seconds, cpu = time.perf_counter() - start, _cpu() - cpu
        take = one["takes"][0]
        out["one_take_one_process"] = {
            "frames": take["frames"],
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2),
            "seconds_per_take_frame": round(seconds / take["frames"], 3),
            "cpu_seconds_per_take_frame": round(cpu / take["frames"], 3),
            "cpu_seconds_per_take_frame_by_stage": {k: round(v / take["frames"], 4) for k, v in take["cpu_seconds"].items()},
            "note": "seconds include the take's speech synthesis and face motion; stages are per take frame (3 cameras)",
        }
        start = time.perf_counter()
        two = simulate(tmp / "two", 2, 1, seed=0, options=SimulationOptions(max_frames=frames), workers=2, progress=False)
        seconds = time.perf_counter() - start
        out["two_takes_two_workers"] = {
            "frames": two["frames"],
            "seconds": round(seconds, 2),
            "take_frames_per_second": round(two["frames"] / seconds, 3),
            "seconds_per_take_frame": round(seconds / two["frames"], 3),
            "note": "includes starting two worker processes and their face models",
        }
        sizes = {p.name: p.stat().st_size for p in sorted((tmp / "one" / "takes" / "001001").iterdir())}
        out["bytes_per_take"] = sizes
        trip = min(frames, 4)
        simulate(tmp / "mkv", 1, 1, seed=1, options=SimulationOptions(max_frames=trip, mkv=True), progress=False)
        take_dir = tmp / "mkv" / "takes" / "001001"
        recorded = tmp / "mkv" / "session" / "takes" / "001001"  # the recorder's layout (simulate --mkv)
        convert_take(
            [recorded / f"001001_{c}.mkv" for c in range(3)],
            "001001",
            tmp / "converted",
            audio=recorded / "001001.wav",
            take_log=recorded / "001001.take.json",
            progress=False,
            log=lambda line: None,
        )
        trip_result = {}
        for c in range(3):
            direct = read_depth_video(take_dir / f"001001_{c}.nut")
            converted = read_depth_video(tmp / "converted" / "001001" / f"001001_{c}.nut")
            a = read_colour_video(take_dir / f"001001_{c}.mp4").astype(np.float64)
            b = read_colour_video(tmp / "converted" / "001001" / f"001001_{c}.mp4").astype(np.float64)
            trip_result[str(c)] = {
                "depth_equal": bool(np.array_equal(direct, converted)),
                "colour_psnr_db": round(float(10 * np.log10(255**2 / np.mean((a - b) ** 2))), 2),
            }
        out["mkv_round_trip_1080p"] = {"frames": trip, "cameras": trip_result}
    return out


def _cpu() -> float:
    """CPU seconds of this process, every thread (FFmpeg's included)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=30, help="frames per camera of the 3-camera take (default 30)")
    parser.add_argument("--recording", type=Path, default=Path(os.environ.get("MMFACE4D_K4A_RECORDING", DEFAULT_RECORDING)))
    parser.add_argument("--simulate", action="store_true", help="add the simulator's figures (mmface4d rig simulate)")
    parser.add_argument("--simulate-only", action="store_true", help="only the simulator's figures")
    parser.add_argument("--sim-frames", type=int, default=15, help="frames per simulated take (default 15)")
    args = parser.parse_args()
    if args.simulate_only:
        result = {
            "conditions": {
                "cpu_count": os.cpu_count(),
                "affinity": len(os.sched_getaffinity(0)),
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
            "simulation_1080p": simulation(args.sim_frames),
        }
        result["conditions"]["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(result, indent=2))
        return
    from capture_rig import convert

    result = {
        "conditions": {
            "cpu_count": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "frames_per_camera": args.frames,
            "cameras": 3,
            "colour": "MJPG_1080P -> H.264 crf 18 veryfast",
            "depth": "NFOV_UNBINNED -> registered 1920x1080 FFV1",
            "cache": "warm (files just written)",
        }
    }
    with tempfile.TemporaryDirectory(prefix="mmface4d-perf-rig-") as tmp:
        tmp = Path(tmp)
        recordings = make_take(args.recording, tmp, args.frames)
        runs = {}
        # the first take pays the registration set-up; then one camera per core, and one at a time
        for n, (name, workers) in enumerate((("first_take", None), ("next_take", None), ("next_take_one_worker", 1))):
            start, cpu = time.perf_counter(), _cpu()
            report = convert.convert_take(recordings, f"{n + 1:06d}", tmp / "out", progress=False, workers=workers, log=lambda line: None)
            seconds, cpu = time.perf_counter() - start, _cpu() - cpu
            runs[name] = {
                "workers": workers or min(3, os.cpu_count() or 1),
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu, 2),
                "take_frames_per_second": round(report.num_frames / seconds, 3),
                "camera_frames_per_second": round(3 * report.num_frames / seconds, 3),
                "take_frames_per_cpu_second": round(report.num_frames / cpu, 3),
            }
        sizes = {p.name: p.stat().st_size for p in sorted((tmp / "out" / "000002").iterdir())}
    result["conversion"] = runs | {"bytes_per_take": sizes}
    result["parts_one_1080p_camera_frame"] = parts(args.recording)
    result["sdk_agreement"] = agreement(args.recording)
    if args.simulate:
        result["simulation_1080p"] = simulation(args.sim_frames)
    result["conditions"]["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
