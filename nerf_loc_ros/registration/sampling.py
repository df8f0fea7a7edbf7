"""Point clouds sampled from a NeRF map: the input of NeRF-to-NeRF registration (DeSC, DESIGN.md section 5).

A NeRF has no point cloud; DeSC samples one from the occupancy grid and the density field, keeping only surface
that the training cameras saw:

1. surface visibility: every training camera casts rays on a pixel grid (``rays_per_camera`` rays) through the
   occupancy grid and, from the first occupied cell on, finds the first solid density sample: its cell is a
   *visible surface cell*, and the mean direction back to the cameras that saw it is the cell's free-space side
   (an outward normal). Frustum tests alone cannot tell the two sides of a wall apart; rays can;
2. ``per_cell`` random points in each visible surface cell, each moved onto the surface: from a point
   ``march_cells`` cells out along the cell's free-space direction it marches back and stops where the NeRF
   first becomes solid at the scale of a cell, ``1 - exp(-sigma * cell) > alpha_threshold`` (a point whose march
   finds no surface is dropped). For contracted scenes only cells inside the scene box count;
3. per kept point: the view-independent NeRF embedding ``f(x)``, the density half a cell behind the surface
   (how solid it is: at the point itself the density is the threshold by construction) and the colour averaged
   over six axis-aligned view directions (view-dependent effects average out);
4. superpoints by farthest-point sampling (:func:`farthest_point_sampling`).

All points are in the map's world frame (map units).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..geometry import transform_points
from ..maps import MapCameras
from ..nerf import NerfModel

__all__ = ["SamplingConfig", "NerfPointCloud", "visible_surface_cells", "sample_nerf_points", "farthest_point_sampling"]


@dataclass
class SamplingConfig:
    """Settings of :func:`sample_nerf_points`.

    Attributes:
        max_points: at most this many dense points (a random subset of the kept ones).
        per_cell: random candidate points per surface cell.
        alpha_threshold: keep a point when ``1 - exp(-sigma * cell_size)`` exceeds this.
        rays_per_camera: rays each training camera renders for the surface-visibility check.
        march_cells: start of the march in cells from the sampled point, towards free space.
        march_steps: samples per march (resolution ``2 * march_cells / march_steps`` cells).
        chunk: field evaluations per batch.
        seed: random seed of the in-cell positions and the subset.
    """

    max_points: int = 30000
    per_cell: int = 2
    alpha_threshold: float = 0.5
    rays_per_camera: int = 2000
    march_cells: float = 2.5
    march_steps: int = 20
    chunk: int = 1 << 16
    seed: int = 0


@dataclass
class NerfPointCloud:
    """Dense NeRF samples: ``points [N x 3]`` (world frame, map units), ``features [N x C]`` (NeRF embedding),
    ``colors [N x 3]`` in [0, 1], ``density [N]`` (per map unit, half a cell behind the surface) and
    ``normals [N x 3]``: unit directions towards the free space the training cameras saw the point from (a coarse
    outward normal)."""

    points: np.ndarray
    features: np.ndarray
    colors: np.ndarray
    density: np.ndarray
    normals: np.ndarray

    _FIELDS = ("points", "features", "colors", "density", "normals")

    def __len__(self) -> int:
        return len(self.points)

    def subset(self, idx: np.ndarray) -> "NerfPointCloud":
        """The points at ``idx`` (indices or a boolean mask)."""
        return NerfPointCloud(*(getattr(self, k)[idx] for k in self._FIELDS))

    def transformed(self, T_new_old: np.ndarray) -> "NerfPointCloud":
        """The cloud with its points and normals mapped by the rigid ``[4 x 4]`` transform (features are
        frame-free)."""
        T = np.asarray(T_new_old, np.float64)
        pts = transform_points(T, self.points.astype(np.float64)).astype(np.float32)
        normals = (self.normals.astype(np.float64) @ T[:3, :3].T).astype(np.float32)
        return NerfPointCloud(pts, self.features, self.colors, self.density, normals)

    def save(self, path: Path) -> None:
        """Write the cloud as an uncompressed ``.npz`` (no pickled objects), atomically (temp file + rename)."""
        path = Path(path)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **{k: np.ascontiguousarray(getattr(self, k), np.float32) for k in self._FIELDS})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "NerfPointCloud":
        """Read a cloud written by :meth:`save`; a missing array, a shape mismatch or a non-finite value is a
        ``ValueError`` naming the file."""
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: np.asarray(z[k], np.float32) for k in cls._FIELDS}
        except KeyError as exc:
            raise ValueError(f"{path}: not a NeRF point cloud (missing {exc})") from None
        n = len(arrays["points"])
        shapes_ok = (arrays["points"].shape == (n, 3) and arrays["colors"].shape == (n, 3)
                     and arrays["normals"].shape == (n, 3) and arrays["density"].shape == (n,)
                     and arrays["features"].ndim == 2 and len(arrays["features"]) == n)
        if not shapes_ok:
            raise ValueError(f"{path}: inconsistent array shapes {({k: v.shape for k, v in arrays.items()})}")
        if not all(np.isfinite(v).all() for v in arrays.values()):
            raise ValueError(f"{path}: non-finite values in the point cloud")
        return cls(**arrays)


@torch.no_grad()
def visible_surface_cells(model: NerfModel, cameras: MapCameras, rays_per_camera: int = 2000,
                          alpha_threshold: float = 0.5, search_cells: float = 12.0, chunk: int = 2048
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Occupancy cells where the training ``cameras`` see the NeRF's surface: flat cell indices ``[M]`` and
    unit world directions ``[M x 3]`` from the cell towards the cameras that saw it (mean over its rays).

    Each camera casts a ray through every ``stride``-th pixel (``rays_per_camera`` rays) and marches the occupancy
    grid in half-cell steps through the scene box (the inner box of a contracted scene) to its first occupied
    cell; from there, within ``search_cells`` cells, the first sample where the NeRF is solid at the scale of a
    cell (``1 - exp(-sigma * cell) > alpha_threshold``) is what that pixel sees (occupied cells in front of it
    are low-density fog). Only those few density samples per ray touch the network."""
    from ..nerf.rays import box_intersection, image_rays

    occ, box = model.occupancy, model.box
    dev = model.device
    r3 = occ.resolution**3
    count = torch.zeros(r3, device=dev)
    towards = torch.zeros(r3, 3, device=dev)
    cell = _cell_size(model)
    step = 0.5 * cell
    n_search = max(2, int(round(search_cells / 0.5)))
    flat = occ.occupied.reshape(-1)
    for T, K, (w, h) in zip(cameras.T_world_cam, cameras.K, cameras.sizes):
        stride = max(1, int(np.sqrt(w * h / max(rays_per_camera, 1))))
        o_all, d_all, _ = image_rays(K, T, int(w), int(h), stride)
        d_all = d_all / d_all.norm(dim=1, keepdim=True)
        for o, d in zip(torch.split(o_all.float().to(dev), chunk), torch.split(d_all.float().to(dev), chunk)):
            t0, t1 = box_intersection(box, o, d)
            t0 = t0.clamp_min(0)
            hit_box = t1 > t0
            if not hit_box.any():
                continue
            o, d, t0, t1 = o[hit_box], d[hit_box], t0[hit_box], t1[hit_box]
            n_steps = int(torch.ceil((t1 - t0).max() / step)) + 1
            t = t0[:, None] + step * (torch.arange(n_steps, device=dev, dtype=torch.float32)[None] + 0.5)  # [n x S]
            u = box.to_grid(o[:, None] + d[:, None] * t[..., None])
            valid = (t < t1[:, None]) & box.inside(u)
            if box.contract:
                valid &= u.abs().amax(-1) <= box.inner_fraction
            idx = occ.index(u.reshape(-1, 3)).reshape(u.shape[:2])
            occupied = flat[idx] & valid
            seen = occupied.any(1)
            if not seen.any():
                continue
            o, d, t, valid = o[seen], d[seen], t[seen], valid[seen]
            k = (occupied[seen].float().argmax(1)[:, None]
                 + torch.arange(n_search, device=dev)[None]).clamp_max(n_steps - 1)  # [n x L]
            pts = o[:, None] + d[:, None] * t.gather(1, k)[..., None]
            alpha = 1 - torch.exp(-model.field.density(pts.reshape(-1, 3)).reshape(k.shape) * cell)
            solid = (alpha > alpha_threshold) & valid.gather(1, k)
            hit = solid.any(1)
            surface = pts[torch.arange(len(pts), device=dev), solid.float().argmax(1)][hit]
            cells = occ.index(box.to_grid(surface))
            count.index_add_(0, cells, torch.ones(len(cells), device=dev))
            towards.index_add_(0, cells, -d[hit])
    cells = torch.nonzero(count > 0)[:, 0]
    direction = towards[cells]
    norm = direction.norm(dim=1)
    keep = norm > 1e-6  # seen from opposite sides equally: no free side to march from
    return cells[keep], direction[keep] / norm[keep, None]


