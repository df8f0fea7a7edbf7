"""Analytic primitives of the procedural room: ray intersection, signed distance, surface sampling.

World frame: metres, z up. Rays ``o + t d`` with ``o`` ``[3]`` and ``d = (dx, dy, dz)`` (three float32
``[N]`` arrays, not normalised;
the renderer uses ``d`` with camera-frame z = 1 so that ``t`` is the z-depth). Every primitive reports
hits with ``t > EPS`` only; ``uv`` are surface coordinates in metres for the textures (each face of a
box gets its own offset so faces do not share a pattern).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-5
BIG = np.float32(1e30)


def _safe_inv(d: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.float32(1.0) / np.where(d == 0, np.float32(1e-30), d)


@dataclass(frozen=True)
class Box:
    """Box of half-size ``half`` centred at ``centre``, rotated by ``yaw`` (radians) about +z."""

    centre: np.ndarray  # [3]
    half: np.ndarray  # [3]
    yaw: float
    material: int

    @property
    def R(self) -> np.ndarray:
        """Rotation world <- local, 3x3 float32."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float32)

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        return self.centre, float(np.linalg.norm(self.half))

    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        ext = np.abs(self.R) @ self.half
        return self.centre - ext, self.centre + ext

    def intersect(self, o: np.ndarray, d: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Entry distance ``t`` ``[N]`` of rays ``o + t d`` from outside (``BIG`` where missed).

        ``d`` is ``(dx, dy, dz)``, three float32 ``[N]`` arrays (world frame).
        """
        c, s = np.float32(np.cos(self.yaw)), np.float32(np.sin(self.yaw))
        rel = np.asarray(o, np.float64) - self.centre
        ol = (c * rel[0] + s * rel[1], -s * rel[0] + c * rel[1], rel[2])
        dl = (c * d[0] + s * d[1], -s * d[0] + c * d[1], d[2])
        t_near = t_far = None
        for k in range(3):
            inv = _safe_inv(dl[k])
            h = np.float32(self.half[k])
            t1 = (np.float32(-h - ol[k])) * inv
            t2 = (np.float32(h - ol[k])) * inv
            lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
            t_near = lo if t_near is None else np.maximum(t_near, lo)
            t_far = hi if t_far is None else np.minimum(t_far, hi)
        return np.where((t_near <= t_far) & (t_near > EPS), t_near, BIG)

    def local(self, p: np.ndarray) -> np.ndarray:
        return (p - self.centre) @ self.R

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Outward normals ``[N x 3]`` and face uv ``[N x 2]`` (metres) at surface points ``p``."""
        pl = self.local(p)
        rel = np.abs(pl) / self.half
        ax = np.argmax(rel, axis=1)
        sign = np.sign(pl[np.arange(len(pl)), ax])
        nl = np.zeros_like(pl)
        nl[np.arange(len(pl)), ax] = sign
        return nl @ self.R.T, _face_uv(pl, ax, sign)

    def sdf(self, p: np.ndarray) -> np.ndarray:
        """Signed distance (metres, negative inside) of points ``[N x 3]``."""
        q = np.abs(self.local(p)) - self.half
        return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)

    def areas(self) -> np.ndarray:
        hx, hy, hz = 2 * self.half
        return np.array([hy * hz, hy * hz, hx * hz, hx * hz, hx * hy, hx * hy])

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points on the surface, area-uniform, world frame."""
        a = self.areas()
        face = rng.choice(6, size=n, p=a / a.sum())
        pl = rng.uniform(-1, 1, (n, 3)) * self.half
        ax = face // 2
        pl[np.arange(n), ax] = np.where(face % 2 == 0, -1.0, 1.0) * self.half[ax]
        return pl @ self.R.T.astype(np.float64) + self.centre


def _face_uv(pl: np.ndarray, ax: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """In-plane coordinates of local points on face ``(ax, sign)``, with a per-face offset."""
    u = np.where(ax == 0, pl[:, 1], pl[:, 0])
    v = np.where(ax == 2, pl[:, 1], pl[:, 2])
    off = (ax * 2 + (sign > 0)).astype(np.float32) * np.float32(17.3)
    return np.stack([u + off, v + off * 0.61], axis=1)


@dataclass(frozen=True)
class Sphere:
    centre: np.ndarray  # [3]
    radius: float
    material: int

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        return self.centre, self.radius

    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        return self.centre - self.radius, self.centre + self.radius

    def intersect(self, o: np.ndarray, d: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Entry distance ``t`` ``[N]`` of rays ``o + t d`` (``d`` = (dx, dy, dz) float32 arrays), ``BIG`` if missed."""
        oc = (np.asarray(o, np.float64) - self.centre).astype(np.float32)
        a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
        b = d[0] * oc[0] + d[1] * oc[1] + d[2] * oc[2]
        disc = b * b - a * np.float32(oc @ oc - self.radius**2)
        t = (-b - np.sqrt(np.maximum(disc, 0))) / a
        return np.where((disc > 0) & (t > EPS), t, BIG)

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = (p - self.centre) / np.float32(self.radius)
        lon = np.arctan2(n[:, 1], n[:, 0])
        lat = np.arcsin(np.clip(n[:, 2], -1, 1))
        return n, np.stack([lon * self.radius, lat * self.radius], axis=1)

    def sdf(self, p: np.ndarray) -> np.ndarray:
        return np.linalg.norm(p - self.centre, axis=1) - self.radius

    def areas(self) -> np.ndarray:
        return np.array([4 * np.pi * self.radius**2])

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        v = rng.standard_normal((n, 3))
        return self.centre + self.radius * v / np.linalg.norm(v, axis=1, keepdims=True)


