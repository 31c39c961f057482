"""Record the Azure Kinect SDK's own answers on the real recording, for the registration tests.

Runs in the recording environment (numpy < 2 with ``pyk4a-bundle``; ``./setup-rig.sh`` makes
``.venv-rig``), never in the main one:

    .venv-rig/bin/python tests/data/make_k4a_sdk_oracle.py [RECORDING.mkv] > tests/data/k4a_sdk_oracle.json

For depth pixels sampled (seeded) from the recording's first capture it stores the depth the SDK
hands out (uint16 mm), the SDK's ``convert_2d_to_3d`` of that pixel into the depth camera and into
the colour camera (mm), and ``convert_3d_to_2d`` of the colour-camera point (colour pixels), plus
the SDK's camera matrices, distortion and depth-to-colour extrinsics for the recorded mode.
"""

import json
import os
import sys

import numpy as np
from pyk4a import CalibrationType, PyK4APlayback

DEFAULT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures", "k4a_recording",
                       "recording.mkv")
SAMPLES = 200
SEED = 16


def main(path: str) -> dict:
    playback = PyK4APlayback(path)
    playback.open()
    try:
        calibration = playback.calibration
        capture = playback.get_next_capture()
        depth = np.asarray(capture.depth)
        rng = np.random.default_rng(SEED)
        vs, us = np.nonzero(depth > 0)
        pick = rng.choice(len(us), size=SAMPLES, replace=False)
        rows = []
        for u, v in zip(us[pick].tolist(), vs[pick].tolist()):
            d = int(depth[v, u])
            p_depth = calibration.convert_2d_to_3d((u, v), d, CalibrationType.DEPTH, CalibrationType.DEPTH)
            p_colour = calibration.convert_2d_to_3d((u, v), d, CalibrationType.DEPTH, CalibrationType.COLOR)
            try:
                pixel = calibration.convert_3d_to_2d(p_colour, CalibrationType.COLOR, CalibrationType.COLOR)
                pixel = [float(pixel[0]), float(pixel[1])]
            except ValueError:  # the SDK reports the point as outside the colour camera's valid area
                pixel = None
            rows.append({"depth_pixel": [u, v], "depth_mm": d,
                         "point_depth_camera_mm": [float(x) for x in p_depth],
                         "point_colour_camera_mm": [float(x) for x in p_colour],
                         "colour_pixel": pixel})
        rotation, translation = calibration.get_extrinsic_parameters(CalibrationType.DEPTH, CalibrationType.COLOR)
        return {
            "source": "Azure Kinect SDK 1.4 via pyk4a-bundle 1.5 (PyK4APlayback calibration), "
                      "tests/data/make_k4a_sdk_oracle.py",
            "recording": "shared/fixtures/k4a_recording/recording.mkv (pyk4a tests/assets/recording.mkv)",
            "seed": SEED,
            "depth_timestamp_usec": int(capture.depth_timestamp_usec),
            "depth_camera_matrix": np.asarray(calibration.get_camera_matrix(CalibrationType.DEPTH)).tolist(),
            "depth_distortion": np.asarray(calibration.get_distortion_coefficients(CalibrationType.DEPTH)).tolist(),
            "colour_camera_matrix": np.asarray(calibration.get_camera_matrix(CalibrationType.COLOR)).tolist(),
            "colour_distortion": np.asarray(calibration.get_distortion_coefficients(CalibrationType.COLOR)).tolist(),
            "depth_to_colour_rotation": np.asarray(rotation).tolist(),
            "depth_to_colour_translation_m": np.asarray(translation).reshape(3).tolist(),
            "samples": rows,
        }
    finally:
        playback.close()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else DEFAULT), separators=(",", ":")))
