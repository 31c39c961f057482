"""The compiled back end of the rasteriser (the ``viz`` extra's numba): the same arithmetic as the
numpy back end (raster.py), in one compiled pass: vertices onto the normalised plane, per-triangle
set-up, coverage and a z-buffer, without candidate arrays. It releases the GIL, so views render
in parallel threads."""

from __future__ import annotations

import threading

import numpy as np

_KERNEL = None
_SHADE = None
_NORMALS = None
_TRIED = False


def available() -> bool:
    return _kernel() is not None


def _kernel():
    global _KERNEL, _TRIED
    if _TRIED:
        return _KERNEL
    _TRIED = True
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(cache=True, nogil=True, inline="always")
    def edge(x, y, i, j):
        """Coefficients (A, B, C) of the edge function from vertex i to j, w = A qx + B qy + C,
        computed in the canonical order (lower index first) and negated when swapped (raster.py)."""
        sign = 1.0
        if i > j:
            i, j, sign = j, i, -1.0
        return (sign * -(y[j] - y[i]), sign * (x[j] - x[i]), sign * ((y[j] - y[i]) * x[i] - (x[j] - x[i]) * y[i]))

    @numba.njit(cache=True, nogil=True, inline="always")
    def _span(A, B, C, inv_fx, q0, qy, lo, hi):
        """Narrow [lo, hi] to the pixels of a row where A qx + B qy + C <= 0 may hold, with
        qx = px inv_fx + q0 (the exact test still decides each pixel)."""
        a = A * inv_fx
        b = A * q0 + B * qy + C
        if a > 0:
            t = -b / a + 1e-6
            if t < hi:
                hi = lo - 1 if t < lo else int(np.floor(t))
        elif a < 0:
            t = -b / a - 1e-6
            if t > lo:
                lo = hi + 1 if t > hi else int(np.ceil(t))
        elif b > 1e-12:
            lo = hi + 1
        return lo, hi

    @numba.njit(cache=True, nogil=True)
    def kernel(vc, tris, K, dist, has_dist, radius, rays, has_rays, W, H, near, pad, zbuf, tri_out, bary_out, depth_out, extent):
        # clear what the previous frame drew into reused outputs (extent: u0, u1, v0, v1 inclusive)
        for py in range(extent[2], extent[3] + 1):
            for px in range(extent[0], extent[1] + 1):
                pix = py * W + px
                tri_out[pix] = -1
                depth_out[pix] = 0
                bary_out[pix, 0] = 0
                bary_out[pix, 1] = 0
                bary_out[pix, 2] = 0
        eu0, eu1, ev0, ev1 = W, -1, H, -1
        n = vc.shape[0]
        fx, skew, cx, fy, cy = K[0, 0], K[0, 1], K[0, 2], K[1, 1], K[1, 2]
        inv_fx, inv_fy = 1.0 / fx, 1.0 / fy
        x = np.empty(n)
        y = np.empty(n)
        u = np.empty(n)
        v = np.empty(n)
        iz = np.empty(n)
        ok = np.zeros(n, dtype=np.bool_)
        k1, k2, p1, p2, k3, k4, k5, k6 = dist[0], dist[1], dist[2], dist[3], dist[4], dist[5], dist[6], dist[7]
        for i in range(n):
            z = vc[i, 2]
            if not (z > near):
                continue
            xi = vc[i, 0] / z
            yi = vc[i, 1] / z
            r2 = xi * xi + yi * yi
            if radius > 0 and not (r2 <= radius * radius):
                continue
            x[i] = xi
            y[i] = yi
            iz[i] = 1.0 / z
            if has_dist:
                a = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
                b = 1 + r2 * (k4 + r2 * (k5 + r2 * k6))
                d = a / b
                xd = xi * d + 2 * p1 * xi * yi + p2 * (r2 + 2 * xi * xi)
                yd = yi * d + p1 * (r2 + 2 * yi * yi) + 2 * p2 * xi * yi
            else:
                xd = xi
                yd = yi
            u[i] = fx * xd + skew * yd + cx
            v[i] = fy * yd + cy
            ok[i] = np.isfinite(u[i]) and np.isfinite(v[i])
        for m in range(tris.shape[0]):
            c0, c1, c2 = tris[m, 0], tris[m, 1], tris[m, 2]
            if not (ok[c0] and ok[c1] and ok[c2]):
                continue
            area = (x[c1] - x[c0]) * (y[c2] - y[c0]) - (y[c1] - y[c0]) * (x[c2] - x[c0])
            if not (area < 0):
                continue
            umin = min(min(u[c0], u[c1]), u[c2])
            umax = max(max(u[c0], u[c1]), u[c2])
            vmin = min(min(v[c0], v[c1]), v[c2])
            vmax = max(max(v[c0], v[c1]), v[c2])
            if umax < -pad or vmax < -pad or umin > W - 1 + pad or vmin > H - 1 + pad:
                continue
            u0 = max(int(np.ceil(umin - pad)), 0)
            u1 = min(int(np.floor(umax + pad)), W - 1)
            v0 = max(int(np.ceil(vmin - pad)), 0)
            v1 = min(int(np.floor(vmax + pad)), H - 1)
            if u1 < u0 or v1 < v0:
                continue
            # edge functions opposite each vertex, held in scalars
            e00, e01, e02 = edge(x, y, c1, c2)
            e10, e11, e12 = edge(x, y, c2, c0)
            e20, e21, e22 = edge(x, y, c0, c1)
            iz0, iz1, iz2 = iz[c0], iz[c1], iz[c2]
            for py in range(v0, v1 + 1):
                lo, hi = u0, u1
                if not has_rays:
                    # pinhole: along a row each edge function is linear in px, so only the span
                    # where all three may be <= 0 (widened by 1e-6 px) is tested, exactly, below
                    qy_row = (py - cy) * inv_fy
                    q0 = (-cx - skew * qy_row) * inv_fx
                    lo, hi = _span(e00, e01, e02, inv_fx, q0, qy_row, lo, hi)
                    lo, hi = _span(e10, e11, e12, inv_fx, q0, qy_row, lo, hi)
                    lo, hi = _span(e20, e21, e22, inv_fx, q0, qy_row, lo, hi)
                for px in range(lo, hi + 1):
                    pix = py * W + px
                    if has_rays:
                        qx = rays[pix, 0]
                        qy = rays[pix, 1]
                    else:
                        qy = (py - cy) * inv_fy
                        qx = (px - cx - skew * qy) * inv_fx
                    w0 = e00 * qx + e01 * qy + e02
                    if not (w0 <= 0):
                        continue
                    w1 = e10 * qx + e11 * qy + e12
                    if not (w1 <= 0):
                        continue
                    w2 = e20 * qx + e21 * qy + e22
                    if not (w2 <= 0):
                        continue
                    s = (w0 + w1) + w2
                    a0 = w0 / s * iz0
                    a1 = w1 / s * iz1
                    a2 = w2 / s * iz2
                    d = 1.0 / ((a0 + a1) + a2)
                    old = zbuf[pix]
                    if d < old or (d == old and m < tri_out[pix]):
                        if px < eu0:
                            eu0 = px
                        if px > eu1:
                            eu1 = px
                        if py < ev0:
                            ev0 = py
                        if py > ev1:
                            ev1 = py
                        zbuf[pix] = d
                        tri_out[pix] = m
                        bary_out[pix, 0] = a0 * d
                        bary_out[pix, 1] = a1 * d
                        bary_out[pix, 2] = a2 * d

        # depth in millimetres; the z-buffer left clean for the next call
        for py in range(ev0, ev1 + 1):
            for px in range(eu0, eu1 + 1):
                pix = py * W + px
                z = zbuf[pix]
                if z < np.inf:
                    depth_out[pix] = np.float32(z * 1000.0)
                    zbuf[pix] = np.inf
        extent[0], extent[1], extent[2], extent[3] = eu0, eu1, ev0, ev1

    @numba.njit(cache=True, nogil=True)
    def shade_kernel(tri_img, bary, extent, W, triangles, normals, colors, has_colors, albedo, light, ambient, image):
        for py in range(extent[2], extent[3] + 1):
            for px in range(extent[0], extent[1] + 1):
                pix = py * W + px
                t = tri_img[pix]
                if t < 0:
                    continue
                nx = 0.0
                ny = 0.0
                nz = 0.0
                r = 0.0
                g = 0.0
                b = 0.0
                for k in range(3):
                    vtx = triangles[t, k]
                    w = bary[pix, k]
                    nx += w * normals[vtx, 0]
                    ny += w * normals[vtx, 1]
                    nz += w * normals[vtx, 2]
                    if has_colors:
                        r += w * colors[vtx, 0]
                        g += w * colors[vtx, 1]
                        b += w * colors[vtx, 2]
                if not has_colors:
                    r, g, b = albedo[0], albedo[1], albedo[2]
                norm = max(np.sqrt(nx * nx + ny * ny + nz * nz), 1e-12)
                lam = (nx * light[0] + ny * light[1] + nz * light[2]) / norm
                f = ambient + (1.0 - ambient) * max(lam, 0.0)
                image[pix, 0] = np.uint8(min(max(r * f * 255.0 + 0.5, 0.0), 255.0))
                image[pix, 1] = np.uint8(min(max(g * f * 255.0 + 0.5, 0.0), 255.0))
                image[pix, 2] = np.uint8(min(max(b * f * 255.0 + 0.5, 0.0), 255.0))

    @numba.njit(cache=True, nogil=True)
    def normals_kernel(v, tris, out):
        out[:] = 0.0
        for m in range(tris.shape[0]):
            a, b, c = tris[m, 0], tris[m, 1], tris[m, 2]
            e1x, e1y, e1z = v[b, 0] - v[a, 0], v[b, 1] - v[a, 1], v[b, 2] - v[a, 2]
            e2x, e2y, e2z = v[c, 0] - v[a, 0], v[c, 1] - v[a, 1], v[c, 2] - v[a, 2]
            nx = e1y * e2z - e1z * e2y
            ny = e1z * e2x - e1x * e2z
            nz = e1x * e2y - e1y * e2x
            for k in range(3):
                i = tris[m, k]
                out[i, 0] += nx
                out[i, 1] += ny
                out[i, 2] += nz
        for i in range(out.shape[0]):
            n = np.sqrt(out[i, 0] ** 2 + out[i, 1] ** 2 + out[i, 2] ** 2)
            if n > 0:
                out[i, 0] /= n
                out[i, 1] /= n
                out[i, 2] /= n

    _KERNEL = kernel
    global _SHADE, _NORMALS
    _SHADE = shade_kernel
    _NORMALS = normals_kernel
    return _KERNEL