@dataclass(frozen=True)
class Cylinder:
    """Vertical cylinder (axis +z) of ``radius`` at ``xy`` from ``z0`` to ``z1``, closed by caps."""

    xy: np.ndarray  # [2]
    radius: float
    z0: float
    z1: float
    material: int

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        zc = 0.5 * (self.z0 + self.z1)
        radius = float(np.hypot(self.radius, 0.5 * (self.z1 - self.z0)))
        return np.array([self.xy[0], self.xy[1], zc], np.float32), radius

    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        r = self.radius
        return np.array([self.xy[0] - r, self.xy[1] - r, self.z0]), np.array([self.xy[0] + r, self.xy[1] + r, self.z1])

    def intersect(self, o: np.ndarray, d: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Entry distance ``t`` ``[N]`` of rays ``o + t d`` (``d`` = (dx, dy, dz) float32 arrays), ``BIG`` if missed."""
        dx, dy, dz = d
        ox, oy = np.float32(o[0] - self.xy[0]), np.float32(o[1] - self.xy[1])
        a = dx * dx + dy * dy
        b = dx * ox + dy * oy
        c = ox * ox + oy * oy - np.float32(self.radius**2)
        disc = b * b - a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            ts = (-b - np.sqrt(np.maximum(disc, 0))) / a
        z = np.float32(o[2]) + ts * dz
        side = (disc > 0) & (ts > EPS) & (z >= self.z0) & (z <= self.z1)
        t = np.where(side, ts, BIG)
        inv = _safe_inv(dz)
        for zc, facing in ((self.z1, dz < 0), (self.z0, dz > 0)):
            if self.z0 <= 1e-6 and zc == self.z0:
                continue  # standing on the floor: bottom cap never visible
            tc = np.float32(zc - o[2]) * inv
            px, py = ox + tc * dx, oy + tc * dy
            cap = facing & (tc > EPS) & (px * px + py * py <= np.float32(self.radius**2)) & (tc < t)
            t = np.where(cap, tc, t)
        return t

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rx, ry = p[:, 0] - self.xy[0], p[:, 1] - self.xy[1]
        r = np.hypot(rx, ry)
        dz1, dz0 = np.abs(p[:, 2] - self.z1), np.abs(p[:, 2] - self.z0)
        on_cap = np.minimum(dz1, dz0) < np.maximum(np.abs(r - self.radius), 1e-4)
        n = np.stack([rx / np.maximum(r, 1e-9), ry / np.maximum(r, 1e-9), np.zeros_like(r)], axis=1)
        n[on_cap] = 0
        n[on_cap, 2] = np.where(dz1[on_cap] < dz0[on_cap], 1.0, -1.0)
        side_uv = np.stack([np.arctan2(ry, rx) * self.radius, p[:, 2]], axis=1)
        cap_uv = np.stack([rx + 31.7, ry + 12.9], axis=1)
        return n.astype(np.float32), np.where(on_cap[:, None], cap_uv, side_uv)

    def sdf(self, p: np.ndarray) -> np.ndarray:
        dr = np.hypot(p[:, 0] - self.xy[0], p[:, 1] - self.xy[1]) - self.radius
        dz = np.maximum(self.z0 - p[:, 2], p[:, 2] - self.z1)
        q = np.stack([dr, dz], axis=1)
        return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)

    def areas(self) -> np.ndarray:
        cap = np.pi * self.radius**2
        return np.array([2 * np.pi * self.radius * (self.z1 - self.z0), cap, cap])

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        a = self.areas()
        part = rng.choice(3, size=n, p=a / a.sum())
        phi = rng.uniform(0, 2 * np.pi, n)
        r = np.where(part == 0, self.radius, self.radius * np.sqrt(rng.random(n)))
        z = np.where(part == 0, rng.uniform(self.z0, self.z1, n), np.where(part == 1, self.z1, self.z0))
        return np.stack([self.xy[0] + r * np.cos(phi), self.xy[1] + r * np.sin(phi), z], axis=1)
