"""`mmface4d reconstruct` on a rig-simulator take (capture_rig.simulate, `small` preset: 480x270 colour,
3 frames, default noise), measured against the simulator's truth, and `build release` on the output.

The test imports the simulator only to make its input; the reconstruction itself never imports
capture_rig (the layers)."""

from __future__ import annotations

import json

import numpy as np
import pytest

TAKE = "001001"
VERTICES = 2000


@pytest.mark.slow
def test_reconstruct_a_simulated_take_and_build_a_release(tmp_path):
    from capture_rig.simulate import SimulationOptions, simulate
    from mmface4d_datasets.cli import main
    from mmface4d_datasets.official import read_mesh_sequence
    from reconstruction.align import extrinsics_error

    sim = tmp_path / "sim"
    simulate(sim, 1, 1, seed=3, options=SimulationOptions(resolution="small", max_frames=3, num_vertices=VERTICES), progress=False)
    truth_meta = json.loads((sim / "truth" / TAKE / f"{TAKE}.meta.json").read_text())
    n = int(truth_meta["num_vertices"])
    out = tmp_path / "fits"
    assert main(["reconstruct", str(sim / "takes" / TAKE), "--out", str(out), "--vertices", str(n), "--quiet"]) == 0
    report = json.loads((out / TAKE / "fit_report.json").read_text())
    for c in ("0", "2"):
        angle, dist = extrinsics_error(np.array(report["extrinsics"][c]), np.array(truth_meta["extrinsics"]["cameras"][c]))
        assert angle < 2.0 and dist < 0.02, (c, angle, dist)  # 480x270: coarse; at 1080p 0.14 deg, 1.7 mm
    truth = read_mesh_sequence(sim / "truth" / TAKE / f"{TAKE}_filt", n)
    fit = read_mesh_sequence(out / TAKE / f"{TAKE}_filt", n)
    from mmface4d_datasets.facemodel import load_face_model

    lips = load_face_model("default", num_vertices=n).region_masks()["lips"]
    err = np.linalg.norm(fit - truth, axis=-1)
    # a loose bound at this low resolution (the measured figures are in docs/reconstruction.md)
    assert err[:, lips].mean() < 0.006 and err.mean() < 0.012, (err[:, lips].mean(), err.mean())
    assert main(["build", "release", str(out), "--out", str(tmp_path / "release"), "--quiet"]) == 0


@pytest.mark.slow
def test_a_default_1080p_take_is_fitted_within_the_detail_prior_bound(tmp_path):
    """Seed 33 at the rig's 1080p with the default noise: before the detail prior the fit diverged
    in stage 2 at frame 0 ("coefficients reach 9.3 sd"; 4.4 mm face mean, 9.3 mm on the forehead
    with the check off). The bound is loose against the measured 1.7 mm / 2.1 mm, tight against the
    old code."""
    from capture_rig.simulate import SimulationOptions, simulate
    from mmface4d_datasets.facemodel import load_face_model
    from mmface4d_datasets.official import read_mesh_sequence
    from reconstruction.pipeline import reconstruct_take
    from reconstruction.take_input import read_take_input

    sim = tmp_path / "sim"
    simulate(sim, 1, 1, seed=33, options=SimulationOptions(max_frames=3, num_vertices=5023), progress=False)
    model = load_face_model("default", num_vertices=5023)
    result = reconstruct_take(read_take_input(sim / "takes" / TAKE), model)
    truth = read_mesh_sequence(sim / "truth" / TAKE / f"{TAKE}_filt", model.num_vertices)
    err = np.linalg.norm(result.vertices - truth, axis=-1) * 1000
    masks = model.region_masks()
    figures = {"face": err.mean(), "lips": err[:, masks["lips"]].mean(), "forehead": err[:, masks["forehead"]].mean()}
    assert figures["face"] < 2.5 and figures["lips"] < 1.5 and figures["forehead"] < 4.0, figures
    assert result.report["detail"]["modes"] > 0 and result.report["detail"]["subject_rms_mm"] > 0.1
