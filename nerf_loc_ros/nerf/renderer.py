"""Volume rendering with occupancy-guided, packed sampling (pure PyTorch).

Per ray: coarse segments (uniform inside the scene box, uniform in disparity beyond it for contracted
scenes) -> segments whose midpoint lies in an occupied cell -> a density-only pass without gradients at
their midpoints drops segments behind opaque surfaces (transmittance below ``early_stop_eps``) -> the
survivors are split into ``fine_per_segment`` samples on which the field is evaluated. Samples are *packed* (a flat
list with a ray index), so empty space costs nothing. Outputs per ray: RGB, z-depth, opacity, the
expected surface point ``X = sum w_i x_i / sum w_i`` (world frame) and the expected embedding
``F = sum w_i f_i / sum w_i``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .field import NerfField
from .occupancy import OccupancyGrid
from .rays import box_intersection, image_rays

__all__ = ["RenderConfig", "Samples", "sample_rays", "render_rays", "render_image", "segment_exclusive_cumsum"]


@dataclass
class RenderConfig:
    """Ray-sampling and compositing settings (stored in the map manifest)."""

    coarse_steps: int = 0  #: coarse segments inside the box per ray; 0 = sqrt(3) * occupancy resolution
    outer_steps: int = 64  #: disparity-spaced segments beyond the box (contracted scenes only)
    fine_per_segment: int = 2  #: samples per occupied coarse segment
    early_stop_eps: float = 1e-3  #: drop samples whose transmittance is below this
    alpha_threshold: float = 3e-3  #: drop segments whose alpha is below this (empty space in occupied cells)
    near: float = 0.0  #: smallest z-depth (dataset units) rendered
    far_factor: float = 50.0  #: contracted scenes render up to far_factor * box diagonal
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  #: RGB in [0, 1] behind transparent rays
    chunk_rays: int = 4096  #: rays per chunk when rendering images (bounds memory)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["background"] = [float(c) for c in self.background]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RenderConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "background" in known:
            known["background"] = tuple(float(c) for c in known["background"])
        return cls(**known)


@dataclass
class Samples:
    """Packed samples: ``ray [S]`` (sorted), ``t [S]`` z-depth of the sample, ``delta [S]`` world length."""

    ray: torch.Tensor
    t: torch.Tensor
    delta: torch.Tensor
    x: torch.Tensor  #: ``[S x 3]`` world positions


def segment_exclusive_cumsum(values: torch.Tensor, ray: torch.Tensor, num_rays: int) -> torch.Tensor:
    """Exclusive cumulative sum of ``values [S]`` within each ray (``ray [S]`` sorted ascending), float64 inside."""
    v = values.double()
    cs = torch.cumsum(v, 0)
    counts = torch.bincount(ray, minlength=num_rays)
    starts = torch.cumsum(counts, 0) - counts
    before = torch.zeros(num_rays, dtype=v.dtype, device=v.device)
    has = counts > 0
    before[has] = cs[starts[has]] - v[starts[has]]
    return (cs - v - before[ray]).to(values.dtype)


def _coarse_segments(field: NerfField, occ: OccupancyGrid, origins, dirs, cfg: RenderConfig):
    """Segment boundaries ``[R x K+1]`` (z-depth) and a validity mask ``[R x K]``."""
    box = field.box
    t_in, t_out = box_intersection(box, origins, dirs)
    t_in = t_in.clamp_min(cfg.near)
    k = cfg.coarse_steps or int(math.ceil(math.sqrt(3) * occ.resolution))
    s = torch.linspace(0, 1, k + 1, device=origins.device)
    hit = t_out > t_in
    t_out_safe = torch.where(hit, t_out, t_in + 1e-6)
    edges = t_in[:, None] + (t_out_safe - t_in)[:, None] * s[None]
    valid = hit[:, None].expand(-1, k).clone()
    if box.contract:
        norm = dirs.norm(dim=-1)
        t_start = torch.where(hit, t_out, torch.full_like(t_out, cfg.near)).clamp_min(max(cfg.near, 1e-6))
        t_far = cfg.far_factor * box.diagonal / norm
        t_far = torch.maximum(t_far, t_start * 1.01)
        s2 = torch.linspace(0, 1, cfg.outer_steps + 1, device=origins.device)[1:]
        inv = 1 / t_start[:, None] + (1 / t_far - 1 / t_start)[:, None] * s2[None]  # uniform in disparity
        outer = 1 / inv
        edges = torch.cat([edges, outer], dim=1)
        valid = torch.cat([valid, torch.ones_like(outer, dtype=torch.bool)], dim=1)
    return edges, valid


def sample_rays(
    field: NerfField, occ: OccupancyGrid, origins: torch.Tensor, dirs: torch.Tensor, cfg: RenderConfig,
    stratified: bool = False, generator: torch.Generator | None = None,
) -> Samples:
    """Occupancy-guided packed samples along rays ``origins, dirs [R x 3]`` (world frame).

    Occupied coarse segments are found first; with ``cfg.early_stop_eps > 0`` the density at each segment
    midpoint (no gradients) gives the transmittance entering every segment, and segments entered with less
    than ``early_stop_eps`` are dropped before being split into ``cfg.fine_per_segment`` samples.
    """
    edges, valid = _coarse_segments(field, occ, origins, dirs, cfg)
    mid = (edges[:, 1:] + edges[:, :-1]) / 2
    xm = origins[:, None, :] + dirs[:, None, :] * mid[..., None]
    valid &= occ.query(field.box.to_grid(xm.reshape(-1, 3))).reshape(valid.shape)
    ray, seg = torch.nonzero(valid, as_tuple=True)
    t0 = edges[ray, seg]
    length = edges[ray, seg + 1] - t0
    norm = dirs.norm(dim=-1)
    if len(ray) and (cfg.early_stop_eps > 0 or cfg.alpha_threshold > 0):
        with torch.no_grad():
            xs = xm[ray, seg]
            sigma = torch.cat([field.density(c) for c in torch.split(xs, 1 << 18)])
            tau = sigma * length * norm[ray]
            keep = torch.exp(-segment_exclusive_cumsum(tau, ray, len(origins))) > cfg.early_stop_eps
            if cfg.alpha_threshold > 0:
                keep &= (1 - torch.exp(-tau)) > cfg.alpha_threshold
        ray, t0, length = ray[keep], t0[keep], length[keep]
    m = cfg.fine_per_segment
    j = torch.arange(m, device=origins.device, dtype=t0.dtype)
    if stratified:
        off = torch.rand((len(ray), m), device=origins.device, generator=generator)
    else:
        off = torch.full((len(ray), m), 0.5, device=origins.device)
    t = (t0[:, None] + length[:, None] * (j[None] + off) / m).reshape(-1)
    ray = ray[:, None].expand(-1, m).reshape(-1)
    delta = (length[:, None] / m).expand(-1, m).reshape(-1) * norm[ray]
    x = origins[ray] + dirs[ray] * t[:, None]
    return Samples(ray, t, delta, x)


def _weights(sigma: torch.Tensor, s: Samples, num_rays: int) -> torch.Tensor:
    """Compositing weights ``w_i = T_i (1 - exp(-sigma_i delta_i))`` ``[S]`` of packed samples."""
    tau = sigma * s.delta
    trans = torch.exp(-segment_exclusive_cumsum(tau, s.ray, num_rays))
    return trans * (1 - torch.exp(-tau))


def render_rays(
    field: NerfField, occ: OccupancyGrid, origins: torch.Tensor, dirs: torch.Tensor, cfg: RenderConfig,
    stratified: bool = False, with_features: bool = False, generator: torch.Generator | None = None,
    with_samples: bool = False,
) -> dict[str, torch.Tensor]:
    """Render rays ``origins, dirs [R x 3]`` (world frame; ``dirs`` with camera-z component 1).

    Returns a dict with ``rgb [R x 3]``, ``depth [R]`` (expected z-depth of the surface, i.e. normalised by
    opacity), ``depth_sum [R]`` (``sum w t``, for depth losses), ``opacity [R]``, ``point [R x 3]`` (world),
    ``feature [R x C]`` (only with ``with_features``), ``num_samples`` (int tensor) and, with
    ``with_samples``, the packed ``sample_ray [S]``, ``sample_t [S]`` and ``sample_weight [S]`` (for losses).
    """
    n = len(origins)
    s = sample_rays(field, occ, origins, dirs, cfg, stratified=stratified, generator=generator)
    unit = dirs / dirs.norm(dim=-1, keepdim=True)
    out = field(s.x, unit[s.ray])
    w = _weights(out.sigma, s, n)
    opacity = torch.zeros(n, device=origins.device).index_add_(0, s.ray, w)
    rgb = torch.zeros(n, 3, device=origins.device).index_add_(0, s.ray, w[:, None] * out.rgb)
    bg = torch.as_tensor(cfg.background, dtype=rgb.dtype, device=rgb.device)
    rgb = rgb + (1 - opacity[:, None]) * bg
    depth_sum = torch.zeros(n, device=origins.device).index_add_(0, s.ray, w * s.t)
    safe = opacity.clamp_min(1e-6)
    result = {
        "rgb": rgb,
        "depth_sum": depth_sum,
        "depth": depth_sum / safe,
        "opacity": opacity,
        "point": origins + dirs * (depth_sum / safe)[:, None],
        "num_samples": torch.tensor(len(s.t)),
    }
    if with_samples:
        result.update(sample_ray=s.ray, sample_t=s.t, sample_weight=w)
    if with_features:
        feat = torch.zeros(n, out.feature.shape[1], device=origins.device).index_add_(0, s.ray, w[:, None] * out.feature)
        result["feature"] = feat / safe[:, None]
    return result


@torch.no_grad()
def render_image(
    field: NerfField, occ: OccupancyGrid, K: np.ndarray, T_world_cam: np.ndarray, width: int, height: int,
    cfg: RenderConfig, stride: int = 1, with_features: bool = False,
) -> dict[str, np.ndarray]:
    """Render a full image (every ``stride``-th pixel) in chunks of ``cfg.chunk_rays`` rays.

    Returns numpy arrays shaped ``[H' x W' x ...]``: ``rgb`` float32 in [0, 1], ``depth`` (z-depth, dataset
    units), ``opacity``, ``point`` (world frame) and, with ``with_features``, ``feature``.
    """
    dev = next(field.parameters()).device
    o, d, shape = image_rays(K, T_world_cam, width, height, stride)
    o, d = o.float().to(dev), d.float().to(dev)
    parts: dict[str, list[torch.Tensor]] = {}
    for oc, dc in zip(torch.split(o, cfg.chunk_rays), torch.split(d, cfg.chunk_rays)):
        r = render_rays(field, occ, oc, dc, cfg, with_features=with_features)
        for k, v in r.items():
            if k != "num_samples" and k != "depth_sum":
                parts.setdefault(k, []).append(v)
    return {k: torch.cat(v).reshape(*shape, -1).squeeze(-1).cpu().numpy() for k, v in parts.items()}
