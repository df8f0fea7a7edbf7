"""Baseline registration: Open3D FPFH features + RANSAC + point-to-plane ICP (DESIGN.md section 8).

The same sampled NeRF clouds as DeSC, geometry only: voxel downsampling, normals, FPFH, RANSAC over
mutual-filtered feature correspondences (edge-length and distance checkers), then point-to-plane ICP on the
denser clouds. Open3D is an optional dependency (``pip install nerf_loc_ros[registration]``; on Debian it also
needs ``libusb-1.0-0``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .base import Registrar
from .result import RegistrationResult, RegistrationStatus, cloud_extent
from .sampling import NerfPointCloud

__all__ = ["FPFHConfig", "FPFHRegistrar", "import_open3d"]


def import_open3d():
    """``open3d``, or an ImportError that says how to install it."""
    try:
        import open3d
    except ImportError as exc:
        raise ImportError(f"the FPFH baseline needs Open3D ({exc}): pip install open3d-cpu "
                          "(and on Debian/Ubuntu: apt-get install libusb-1.0-0)") from exc
    return open3d


@dataclass
class FPFHConfig:
    """Settings of :class:`FPFHRegistrar` (distances as fractions of the target cloud's extent).

    Attributes:
        voxel: downsampling voxel for features and RANSAC.
        normal_radius, feature_radius: in voxels (Open3D's pipeline tutorial uses 2 and 5).
        distance: RANSAC / ICP inlier distance, in voxels.
        ransac_iterations, ransac_confidence: RANSAC stopping rule.
        icp: refine with point-to-plane ICP on clouds downsampled at half the voxel.
        min_fitness: below this share of source points with a target neighbour -> FAILED.
        seed: Open3D's random seed (RANSAC is randomised).
    """

    voxel: float = 0.02
    normal_radius: float = 2.0
    feature_radius: float = 5.0
    distance: float = 1.5
    ransac_iterations: int = 100_000
    ransac_confidence: float = 0.999
    icp: bool = True
    min_fitness: float = 0.1
    seed: int = 0


class FPFHRegistrar(Registrar):
    """``register(source, target, init=None) -> RegistrationResult`` with FPFH + RANSAC (+ ICP)."""

    def __init__(self, config: FPFHConfig | None = None):
        self.config = config or FPFHConfig()
        self.o3d = import_open3d()

    def _cloud(self, points: np.ndarray, voxel: float):
        o3d = self.o3d
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
        down = pcd.voxel_down_sample(voxel)
        down.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=self.config.normal_radius * voxel,
                                                                   max_nn=30))
        return down

    def register(self, source: NerfPointCloud, target: NerfPointCloud,
                 init: np.ndarray | None = None) -> RegistrationResult:
        """Estimate ``T_target_source``. With ``init`` (a guess of it) RANSAC is skipped and ICP starts there."""
        cfg, o3d = self.config, self.o3d
        reg = o3d.pipelines.registration
        timings: dict[str, float] = {}
        t0 = t = time.perf_counter()
        voxel = cfg.voxel * cloud_extent(target.points)
        dist = cfg.distance * voxel
        src, tgt = self._cloud(source.points, voxel), self._cloud(target.points, voxel)
        if len(src.points) < 10 or len(tgt.points) < 10:
            return RegistrationResult(RegistrationStatus.FAILED, reason="too few points after downsampling")
        timings["preprocess"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        if init is None:
            param = o3d.geometry.KDTreeSearchParamHybrid(radius=cfg.feature_radius * voxel, max_nn=100)
            f_src = reg.compute_fpfh_feature(src, param)
            f_tgt = reg.compute_fpfh_feature(tgt, param)
            timings["features"] = (time.perf_counter() - t) * 1e3
            t = time.perf_counter()
            o3d.utility.random.seed(cfg.seed)
            ransac = reg.registration_ransac_based_on_feature_matching(
                src, tgt, f_src, f_tgt, True, dist, reg.TransformationEstimationPointToPoint(False), 3,
                [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9), reg.CorrespondenceCheckerBasedOnDistance(dist)],
                reg.RANSACConvergenceCriteria(cfg.ransac_iterations, cfg.ransac_confidence))
            T = np.asarray(ransac.transformation)
            corr = len(ransac.correspondence_set)
            timings["ransac"] = (time.perf_counter() - t) * 1e3
        else:
            T, corr = np.asarray(init, np.float64), 0
        t = time.perf_counter()
        if cfg.icp:
            src_f, tgt_f = self._cloud(source.points, voxel / 2), self._cloud(target.points, voxel / 2)
            icp = reg.registration_icp(src_f, tgt_f, dist, T, reg.TransformationEstimationPointToPlane())
            T = np.asarray(icp.transformation)
            timings["icp"] = (time.perf_counter() - t) * 1e3
        ev = reg.evaluate_registration(src, tgt, dist, T)
        timings["total"] = (time.perf_counter() - t0) * 1e3
        res = RegistrationResult(RegistrationStatus.OK, T.copy(), float(ev.fitness), float(ev.inlier_rmse),
                                 corr, len(ev.correspondence_set), timings_ms=timings)
        if res.fitness < cfg.min_fitness:
            res.status, res.T_target_source = RegistrationStatus.FAILED, None
            res.reason = f"fitness {res.fitness:.2f} < {cfg.min_fitness}"
        return res
