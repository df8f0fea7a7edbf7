"""``DescRegistrar``: NeRF-to-NeRF registration with DeSC (DESIGN.md section 5).

``register(source, target, init=None)`` takes two sampled NeRF point clouds (``register_maps``: two NeRF maps)
and returns a :class:`~.result.RegistrationResult` with ``T_target_source``. Stages (``timings_ms``): prepare
(voxel levels, normals, patches), network (descriptors), matching (coarse + fine), estimation (local-to-global
weighted SVD), icp (point-to-plane on the fine points). Status:

* ``FAILED`` when fewer than ``min_inliers`` correspondences agree on the best transform;
* ``AMBIGUOUS`` when a *distinct* transform (rotation or translation apart by the configured margins) has at
  least ``ambiguity_ratio`` of the best one's support - symmetric rooms and objects; the best transform is still
  reported, but callers must not merge on it (the merge CLI / node have a force option);
* ``OK`` otherwise.

With ``init`` (an initial guess of ``T_target_source``, e.g. from odometry) the learned matching still runs; the
hypothesis nearest the guess wins when it is among the well-supported ones, which resolves symmetric ambiguity; a
result more than 30 deg from the guess is AMBIGUOUS (the evidence contradicts the guess).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .base import Registrar
from .estimation import MatchConfig, estimate_transform, match_descriptors, result_from_estimate
from .network import DescConfig, DescNetwork
from .preprocess import PrepareConfig, pair_voxel_size, prepare_cloud
from .result import RegistrationResult, RegistrationStatus
from .sampling import NerfPointCloud, SamplingConfig

__all__ = ["DEFAULT_WEIGHTS", "DescRegistrar", "DescRegistrarConfig", "load_desc_weights", "save_desc_weights"]

DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "desc.safetensors"


@dataclass
class DescRegistrarConfig:
    """Settings of :class:`DescRegistrar` (the network's own sizes come with its weights)."""

    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    match: MatchConfig = field(default_factory=MatchConfig)
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(max_points=20000))
    icp: bool = True  #: refine with point-to-plane ICP on the fine points
    icp_voxels: float = 2.0  #: ICP correspondence distance in voxels
    threads: int | None = None  #: torch CPU threads (None = leave as is)


def save_desc_weights(network: DescNetwork, path: Path, metadata: dict | None = None) -> None:
    """Write the network's weights and config (plus JSON-able ``metadata``) to a safetensors file."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    meta = {"config": json.dumps(network.config.to_dict()), "metadata": json.dumps(metadata or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_desc_weights(path: Path) -> tuple[DescNetwork, dict]:
    """Read weights written by :func:`save_desc_weights`: ``(network in eval mode, metadata)``; a missing file,
    missing or mis-shaped tensors or a broken header are ``ValueError`` naming the file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: DeSC weights not found (train them with `nerf-loc train-desc`)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        config = DescConfig.from_dict(json.loads(meta["config"]))
        metadata = json.loads(meta.get("metadata", "{}"))
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path}: not DeSC weights ({exc})") from None
    net = DescNetwork(config)
    expected = net.state_dict()
    bad = [k for k in expected if k not in tensors or tensors[k].shape != expected[k].shape]
    if bad:
        raise ValueError(f"{path}: missing or mis-shaped tensors {bad[:5]}")
    net.load_state_dict({k: tensors[k].float() for k in expected})
    net.eval()
    return net, metadata


class DescRegistrar(Registrar):
    """Registers NeRF submaps with a trained DeSC network (see the module docstring)."""

    def __init__(self, weights: Path | DescNetwork | None = None, config: DescRegistrarConfig | None = None) -> None:
        self.config = config or DescRegistrarConfig()
        self.sampling = self.config.sampling
        if isinstance(weights, DescNetwork):
            self.network, self.metadata = weights, {}
        else:
            self.network, self.metadata = load_desc_weights(weights or DEFAULT_WEIGHTS)

    @torch.no_grad()
    def register(self, source: NerfPointCloud, target: NerfPointCloud, init: np.ndarray | None = None
                 ) -> RegistrationResult:
        """``T_target_source`` of two clouds sampled from NeRF maps (each in its own map frame)."""
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        times: dict[str, float] = {}
        t_all = t = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal t
            now = time.perf_counter()
            times[name] = 1000 * (now - t)
            t = now

        voxel = pair_voxel_size(source, target, cfg.prepare)
        try:
            src = prepare_cloud(source, voxel, cfg.prepare)
            tgt = prepare_cloud(target, voxel, cfg.prepare)
        except ValueError as exc:
            return RegistrationResult(RegistrationStatus.FAILED, reason=str(exc), timings_ms=times)
        lap("prepare")
        out = self.network(src, tgt)
        lap("network")
        coarse, corr = match_descriptors(out, src, tgt, cfg.match)
        lap("matching")
        spacing = float((tgt.super_xyz[tgt.super_nbr[:, 1]] - tgt.super_xyz).norm(dim=1).median())
        est = estimate_transform(corr, coarse, voxel, cfg.match.coarse_inlier_factor * spacing, cfg.match,
                                 torch.Generator().manual_seed(0), prior=init)
        lap("estimation")
        icp = None
        if cfg.icp:
            icp = (src.fine_xyz.numpy(), tgt.fine_xyz.numpy(), tgt.fine_normal.numpy(), cfg.icp_voxels * voxel)
        return result_from_estimate(est, len(corr.src), cfg.match, init, icp, times, t_all)
