"""From DeSC descriptors to a rigid transform: coarse superpoint matching, fine point matching, local-to-global
hypotheses with weighted SVD (Kabsch), outlier removal, ambiguity detection and point-to-plane ICP.

Pure functions on torch / numpy arrays; all points in the clouds' own frames, transforms ``T_target_source``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .losses import dual_softmax
from .preprocess import PreparedCloud

__all__ = ["MatchConfig", "Correspondences", "weighted_kabsch", "match_descriptors", "Hypothesis", "Estimate",
           "estimate_transform", "rotation_angle_deg", "icp_point_to_plane"]


@dataclass
class MatchConfig:
    """Settings of matching and estimation.

    Attributes:
        coarse_matches: superpoint pairs kept (highest dual-softmax scores).
        coarse_temperature / fine_temperature: dual-softmax temperatures.
        fine_min_confidence: fine mutual matches below this dual-softmax score are dropped.
        inlier_voxels: a correspondence is an inlier of a hypothesis within this many voxels.
        refine_iterations: weighted-SVD refinements of the best hypothesis on its inliers.
        min_inliers: fewer inliers -> FAILED.
        distinct_rotation_deg / distinct_translation_voxels: two hypotheses further apart are distinct.
        ambiguity_ratio: a distinct hypothesis with at least this share of the best one's support -> AMBIGUOUS.
    """

    coarse_matches: int = 128
    coarse_temperature: float = 0.1
    fine_temperature: float = 0.1
    fine_min_confidence: float = 0.05
    inlier_voxels: float = 1.5
    refine_iterations: int = 5
    min_inliers: int = 30
    distinct_rotation_deg: float = 15.0
    distinct_translation_voxels: float = 10.0
    ambiguity_ratio: float = 0.8


@dataclass
class Correspondences:
    """Fine correspondences: ``src [K x 3]``, ``tgt [K x 3]`` (each in its own frame), ``weight [K]`` and the
    coarse pair each came from, ``group [K]``."""

    src: torch.Tensor
    tgt: torch.Tensor
    weight: torch.Tensor
    group: torch.Tensor


def weighted_kabsch(src: torch.Tensor, tgt: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Rigid ``T [4 x 4]`` minimising ``sum w |T src - tgt|^2`` (``src, tgt [K x 3]``, ``weight [K]``); batched
    over a leading dimension as well (``[B x K x 3]`` -> ``[B x 4 x 4]``)."""
    batched = src.dim() == 3
    if not batched:
        src, tgt, weight = src[None], tgt[None], weight[None]
    w = weight / weight.sum(-1, keepdim=True).clamp_min(1e-12)
    cs = (w[..., None] * src).sum(1)
    ct = (w[..., None] * tgt).sum(1)
    H = ((src - cs[:, None]) * w[..., None]).transpose(1, 2) @ (tgt - ct[:, None])
    U, _, Vt = torch.linalg.svd(H.double())
    d = torch.sign(torch.linalg.det(Vt.transpose(1, 2) @ U.transpose(1, 2)))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    R = (Vt.transpose(1, 2) @ D @ U.transpose(1, 2)).float()
    T = torch.eye(4).repeat(len(src), 1, 1)
    T[:, :3, :3] = R
    T[:, :3, 3] = ct - (R @ cs[..., None])[..., 0]
    return T if batched else T[0]