_SCRATCH = threading.local()


def _zbuffer(size: int) -> np.ndarray:
    """A per-thread float64 z-buffer, all +inf between calls (the kernel resets what it used)."""
    buffers = getattr(_SCRATCH, "buffers", None)
    if buffers is None:
        buffers = _SCRATCH.buffers = {}
    if size not in buffers:
        if len(buffers) >= 4:
            buffers.clear()
        buffers[size] = np.full(size, np.inf)
    return buffers[size]


def rasterize(vertices_cam, triangles, camera, rays, near, pad, out=None):
    from mmface4d_datasets.render.raster import Fragments

    kernel = _kernel()
    W, H = camera.width, camera.height
    if out is not None and out.triangle.shape == (H, W) and out.extent is not None:
        frags = out
    else:
        frags = Fragments(
            np.zeros((H, W), np.float32), np.full((H, W), -1, np.int32), np.zeros((H, W, 3), np.float32), np.array([0, -1, 0, -1], np.int64)
        )
    has_dist = camera.distortion is not None
    has_rays = rays is not None
    kernel(
        np.ascontiguousarray(vertices_cam, dtype=np.float64),
        np.ascontiguousarray(triangles, dtype=np.int64),
        camera.intrinsics,
        camera.distortion if has_dist else np.zeros(8),
        has_dist,
        camera.metric_radius,
        rays if has_rays else np.zeros((1, 2)),
        has_rays,
        W,
        H,
        near,
        pad,
        _zbuffer(W * H),
        frags.triangle.reshape(-1),
        frags.barycentric.reshape(-1, 3),
        frags.depth.reshape(-1),
        frags.extent,
    )
    return frags


def shade(fragments, triangles, normals, colors, albedo, light, ambient, image):
    """The numba twin of shading.shade's per-vertex-colour path (same formula), into ``image``."""
    _kernel()
    H, W = fragments.triangle.shape
    has_colors = colors is not None
    _SHADE(
        fragments.triangle.reshape(-1),
        fragments.barycentric.reshape(-1, 3),
        fragments.extent,
        W,
        triangles,
        normals,
        np.ascontiguousarray(colors) if has_colors else np.zeros((1, 3)),
        has_colors,
        albedo,
        light,
        ambient,
        image.reshape(-1, 3),
    )


def vertex_normals(vertices, triangles):
    """The numba twin of shading.vertex_normals."""
    _kernel()
    out = np.empty((len(vertices), 3))
    _NORMALS(np.ascontiguousarray(vertices, np.float64), np.ascontiguousarray(triangles, np.int64), out)
    return out
