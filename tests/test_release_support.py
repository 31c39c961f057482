"""Helpers for the release tests: a small face-like topology and talking sequences with head motion.

Made here (not from facemodel) so the release tests stand on their own. No tests in this file.
"""

from __future__ import annotations

import numpy as np

from mmface4d_datasets.release.schema import InMemorySource, RawCapture, SourceSequence, TopologyInfo

ROWS, COLS = 24, 20  # 480 vertices


def _grid_xy() -> np.ndarray:
    x = np.linspace(-0.08, 0.08, COLS)
    y = np.linspace(-0.11, 0.11, ROWS)
    return np.stack(np.meshgrid(x, y), axis=-1).reshape(-1, 2)


def _nearest(xy: np.ndarray, points) -> np.ndarray:
    points = np.asarray(points, dtype=float)
    return np.argmin(((xy[None] - points[:, None]) ** 2).sum(-1), axis=1)


def make_topology() -> TopologyInfo:
    """A grid 'face' (+x = subject's left, +y up) with 68 iBUG-like keypoints and region masks."""
    xy = _grid_xy()
    faces = []
    for r in range(ROWS - 1):
        for c in range(COLS - 1):
            a = r * COLS + c
            faces += [(a, a + 1, a + COLS), (a + 1, a + COLS + 1, a + COLS)]
    angles = np.linspace(np.pi, 2 * np.pi, 17)
    points = [(0.075 * np.cos(a), -0.02 + 0.08 * np.sin(a)) for a in angles]  # 0-16 jaw, 8 = chin
    points += [(x, 0.045) for x in np.linspace(-0.065, -0.02, 5)]  # 17-21 right brow
    points += [(x, 0.045) for x in np.linspace(0.02, 0.065, 5)]  # 22-26 left brow
    points += [(0.0, y) for y in np.linspace(0.03, -0.005, 4)]  # 27-30 nose bridge
    points += [(x, -0.015) for x in np.linspace(-0.016, 0.016, 5)]  # 31-35 nose bottom
    for cx in (-0.04, 0.04):  # 36-41, 42-47 eyes
        points += [(cx + 0.016 * np.cos(a), 0.022 + 0.006 * np.sin(a)) for a in np.linspace(np.pi, -np.pi, 6, endpoint=False)]
    points += [(0.03 * np.cos(a), -0.05 + 0.012 * np.sin(a)) for a in np.linspace(np.pi, -np.pi, 12, endpoint=False)]  # 48-59
    points += [(0.018 * np.cos(a), -0.05 + 0.005 * np.sin(a)) for a in np.linspace(np.pi, -np.pi, 8, endpoint=False)]  # 60-67
    keypoints = _nearest(xy, points)
    # eye corners 36 (subject's right, -x) and 45 (left, +x)
    keypoints[36], keypoints[45] = _nearest(xy, [(-0.058, 0.022), (0.058, 0.022)])
    x, y = xy[:, 0], xy[:, 1]
    masks = {
        "face": np.arange(len(xy)),
        "lips": np.flatnonzero((np.abs(x) < 0.035) & (np.abs(y + 0.05) < 0.016)),
        "upper_face": np.flatnonzero(y > 0.0),
        "eyes": np.flatnonzero((np.abs(np.abs(x) - 0.04) < 0.02) & (np.abs(y - 0.022) < 0.01)),
        "nose": np.flatnonzero((np.abs(x) < 0.02) & (y > -0.02) & (y < 0.035)),
        "forehead": np.flatnonzero(y > 0.06),
    }
    return TopologyInfo(
        name=f"synthetic_v1@{len(xy)}",
        num_vertices=len(xy),
        triangles=np.asarray(faces, dtype=np.int64),
        keypoints=keypoints.astype(np.int64),
        region_masks={k: v.astype(np.int64) for k, v in masks.items()},
        region_rule_version="test-grid",
    )


