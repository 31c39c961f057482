"""The in-house anchor: the same stage-2 energy (:mod:`reconstruction.fitting`) minimised by
autograd Adam in torch, as the authors' GPU recipe does, for measuring the CPU solver against.

:func:`adam_track_frame` fits one tracked frame (pose and expression free, identity and scale
fixed, warm-started like the Gauss-Newton tracker) with depth correspondences refreshed every
``refresh`` iterations by the same projective association, and stops when its energy reaches
``target`` or after ``max_iterations``. Final energies are compared with
:func:`reconstruction.fitting.assemble` on correspondences made at each solution.
"""

from __future__ import annotations

import time

import numpy as np

from reconstruction import fitting

LEARNING_RATES = {"rotation": 2e-3, "translation": 5e-4, "expression": 2e-2}


def _rodrigues(w, torch):
    theta = torch.sqrt((w * w).sum() + 1e-24)
    k = w / theta
    K = torch.zeros(3, 3, dtype=w.dtype)
    K = torch.stack([torch.stack([K[0, 0], -k[2], k[1]]), torch.stack([k[2], K[1, 1], -k[0]]), torch.stack([-k[1], k[0], K[2, 2]])])
    return torch.eye(3, dtype=w.dtype) + torch.sin(theta) * K + (1 - torch.cos(theta)) * (K @ K)


def adam_track_frame(
    problem: fitting.Problem,
    start: fitting.Params,
    views,
    weights: fitting.Weights,
    *,
    target: float | None = None,
    max_iterations: int = 200,
    refresh: int = 20,
    gate: float = 0.005,
):
    """Returns (params, iterations, seconds, energy trace) (see the module docstring)."""
    import torch

    t0 = time.perf_counter()
    dt = torch.float64
    ki = problem.ki
    basis_exp = torch.from_numpy(problem.basis_S[:, :, ki:]).to(dt)  # (S, 3, Ke)
    fixed = torch.from_numpy(problem.mean_S + problem.basis_S[:, :, :ki] @ start.identity[:ki]).to(dt)
    R0 = torch.from_numpy(start.R).to(dt)
    w = torch.zeros(3, dtype=dt, requires_grad=True)
    t = torch.from_numpy(start.t.copy()).to(dt).requires_grad_(True)
    e = torch.from_numpy(start.expression[: problem.ke].copy()).to(dt).requires_grad_(True)
    opt = torch.optim.Adam(
        [
            {"params": [w], "lr": LEARNING_RATES["rotation"]},
            {"params": [t], "lr": LEARNING_RATES["translation"]},
            {"params": [e], "lr": LEARNING_RATES["expression"]},
        ]
    )
    s = float(start.scale)
    precision = problem.prior_precision(weights)
    prec_e = torch.from_numpy(precision[ki:]).to(dt)
    fixed_prior = 0.5 * float(start.identity[:ki] @ (precision[:ki] * start.identity[:ki]))
    lm_obs = []
    for v in views:
        ok = np.isfinite(v.landmarks_norm).all(1)
        E = v.camera.extrinsics
        lm_obs.append(
            (
                torch.from_numpy(problem.kp_pos[ok]),
                torch.from_numpy(v.landmarks_norm[ok]).to(dt),
                torch.from_numpy(E[:3, :3]).to(dt),
                torch.from_numpy(E[:3, 3]).to(dt),
                v.focal,
            )
        )
    sd = weights.depth_scale_m

    def params_now() -> fitting.Params:
        with torch.no_grad():
            R = (_rodrigues(w, torch) @ R0).numpy()
            return fitting.Params(
                R, t.detach().numpy().copy(), s, start.identity.copy(), np.concatenate([e.detach().numpy(), start.expression[problem.ke :]])
            )

    trace = []
    matches = None
    it = 0
    for it in range(1, max_iterations + 1):
        if matches is None or (it - 1) % refresh == 0:
            p = params_now()
            X = problem.vertices(p)
            matches = fitting.depth_matches(problem, views, X, problem.normals(X), gate)
            tm = [
                (torch.from_numpy(m.pos), torch.from_numpy(m.point).to(dt), torch.from_numpy(m.normal).to(dt))
                for m in matches
                if len(m.pos)
            ]
        opt.zero_grad()
        R = _rodrigues(w, torch) @ R0
        V = fixed + basis_exp @ e
        X = s * V @ R.T + t
        energy = 0.5 * (e * e * prec_e).sum() + fixed_prior
        for pos, obs, Rc, tc, focal in lm_obs:
            Xc = (X[pos] - tc) @ Rc
            r = Xc[:, :2] / Xc[:, 2:3] - obs
            e_px = torch.sqrt((r * r).sum(1) + 1e-30) * focal
            k = weights.landmark_huber_px
            energy = energy + (torch.where(e_px <= k, 0.5 * e_px**2, k * (e_px - 0.5 * k)) / weights.sigma_2d_px**2).sum()
        for pos, point, normal in tm:
            r = ((X[pos] - point) * normal).sum(1)
            q = (r / sd) ** 2
            energy = energy + weights.depth_weight * (2 * q / (q + 4)).sum()
        energy.backward()
        opt.step()
        trace.append(float(energy.detach()))
        if target is not None and trace[-1] <= target:
            break
    return params_now(), it, time.perf_counter() - t0, trace


def frame_energy(problem: fitting.Problem, p: fitting.Params, views, weights: fitting.Weights, gate: float = 0.005) -> float:
    """The stage-2 energy of ``p`` with depth correspondences made at ``p`` (numpy; for comparing solvers)."""
    X = problem.vertices(p)
    matches = fitting.depth_matches(problem, views, X, problem.normals(X), gate)
    w2 = fitting.Weights(**{**weights.__dict__, "landmarks_3d": weights.landmarks_3d_stage2})
    free = fitting.free_mask(problem)
    return float(fitting.assemble(problem, p, views, matches, w2, free, want_jacobian=False).total)
