"""The metrics, checked against hand-computed values and a plain numpy restatement."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark import metrics
from benchmark.scoring import Scorer, summarise

N = 12
LIPS = np.array([0, 1, 2])
UPPER = np.array([6, 7, 8, 9])


def _zeros(frames: int = 4) -> np.ndarray:
    return np.zeros((frames, N, 3), dtype=np.float32)


def _plain_numpy(gt, pred, lips, upper):
    """The authors' formula written the obvious way, in float64."""
    d = np.sqrt(((gt.astype(np.float64) - pred) ** 2).sum(-1))
    return {
        "lip_max": d[:, lips].max(1).mean(),
        "lip_mean": d[:, lips].mean(),
        "upper_max": d[:, upper].max(1).mean(),
        "face_max": d.max(1).mean(),
    }


def test_one_lip_vertex_off_by_a_known_vector():
    gt = _zeros()
    pred = gt.copy()
    pred[:, 1] += np.array([0.003, 0.004, 0.012], dtype=np.float32)  # |(3, 4, 12)| mm = 13 mm
    errors = metrics.sequence_errors(gt, pred, LIPS, UPPER)
    assert errors["lip_max"] == pytest.approx(0.013, rel=1e-6)
    assert errors["lip_mean"] == pytest.approx(0.013 / 3, rel=1e-6)
    assert errors["upper_max"] == 0.0
    assert errors["face_max"] == pytest.approx(0.013, rel=1e-6)


def test_upper_face_vertex_off_leaves_lips_at_zero():
    gt = _zeros()
    pred = gt.copy()
    pred[:, 7, 2] = -0.002
    errors = metrics.sequence_errors(gt, pred, LIPS, UPPER)
    assert errors["lip_max"] == 0.0 and errors["lip_mean"] == 0.0
    assert errors["upper_max"] == pytest.approx(0.002, rel=1e-6)
    assert errors["face_max"] == pytest.approx(0.002, rel=1e-6)


def test_maxima_are_per_frame_then_averaged_over_frames():
    gt = _zeros(2)
    pred = gt.copy()
    pred[0, 0, 0] = 0.001  # frame 0: lip vertex 0 off by 1 mm
    pred[1, 2, 1] = 0.003  # frame 1: lip vertex 2 off by 3 mm
    pred[1, 0, 0] = 0.002  # frame 1: a smaller error on vertex 0 does not count for the max
    errors = metrics.sequence_errors(gt, pred, LIPS, UPPER)
    assert errors["lip_max"] == pytest.approx((0.001 + 0.003) / 2, rel=1e-6)
    assert errors["lip_mean"] == pytest.approx((0.001 + 0.003 + 0.002) / 6, rel=1e-6)
    assert errors["face_max"] == pytest.approx(0.002, rel=1e-6)


def test_single_frame_and_single_lip_vertex():
    gt = _zeros(1)
    pred = gt.copy()
    pred[0, 5] = [0.0, 0.006, 0.008]  # 10 mm, the only lip vertex
    pred[0, 11] = [0.02, 0.0, 0.0]  # 20 mm elsewhere
    errors = metrics.sequence_errors(gt, pred, np.array([5]), UPPER)
    assert errors["lip_max"] == pytest.approx(0.010, rel=1e-6)
    assert errors["lip_mean"] == pytest.approx(0.010, rel=1e-6)
    assert errors["face_max"] == pytest.approx(0.020, rel=1e-6)


def test_boolean_masks_equal_index_arrays_and_float64_equals_float32():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(5, N, 3)) * 0.01
    pred = gt + rng.normal(size=gt.shape) * 0.001
    mask = np.zeros(N, bool)
    mask[LIPS] = True
    by_index = metrics.sequence_errors(gt, pred, LIPS, UPPER)
    by_mask = metrics.sequence_errors(gt.astype(np.float32), pred.astype(np.float32), mask, UPPER)
    assert by_index == pytest.approx(by_mask, rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    frames=st.integers(1, 6),
    seed=st.integers(0, 2**31),
    lip_count=st.integers(1, N),
)
def test_matches_the_plain_numpy_formula(frames, seed, lip_count):
    rng = np.random.default_rng(seed)
    gt = (rng.normal(size=(frames, N, 3)) * 0.01).astype(np.float32)
    pred = (gt + rng.normal(size=gt.shape) * 0.002).astype(np.float32)
    lips = rng.choice(N, lip_count, replace=False)
    ours = metrics.sequence_errors(gt, pred, lips, UPPER)
    assert ours == pytest.approx(_plain_numpy(gt, pred, lips, UPPER), rel=1e-5)


