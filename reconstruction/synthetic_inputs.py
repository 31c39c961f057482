"""Take folders of known faces drawn by the core renderer, for tests and ``perf/reconstruct.py``
while the rig simulator is not at hand: the face model's mesh with known identity, expressions and
head poses, rendered into three rig cameras (registered depth in millimetres with optional
Gaussian noise, 2-D landmarks of the keypoints with visibility and optional pixel noise), written
in the take layout (``ID_c.json``, ``ID_c.nut``, ``ID_c.landmarks.npy``, ``ID.wav``,
``ID.meta.json``). The truth (vertices in camera 1's frame, coefficients, extrinsics) is returned.
No colour video is written (the reconstruction does not use it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class RenderedTake:
    folder: Path
    take_id: str
    vertices: np.ndarray  # (T, N, 3) float32, camera 1's frame
    identity: np.ndarray
    expression: np.ndarray  # (T, K)
    extrinsics: dict  # {c: (4, 4)}


def face_motion(model, num_frames: int, seed: int = 0):
    """Identity (K_id,), expression (T, K_exp) and head poses (T, 4, 4) (model -> camera 1) of a
    talking-like motion: smooth random expression curves (the named mouth modes strongest), a
    slowly turning and nodding head about 0.72 m in front of camera 1."""
    rng = np.random.default_rng(seed)
    identity = rng.normal(0, model.identity_spread, model.num_identity)
    t = np.arange(num_frames) / 30.0
    K = model.num_expression
    expression = np.zeros((num_frames, K))
    for k in range(min(K, 12)):
        amp = (0.9 if k < 4 else 0.4) * rng.uniform(0.5, 1.0)
        freq, phase = rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
        expression[:, k] = amp * np.sin(2 * np.pi * freq * t + phase)
    flip = np.diag([1.0, -1.0, -1.0])  # model +y up, +z out of the face -> camera y down, z forward
    poses = np.zeros((num_frames, 4, 4))
    from reconstruction.align import rotation_from_vector

    for f in range(num_frames):
        w = np.radians([4 * np.sin(2 * np.pi * 0.4 * t[f]), 8 * np.sin(2 * np.pi * 0.25 * t[f] + 1), 2 * np.sin(t[f])])
        poses[f, :3, :3] = rotation_from_vector(w) @ flip
        poses[f, :3, 3] = [0.005 * np.sin(t[f]), 0.003 * np.cos(1.3 * t[f]), 0.72 + 0.01 * np.sin(0.7 * t[f])]
        poses[f, 3, 3] = 1
    return identity, expression, poses


def render_take(
    folder,
    model,
    *,
    num_frames: int = 4,
    width: int = 320,
    height: int = 180,
    seed: int = 0,
    depth_noise_mm: float = 0.0,
    landmark_noise_px: float = 0.0,
    take_id: str = "001001",
    cameras=None,
) -> RenderedTake:
    """Write a take folder ``folder`` (created) of ``model`` moving by :func:`face_motion`."""
    from mmface4d_datasets.camera import write_take_json
    from mmface4d_datasets.official import write_audio
    from mmface4d_datasets.render import project_landmarks, rasterize
    from mmface4d_datasets.render.views import rig_cameras
    from mmface4d_datasets.take_files import write_depth_video, write_landmarks

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    identity, expression, poses = face_motion(model, num_frames, seed)
    local = model.vertices(identity.astype(np.float32), expression.astype(np.float32)).astype(np.float64)
    verts = np.einsum("tij,tvj->tvi", poses[:, :3, :3], local) + poses[:, None, :3, 3]
    cams = cameras or rig_cameras([0.0, 0.0, 0.72], distance=0.72, width=width, height=height)
    # everything relative to camera 1 (DESIGN.md: camera 1 is the reference frame)
    to_1 = np.linalg.inv(cams[1].extrinsics)
    verts = verts @ to_1[:3, :3].T + to_1[:3, 3]
    cams = [cam.with_extrinsics(to_1 @ cam.extrinsics) for cam in cams]
    extr = {}
    for c, cam in enumerate(cams):
        depth = np.zeros((num_frames, cam.height, cam.width), np.uint16)
        lms = np.full((num_frames, len(model.keypoints), 2), np.nan, np.float32)
        for f in range(num_frames):
            frag = rasterize(verts[f], model.triangles, cam)
            d = frag.depth.astype(np.float64)
            if depth_noise_mm > 0:
                d = np.where(d > 0, d + rng.normal(0, depth_noise_mm, d.shape), 0)
            depth[f] = np.clip(np.round(d), 0, 65535).astype(np.uint16)
            uv, visible = project_landmarks(cam.to_camera(verts[f]), model.keypoints, cam, frag)
            uv = uv + rng.normal(0, landmark_noise_px, uv.shape) if landmark_noise_px > 0 else uv
            lms[f, visible] = uv[visible]
        # the side cameras' extrinsics are left out: the reconstruction must find them (align.py)
        write_take_json(folder / f"{take_id}_{c}.json", cam if c == 1 else cam.with_extrinsics(None), color_mode="synthetic")
        write_depth_video(folder / f"{take_id}_{c}.nut", depth)
        write_landmarks(folder / f"{take_id}_{c}.landmarks.npy", lms)
        extr[c] = cam.extrinsics
    write_audio(folder / f"{take_id}.wav", np.zeros(int(16000 * num_frames / 30), np.float32), 16000)
    meta = {
        "take_id": take_id,
        "subject_id": "render0001",
        "sentence_id": "00000001",
        "text": None,
        "gender": None,
        "age": None,
        "fps": 30,
        "source": "reconstruction.synthetic_inputs",
    }
    (folder / f"{take_id}.meta.json").write_text(json.dumps(meta, indent=1))
    return RenderedTake(folder, take_id, verts.astype(np.float32), identity, expression, extr)
