"""Registration pairs from one capture: two view subsets at a controlled overlap, the second moved rigidly.

DeSC's training and evaluation pairs are two NeRFs trained on different view subsets of one scene. The overlap of
a pair is measured on scene surface points (from depth maps or a NeRF): a point is *seen* by a subset when it
projects inside one of its images, in front of the camera; the overlap is ``|seen by A and B| / min(|A|, |B|)``
(the share of the smaller submap that the other also covers, as Predator / GeoTransformer count it). The subsets
are contiguous runs of the capture order (what two robot sessions would see), grown from the two ends until the
overlap reaches the target. Captures whose order means nothing (object-centric sets like NeRF-synthetic's, shot
from random points of a sphere) are ordered along their widest spread first (:func:`sweep_order`: a robot passing
the object from one side to the other; on a circle the two ends of any order would be neighbours), and points with
outward normals count as seen only by cameras they face within ``max_incidence_deg`` of the normal (the far side of
an object is hidden, and a surface seen edge-on is not observed: its texture is foreshortened to nothing, so no
NeRF trained on such views reconstructs it; with lego's roof seen from every camera, counting grazing views made
two runs from opposite sides "overlap" 80 % without sharing a side).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..datasets import PosedImages

__all__ = ["ViewSplit", "points_seen_by_views", "split_views_for_overlap", "random_rigid_transform", "move_cameras",
           "sweep_order"]


@dataclass
class ViewSplit:
    """Two view subsets (indices into the capture, in capture order) and their measured surface overlap."""

    a: np.ndarray
    b: np.ndarray
    overlap: float


def points_seen_by_views(points: np.ndarray, T_world_cam: np.ndarray, K: np.ndarray, sizes: list[tuple[int, int]],
                         max_depth: float | None = None, normals: np.ndarray | None = None,
                         max_incidence_deg: float = 90.0) -> np.ndarray:
    """``[V x N]`` bool: world ``points [N x 3]`` inside image ``v`` and in front of its camera (OpenCV axes),
    nearer than ``max_depth`` if given, and, if outward ``normals [N x 3]`` are given, facing the camera with
    the viewing ray less than ``max_incidence_deg`` from the normal (no other occlusion test: surface points of one
    room seen from inside, or of one object seen from outside)."""
    P = np.asarray(points, np.float64)
    out = np.zeros((len(T_world_cam), len(P)), bool)
    facing = None
    if normals is not None:
        facing = np.asarray(normals, np.float64)
        facing = facing / np.maximum(np.linalg.norm(facing, axis=1, keepdims=True), 1e-12)
    min_cos = max(float(np.cos(np.deg2rad(max_incidence_deg))), 0.0)
    for v, (T, Kv, (w, h)) in enumerate(zip(T_world_cam, K, sizes)):
        Xc = (P - T[:3, 3]) @ T[:3, :3]
        z = Xc[:, 2]
        uvw = Xc @ Kv.T
        with np.errstate(divide="ignore", invalid="ignore"):
            u, vv = uvw[:, 0] / z, uvw[:, 1] / z
        seen = (z > 1e-6) & (u >= 0) & (u < w) & (vv >= 0) & (vv < h)
        if max_depth is not None:
            seen &= z < max_depth
        if facing is not None:
            ray = T[:3, 3] - P  # point -> camera
            seen &= (ray * facing).sum(1) > min_cos * np.linalg.norm(ray, axis=1)
        out[v] = seen
    return out


def sweep_order(T_world_cam: np.ndarray) -> np.ndarray:
    """Indices ``[V]`` of cameras ``T_world_cam [V x 4 x 4]`` sorted along the direction in which their centres
    spread most (their first principal axis): the order of a sweep past an object shot from around it."""
    c = np.asarray(T_world_cam, np.float64)[:, :3, 3]
    c = c - c.mean(0)
    _, _, Vt = np.linalg.svd(c, full_matrices=False)
    return np.argsort(c @ Vt[0], kind="stable")


def split_views_for_overlap(vis: np.ndarray, overlap: float, min_views: int = 3) -> ViewSplit:
    """Split ``V`` views (rows of :func:`points_seen_by_views`, in capture order) into a prefix ``A`` and a suffix
    ``B`` whose surface overlap is as close as possible to ``overlap`` (in ``(0, 1)``).

    Both subsets grow from their end of the capture by the same number of views (past the middle they share
    views), one of them by one more for finer steps; the split nearest the target wins. Raises ``ValueError`` for fewer
    than ``2 * min_views`` views or a target outside ``(0, 1)``.
    """
    V = len(vis)
    if not 0 < overlap < 1:
        raise ValueError(f"overlap must be in (0, 1), got {overlap}")
    if V < 2 * min_views:
        raise ValueError(f"need at least {2 * min_views} views for a pair, got {V}")
    seen_by_prefix = np.logical_or.accumulate(vis, axis=0)  # [k]: seen by views 0..k
    seen_by_suffix = np.logical_or.accumulate(vis[::-1], axis=0)  # [k]: seen by the last k + 1 views
    best = None
    for m in range(min_views, V + 1):
        for ma, mb in ((m, m), (m + 1, m), (m, m + 1)):
            ma, mb = min(ma, V), min(mb, V)
            sa, sb = seen_by_prefix[ma - 1], seen_by_suffix[mb - 1]
            smaller = min(sa.sum(), sb.sum())
            ov = float((sa & sb).sum() / smaller) if smaller else 0.0
            if best is None or abs(ov - overlap) < abs(best.overlap - overlap):
                best = ViewSplit(np.arange(ma), np.arange(V - mb, V), ov)
    assert best is not None
    return best


def random_rigid_transform(rng: np.random.Generator, max_angle_deg: float = 180.0,
                           max_translation: float = 1.0) -> np.ndarray:
    """A random ``[4 x 4]`` rigid transform: rotation about a uniform random axis by up to ``max_angle_deg``,
    translation uniform in the ball of radius ``max_translation``."""
    from scipy.spatial.transform import Rotation

    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0, max_angle_deg))
    t = rng.normal(size=3)
    t *= max_translation * rng.uniform() ** (1 / 3) / np.linalg.norm(t)
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(axis * angle).as_matrix()
    T[:3, 3] = t
    return T


def move_cameras(data: PosedImages, T_new_old: np.ndarray) -> PosedImages:
    """The capture expressed in another world frame: every ``T_world_cam`` becomes ``T_new_old @ T_world_cam``
    (images, intrinsics and depths unchanged, depths being along the camera's own axis)."""
    from dataclasses import replace

    T = np.asarray(T_new_old, np.float64)
    return replace(data, T_world_cam=np.einsum("ij,njk->nik", T, data.T_world_cam))
