"""Classical baseline: OpenCV SIFT matched against the retrieved keyframes, 3D from NeRF-rendered depth.

Same retrieval, same PnP + RANSAC and the same gating as :class:`~.localizer.Localizer`, so a benchmark
isolates the matching: SIFT + Lowe ratio test against keyframe images vs learned descriptors against
cached NeRF points. Keyframe images are not stored in maps, so the baseline is built from the mapping images.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import torch

from ..datasets import PosedImages
from .localizer import LocalizationResult, Localizer, LocalizerConfig, Status, gate_result
from .map_files import LocalizationMap
from .mapping import render_keypoints
from .pose import solve_pnp
from .retrieval import vlad

__all__ = ["SiftLocalizer"]


class SiftLocalizer:
    """SIFT keypoints of the query matched to SIFT keypoints of the top-k keyframes (ratio test 0.8)."""

    def __init__(self, loc_map: LocalizationMap, mapping: PosedImages, config: LocalizerConfig | None = None,
                 max_features: int = 2000, ratio: float = 0.8):
        self.config = config or LocalizerConfig()
        self.ratio = ratio
        self.sift = cv2.SIFT_create(nfeatures=max_features)
        self.matcher = cv2.BFMatcher(cv2.NORM_L2)
        self.db = loc_map.keyframes
        self.retrieval = Localizer(loc_map, self.config)  # backbone + VLAD for the same retrieval
        names = {n: i for i, n in enumerate(mapping.names)}
        self.kf_desc: list[np.ndarray] = []
        self.kf_points: list[np.ndarray] = []
        for k, name in enumerate(self.db.names):
            i = names[str(name)]
            kp, desc = self._detect(mapping.images[i])
            r = render_keypoints(loc_map.nerf_map.model, mapping.K[i], mapping.T_world_cam[i], kp)
            ok = (r["opacity"] >= 0.9) & np.isfinite(r["depth"]) & (r["depth"] > 0)
            self.kf_desc.append(desc[ok])
            self.kf_points.append(r["point"][ok].astype(np.float64))

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        kps, desc = self.sift.detectAndCompute(grey, None)
        if desc is None:
            return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)
        # OpenCV keypoint coordinates put pixel centres on integers; the core's convention adds 0.5
        return np.array([k.pt for k in kps], np.float32) + 0.5, desc

    def localize(self, image: np.ndarray, K: np.ndarray, prior: np.ndarray | None = None) -> LocalizationResult:
        """Same contract as :meth:`Localizer.localize` (and the same single-threaded numpy BLAS)."""
        with self.retrieval._numpy_blas.limit(limits=1), torch.inference_mode():
            return self._localize(image, K, prior)

    def _localize(self, image: np.ndarray, K: np.ndarray, prior: np.ndarray | None) -> LocalizationResult:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        feats = self.retrieval.backbone(image)
        kfs = self.retrieval.candidate_keyframes(prior, vlad(feats.descriptors.cpu().numpy(), self.db.codebook))
        t1 = time.perf_counter()
        timings["retrieval"] = (t1 - t0) * 1e3
        kp, desc = self._detect(image)
        t2 = time.perf_counter()
        timings["backbone"] = (t2 - t1) * 1e3
        uv, X = [], []
        for k in kfs:
            if len(desc) < 2 or len(self.kf_desc[k]) < 2:
                continue
            for m in self.matcher.knnMatch(desc, self.kf_desc[k], k=2):
                if len(m) == 2 and m[0].distance < self.ratio * m[1].distance:
                    uv.append(kp[m[0].queryIdx])
                    X.append(self.kf_points[k][m[0].trainIdx])
        uv_a = np.array(uv, np.float64).reshape(-1, 2)
        X_a = np.array(X, np.float64).reshape(-1, 3)
        t3 = time.perf_counter()
        timings["matching"] = (t3 - t2) * 1e3
        h, w = image.shape[:2]
        pnp = solve_pnp(uv_a, X_a, np.asarray(K, np.float64), (w, h), self.config.pnp)
        timings["pnp"] = (time.perf_counter() - t3) * 1e3
        res = LocalizationResult(Status.FAILED, keyframes=[int(k) for k in kfs], keypoints=kp,
                                 num_keypoints=len(kp), num_matches=len(uv_a), matches_2d=uv_a, matches_3d=X_a,
                                 inliers=pnp.inliers, num_inliers=pnp.num_inliers, reproj_error=pnp.reproj_error)
        gate_result(res, pnp.T_world_cam, np.asarray(K, np.float64), self.config)
        timings["total"] = (time.perf_counter() - t0) * 1e3
        res.timings_ms = timings
        return res