@torch.no_grad()
def match_descriptors(out: dict[str, torch.Tensor], src: PreparedCloud, tgt: PreparedCloud, cfg: MatchConfig
                      ) -> Correspondences:
    """Coarse superpoint matches (top dual-softmax scores), then mutual fine matches inside each patch pair."""
    scores = dual_softmax(out["super_src"] @ out["super_tgt"].T / cfg.coarse_temperature)
    k = min(cfg.coarse_matches, scores.numel())
    top = torch.topk(scores.reshape(-1), k).indices
    a, b = top // scores.shape[1], top % scores.shape[1]
    pa, pb = src.patch_fine[a], tgt.patch_fine[b]  # [P x k]
    P = dual_softmax(out["fine_src"][pa] @ out["fine_tgt"][pb].transpose(1, 2) / cfg.fine_temperature)
    best_row = P.argmax(2)  # [P x k]
    best_col = P.argmax(1)
    rows = torch.arange(pa.shape[1])[None].expand(len(pa), -1)
    mutual = torch.gather(best_col, 1, best_row) == rows
    conf = torch.gather(P, 2, best_row[..., None])[..., 0]
    keep = mutual & (conf > cfg.fine_min_confidence)
    g, i = torch.nonzero(keep, as_tuple=True)
    j = best_row[g, i]
    return Correspondences(src.fine_xyz[pa[g, i]], tgt.fine_xyz[pb[g, j]], conf[g, i] * scores[a[g], b[g]].sqrt(), g)


def rotation_angle_deg(R: torch.Tensor) -> torch.Tensor:
    """Rotation angle (degrees) of rotation matrices ``[... x 3 x 3]``."""
    c = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(c))


@dataclass
class Hypothesis:
    """A candidate ``T_target_source`` with its support (weighted inlier count) and inlier count."""

    T: torch.Tensor
    support: float
    inliers: int


