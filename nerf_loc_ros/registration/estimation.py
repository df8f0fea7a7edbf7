"""From DeSC descriptors to a rigid transform: coarse superpoint matching, fine point matching, hypotheses from
local-to-global weighted SVD (Kabsch) and coarse RANSAC, outlier removal, ambiguity detection, point-to-plane ICP.

Pure functions on torch / numpy arrays; all points in the clouds' own frames, transforms ``T_target_source``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..geometry import rotation_error_deg
from .preprocess import PreparedCloud
from .result import RegistrationResult, RegistrationStatus

__all__ = [
    "Correspondences",
    "Estimate",
    "Hypothesis",
    "MatchConfig",
    "coarse_ransac_hypotheses",
    "distinct_transforms",
    "dual_softmax",
    "estimate_transform",
    "group_ransac_hypotheses",
    "icp_point_to_plane",
    "inlier_support",
    "match_descriptors",
    "refine_hypotheses",
    "result_from_estimate",
    "weighted_kabsch",
]


@dataclass
class MatchConfig:
    """Settings of matching and estimation.

    Attributes:
        coarse_matches: superpoint pairs kept (highest dual-softmax scores).
        coarse_temperature / fine_temperature: dual-softmax temperatures.
        fine_min_confidence: fine mutual matches below this dual-softmax score are dropped.
        inlier_voxels: a correspondence is an inlier of a hypothesis within this many voxels.
        ransac_iterations: hypotheses from random triplets of coarse matches.
        coarse_inlier_factor: a coarse match is an inlier within this many superpoint spacings.
        refine_iterations: weighted-SVD refinements of the best hypothesis on its inliers.
        min_inliers: fewer inlier matches (fine + coarse) -> FAILED. Random transforms collect 8-17 of the 128
            coarse matches by chance on the held-out pairs (bench register, 2026-11-30), hence 30.
        distinct_rotation_deg / distinct_translation_voxels: two hypotheses further apart are distinct.
        ambiguity_ratio: a distinct hypothesis with at least this share of the best one's support -> AMBIGUOUS.
    """

    coarse_matches: int = 128
    coarse_temperature: float = 0.1
    fine_temperature: float = 0.1
    fine_min_confidence: float = 0.05
    inlier_voxels: float = 1.5
    ransac_iterations: int = 1000
    coarse_inlier_factor: float = 1.0
    refine_iterations: int = 5
    min_inliers: int = 30
    distinct_rotation_deg: float = 15.0
    distinct_translation_voxels: float = 10.0
    ambiguity_ratio: float = 0.8


@dataclass
class Correspondences:
    """Point correspondences (superpoint centres or fine points): ``src [K x 3]``, ``tgt [K x 3]`` (each in its
    own frame), ``weight [K]`` and the coarse pair each came from, ``group [K]``."""

    src: torch.Tensor
    tgt: torch.Tensor
    weight: torch.Tensor
    group: torch.Tensor

    @classmethod
    def empty(cls) -> Correspondences:
        """No correspondences."""
        return cls(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, dtype=torch.long))


def dual_softmax(scores: torch.Tensor) -> torch.Tensor:
    """``softmax_row * softmax_col`` of ``scores [... x M x N]``."""
    return torch.softmax(scores, -1) * torch.softmax(scores, -2)


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
                      ) -> tuple[Correspondences, Correspondences]:
    """Coarse superpoint matches (top dual-softmax scores; superpoint centres, weight = score) and the mutual fine
    matches inside each of those patch pairs (weight = fine confidence x sqrt(coarse score), group = coarse pair)."""
    scores = dual_softmax(out["super_src"] @ out["super_tgt"].T / cfg.coarse_temperature)
    k = min(cfg.coarse_matches, scores.numel())
    top = torch.topk(scores.reshape(-1), k).indices
    a, b = top // scores.shape[1], top % scores.shape[1]
    coarse = Correspondences(src.super_xyz[a], tgt.super_xyz[b], scores[a, b], torch.arange(k))
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
    fine = Correspondences(src.fine_xyz[pa[g, i]], tgt.fine_xyz[pb[g, j]], conf[g, i] * scores[a[g], b[g]].sqrt(), g)
    return coarse, fine


def coarse_ransac_hypotheses(coarse: Correspondences, iterations: int, generator: torch.Generator | None = None
                             ) -> torch.Tensor:
    """``[I x 4 x 4]`` transforms from random triplets of coarse correspondences (drawn by weight)."""
    n = len(coarse.src)
    if n < 3 or iterations <= 0:
        return torch.zeros(0, 4, 4)
    w = coarse.weight.clamp_min(1e-12)
    idx = torch.multinomial(w[None].expand(iterations, -1), 3, replacement=False, generator=generator)  # [I x 3]
    return weighted_kabsch(coarse.src[idx], coarse.tgt[idx], torch.ones(iterations, 3))


def group_ransac_hypotheses(corr: Correspondences, radius: float, iterations: int, min_matches: int,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """``[G x 4 x 4]``: for every group of correspondences with at least ``min_matches`` (``min_matches >= 3``),
    the best of ``iterations`` random 3-point fits (most members within ``radius``), re-fitted on its inliers."""
    out = []
    for g in torch.unique(corr.group).tolist():
        idx = torch.nonzero(corr.group == g)[:, 0]
        if len(idx) < max(min_matches, 3):
            continue
        src, tgt = corr.src[idx], corr.tgt[idx]
        draw = torch.multinomial(torch.ones(iterations, len(idx)), 3, replacement=False, generator=generator)
        Ts = weighted_kabsch(src[draw], tgt[draw], torch.ones(iterations, 3))  # [I x 4 x 4]
        moved = src @ Ts[:, :3, :3].transpose(1, 2) + Ts[:, None, :3, 3]
        inl = (moved - tgt).norm(dim=-1) < radius  # [I x n]
        best = inl[int(inl.sum(1).argmax())]
        if best.sum() >= 3:
            out.append(weighted_kabsch(src[best], tgt[best], torch.ones(int(best.sum()))))
    return torch.stack(out) if out else torch.zeros(0, 4, 4)


def refine_hypotheses(Ts: torch.Tensor, corr: Correspondences, radii: Sequence[float]) -> torch.Tensor:
    """LO-RANSAC's local optimisation: each hypothesis ``Ts [H x 4 x 4]`` re-fitted (weighted Kabsch) on its
    inliers among all ``corr``, once per radius of ``radii`` (map units; a shrinking schedule lets a rough fit
    collect the inliers it just misses); a hypothesis with fewer than three inliers stays as it is."""
    if len(Ts) == 0 or len(corr.src) < 3:
        return Ts
    src = corr.src[None].expand(len(Ts), -1, -1)
    tgt = corr.tgt[None].expand(len(Ts), -1, -1)
    for radius in radii:
        _, inl = inlier_support(Ts, corr, radius)
        ok = inl.sum(1) >= 3
        if not ok.any():
            break
        Ts = torch.where(ok[:, None, None], weighted_kabsch(src, tgt, inl.float() * corr.weight), Ts)
    return Ts


@dataclass
class Hypothesis:
    """A candidate ``T_target_source`` with its support (weighted inlier count) and inlier count (fine + coarse
    matches; only counted for the best hypothesis)."""

    T: torch.Tensor
    support: float
    inliers: int


def inlier_support(T: torch.Tensor, corr: Correspondences, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
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


def distinct_transforms(Ta: torch.Tensor, Tb: torch.Tensor, voxel: float, cfg: MatchConfig) -> torch.Tensor:
    """Whether transforms ``Ta [... x 4 x 4]`` and ``Tb`` (broadcast) differ by more than ``cfg.distinct_rotation_deg``
    or ``cfg.distinct_translation_voxels`` voxels (map units per voxel: ``voxel``)."""
    dr = torch.as_tensor(rotation_error_deg(Ta.numpy(), Tb.numpy()))
    dt = (Ta[..., :3, 3] - Tb[..., :3, 3]).norm(dim=-1)
    return (dr > cfg.distinct_rotation_deg) | (dt > cfg.distinct_translation_voxels * voxel)


def estimate_transform(fine: Correspondences, coarse: Correspondences, voxel: float, coarse_radius: float,
                       cfg: MatchConfig, generator: torch.Generator | None = None,
                       prior: np.ndarray | None = None, hypotheses: torch.Tensor | None = None,
                       verify: Callable[[torch.Tensor], torch.Tensor] | None = None,
                       prefer: Callable[[torch.Tensor], torch.Tensor] | None = None,
                       prefer_ratio: float = 1.0) -> Estimate | None:
    """Hypotheses: one weighted-SVD fit per coarse pair from its fine matches (local-to-global) plus
    ``ransac_iterations`` fits of random coarse triplets. Each is scored by its weighted inliers among the fine
    matches (within ``inlier_voxels`` voxels) plus among the coarse matches (within ``coarse_radius``); the best is
    refined on its fine inliers (outlier removal). With a ``prior`` (a guess of ``T_target_source``), the
    hypothesis nearest it in rotation among those with at least ``ambiguity_ratio`` of the top support is the one
    refined. ``hypotheses [H x 4 x 4]``: more candidates from elsewhere. ``verify(T [H x 4 x 4]) -> [H]`` bool:
    a check independent of the matches (e.g. free space); the hypotheses it rejects are dropped before scoring, so
    they are neither chosen nor counted as alternatives by the ambiguity check. ``prefer(T [H x 4 x 4]) -> [H]``
    scores: of the hypotheses not distinct from the one chosen so far with at least ``prefer_ratio`` of its
    support, the highest-scoring is refined instead (a tie-break among variants of one transform). None with
    fewer than three correspondences in all or no accepted hypothesis."""
    if len(fine.src) + len(coarse.src) < 3:
        return None
    radius = cfg.inlier_voxels * voxel
    hyps = [coarse_ransac_hypotheses(coarse, cfg.ransac_iterations, generator)]
    if hypotheses is not None:
        hyps.append(hypotheses.to(fine.src.dtype))
    if len(fine.src) >= 3:
        groups, sizes = torch.unique(fine.group, return_counts=True)
        members = fine.group[None] == groups[sizes >= 3][:, None]  # [G x K]
        if len(members):
            w = fine.weight[None] * members.float()
            hyps.append(weighted_kabsch(fine.src[None].expand(len(members), -1, -1),
                                        fine.tgt[None].expand(len(members), -1, -1), w))
    Ts = torch.cat(hyps)
    if len(Ts) == 0:
        return None

    def score(T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Support ``[B]``, fine inlier masks ``[B x K_f]`` and coarse inlier masks ``[B x K_c]``."""
        if len(fine.src):
            s_f, inl = inlier_support(T, fine, radius)
        else:
            s_f, inl = torch.zeros(len(T)), torch.zeros(len(T), 0, dtype=torch.bool)
        s_c, inl_c = inlier_support(T, coarse, coarse_radius)
        return s_f + s_c, inl, inl_c

    if verify is not None:
        Ts = Ts[verify(Ts)]
        if len(Ts) == 0:
            return None
    support, _, _ = score(Ts)
    order = torch.argsort(support, descending=True)
    start = order[0]
    if prior is not None:
        plausible = torch.nonzero(support >= cfg.ambiguity_ratio * support[start])[:, 0]
        start = plausible[int(np.argmin(rotation_error_deg(Ts[plausible].numpy(), prior)))]
    if prefer is not None:
        variants = torch.nonzero(~distinct_transforms(Ts, Ts[start], voxel, cfg)
                                 & (support >= prefer_ratio * support[start]))[:, 0]
        start = variants[int(torch.argmax(torch.as_tensor(prefer(Ts[variants]))))]
    best_T = Ts[start]
    for _ in range(cfg.refine_iterations):  # outlier removal: re-fit on the fine inliers
        inl = inlier_support(best_T[None], fine, radius)[1][0] if len(fine.src) else torch.zeros(0, dtype=torch.bool)
        if inl.sum() < 3:
            break
        best_T = weighted_kabsch(fine.src[inl], fine.tgt[inl], fine.weight[inl])
    s_best, inl_best, inl_coarse = score(best_T[None])
    m = inl_best[0]
    best = Hypothesis(best_T, float(s_best[0]), int(m.sum()) + int(inl_coarse.sum()))
    distinct = distinct_transforms(Ts, best_T, voxel, cfg)
    runner = None
    if distinct.any():
        idx = torch.nonzero(distinct)[:, 0]
        j = idx[torch.argmax(support[idx])]
        runner = Hypothesis(Ts[j], float(support[j]), 0)
    picked = [best_T]  # greedy clustering of the well-supported hypotheses
    for j in order.tolist():
        if support[j] < cfg.ambiguity_ratio * best.support:
            break
        if all(bool(distinct_transforms(Ts[j], T, voxel, cfg)) for T in picked):
            picked.append(Ts[j])
    if m.any():
        moved = fine.src[m] @ best_T[:3, :3].T + best_T[:3, 3]
        residual = float((moved - fine.tgt[m]).norm(dim=1).square().mean().sqrt())
        spread = float((fine.tgt[m] - fine.tgt[m].mean(0)).norm(dim=1).square().mean().sqrt())
    else:
        residual, spread = float("nan"), 0.0
    return Estimate(best, runner, len(picked), residual, spread)


