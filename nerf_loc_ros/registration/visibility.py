"""Free-space consistency of a registration: does one map's surface land where the other map saw empty space?

A wrong alignment of two maps of one scene (a floor matched to a floor under a 90-degree turn, a repeated poster)
can collect many feature inliers, but it puts the source's walls in the middle of rooms the target's cameras
looked through. Map-merging and loop-closure systems reject such transforms with a free-space (visibility)
check; here the NeRFs' rendered depth maps are the observations. Each surface point of one map, moved by the
transform, is projected into the other map's rendered views and compared with the depth seen there:

* ``agree``: within ``tolerance`` (relative) of the rendered depth: the two surfaces coincide;
* ``violate``: in front of the rendered depth by more than that: the point sits in observed free space;
* behind the surface, outside the image or on a transparent pixel: no evidence (occluded or unobserved).

The violation ratio ``violate / (agree + violate)``, both directions pooled, is near zero for the true transform
(only depth noise and the NeRFs' floaters violate) and far from zero for wrong ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DepthView", "VisibilityCheck", "depth_surface_points", "visibility_check"]


@dataclass
class DepthView:
    """A rendered depth map of a map: ``K [3 x 3]`` (pixel edges at integers), ``T_world_cam [4 x 4]`` (map frame,
    OpenCV axes), ``depth [H x W]`` z-depth in map units, NaN where the render is not opaque."""

    K: np.ndarray
    T_world_cam: np.ndarray
    depth: np.ndarray

    def moved(self, T_new_old: np.ndarray) -> DepthView:
        """The same view with its camera expressed in another frame (``T_new_old [4 x 4]``)."""
        return DepthView(self.K, np.asarray(T_new_old, np.float64) @ self.T_world_cam, self.depth)


@dataclass
class VisibilityCheck:
    """Counts of :func:`visibility_check` (see the module docstring), per hypothesis ``[H]``."""

    agree: np.ndarray
    violate: np.ndarray

    @property
    def violation_ratio(self) -> np.ndarray:
        """``violate / (agree + violate)`` per hypothesis ``[H]``; 1 where nothing could be compared."""
        n = self.agree + self.violate
        return np.where(n > 0, self.violate / np.maximum(n, 1), 1.0)

    @property
    def compared(self) -> np.ndarray:
        """``agree + violate`` per hypothesis ``[H]``."""
        return self.agree + self.violate


def depth_surface_points(view: DepthView, stride: int) -> np.ndarray:
    """``[S x 3]`` points (map frame) of a depth view's opaque pixels on a grid of ``stride`` pixels."""
    h, w = view.depth.shape
    r, c = np.mgrid[stride // 2:h:stride, stride // 2:w:stride]
    d = view.depth[r, c]
    ok = np.isfinite(d) & (d > 0)
    uv1 = np.stack([c[ok] + 0.5, r[ok] + 0.5, np.ones(int(ok.sum()))], 1)
    Xc = (uv1 @ np.linalg.inv(view.K).T) * d[ok, None]
    T = view.T_world_cam
    return Xc @ T[:3, :3].T + T[:3, 3]


def _compare(points: np.ndarray, views: list[DepthView], tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """``points [H x N x 3]`` (frame of ``views``) against every view: agree and violate counts ``[H]``."""
    agree = np.zeros(len(points), np.int64)
    violate = np.zeros(len(points), np.int64)
    for v in views:
        T_cw = np.linalg.inv(v.T_world_cam)
        Pc = points @ T_cw[:3, :3].T + T_cw[:3, 3]  # [H x N x 3]
        z = Pc[..., 2]
        h, w = v.depth.shape
        with np.errstate(divide="ignore", invalid="ignore"):
            u = v.K[0, 0] * Pc[..., 0] / z + v.K[0, 2]
            vv = v.K[1, 1] * Pc[..., 1] / z + v.K[1, 2]
        inside = (z > 0) & (u >= 0) & (u < w) & (vv >= 0) & (vv < h)
        d = np.full(z.shape, np.nan)
        d[inside] = v.depth[vv[inside].astype(np.int64), u[inside].astype(np.int64)]
        seen = np.isfinite(d)
        with np.errstate(invalid="ignore"):
            agree += (seen & (np.abs(z - d) <= tolerance * d)).sum(1)
            violate += (seen & (z < (1 - tolerance) * d)).sum(1)
    return agree, violate


def visibility_check(T_target_source: np.ndarray, source_points: np.ndarray, target_points: np.ndarray,
                     source_views: list[DepthView], target_views: list[DepthView], tolerance: float = 0.05
                     ) -> VisibilityCheck:
    """Free-space consistency of ``H`` candidate transforms ``T_target_source [H x 4 x 4]`` (or one ``[4 x 4]``):
    source surface points ``[N x 3]`` (source frame) against the target's depth views and target points
    ``[M x 3]`` against the source's views, pooled. ``tolerance``: relative depth band of agreement."""
    T = np.asarray(T_target_source, np.float64).reshape(-1, 4, 4)
    src = np.asarray(source_points, np.float64)
    tgt = np.asarray(target_points, np.float64)
    moved = src[None] @ T[:, :3, :3].transpose(0, 2, 1) + T[:, None, :3, 3]  # source points in the target frame
    a1, v1 = _compare(moved, target_views, tolerance)
    T_inv = np.linalg.inv(T)
    back = tgt[None] @ T_inv[:, :3, :3].transpose(0, 2, 1) + T_inv[:, None, :3, 3]
    a2, v2 = _compare(back, source_views, tolerance)
    return VisibilityCheck(a1 + a2, v1 + v2)
