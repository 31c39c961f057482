"""The BFM loader on small files with the real layout, and the fixture's public topology files."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from mmface4d_datasets.errors import FormatError, MMFace4DError
from mmface4d_datasets.facemodel import face_model_for_topology, load_face_model
from mmface4d_datasets.facemodel.bfm import BFM_FILE_NAMES, bfm_topology, read_expression_basis
from mmface4d_datasets.facemodel.landmarks import WFLW98_TO_IBUG68, wflw98_to_ibug68

FULL, EXPRESSION_MESH, FRONT = 100, 90, 75  # vertex counts (real files: 53,490 / 53,215 / 35,709)
SHAPE_COMPONENTS, EXPRESSION_COMPONENTS = 85, 66  # real files: 199 / 79


def _write_small_bfm(folder, seed=0, *, texture=True):
    """Files with exactly the layout of the real ones (DESIGN.md), tiny; returns what was written."""
    rng = np.random.default_rng(seed)
    made = {
        "shapeMU": rng.normal(0, 5e4, (3 * FULL, 1)),  # micrometres
        "shapePC": rng.normal(0, 1, (3 * FULL, SHAPE_COMPONENTS)),
        "shapeEV": rng.uniform(100, 2000, (SHAPE_COMPONENTS, 1)),
        "tl": np.array([[1, 2, 3]]),
    }
    if texture:
        made |= {
            "texMU": rng.uniform(0, 255, (3 * FULL, 1)),
            "texPC": rng.normal(0, 1, (3 * FULL, SHAPE_COMPONENTS)),
            "texEV": rng.uniform(1, 20, (SHAPE_COMPONENTS, 1)),
        }
    scipy.io.savemat(folder / "01_MorphableModel.mat", made)
    exp_mu = rng.normal(0, 1, 3 * EXPRESSION_MESH).astype(np.float32)
    exp_rows = rng.normal(0, 1, (EXPRESSION_COMPONENTS, 3 * EXPRESSION_MESH)).astype(np.float32)
    with open(folder / "Exp_Pca.bin", "wb") as handle:
        np.array([EXPRESSION_COMPONENTS], dtype="<i4").tofile(handle)
        exp_mu.astype("<f4").tofile(handle)
        exp_rows.astype("<f4").tofile(handle)  # n rows of 3 M, as the real file
    std = rng.uniform(100, 5000, EXPRESSION_COMPONENTS)
    np.savetxt(folder / "std_exp.txt", std[None], fmt="%.6g")
    std = np.loadtxt(folder / "std_exp.txt")  # the values as written
    trim = rng.choice(FULL, EXPRESSION_MESH, replace=False) + 1  # expression mesh -> full mesh, 1-based
    idx = rng.choice(EXPRESSION_MESH, FRONT, replace=False) + 1  # front -> expression mesh, 1-based
    scipy.io.savemat(folder / "BFM_exp_idx.mat", {"trimIndex": trim[:, None].astype(np.uint16)})
    scipy.io.savemat(folder / "BFM_front_idx.mat", {"idx": idx[:, None].astype(np.float32)})
    grid = np.arange(FRONT).reshape(5, 15)
    triangles = []
    for r in range(4):
        for c in range(14):
            triangles += [[grid[r, c], grid[r, c + 1], grid[r + 1, c + 1]], [grid[r, c], grid[r + 1, c + 1], grid[r + 1, c]]]
    keypoints = rng.choice(FRONT, 68, replace=False)
    scipy.io.savemat(
        folder / "facemodel_info.mat",
        {
            "tri": np.array(triangles, dtype=np.float32) + 1,
            "keypoints": keypoints[None].astype(np.float32) + 1,
            "point_buf": np.ones((FRONT, 8), dtype=np.float32),
        },
    )
    return made, exp_rows, std, trim, idx, np.array(triangles), keypoints


def test_small_files_assemble_as_computed_by_hand(tmp_path):
    made, exp_rows, std, trim, idx, triangles, keypoints = _write_small_bfm(tmp_path)
    model = load_face_model("bfm", folder=tmp_path)
    assert model.topology == "bfm_front" and model.num_vertices == FRONT
    assert model.identity_basis.shape == (80, FRONT, 3) and model.expression_basis.shape == (64, FRONT, 3)
    for front_vertex in (0, 17, FRONT - 1):
        e = idx[front_vertex] - 1  # vertex of the expression mesh
        s = trim[e] - 1  # vertex of the full mesh
        xyz = slice(3 * s, 3 * s + 3)
        np.testing.assert_allclose(model.mean[front_vertex], made["shapeMU"][xyz, 0] / 1e6, rtol=1e-6)
        for k in (0, 41, 79):
            expected = made["shapePC"][xyz, k] * made["shapeEV"][k, 0] / 1e6
            np.testing.assert_allclose(model.identity_basis[k, front_vertex], expected, rtol=1e-5)
        for k in (0, 30, 63):
            expected = exp_rows[k, 3 * e : 3 * e + 3].astype(np.float64) * std[k] / 1e6
            np.testing.assert_allclose(model.expression_basis[k, front_vertex], expected, rtol=1e-5)
        np.testing.assert_allclose(model.texture_mean[front_vertex], made["texMU"][xyz, 0], rtol=1e-6)
        tex = made["texPC"][xyz, 5] * made["texEV"][5, 0]
        np.testing.assert_allclose(model.texture_basis[5, front_vertex], tex, rtol=1e-5)
    assert np.array_equal(model.triangles, triangles) and np.array_equal(model.keypoints, keypoints)
    # explicit paths win over the folder; recentring moves only the mean
    centred = load_face_model("bfm", folder=tmp_path, recenter=True)
    np.testing.assert_allclose(centred.mean.mean(axis=0), 0.0, atol=1e-7)
    np.testing.assert_allclose(centred.mean - model.mean, np.broadcast_to(centred.mean[0] - model.mean[0], model.mean.shape), atol=1e-7)


def test_individual_paths_and_no_texture(tmp_path):
    _write_small_bfm(tmp_path, texture=False)
    paths = {key: tmp_path / name for key, name in BFM_FILE_NAMES.items()}
    model = face_model_for_topology("bfm_front", **paths)
    assert model.texture_mean is None and model.texture_basis is None
    assert model.vertices(np.ones(80), np.ones(64)).shape == (FRONT, 3)


def test_expression_file_layout_is_checked(tmp_path):
    _write_small_bfm(tmp_path)
    exp_mu, exp_pc = read_expression_basis(tmp_path / "Exp_Pca.bin")
    assert exp_mu.shape == (3 * EXPRESSION_MESH,) and exp_pc.shape == (3 * EXPRESSION_MESH, EXPRESSION_COMPONENTS)
    data = (tmp_path / "Exp_Pca.bin").read_bytes()
    (tmp_path / "Exp_Pca.bin").write_bytes(data[:-8])
    with pytest.raises(FormatError, match="Exp_Pca.bin.*do not hold"):
        load_face_model("bfm", folder=tmp_path)


def test_missing_and_malformed_files_are_named(tmp_path, official_sample):
    # the fixture's BFM folder has the public files only: the licence-gated model is named, with its source
    with pytest.raises(MMFace4DError, match=r"01_MorphableModel\.mat does not exist.*Basel Face Model 2009"):
        load_face_model("bfm", folder=official_sample / "BFM")
    _write_small_bfm(tmp_path)
    scipy.io.savemat(tmp_path / "BFM_front_idx.mat", {"idx": np.array([[0.0], [3.0]])})
    with pytest.raises(FormatError, match=r"BFM_front_idx\.mat: idx must hold 1-based indices"):
        load_face_model("bfm", folder=tmp_path)
    _write_small_bfm(tmp_path)
    scipy.io.savemat(tmp_path / "01_MorphableModel.mat", {"shapeMU": np.zeros((9, 1))})
    with pytest.raises(FormatError, match=r"01_MorphableModel\.mat: lacks the variable\(s\) shapePC, shapeEV"):
        load_face_model("bfm", folder=tmp_path)
    (tmp_path / "facemodel_info.mat").write_text("not a mat file")
    with pytest.raises(FormatError, match=r"facemodel_info\.mat: not a readable MATLAB"):
        bfm_topology(tmp_path / "facemodel_info.mat")


def test_fixture_topology_files_give_the_bfm_front_topology(official_sample):
    topology = bfm_topology(official_sample / "BFM" / "facemodel_info.mat")
    assert topology.topology == "bfm_front"
    assert topology.num_vertices == 35709 and topology.triangles.shape == (70789, 3)
    assert topology.triangles.min() == 0 and topology.triangles.max() == 35708
    assert topology.keypoints.shape == (68,) and len(set(topology.keypoints.tolist())) == 68
    # the same triangles as the authors' bfm_faces.pkl, read through the restricted unpickler
    from mmface4d_datasets.safe_pickle import loads

    faces = np.asarray(loads((official_sample / "bfm_faces.pkl").read_bytes(), "bfm_faces.pkl"))
    assert np.array_equal(faces, topology.triangles)
    # the front-face index files fit the documented layout: idx into the 53,215-vertex expression mesh,
    # trimIndex from it into the 53,490-vertex BFM mesh
    idx = scipy.io.loadmat(official_sample / "BFM" / "BFM_front_idx.mat")["idx"].ravel()
    trim = scipy.io.loadmat(official_sample / "BFM" / "BFM_exp_idx.mat")["trimIndex"].ravel()
    assert idx.shape == (35709,) and 1 <= idx.min() and idx.max() <= 53215 and len(np.unique(idx)) == 35709
    assert trim.shape == (53215,) and 1 <= trim.min() and trim.max() <= 53490


def test_wflw_to_ibug_table():
    assert WFLW98_TO_IBUG68.shape == (68,) and len(np.unique(WFLW98_TO_IBUG68)) == 68
    assert WFLW98_TO_IBUG68[[0, 8, 16, 30, 36, 45, 48, 54, 60, 67]].tolist() == [0, 16, 32, 54, 60, 72, 76, 82, 88, 95]
    points = np.arange(98 * 2).reshape(98, 2)
    assert np.array_equal(wflw98_to_ibug68(points[None])[0, :, 0] // 2, WFLW98_TO_IBUG68)
    with pytest.raises(ValueError, match="98"):
        wflw98_to_ibug68(np.zeros((68, 2)))


def test_fixture_keypoints_project_onto_camera_1_landmarks(official_sample):
    """The released mesh is in camera 1's frame: its 68 keypoints, projected with camera 1's
    intrinsics, land on the released 98-point landmarks mapped to iBUG 68 (measured: median 4.2 px
    over all points and frames; eye corners 4.8, mouth corners 4.2, nose tip 4.9, chin 8.8)."""
    from mmface4d_datasets.official import read_intrinsics, read_landmarks, read_mesh_sequence

    topology = bfm_topology(official_sample / "BFM" / "facemodel_info.mat")
    vertices = read_mesh_sequence(official_sample / "reconstruct_filt", 35709)
    intrinsics = read_intrinsics(official_sample / "000337_1.json")
    landmarks = wflw98_to_ibug68(read_landmarks(official_sample / "000337_1.pkl"))
    frames = min(len(vertices), len(landmarks))
    assert frames == 67
    camera_points = vertices[:frames, topology.keypoints].astype(np.float64)
    projected = camera_points @ intrinsics.T
    pixels = projected[..., :2] / projected[..., 2:]
    error = np.linalg.norm(pixels - landmarks[:frames], axis=-1)  # (frames, 68) pixels
    corners_and_tip = [36, 39, 42, 45, 48, 54, 30]
    assert np.median(error[:, corners_and_tip]) < 6.0
    assert np.all(np.median(error[:, corners_and_tip], axis=0) < 8.0)
    assert np.percentile(error[:, corners_and_tip], 95) < 10.0
    assert np.median(error[:, 8]) < 12.0  # the chin
    assert np.median(error) < 6.0
    # the check can fail: left and right swapped (a mirrored layout) is far off
    swapped = np.linalg.norm(pixels[:, [45, 42, 39, 36, 54, 48]] - landmarks[:frames, [36, 39, 42, 45, 48, 54]], axis=-1)
    assert np.median(swapped) > 20.0


def test_show_and_info_draw_a_bfm_model_from_a_folder(tmp_path, capsys):
    import json

    from mmface4d_datasets.cli import main

    _write_small_bfm(tmp_path)
    out = tmp_path / "bfm.png"
    assert main(["facemodel", "show", "--model", "bfm", "--bfm-dir", str(tmp_path), "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    capsys.readouterr()
    assert main(["facemodel", "info", "--model", "bfm", "--bfm-dir", str(tmp_path)]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["topology"] == "bfm_front" and facts["num_vertices"] == FRONT and facts["region_sizes"]["face"] == FRONT