def _cell_size(model: NerfModel) -> float:
    """Smallest edge (map units) of an occupancy cell inside the scene box."""
    box = model.box
    edge = 2 * np.asarray(box.half_size) / model.occupancy.resolution
    if box.contract:
        edge = edge / box.inner_fraction
    return float(edge.min())


@torch.no_grad()
def sample_nerf_points(model: NerfModel, cameras: MapCameras, config: SamplingConfig | None = None
                       ) -> NerfPointCloud:
    """Dense surface points of a trained NeRF seen by its training ``cameras``, with embedding, colour, density
    and free-space normal (see the module docstring).

    Raises ``ValueError`` when no camera sees a solid surface (an untrained or empty map).
    """
    cfg = config or SamplingConfig()
    occ = model.occupancy
    box = model.box
    dev = model.device
    model.field.eval()
    idx, view = visible_surface_cells(model, cameras, cfg.rays_per_camera, cfg.alpha_threshold)
    if len(idx) == 0:
        raise ValueError("no training camera sees a solid surface in the NeRF map (untrained or empty map?)")
    g = torch.Generator(device="cpu").manual_seed(cfg.seed)
    cells_needed = -(-3 * cfg.max_points // cfg.per_cell)  # 3x what max_points needs: some marches fail
    if len(idx) > cells_needed:
        pick = torch.randperm(len(idx), generator=g)[:cells_needed].to(dev)
        idx, view = idx[pick], view[pick]
    r = occ.resolution
    jitter = torch.rand(len(idx), cfg.per_cell, 3, generator=g).to(dev) * (2 / r)  # grid units, within a cell
    corner = occ.cell_centres(idx)[:, None] - 1 / r
    u = (corner + jitter).reshape(-1, 3).clamp(-0.999999, 0.999999)
    x = box.from_grid(u)
    normal = view.repeat_interleave(cfg.per_cell, 0)
    cell = _cell_size(model)
    field = model.field
    # march from free space (+march_cells) back through the point (-march_cells): first solid sample = surface
    offsets = torch.linspace(cfg.march_cells, -cfg.march_cells, cfg.march_steps, device=dev) * cell
    X, N = [], []
    rays = max(1, cfg.chunk // cfg.march_steps)
    for lo in range(0, len(x), rays):
        xc, nc = x[lo:lo + rays], normal[lo:lo + rays]
        pts = xc[:, None] + nc[:, None] * offsets[None, :, None]  # [n x S x 3]
        alpha = 1 - torch.exp(-field.density(pts.reshape(-1, 3)).reshape(len(xc), -1) * cell)
        solid = alpha > cfg.alpha_threshold
        first = solid.float().argmax(1)
        ok = solid.any(1) & (first > 0)  # the march must start in free space
        k = first[ok]
        a0, a1 = alpha[ok, k - 1], alpha[ok, k]
        t = ((cfg.alpha_threshold - a0) / (a1 - a0).clamp_min(1e-6)).clamp(0, 1)[:, None]
        p0, p1 = pts[ok, k - 1], pts[ok, k]
        X.append(p0 + t * (p1 - p0))
        N.append(nc[ok])
    X, N = (torch.cat(X), torch.cat(N)) if X else (x[:0], normal[:0])
    if len(X) == 0:
        raise ValueError(f"no surface found (alpha > {cfg.alpha_threshold}) near the occupied cells; is the map "
                         "trained?")
    if len(X) > cfg.max_points:
        keep = torch.randperm(len(X), generator=g)[: cfg.max_points].to(dev)
        X, N = X[keep], N[keep]
    out = [field(xc) for xc in torch.split(X, cfg.chunk)]
    Fe = torch.cat([o.feature for o in out])
    # density half a cell behind the surface: how solid the surface is (at the point itself it is the threshold)
    S = torch.cat([field.density(xc) for xc in torch.split(X - 0.5 * cell * N, cfg.chunk)])
    inside = S > 0  # the march may step out of the scene box (zero density there)
    X, N, Fe, S = X[inside], N[inside], Fe[inside], S[inside]
    dirs = torch.tensor([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
                        dtype=X.dtype, device=dev)
    colors = sum(field.color(Fe, d.expand(len(Fe), 3)) for d in dirs) / len(dirs)
    return NerfPointCloud(*(a.cpu().numpy().astype(np.float32) for a in (X, Fe, colors, S, N)))


def farthest_point_sampling(points: np.ndarray, num: int, seed: int = 0) -> np.ndarray:
    """Indices ``[min(num, N)]`` of well-spread points of ``points [N x 3]`` (greedy farthest-point order)."""
    pts = torch.as_tensor(np.asarray(points, np.float32))
    n = len(pts)
    if num >= n:
        return np.arange(n)
    g = torch.Generator().manual_seed(seed)
    chosen = torch.empty(num, dtype=torch.long)
    chosen[0] = int(torch.randint(n, (1,), generator=g))
    dist = (pts - pts[chosen[0]]).square().sum(1)
    for k in range(1, num):
        chosen[k] = int(torch.argmax(dist))
        dist = torch.minimum(dist, (pts - pts[chosen[k]]).square().sum(1))
    return chosen.numpy()
