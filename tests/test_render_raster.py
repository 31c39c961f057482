"""The rasteriser: analytic depth of a plane and a sphere, no cracks, back faces never win,
the pixel-centre convention, and lens distortion applied exactly per pixel."""

from __future__ import annotations

import numpy as np
import pytest

from mmface4d_datasets.camera import Camera
from mmface4d_datasets.render import RenderError, available_backends, project_landmarks, rasterize, shade

#: Depth tolerance against the analytic surface for meshes that ARE the surface (a plane), mm.
PLANE_TOLERANCE_MM = 1e-3
BACKENDS = available_backends()

KINECT_DISTORTION = np.array([0.330121, -2.489397, -1.61782e-4, -1.29445e-4, 1.453671, 0.208912, -2.302915, 1.375128])


def _camera(distortion=None, width=160, height=120, f=150.0):
    K = np.array([[f, 0, (width - 1) / 2 + 0.3], [0, f * 1.001, (height - 1) / 2 - 0.2], [0, 0, 1]])
    return Camera(K, width, height, distortion, np.eye(4), 1.7 if distortion is not None else 0.0)


def _grid(n, half, z_of, jitter=0.0, seed=0):
    """A (n+1)^2-vertex grid over [-half, half]^2 facing the camera (-z), z = z_of(x, y)."""
    rng = np.random.default_rng(seed)
    s = np.linspace(-half, half, n + 1)
    x, y = np.meshgrid(s, s)
    if jitter:
        inner = (np.abs(x) < half) & (np.abs(y) < half)
        x = x + inner * rng.uniform(-jitter, jitter, x.shape) * (2 * half / n)
        y = y + inner * rng.uniform(-jitter, jitter, y.shape) * (2 * half / n)
    v = np.stack([x.ravel(), y.ravel(), z_of(x, y).ravel()], axis=1)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    # counter-clockwise seen from the camera (outside = towards -z) in x right / y down coordinates
    tris = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])
    return v, tris


def _rays(camera):
    jj, ii = np.mgrid[0 : camera.height, 0 : camera.width]
    pixels = np.stack([ii, jj], -1).astype(float)
    return camera.unproject(pixels, np.ones(pixels.shape[:2]))  # points at depth 1: (x, y, 1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("distortion", [None, KINECT_DISTORTION], ids=["pinhole", "kinect"])
def test_tilted_plane_depth_is_analytic_and_crack_free(backend, distortion):
    camera = _camera(distortion)
    slope = 0.3
    v, tris = _grid(40, 1.5, lambda x, y: 1.0 + slope * x, jitter=0.3)
    frags = rasterize(v, tris, camera, backend=backend)
    rays = _rays(camera)
    valid = np.isfinite(rays).all(-1)
    # no cracks: every pixel whose ray is valid sees the plane (the grid covers the whole view)
    assert frags.mask[valid].all(), f"{(~frags.mask[valid]).sum()} uncovered pixels"
    analytic = 1000.0 / (1.0 - slope * rays[..., 0])  # z = 1 + slope x along the ray (x, y, 1) t
    err = np.abs(frags.depth[valid] - analytic[valid]).max()
    assert err < PLANE_TOLERANCE_MM, err
    # barycentrics reproduce the 3-D point: sum to one, and interpolate the vertices to the ray point
    bary = frags.barycentric[valid].astype(np.float64)
    np.testing.assert_allclose(bary.sum(-1), 1.0, atol=1e-5)
    points = np.einsum("pk,pkc->pc", bary, v[tris[frags.triangle[valid]]])
    np.testing.assert_allclose(points[:, 2] * 1000.0, frags.depth[valid], atol=2e-3)


