"""``Localizer``: one camera image -> camera pose in the map frame, with covariance, status and timings.

Stages (DESIGN.md section 4; the NeRF itself is not evaluated on this path):

1. backbone: XFeat keypoints + dense features of the query;
2. retrieval: VLAD top-k keyframes (or, with a pose prior, the keyframes nearest the prior);
3. matching: image-head descriptors at the best-scored keypoints vs the cached point descriptors of those
   keyframes' points, dual softmax + mutual nearest neighbours;
4. pnp: PnP + LO-RANSAC (poselib);
5. refine (optional, off by default): guided re-matching — the points of the keyframes nearest the estimate are
   projected with it and each keypoint is matched only among points projecting within ``refine_radii_px``;
   each pass refines the pose on its denser, cleaner set;
6. fine: the points of the keyframes nearest the estimate are located in the query by their keyframe patches
   (normalised cross-correlation around their projections, :mod:`.fine`) and the pose is refined on them;
7. render_refine (optional, off by default): NeRFMatch's iterative refinement — the NeRF renders surface
   points and features on a pixel grid at the estimate, the same guided matching and PnP run on them;
8. gating: inliers, inlier ratio, reprojection error and the first pass's inliers decide OK / LOW_CONFIDENCE /
   FAILED.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np
import torch
from scipy.spatial import cKDTree
from threadpoolctl import ThreadpoolController

from ..geometry import check_intrinsics
from .backbone import XFeatBackbone, sample_dense
from .encoder import SceneEncoder
from .fine import locate_patches
from .keyframes import KeyframeDB
from .map_files import LocalizationMap
from .matching import match_descriptors, match_descriptors_sparse
from .pose import PnPConfig, pose_covariance, project, project_visible, refine_pnp, solve_pnp
from .retrieval import top_k, vlad

log = logging.getLogger(__name__)

__all__ = ["Status", "LocalizerConfig", "LocalizationResult", "Localizer", "gate_result"]


class Status(str, Enum):
    """Outcome of one localization."""

    OK = "OK"
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    FAILED = "FAILED"


@dataclass
class LocalizerConfig:
    """Query-time settings.

    Attributes:
        retrieval_k: keyframes retrieved per query.
        first_pass_keypoints: the best-scored keypoints matched against all candidate points in the first pass
            (it only needs a pose for the stages after it).
        prior_k: keyframes taken around a pose prior (replaces retrieval) and around the estimate (refinement).
        match_threshold: minimum dual-softmax probability of a match.
        refine: run guided re-matching passes between the first pass and the fine level (off by default: with the
            fine level they cost 8 ms for no gain; measured 2026-12-01 on the benchmark maps, fine level after the
            first pass vs after an 8 px guided pass: redkitchen 0.45 vs 0.45 cm, hard split 43 vs 33 % at 5 cm / 5
            deg, lego 0.118 vs 0.128 deg, 31 vs 43 ms).
        refine_radii_px: one guided pass per radius, each from the previous pass's pose: a point is a candidate
            of a keypoint when it projects this close (pixels) to it. The dense features are 1/8 resolution, so
            points a few pixels apart have near-equal descriptors: these passes only bring the pose closer.
        fine: run the fine level (:mod:`.fine`; maps without patches skip it).
        fine_search_px: the fine level searches the keyframe patch of every point of the keyframes nearest the pose
            within this many pixels of the point's projection and refines the pose on the points found. 5 px covers the first pass's pose error (3 px lost
            a procedural frame whose first pose was 3 cm off).
        fine_keyframes: keyframes (nearest the pose) whose points the fine level tracks. The nearest keyframes'
            patches look most like the query: on redkitchen 2 gave 0.43 cm / 0.184 deg, 4 gave 0.63 cm / 0.257 deg.
        fine_min_ncc: minimum normalised cross-correlation for a point to count as found.
        fine_iterations: at most this many rounds of the fine level, each from the previous round's pose (another
            round only when the last one moved the points' projections by more than a pixel).
        pnp: PnP + RANSAC settings of the first pass.
        refine_reproj_error: inlier threshold of the refinement passes and the fine level (pixels).
        refine_mutual: match keypoints and points one-to-one (mutual nearest neighbours) in the refinement passes;
            by default every point takes its best keypoint, so a keypoint seen by several keyframes gets one 3-D
            point from each of them (their NeRF depth errors average out in the pose, as in per-keyframe 2D-2D
            matching).
        refine_ransac: run PnP + RANSAC in each refinement pass; by default a pass refines the previous pass's pose
            on its guided matches (robust Levenberg-Marquardt, :func:`~.pose.refine_pnp`): they were gathered
            around that pose, and it takes a fifth of the time.
        render_refine: also re-render NeRF points and features on a pixel grid at the estimate and match again
            (NeRFMatch's iterative refinement; evaluates the NeRF, so it costs far more than the cached path).
        render_stride: pixel stride of that grid.
        min_inliers: fewer inliers -> FAILED.
        ok_inliers: at least this many inliers (and the ratio below) -> OK, else LOW_CONFIDENCE; after the guided
            passes or the fine level the first (pose-independent) pass must have this many too.
        ok_inlier_ratio: minimum inlier share of the final matches for OK.
        max_reproj_error: median inlier reprojection error (pixels) above which the result is FAILED.
        device: torch device of the heads and backbone.
    """

    retrieval_k: int = 4
    first_pass_keypoints: int = 512
    prior_k: int = 4
    match_threshold: float = 0.02
    refine: bool = False
    refine_radii_px: tuple[float, ...] = (8.0,)
    fine: bool = True
    fine_search_px: int = 5
    fine_keyframes: int = 2
    fine_min_ncc: float = 0.8
    fine_iterations: int = 3
    pnp: PnPConfig = field(default_factory=PnPConfig)
    refine_reproj_error: float = 2.0
    refine_ransac: bool = False
    refine_mutual: bool = False
    render_refine: bool = False
    render_stride: int = 4
    min_inliers: int = 15
    ok_inliers: int = 40
    ok_inlier_ratio: float = 0.25
    max_reproj_error: float = 4.0
    device: str = "cpu"


@dataclass
class LocalizationResult:
    """Result of :meth:`Localizer.localize`.

    Attributes:
        status: OK, LOW_CONFIDENCE or FAILED.
        reason: why it is not OK (empty when OK).
        T_world_cam: ``[4 x 4]`` camera-to-world pose in the map frame (OpenCV axes); None when FAILED.
        covariance: ``[6 x 6]`` covariance of (x, y, z, rx, ry, rz) in the map frame (ROS layout).
        num_keypoints, num_matches, num_inliers: counts of the final stage.
        reproj_error: median inlier reprojection error (pixels).
        keyframes: keyframe indices used (retrieved or around the prior).
        timings_ms: per-stage latency (backbone, head, retrieval, matching, pnp, refine, fine, total).
        keypoints: ``[N x 2]`` query keypoints; ``matches_2d``/``matches_3d``: ``[M x 2]`` pixels and ``[M x 3]``
            world points of the final matches; ``inliers``: ``[M]`` mask (for debug images).
    """

    status: Status
    reason: str = ""
    T_world_cam: np.ndarray | None = None
    covariance: np.ndarray = field(default_factory=lambda: np.diag([1e3] * 6))
    num_keypoints: int = 0
    num_matches: int = 0
    num_inliers: int = 0
    reproj_error: float = float("nan")
    keyframes: list[int] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    matches_2d: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    matches_3d: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    inliers: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    stages: dict[str, int] = field(default_factory=dict)  #: matches/inliers of the first and refinement passes
    submap: str = ""  #: id of the submap that localized the image (global maps only)

    @property
    def ok(self) -> bool:
        return self.status == Status.OK


class Localizer:
    """Relocalize images against a :class:`LocalizationMap` (see the module docstring for the stages)."""

    def __init__(self, loc_map: LocalizationMap, config: LocalizerConfig | None = None):
        self.config = cfg = config or LocalizerConfig()
        self.map = loc_map
        self.db: KeyframeDB = loc_map.keyframes
        self.encoder: SceneEncoder = loc_map.encoder.to(cfg.device).eval()
        self.backbone = XFeatBackbone(loc_map.backbone_config).to(cfg.device)
        self.point_desc = torch.as_tensor(self.db.point_descriptors.astype(np.float32), device=cfg.device)
        self.points = self.db.points.astype(np.float64)
        self.point_patches = torch.as_tensor(self.db.point_patches) if self.db.has_patches else None
        if self.point_patches is None and cfg.fine:
            log.warning("the map has no fine-level patches (built before they existed): localizing without the fine "
                        "level; `nerf-loc map add-localization` rebuilds its localization part with them")
        if self.point_desc.shape[1] != self.encoder.config.descriptor_dim:
            raise ValueError("map has no point descriptors for this encoder (was the encoder trained?)")
        # numpy's OpenBLAS threads spin after each call and starve torch's threads on a 2-core machine
        # (matching measured 40-100 ms instead of 15 ms): the per-frame numpy work runs single-threaded
        self._numpy_blas = ThreadpoolController().select(internal_api="openblas")

    @property
    def frame_id(self) -> str:
        """The map frame the poses are in."""
        return self.map.frame_id

    @property
    def units(self) -> str:
        """Units of the map frame ("m" for metric maps)."""
        return self.map.nerf_map.units

    def keyframe_centres(self) -> np.ndarray:
        """Keyframe camera centres ``[N x 3]`` in the map frame."""
        return self.db.T_world_cam[:, :3, 3]

    def keyframe_names(self, res: LocalizationResult) -> list[str]:
        """Names of the keyframes a result used."""
        return [str(self.db.names[k]) for k in res.keyframes if 0 <= k < len(self.db.names)]

    def summary(self) -> str:
        """One line for logs: keyframes and points."""
        return f"{len(self.db)} keyframes, {self.db.num_points} points"

    # ------------------------------------------------------------------ stages
    def candidate_keyframes(self, T_prior: np.ndarray | None, global_desc: np.ndarray) -> np.ndarray:
        """Keyframe indices to match against: the ``prior_k`` nearest a pose prior, else the VLAD top-k of the
        query's global descriptor (shared with the SIFT baseline, so both see the same keyframes)."""
        cfg = self.config
        if T_prior is not None:
            return self.db.nearest_keyframes(T_prior, cfg.prior_k)
        idx, _ = top_k(global_desc, self.db.global_desc, cfg.retrieval_k)
        return idx

    def _match(self, desc2d: torch.Tensor, cand: np.ndarray):
        d3 = self.point_desc[torch.as_tensor(cand, device=self.point_desc.device)]
        i2, i3, _ = match_descriptors(desc2d, d3, self.encoder.temperature, self.config.match_threshold)
        return i2.cpu().numpy(), cand[i3.cpu().numpy()]

    @staticmethod
    def _near_pairs(keypoints: np.ndarray, X: np.ndarray, K: np.ndarray, size: tuple[int, int], T_world_cam,
                    radius: float, wider: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Index pairs ``(keypoint [P], point [P])`` of the points ``X [N x 3]`` (world) that project within
        ``radius`` pixels of ``keypoints [M x 2]`` under ``T_world_cam``. ``wider``: the pairs of a larger radius
        under a nearby pose, filtered instead of searching all points (a tree search costs ~1.6 ms)."""
        proj, visible = project_visible(K, T_world_cam, X, size)
        if wider is not None:
            i, j = wider
            keep = visible[j] & (np.linalg.norm(keypoints[i] - proj[j], axis=1) <= radius)
            return i[keep], j[keep]
        vis = np.flatnonzero(visible)
        pairs = cKDTree(keypoints).sparse_distance_matrix(cKDTree(proj[vis]), radius, output_type="ndarray")
        return pairs["i"].astype(np.int64), vis[pairs["j"]]

    def _guided_pass(self, keypoints: np.ndarray, desc2d: torch.Tensor, X: np.ndarray, desc3d: torch.Tensor,
                     K: np.ndarray, size: tuple[int, int], prev, stages: dict, name: str,
                     pairs: tuple[np.ndarray, np.ndarray], ransac: bool):
        """Match keypoints only to their candidate ``pairs`` (points projecting near them under ``prev``'s pose);
        PnP + RANSAC (``ransac``) or a refinement of ``prev`` at the tight threshold. Returns ``(pnp, uv, X)`` when
        accepted, else None."""
        cfg = self.config
        if len(pairs[0]) == 0:
            return None
        dev = desc2d.device
        i2, i3, _ = match_descriptors_sparse(desc2d, desc3d, torch.as_tensor(pairs[0], device=dev),
                                             torch.as_tensor(pairs[1], device=dev), self.encoder.temperature,
                                             cfg.match_threshold, mutual=cfg.refine_mutual)
        uv, Xm = keypoints[i2.cpu().numpy()].astype(np.float64), X[i3.cpu().numpy()]
        if ransac:
            pnp = solve_pnp(uv, Xm, K, size, replace(cfg.pnp, max_reproj_error=cfg.refine_reproj_error))
        else:
            pnp = refine_pnp(uv, Xm, K, size, prev.T_world_cam, cfg.refine_reproj_error)
        stages.update({f"{name}_matches": len(uv), f"{name}_inliers": pnp.num_inliers})
        # a tighter threshold keeps fewer inliers by design: accept unless it lost most of the support
        if pnp.T_world_cam is not None and pnp.num_inliers >= max(cfg.min_inliers, prev.num_inliers // 3):
            return pnp, uv, Xm
        return None

    def _fine_level(self, grey: torch.Tensor, points: np.ndarray, K: np.ndarray, size: tuple[int, int], prev,
                    stages: dict):
        """Locate map ``points`` (indices) in the query by their keyframe patches around their projections under
        ``prev``'s pose and refine that pose on the pixels found (:mod:`.fine`); another round from the new pose
        while a round moves the points' projections by more than a pixel (median), at most ``fine_iterations``.
        Returns ``(pnp, uv, X)`` of the last accepted round, or None."""
        cfg = self.config
        X_all = self.points[points]
        best = None
        for _ in range(cfg.fine_iterations):
            proj, visible = project_visible(K, prev.T_world_cam, X_all, size)
            vis = np.flatnonzero(visible)
            uv, found = locate_patches(grey, proj[vis], self.point_patches[torch.as_tensor(points[vis])],
                                       cfg.fine_search_px, cfg.fine_min_ncc)
            uv, X = uv[found], X_all[vis[found]]
            pnp = refine_pnp(uv, X, K, size, prev.T_world_cam, cfg.refine_reproj_error)
            stages.update({"fine_found": len(uv), "fine_inliers": pnp.num_inliers})
            if pnp.T_world_cam is None or pnp.num_inliers < max(cfg.min_inliers, prev.num_inliers // 3):
                break
            moved = np.median(np.linalg.norm(project(K, pnp.T_world_cam, X)[0] - proj[vis[found]], axis=1))
            prev, best = pnp, (pnp, uv, X)
            if moved <= 1.0:
                break
        return best

    def _render_candidates(self, T_world_cam: np.ndarray, K: np.ndarray, size: tuple[int, int]):
        """NeRF surface points and point-head descriptors on a pixel grid rendered at a pose (NeRFMatch's
        iterative refinement: fresh 3D candidates seen from the estimate instead of from keyframes)."""
        from .mapping import render_keypoints, sharp_surface

        model = self.map.nerf_map.model
        s = self.config.render_stride
        w, h = size
        u, v = np.meshgrid(np.arange(s / 2, w, s), np.arange(s / 2, h, s))
        r = render_keypoints(model, K, T_world_cam, np.stack([u.ravel(), v.ravel()], 1))
        ok = (r["opacity"] >= 0.9) & sharp_surface(r, 0.02) & (r["depth"] > 0)
        X = r["point"][ok].astype(np.float64)
        f = torch.as_tensor(r["feature"][ok], dtype=torch.float32, device=self.point_desc.device)
        x = model.box.to_grid(torch.as_tensor(X, dtype=torch.float32, device=self.point_desc.device))
        return X, self.encoder.point_head(f, x)

    # ------------------------------------------------------------------ api
    def localize(self, image: np.ndarray, K: np.ndarray, prior: np.ndarray | None = None) -> LocalizationResult:
        """Localize an ``[H x W x 3]`` uint8 RGB image with intrinsics ``K`` (pixel-centre convention).

        ``prior``: optional ``[4 x 4]`` ``T_world_cam`` guess (previous frame, ``/initialpose``, odometry); it
        replaces retrieval by the keyframes nearest to it.
        """
        with self.query_scope():
            feats, K, t_start, timings = self.run_backbone(image, K, prior)
            h, w = image.shape[:2]
            return self.localize_features(feats, (w, h), K, prior, t_start, timings)

    def query_scope(self) -> ExitStack:
        """The context one query runs in: numpy's BLAS single-threaded (see ``__init__``), torch inference mode."""
        scope = ExitStack()
        scope.enter_context(self._numpy_blas.limit(limits=1))
        scope.enter_context(torch.inference_mode())
        return scope

    def run_backbone(self, image: np.ndarray, K: np.ndarray, prior: np.ndarray | None):
        """Check the query and run the backbone: ``(features, K as float64, start time, {"backbone": ms})``."""
        t_start = time.perf_counter()
        K = check_intrinsics(np.asarray(K, np.float64), what="query intrinsics")
        if prior is not None and not np.isfinite(prior).all():
            raise ValueError("pose prior contains NaN or inf")
        feats = self.backbone(image)
        return feats, K, t_start, {"backbone": (time.perf_counter() - t_start) * 1e3}

    def global_descriptor(self, feats) -> np.ndarray:
        """The query's VLAD descriptor under this map's codebook (retrieval)."""
        return vlad(feats.descriptors.cpu().numpy(), self.db.codebook)

    def localize_features(self, feats, size: tuple[int, int], K: np.ndarray, prior: np.ndarray | None,
                          t_start: float | None = None, timings: dict[str, float] | None = None
                          ) -> LocalizationResult:
        """The stages after the backbone, from its output ``feats`` for an image of ``size`` (width, height);
        lets several maps share one backbone pass (:class:`~nerf_loc_ros.localization.GlobalLocalizer`)."""
        cfg = self.config
        t_start = time.perf_counter() if t_start is None else t_start
        timings = dict(timings or {})

        def lap(name: str, t: float) -> float:
            now = time.perf_counter()
            timings[name] = (now - t) * 1e3
            return now

        w, h = size
        t = time.perf_counter()
        desc2d = sample_dense(self.encoder.image_head(feats.dense), feats.normalized_keypoints())
        t = lap("head", t)
        kfs = self.candidate_keyframes(prior, self.global_descriptor(feats))
        cand = self.db.observed_points(kfs)
        t = lap("retrieval", t)
        res = LocalizationResult(Status.FAILED, keyframes=[int(k) for k in kfs], keypoints=feats.keypoints,
                                 num_keypoints=len(feats.keypoints))
        i2, p3 = self._match(desc2d[:cfg.first_pass_keypoints], cand)  # keypoints come sorted by score
        t = lap("matching", t)
        uv, X = feats.keypoints[i2].astype(np.float64), self.points[p3]
        pnp = solve_pnp(uv, X, K, (w, h), cfg.pnp)
        t = lap("pnp", t)
        res.stages = {"first_matches": len(uv), "first_inliers": pnp.num_inliers}
        if pnp.T_world_cam is not None and cfg.refine and pnp.num_inliers >= cfg.min_inliers:
            kfs_r = self.db.nearest_keyframes(pnp.T_world_cam, cfg.prior_k)
            cand_r = self.db.observed_points(kfs_r)
            X_r, d_r = self.points[cand_r], self.point_desc[torch.as_tensor(cand_r, device=self.point_desc.device)]
            pairs, last_radius = None, np.inf
            for k, radius in enumerate(cfg.refine_radii_px):
                # a narrower pass filters the previous pass's pairs (its pose moved by much less than the radii)
                pairs = self._near_pairs(feats.keypoints, X_r, K, (w, h), pnp.T_world_cam, radius,
                                         pairs if radius <= last_radius else None)
                last_radius = radius
                out = self._guided_pass(feats.keypoints, desc2d, X_r, d_r, K, (w, h), pnp, res.stages,
                                        "refine" if k == 0 else f"refine{k + 1}", pairs, ransac=cfg.refine_ransac)
                if out is None:
                    break
                pnp, uv, X = out
                kfs = kfs_r
            t = lap("refine", t)
        if pnp.T_world_cam is not None and cfg.fine and self.point_patches is not None \
                and feats.grey is not None and pnp.num_inliers >= cfg.min_inliers:
            kfs_f = self.db.nearest_keyframes(pnp.T_world_cam, cfg.fine_keyframes)
            out = self._fine_level(feats.grey, self.db.observed_points(kfs_f), K, (w, h), pnp, res.stages)
            if out is not None:
                (pnp, uv, X), kfs = out, kfs_f
            t = lap("fine", t)
        if pnp.T_world_cam is not None and cfg.render_refine and pnp.num_inliers >= cfg.min_inliers:
            X_r, d_r = self._render_candidates(pnp.T_world_cam, K, (w, h))
            radius = cfg.refine_radii_px[-1] if cfg.refine_radii_px else 8.0
            pairs = self._near_pairs(feats.keypoints, X_r, K, (w, h), pnp.T_world_cam, radius)
            out = self._guided_pass(feats.keypoints, desc2d, X_r, d_r, K, (w, h), pnp, res.stages, "render", pairs,
                                    ransac=True)
            if out is not None:
                pnp, uv, X = out
            t = lap("render_refine", t)
        res.num_matches, res.matches_2d, res.matches_3d, res.inliers = len(uv), uv, X, pnp.inliers
        res.num_inliers, res.reproj_error = pnp.num_inliers, pnp.reproj_error
        res.keyframes = [int(k) for k in kfs]
        gate_result(res, pnp.T_world_cam, K, cfg)
        timings["total"] = (time.perf_counter() - t_start) * 1e3
        res.timings_ms = timings
        return res


def gate_result(res: LocalizationResult, T: np.ndarray | None, K: np.ndarray, cfg: LocalizerConfig) -> None:
    """Set status, reason, pose and covariance of ``res`` from the PnP outcome ``T`` (None: no pose)."""
    if T is None:
        res.status, res.reason = Status.FAILED, f"no pose from {res.num_matches} matches"
        return
    if res.num_inliers < cfg.min_inliers:
        res.status, res.reason = Status.FAILED, f"{res.num_inliers} inliers < {cfg.min_inliers}"
        return
    if not res.reproj_error <= cfg.max_reproj_error:
        res.status, res.reason = Status.FAILED, f"reprojection error {res.reproj_error:.1f} px"
        return
    res.T_world_cam = T
    inl = res.inliers
    res.covariance = pose_covariance(K, T, res.matches_2d[inl], res.matches_3d[inl])
    ratio = res.num_inliers / max(res.num_matches, 1)
    if res.num_inliers < cfg.ok_inliers or ratio < cfg.ok_inlier_ratio:
        res.status = Status.LOW_CONFIDENCE
        res.reason = f"{res.num_inliers} inliers ({ratio:.0%} of {res.num_matches} matches)"
        return
    # guided passes and the fine level gather their matches around a pose, so part of their support is made by that
    # pose (a wrong pose collects "inliers" too): OK also needs ok_inliers in the pose-independent first pass (not
    # its ratio: repetitive texture gives good poses at 15 % there). Without later stages the first pass is final.
    first = res.stages.get("first_inliers", res.num_inliers)
    if first < cfg.ok_inliers:
        res.status, res.reason = Status.LOW_CONFIDENCE, f"first pass: {first} inliers"
        return
    res.status, res.reason = Status.OK, ""
