"""Region masks: one rule on the triangle graph and the keypoints, for both topologies."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.facemodel import REGION_NAMES, REGION_RULE_VERSION, load_face_model, region_masks
from mmface4d_datasets.facemodel.embedded import EYE_Y, MOUTH_Y

# sha256 over (name, int64 little-endian ids) of the sorted region names, for the BFM front
# topology of the fixture's BFM/facemodel_info.mat under rule "hop_bands_v2". A change here
# changes the benchmark's definition: bump REGION_RULE_VERSION and say so in the release notes.
BFM_MASKS_SHA256 = "97437bc5c6fdde206f6cddc055b0a925307cf66626250b4f0671ca4a68fc79ed"
# the six masks of "hop_bands_v1" (the benchmark's lips and upper_face among them), unchanged in v2
BFM_V1_MASKS_SHA256 = "c7bb3ddeea395d10ca2d6837b0414c695dd8b3eb99669896386b91fadaf3f24d"
V1_NAMES = ("lips", "upper_face", "face", "eyes", "nose", "forehead")
BFM_MASK_SIZES = {
    "lips": 2049,
    "upper_face": 16199,
    "face": 35709,
    "eyes": 1842,
    "nose": 1527,
    "forehead": 5392,
    "chin": 2455,
    "cheeks": 10055,
    "border": 2916,
}


def _masks_digest(masks) -> str:
    h = hashlib.sha256()
    for name in sorted(masks):
        h.update(name.encode())
        h.update(np.asarray(masks[name], dtype="<i8").tobytes())
    return h.hexdigest()


def _check_mask_invariants(masks, num_vertices):
    assert tuple(masks) == REGION_NAMES
    for name, ids in masks.items():
        assert ids.dtype == np.int64 and ids.ndim == 1 and len(ids) > 0, name
        assert np.all(np.diff(ids) > 0) and ids[0] >= 0 and ids[-1] < num_vertices, name
    assert np.array_equal(masks["face"], np.arange(num_vertices))
    assert not np.intersect1d(masks["lips"], masks["upper_face"]).size  # the benchmark needs these apart
    assert not np.intersect1d(masks["eyes"], masks["forehead"]).size
    assert not np.intersect1d(masks["lips"], masks["eyes"]).size
    # eyes and forehead are parts of the upper face
    assert np.isin(masks["eyes"], masks["upper_face"]).mean() > 0.95
    assert np.isin(masks["forehead"], masks["upper_face"]).mean() > 0.95


@pytest.fixture(scope="module")
def embedded():
    return load_face_model(num_vertices=5023)


def test_embedded_masks_hold_their_invariants_and_sit_where_their_names_say(embedded):
    masks = embedded.region_masks()
    _check_mask_invariants(masks, embedded.num_vertices)
    y = embedded.mean[:, 1]
    assert np.all(np.abs(y[masks["lips"]] - MOUTH_Y) < 0.025)  # metres around the mouth line
    assert np.all(y[masks["upper_face"]] > MOUTH_Y + 0.015)  # nothing of the mouth or jaw
    assert np.all(y[masks["forehead"]] > EYE_Y)
    assert np.all(np.abs(y[masks["eyes"]] - EYE_Y) < 0.02)
    assert np.all(np.abs(embedded.mean[masks["nose"], 0]) < 0.03)
    assert np.all(y[masks["chin"]] < MOUTH_Y - 0.01)  # below the mouth
    assert np.all(np.abs(embedded.mean[masks["cheeks"], 0]) > 0.01) and np.all(y[masks["cheeks"]] < EYE_Y)
    assert not np.intersect1d(masks["cheeks"], masks["lips"]).size and not np.intersect1d(masks["chin"], masks["lips"]).size
    # the border ring holds the mesh's boundary and is a thin share of the face
    from mmface4d_datasets.facemodel.topology import boundary_vertices

    assert np.isin(np.flatnonzero(boundary_vertices(embedded.triangles, embedded.num_vertices)), masks["border"]).all()
    assert 0.05 < len(masks["border"]) / embedded.num_vertices < 0.2
    # every lip landmark is a lips vertex; every eye landmark an eyes vertex
    assert np.isin(embedded.keypoints[48:68], masks["lips"]).all()
    assert np.isin(embedded.keypoints[36:48], masks["eyes"]).all()
    assert np.isin(embedded.keypoints[27:36], masks["nose"]).all()


def test_masks_are_stable_and_about_resolution_independent(embedded):
    first = embedded.region_masks()
    again = region_masks(embedded.triangles.copy(), embedded.keypoints.copy(), embedded.num_vertices)
    assert _masks_digest(first) == _masks_digest(again)
    # triangle order and orientation do not matter (only the graph does)
    shuffled = embedded.triangles[np.random.default_rng(0).permutation(len(embedded.triangles))][:, [0, 2, 1]]
    assert _masks_digest(region_masks(shuffled, embedded.keypoints, embedded.num_vertices)) == _masks_digest(first)
    coarse = load_face_model(num_vertices=1500)
    coarse_masks = coarse.region_masks()
    for name in ("lips", "upper_face", "eyes", "nose", "forehead", "chin", "cheeks", "border"):
        fine_share = len(first[name]) / embedded.num_vertices
        coarse_share = len(coarse_masks[name]) / coarse.num_vertices
        assert coarse_share == pytest.approx(fine_share, rel=0.4), name


def test_bad_inputs_are_named(embedded):
    with pytest.raises(MMFace4DError, match="68 keypoint"):
        region_masks(embedded.triangles, embedded.keypoints[:60], embedded.num_vertices)
    with pytest.raises(MMFace4DError, match="region masks"):
        region_masks(embedded.triangles, embedded.keypoints, 10)
    # two triangles far from each other: the eye corners are not connected
    keypoints = np.arange(68)
    keypoints[45] = 70
    triangles = np.array([[0, 1, 2], [70, 71, 72]])
    with pytest.raises(MMFace4DError, match="not connected"):
        region_masks(triangles, keypoints, 73)


def test_bfm_masks_from_the_fixture_topology_are_pinned(official_sample):
    from mmface4d_datasets.facemodel.bfm import bfm_topology

    topology = bfm_topology(official_sample / "BFM" / "facemodel_info.mat")
    masks = region_masks(topology.triangles, topology.keypoints, topology.num_vertices)
    _check_mask_invariants(masks, 35709)
    assert REGION_RULE_VERSION == "hop_bands_v2"
    assert {name: len(ids) for name, ids in masks.items()} == BFM_MASK_SIZES
    assert _masks_digest(masks) == BFM_MASKS_SHA256
    assert _masks_digest({name: masks[name] for name in V1_NAMES}) == BFM_V1_MASKS_SHA256
    # the authors' own eye masks lie inside our eyes, their nostrils inside our nose
    authors = json.loads((official_sample / "bfm_mask.json").read_text())
    assert np.isin(authors["left_eye"], masks["eyes"]).mean() > 0.95
    assert np.isin(authors["right_eye"], masks["eyes"]).mean() > 0.95
    assert np.isin(authors["nostril"], masks["nose"]).mean() > 0.95
    assert np.isin(topology.keypoints[48:68], masks["lips"]).all()


def test_bfm_masks_sit_where_their_names_say_on_the_fixture_mesh(official_sample):
    """Geometry read at test time from the released mesh (camera 1 frame: y down), never stored."""
    from mmface4d_datasets.facemodel.bfm import bfm_topology
    from mmface4d_datasets.official import read_mesh_sequence

    topology = bfm_topology(official_sample / "BFM" / "facemodel_info.mat")
    masks = region_masks(topology.triangles, topology.keypoints, topology.num_vertices)
    frame = read_mesh_sequence(official_sample / "reconstruct_filt", 35709)[0]
    down = frame[:, 1]  # camera y points down
    mouth_line = down[topology.keypoints[[48, 54]]].mean()
    eye_line = down[topology.keypoints[36:48]].mean()
    assert np.all(np.abs(down[masks["lips"]] - mouth_line) < 0.03)
    assert np.all(down[masks["upper_face"]] < mouth_line - 0.01)  # metres above the mouth
    assert np.all(down[masks["forehead"]] < eye_line + 0.01)
