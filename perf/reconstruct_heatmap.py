"""The per-vertex error picture of docs/reconstruction.md: one rig-simulator take fitted as
`mmface4d reconstruct` does, its mean error per vertex over the take (mm, smoothed output against
the simulator's truth) drawn on the model's mean face by the core renderer, with a colour bar.
Prints the figures as JSON.

    .venv/bin/python perf/reconstruct_heatmap.py SIMDIR --out docs/reconstruction_error.png [--vertices 5023]

SIMDIR: the output of ``mmface4d rig simulate --subjects 1 --sentences 1`` (its first take is used).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sim", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--vertices", type=int, default=5023)
    ap.add_argument("--size", type=int, default=480)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure

    from mmface4d_datasets.facemodel import load_face_model
    from mmface4d_datasets.official import read_mesh_sequence
    from mmface4d_datasets.render.video import render_frame
    from mmface4d_datasets.render.views import framing_camera
    from reconstruction.pipeline import reconstruct_take
    from reconstruction.take_input import read_take_input

    take_dir = sorted((args.sim / "takes").iterdir())[0]
    take = read_take_input(take_dir)
    model = load_face_model("default", num_vertices=args.vertices)
    result = reconstruct_take(take, model)
    truth = read_mesh_sequence(args.sim / "truth" / take.take_id / f"{take.take_id}_filt", model.num_vertices)
    error = (np.linalg.norm(result.vertices - truth, axis=-1) * 1000).mean(0)  # (N,) mm
    vmax = float(np.ceil(np.percentile(error, 99)))
    lut = np.asarray(matplotlib.colormaps["viridis"](np.linspace(0, 1, 256)))[:, :3]
    colours = lut[np.clip(error / vmax * 255, 0, 255).astype(int)]
    mean = np.asarray(model.mean, np.float64)
    camera = framing_camera(mean, args.size, args.size, "front", facing="+z")
    image, _ = render_frame(mean, np.asarray(model.triangles), camera, (255, 255, 255), colors=colours)
    fig = Figure(figsize=(args.size / 100 + 1.2, args.size / 100), dpi=100, facecolor="white")
    ax = fig.add_axes([0, 0, args.size / (args.size + 120), 1])
    ax.imshow(image)
    ax.axis("off")
    cax = fig.add_axes([(args.size + 20) / (args.size + 120), 0.1, 0.04, 0.8])
    from matplotlib.colorbar import ColorbarBase
    from matplotlib.colors import Normalize

    ColorbarBase(cax, cmap=matplotlib.colormaps["viridis"], norm=Normalize(0, vmax), extend="max")
    cax.set_ylabel(f"mean error over the take (mm), 0 to {vmax:g}", fontsize=8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    masks = model.region_masks()
    print(
        json.dumps(
            {
                "take": take.take_id,
                "frames": int(take.num_frames),
                "vertices": model.num_vertices,
                "face_mean_mm": round(float(error.mean()), 3),
                "regions_mm": {k: round(float(error[m].mean()), 3) for k, m in masks.items()},
                "colour_scale_max_mm": vmax,
                "picture": str(args.out),
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
