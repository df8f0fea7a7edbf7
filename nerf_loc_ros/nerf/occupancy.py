"""Occupancy grid over the grid coordinates ``[-1, 1]^3`` of a :class:`SceneBox` (instant-ngp style).

Each cell keeps an exponential moving maximum of the field density sampled inside it; a cell is
occupied when that density could make a ray sample visible (``alpha > threshold`` at the render step)
and it was seen by at least one training camera. Rays skip unoccupied cells. As in instant-ngp, the
density threshold is never above the grid's mean density: a field that is still faint everywhere keeps
its densest cells (an absolute threshold alone can empty the grid, and an empty grid gets no samples,
no gradients, and stays empty).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .scene_box import SceneBox

__all__ = ["OccupancyConfig", "OccupancyGrid", "visible_cells"]


@dataclass
class OccupancyConfig:
    """Occupancy-grid settings."""

    resolution: int = 128  #: cells per axis
    decay: float = 0.95  #: EMA decay of the stored density per update
    alpha_threshold: float = 0.01  #: a cell is occupied when 1 - exp(-sigma * step) exceeds this
    warmup_updates: int = 1  #: first updates visit every cell; later ones a random subset + occupied cells
    random_fraction: float = 0.125  #: share of all cells re-sampled at random in each later update


class OccupancyGrid:
    """Density/occupancy grid ``[R x R x R]`` indexed ``[ix, iy, iz]`` over grid coordinates."""

    def __init__(self, box: SceneBox, config: OccupancyConfig | None = None, device: str | torch.device = "cpu"):
        self.box = box
        self.config = config = config or OccupancyConfig()
        r = config.resolution
        self.density = torch.full((r, r, r), 1e4, device=device)  # optimistic: everything occupied at start
        self.seen = torch.ones((r, r, r), dtype=torch.bool, device=device)
        self.occupied = self.seen.clone()
        self.updates = 0

    @property
    def resolution(self) -> int:
        return self.config.resolution

    def cell_centres(self, idx: torch.Tensor) -> torch.Tensor:
        """Grid coordinates ``[N x 3]`` of the centres of cells with flat indices ``idx [N]`` (inverse of :meth:`index`)."""
        r = self.resolution
        ijk = torch.stack([idx // (r * r), (idx // r) % r, idx % r], dim=-1)
        return (ijk.float() + 0.5) / r * 2 - 1

    def index(self, u: torch.Tensor) -> torch.Tensor:
        """Flat cell index ``[N]`` of grid coordinates ``[N x 3]`` (clamped to the grid)."""
        r = self.resolution
        i = ((u + 1) * (r / 2)).long().clamp_(0, r - 1)
        return (i[:, 0] * r + i[:, 1]) * r + i[:, 2]

    def query(self, u: torch.Tensor) -> torch.Tensor:
        """Occupied mask ``[N]`` of grid coordinates ``[N x 3]`` (False outside ``[-1, 1]^3``)."""
        return self.occupied.reshape(-1)[self.index(u)] & self.box.inside(u)

    def set_seen(self, seen: torch.Tensor) -> None:
        """Restrict occupancy to cells seen by training cameras (``[R x R x R]`` bool)."""
        self.seen = seen.to(self.density.device)
        self.occupied &= self.seen

    @torch.no_grad()
    def seed_from_points(self, points: torch.Tensor, dilate: int = 1, density: float = 1e3, allow: int = 2) -> float:
        """Start from known surfaces (e.g. back-projected depth, world frame ``[N x 3]``): cells holding a point
        (grown by ``dilate`` cells) get ``density``, all others zero; the full first update is skipped. Cells
        farther than ``allow`` cells from every point may never become occupied (measured free space, where
        colour-only training would otherwise grow floaters).

        Returns the occupied fraction.
        """
        r = self.resolution
        u = self.box.to_grid(points.to(self.density.device).float())
        u = u[self.box.inside(u)]
        mark = torch.zeros(r**3, device=self.density.device)
        mark[self.index(u)] = 1.0
        mark = mark.reshape(1, 1, r, r, r)
        allowed = torch.nn.functional.max_pool3d(mark, 2 * allow + 1, stride=1, padding=allow)[0, 0] > 0
        if dilate > 0:
            mark = torch.nn.functional.max_pool3d(mark, 2 * dilate + 1, stride=1, padding=dilate)
        self.seen = self.seen & allowed
        self.density = mark[0, 0] * density
        self.occupied = (self.density > 0) & self.seen
        self.updates = max(self.updates, self.config.warmup_updates)
        return float(self.occupied.float().mean())

    @torch.no_grad()
    def update(self, density_fn, step_size: float, generator: torch.Generator | None = None) -> float:
        """Re-sample the field density in (a subset of) cells and refresh ``occupied``.

        Args:
            density_fn: world points ``[N x 3]`` -> density ``[N]``.
            step_size: render step length (world units) that turns density into alpha.
        Returns:
            the occupied fraction of the grid.
        """
        r = self.resolution
        n = r**3
        dev = self.density.device
        if self.updates < self.config.warmup_updates:
            idx = torch.arange(n, device=dev)
        else:
            rand = torch.randint(0, n, (int(n * self.config.random_fraction),), device=dev, generator=generator)
            idx = torch.unique(torch.cat([rand, torch.nonzero(self.occupied.reshape(-1))[:, 0]]))
        idx = idx[self.seen.reshape(-1)[idx]]
        centres = self.cell_centres(idx)
        jitter = (torch.rand(centres.shape, device=dev, generator=generator) - 0.5) * (2 / r)
        x = self.box.from_grid((centres + jitter).clamp(-1 + 1e-6, 1 - 1e-6))
        sigma = torch.cat([density_fn(chunk) for chunk in torch.split(x, 65536)]) if len(x) else x.new_zeros(0)
        flat = self.density.reshape(-1)
        if self.updates == 0:
            flat.zero_()
        flat[idx] = torch.maximum(flat[idx] * self.config.decay, sigma)
        flat[~self.seen.reshape(-1)] = 0
        threshold = -np.log(1 - self.config.alpha_threshold) / step_size
        if bool(self.seen.any()):  # instant-ngp's rule: a faint field keeps its cells above the mean
            threshold = min(threshold, float(flat[self.seen.reshape(-1)].mean()))
        self.occupied = (self.density > threshold) & self.seen
        self.updates += 1
        return float(self.occupied.float().mean())

    # ------------------------------------------------------------------ persistence
    def state(self, with_density: bool = True) -> dict[str, np.ndarray]:
        """Arrays for ``occupancy.npz``: packed occupancy and seen bits, resolution, update count and (for
        checkpoints, ``with_density``) the float16 density grid; maps need only the bits."""
        out = {
            "occupied_bits": np.packbits(self.occupied.cpu().numpy().reshape(-1)),
            "seen_bits": np.packbits(self.seen.cpu().numpy().reshape(-1)),
            "resolution": np.array([self.resolution], dtype=np.int64),
            "updates": np.array([self.updates], dtype=np.int64),
        }
        if with_density:
            out["density"] = self.density.cpu().numpy().astype(np.float16)
        return out

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`state`; raises ``ValueError`` on a resolution or size mismatch."""
        r = int(arrays["resolution"][0])
        if r != self.resolution:
            raise ValueError(f"occupancy grid resolution {r} does not match the configured {self.resolution}")
        n = r**3
        occ = np.unpackbits(arrays["occupied_bits"])[:n]
        seen = np.unpackbits(arrays["seen_bits"])[:n]
        if occ.size != n or seen.size != n or ("density" in arrays and arrays["density"].shape != (r, r, r)):
            raise ValueError("occupancy grid arrays have the wrong size")
        dev = self.density.device
        self.occupied = torch.from_numpy(occ.astype(bool).reshape(r, r, r)).to(dev)
        self.seen = torch.from_numpy(seen.astype(bool).reshape(r, r, r)).to(dev)
        if "density" in arrays:
            self.density = torch.from_numpy(arrays["density"].astype(np.float32)).to(dev)
        else:  # maps store only the bits: occupied cells get a density above any threshold
            self.density = self.occupied.float() * 1e4
        self.updates = int(arrays["updates"][0])


