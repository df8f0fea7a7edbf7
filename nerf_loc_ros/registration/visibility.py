"""Free-space consistency of a registration: does one map's surface land where the other map saw empty space?

A wrong alignment of two maps of one scene (a floor matched to a floor under a 90-degree turn, a repeated poster)
can collect many feature inliers, but it puts the source's walls in the middle of rooms the target's cameras
looked through. Map-merging and loop-closure systems reject such transforms with a free-space (visibility)
check; here the NeRFs' rendered depth maps are the observations. Each surface point of one map, moved by the
transform, is projected into the other map's rendered views and compared with the depth seen there:

* ``agree``: within ``tolerance`` (relative) of the rendered depth: the two surfaces coincide;
* ``violate``: in front of the rendered depth by more than that: the point sits in observed free space; or on a
  pixel the view sees straight through (``DepthView.free``: an object's background) nearer than the farthest
  surface that view shows;
* behind the surface, outside the image or on an unreliable pixel: no evidence (occluded or unobserved).

The violation ratio ``violate / (agree + violate)``, both directions pooled, is near zero for the true transform
(only depth noise and the NeRFs' floaters violate) and far from zero for wrong ones. A 180-degree turn of a
symmetric room passes that test (walls land on walls), but not a photometric one: where the surfaces agree, the
rendered grey levels of the two maps correlate (Pearson r, invariant to the gain and offset of exposure changes;
smoothed by :func:`smoothed_grey`, so that a transform a few pixels off still sees its texture) for the true
transform and hardly at all when one wall's texture lands on another wall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import PinholeCamera, transform_points

__all__ = ["DepthView", "SurfacePoints", "VisibilityCheck", "depth_surface_points", "smoothed_grey", "visibility_check"]


@dataclass
class DepthView:
    """A rendered view of a map: ``K [3 x 3]`` (pixel edges at integers), ``T_world_cam [4 x 4]`` (map frame,
    OpenCV axes), ``depth [H x W]`` z-depth in map units, NaN where the render shows no reliable surface (not
    opaque, or on a depth edge, where the expected depth of two surfaces floats between them), and ``grey
    [H x W]`` the rendered grey level in [0, 1]; ``free [H x W]`` (optional) marks pixels whose whole ray is
    empty (transparent render: the background of an object seen from outside)."""

    K: np.ndarray
    T_world_cam: np.ndarray
    depth: np.ndarray
    grey: np.ndarray
    free: np.ndarray | None = None

    def moved(self, T_new_old: np.ndarray) -> DepthView:
        """The same view with its camera expressed in another frame (``T_new_old [4 x 4]``)."""
        return DepthView(self.K, np.asarray(T_new_old, np.float64) @ self.T_world_cam, self.depth, self.grey,
                         self.free)


@dataclass
class VisibilityCheck:
    """Counts of :func:`visibility_check` (see the module docstring), per hypothesis ``[H]``, and the grey-level
    moments of the agreeing point pairs (``moments [H x 5]``: sums of a, b, a^2, b^2, ab)."""

    agree: np.ndarray
    violate: np.ndarray
    moments: np.ndarray

    @property
    def grey_correlation(self) -> np.ndarray:
        """Pearson correlation ``[H]`` of the two maps' grey levels where their surfaces agree (NaN with fewer
        than 10 agreeing points or a flat grey level)."""
        n = np.maximum(self.agree, 1)
        sa, sb, saa, sbb, sab = self.moments.T
        cov = sab / n - sa * sb / n**2
        var = (saa / n - (sa / n) ** 2) * (sbb / n - (sb / n) ** 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = cov / np.sqrt(var)
        return np.where((self.agree >= 10) & (var > 1e-12), r, np.nan)

    @property
    def violation_ratio(self) -> np.ndarray:
        """``violate / (agree + violate)`` per hypothesis ``[H]``; 1 where nothing could be compared."""
        n = self.compared
        return np.where(n > 0, self.violate / np.maximum(n, 1), 1.0)

    @property
    def compared(self) -> np.ndarray:
        """``agree + violate`` per hypothesis ``[H]``."""
        return self.agree + self.violate


@dataclass
class SurfacePoints:
    """Surface samples of a map's rendered views: ``points [S x 3]`` (map frame) and their ``grey [S]`` levels."""

    points: np.ndarray
    grey: np.ndarray


