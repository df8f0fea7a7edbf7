"""DeSC's training losses: overlap-aware coarse loss, fine matching loss and DPCL (DESIGN.md section 5).

Ground truth comes from the true ``T_target_source`` of a pair: a fine source point matches the nearest fine target
point within ``match_radius`` voxels; the overlap of two superpoint patches is the share of their fine points
matched into each other (mean of both directions).

* **coarse**: the overlap-aware circle loss of GeoTransformer on superpoint descriptor distances (positives:
  patch overlap > ``positive_overlap``, weighted by sqrt(overlap); negatives: no overlap);
* **fine**: negative log-likelihood of the true fine matches under the dual-softmax of each ground-truth patch pair;
* **DPCL** (density-aware photometric consistency): the colour of each matched source point against the colour
  its soft match predicts in the target, weighted by how solid both are (``alpha = 1 - exp(-sigma * voxel)``), so
  matches are pushed towards photometrically consistent, solid surface rather than floaters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .preprocess import PreparedCloud

__all__ = ["LossConfig", "PairTruth", "pair_truth", "desc_losses"]


@dataclass
class LossConfig:
    """Weights and margins of the losses."""

    match_radius: float = 1.0  #: fine ground-truth match radius in voxels
    positive_overlap: float = 0.1  #: patch overlap above which superpoints are positives
    fine_pairs: int = 64  #: ground-truth patch pairs the fine losses use per step
    temperature: float = 0.1  #: dual-softmax temperature of the fine matching
    pos_margin: float = 0.1
    neg_margin: float = 1.4
    log_scale: float = 24.0
    fine_weight: float = 1.0
    dpcl_weight: float = 1.0


@dataclass
class PairTruth:
    """``fine_match [M]``: index of the true fine target match of each fine source point (-1 if none);
    ``overlap [S x T]``: patch overlap of superpoints."""

    fine_match: torch.Tensor
    overlap: torch.Tensor


def _matches(src_xyz: torch.Tensor, tgt_xyz: torch.Tensor, radius: float) -> torch.Tensor:
    d = torch.cdist(src_xyz, tgt_xyz)
    dist, idx = d.min(1)
    return torch.where(dist < radius, idx, torch.full_like(idx, -1))


def _patch_hits(patch_a: torch.Tensor, match: torch.Tensor, patch_b: torch.Tensor, n_b: int) -> torch.Tensor:
    """``[S x T]``: share of patch ``a``'s points whose match lies in patch ``b``."""
    member = torch.zeros(n_b + 1, len(patch_b), dtype=torch.float32)  # row n_b: "no match"
    member[patch_b.reshape(-1), torch.arange(len(patch_b)).repeat_interleave(patch_b.shape[1])] = 1
    m = match[patch_a]  # [S x k]
    m = torch.where(m < 0, torch.full_like(m, n_b), m)
    return member[m].sum(1) / patch_a.shape[1]


@torch.no_grad()
def pair_truth(src: PreparedCloud, tgt: PreparedCloud, T_target_source: np.ndarray, radius_voxels: float = 1.0
               ) -> PairTruth:
    """Ground-truth fine matches and patch overlaps of a pair under the true ``T_target_source [4 x 4]``."""
    moved = src.transformed(T_target_source)
    r = radius_voxels * tgt.voxel
    fwd = _matches(moved.fine_xyz, tgt.fine_xyz, r)
    bwd = _matches(tgt.fine_xyz, moved.fine_xyz, r)
    ov = 0.5 * (_patch_hits(src.patch_fine, fwd, tgt.patch_fine, len(tgt.fine_xyz))
                + _patch_hits(tgt.patch_fine, bwd, src.patch_fine, len(src.fine_xyz)).T)
    return PairTruth(fwd, ov)


def circle_loss(dist: torch.Tensor, overlap: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """GeoTransformer's overlap-aware circle loss on descriptor distances ``dist [S x T]``."""
    pos = overlap > cfg.positive_overlap
    neg = overlap == 0
    pos_w = ((dist - 1e5 * (~pos).float()) - cfg.pos_margin).detach().clamp_min(0) * overlap.clamp_min(0).sqrt()
    neg_w = (cfg.neg_margin - (dist + 1e5 * (~neg).float())).detach().clamp_min(0)
    losses = []
    for dim in (1, 0):
        valid = pos.any(dim) & neg.any(dim)
        if not valid.any():
            continue
        lp = torch.logsumexp(cfg.log_scale * (dist - cfg.pos_margin) * pos_w, dim=dim)
        ln = torch.logsumexp(cfg.log_scale * (cfg.neg_margin - dist) * neg_w, dim=dim)
        losses.append((torch.nn.functional.softplus(lp + ln) / cfg.log_scale)[valid].mean())
    return torch.stack(losses).mean() if losses else dist.sum() * 0


def desc_losses(out: dict[str, torch.Tensor], src: PreparedCloud, tgt: PreparedCloud, truth: PairTruth,
                cfg: LossConfig, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """``coarse``, ``fine``, ``dpcl`` and weighted ``total`` losses of one pair's network output ``out``."""
    dist = torch.cdist(out["super_src"], out["super_tgt"])
    coarse = circle_loss(dist, truth.overlap, cfg)
    zero = dist.sum() * 0
    cand = torch.nonzero(truth.overlap > cfg.positive_overlap)
    if len(cand) == 0:
        return {"coarse": coarse, "fine": zero, "dpcl": zero, "total": coarse}
    if len(cand) > cfg.fine_pairs:  # favour well-overlapping pairs, keep some variety
        w = truth.overlap[cand[:, 0], cand[:, 1]]
        cand = cand[torch.multinomial(w, cfg.fine_pairs, replacement=False, generator=generator)]
    pa, pb = src.patch_fine[cand[:, 0]], tgt.patch_fine[cand[:, 1]]  # [P x k]
    fa, fb = out["fine_src"][pa], out["fine_tgt"][pb]  # [P x k x f]
    scores = fa @ fb.transpose(1, 2) / cfg.temperature
    row = torch.softmax(scores, -1)
    P = row * torch.softmax(scores, -2)  # dual softmax
    gt = truth.fine_match[pa][:, :, None] == pb[:, None, :]  # [P x k x k]
    fine = -torch.log(P[gt].clamp_min(1e-9)).mean() if gt.any() else zero
    # DPCL on the rows that have a true match in the patch
    alpha_s = 1 - torch.exp(-src.fine_density[pa] * src.voxel)
    alpha_t = 1 - torch.exp(-tgt.fine_density[pb] * tgt.voxel)
    pred_c = row @ tgt.fine_color[pb]  # [P x k x 3]
    w = alpha_s * (row * alpha_t[:, None, :]).sum(-1) * gt.any(-1).float()
    err = (src.fine_color[pa] - pred_c).abs().sum(-1)
    dpcl = (w * err).sum() / w.sum().clamp_min(1e-6)
    total = coarse + cfg.fine_weight * fine + cfg.dpcl_weight * dpcl
    return {"coarse": coarse, "fine": fine, "dpcl": dpcl, "total": total}
