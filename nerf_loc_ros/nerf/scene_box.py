"""The region a NeRF models: an axis-aligned box in the world frame, optionally with scene contraction.

Points map to *grid coordinates* in ``[-1, 1]^3`` (what the encoding and the occupancy grid index):

* bounded (``contract=False``): ``u = (x - centre) / half_size``; density is zero outside the box;
* contracted (``contract=True``, for unbounded and forward-facing scenes): the L-infinity contraction of
  mip-NeRF 360 / MERF scaled so the box lands in ``[-f, f]^3`` and the whole world in ``[-1, 1]^3``:
  ``u -> f u`` inside, ``u -> (f + (1 - f)(1 - 1/|u|_inf)) u / |u|_inf`` outside, with ``f = inner_fraction``
  (0.5 is mip-NeRF 360's split; a larger ``f`` spends more of the grid on the box, where the detail is).

``estimate_scene_box`` picks the box from what a :class:`PosedImages` offers: depth maps (RGB-D),
LLFF near/far bounds, or the cameras themselves (inward-looking object captures or a fallback).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..datasets import PosedImages

__all__ = ["SceneBox", "depth_points", "estimate_scene_box"]

#: Share of the grid given to the scene box of forward-facing (LLFF) scenes; the rest holds the far background.
FORWARD_FACING_INNER_FRACTION = 0.75

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SceneBox:
    """Axis-aligned box ``[lo, hi]`` (world frame, dataset units) and whether space beyond it is contracted
    (into the outer ``1 - inner_fraction`` of the grid)."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    contract: bool = False
    inner_fraction: float = 0.5

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.lo, float), np.asarray(self.hi, float)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)):
            raise ValueError(f"SceneBox: lo/hi must be 3 finite numbers, got {self.lo}, {self.hi}")
        if np.any(hi <= lo):
            raise ValueError(f"SceneBox: hi must exceed lo on every axis, got lo={self.lo} hi={self.hi}")
        if not 0.1 <= self.inner_fraction <= 0.95:
            raise ValueError(f"SceneBox: inner_fraction must be in [0.1, 0.95], got {self.inner_fraction}")

    @property
    def centre(self) -> np.ndarray:
        return (np.asarray(self.lo) + np.asarray(self.hi)) / 2

    @property
    def half_size(self) -> np.ndarray:
        return (np.asarray(self.hi) - np.asarray(self.lo)) / 2

    @property
    def diagonal(self) -> float:
        """Length of the box diagonal (dataset units)."""
        return float(2 * np.linalg.norm(self.half_size))

    def to_dict(self) -> dict:
        return {"lo": [float(v) for v in self.lo], "hi": [float(v) for v in self.hi], "contract": bool(self.contract),
                "inner_fraction": float(self.inner_fraction)}

    @classmethod
    def from_dict(cls, d: dict) -> "SceneBox":
        return cls(tuple(float(v) for v in d["lo"]), tuple(float(v) for v in d["hi"]), bool(d.get("contract", False)),
                   float(d.get("inner_fraction", 0.5)))

    def to_grid(self, x: torch.Tensor) -> torch.Tensor:
        """World points ``[... x 3]`` -> grid coordinates ``[... x 3]`` in ``[-1, 1]`` (see module doc).

        Bounded boxes return values outside ``[-1, 1]`` for points outside the box (callers mask them).
        """
        c = torch.as_tensor(self.centre, dtype=x.dtype, device=x.device)
        h = torch.as_tensor(self.half_size, dtype=x.dtype, device=x.device)
        u = (x - c) / h
        if not self.contract:
            return u
        f = self.inner_fraction
        n = u.abs().amax(dim=-1, keepdim=True).clamp_min(1e-9)
        return torch.where(n <= 1, f * u, (f + (1 - f) * (1 - 1 / n)) * (u / n))

    def from_grid(self, u: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_grid` for grid coordinates strictly inside ``(-1, 1)`` -> world points."""
        c = torch.as_tensor(self.centre, dtype=u.dtype, device=u.device)
        h = torch.as_tensor(self.half_size, dtype=u.dtype, device=u.device)
        if self.contract:
            f = self.inner_fraction
            g = u.abs().amax(dim=-1, keepdim=True).clamp(1e-9, 1 - 1e-6)
            # inside: u / f; outside: invert f + (1 - f)(1 - 1/n) = g for the box-relative radius n
            u = torch.where(g <= f, u / f, u / g * (1 - f) / (1 - g))
        return u * h + c

    def inside(self, u: torch.Tensor) -> torch.Tensor:
        """Boolean mask ``[...]``: grid coordinates ``[... x 3]`` within ``[-1, 1]^3``."""
        return (u.abs() <= 1).all(dim=-1)


def _inward_look_at(T_world_cam: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Least-squares point closest to all optical axes, if the cameras look at it (object captures)."""
    C = T_world_cam[:, :3, 3]
    z = T_world_cam[:, :3, 2]
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for c, d in zip(C, z):
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ c
    if len(C) < 3 or np.linalg.cond(A) > 1e6:
        return None
    p = np.linalg.solve(A, b)
    to_p = p - C
    dist = np.linalg.norm(to_p, axis=1)
    cosines = np.sum(to_p * z, axis=1) / np.maximum(dist, 1e-9)
    if np.median(cosines) < np.cos(np.deg2rad(20)):
        return None
    return p, float(np.median(dist))


def depth_points(posed: PosedImages, per_image: int = 2000, seed: int = 0) -> np.ndarray:
    """World points ``[M x 3]`` back-projected from a random subset of valid depth pixels of every image."""
    rng = np.random.default_rng(seed)
    pts = []
    for i, d in enumerate(posed.depths or []):
        if d is None:
            continue
        v, u = np.nonzero(np.isfinite(d) & (d > 0))
        if len(u) == 0:
            continue
        k = rng.choice(len(u), size=min(per_image, len(u)), replace=False)
        u, v = u[k], v[k]
        z = d[v, u].astype(np.float64)
        Kinv = np.linalg.inv(posed.K[i])
        rays = np.stack([u + 0.5, v + 0.5, np.ones_like(z)], axis=1) @ Kinv.T
        X = rays * z[:, None]
        pts.append(X @ posed.T_world_cam[i, :3, :3].T + posed.T_world_cam[i, :3, 3])
    return np.concatenate(pts) if pts else np.zeros((0, 3))


def _frustum_points(posed: PosedImages, near: np.ndarray, far: np.ndarray) -> np.ndarray:
    """Image-corner rays of every camera at depths ``near[i]`` and ``far[i]`` -> world points."""
    pts = []
    for i in range(len(posed)):
        w, h = posed.size(i)
        Kinv = np.linalg.inv(posed.K[i])
        corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1], [w / 2, h / 2, 1]], float) @ Kinv.T
        for z in (near[i], far[i]):
            pts.append((corners * z) @ posed.T_world_cam[i, :3, :3].T + posed.T_world_cam[i, :3, 3])
    return np.concatenate(pts)


def estimate_scene_box(posed: PosedImages, padding: float = 0.05) -> SceneBox:
    """Choose the NeRF region for a dataset (world frame, dataset units).

    * depth maps present (RGB-D): the 0.5-99.5 percentile box of back-projected depth plus the camera
      centres, bounded (indoor scenes are closed);
    * LLFF near/far bounds (``extras['near_far']``): the camera frusta from the nearest near bound to twice
      that depth, contracted beyond (forward-facing scenes have far backgrounds) into the outer quarter of the grid
      (``FORWARD_FACING_INNER_FRACTION``: the foreground gets 1.5x the plane resolution of an even split, and a
      frontal far background loses none across the view, only along depth);
    * cameras looking inward at a common point (object captures such as NeRF-synthetic): a cube centred there
      whose half-size is what the median camera sees at that distance, bounded;
    * otherwise the camera-centre box grown by the trajectory extent, contracted.

    ``padding`` grows the box by that fraction of its size on every side.
    """
    C = posed.camera_centres()
    lo = hi = None
    inner = 0.5
    if posed.has_depth:
        P = depth_points(posed)
        if len(P) > 100:
            P = np.concatenate([np.percentile(P, [0.5, 99.5], axis=0), C])
            lo, hi, contract, why = P.min(0), P.max(0), False, "depth maps"
        else:
            log.warning("dataset has depth but almost no valid pixels; ignoring depth for the scene box")
    if lo is None:
        near_far = posed.extras.get("near_far")
        look = _inward_look_at(posed.T_world_cam)
        if near_far is not None:
            near = np.full(len(posed), float(np.min(near_far[:, 0])))
            P = np.concatenate([_frustum_points(posed, 0.9 * near, 2.0 * near), C])
            lo, hi, contract, why = P.min(0), P.max(0), True, "near/far bounds"
            inner = FORWARD_FACING_INNER_FRACTION
        elif look is not None:
            p, dist = look
            tan_half = max(
                max(posed.size(i)[0] / 2 / posed.K[i, 0, 0], posed.size(i)[1] / 2 / posed.K[i, 1, 1])
                for i in range(len(posed))
            )
            r = dist * tan_half
            lo, hi, contract, why = p - r, p + r, False, "inward-looking cameras"
        else:
            ext = max(posed.extent(), 1e-3)
            lo, hi, contract, why = C.min(0) - ext, C.max(0) + ext, True, "camera positions"
    pad = (hi - lo) * padding
    box = SceneBox(tuple((lo - pad).tolist()), tuple((hi + pad).tolist()), contract, inner)
    log.info("scene box from %s: lo=%s hi=%s contract=%s", why, np.round(box.lo, 3), np.round(box.hi, 3), contract)
    return box
