"""Renderer speed (prints JSON): the candidates side by side in one run, on the authors' sample take.

DESIGN.md, Performance, and issue 15's targets:

1. ``views_1080p``: the sample take (35,709 vertices, 70,789 triangles) into the rig's three
   1920x1080 cameras (DESIGN.md layout around the face), depth + triangle ids + barycentrics,
   seconds per frame for all three views. Candidates: the numpy back end; the numba back end with
   fresh outputs each frame; numba writing into the previous frame's outputs (``out=``); the same
   in 2 threads (one view each, the kernel releases the GIL); and numba with the Kinect lens
   (rational distortion of the fixture recording's colour camera at 1080P when available).
   Target: <= 0.15 s.
2. ``shaded_512``: one 512x512 shaded view (raster + Lambert), frames per second. Target: >= 60.
3. ``video_512``: the whole ``mmface4d render`` path at 512x512 on the sample take: decode of the
   .nut meshes, render, H.264 + AAC encode to a file; frames per second, with the parts timed.
4. ``distortion``: where the lens is applied and what that costs in accuracy: coverage with the
   default bounding-box pad against a pad of 2 px (pixels that differ), and the undistortion
   map's round-trip residual.
5. ``pyrender`` (the anchor FaceFormer's render script uses, frame by frame, offscreen OpenGL):
   run from a separate environment when ``--pyrender-python`` is given (pyrender needs numpy < 2
   and libOSMesa; see docs/render.md), same mesh, 512x512.

Each figure: best and median of ``--repeats`` timed frames after a warm-up (numba compiled and
cached before timing; process start-up not counted). The JSON records threads and load average.

    .venv/bin/python perf/render.py [--frames 10] [--repeats 3] [--pyrender-python /tmp/pyrender-venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed(function, repeats: int) -> dict:
    """Wall time and this process's CPU time (all its threads). On a shared, loaded machine the CPU
    time of a single-threaded candidate is the better estimate of its wall time on an idle core."""
    function()
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"best_s": min(times), "median_s": statistics.median(times), "best_cpu_s": min(cpu)}


def load_sample():
    from mmface4d_datasets.export import load_faces
    from mmface4d_datasets.official import read_mesh_sequence
    from mmface4d_datasets.paths import official_sample_dir

    root = official_sample_dir()
    if root is None:
        sys.exit("the authors' sample take is absent (set MMFACE4D_FIXTURES)")
    start = time.perf_counter()
    vertices = read_mesh_sequence(root / "reconstruct_filt", 35709)
    decode_s = time.perf_counter() - start
    return root, vertices, load_faces(root / "bfm_faces.pkl", 35709), decode_s


def kinect_distortion():
    """The fixture recording's colour lens at 1080P (None when the recording is absent)."""
    from mmface4d_datasets.camera import k4a_cameras
    from mmface4d_datasets.paths import REPO_ROOT

    path = Path(os.environ.get("MMFACE4D_K4A_RECORDING", REPO_ROOT.parent / "shared/fixtures/k4a_recording/recording.mkv"))
    if not path.is_file():
        return None
    import av

    with av.open(str(path)) as container:
        for stream in container.streams:
            if stream.type == "attachment" and stream.name == "calibration.json":
                return k4a_cameras(bytes(stream.data), "1080P", "NFOV_UNBINNED").color
    return None


def views_1080p(vertices, faces, frames, repeats, backends):
    from mmface4d_datasets.render import rasterize_views
    from mmface4d_datasets.render.views import rig_cameras

    cameras = rig_cameras(vertices[0].mean(0))
    results = {}

    def run(backend, reuse, threads, cams):
        outs = [None]

        def go():
            for t in range(frames):
                outs[0] = rasterize_views(vertices[t], faces, cams, backend=backend, threads=threads, out=outs[0] if reuse else None)

        return go

    candidates = [("numpy", "numpy", False, 1, cameras)]
    if "numba" in backends:
        candidates += [
            ("numba_fresh_outputs", "numba", False, 1, cameras),
            ("numba_reused_outputs", "numba", True, 1, cameras),
            ("numba_reused_outputs_2_threads", "numba", True, 2, cameras),
        ]
        lens = kinect_distortion()
        if lens is not None:
            distorted = [lens.with_extrinsics(c.extrinsics) for c in cameras]
            candidates.append(("numba_reused_outputs_kinect_lens", "numba", True, 1, distorted))
    for name, backend, reuse, threads, cams in candidates:
        t = timed(run(backend, reuse, threads, cams), repeats)
        results[name] = {
            "s_per_frame_3_views": t["best_s"] / frames,
            "median_s_per_frame_3_views": t["median_s"] / frames,
            "cpu_s_per_frame_3_views": t["best_cpu_s"] / frames,
        }
    frags = rasterize_views(vertices[0], faces, cameras, backend="numpy")
    results["covered_pixels_per_view"] = [int(f.mask.sum()) for f in frags]
    results["target_s"] = 0.15
    return results


def shaded_512(vertices, faces, frames, repeats, backends):
    from mmface4d_datasets.render.video import render_frame
    from mmface4d_datasets.render.views import framing_camera

    camera = framing_camera(vertices, 512, 512)
    results = {}
    for backend in backends:
        state = [None]

        def go(backend=backend, state=state):
            for t in range(frames):
                _, state[0] = render_frame(vertices[t], faces, camera, out=state[0], backend=backend)

        t = timed(go, repeats)
        results[backend] = {"fps": frames / t["best_s"], "median_fps": frames / t["median_s"], "fps_by_cpu_time": frames / t["best_cpu_s"]}
    results["target_fps"] = 60
    return results


