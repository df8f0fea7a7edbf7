"""Point clouds sampled from a NeRF map: the input of NeRF-to-NeRF registration (DeSC, DESIGN.md section 5).

A NeRF has no point cloud; DeSC samples one from the occupancy grid and the density field:

1. candidate cells: occupied cells of the occupancy grid that touch *seen free space* (a seen, unoccupied
   neighbour) — the surface shell a training camera could see, not the inside of objects and not cells no
   camera observed; for contracted scenes only cells inside the scene box (the outer shell is far background
   squeezed into a few cells);
2. ``per_cell`` random points in each candidate cell, each moved onto the visible surface: from a point
   ``march_cells`` cells out along the cell's free-space direction (the mean offset to its seen free
   neighbours) it marches back and stops where the NeRF first becomes solid at the scale of a cell,
   ``1 - exp(-sigma * cell) > alpha_threshold`` (a point whose march finds no surface is dropped). Without
   the march, points inside the solid shell of a cell lie up to a cell behind the surface;
3. per kept point: the view-independent NeRF embedding ``f(x)``, the density and the colour averaged over six
   axis-aligned view directions (view-dependent effects average out);
4. superpoints by farthest-point sampling (:func:`farthest_point_sampling`).

All points are in the map's world frame (map units).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..nerf import NerfModel

__all__ = ["SamplingConfig", "NerfPointCloud", "surface_cells", "sample_nerf_points", "farthest_point_sampling"]


@dataclass
class SamplingConfig:
    """Settings of :func:`sample_nerf_points`.

    Attributes:
        max_points: at most this many dense points (a random subset of the kept ones).
        per_cell: random candidate points per surface cell.
        alpha_threshold: keep a point when ``1 - exp(-sigma * cell_size)`` exceeds this.
        surface_only: only occupied cells next to seen free space (else every occupied, seen cell).
        march_cells: start of the march in cells from the sampled point, towards free space.
        march_steps: samples per march (resolution ``2 * march_cells / march_steps`` cells).
        chunk: field evaluations per batch.
        seed: random seed of the in-cell positions and the subset.
    """

    max_points: int = 30000
    per_cell: int = 2
    alpha_threshold: float = 0.5
    surface_only: bool = True
    march_cells: float = 2.5
    march_steps: int = 20
    chunk: int = 1 << 16
    seed: int = 0


@dataclass
class NerfPointCloud:
    """Dense NeRF samples: ``points [N x 3]`` (world frame, map units), ``features [N x C]`` (NeRF embedding),
    ``colors [N x 3]`` in [0, 1], ``density [N]`` (per map unit) and ``normals [N x 3]``: unit directions
    towards the seen free space the point was reached from (a coarse outward normal, from the occupancy grid)."""

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
        pts = (self.points.astype(np.float64) @ T[:3, :3].T + T[:3, 3]).astype(np.float32)
        normals = (self.normals.astype(np.float64) @ T[:3, :3].T).astype(np.float32)
        return NerfPointCloud(pts, self.features, self.colors, self.density, normals)

    def save(self, path: Path) -> None:
        """Write the cloud as an uncompressed ``.npz`` (no pickled objects)."""
        np.savez(path, **{k: np.ascontiguousarray(getattr(self, k), np.float32) for k in self._FIELDS})

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


def surface_cells(occupied: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Occupied cells with a seen, unoccupied cell among their 26 neighbours (``[R x R x R]`` bool grids)."""
    free = (seen & ~occupied).float()[None, None]
    near_free = torch.nn.functional.max_pool3d(free, kernel_size=3, stride=1, padding=1)[0, 0] > 0
    return occupied & seen & near_free


def free_directions(occupied: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Per cell, the sum of the grid offsets to its seen free neighbours (``[R x R x R x 3]``, grid axes):
    an outward normal estimate for surface cells (zero where no neighbour is free)."""
    free = (seen & ~occupied).float()[None, None]
    o = torch.tensor([-1.0, 0.0, 1.0])
    kernels = torch.stack([o[:, None, None].expand(3, 3, 3), o[None, :, None].expand(3, 3, 3),
                           o[None, None, :].expand(3, 3, 3)])[:, None]  # [3 x 1 x 3 x 3 x 3]
    return torch.nn.functional.conv3d(free, kernels.to(free.device), padding=1)[0].permute(1, 2, 3, 0)


def _cell_size(model: NerfModel) -> float:
    """Smallest edge (map units) of an occupancy cell inside the scene box."""
    box = model.box
    edge = 2 * np.asarray(box.half_size) / model.occupancy.resolution
    if box.contract:
        edge = edge / box.inner_fraction
    return float(edge.min())


@torch.no_grad()
def sample_nerf_points(model: NerfModel, config: SamplingConfig | None = None) -> NerfPointCloud:
    """Dense surface points of a trained NeRF with embedding, colour and density (see the module docstring).

    Raises ``ValueError`` when the NeRF has no solid surface cell (an untrained or empty map).
    """
    cfg = config or SamplingConfig()
    occ = model.occupancy
    box = model.box
    dev = model.device
    cells = surface_cells(occ.occupied, occ.seen) if cfg.surface_only else occ.occupied & occ.seen
    idx = torch.nonzero(cells.reshape(-1))[:, 0].to(dev)
    if box.contract:  # inner box only: cell centres within the box's share of the grid
        centres = occ.cell_centres(idx)
        idx = idx[centres.abs().amax(dim=1) <= box.inner_fraction]
    if len(idx) == 0:
        raise ValueError("the NeRF map has no occupied surface cells to sample (untrained or empty map?)")
    g = torch.Generator(device="cpu").manual_seed(cfg.seed)
    cells_needed = -(-3 * cfg.max_points // cfg.per_cell)  # 3x what max_points needs: some marches fail
    if len(idx) > cells_needed:
        idx = idx[torch.randperm(len(idx), generator=g)[:cells_needed].to(dev)]
    r = occ.resolution
    jitter = torch.rand(len(idx), cfg.per_cell, 3, generator=g).to(dev) * (2 / r)  # grid units, within a cell
    corner = occ.cell_centres(idx)[:, None] - 1 / r
    u = (corner + jitter).reshape(-1, 3).clamp(-0.999999, 0.999999)
    x = box.from_grid(u)
    normal_grid = free_directions(occ.occupied, occ.seen).reshape(-1, 3)[idx].repeat_interleave(cfg.per_cell, 0)
    normal = normal_grid * torch.as_tensor(np.asarray(box.half_size), dtype=x.dtype, device=dev)  # grid -> world
    normal = normal / normal.norm(dim=1, keepdim=True).clamp_min(1e-12)
    has_normal = normal_grid.abs().sum(1) > 0
    x, normal = x[has_normal], normal[has_normal]
    cell = _cell_size(model)
    field = model.field
    field.eval()
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
    Fe, S = torch.cat([o.feature for o in out]), torch.cat([o.sigma for o in out])
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