def visible_cells(
    box: SceneBox, resolution: int, T_world_cam: np.ndarray, K: np.ndarray, sizes: list[tuple[int, int]],
    margin: float = 0.1, coarse: int = 64,
) -> torch.Tensor:
    """Cells ``[R x R x R]`` bool whose centre projects in front of and inside at least one camera image.

    ``T_world_cam [N x 4 x 4]``, ``K [N x 3 x 3]`` and ``sizes`` (width, height) describe the cameras. The
    test runs on a grid of at most ``coarse`` cells per axis (then upsampled) with the image grown by
    ``margin`` on every side, so cells at the border of the frusta count as seen.
    """
    r = min(resolution, coarse)
    c = (torch.arange(r, dtype=torch.float32) + 0.5) / r * 2 - 1
    u = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), dim=-1).reshape(-1, 3)
    X = box.from_grid(u)
    seen = torch.zeros(len(X), dtype=torch.bool)
    for T, Ki, (w, h) in zip(T_world_cam, K, sizes):
        T_cam_world = torch.from_numpy(np.linalg.inv(T)).float()
        P = torch.from_numpy(Ki).float() @ T_cam_world[:3]  # [3 x 4]
        uvw = X @ P[:, :3].T + P[:, 3]
        z = uvw[:, 2]
        px = uvw[:, 0] / z.clamp_min(1e-9)
        py = uvw[:, 1] / z.clamp_min(1e-9)
        mx, my = margin * w, margin * h
        seen |= (z > 0) & (px >= -mx) & (px <= w + mx) & (py >= -my) & (py <= h + my)
    seen = seen.reshape(1, 1, r, r, r).float()
    if r != resolution:
        seen = torch.nn.functional.interpolate(seen, size=(resolution,) * 3, mode="nearest")
    return seen[0, 0] > 0
