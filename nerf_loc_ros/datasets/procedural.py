"""Procedural indoor scene: an analytic, textured room with objects, ray-cast with exact depth.

The built-in default scene for the demo and many tests. Everything is a deterministic function of
``seed``: the layout (boxes, spheres and vertical cylinders along the walls of a room), the solid
textures (multi-octave value noise, marble, stripes and blobs in per-surface palettes) and the
lighting (Lambertian, view-independent, so a NeRF can represent it exactly). World frame ``map``:
metres, z up, the room spans ``[0, W] x [0, D] x [0, H]``. Cameras use OpenCV axes.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np

from ..geometry import make_pose
from .posed_images import PosedImages

__all__ = [
    "ProceduralSceneConfig",
    "ProceduralScene",
    "mapping_trajectory",
    "query_trajectory",
    "render_views",
    "make_session",
]

_BIG = np.float32(1e9)
_EPOCH_NS = 1_700_000_000 * 1_000_000_000


@dataclass(frozen=True)
class ProceduralSceneConfig:
    """Parameters of the procedural room (metres)."""

    seed: int = 0
    width: float = 8.0  # x extent
    depth: float = 6.5  # y extent
    height: float = 3.0  # z extent
    num_objects: int = 7
    ambient: float = 0.35
    octaves: int = 4


_TABLE_BITS = 6
_TABLE_N = 1 << _TABLE_BITS  # lattice values repeat every 64 cells; each octave uses its own offset


def lattice_table(seed: int) -> np.ndarray:
    """Random lattice values ``[64^3]`` float32 in [0, 1) for :func:`value_noise` (deterministic)."""
    return np.random.default_rng(seed).random(_TABLE_N**3, dtype=np.float32)


def value_noise(p: np.ndarray, table: np.ndarray, offset: int) -> np.ndarray:
    """Smooth 3D value noise in [0, 1] at points ``[N x 3]`` (unit lattice, trilinear + smoothstep)."""
    f = np.floor(p)
    t = p - f
    t = t * t * (3.0 - 2.0 * t)
    i = f.astype(np.int32) + offset
    m = _TABLE_N - 1
    x0, y0, z0 = i[:, 0] & m, i[:, 1] & m, i[:, 2] & m
    x1, y1, z1 = (x0 + 1) & m, (y0 + 1) & m, (z0 + 1) & m
    x0 <<= 2 * _TABLE_BITS
    x1 <<= 2 * _TABLE_BITS
    y0 <<= _TABLE_BITS
    y1 <<= _TABLE_BITS
    tx, ty, tz = t[:, 0], t[:, 1], t[:, 2]
    c00 = table[x0 + y0 + z0] * (1 - tz) + table[x0 + y0 + z1] * tz
    c01 = table[x0 + y1 + z0] * (1 - tz) + table[x0 + y1 + z1] * tz
    c10 = table[x1 + y0 + z0] * (1 - tz) + table[x1 + y0 + z1] * tz
    c11 = table[x1 + y1 + z0] * (1 - tz) + table[x1 + y1 + z1] * tz
    return (c00 * (1 - ty) + c01 * ty) * (1 - tx) + (c10 * (1 - ty) + c11 * ty) * tx


def fbm(p: np.ndarray, table: np.ndarray, seed: int, octaves: int, base_freq: float) -> np.ndarray:
    """Fractal (multi-octave) value noise in about [0, 1]; ``base_freq`` in cycles per metre."""
    total = np.zeros(len(p), np.float32)
    amp, norm, freq = 1.0, 0.0, base_freq
    for o in range(octaves):
        total += amp * value_noise(p * np.float32(freq), table, (seed * 7919 + 1031 * o) % 9973)
        norm += amp
        amp *= 0.6
        freq *= 2.03
    return total / np.float32(norm)


@dataclass(frozen=True)
class _Surface:
    kind: int  # pattern: 0 marble, 1 stripes, 2 blobs, 3 plain noise
    palette: np.ndarray  # [3 x 3] float32 colours in [0, 1]
    freq: float
    seed: int


class ProceduralScene:
    """A textured room with objects; :meth:`render` ray-casts RGB and exact z-depth."""

    def __init__(self, config: ProceduralSceneConfig | None = None) -> None:
        self.config = config or ProceduralSceneConfig()
        c = self.config
        rng = np.random.default_rng(c.seed)
        self._table = lattice_table(c.seed)
        self.room_max = np.array([c.width, c.depth, c.height], np.float32)
        self.centre = self.room_max / 2
        self.light = np.array([c.width * 0.45, c.depth * 0.55, c.height - 0.2], np.float32)
        # primitives: 6 room faces (ids 0..5), then objects
        self.boxes: list[tuple[np.ndarray, np.ndarray]] = []
        self.spheres: list[tuple[np.ndarray, float]] = []
        self.cylinders: list[tuple[np.ndarray, float, float]] = []  # (centre xy, radius, top z)
        angles = np.sort(rng.uniform(0, 2 * np.pi, c.num_objects))
        angles += np.linspace(0, 0.6, c.num_objects) * rng.uniform(-1, 1)
        for a in angles:
            kind = rng.choice(["box", "box", "sphere", "cylinder"])
            size = rng.uniform(0.25, 0.55)
            # place on the ring between the camera area and the walls
            direction = np.array([np.cos(a), np.sin(a)])
            r_wall = min((c.width / 2 - 0.05 - size) / max(abs(direction[0]), 1e-6),
                         (c.depth / 2 - 0.05 - size) / max(abs(direction[1]), 1e-6))
            r = rng.uniform(min(2.6, r_wall), r_wall)  # cameras stay within ~1.6 m of the centre
            xy = self.centre[:2] + direction * r
            if kind == "box":
                h = rng.uniform(0.4, 1.8)
                half = np.array([rng.uniform(0.2, size + 0.2), rng.uniform(0.2, size + 0.2)])
                self.boxes.append((np.array([*(xy - half), 0.0], np.float32), np.array([*(xy + half), h], np.float32)))
            elif kind == "sphere":
                z = rng.uniform(size, 1.6)
                self.spheres.append((np.array([*xy, z], np.float32), float(size)))
            else:
                self.cylinders.append((xy.astype(np.float32), float(size * 0.7), float(rng.uniform(0.8, 2.4))))
        n_surfaces = 6 + len(self.boxes) + len(self.spheres) + len(self.cylinders)
        self.surfaces = [
            _Surface(
                kind=int(rng.integers(0, 4)),
                palette=rng.uniform(0.15, 0.95, size=(3, 3)).astype(np.float32),
                freq=float(rng.uniform(0.8, 2.5)),
                seed=int(rng.integers(0, 2**31 - 1)),
            )
            for _ in range(n_surfaces)
        ]

    # ------------------------------------------------------------------ geometry
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(min xyz, max xyz)`` of the room in metres."""
        return np.zeros(3), self.room_max.astype(np.float64)

    def _intersect(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest hit ``t`` (in units of ``d``), surface id and world normal for rays from ``o`` along ``d``."""
        n = len(d)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.float32(1.0) / d
            # room: exit distance through the 6 faces (camera inside)
            t_lo = (0.0 - o) * inv
            t_hi = (self.room_max - o) * inv
            t_face = np.where(d > 0, t_hi, t_lo)  # [n, 3]
        t_face = np.where(np.isfinite(t_face) & (t_face > 0), t_face, _BIG)
        axis = np.argmin(t_face, axis=1)
        t = t_face[np.arange(n), axis]
        sid = np.where(d[np.arange(n), axis] > 0, 2 * axis + 1, 2 * axis)  # 0:x=0 1:x=W 2:y=0 ...
        normal = np.zeros((n, 3), np.float32)
        normal[np.arange(n), axis] = -np.sign(d[np.arange(n), axis])
        next_id = 6
        for lo, hi in self.boxes:
            with np.errstate(divide="ignore", invalid="ignore"):
                t1 = (lo - o) * inv
                t2 = (hi - o) * inv
            tmin = np.minimum(t1, t2)
            tmax = np.maximum(t1, t2)
            tmin = np.where(np.isnan(tmin), -_BIG, tmin)
            tmax = np.where(np.isnan(tmax), _BIG, tmax)
            t_near = tmin.max(1)
            t_far = tmax.min(1)
            hit = (t_near <= t_far) & (t_near > 1e-4) & (t_near < t)
            if hit.any():
                ax = np.argmax(tmin[hit], axis=1)
                t[hit] = t_near[hit]
                sid[hit] = next_id
                nrm = np.zeros((hit.sum(), 3), np.float32)
                nrm[np.arange(len(ax)), ax] = -np.sign(d[hit][np.arange(len(ax)), ax])
                normal[hit] = nrm
            next_id += 1
        dd = np.einsum("ij,ij->i", d, d)
        for c, r in self.spheres:
            oc = o - c
            b = d @ oc
            disc = b * b - dd * (oc @ oc - r * r)
            with np.errstate(invalid="ignore"):
                th = (-b - np.sqrt(disc)) / dd
            hit = (disc > 0) & (th > 1e-4) & (th < t)
            if hit.any():
                t[hit] = th[hit]
                sid[hit] = next_id
                p = o + th[hit, None] * d[hit]
                normal[hit] = (p - c) / r
            next_id += 1
        for cxy, r, top in self.cylinders:
            ox, oy = o[0] - cxy[0], o[1] - cxy[1]
            a = d[:, 0] ** 2 + d[:, 1] ** 2
            b = d[:, 0] * ox + d[:, 1] * oy
            disc = b * b - a * (ox * ox + oy * oy - r * r)
            with np.errstate(invalid="ignore", divide="ignore"):
                ts = (-b - np.sqrt(disc)) / a
            z = o[2] + ts * d[:, 2]
            side = (disc > 0) & (ts > 1e-4) & (z >= 0) & (z <= top)
            with np.errstate(divide="ignore", invalid="ignore"):
                tc = (top - o[2]) / d[:, 2]
            pc = o[:2] + tc[:, None] * d[:, :2]
            cap = (tc > 1e-4) & (((pc[:, 0] - cxy[0]) ** 2 + (pc[:, 1] - cxy[1]) ** 2) <= r * r)
            t_cyl = np.where(side, ts, _BIG)
            use_cap = cap & (tc < t_cyl)
            t_cyl = np.where(use_cap, tc, t_cyl)
            hit = t_cyl < t
            if hit.any():
                t[hit] = t_cyl[hit]
                sid[hit] = next_id
                p = o + t_cyl[hit, None] * d[hit]
                nrm = np.zeros((hit.sum(), 3), np.float32)
                nrm[:, 0] = (p[:, 0] - cxy[0]) / r
                nrm[:, 1] = (p[:, 1] - cxy[1]) / r
                caps = use_cap[hit]
                nrm[caps] = (0.0, 0.0, 1.0)
                normal[hit] = nrm
            next_id += 1
        return t, sid, normal

    # ------------------------------------------------------------------ appearance
    def _albedo(self, p: np.ndarray, sid: np.ndarray) -> np.ndarray:
        """Solid-texture albedo ``[N x 3]`` in [0, 1] at world points ``p`` on surfaces ``sid``."""
        out = np.empty((len(p), 3), np.float32)
        oct_ = self.config.octaves
        for s in np.unique(sid):
            m = sid == s
            q = p[m]
            surf = self.surfaces[int(s)]
            n1 = fbm(q, self._table, surf.seed, oct_, surf.freq)
            detail = fbm(q, self._table, surf.seed + 7, 3, 14.0) - 0.5
            if surf.kind == 0:  # marble
                w = 0.5 + 0.5 * np.sin(q @ np.array([3.1, 1.7, 2.3], np.float32) * surf.freq + 9.0 * n1)
            elif surf.kind == 1:  # warped stripes
                w = (np.sin((q[:, 0] + q[:, 1] * 0.7 + q[:, 2] * 0.4) * 6.0 * surf.freq + 6.0 * n1) > 0).astype(np.float32)
                w = 0.15 + 0.7 * w
            elif surf.kind == 2:  # blobs
                w = np.clip((n1 - 0.45) * 6.0, 0.0, 1.0)
            else:
                w = n1
            c0, c1, c2 = surf.palette
            col = c0[None] * (1.0 - w[:, None]) + c1[None] * w[:, None]
            spots = np.clip((fbm(q, self._table, surf.seed + 3, 2, 3.5) - 0.62) * 8.0, 0.0, 1.0)
            col = col * (1.0 - spots[:, None]) + c2[None] * spots[:, None]
            out[m] = np.clip(col * (1.0 + 1.6 * detail[:, None]), 0.0, 1.0)
        return out

    def render(self, T_world_cam: np.ndarray, K: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Ray-cast one view.

        Args:
            T_world_cam: 4x4 camera-to-world pose, OpenCV axes, metres.
            K: 3x3 pinhole intrinsics (centre of pixel (i, j) at (i + 0.5, j + 0.5)).
            width, height: image size in pixels.
        Returns:
            ``(rgb [H x W x 3] uint8, depth [H x W] float32 z-depth in metres)``.
        """
        u, v = np.meshgrid(np.arange(width, dtype=np.float32) + 0.5, np.arange(height, dtype=np.float32) + 0.5)
        x = (u.ravel() - K[0, 2]) / K[0, 0]
        y = (v.ravel() - K[1, 2]) / K[1, 1]
        d_cam = np.stack([x, y, np.ones_like(x)], axis=1).astype(np.float32)  # z = 1: t is z-depth
        R = T_world_cam[:3, :3].astype(np.float32)
        o = T_world_cam[:3, 3].astype(np.float32)
        d = d_cam @ R.T
        t, sid, normal = self._intersect(o, d)
        p = o + t[:, None] * d
        albedo = self._albedo(p, sid)
        to_light = self.light - p
        dist = np.linalg.norm(to_light, axis=1, keepdims=True)
        lambert = np.clip(np.sum(normal * to_light / dist, axis=1), 0.0, 1.0)
        falloff = 1.0 / (1.0 + 0.04 * dist[:, 0] ** 2)
        shade = self.config.ambient + (1.0 - self.config.ambient) * lambert * falloff * 1.15
        rgb = np.clip(albedo * shade[:, None] * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return rgb.reshape(height, width, 3), t.reshape(height, width).astype(np.float32)


def _look_pose(position: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """Camera-to-world pose (OpenCV axes) at ``position`` looking along yaw (about +z) and pitch (up > 0)."""
    forward = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return make_pose(np.stack([right, down, forward], axis=1), position)


def _ring_trajectory(scene: ProceduralScene, n: int, radii, z, yaw_wobble, phase, direction, yaw_offset) -> np.ndarray:
    s = np.linspace(0.0, 1.0, n, endpoint=False)
    ang = phase + direction * 2 * np.pi * s
    c = scene.centre.astype(np.float64)
    pos = np.stack([c[0] + radii[0] * np.cos(ang), c[1] + radii[1] * np.sin(ang),
                    z + 0.12 * np.sin(2 * np.pi * 3 * s + phase)], axis=1)
    yaw = ang + yaw_offset + yaw_wobble * np.sin(2 * np.pi * 5 * s + 0.3)
    pitch = np.radians(-6.0) + np.radians(8.0) * np.sin(2 * np.pi * 4 * s + 1.0)
    return np.stack([_look_pose(p, a, b) for p, a, b in zip(pos, yaw, pitch)])


def mapping_trajectory(scene: ProceduralScene, n_frames: int = 300) -> np.ndarray:
    """Mapping session ``[N x 4 x 4]``: an elliptic loop (1.5 x 1.1 m) round the room centre at ~1.4 m height, looking outward."""
    return _ring_trajectory(scene, n_frames, (1.5, 1.1), 1.4, np.radians(35.0), 0.0, +1, 0.0)


def query_trajectory(scene: ProceduralScene, n_frames: int = 300) -> np.ndarray:
    """Second session ``[N x 4 x 4]``: a tighter loop (1.15 x 0.8 m) the other way round at ~1.25 m, yaw offset 15 deg."""
    return _ring_trajectory(scene, n_frames, (1.15, 0.8), 1.25, np.radians(25.0), 1.3, -1, np.radians(15.0))


def _render_chunk(config: ProceduralSceneConfig, poses: np.ndarray, K: np.ndarray, width: int, height: int):
    scene = ProceduralScene(config)
    return [scene.render(T, K, width, height) for T in poses]


def render_views(
    config: ProceduralSceneConfig, poses: np.ndarray, K: np.ndarray, width: int, height: int,
    workers: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Render ``(rgb, depth)`` for camera-to-world ``poses`` ``[N x 4 x 4]``, in ``workers`` processes.

    ``workers=None`` uses every CPU core (at most 4) when there are enough frames to pay for the
    process start-up; results are identical to serial rendering.
    """
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if len(poses) >= 16 else 1
    if workers <= 1:
        return _render_chunk(config, poses, K, width, height)
    chunks = np.array_split(np.asarray(poses), workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        parts = pool.map(_render_chunk, [config] * workers, chunks, [K] * workers, [width] * workers, [height] * workers)
        return [view for part in parts for view in part]


def make_session(
    seed: int = 0, session: str = "mapping", n_frames: int = 120, width: int = 320, height: int = 240,
    fov_deg: float = 65.0, workers: int | None = None,
) -> PosedImages:
    """Render a session of the procedural room as :class:`PosedImages` (exact depth, 10 Hz stamps).

    Args:
        seed: scene seed (layout, textures).
        session: ``mapping`` or ``query`` (the second session, a different path).
        n_frames, width, height, fov_deg: trajectory length, image size (pixels), horizontal field of view.
        workers: rendering processes (None: all cores for long sessions; see :func:`render_views`).
    """
    if session not in ("mapping", "query"):
        raise ValueError(f"procedural session must be 'mapping' or 'query', got '{session}'")
    config = ProceduralSceneConfig(seed=seed)
    scene = ProceduralScene(config)
    poses = (mapping_trajectory if session == "mapping" else query_trajectory)(scene, n_frames)
    f = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
    K = np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])
    views = render_views(config, poses, K, width, height, workers)
    return PosedImages(
        images=[v[0] for v in views], K=np.repeat(K[None], len(poses), 0), T_world_cam=poses,
        names=[f"{session}_{i:04d}" for i in range(len(poses))],
        timestamps_ns=_EPOCH_NS + np.arange(len(poses), dtype=np.int64) * 100_000_000,
        depths=[v[1] for v in views], frame_id="map", metric=True, source=f"procedural:seed={seed}:{session}",
    )