def _sphere(radius, centre, n_lat=96, n_lon=192):
    lat = np.linspace(0, np.pi, n_lat + 1)
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    unit = np.stack([np.sin(la) * np.cos(lo), np.cos(la), np.sin(la) * np.sin(lo)], -1).reshape(-1, 3)
    idx = np.arange((n_lat + 1) * n_lon).reshape(n_lat + 1, n_lon)
    a, b = idx[:-1], np.roll(idx[:-1], -1, axis=1)
    c, d = idx[1:], np.roll(idx[1:], -1, axis=1)
    tris = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([b, d, c], -1).reshape(-1, 3)])
    tris = tris[(tris[:, 0] != tris[:, 1]) & (tris[:, 1] != tris[:, 2]) & (tris[:, 0] != tris[:, 2])]
    verts = unit * radius + centre
    # orient every triangle counter-clockwise seen from outside
    n = np.cross(verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]])
    flip = (n * (verts[tris].mean(1) - centre)).sum(1) < 0
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return verts, tris


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("distortion", [None, KINECT_DISTORTION], ids=["pinhole", "kinect"])
def test_sphere_depth_matches_analytic_within_tessellation(backend, distortion):
    camera = _camera(distortion)
    radius, centre = 0.25, np.array([0.02, -0.01, 1.2])
    v, tris = _sphere(radius, centre)
    frags = rasterize(v, tris, camera, backend=backend)
    q = _rays(camera)
    qc = q @ centre
    qq = (q * q).sum(-1)
    disc = qc**2 - qq * (centre @ centre - radius**2)
    with np.errstate(invalid="ignore"):
        analytic = (qc - np.sqrt(disc)) / qq * 1000.0
    # compare away from the silhouette, where a chord can miss a ray the sphere catches
    inner = disc > 0.05 * np.nanmax(disc)
    inner &= np.isfinite(analytic)
    assert frags.mask[inner].all()
    # a flat triangle lies inside the sphere by at most its sagitta: r (1 - cos(half the longest edge angle))
    sagitta_mm = radius * (1 - np.cos(np.pi / 96)) * 1000.0
    diff = frags.depth[inner] - analytic[inner]
    assert diff.min() > -1e-3 and diff.max() < 3 * sagitta_mm, (diff.min(), diff.max(), sagitta_mm)
    # nothing drawn where the analytic sphere is missed by a wide margin
    assert not frags.mask[~np.isfinite(analytic) & (disc < -0.05 * np.nanmax(disc))].any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_back_faces_and_hidden_surfaces_never_win(backend):
    camera = _camera()
    near_v, near_t = _grid(8, 2.0, lambda x, y: 0.8 + 0 * x)
    far_v, far_t = _grid(8, 2.0, lambda x, y: 1.5 + 0 * x)
    # the near plane turned away from the camera (reversed winding): a back face in front
    back = np.concatenate([far_v, near_v])
    tris = np.concatenate([far_t, near_t[:, [0, 2, 1]] + len(far_v)])
    frags = rasterize(back, tris, camera, backend=backend)
    assert frags.mask.all() and np.allclose(frags.depth, 1500.0, atol=1e-3)
    # both facing the camera, far plane listed last: the near one hides it everywhere
    tris = np.concatenate([near_t + len(far_v), far_t])
    frags = rasterize(back, tris, camera, backend=backend)
    assert np.allclose(frags.depth, 800.0, atol=1e-3)
    assert (frags.triangle < len(near_t)).all()


def test_pixel_centre_convention():
    """A triangle whose edge passes between pixel centres covers exactly the centres inside it."""
    K = np.array([[100.0, 0, 0.0], [0, 100.0, 0.0], [0, 0, 1]])
    camera = Camera(K, 10, 10)
    # square x in [2.6, 6.4] px, y in [1.6, 4.4] px on the image at z = 1 (pixels = 100 * metres)
    x0, x1, y0, y1 = 0.026, 0.064, 0.016, 0.044
    v = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], float)
    tris = np.array([[0, 2, 1], [1, 2, 3]])
    frags = rasterize(v, tris, camera, backend="numpy")
    expected = np.zeros((10, 10), bool)
    expected[2:5, 3:7] = True  # centres 3..6 in x, 2..4 in y
    np.testing.assert_array_equal(frags.mask, expected)


@pytest.mark.skipif("numba" not in BACKENDS, reason="the numba back end needs the viz extra")
@pytest.mark.parametrize("distortion", [None, KINECT_DISTORTION], ids=["pinhole", "kinect"])
def test_backends_agree_on_a_random_mesh(distortion):
    rng = np.random.default_rng(3)
    camera = _camera(distortion, 200, 150)
    v, tris = _sphere(0.2, np.array([0.0, 0.0, 1.0]), 40, 80)
    v = v + rng.normal(0, 0.004, v.shape)
    a = rasterize(v, tris, camera, backend="numpy")
    b = rasterize(v, tris, camera, backend="numba")
    np.testing.assert_array_equal(a.triangle, b.triangle)
    np.testing.assert_allclose(a.depth, b.depth, atol=1e-4)
    np.testing.assert_allclose(a.barycentric, b.barycentric, atol=1e-6)


