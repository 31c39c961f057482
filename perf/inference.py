"""Inference speed of the bundled models: seconds of compute per second of animation (prints JSON).

DESIGN.md, Performance: inference. 35,709 vertices (BFM front), batch 1, 2 torch threads, clips of
1, 10 and 30 s, with the audio front end (log-mel) and without it (features precomputed), for the
paper's model, the FaceFormer-style model as published (recomputing the whole prefix every step)
and with a key/value cache. Weights are random with the real shapes (speed does not depend on
their values); the style reference is 4 s long. Every model is warmed up once on a 1 s clip
before timing; each figure is the median of ``--repeats`` runs (one run for clips whose single
run exceeds 20 s), as wall time and as process CPU time (all threads), with the load average. Optionally (``--hubert-large``) a randomly initialised HuBERT-large of the
published shape is timed as a front end, for comparison with the authors' setup.

    .venv/bin/python perf/inference.py [--vertices 35709] [--threads 2] [--clips 1 10 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

FPS, RATE = 30, 16000
STYLE_SECONDS = 4.0


def make_inputs(seconds: float, num_vertices: int, seed: int = 0):
    from benchmark.protocol import ProtocolInputs

    rng = np.random.default_rng(seed)
    frames = int(round(seconds * FPS))
    template = (rng.standard_normal((num_vertices, 3)) * 0.05).astype(np.float32)
    style_frames = int(STYLE_SECONDS * FPS)
    style = template + (rng.standard_normal((style_frames, num_vertices, 3)) * 1e-3).astype(np.float32)
    return ProtocolInputs(
        id="perf/clip",
        audio=(rng.standard_normal(int(seconds * RATE)) * 0.1).astype(np.float32),
        sample_rate=RATE,
        num_frames=frames,
        template=template,
        style_reference_id="perf/style",
        style_vertices=style,
        style_audio=np.zeros(int(STYLE_SECONDS * RATE), np.float32),
        subject_id="perf",
        emotion="neutral",
    )


def timed(function, repeats: int) -> tuple[float, float, int]:
    """Median wall time and median process CPU time of ``function()`` over ``repeats`` runs (one
    run when the first takes > 20 s). CPU time (all threads) is reported beside wall time because
    the machine is shared: other processes inflate wall time more than CPU time."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        if walls[0] > 20.0:
            break
    return statistics.median(walls), statistics.median(cpus), len(walls)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vertices", type=int, default=35709)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clips", type=float, nargs="+", default=[1.0, 10.0, 30.0], help="clip lengths, seconds")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["mmface4d", "faceformer", "faceformer-cached"])
    parser.add_argument(
        "--hubert-large", action="store_true", help="also time a randomly initialised HuBERT-large front end (about 1.2 GB of memory)"
    )
    args = parser.parse_args(argv)

    import torch

    from benchmark.features import HubertFrontEnd, LogMelFrontEnd
    from benchmark.models import load_model

    torch.set_num_threads(args.threads)
    front_end = LogMelFrontEnd()
    clips = {seconds: make_inputs(seconds, args.vertices) for seconds in args.clips}
    results: dict = {
        "conditions": {
            "vertices": args.vertices,
            "batch": 1,
            "threads": args.threads,
            "clips_seconds": args.clips,
            "style_reference_seconds": STYLE_SECONDS,
            "weights": "random, published shapes",
            "cache": "warm (one 1 s warm-up per model)",
            "repeats": args.repeats,
            "front_end": front_end.spec(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "processor": platform.processor() or platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
        },
        "front_end": {},
        "models": {},
    }
    warmup = make_inputs(1.0, args.vertices, seed=1)

    for seconds, inputs in clips.items():
        front_end(inputs.audio, inputs.num_frames)
        elapsed, cpu, runs = timed(lambda: front_end(inputs.audio, inputs.num_frames), args.repeats)
        results["front_end"][f"logmel_{seconds:g}s"] = {
            "seconds_per_second": elapsed / seconds,
            "cpu_seconds_per_second": cpu / seconds,
            "runs": runs,
        }

    for name in args.models:
        model = load_model(name, untrained=True, num_vertices=args.vertices, threads=args.threads)
        if hasattr(model.module, "vertex_map_r"):  # the published zero init would be an unusual fast path
            with torch.no_grad():
                model.module.vertex_map_r.weight.normal_(std=1e-2)
        model.predict(warmup)
        entry = {"parameters": sum(p.numel() for p in model.module.parameters()), "clips": {}}
        for seconds, inputs in clips.items():
            features = model.features(inputs)
            without, without_cpu, runs_without = timed(lambda: model.predict_from_features(features, inputs), args.repeats)
            with_front, with_cpu, runs_with = timed(lambda: model.predict(inputs), args.repeats)
            entry["clips"][f"{seconds:g}s"] = {
                "without_front_end_s_per_s": without / seconds,
                "with_logmel_s_per_s": with_front / seconds,
                "without_front_end_cpu_s_per_s": without_cpu / seconds,
                "with_logmel_cpu_s_per_s": with_cpu / seconds,
                "runs": [runs_without, runs_with],
            }
            print(json.dumps({"progress": name, "clip_s": seconds, "without_s_per_s": without / seconds}), flush=True)
        results["models"][name] = entry

    if args.hubert_large:
        from transformers import HubertConfig, HubertModel

        config = HubertConfig(
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            feat_extract_norm="layer",
            do_stable_layer_norm=True,
            conv_bias=True,
        )
        hubert = HubertFrontEnd(HubertModel(config))
        hubert(warmup.audio, warmup.num_frames)
        results["front_end"]["hubert_large_random"] = {}
        for seconds, inputs in clips.items():
            if seconds > 10:
                continue
            elapsed, cpu, runs = timed(lambda: hubert(inputs.audio, inputs.num_frames), args.repeats)
            results["front_end"]["hubert_large_random"][f"{seconds:g}s"] = {
                "seconds_per_second": elapsed / seconds,
                "cpu_seconds_per_second": cpu / seconds,
                "runs": runs,
            }

    models = results["models"]
    ratios = {}
    for seconds in args.clips:
        key = f"{seconds:g}s"
        try:
            ours = models["mmface4d"]["clips"][key]["without_front_end_s_per_s"]
            ratios[key] = {
                "faceformer_published_over_mmface4d": models["faceformer"]["clips"][key]["without_front_end_s_per_s"] / ours,
                "faceformer_cached_over_mmface4d": models["faceformer-cached"]["clips"][key]["without_front_end_s_per_s"] / ours,
            }
        except KeyError:
            continue
    results["ratios_without_front_end"] = ratios
    results["targets"] = {
        "mmface4d_20x_faster_than_published_at_10s": ratios.get("10s", {}).get("faceformer_published_over_mmface4d", 0) >= 20,
        "mmface4d_faster_than_cached_at_10s": ratios.get("10s", {}).get("faceformer_cached_over_mmface4d", 0) > 1,
        "mmface4d_with_logmel_at_most_0.1_s_per_s": all(
            clip["with_logmel_s_per_s"] <= 0.1 for clip in models.get("mmface4d", {}).get("clips", {}).values()
        ),
    }
    results["conditions"]["load_average_at_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