def result_from_estimate(est: Estimate | None, correspondences: int, cfg: MatchConfig, init: np.ndarray | None,
                         icp: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None, times: dict[str, float],
                         t_start: float) -> RegistrationResult:
    """The registration outcome of an estimate: FAILED with fewer than ``cfg.min_inliers`` inliers, AMBIGUOUS when a
    distinct hypothesis has at least ``cfg.ambiguity_ratio`` of the best support (unless ``init`` picked the best
    and the alternative is far from it) or when the transform is more than twice ``cfg.distinct_rotation_deg`` from
    ``init`` (the evidence contradicts the guess: a person decides, e.g. ``nerf-loc merge --force``), else OK;
    ``icp = (source points, target points, target normals, max distance)`` refines the transform and gives fitness /
    RMSE. ``times`` gets ``icp`` and ``total`` (ms since ``t_start``, a ``time.perf_counter()`` value)."""
    if est is None or est.best.inliers < cfg.min_inliers:
        n = 0 if est is None else est.best.inliers
        times["total"] = 1000 * (time.perf_counter() - t_start)
        return RegistrationResult(RegistrationStatus.FAILED, correspondences=correspondences, inliers=n,
                                  timings_ms=times, reason=f"{n} inlier correspondences (< {cfg.min_inliers})")
    best, runner = est.best, est.runner_up
    ambiguous = runner is not None and runner.support >= cfg.ambiguity_ratio * best.support
    if init is not None and ambiguous:  # the guess picked the best; still ambiguous if the alternative is near it
        ambiguous = float(rotation_error_deg(runner.T.numpy(), init)) < 2 * cfg.distinct_rotation_deg
    T = best.T.double().numpy()
    fitness, rmse = float("nan"), float("nan")
    if icp is not None:
        t = time.perf_counter()
        src, tgt, normals, distance = icp
        T, fitness, rmse = icp_point_to_plane(np.asarray(src, np.float64), np.asarray(tgt, np.float64),
                                              np.asarray(normals, np.float64), T, distance)
        times["icp"] = 1000 * (time.perf_counter() - t)
    times["total"] = 1000 * (time.perf_counter() - t_start)
    status = RegistrationStatus.AMBIGUOUS if ambiguous else RegistrationStatus.OK
    reason = ""
    if ambiguous:
        reason = f"a distinct transform has {runner.support / best.support:.0%} of the best one's support"
    elif init is not None and (off := float(rotation_error_deg(T, init))) > 2 * cfg.distinct_rotation_deg:
        status = RegistrationStatus.AMBIGUOUS  # the evidence contradicts the caller's guess: not merged unasked
        reason = f"the estimate is {off:.0f} deg from the initial guess"
    rre, rte = est.error_estimates()
    return RegistrationResult(status, T, fitness=fitness, inlier_rmse=rmse, correspondences=correspondences,
                              inliers=best.inliers, confidence=est.confidence, hypotheses=est.plausible,
                              estimated_rre_deg=rre, estimated_rte=rte, reason=reason, timings_ms=times)


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