def test_bad_meshes_are_named():
    camera = _camera()
    v, tris = _grid(2, 0.1, lambda x, y: 1 + 0 * x)
    bad = v.copy()
    bad[3, 1] = np.nan
    with pytest.raises(RenderError, match="NaN"):
        rasterize(bad, tris, camera)
    with pytest.raises(RenderError, match="vertex count"):
        rasterize(v[:5], tris, camera)
    with pytest.raises(RenderError, match="back end"):
        rasterize(v, tris, camera, backend="opengl")


def test_shading_and_landmarks():
    camera = _camera()
    radius, centre = 0.2, np.array([0.0, 0.0, 1.0])
    v, tris = _sphere(radius, centre, 32, 64)
    frags = rasterize(v, tris, camera, backend="numpy")
    image = shade(frags, v, tris, background=(0, 0, 0), light=(0, 0, -1), ambient=0.0)
    assert image.shape == (120, 160, 3) and image.dtype == np.uint8
    assert (image[~frags.mask] == 0).all() and image[frags.mask].max() > 150
    # the head-on point is brightest, the rim darkest (Lambert)
    centre_px = image[int(round(camera.intrinsics[1, 2])), int(round(camera.intrinsics[0, 2]))].astype(int)
    assert centre_px.sum() >= image[frags.mask].astype(int).sum(-1).max() - 6
    colors = np.zeros((len(v), 3))
    colors[:, 0] = 1.0
    red = shade(frags, v, tris, colors=colors, background=(0, 0, 0))
    assert (red[frags.mask][:, 1:] == 0).all() and red[frags.mask][:, 0].max() > 200
    # the vertex nearest the camera is visible, the farthest is hidden behind the front
    front, back = int(np.argmin(v[:, 2])), int(np.argmax(v[:, 2]))
    uv, visible = project_landmarks(v, [front, back], camera, frags)
    assert visible.tolist() == [True, False]
    assert np.allclose(uv[0], camera.project(v[front])[0])


@pytest.mark.skipif("numba" not in BACKENDS, reason="the numba back end needs the viz extra")
def test_reused_outputs_equal_fresh_ones():
    camera = _camera(KINECT_DISTORTION, 200, 150)
    big, big_t = _sphere(0.3, np.array([0.0, 0.0, 1.0]), 24, 48)
    small, small_t = _sphere(0.05, np.array([0.1, 0.05, 1.0]), 24, 48)
    out = rasterize(big, big_t, camera, backend="numba")
    reused = rasterize(small, small_t, camera, backend="numba", out=out)
    fresh = rasterize(small, small_t, camera, backend="numpy")
    assert reused is out
    np.testing.assert_array_equal(reused.triangle, fresh.triangle)
    np.testing.assert_allclose(reused.depth, fresh.depth, atol=1e-4)
    np.testing.assert_allclose(reused.barycentric, fresh.barycentric, atol=1e-6)


@pytest.mark.skipif("numba" not in BACKENDS, reason="the numba back end needs the viz extra")
def test_numba_shading_and_normals_match_numpy(monkeypatch):
    from mmface4d_datasets.render import _numba, shading

    camera = _camera(None, 200, 150)
    v, tris = _sphere(0.2, np.array([0.0, 0.05, 1.0]), 24, 48)
    colors = np.random.default_rng(1).uniform(0, 1, (len(v), 3))
    fast_normals = shading.vertex_normals(v, tris)
    fast = shade(rasterize(v, tris, camera, backend="numba"), v, tris, colors=colors)
    monkeypatch.setattr(_numba, "available", lambda: False)
    slow_normals = shading.vertex_normals(v, tris)
    slow = shade(rasterize(v, tris, camera, backend="numpy"), v, tris, colors=colors)
    np.testing.assert_allclose(fast_normals, slow_normals, atol=1e-12)
    assert np.abs(fast.astype(int) - slow.astype(int)).max() <= 1


@pytest.mark.skipif("numba" not in BACKENDS, reason="the numba back end needs the viz extra")
def test_views_in_threads_equal_one_by_one():
    from mmface4d_datasets.render import rasterize_views

    v, tris = _sphere(0.2, np.array([0.0, 0.0, 1.0]), 20, 40)
    cameras = [_camera(), _camera(KINECT_DISTORTION, 100, 80), _camera(width=90, height=70)]
    first = rasterize_views(v, tris, cameras, backend="numba", threads=2)
    again = rasterize_views(v + [0.01, 0, 0], tris, cameras, backend="numba", threads=2, out=first)
    for camera, frags in zip(cameras, again):
        alone = rasterize(v + [0.01, 0, 0], tris, camera, backend="numpy")
        np.testing.assert_array_equal(frags.triangle, alone.triangle)
        np.testing.assert_allclose(frags.depth, alone.depth, atol=1e-4)