def _support(T: torch.Tensor, corr: Correspondences, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per hypothesis ``T [B x 4 x 4]``: weighted inlier support ``[B]`` and inlier masks ``[B x K]``."""
    moved = corr.src @ T[:, :3, :3].transpose(1, 2) + T[:, None, :3, 3]
    inl = (moved - corr.tgt).norm(dim=-1) < radius
    return (inl.float() * corr.weight).sum(1), inl


@dataclass
class Estimate:
    """What :func:`estimate_transform` found: the refined ``best`` hypothesis, the best-supported ``runner_up``
    distinct from it (None if none), the number of mutually distinct hypotheses with at least
    ``ambiguity_ratio`` of the best support (``plausible``, including the best), and the best one's inlier
    residual RMS and inlier spread (RMS distance from their centroid), both in map units."""

    best: Hypothesis
    runner_up: Hypothesis | None
    plausible: int
    residual_rms: float
    spread: float

    @property
    def confidence(self) -> float:
        """``1 - runner-up support / best support`` (1 without a distinct alternative)."""
        if self.runner_up is None or self.best.support <= 0:
            return 1.0
        return float(max(0.0, 1.0 - self.runner_up.support / self.best.support))

    def error_estimates(self) -> tuple[float, float]:
        """Rough 1-sigma rotation (deg) and translation (map units) uncertainty of the best transform:
        residual / sqrt(inliers), over the inlier spread for the rotation."""
        n = max(self.best.inliers, 1)
        rte = self.residual_rms / np.sqrt(n)
        return float(np.rad2deg(rte / max(self.spread, 1e-12))), float(rte)


def _distinct(Ta: torch.Tensor, Tb: torch.Tensor, voxel: float, cfg: MatchConfig) -> torch.Tensor:
    dr = rotation_angle_deg(Ta[..., :3, :3] @ Tb[..., :3, :3].transpose(-1, -2))
    dt = (Ta[..., :3, 3] - Tb[..., :3, 3]).norm(dim=-1)
    return (dr > cfg.distinct_rotation_deg) | (dt > cfg.distinct_translation_voxels * voxel)


def estimate_transform(corr: Correspondences, voxel: float, cfg: MatchConfig) -> Estimate | None:
    """Local-to-global estimation: one weighted-SVD hypothesis per coarse pair (from its fine matches), scored on
    all correspondences; the best is refined on its inliers (outlier removal). None with fewer than three
    correspondences."""
    if len(corr.src) < 3:
        return None
    radius = cfg.inlier_voxels * voxel
    groups = torch.unique(corr.group)
    sizes = torch.stack([(corr.group == gi).sum() for gi in groups])
    groups = groups[sizes >= 3]
    if len(groups) == 0:
        members = torch.ones(1, len(corr.src), dtype=torch.bool)
    else:
        members = corr.group[None] == groups[:, None]  # [G x K]
    w = corr.weight[None] * members.float()
    Ts = weighted_kabsch(corr.src[None].expand(len(members), -1, -1), corr.tgt[None].expand(len(members), -1, -1), w)
    support, inl = _support(Ts, corr, radius)
    order = torch.argsort(support, descending=True)
    best_T, best_inl = Ts[order[0]], inl[order[0]]
    for _ in range(cfg.refine_iterations):  # outlier removal: re-fit on the inliers, re-select
        if best_inl.sum() < 3:
            break
        best_T = weighted_kabsch(corr.src[best_inl], corr.tgt[best_inl], corr.weight[best_inl])
        best_inl = _support(best_T[None], corr, radius)[1][0]
    s_best, inl_best = _support(best_T[None], corr, radius)
    best = Hypothesis(best_T, float(s_best[0]), int(inl_best[0].sum()))
    distinct = _distinct(Ts, best_T, voxel, cfg)
    runner = None
    if distinct.any():
        idx = torch.nonzero(distinct)[:, 0]
        j = idx[torch.argmax(support[idx])]
        runner = Hypothesis(Ts[j], float(support[j]), int(inl[j].sum()))
    picked = [best_T]  # greedy clustering of the well-supported hypotheses
    for j in order.tolist():
        if support[j] < cfg.ambiguity_ratio * best.support:
            break
        if all(bool(_distinct(Ts[j], T, voxel, cfg)) for T in picked):
            picked.append(Ts[j])
    m = inl_best[0]
    moved = corr.src[m] @ best_T[:3, :3].T + best_T[:3, 3]
    residual = float((moved - corr.tgt[m]).norm(dim=1).square().mean().sqrt()) if m.any() else float("nan")
    spread = float((corr.tgt[m] - corr.tgt[m].mean(0)).norm(dim=1).square().mean().sqrt()) if m.any() else 0.0
    return Estimate(best, runner, len(picked), residual, spread)


def icp_point_to_plane(src: np.ndarray, tgt: np.ndarray, tgt_normals: np.ndarray, T_init: np.ndarray,
                       max_distance: float, iterations: int = 15) -> tuple[np.ndarray, float, float]:
    """Point-to-plane ICP of ``src [N x 3]`` onto ``tgt [M x 3]`` with normals, from ``T_init [4 x 4]``.

    Returns ``(T, fitness, rmse)``: fitness = share of source points with a target point within
    ``max_distance`` after alignment, rmse over those (map units)."""
    from scipy.spatial import cKDTree
    from scipy.spatial.transform import Rotation

    tree = cKDTree(tgt)
    T = np.asarray(T_init, np.float64).copy()
    for _ in range(iterations):
        moved = src @ T[:3, :3].T + T[:3, 3]
        d, j = tree.query(moved, distance_upper_bound=max_distance)
        ok = np.isfinite(d)
        if ok.sum() < 6:
            break
        p, q, n = moved[ok], tgt[j[ok]], tgt_normals[j[ok]]
        A = np.concatenate([np.cross(p, n), n], axis=1)  # [K x 6]: rotation (small angles) and translation
        r = ((q - p) * n).sum(1)
        x, *_ = np.linalg.lstsq(A, r, rcond=None)
        dT = np.eye(4)
        dT[:3, :3] = Rotation.from_rotvec(x[:3]).as_matrix()
        dT[:3, 3] = x[3:]
        T = dT @ T
        if np.linalg.norm(x) < 1e-7:
            break
    moved = src @ T[:3, :3].T + T[:3, 3]
    d, _ = tree.query(moved, distance_upper_bound=max_distance)
    ok = np.isfinite(d)
    fitness = float(ok.mean()) if len(ok) else 0.0
    rmse = float(np.sqrt(np.mean(d[ok] ** 2))) if ok.any() else float("nan")
    return T, fitness, rmse
