"""Training DeSC on pair scenes (``nerf-loc train-desc``): resumable, CPU-sized.

Each step draws one training pair (two submaps of a training scene with >= 10 % overlap), keeps a random 85 % of
each dense cloud and jitters the voxel size by +-15 % (new fine points, superpoints and patches every time),
computes the losses of :mod:`.losses` and takes an Adam step (cosine learning-rate decay, gradient clipping).
Checkpoints (``checkpoint.safetensors``: weights + Adam moments; ``checkpoint.json``: step, history) are written
every ``checkpoint_every`` steps and at the end, so training resumes across sessions. Evaluation pairs (held-out
scenes) are scored at the end with the full registrar.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .losses import LossConfig, desc_losses, pair_truth
from .network import DescConfig, DescNetwork
from .pair_data import RegistrationPair, load_pair_scene
from .preprocess import PrepareConfig, pair_voxel_size, prepare_cloud

__all__ = ["DescTrainConfig", "train_desc", "collect_pairs", "write_trained_weights"]

log = logging.getLogger(__name__)


@dataclass
class DescTrainConfig:
    """Training settings (each is a ``nerf-loc train-desc`` option or has a sane default)."""

    steps: int = 3000  #: total optimisation steps (resume continues up to this)
    lr: float = 1e-3  #: peak Adam learning rate (cosine decay to 5 % of it)
    weight_decay: float = 1e-6
    clip: float = 1.0  #: gradient norm clipping
    keep_fraction: float = 0.85  #: share of each dense cloud kept per step
    voxel_jitter: float = 0.15  #: relative voxel-size jitter per step
    min_overlap: float = 0.1  #: training pairs need at least this surface overlap
    checkpoint_every: int = 200
    seed: int = 0
    threads: int | None = None
    network: DescConfig = field(default_factory=DescConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    loss: LossConfig = field(default_factory=LossConfig)


def collect_pairs(scene_dirs: list[Path], min_overlap: float = 0.1) -> list[RegistrationPair]:
    """All training pairs of the given pair scene directories."""
    pairs = []
    for d in scene_dirs:
        pairs += load_pair_scene(Path(d)).training_pairs(min_overlap)
    return pairs


def _save_checkpoint(net: DescNetwork, opt: torch.optim.Optimizer, step: int, history: list, out: Path) -> None:
    from safetensors.torch import save_file

    tensors = {f"net.{k}": v.detach().contiguous() for k, v in net.state_dict().items()}
    for i, p in enumerate(net.parameters()):
        st = opt.state.get(p, {})
        for name in ("exp_avg", "exp_avg_sq"):
            if name in st:
                tensors[f"opt.{i}.{name}"] = st[name].contiguous()
    adam_step = max((float(s["step"]) for s in opt.state.values() if "step" in s), default=0.0)
    save_file(tensors, str(out / "checkpoint.tmp"))
    (out / "checkpoint.tmp").replace(out / "checkpoint.safetensors")
    doc = {"step": step, "adam_step": adam_step, "network": net.config.to_dict(), "history": history}
    (out / "checkpoint.json.tmp").write_text(json.dumps(doc))
    (out / "checkpoint.json.tmp").replace(out / "checkpoint.json")


def _load_checkpoint(net: DescNetwork, opt: torch.optim.Optimizer, out: Path) -> tuple[int, list]:
    from safetensors.torch import load_file

    if not (out / "checkpoint.json").is_file():
        return 0, []
    doc = json.loads((out / "checkpoint.json").read_text())
    if doc.get("network") != net.config.to_dict():
        raise ValueError(f"{out}: the checkpoint was trained with another network config; use another --out")
    tensors = load_file(str(out / "checkpoint.safetensors"))
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    for i, p in enumerate(net.parameters()):
        if f"opt.{i}.exp_avg" in tensors:
            opt.state[p] = {"step": torch.tensor(doc["adam_step"]), "exp_avg": tensors[f"opt.{i}.exp_avg"],
                            "exp_avg_sq": tensors[f"opt.{i}.exp_avg_sq"]}
    log.info("resumed DeSC training at step %d", doc["step"])
    return int(doc["step"]), list(doc.get("history", []))


def train_desc(train_dirs: list[Path], out: Path, config: DescTrainConfig | None = None, progress: bool = True
               ) -> tuple[DescNetwork, dict]:
    """Train (or resume training) DeSC on the pair scenes ``train_dirs``; checkpoints go to ``out``.

    Returns the network (eval mode) and a summary (steps, seconds, pairs, mean losses of the last 100 steps)."""
    from tqdm import tqdm

    cfg = config or DescTrainConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    pairs = collect_pairs(train_dirs, cfg.min_overlap)
    if not pairs:
        raise ValueError("no training pairs: build pair scenes first (`nerf-loc make-pairs`)")
    clouds = {}
    for p in pairs:
        for s in (p.source, p.target):
            key = str(s.directory)
            if key not in clouds:
                clouds[key] = s.cloud()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    net = DescNetwork(cfg.network)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, history = _load_checkpoint(net, opt, out)
    rng = np.random.default_rng([cfg.seed, step])
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + step)
    net.train()
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=step, desc="DeSC", disable=not progress)
    while step < cfg.steps:
        pair = pairs[rng.integers(len(pairs))]
        src_c, tgt_c = clouds[str(pair.source.directory)], clouds[str(pair.target.directory)]
        src_c = src_c.subset(rng.random(len(src_c)) < cfg.keep_fraction)
        tgt_c = tgt_c.subset(rng.random(len(tgt_c)) < cfg.keep_fraction)
        voxel = pair_voxel_size(src_c, tgt_c, cfg.prepare) * (1 + cfg.voxel_jitter * rng.uniform(-1, 1))
        seed = int(rng.integers(1 << 30))
        try:
            src = prepare_cloud(src_c, voxel, cfg.prepare, seed)
            tgt = prepare_cloud(tgt_c, voxel, cfg.prepare, seed + 1)
        except ValueError as exc:
            log.warning("skipping pair %s/%s: %s", pair.scene, pair.source.name, exc)
            continue
        truth = pair_truth(src, tgt, pair.T_target_source, cfg.loss.match_radius)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
        losses = desc_losses(net(src, tgt), src, tgt, truth, cfg.loss, gen)
        opt.zero_grad()
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip)
        opt.step()
        step += 1
        history.append({k: round(float(v.detach()), 4) for k, v in losses.items()})
        bar.update(1)
        bar.set_postfix(coarse=f"{losses['coarse'].item():.3f}", fine=f"{losses['fine'].item():.3f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _save_checkpoint(net, opt, step, history, out)
    bar.close()
    net.eval()
    recent = history[-100:]
    summary = {
        "steps": step,
        "seconds_this_run": round(time.perf_counter() - t0, 1),
        "training_pairs": len(pairs),
        "training_scenes": [str(Path(d).name) for d in train_dirs],
        "mean_losses_last_100": {k: round(float(np.mean([h[k] for h in recent])), 4) for k in recent[0]}
        if recent else {},
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("network",)},
    }
    return net, summary


def write_trained_weights(net: DescNetwork, summary: dict, out: Path, eval_dirs: list[Path] = ()
                          ) -> tuple[Path, str]:
    """Score ``net`` on the evaluation pairs of ``eval_dirs`` (held-out scenes), then write ``out/desc.safetensors``
    (weights, config, training summary and held-out metrics) and ``out/MODEL_CARD.md``; returns the weights path
    and the card text."""
    from ..evaluation.register_bench import (RRE_THRESHOLD_DEG, RTE_THRESHOLD_FRAC, evaluate_pairs,
                                             format_register_table, summarise_rows)
    from .desc import DescRegistrar, save_desc_weights

    heldout: dict = {}
    if eval_dirs:
        pairs = [p for d in eval_dirs for p in load_pair_scene(Path(d)).evaluation_pairs().values()]
        rows = evaluate_pairs(pairs, {"desc": DescRegistrar(net)}, resample=False, progress=False)
        keys = sorted({r["overlap_key"] for r in rows}, key=float)
        heldout = {"scenes": [Path(d).name for d in eval_dirs],
                   "thresholds": {"rre_deg": RRE_THRESHOLD_DEG, "rte_frac": RTE_THRESHOLD_FRAC},
                   "methods": {"desc": {k: summarise_rows([r for r in rows if r["overlap_key"] == k]) for k in keys}}}
    path = Path(out) / "desc.safetensors"
    save_desc_weights(net, path, {"training": summary, "heldout": heldout})
    n_params = sum(p.numel() for p in net.parameters())
    card = "\n".join([
        "# DeSC registration network (nerf_loc_ros)",
        "",
        f"- Architecture: `DescNetwork` {json.dumps(net.config.to_dict())}; {n_params} parameters.",
        f"- Training data: {summary['training_pairs']} ordered pairs of NeRF submaps from pair scenes "
        f"{', '.join(summary['training_scenes'])} (`nerf-loc make-pairs`: two NeRFs per target overlap 30/50/80 %, "
        "each under a random rigid motion).",
        f"- Steps: {summary['steps']}; mean losses over the last 100 steps: {summary['mean_losses_last_100']}.",
        f"- Held-out scenes: {', '.join(heldout.get('scenes', [])) or 'none'} (scenes not used in training).",
        "",
        "```",
        format_register_table(heldout) if heldout else "(no held-out evaluation)",
        "```",
    ])
    (Path(out) / "MODEL_CARD.md").write_text(card + "\n")
    return path, card