def test_bad_inputs_are_refused_with_a_reason():
    gt = _zeros()
    with pytest.raises(metrics.MetricInputError, match="differ in shape"):
        metrics.sequence_errors(gt, gt[:3], LIPS, UPPER)
    with pytest.raises(metrics.MetricInputError, match="outside"):
        metrics.sequence_errors(gt, gt, np.array([N]), UPPER)
    with pytest.raises(metrics.MetricInputError, match="non-empty"):
        metrics.sequence_errors(gt, gt, np.array([], dtype=int), UPPER)
    with pytest.raises(metrics.MetricInputError, match=r"\(T, N, 3\)"):
        metrics.sequence_errors(gt[..., :2], gt[..., :2], LIPS, UPPER)
    with pytest.raises(metrics.MetricInputError, match="empty"):
        metrics.sequence_errors(gt[:0], gt[:0], LIPS, UPPER)


def test_codetalker_lve_squares_distances_and_pools_frames():
    scorer = Scorer(LIPS, UPPER)
    one = _zeros(1)
    off_one = one.copy()
    off_one[:, 0, 0] = 0.001  # 1 frame with lip max 1 mm
    three = _zeros(3)
    off_three = three.copy()
    off_three[:, 2, 1] = 0.002  # 3 frames with lip max 2 mm
    scorer.update("a", one, off_one)
    scorer.update("b", three, off_three)
    summary = scorer.summary()
    # pooled over 4 frames, squared: (1 * 1 + 3 * 4) / 4 mm^2
    assert summary["codetalker"]["lve_sq"] == pytest.approx(3.25e-6, rel=1e-5)
    # the authors' convention averages per-sequence means: (1 + 2) / 2 mm
    assert summary["authors"]["lip_max"] == pytest.approx(1.5e-3, rel=1e-6)
    per_frame = metrics.lip_vertex_error_squared(three, off_three, LIPS)
    assert per_frame == pytest.approx([4e-6] * 3, rel=1e-5)


def test_fdd_hand_computed():
    template = np.zeros((N, 3), dtype=np.float32)
    gt = _zeros(4)
    gt[1::2, 6, 1] = 0.002  # vertex 6 alternates between 0 and 2 mm: squared 0, 4e-6
    static = _zeros(4)
    # std over t of (0, 4e-6, 0, 4e-6) = 2e-6; one of the four upper vertices moves
    assert metrics.upper_face_dynamics(gt, template, UPPER) == pytest.approx(2e-6 / 4, rel=1e-6)
    assert metrics.upper_face_dynamics_deviation(gt, static, template, UPPER) == pytest.approx(0.5e-6, rel=1e-6)
    # signed: a prediction that moves more than the ground truth gives a negative value
    assert metrics.upper_face_dynamics_deviation(static, gt, template, UPPER) == pytest.approx(-0.5e-6, rel=1e-6)
    assert metrics.upper_face_dynamics(gt[:1], template, UPPER) == 0.0


def test_fdd_matches_a_plain_restatement_of_codetalkers_formula():
    rng = np.random.default_rng(3)
    template = (rng.normal(size=(N, 3)) * 0.05).astype(np.float32)
    gt = (template + rng.normal(size=(7, N, 3)) * 0.003).astype(np.float32)
    pred = (template + rng.normal(size=(7, N, 3)) * 0.001).astype(np.float32)

    def dyn(x):
        squared = ((x[:, UPPER].astype(np.float64) - template[UPPER]) ** 2).sum(-1)
        return squared.std(axis=0).mean()

    expected = dyn(gt) - dyn(pred)
    assert metrics.upper_face_dynamics_deviation(gt, pred, template, UPPER) == pytest.approx(expected, rel=1e-5)


def test_scorer_trims_to_the_shorter_sequence_and_reports_it():
    scorer = Scorer(LIPS, UPPER)
    gt = _zeros(5)
    pred = _zeros(4)
    pred[:, 0, 0] = 0.001
    row = scorer.update("x", gt, pred, subject_id="s", emotion="sad")
    assert (row.num_frames, row.trimmed_frames) == (4, 1)
    assert row.lip_max == pytest.approx(0.001, rel=1e-6)
    assert summarise([])["num_sequences"] == 0
