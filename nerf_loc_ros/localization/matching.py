"""2D-3D matching: dual-softmax over descriptor similarities, mutual nearest neighbours, confidence threshold.

The dual-softmax probability is ``P[i, j] = softmax_j(S)[i, j] * softmax_i(S)[i, j]`` with ``S = <d2, d3> / T``,
so ``log P[i, j] = 2 S[i, j] - lse_row[i] - lse_col[j]``. Working with the two log-sum-exp vectors instead of
materialising ``P`` is about 3x faster on a CPU (no full-matrix exp, no column softmax) and gives the same
matches and probabilities.
"""

from __future__ import annotations

import torch

__all__ = ["dual_softmax", "match_descriptors", "dual_softmax_nll"]


def _scores(desc_2d: torch.Tensor, desc_3d: torch.Tensor, temperature, mask: torch.Tensor | None = None):
    sim = desc_2d @ desc_3d.T / temperature
    if mask is not None:
        sim = sim.masked_fill(~mask, float("-inf"))
    lse_row = torch.logsumexp(sim, 1).nan_to_num(neginf=0.0)
    lse_col = torch.logsumexp(sim, 0).nan_to_num(neginf=0.0)
    return sim, lse_row, lse_col


def dual_softmax(desc_2d: torch.Tensor, desc_3d: torch.Tensor, temperature: float) -> torch.Tensor:
    """Matching probabilities ``[M x N]`` of L2-normalised ``desc_2d [M x D]`` and ``desc_3d [N x D]``."""
    sim, lr, lc = _scores(desc_2d, desc_3d, temperature)
    return (2 * sim - lr[:, None] - lc[None, :]).exp()


def match_descriptors(desc_2d: torch.Tensor, desc_3d: torch.Tensor, temperature: float, threshold: float,
                      mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mutual nearest neighbours under the dual softmax with probability above ``threshold``.

    Args:
        desc_2d: ``[M x D]`` image descriptors; desc_3d: ``[N x D]`` point descriptors (both L2-normalised).
        mask: optional ``[M x N]`` bool, False where a pair may not match (e.g. outside a search radius).
    Returns ``(idx_2d [K], idx_3d [K], probability [K])``.
    """
    m, n = len(desc_2d), len(desc_3d)
    if m == 0 or n == 0:
        empty = torch.zeros(0, dtype=torch.long, device=desc_2d.device)
        return empty, empty, torch.zeros(0, device=desc_2d.device)
    sim, lr, lc = _scores(desc_2d, desc_3d, temperature, mask)
    s2 = 2 * sim
    best, j = (s2 - lc[None, :]).max(1)  # argmax over points of log P (row term constant)
    i_back = (s2 - lr[:, None]).argmax(0)  # argmax over keypoints
    i = torch.arange(m, device=sim.device)
    conf = (best - lr).exp()
    keep = (i_back[j] == i) & (conf > threshold)
    return i[keep], j[keep], conf[keep]


def dual_softmax_nll(desc_2d: torch.Tensor, desc_3d: torch.Tensor, temperature: torch.Tensor,
                     idx_2d: torch.Tensor, idx_3d: torch.Tensor) -> torch.Tensor:
    """Mean negative log dual-softmax probability of the ground-truth pairs ``(idx_2d[k], idx_3d[k])`` (training)."""
    sim, lr, lc = _scores(desc_2d, desc_3d, temperature)
    return -(2 * sim[idx_2d, idx_3d] - lr[idx_2d] - lc[idx_3d]).mean()
