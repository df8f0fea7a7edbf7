"""Training the scene encoder: image descriptors at keypoints must pick the right cached 3D point.

For a training view, the candidates are the points of its nearest keyframes (the view itself excluded, as a
query is never a keyframe). A keypoint's positive is the candidate that projects (with the view's pose)
within ``match_radius_px`` of it at the NeRF depth seen through that keypoint (so occluded points are not
positives). The loss is the negative log-likelihood of the positives under the dual softmax (LoFTR,
NeRFMatch).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from tqdm import tqdm

from ..nerf import SceneBox
from .backbone import sample_dense
from .encoder import SceneEncoder
from .keyframes import KeyframeDB
from .mapping import TrainingView
from .matching import dual_softmax_nll, match_descriptors
from .pose import project

__all__ = ["EncoderTrainConfig", "train_encoder", "positive_pairs", "point_descriptors"]

log = logging.getLogger(__name__)


@dataclass
class EncoderTrainConfig:
    """Encoder training settings.

    Attributes:
        budget_s: wall-time budget in seconds.
        max_steps: step cap.
        lr: Adam learning rate (cosine-decayed to 5 % over the run).
        candidate_keyframes: keyframes whose points are the candidates of one training view.
        match_radius_px: a projected point this close to a keypoint (pixels) is its positive ...
        depth_tolerance: ... when its depth agrees with the keypoint's NeRF depth to this fraction.
        seed: random seed.
    """

    budget_s: float = 120.0
    max_steps: int = 3000
    lr: float = 2e-3
    candidate_keyframes: int = 4
    match_radius_px: float = 3.0
    depth_tolerance: float = 0.05
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def positive_pairs(view: TrainingView, db: KeyframeDB, candidates: np.ndarray, radius_px: float,
                   depth_tol: float) -> tuple[np.ndarray, np.ndarray]:
    """``(keypoint index [P], position in candidates [P])`` of ground-truth 2D-3D pairs of a view."""
    uv, z = project(view.K, view.T_world_cam, db.points[candidates].astype(np.float64))
    valid_kp = np.flatnonzero(np.isfinite(view.depth))
    if len(valid_kp) == 0 or len(candidates) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    in_front = np.flatnonzero(z > 0)
    if len(in_front) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    dist, nn = cKDTree(uv[in_front]).query(view.features.keypoints[valid_kp], distance_upper_bound=radius_px)
    found = np.isfinite(dist)
    j = in_front[np.where(found, nn, 0)]
    depth = view.depth[valid_kp]
    ok = found & (np.abs(z[j] - depth) < depth_tol * depth)
    # one keypoint per point: keep the closest
    kp_idx, cand = valid_kp[ok], j[ok]
    order = np.argsort(dist[ok])
    _, first = np.unique(cand[order], return_index=True)
    keep = order[first]
    return kp_idx[keep], cand[keep]


def point_descriptors(encoder: SceneEncoder, box: SceneBox, db: KeyframeDB, chunk: int = 65536) -> np.ndarray:
    """Point-head descriptors ``[P x D]`` of every cached map point."""
    dev = next(encoder.parameters()).device
    out = []
    with torch.no_grad():
        for s in range(0, db.num_points, chunk):
            f = torch.as_tensor(db.point_features[s:s + chunk], dtype=torch.float32, device=dev)
            x = box.to_grid(torch.as_tensor(db.points[s:s + chunk], dtype=torch.float32, device=dev))
            out.append(encoder.point_head(f, x).cpu().numpy())
    d = encoder.config.descriptor_dim
    return np.concatenate(out) if out else np.zeros((0, d), np.float32)


def _image_descriptors(encoder: SceneEncoder, view: TrainingView) -> torch.Tensor:
    return sample_dense(encoder.image_head(view.features.dense), view.features.normalized_keypoints())


def train_encoder(
    encoder: SceneEncoder, db: KeyframeDB, views: list[TrainingView], box: SceneBox,
    config: EncoderTrainConfig | None = None, progress: bool = True,
) -> dict:
    """Train ``encoder`` in place and fill ``db.point_descriptors``; returns a training summary dict."""
    cfg = config or EncoderTrainConfig()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    dev = next(encoder.parameters()).device

    samples = []
    for v in views:
        kfs = db.nearest_keyframes(v.T_world_cam, cfg.candidate_keyframes, exclude=v.keyframe)
        cand = db.observed_points(kfs)
        kp_idx, pos = positive_pairs(v, db, cand, cfg.match_radius_px, cfg.depth_tolerance)
        if len(kp_idx) >= 8:
            samples.append((v, cand, torch.as_tensor(kp_idx, device=dev), torch.as_tensor(pos, device=dev)))
    if not samples:
        raise ValueError("no training view has 2D-3D positives: is the NeRF trained and the scene textured?")
    log.info("encoder training: %d views with positives (median %d)", len(samples),
             int(np.median([len(s[2]) for s in samples])))

    points = torch.as_tensor(db.points, dtype=torch.float32, device=dev)
    grid_points = box.to_grid(points)
    nerf_feats = torch.as_tensor(db.point_features, dtype=torch.float32, device=dev)
    opt = torch.optim.Adam(encoder.parameters(), lr=cfg.lr)
    encoder.train()
    t0 = time.perf_counter()
    step, loss_ema, acc_ema = 0, None, None
    bar = tqdm(total=cfg.max_steps, desc="encoder", unit="step", disable=not progress)
    while step < cfg.max_steps and time.perf_counter() - t0 < cfg.budget_s:
        v, cand, kp_idx, pos = samples[rng.integers(len(samples))]
        frac = min(1.0, max(step / cfg.max_steps, (time.perf_counter() - t0) / cfg.budget_s))
        for g in opt.param_groups:
            g["lr"] = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * frac)))
        c = torch.as_tensor(cand, device=dev)
        d3 = encoder.point_head(nerf_feats[c], grid_points[c])
        d2 = _image_descriptors(encoder, v)
        loss = dual_softmax_nll(d2, d3, encoder.log_temperature.exp(), kp_idx, pos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 10 == 0:  # matching accuracy on this view (mutual nearest neighbours, no threshold)
            with torch.no_grad():
                i2, i3, _ = match_descriptors(d2.detach(), d3.detach(), encoder.temperature, 0.0)
                hit = torch.full((len(d2),), -1, dtype=torch.long, device=dev)
                hit[i2] = i3
                acc = float((hit[kp_idx] == pos).float().mean())
                acc_ema = acc if acc_ema is None else 0.8 * acc_ema + 0.2 * acc
        loss_ema = float(loss.detach()) if loss_ema is None else 0.95 * loss_ema + 0.05 * float(loss.detach())
        step += 1
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss_ema:.3f}", mnn_acc=f"{acc_ema:.2f}", T=f"{encoder.temperature:.3f}")
    bar.close()
    encoder.eval()
    db.point_descriptors = point_descriptors(encoder, box, db).astype(np.float16)
    return {"steps": step, "seconds": round(time.perf_counter() - t0, 1), "loss": loss_ema, "mnn_accuracy": acc_ema,
            "views": len(samples), "temperature": encoder.temperature, **cfg.to_dict()}
