"""The embedded face model synthetic_v1@N: exact sizes, determinism, geometry, landmarks, modes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.facemodel import FaceModel, face_model_for_topology, load_face_model
from mmface4d_datasets.facemodel.embedded import (
    DEFAULT_NUM_VERTICES,
    EXPRESSION_NAMES,
    embedded_face_model,
    parse_synthetic_topology,
)
from mmface4d_datasets.facemodel.topology import edges, vertex_normals

N = 1500


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return load_face_model("default", num_vertices=N)


@pytest.fixture(scope="module")
def default_model() -> FaceModel:
    return load_face_model()


def _digest(model: FaceModel) -> str:
    h = hashlib.sha256()
    for array in (model.mean, model.identity_basis, model.expression_basis, model.triangles, model.keypoints):
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("num_vertices", [500, 777, 2048, pytest.param(35709, marks=pytest.mark.slow)])
def test_exactly_the_requested_vertex_count_and_a_clean_mesh(num_vertices):
    m = load_face_model(num_vertices=num_vertices)
    assert m.num_vertices == num_vertices and m.mean.shape == (num_vertices, 3)
    assert m.topology == f"synthetic_v1@{num_vertices}"
    assert m.identity_basis.shape == (80, num_vertices, 3) and m.expression_basis.shape == (64, num_vertices, 3)
    # every vertex is used, every edge borders one or two triangles, no triangle repeats a vertex
    assert np.array_equal(np.unique(m.triangles), np.arange(num_vertices))
    assert (np.diff(np.sort(m.triangles, axis=1), axis=1) > 0).all()
    pairs = np.sort(np.concatenate([m.triangles[:, [0, 1]], m.triangles[:, [1, 2]], m.triangles[:, [2, 0]]]), axis=1)
    _, counts = np.unique(pairs, axis=0, return_counts=True)
    assert counts.max() == 2
    # one connected sheet with one hole, the mouth slit: Euler characteristic 0
    assert num_vertices - len(edges(m.triangles)) + len(m.triangles) == 0
    # triangles face the viewer: normals point +z (out of the face)
    a, b, c = (m.mean[m.triangles[:, k]] for k in range(3))
    assert (np.cross(b - a, c - a)[:, 2] > 0).mean() > 0.99
    assert len(set(m.keypoints.tolist())) == 68


def test_default_size_and_face_like_extent(default_model):
    assert DEFAULT_NUM_VERTICES == 5023 and default_model.num_vertices == 5023
    extent = default_model.mean.max(axis=0) - default_model.mean.min(axis=0)
    assert extent[0] == pytest.approx(0.15, abs=0.005)  # metres
    assert extent[1] == pytest.approx(0.20, abs=0.005)
    assert 0.10 < extent[2] < 0.13
    # the nose tip is the most forward landmark, and normals there point forward
    kp = default_model.keypoints
    assert np.argmax(default_model.mean[kp, 2]) in (29, 30, 31, 32, 33, 34, 35)
    normals = vertex_normals(default_model.mean, default_model.triangles)
    assert normals[kp[30], 2] > 0.9


def test_same_seed_same_bytes_and_the_seed_changes_only_the_random_modes():
    first = _digest(embedded_face_model(600, seed=3))
    embedded_face_model.cache_clear()
    again = embedded_face_model(600, seed=3)
    assert _digest(again) == first
    other = embedded_face_model(600, seed=4)
    assert np.array_equal(other.triangles, again.triangles) and np.array_equal(other.keypoints, again.keypoints)
    assert np.array_equal(other.mean, again.mean)
    named = len(EXPRESSION_NAMES)
    assert np.array_equal(other.expression_basis[:named], again.expression_basis[:named])
    assert not np.allclose(other.expression_basis[named:], again.expression_basis[named:])
    assert not np.allclose(other.identity_basis, again.identity_basis)


def test_topology_names_round_trip():
    m = face_model_for_topology("synthetic_v1@640")
    assert m.num_vertices == 640 and m.topology == "synthetic_v1@640"
    assert parse_synthetic_topology("synthetic_v1@5023") == 5023
    for bad in ("synthetic_v2@500", "synthetic_v1@", "bfm", "synthetic_v1@12x"):
        with pytest.raises(MMFace4DError, match="topology"):
            face_model_for_topology(bad)
    with pytest.raises(MMFace4DError, match=r"\[500, 200000\]"):
        load_face_model(num_vertices=100)
    with pytest.raises(MMFace4DError, match="unknown face model"):
        load_face_model("flame")


def test_landmarks_are_placed_anatomically(model):
    p = model.mean[model.keypoints]
    assert p[0, 0] < 0 < p[16, 0]  # iBUG order runs from the subject's right (-x) to the left
    assert p[8, 1] < p[:, 1].min() + 0.003  # the chin is (within a vertex spacing) the lowest landmark
    assert abs(p[8, 0]) < 0.005 and abs(p[30, 0]) < 0.005 and abs(p[62, 0]) < 0.005
    brows, eyes = p[17:27, 1].mean(), p[36:48, 1].mean()
    assert brows > eyes > p[30, 1] > p[33, 1] > p[51, 1] > p[57, 1] > p[8, 1]
    assert p[36:42, 0].max() < 0 < p[42:48, 0].min()  # right eye at -x, left eye at +x
    assert p[48, 0] < p[60, 0] < p[64, 0] < p[54, 0]
    # the inner lips touch at rest: the mouth is closed but upper and lower lip are separate vertices
    assert np.linalg.norm(p[62] - p[66]) < 1e-6 and model.keypoints[62] != model.keypoints[66]


def _expression_landmarks(model: FaceModel, name: str, coefficient: float = 1.0) -> np.ndarray:
    coefficients = np.zeros(64)
    coefficients[model.expression_index(name)] = coefficient
    return model.vertices(expression=coefficients)[model.keypoints]


def test_jaw_open_lowers_the_chin_and_opens_the_lips(default_model):
    rest = default_model.mean[default_model.keypoints]
    moved = _expression_landmarks(default_model, "jaw_open")
    assert moved[62, 1] - moved[66, 1] == pytest.approx(0.010, abs=1e-6)  # 10 mm by construction
    assert rest[8, 1] - moved[8, 1] > 0.008  # the chin drops 9.5 mm (measured)
    assert np.abs(moved[17:48] - rest[17:48]).max() < 1e-4  # brows, nose bridge and eyes stay
    # linear: half the coefficient, half the opening
    half = _expression_landmarks(default_model, "jaw_open", 0.5)
    assert half[62, 1] - half[66, 1] == pytest.approx(0.005, abs=1e-6)


def test_smile_moves_the_mouth_corners_out_and_up(default_model):
    rest = default_model.mean[default_model.keypoints]
    delta = _expression_landmarks(default_model, "smile") - rest
    assert delta[48, 0] < -0.003 and delta[54, 0] > 0.003  # outward, measured 3.5 mm
    assert delta[48, 1] > 0.0035 and delta[54, 1] > 0.0035  # upward, measured 4 mm
    assert np.abs(delta[17:48]).max() < 1e-3  # the cheeks' rise reaches the nose base (0.8 mm)


def test_lip_stretch_pucker_and_press(default_model):
    rest = default_model.mean[default_model.keypoints]
    width = rest[54, 0] - rest[48, 0]
    stretched = _expression_landmarks(default_model, "lip_stretch")
    assert stretched[54, 0] - stretched[48, 0] - width > 0.006  # measured 7.7 mm wider
    puckered = _expression_landmarks(default_model, "lip_pucker")
    assert width - (puckered[54, 0] - puckered[48, 0]) > 0.004  # measured 5.8 mm narrower
    assert puckered[51, 2] - rest[51, 2] > 0.004 and puckered[57, 2] - rest[57, 2] > 0.003  # lips forward
    pressed = _expression_landmarks(default_model, "lip_press")
    height = rest[51, 1] - rest[57, 1]
    assert height - (pressed[51, 1] - pressed[57, 1]) > 0.002  # the lips thin
    assert np.linalg.norm(pressed[62] - pressed[66]) < 1e-6  # and stay closed


def test_brow_raise_lifts_the_brows_only(default_model):
    rest = default_model.mean[default_model.keypoints]
    delta = _expression_landmarks(default_model, "brow_raise") - rest
    assert delta[17:27, 1].min() > 0.004  # measured 4.5 to 5 mm
    assert np.abs(delta[27:68]).max() < 2e-4 and np.abs(delta[:17]).max() < 5e-4


def test_eye_blink_closes_both_eyes(default_model):
    rest = default_model.mean[default_model.keypoints]
    moved = _expression_landmarks(default_model, "eye_blink")
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        before = np.linalg.norm(rest[upper] - rest[lower])
        after = np.linalg.norm(moved[upper] - moved[lower])
        assert before > 0.006 and after < 0.3 * before, (upper, lower, before, after)
    assert np.abs(moved[48:68] - rest[48:68]).max() < 1e-6  # the mouth does not move


def test_random_modes_are_localised_and_identity_modes_scaled(default_model):
    named = len(EXPRESSION_NAMES)
    peaks = np.linalg.norm(default_model.expression_basis[named:], axis=-1).max(axis=1)
    assert np.all((peaks > 0.0005) & (peaks < 0.003))
    # localised: most of the face stays still in each random mode
    moving = (np.linalg.norm(default_model.expression_basis[named:], axis=-1) > 0.1 * peaks[:, None]).mean(axis=1)
    assert np.median(moving) < 0.5
    rms = np.sqrt((default_model.identity_basis**2).sum(-1).mean(-1))
    assert rms[0] == pytest.approx(0.006, rel=0.25) and rms[-1] < rms[0] / 4
    # the identity modes are nearly orthogonal on the mesh (exactly so on the reference sample)
    flat = default_model.identity_basis.reshape(80, -1) / rms[:, None]
    cosines = (flat @ flat.T) / default_model.num_vertices
    assert np.abs(cosines - np.eye(80)).max() < 0.2


def test_modes_are_smooth_on_the_mesh(default_model):
    """A smooth displacement field has a small Laplacian; white noise of the same size does not."""
    from mmface4d_datasets.facemodel.topology import laplacian

    lap = laplacian(default_model.triangles, default_model.num_vertices, kind="uniform")

    def roughness(field):
        return np.linalg.norm(lap @ field) / np.linalg.norm(field)

    noise = np.random.default_rng(0).normal(size=(default_model.num_vertices, 3))
    assert roughness(noise) > 5.0
    for basis in (default_model.identity_basis, default_model.expression_basis[len(EXPRESSION_NAMES) :]):
        assert max(roughness(mode.astype(np.float64)) for mode in basis) < 0.1 * roughness(noise)  # measured 0.06


def test_vertices_broadcast_over_batch_dimensions(model):
    rng = np.random.default_rng(0)
    identity = rng.normal(size=(2, 1, 80))
    expression = rng.normal(size=(3, 10))  # fewer coefficients than modes: the first ten modes
    out = model.vertices(identity, expression)
    assert out.shape == (2, 3, N, 3) and out.dtype == np.float32
    manual = (
        model.mean.astype(np.float64)
        + np.einsum("k,knc->nc", identity[1, 0], model.identity_basis.astype(np.float64))
        + np.einsum("k,knc->nc", expression[2], model.expression_basis[:10].astype(np.float64))
    )
    np.testing.assert_allclose(out[1, 2], manual, atol=2e-6)
    assert np.array_equal(model.vertices(), model.mean)
    with pytest.raises(MMFace4DError, match="expression coefficients"):
        model.vertices(expression=np.zeros(65))


def test_vertices_torch_matches_numpy_and_is_differentiable(model):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    identity = rng.normal(size=(4, 80)).astype(np.float32)
    expression = rng.normal(size=(4, 64)).astype(np.float32)
    id_t = torch.tensor(identity, requires_grad=True)
    exp_t = torch.tensor(expression, requires_grad=True)
    out = model.vertices_torch(id_t, exp_t)
    assert out.shape == (4, N, 3) and out.dtype == torch.float32
    np.testing.assert_allclose(out.detach().numpy(), model.vertices(identity, expression), atol=2e-6)
    out[:, model.keypoints[8], 1].sum().backward()
    # d(chin y)/d(jaw_open) is the jaw mode's chin displacement
    assert exp_t.grad[0, 0].item() == pytest.approx(float(model.expression_basis[0, model.keypoints[8], 1]), rel=1e-5)
    assert model.vertices_torch().shape == (N, 3)
    # array-likes are accepted too (CPU float32)
    mixed = model.vertices_torch(identity[0], exp_t[0].detach())
    np.testing.assert_allclose(mixed.numpy(), model.vertices(identity[0], expression[0]), atol=2e-6)


def test_model_arrays_are_read_only(model):
    with pytest.raises(ValueError):
        model.mean[0, 0] = 1.0
    assert model.vertex_triangles.shape[0] == N
