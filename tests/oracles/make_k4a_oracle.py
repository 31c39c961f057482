"""Record the Azure Kinect SDK's own projections as a test fixture (tests/data/k4a_oracle.json).

The SDK (libk4a 1.4.2 through the `pyk4a-bundle` wheel) only imports with numpy < 2, so this runs in
a separate throwaway environment, never in the project's:

    python3 -m venv /tmp/k4a-venv && /tmp/k4a-venv/bin/pip install 'numpy<2' pyk4a-bundle
    /tmp/k4a-venv/bin/python tests/oracles/make_k4a_oracle.py [RECORDING.mkv] [--out tests/data/k4a_oracle.json]

It reads the calibration of the real recording (../shared/fixtures/k4a_recording/recording.mkv by
default), and for several colour resolutions / depth modes records what `convert_3d_to_2d` and
`convert_2d_to_3d` return for seeded random points (or that the SDK calls them invalid), together
with the SDK's camera matrices. The file keeps only these outputs and the calibration's sha256, not
the calibration itself: tests read the calibration from the recording and skip where it is absent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
from pyk4a import CalibrationType, ColorResolution, DepthMode, PyK4APlayback
from pyk4a.calibration import Calibration

MODES = [("720P", "NFOV_UNBINNED"), ("1080P", "NFOV_UNBINNED"), ("3072P", "WFOV_2X2BINNED"), ("1536P", "NFOV_2X2BINNED")]
POINTS_PER_KIND = 30


def _project(cal, point, source, target):
    try:
        return [round(float(v), 6) for v in cal.convert_3d_to_2d(tuple(float(c) for c in point), source, target)]
    except ValueError:
        return None


def _unproject(cal, pixel, depth, source, target):
    try:
        return [round(float(v), 6) for v in cal.convert_2d_to_3d(tuple(float(c) for c in pixel), float(depth), source, target)]
    except ValueError:
        return None


def _random_points(rng, K, width, height, count, spread=1.3):
    """Points in a camera's frame (mm) whose pinhole images cover the image and a margin beyond it."""
    u = rng.uniform(-(spread - 1) * width, spread * width, count)
    v = rng.uniform(-(spread - 1) * height, spread * height, count)
    z = rng.uniform(300.0, 3000.0, count)
    x = (u - K[0, 2]) / K[0, 0] * z
    y = (v - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "k4a_recording" / "recording.mkv"
    parser.add_argument("recording", nargs="?", default=str(default))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "k4a_oracle.json"))
    args = parser.parse_args()

    playback = PyK4APlayback(args.recording)
    playback.open()
    raw = playback.calibration_raw
    playback.close()
    rng = np.random.default_rng(20261130)
    out = {
        "calibration_sha256": hashlib.sha256(raw.encode("utf-8")).hexdigest(),
        "sdk": "libk4a 1.4.2 via pyk4a-bundle 1.5.0",
        "units": "millimetres, pixels",
        "modes": [],
    }
    color_t, depth_t = CalibrationType.COLOR, CalibrationType.DEPTH
    for color_name, depth_name in MODES:
        cal = Calibration.from_raw(raw, getattr(DepthMode, depth_name), getattr(ColorResolution, "RES_" + color_name))
        Kc, Kd = cal.get_camera_matrix(color_t), cal.get_camera_matrix(depth_t)
        # sizes of the modes (the SDK's table)
        sizes = {"720P": (1280, 720), "1080P": (1920, 1080), "3072P": (4096, 3072), "1536P": (2048, 1536)}
        dsizes = {"NFOV_UNBINNED": (640, 576), "WFOV_2X2BINNED": (512, 512), "NFOV_2X2BINNED": (320, 288)}
        (cw, ch), (dw, dh) = sizes[color_name], dsizes[depth_name]
        record = {
            "color_resolution": color_name,
            "depth_mode": depth_name,
            "color_matrix": Kc.tolist(),
            "depth_matrix": Kd.tolist(),
            "color_distortion": cal.get_distortion_coefficients(color_t).tolist(),
            "depth_distortion": cal.get_distortion_coefficients(depth_t).tolist(),
        }
        # inputs rounded to what the file stores, so the test feeds our code exactly the SDK's inputs
        pc = np.round(_random_points(rng, Kc, cw, ch, POINTS_PER_KIND), 3)
        pd = np.round(_random_points(rng, Kd, dw, dh, POINTS_PER_KIND), 3)
        record["color_to_color_2d"] = [[p.tolist(), _project(cal, p, color_t, color_t)] for p in pc]
        record["depth_to_depth_2d"] = [[p.tolist(), _project(cal, p, depth_t, depth_t)] for p in pd]
        record["depth_to_color_2d"] = [[p.tolist(), _project(cal, p, depth_t, color_t)] for p in pd]
        pix_c = np.stack([rng.uniform(0, cw - 1, POINTS_PER_KIND), rng.uniform(0, ch - 1, POINTS_PER_KIND)], 1)
        pix_d = np.stack([rng.uniform(0, dw - 1, POINTS_PER_KIND), rng.uniform(0, dh - 1, POINTS_PER_KIND)], 1)
        pix_c, pix_d = np.round(pix_c, 4), np.round(pix_d, 4)
        depth = np.round(rng.uniform(300.0, 3000.0, POINTS_PER_KIND), 3)
        record["color_2d_to_3d"] = [[p.tolist(), float(z), _unproject(cal, p, z, color_t, color_t)] for p, z in zip(pix_c, depth)]
        record["depth_2d_to_3d"] = [[p.tolist(), float(z), _unproject(cal, p, z, depth_t, depth_t)] for p, z in zip(pix_d, depth)]
        record["depth_2d_to_color_3d"] = [[p.tolist(), float(z), _unproject(cal, p, z, depth_t, color_t)] for p, z in zip(pix_d, depth)]
        out["modes"].append(record)
    Path(args.out).write_text(json.dumps(out, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