def smoothed_grey(rgb: np.ndarray, sigma_px: float) -> np.ndarray:
    """Grey levels ``[H x W]`` (float32, the channel mean) of an ``[H x W x 3]`` image, smoothed by a Gaussian of
    ``sigma_px`` pixels (0: not smoothed): what :func:`visibility_check` correlates, tolerant of a transform that is
    a few pixels off."""
    from scipy.ndimage import gaussian_filter

    grey = np.asarray(rgb, np.float32).mean(-1)
    return gaussian_filter(grey, sigma_px, mode="nearest") if sigma_px > 0 else grey


def depth_surface_points(views: list[DepthView], stride: int) -> SurfacePoints:
    """The valid (finite, positive depth) pixels of rendered views on a grid of ``stride`` pixels, as 3-D points
    in the map frame with their grey levels."""
    points, grey = [np.zeros((0, 3))], [np.zeros(0)]
    for view in views:
        h, w = view.depth.shape
        r, c = np.mgrid[stride // 2:h:stride, stride // 2:w:stride]
        d = view.depth[r, c]
        ok = np.isfinite(d) & (d > 0)
        uv = np.stack([c[ok] + 0.5, r[ok] + 0.5], 1)
        points.append(transform_points(view.T_world_cam, PinholeCamera.from_K(view.K, w, h).unproject(uv, d[ok])))
        grey.append(view.grey[r[ok], c[ok]].astype(np.float64))
    return SurfacePoints(np.concatenate(points), np.concatenate(grey))


def _compare(points: np.ndarray, grey: np.ndarray, views: list[DepthView], tolerance: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``points [H x N x 3]`` (frame of ``views``) with grey levels ``[N]`` against every view: agree and violate
    counts ``[H]`` and the grey moments ``[H x 5]`` of the agreeing pairs."""
    agree = np.zeros(len(points), np.int64)
    violate = np.zeros(len(points), np.int64)
    moments = np.zeros((len(points), 5))
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
        b = np.zeros(z.shape)
        rows, cols = vv[inside].astype(np.int64), u[inside].astype(np.int64)
        d[inside] = v.depth[rows, cols]
        b[inside] = v.grey[rows, cols]
        seen = np.isfinite(d)
        with np.errstate(invalid="ignore"):
            ok = seen & (np.abs(z - d) <= tolerance * d)
            violate += (seen & (z < (1 - tolerance) * d)).sum(1)
        if v.free is not None:  # free up to the farthest surface the view shows (none shown: NaN, nothing)
            free = np.zeros(z.shape, bool)
            free[inside] = v.free[rows, cols]
            violate += (free & (z < np.fmax.reduce(v.depth, axis=None))).sum(1)
        agree += ok.sum(1)
        a = np.where(ok, grey[None], 0.0)
        b = np.where(ok, b, 0.0)
        moments += np.stack([a.sum(1), b.sum(1), (a * a).sum(1), (b * b).sum(1), (a * b).sum(1)], 1)
    return agree, violate, moments


def visibility_check(T_target_source: np.ndarray, source: SurfacePoints, target: SurfacePoints,
                     source_views: list[DepthView], target_views: list[DepthView], tolerance: float = 0.05
                     ) -> VisibilityCheck:
    """Free-space and photometric consistency of ``H`` candidate transforms ``T_target_source [H x 4 x 4]`` (or one
    ``[4 x 4]``): the source's surface points (source frame) against the target's views and the target's points
    against the source's views, pooled. ``tolerance``: relative depth band of agreement."""
    T = np.asarray(T_target_source, np.float64).reshape(-1, 4, 4)
    src = np.asarray(source.points, np.float64)
    tgt = np.asarray(target.points, np.float64)
    moved = src[None] @ T[:, :3, :3].transpose(0, 2, 1) + T[:, None, :3, 3]  # source points in the target frame
    a1, v1, m1 = _compare(moved, source.grey, target_views, tolerance)
    T_inv = np.linalg.inv(T)
    back = tgt[None] @ T_inv[:, :3, :3].transpose(0, 2, 1) + T_inv[:, None, :3, 3]
    a2, v2, m2 = _compare(back, target.grey, source_views, tolerance)
    m2 = m2[:, [1, 0, 3, 2, 4]]  # (target, source) -> (source, target) order
    return VisibilityCheck(a1 + a2, v1 + v2, m1 + m2)