def video_512(root, frames_total, decode_s):
    from mmface4d_datasets.render.video import load_source, render_sequence

    start, start_cpu = time.perf_counter(), time.process_time()
    seq = load_source(root)
    load_s, load_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    with tempfile.TemporaryDirectory() as tmp:
        render_sequence(seq, Path(tmp) / "warm.png", still=0)  # numba cache
        start, start_cpu = time.perf_counter(), time.process_time()
        render_sequence(seq, Path(tmp) / "take.mp4", size=(512, 512), progress=False)
        render_s, render_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        size = (Path(tmp) / "take.mp4").stat().st_size
    n = len(seq.vertices)
    return {
        "frames": n,
        "load_s (decode .nut + wav + faces)": load_s,
        "render_and_encode_s": render_s,
        "fps_whole_path": n / (load_s + render_s),
        "fps_render_and_encode": n / render_s,
        "cpu_s (load, render+encode; x264 uses threads)": [load_cpu, render_cpu],
        "fps_whole_path_by_cpu_time": n / (load_cpu + render_cpu),
        "mp4_bytes": size,
    }


def distortion_check(vertices, faces):
    from mmface4d_datasets.render import raster
    from mmface4d_datasets.render.views import rig_cameras

    lens = kinect_distortion()
    if lens is None:
        return {"skipped": "the fixture recording is absent"}
    cameras = [lens.with_extrinsics(c.extrinsics) for c in rig_cameras(vertices[0].mean(0))]
    differing = 0
    for camera in cameras:
        default = raster.rasterize(vertices[0], faces, camera, backend="numpy")
        saved = raster.BBOX_PAD
        raster.BBOX_PAD = 2.0
        try:
            wide = raster.rasterize(vertices[0], faces, camera, backend="numpy")
        finally:
            raster.BBOX_PAD = saved
        differing += int((default.triangle != wide.triangle).sum())
    rays = raster.pixel_rays(cameras[0])
    ok = np.isfinite(rays).all(1)
    jj, ii = np.divmod(np.arange(len(rays)), cameras[0].width)
    back = cameras[0].pixels_from_normalised(cameras[0].distort(rays[ok]))
    residual = np.abs(back - np.stack([ii[ok], jj[ok]], 1)).max()
    start = time.perf_counter()
    raster._RAY_CACHE.clear()
    raster.pixel_rays(cameras[0])
    return {
        "pixels_differing_pad_0.05_vs_2px_3_views": differing,
        "undistortion_map_roundtrip_max_px": float(residual),
        "undistortion_map_build_s_1080p": time.perf_counter() - start,
        "valid_pixels_fraction": float(ok.mean()),
    }


def pyrender_anchor(python, vertices, faces, frames):
    script = r"""
import json, sys, time, os
os.environ["PYOPENGL_PLATFORM"] = "osmesa"
import numpy as np, trimesh, pyrender
data = np.load(sys.argv[1]); v, f = data["v"], data["f"]
renderer = pyrender.OffscreenRenderer(512, 512)
cam = pyrender.IntrinsicsCamera(fx=1450, fy=1450, cx=256, cy=256)
centre = v[0].mean(0)
pose = np.eye(4); pose[:3, 3] = centre + [0, 0, -0.75]; pose[:3, :3] = np.diag([1, -1, -1])
light = pyrender.DirectionalLight(color=[1, 1, 1], intensity=3.0)
times = []
for t in range(len(v)):
    start = time.perf_counter()
    mesh = pyrender.Mesh.from_trimesh(trimesh.Trimesh(v[t], f, process=False), smooth=True)
    scene = pyrender.Scene(ambient_light=[0.3, 0.3, 0.3])
    scene.add(mesh); scene.add(cam, pose=pose); scene.add(light, pose=pose)
    color, depth = renderer.render(scene)
    times.append(time.perf_counter() - start)
print(json.dumps({"fps": (len(times) - 1) / sum(times[1:]), "first_frame_s": times[0], "covered": int((depth > 0).sum())}))
"""
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "mesh.npz", v=vertices[: frames + 1], f=faces)
        (Path(tmp) / "anchor.py").write_text(script)
        done = subprocess.run(
            [python, str(Path(tmp) / "anchor.py"), str(Path(tmp) / "mesh.npz")], capture_output=True, text=True, timeout=600
        )
    if done.returncode != 0:
        return {"failed": done.stderr.strip().splitlines()[-1:] or ["?"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pyrender-python", help="python of an environment with pyrender (anchor)")
    parser.add_argument("--skip-video", action="store_true")
    args = parser.parse_args()

    from mmface4d_datasets.render import available_backends

    backends = available_backends()
    root, vertices, faces, decode_s = load_sample()
    out = {
        "data": "authors' sample take 000337 (67 frames, 35,709 vertices, 70,789 triangles)",
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "backends": backends,
        "numba": __import__("numba").__version__ if "numba" in backends else None,
        "views_1080p": views_1080p(vertices, faces, args.frames, args.repeats, backends),
        "shaded_512": shaded_512(vertices, faces, args.frames, args.repeats, backends),
        "distortion": distortion_check(vertices, faces),
    }
    if not args.skip_video:
        out["video_512"] = video_512(root, len(vertices), decode_s)
    if args.pyrender_python:
        out["pyrender_512_anchor"] = pyrender_anchor(args.pyrender_python, vertices, faces, args.frames)
    out["machine"]["load_average_at_end"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
