"""Accuracy and speed of `mmface4d reconstruct` on rig-simulator takes (prints one JSON object).

Each take is made the way a user makes one: ``mmface4d rig simulate --subjects 1 --sentences 1
--seed S --max-frames T --vertices N`` (default noise, 1080p: three cameras with depth noise, holes,
flying pixels, a head shell, hair, neck, shoulders and a room; 68 landmarks with 2 px noise and 1 %
outliers; shape detail outside the face model's span), then fitted by ``reconstruct_take`` as
``mmface4d reconstruct`` does, and compared with the simulator's ``truth/`` in camera 1's frame.

Per take and stage (stage 1, 2, 3, smoothed; model only = stage 2 smoothed, no stage 3): face mean,
lips mean (mm), the four benchmark metrics (``benchmark.metrics.sequence_errors``), the mean error
per region (the masks of ``meta/topology.npz``: forehead, cheeks, nose, lips, chin, eyes, upper
face, border ring; rule ``hop_bands_v2``, docs/facemodel.md), the surface error (mean distance
to the truth surface's nearest vertex), and the largest coefficient in prior standard deviations.
Also: camera 1 alone against three cameras (``--one-camera-seeds``), the code before the detail
prior (``--before``: no detail modes, identity prior sd 1) as the anchor of the accuracy gain,
timings (first frame, tracked frame mean) and the Adam anchor on ``--anchor-frames`` tracked frames
(the authors' recipe, up to 200 iterations per frame, from the same warm start; both final
energies). Divergences are counted, never hidden: a take whose fit diverges is listed with its
reason. ``--divergence-seeds`` fits further short takes only to count divergences.

    .venv/bin/python perf/reconstruct.py [--seeds 1 2 3] [--frames 60] [--vertices 5023 35709]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def simulate(folder: Path, seed: int, frames: int, vertices: int) -> Path:
    cmd = [sys.executable, "-m", "mmface4d_datasets.cli", "rig", "simulate", "--subjects", "1", "--sentences", "1"]
    cmd += ["--seed", str(seed), "--max-frames", str(frames), "--vertices", str(vertices), "--out", str(folder), "--quiet"]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)  # its JSON summary is not ours
    return folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--vertices", type=int, nargs="+", default=[5023, 35709])
    ap.add_argument(
        "--one-camera-seeds", type=int, nargs="*", default=None, help="seeds also fitted with camera 1 alone (default: the first)"
    )
    ap.add_argument(
        "--before",
        action="store_true",
        help="also fit with the code's earlier settings (no detail modes, identity prior sd 1), at the first vertex count",
    )
    ap.add_argument("--anchor-frames", type=int, default=2)
    ap.add_argument(
        "--divergence-seeds", type=int, nargs="*", default=[], help="extra seeds (5,023 v, 30 frames) fitted only to count divergences"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", help="keep the simulated takes in this folder (default: a temporary one)")
    args = ap.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, str(ROOT))

    import numpy as np
    from scipy.spatial import cKDTree

    from benchmark.metrics import sequence_errors
    from mmface4d_datasets.facemodel import load_face_model
    from mmface4d_datasets.official import read_mesh_sequence
    from reconstruction import fitting
    from reconstruction.anchor import adam_track_frame, frame_energy
    from reconstruction.errors import FitDivergedError
    from reconstruction.pipeline import Options, make_problem, reconstruct_take
    from reconstruction.smoothing import smooth_sequence
    from reconstruction.take_input import read_take_input

    one_camera = args.one_camera_seeds if args.one_camera_seeds is not None else args.seeds[:1]
    out: dict = {
        "conditions": {
            "inputs": "mmface4d rig simulate takes (default noise, 1080p), truth in camera 1's frame",
            "seeds": args.seeds,
            "frames": args.frames,
            "vertices": args.vertices,
            "blas_threads": args.threads,
            "cpu_count": os.cpu_count(),
            "load_average_start": os.getloadavg(),
        },
        "takes": [],
        "diverged": [],
    }
    before = Options(keep_stages=True, detail=False, weights=fitting.Weights(identity_sd=1.0))

    def fit(take, model, options):
        t0 = time.perf_counter()
        try:
            return reconstruct_take(take, model, options), time.perf_counter() - t0
        except FitDivergedError as exc:
            return str(exc), time.perf_counter() - t0

    work_ctx = tempfile.TemporaryDirectory() if not args.work else None
    work = Path(args.work or work_ctx.name)
    for nv in args.vertices:
        model = load_face_model("default", num_vertices=nv)
        masks = {k: v for k, v in model.region_masks().items() if k != "face"}
        for seed in args.seeds:
            folder = work / f"seed{seed}_v{nv}"
            t0 = time.perf_counter()
            if not (folder / "truth").exists():
                simulate(folder, seed, args.frames, nv)
            simulate_s = time.perf_counter() - t0
            take = read_take_input(folder / "takes" / "001001")
            truth = read_mesh_sequence(folder / "truth" / "001001" / "001001_filt", nv)[: take.num_frames]
            trees = {}

            def accuracy(seq, truth=truth, masks=masks, trees=trees) -> dict:
                d = np.linalg.norm(seq - truth, axis=-1) * 1000
                metrics = sequence_errors(truth, seq, masks["lips"], masks["upper_face"])
                surface = []
                for f in range(0, len(seq), max(1, len(seq) // 6)):
                    if f not in trees:
                        trees[f] = cKDTree(truth[f])
                    surface.append(trees[f].query(seq[f])[0].mean() * 1000)
                return {
                    "face_mean_mm": round(float(d.mean()), 3),
                    "lips_mean_mm": round(float(d[:, masks["lips"]].mean()), 3),
                    "p99_mm": round(float(np.percentile(d, 99)), 2),
                    "metrics_mm": {k: round(v * 1000, 3) for k, v in metrics.items()},
                    "regions_mm": {k: round(float(d[:, m].mean()), 3) for k, m in masks.items()},
                    "surface_nearest_vertex_mm": round(float(np.mean(surface)), 3),
                }

            entry = {"seed": seed, "vertices": nv, "frames": take.num_frames, "simulate_s": round(simulate_s, 1)}
            result, seconds = fit(take, model, Options(keep_stages=True))
            if isinstance(result, str):
                out["diverged"].append({"seed": seed, "vertices": nv, "reason": result})
                out["takes"].append(entry)
                continue
            stages = dict(result.stages)
            stages["model_only_smoothed"] = smooth_sequence(stages["stage2"], 30.0)
            entry["accuracy"] = {name: accuracy(seq) for name, seq in stages.items()}
            problem = make_problem(model)
            sd = problem.prior_sd(Options().weights)
            entry["max_coefficient_prior_sd"] = round(
                max(float(np.abs(problem.coefficients(p) / sd).max()) for p in result.params if p is not None), 2
            )
            entry["detail"] = result.report["detail"]
            entry["speed"] = {
                "first_frame_s": result.report["seconds"]["first_frame"],
                "tracked_frame_mean_s": result.report["seconds"]["tracked_frame_mean"],
                "take_fit_s": round(seconds, 2),
                "alignment_s": result.report["alignment"]["seconds"],
            }
            if args.before and nv == args.vertices[0]:
                old, _ = fit(take, model, before)
                entry["before"] = (
                    {"diverged": old} if isinstance(old, str) else {n: accuracy(s) for n, s in old.stages.items() if n == "smoothed"}
                )
            if seed in one_camera:
                one, _ = fit(take, model, Options(keep_stages=True, cameras=(1,)))
                entry["one_camera"] = {"diverged": one} if isinstance(one, str) else {"smoothed": accuracy(one.stages["smoothed"])}
            if args.anchor_frames and seed == args.seeds[0]:
                entry["adam_anchor"] = anchor(problem, result, take, args.anchor_frames, fitting, adam_track_frame, frame_energy, Options)
            out["takes"].append(entry)
            print(json.dumps({"progress": f"seed {seed} at {nv} v done"}), file=sys.stderr, flush=True)
    for seed in args.divergence_seeds:
        model = load_face_model("default", num_vertices=5023)
        folder = work / f"seed{seed}_v5023_f30"
        if not (folder / "truth").exists():
            simulate(folder, seed, 30, 5023)
        result, _ = fit(read_take_input(folder / "takes" / "001001"), model, Options(smoothing=False, stage3=False))
        out.setdefault("divergence_check", []).append({"seed": seed, "diverged": result if isinstance(result, str) else False})
    out["summary"] = summary(out["takes"])
    out["targets"] = {"face_mean_mm": 0.6, "lips_mean_mm": 1.0, "upper_max_mm": 3.0, "tracked_frame_s": 0.5, "first_frame_s": 10}
    out["conditions"]["load_average_end"] = os.getloadavg()
    if work_ctx is not None:
        work_ctx.cleanup()
    print(json.dumps(out, indent=1))
    return 0


def anchor(problem, result, take, frames, fitting, adam_track_frame, frame_energy, Options) -> dict:
    import numpy as np

    rep = result.report
    cams = {int(c): take.cameras[int(c)].with_extrinsics(np.array(e)) for c, e in rep["extrinsics"].items()}
    rays = {c: fitting.camera_rays(cams[c]) for c in cams}
    w = Options().weights
    rows = []
    warm = [fitting.make_view(c, cams[c], take.depth[c][0], take.landmarks[c][0], rays[c]) for c in cams]
    adam_track_frame(problem, result.params[0], warm, w, max_iterations=2)  # torch import and set-up: untimed
    for f in range(1, 1 + min(frames, take.num_frames - 1)):
        views = [fitting.make_view(c, cams[c], take.depth[c][f], take.landmarks[c][f], rays[c]) for c in cams]
        ours = frame_energy(problem, result.params[f], views, w)
        p, its, secs, trace = adam_track_frame(problem, result.params[f - 1], views, w, target=ours)
        rows.append(
            {
                "frame": f,
                "adam_s": round(secs, 3),
                "adam_iterations": its,
                "adam_final_energy": round(frame_energy(problem, p, views, w), 2),
                "ours_final_energy": round(ours, 2),
            }
        )
    return {"frames": rows, "ours_tracked_frame_s": rep["seconds"]["tracked_frame_mean"]}


def summary(takes: list) -> dict:
    """Mean over the seeds of the smoothed figures, per vertex count."""
    import numpy as np

    out = {}
    for nv in sorted({t["vertices"] for t in takes}):
        fitted = [t for t in takes if t["vertices"] == nv and "accuracy" in t]
        if not fitted:
            continue

        def mean(getter, rows=fitted):
            values = [getter(t) for t in rows]
            values = [v for v in values if v is not None]
            return round(float(np.mean(values)), 3) if values else None

        s = lambda t, stage: t["accuracy"][stage]  # noqa: E731
        out[str(nv)] = {
            "takes": len(fitted),
            "face_mean_mm": mean(lambda t: s(t, "smoothed")["face_mean_mm"]),
            "lips_mean_mm": mean(lambda t: s(t, "smoothed")["lips_mean_mm"]),
            "upper_max_mm": mean(lambda t: s(t, "smoothed")["metrics_mm"]["upper_max"]),
            "face_max_mm": mean(lambda t: s(t, "smoothed")["metrics_mm"]["face_max"]),
            "model_only_face_mean_mm": mean(lambda t: s(t, "model_only_smoothed")["face_mean_mm"]),
            "surface_mm": mean(lambda t: s(t, "smoothed")["surface_nearest_vertex_mm"]),
            "before_face_mean_mm": mean(lambda t: t.get("before", {}).get("smoothed", {}).get("face_mean_mm")),
            "one_camera_face_mean_mm": mean(lambda t: t.get("one_camera", {}).get("smoothed", {}).get("face_mean_mm")),
            "tracked_frame_s": mean(lambda t: t["speed"]["tracked_frame_mean_s"]),
            "first_frame_s": mean(lambda t: t["speed"]["first_frame_s"]),
        }
    return out


if __name__ == "__main__":
    sys.exit(main())
