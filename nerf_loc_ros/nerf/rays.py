"""Camera rays in the world frame (OpenCV camera axes, pixel centres at ``+0.5``).

Ray directions are *not* unit length: ``d = R K^-1 [u, v, 1]^T`` has camera-z component 1, so the ray
parameter ``t`` of a point is its z-depth in that camera (what depth maps store). ``|d|`` converts
``t`` intervals into world distances.
"""

from __future__ import annotations

import numpy as np
import torch

from .scene_box import SceneBox

__all__ = ["pixel_rays", "image_rays", "box_intersection"]


def pixel_rays(
    K: torch.Tensor, T_world_cam: torch.Tensor, u: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through pixel *indices* ``(u, v)`` (column, row; centres at ``+0.5``).

    Args:
        K: ``[N x 3 x 3]`` or ``[3 x 3]`` intrinsics per ray (or shared).
        T_world_cam: ``[N x 4 x 4]`` or ``[4 x 4]`` camera-to-world poses (OpenCV axes).
        u, v: ``[N]`` pixel indices (int or float; float values are taken as continuous coordinates
            *without* the half-pixel shift).
    Returns:
        origins ``[N x 3]`` and directions ``[N x 3]`` (camera-z component 1) in the world frame.
    """
    if not torch.is_floating_point(u):
        u = u.float() + 0.5
        v = v.float() + 0.5
    K = K.to(u.dtype)
    T = T_world_cam.to(u.dtype)
    if K.dim() == 2:
        K = K.expand(len(u), 3, 3)
    if T.dim() == 2:
        T = T.expand(len(u), 4, 4)
    x = (u - K[:, 0, 2]) / K[:, 0, 0]
    y = (v - K[:, 1, 2]) / K[:, 1, 1]
    d_cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    d = torch.einsum("nij,nj->ni", T[:, :3, :3], d_cam)
    return T[:, :3, 3].clone(), d


def image_rays(K: np.ndarray, T_world_cam: np.ndarray, width: int, height: int, stride: int = 1):
    """Rays of every ``stride``-th pixel of an image, row-major -> origins, directions ``[H' W' x 3]``, ``(H', W')``."""
    vs, us = torch.meshgrid(torch.arange(0, height, stride), torch.arange(0, width, stride), indexing="ij")
    o, d = pixel_rays(torch.as_tensor(K), torch.as_tensor(T_world_cam), us.reshape(-1), vs.reshape(-1))
    return o, d, tuple(us.shape)


def box_intersection(box: SceneBox, origins: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Slab test of rays against the scene box -> ``t_enter [N]``, ``t_exit [N]`` (``t_exit <= t_enter``: miss).

    ``t_enter`` is clamped at 0 (rays start at the camera).
    """
    lo = torch.as_tensor(box.lo, dtype=origins.dtype, device=origins.device)
    hi = torch.as_tensor(box.hi, dtype=origins.dtype, device=origins.device)
    safe = torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    t0 = (lo - origins) / safe
    t1 = (hi - origins) / safe
    t_enter = torch.minimum(t0, t1).amax(dim=-1).clamp_min(0)
    t_exit = torch.maximum(t0, t1).amin(dim=-1)
    return t_enter, t_exit