def _rotation(angles) -> np.ndarray:
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def face_shape(subject_seed: int) -> np.ndarray:
    """(N, 3) neutral face of a subject in its own upright frame (+y up, +z out of the face), metres."""
    rng = np.random.default_rng(subject_seed)
    xy = _grid_xy() * (1 + 0.05 * rng.standard_normal(2))
    z = 0.04 * np.cos(xy[:, 0] / 0.08 * 1.2) * np.cos(xy[:, 1] / 0.11 * 1.1)
    nose = np.exp(-((xy[:, 0] / 0.012) ** 2 + ((xy[:, 1] - 0.005) / 0.025) ** 2))
    z = z + 0.025 * nose + 0.002 * rng.standard_normal(len(xy))
    return np.column_stack([xy, z])


def make_sequence(
    subject: str,
    take_id: str,
    sentence_id: str = "00001",
    *,
    frames: int = 12,
    seed: int = 0,
    gender: str | None = "female",
    age: int | None = 30,
    subtype: str = "FLOAT",
    sample_rate: int = 16000,
    raw: bool = False,
) -> SourceSequence:
    """A talking sequence (mouth opening) with rigid head motion, in a camera frame (+y down, +z forward)."""
    topology_xy = _grid_xy()
    rng = np.random.default_rng([seed, int(take_id)])
    base = face_shape(sum(map(ord, subject)))
    lower = np.clip((-0.03 - topology_xy[:, 1]) / 0.08, 0.0, 1.0)
    opening = 0.01 * np.abs(np.sin(np.linspace(0, 3, frames) + rng.uniform(0, 3)))
    camera_flip = np.diag([1.0, -1.0, -1.0])  # camera looks at the face: its y points down, z away
    vertices = np.empty((frames, len(base), 3))
    for t in range(frames):
        shape = base.copy()
        shape[:, 1] -= opening[t] * lower
        rotation = camera_flip @ _rotation(0.08 * np.sin(0.3 * t + rng.uniform(0, 6, 3)))
        vertices[t] = shape @ rotation.T + np.array([0.01 * np.sin(0.2 * t), 0.02, 0.6 + 0.005 * t])
    samples_count = int(round(frames / 30 * sample_rate))
    if subtype == "FLOAT":
        audio = (0.1 * rng.standard_normal(samples_count)).astype(np.float32)
    elif subtype == "PCM_16":
        audio = rng.integers(-3000, 3000, samples_count).astype(np.int16)
    else:
        audio = (rng.integers(-(2**20), 2**20, samples_count) << 8).astype(np.int32)
    capture = None
    if raw:
        capture = RawCapture(
            intrinsics={c: np.array([[900.0 + c, 0, 960], [0, 900, 540], [0, 0, 1]]) for c in range(3)},
            extrinsics={c: np.eye(4) for c in range(3)},
            landmarks={c: rng.uniform(0, 1000, (frames, 98, 2)) for c in range(3)},
        )
    return SourceSequence(
        take_id=take_id,
        subject_id=subject,
        sentence_id=sentence_id,
        vertices=vertices.astype(np.float32),
        audio=audio,
        sample_rate=sample_rate,
        audio_subtype=subtype,
        topology=f"synthetic_v1@{len(base)}",
        text=f"sentence {sentence_id}",
        gender=gender,
        age=age,
        raw=capture,
    )


def small_sources(num_subjects: int = 4, takes_per_subject: int = 3, **options) -> list[InMemorySource]:
    """Sources of `num_subjects` subjects with `takes_per_subject` takes each (first take neutral)."""
    sources = []
    genders = ["female", "male"]
    for s in range(num_subjects):
        for k in range(takes_per_subject):
            take_id = f"{s * 100 + k + 1:06d}"
            sentence = "00001" if k == 0 else f"2{1 + (k - 1) % 6}{k:03d}"
            sources.append(
                InMemorySource(make_sequence(f"S{s:03d}", take_id, sentence, gender=genders[s % 2], age=22 + 7 * s, seed=s, **options))
            )
    return sources
