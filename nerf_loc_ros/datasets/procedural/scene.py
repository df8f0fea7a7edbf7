"""The procedural room: layout from a seed, vectorised ray casting with exact z-depth, Lambertian shading.

World frame (``map``): metres, z up, the room spans ``[0, W] x [0, D] x [0, H]``. Cameras: OpenCV
axes, ``T_world_cam`` camera-to-world, pinhole ``K`` with pixel centres at ``(i + 0.5, j + 0.5)``.
Shading is Lambertian from two point lights plus ambient and depends only on the surface point and
normal, never on the viewing direction, so every view is consistent (a NeRF can fit it exactly).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from .primitives import BIG, Box, Cylinder, Sphere
from .textures import Material, NoiseBank, material_albedo, random_material
from .trajectories import SESSIONS, camera_centres

__all__ = ["ProceduralScene", "ProceduralSceneConfig"]

log = logging.getLogger(__name__)

N_ROOM_FACES = 6  # primitive ids 0..5: x=0, x=W, y=0, y=D, floor z=0, ceiling z=H


@dataclass(frozen=True)
class ProceduralSceneConfig:
    """Parameters of the procedural room.

    Attributes:
        seed: drives layout, textures and lights (same seed -> identical scene).
        room_size: ``(W, D, H)`` metres along world x, y, z.
        num_objects: number of furniture objects (5-8 recommended); ``None`` draws 5-8 from the seed.
        camera_clearance: minimum distance (m) between objects and the mapping/query camera paths.
        ambient: ambient light level (fraction of white).
        light_intensity: strength of each of the two point lights.
    """

    seed: int = 0
    room_size: tuple[float, float, float] = (6.0, 5.0, 3.0)
    num_objects: int | None = None
    camera_clearance: float = 0.6
    ambient: float = 0.38
    light_intensity: float = 0.75


class ProceduralScene:
    """An analytic textured room with furniture; :meth:`render` ray-casts RGB and exact z-depth."""

    def __init__(self, config: ProceduralSceneConfig | None = None) -> None:
        self.config = c = config or ProceduralSceneConfig()
        self.room_max = np.asarray(c.room_size, np.float32)
        if np.any(self.room_max < 3.0):
            raise ValueError(f"room_size {c.room_size} too small (each side >= 3 m)")
        rng = np.random.default_rng([c.seed, 0xB0C5])
        self.bank = NoiseBank(c.seed)
        W, D, H = (float(x) for x in self.room_max)
        self.materials: list[Material] = [
            random_material(rng, "wall", (D, H)), random_material(rng, "wall", (D, H)),
            random_material(rng, "wall", (W, H)), random_material(rng, "wall", (W, H)),
            random_material(rng, "floor"), random_material(rng, "ceiling"),
        ]
        lo, hi = self.bounds()
        keepout = np.concatenate([camera_centres(lo, hi, c.seed, s) for s in SESSIONS])
        self.objects: list[Box | Sphere | Cylinder] = []
        self.object_names: list[str] = []
        self._place_objects(rng, keepout)
        self._bounds = [(*(np.asarray(x, np.float64) for x in p.aabb()), *p.bounding_sphere()) for p in self.objects]
        self.lights = np.array([[rng.uniform(0.25, 0.45) * W, rng.uniform(0.25, 0.75) * D, H - 0.3],
                                [rng.uniform(0.55, 0.75) * W, rng.uniform(0.25, 0.75) * D, H - 0.3]], np.float32)
        self.light_colours = np.array([[1.0, 0.96, 0.9], [0.92, 0.96, 1.0]], np.float32) * np.float32(c.light_intensity)

    # ------------------------------------------------------------------ geometry
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(min xyz, max xyz)`` of the room (world frame, metres, float64)."""
        return np.zeros(3), self.room_max.astype(np.float64)

    def raycast(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest hit of rays ``origin + t * dirs`` from a point inside the room (world frame).

        Args:
            origin: ``[3]`` ray origin, metres (inside the room, outside every object).
            dirs: ``[N x 3]`` directions (any length; with camera-frame z = 1, ``t`` is the z-depth).
        Returns:
            ``t`` ``[N]`` float32 (in units of ``|dirs|``) and the id ``[N]`` int32 of the hit primitive
            (0-5: room faces x=0, x=W, y=0, y=D, floor, ceiling; 6 + k: ``self.objects[k]``).
        """
        o = np.asarray(origin, np.float64).reshape(3)
        d = np.asarray(dirs, np.float32).reshape(-1, 3)
        comp = tuple(np.ascontiguousarray(d[:, k]) for k in range(3))
        inv_len = 1.0 / np.sqrt(comp[0] * comp[0] + comp[1] * comp[1] + comp[2] * comp[2])
        unit = tuple(x * inv_len for x in comp)

        def candidates(lo: np.ndarray, hi: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
            # rays within the cone from o that contains the bounding sphere
            oc = centre - o
            dist = float(np.linalg.norm(oc))
            if dist <= radius:
                return np.arange(len(d))
            cos_max = np.float32(np.sqrt(max(0.0, 1.0 - (radius / dist) ** 2)) - 1e-4)
            oc = (oc / dist).astype(np.float32)
            return np.nonzero(unit[0] * oc[0] + unit[1] * oc[1] + unit[2] * oc[2] >= cos_max)[0]

        return self._raycast(o, comp, candidates)

    def _raycast(self, o: np.ndarray, comp: tuple[np.ndarray, np.ndarray, np.ndarray], candidates
                 ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`raycast` on direction components; ``candidates(aabb_lo, aabb_hi, sphere_centre, sphere_radius)``
        -> indices of the rays that may hit a primitive with these bounds (conservative culling)."""
        n = len(comp[0])
        t = np.full(n, BIG, np.float32)
        pid = np.zeros(n, np.int32)
        for k in range(3):  # exit through the room faces (the origin is inside)
            pos = comp[k] >= 0
            with np.errstate(divide="ignore"):
                tk = np.where(pos, np.float32(self.room_max[k] - o[k]), np.float32(-o[k])) / np.where(
                    comp[k] == 0, np.float32(1e-30), comp[k])
            closer = tk < t
            t = np.where(closer, tk, t)
            pid = np.where(closer, (2 * k + pos).astype(np.int32), pid)
        for k, prim in enumerate(self.objects):
            cand = candidates(*self._bounds[k])
            if len(cand) == 0:
                continue
            tk = prim.intersect(o, tuple(x[cand] for x in comp))
            hit = tk < t[cand]
            t[cand[hit]] = tk[hit]
            pid[cand[hit]] = N_ROOM_FACES + k
        return t, pid

    def _surface_group(self, k: int, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Normals ``[n x 3]``, uv ``[n x 2]`` and the material id for points ``p`` on primitive ``k``."""
        if k < N_ROOM_FACES:
            ax = k // 2
            normal = np.zeros((len(p), 3), np.float32)
            normal[:, ax] = -1.0 if k % 2 else 1.0
            cols = {0: [1, 2], 1: [0, 2], 2: [0, 1]}[ax]
            return normal, np.ascontiguousarray(p[:, cols], dtype=np.float32), k
        prim = self.objects[k - N_ROOM_FACES]
        normal, uv = prim.surface(p)
        return normal.astype(np.float32), uv.astype(np.float32), prim.material

    def surface_at(self, p: np.ndarray, pid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normals ``[N x 3]`` (pointing into free space), texture uv ``[N x 2]`` (m) and material ids ``[N]``.

        ``p`` ``[N x 3]`` are world points on the primitives ``pid`` (as returned by :meth:`raycast`).
        """
        p = np.asarray(p, np.float32)
        pid = np.asarray(pid)
        normal = np.zeros((len(p), 3), np.float32)
        uv = np.zeros((len(p), 2), np.float32)
        mat = np.zeros(len(p), np.int32)
        for k in np.unique(pid):
            sel = np.nonzero(pid == k)[0]
            normal[sel], uv[sel], mat[sel] = self._surface_group(int(k), p[sel])
        return normal, uv, mat

    def _colour_groups(self, p: np.ndarray, pid: np.ndarray, footprint) -> np.ndarray:
        """Shaded colour ``[N x 3]`` float32 in [0, 1] at points ``p`` on primitives ``pid``.

        Albedo x irradiance with a soft highlight shoulder (:func:`_tone_map`).

        ``footprint(sel, normal)`` returns metres per pixel ``[len(sel)]`` for the points ``sel``.
        """
        n = len(p)
        order = np.argsort(pid, kind="stable")
        counts = np.bincount(pid, minlength=N_ROOM_FACES + len(self.objects))
        col = np.empty((n, 3), np.float32)
        start = 0
        for k, cnt in enumerate(counts):
            if cnt == 0:
                continue
            sel = order[start:start + cnt]
            start += cnt
            q = p[sel]
            normal, uv, m = self._surface_group(k, q)
            fw = footprint(sel, normal)
            col[sel] = material_albedo(self.materials[m], uv, fw, self.bank) * self.shading(q, normal)
        return _tone_map(col)

    def clearance(self, points: np.ndarray) -> np.ndarray:
        """Distance (m) from world points ``[N x 3]`` to the nearest surface.

        Negative inside an object or outside the room; zero on a surface.
        """
        p = np.asarray(points, np.float64).reshape(-1, 3)
        d = np.minimum(p, self.room_max.astype(np.float64) - p).min(1)
        for prim in self.objects:
            d = np.minimum(d, prim.sdf(p))
        return d

    # ------------------------------------------------------------------ appearance
    def shading(self, p: np.ndarray, normal: np.ndarray) -> np.ndarray:
        """View-independent Lambertian irradiance ``[N x 3]`` (ambient + two point lights) at points/normals."""
        p = np.asarray(p, np.float32)
        normal = np.asarray(normal, np.float32)
        shade = np.full((len(p), 3), np.float32(self.config.ambient), np.float32)
        n_dot_p = np.einsum("ij,ij->i", normal, p)
        p_sq = np.einsum("ij,ij->i", p, p)
        for pos, col in zip(self.lights, self.light_colours):
            dist2 = p_sq - 2.0 * (p @ pos) + np.float32(pos @ pos)
            lam = np.maximum(normal @ pos - n_dot_p, 0) / np.sqrt(dist2)
            shade += (lam / (1.0 + dist2 * np.float32(1.0 / 12.0)))[:, None] * col
        return shade

    def render(self, T_world_cam: np.ndarray, K: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Ray-cast one view.

        Args:
            T_world_cam: ``[4 x 4]`` camera-to-world pose, OpenCV axes (x right, y down, z forward), metres.
            K: ``[3 x 3]`` pinhole intrinsics; pixel (col i, row j) has its centre at ``(i + 0.5, j + 0.5)``.
            width, height: image size (pixels).
        Returns:
            ``rgb`` ``[H x W x 3]`` uint8 and ``depth`` ``[H x W]`` float32 exact z-depth (m, > 0 everywhere).
        """
        K = np.asarray(K, np.float64)
        T = np.asarray(T_world_cam, np.float64)
        R = T[:3, :3].astype(np.float32)
        x = ((np.arange(width) + 0.5 - K[0, 2]) / K[0, 0]).astype(np.float32)[None, :]
        y = ((np.arange(height) + 0.5 - K[1, 2]) / K[1, 1]).astype(np.float32)[:, None]
        # world ray directions with camera-frame z = 1, so the ray parameter t is the z-depth
        d = np.stack([(R[i, 0] * x + R[i, 1] * y + R[i, 2]).reshape(-1) for i in range(3)], axis=1)
        o = T[:3, 3]
        comp = tuple(np.ascontiguousarray(d[:, k]) for k in range(3))
        t, pid = self._raycast(o, comp, _image_culler(T, K, width, height, comp))
        p = o.astype(np.float32) + t[:, None] * d
        inv_f = np.float32(1.0 / np.sqrt(K[0, 0] * K[1, 1]))
        inv_len = 1.0 / np.linalg.norm(d, axis=1)

        def footprint(sel, normal):
            cos = np.abs(np.einsum("ij,ij->i", normal, d[sel])) * inv_len[sel]
            return t[sel] * inv_f / np.maximum(cos, np.float32(0.25))

        col = self._colour_groups(p, pid, footprint)
        rgb = np.clip(col * np.float32(255.0) + np.float32(0.5), 0, 255).astype(np.uint8)
        return rgb.reshape(height, width, 3), t.reshape(height, width)

    def surface_points(self, n: int, rng: np.random.Generator, footprint: float = 0.004
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample ``n`` visible-surface points, area-uniform (hidden faces, e.g. under a cabinet, excluded).

        Returns world points ``[n x 3]`` float64 (m), unit normals ``[n x 3]`` (pointing into free space)
        and colours ``[n x 3]`` uint8 as rendered (albedo x view-independent shading), textures
        evaluated at ``footprint`` metres per pixel.
        """
        W, D, H = (float(x) for x in self.room_max)
        face_area = np.array([D * H, D * H, W * H, W * H, W * D, W * D])
        areas = np.concatenate([face_area] + [prim.areas().sum(keepdims=True) for prim in self.objects])
        pts, pids = [], []
        have = 0
        while have < n:
            m = int((n - have) * 1.3) + 16
            which = rng.choice(len(areas), size=m, p=areas / areas.sum())
            p = np.empty((m, 3))
            for k in np.unique(which):
                sel = which == k
                if k < N_ROOM_FACES:
                    q = rng.random((int(sel.sum()), 3)) * self.room_max
                    q[:, k // 2] = 0.0 if k % 2 == 0 else self.room_max[k // 2]
                    p[sel] = q
                else:
                    p[sel] = self.objects[k - N_ROOM_FACES].sample(int(sel.sum()), rng)
            normal, _, _ = self.surface_at(p, which)
            ok = self.clearance(p + 2e-3 * normal) > 1e-3  # the surface faces free space here
            pts.append(p[ok])
            pids.append(which[ok].astype(np.int32))
            have += int(ok.sum())
        p, pid = np.concatenate(pts)[:n], np.concatenate(pids)[:n]
        normal, _, _ = self.surface_at(p, pid)
        col = self._colour_groups(p.astype(np.float32), pid, lambda sel, nrm: np.full(len(sel), footprint, np.float32))
        return p, normal.astype(np.float64), np.clip(col * 255.0 + 0.5, 0, 255).astype(np.uint8)

    # ------------------------------------------------------------------ layout
    def _place_objects(self, rng: np.random.Generator, keepout: np.ndarray) -> None:
        """Place furniture (rejection sampling): no overlaps, clear of the camera paths ``keepout`` ``[M x 3]``."""
        c = self.config
        n = int(rng.integers(5, 9)) if c.num_objects is None else int(c.num_objects)
        kinds = list(rng.permutation(["table", "cabinet", "pillar", "ball"]))
        kinds += list(rng.choice(["crate", "drum", "shelf", "cabinet", "ball", "crate", "table"], size=max(0, n - 4)))
        footprints: list[tuple[np.ndarray, float]] = []
        for kind in kinds[:n]:
            for _attempt in range(200):
                parts, mats, xy, rad = _propose(str(kind), rng, *(float(x) for x in self.room_max))
                if any(np.linalg.norm(xy - fxy) < rad + frad + 0.1 for fxy, frad in footprints):
                    continue
                if min(float(p.sdf(keepout).min()) for p in parts) < c.camera_clearance:
                    continue
                base = len(self.materials)
                self.materials.extend(mats)
                self.objects.extend(replace(p, material=base + p.material) for p in parts)
                self.object_names.append(str(kind))
                footprints.append((xy, rad))
                break
            else:
                log.debug("procedural seed %d: no room for a %s, skipped", c.seed, kind)


def _image_culler(T: np.ndarray, K: np.ndarray, width: int, height: int, comp: tuple):
    """Candidate rays (pixel indices) per primitive bounds for one image: conservative culling.

    A primitive wholly in front of the camera can only be hit by pixels inside the image rectangle of
    its bounding box's 8 corners; one straddling the camera plane by rays in the cone round its
    bounding sphere. ``comp``: the image's world ray directions (dx, dy, dz), row-major pixels.
    """
    o = T[:3, 3]
    pix = np.arange(width * height).reshape(height, width)
    unit = []

    def candidates(lo: np.ndarray, hi: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
        X = (np.array(np.meshgrid(*zip(lo, hi))).reshape(3, -1).T - o) @ T[:3, :3]  # corners, camera frame
        if np.all(X[:, 2] < 1e-3):
            return pix[:0, 0]
        if np.all(X[:, 2] >= 1e-3):
            u = K[0, 0] * X[:, 0] / X[:, 2] + K[0, 2]
            v = K[1, 1] * X[:, 1] / X[:, 2] + K[1, 2]
            i0, i1 = max(int(np.floor(u.min() - 0.5)), 0), min(int(np.ceil(u.max() - 0.5)) + 1, width)
            j0, j1 = max(int(np.floor(v.min() - 0.5)), 0), min(int(np.ceil(v.max() - 0.5)) + 1, height)
            return pix[j0:j1, i0:i1].reshape(-1) if i1 > i0 and j1 > j0 else pix[:0, 0]
        oc = centre - o
        dist = float(np.linalg.norm(oc))
        if dist <= radius:
            return pix.reshape(-1)
        if not unit:
            inv_len = 1.0 / np.sqrt(comp[0] * comp[0] + comp[1] * comp[1] + comp[2] * comp[2])
            unit.extend(x * inv_len for x in comp)
        cos_max = np.float32(np.sqrt(max(0.0, 1.0 - (radius / dist) ** 2)) - 1e-4)
        oc = (oc / dist).astype(np.float32)
        return np.nonzero(unit[0] * oc[0] + unit[1] * oc[1] + unit[2] * oc[2] >= cos_max)[0]

    return candidates


def _tone_map(x: np.ndarray, knee: float = 0.75) -> np.ndarray:
    """Identity below ``knee``, then a soft shoulder approaching 1 (no clipped highlights)."""
    over = np.maximum(x - np.float32(knee), 0)
    return np.minimum(x, np.float32(knee)) + np.float32(1 - knee) * np.tanh(over / np.float32(1 - knee))


def _f32(*x) -> np.ndarray:
    return np.array(x, np.float32)


def _propose(kind: str, rng: np.random.Generator, W: float, D: float, H: float):
    """One candidate object: primitives (material ids local: 0, 1), materials, footprint centre xy and radius."""
    mats = [random_material(rng, "wood" if kind == "table" and rng.random() < 0.6 else "object"),
            random_material(rng, "object")]
    if kind in ("cabinet", "shelf"):
        length = rng.uniform(0.6, 1.4)
        depth = rng.uniform(0.4, 0.6) if kind == "cabinet" else rng.uniform(0.25, 0.35)
        h = rng.uniform(0.8, 1.3) if kind == "cabinet" else rng.uniform(1.7, 2.3)
        wall = int(rng.integers(4))
        s = rng.uniform(length / 2 + 0.05, (D if wall < 2 else W) - length / 2 - 0.05)
        off = depth / 2  # flush with the wall (its back and the wall behind are hidden)
        xy = np.array({0: (off, s), 1: (W - off, s), 2: (s, off), 3: (s, D - off)}[wall])
        yaw = np.pi / 2 if wall < 2 else 0.0
        parts = [Box(_f32(*xy, h / 2), _f32(length / 2, depth / 2, h / 2), yaw, 0)]
        return parts, mats, xy, float(np.hypot(length, depth) / 2)
    rad = {"table": 0.85, "crate": 0.5, "drum": 0.35, "ball": 0.35, "pillar": 0.3}[kind]
    xy = np.array([rng.uniform(rad + 0.05, W - rad - 0.05), rng.uniform(rad + 0.05, D - rad - 0.05)])
    yaw = float(rng.uniform(0, np.pi))
    if kind == "table":
        lx, ly, ht = rng.uniform(1.0, 1.5), rng.uniform(0.6, 0.9), rng.uniform(0.72, 0.78)
        parts: list = [Box(_f32(*xy, ht - 0.02), _f32(lx / 2, ly / 2, 0.02), yaw, 0)]
        cy, sy = np.cos(yaw), np.sin(yaw)
        for ex, ey in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            ax, ay = ex * (lx / 2 - 0.06), ey * (ly / 2 - 0.06)
            leg = xy + np.array([cy * ax - sy * ay, sy * ax + cy * ay])
            parts.append(Box(_f32(*leg, (ht - 0.04) / 2), _f32(0.025, 0.025, (ht - 0.04) / 2), yaw, 0))
        if rng.random() < 0.6:  # a ball on the table
            r = rng.uniform(0.1, 0.18)
            parts.append(Sphere(_f32(*(xy + rng.uniform(-0.2, 0.2, 2)), ht + r), float(r), 1))
        return parts, mats, xy, float(np.hypot(lx, ly) / 2)
    if kind == "crate":
        half = rng.uniform(0.18, 0.35, 3).astype(np.float32)
        parts = [Box(_f32(*xy, half[2]), half, yaw, 0)]
        if rng.random() < 0.5:  # a smaller crate on top, turned
            h2 = (half * rng.uniform(0.5, 0.8, 3)).astype(np.float32)
            parts.append(Box(_f32(*xy, 2 * half[2] + h2[2]), h2, yaw + rng.uniform(0.3, 1.2), 1))
        return parts, mats, xy, float(np.hypot(half[0], half[1]))
    if kind == "drum":
        r = float(rng.uniform(0.18, 0.35))
        return [Cylinder(xy.astype(np.float32), r, 0.0, float(rng.uniform(0.35, 0.9)), 0)], mats, xy, r
    if kind == "ball":
        r = float(rng.uniform(0.15, 0.35))
        return [Sphere(_f32(*xy, r), r, 0)], mats, xy, r
    r = float(rng.uniform(0.12, 0.25))  # pillar, floor to ceiling
    return [Cylinder(xy.astype(np.float32), r, 0.0, H, 0)], mats, xy, r
