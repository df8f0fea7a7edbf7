"""Train a :class:`NerfModel` from any :class:`PosedImages` (RGB, optional depth supervision).

Each step samples random pixels of all training images, renders them with occupancy-guided packed
sampling and minimises the colour error (plus an L1 depth term where depth exists and a small
total-variation prior on the planes). The ray batch adapts so that each step evaluates about
``target_samples`` field points (instant-ngp's dynamic batch); the learning rate decays
exponentially over the iteration *or* wall-time budget, whichever runs out first.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..datasets import PosedImages
from .field import FieldConfig
from .model import NerfModel
from .occupancy import OccupancyConfig, visible_cells
from .rays import pixel_rays
from .renderer import RenderConfig
from .scene_box import SceneBox, depth_points, estimate_scene_box

__all__ = ["TrainConfig", "TrainSummary", "NerfTrainer", "psnr_from_mse"]

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Training settings (every field is also a ``nerf-loc map build`` option or has a sane default)."""

    iterations: int = 20000  #: maximum optimisation steps
    budget_seconds: float | None = None  #: wall-time budget; training stops at whichever limit comes first
    target_samples: int = 1 << 15  #: field evaluations per step the ray batch adapts to
    initial_rays: int = 1024  #: rays in the first step
    min_rays: int | None = None  #: lower bound of the adaptive ray batch; None = 1024 with depth (occupancy
    #: seeded, few samples per ray), else 256 (early, still foggy steps would otherwise take seconds each)
    max_rays: int = 16384  #: upper bound of the adaptive ray batch
    lr: float = 2e-2  #: initial Adam learning rate (K-planes uses 2e-2 for its planes)
    lr_final_factor: float = 0.03  #: learning rate at the end = lr * this
    tv_weight: float = 1e-4  #: total-variation weight on the feature planes
    depth_weight: float = 1.0  #: weight of the depth losses (L1 / box diagonal, free space, opacity), if depth exists
    free_space_margin: float = 0.05  #: samples nearer than (1 - margin) * measured depth count as free space
    free_space_weight: float = 1.0  #: weight of the free-space term relative to the L1 depth term
    occupancy_every: int = 16  #: steps between occupancy-grid updates
    seed: int = 0  #: seeds ray sampling, jitter and initialisation
    threads: int | None = None  #: torch CPU threads (None = all cores)
    checkpoint_every: int = 0  #: steps between checkpoints (0 = only at the end, if a directory is given)
    progress: bool = True  #: show a progress bar with PSNR


@dataclass
class TrainSummary:
    """What training did (stored in the map manifest)."""

    iterations: int = 0
    seconds: float = 0.0
    train_psnr: float = 0.0
    rays_per_step: int = 0
    samples_per_step: float = 0.0
    occupied_fraction: float = 1.0
    images: int = 0


class PixelBank:
    """All training pixels flattened: colours, optional depth, and per-pixel camera lookup."""

    def __init__(self, data: PosedImages, device: torch.device) -> None:
        sizes = [data.size(i) for i in range(len(data))]
        counts = np.array([w * h for w, h in sizes], dtype=np.int64)
        self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)])).to(device)
        self.widths = torch.tensor([w for w, _ in sizes], device=device)
        self.rgb = torch.from_numpy(np.concatenate([im.reshape(-1, 3) for im in data.images])).to(device)
        self.depth = None
        if data.has_depth:
            deps = [
                (d if d is not None else np.zeros(im.shape[:2], np.float32)).reshape(-1)
                for d, im in zip(data.depths, data.images)
            ]
            self.depth = torch.from_numpy(np.concatenate(deps).astype(np.float32)).to(device)
        self.K = torch.from_numpy(data.K).float().to(device)
        self.T = torch.from_numpy(data.T_world_cam).float().to(device)
        self.total = int(counts.sum())

    def sample(self, n: int, generator: torch.Generator):
        """``n`` random pixels -> origins, dirs ``[n x 3]``, rgb ``[n x 3]`` in [0, 1], depth ``[n]`` or None."""
        g = torch.randint(0, self.total, (n,), generator=generator, device=self.rgb.device)
        img = torch.searchsorted(self.offsets, g, right=True) - 1
        local = g - self.offsets[img]
        w = self.widths[img]
        o, d = pixel_rays(self.K[img], self.T[img], local % w, local // w)
        rgb = self.rgb[g].float() / 255.0
        return o, d, rgb, (self.depth[g] if self.depth is not None else None)


def psnr_from_mse(mse: float) -> float:
    """PSNR (dB) of colours in [0, 1] from their mean squared error."""
    return float(-10 * math.log10(max(mse, 1e-10)))


class NerfTrainer:
    """Holds the model, optimiser and data; :meth:`train` runs until the budget is spent."""

    def __init__(
        self, data: PosedImages, config: TrainConfig | None = None, field_config: FieldConfig | None = None,
        occupancy_config: OccupancyConfig | None = None, render_config: RenderConfig | None = None,
        box: SceneBox | None = None, device: str | torch.device = "cpu",
    ) -> None:
        self.config = cfg = config or TrainConfig()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.device = torch.device(device)
        self.data = data
        box = box or estimate_scene_box(data)
        render_config = render_config or RenderConfig(background=_background_of(data))
        self.model = NerfModel.create(box, field_config, occupancy_config, render_config, device=self.device)
        seen = visible_cells(
            box, self.model.occupancy.resolution, data.T_world_cam, data.K, [data.size(i) for i in range(len(data))]
        )
        self.model.occupancy.set_seen(seen)
        if data.has_depth:  # RGB-D: start the occupancy grid from the measured surfaces
            pts = torch.from_numpy(depth_points(data, per_image=20000, seed=cfg.seed))
            frac = self.model.occupancy.seed_from_points(pts)
            log.info("occupancy seeded from %d depth points: %.3f occupied", len(pts), frac)
        self.bank = PixelBank(data, self.device)
        self.optimizer = torch.optim.Adam(self.model.field.parameters(), lr=cfg.lr, eps=1e-15)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.iteration = 0
        self.seconds = 0.0
        self.rays = cfg.initial_rays
        self.skipped_steps = 0
        self.summary = TrainSummary(images=len(data))

    # ------------------------------------------------------------------ training
    def _lr(self, progress: float) -> float:
        return self.config.lr * self.config.lr_final_factor ** min(max(progress, 0.0), 1.0)

    def _progress(self) -> float:
        cfg = self.config
        p = self.iteration / max(cfg.iterations, 1)
        if cfg.budget_seconds:
            p = max(p, self.seconds / cfg.budget_seconds)
        return p

    def step(self) -> dict[str, float]:
        """One optimisation step; returns loss terms, PSNR and batch statistics."""
        cfg = self.config
        model = self.model
        if self.iteration % cfg.occupancy_every == 0:
            model.field.eval()
            self.summary.occupied_fraction = model.occupancy.update(
                model.field.density, model.render_step(), generator=self.generator
            )
        model.field.train()
        o, d, rgb, depth = self.bank.sample(self.rays, self.generator)
        use_depth = depth is not None and cfg.depth_weight > 0
        out = model.render_rays(o, d, stratified=True, generator=self.generator, with_samples=use_depth)
        mse = torch.mean((out["rgb"] - rgb) ** 2)
        loss = mse
        stats = {"mse": float(mse.detach())}
        if use_depth:
            valid = depth > 0
            if bool(valid.any()):
                l_depth = (out["depth_sum"][valid] - depth[valid]).abs().mean() / model.box.diagonal
                # free space: rendering weight in front of the measured surface (kills floaters directly)
                ray, t, w = out["sample_ray"], out["sample_t"], out["sample_weight"]
                d_s = depth[ray]
                in_front = (d_s > 0) & (t < d_s * (1 - cfg.free_space_margin))
                l_free = (w * in_front).sum() / max(int(valid.sum()), 1)
                l_opaque = (1 - out["opacity"][valid]).square().mean()  # measured surfaces are opaque
                loss = loss + cfg.depth_weight * (l_depth + cfg.free_space_weight * l_free + l_opaque)
                stats["depth_l1"] = float(l_depth.detach())
                stats["free_space"] = float(l_free.detach())
        if cfg.tv_weight > 0:
            loss = loss + cfg.tv_weight * model.field.encoding.total_variation()
        for g in self.optimizer.param_groups:
            g["lr"] = self._lr(self._progress())
        self.optimizer.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            self.optimizer.step()
        else:  # never let one bad batch poison the weights (and through them the occupancy grid)
            self.skipped_steps += 1
            log.warning("non-finite loss at step %d skipped (%d so far)", self.iteration, self.skipped_steps)
        n = int(out["num_samples"])
        stats.update(psnr=psnr_from_mse(stats["mse"]), rays=self.rays, samples=n)
        # adapt the ray batch towards the target number of field evaluations per step
        per_ray = max(n / self.rays, 1.0)
        min_rays = cfg.min_rays or (1024 if self.data.has_depth else 256)
        self.rays = int(min(cfg.max_rays, max(min_rays, 0.5 * self.rays + 0.5 * cfg.target_samples / per_ray)))
        self.iteration += 1
        return stats

    def train(self, checkpoint_dir: Path | None = None) -> NerfModel:
        """Train until ``iterations`` or ``budget_seconds`` is reached; optionally checkpoint (resumable)."""
        cfg = self.config
        bar = tqdm(total=cfg.iterations, initial=self.iteration, disable=None if cfg.progress else True, desc="nerf", unit="it")
        ema = None
        while self.iteration < cfg.iterations and not (cfg.budget_seconds and self.seconds >= cfg.budget_seconds):
            t0 = time.perf_counter()
            stats = self.step()
            self.seconds += time.perf_counter() - t0
            ema = stats["mse"] if ema is None else 0.95 * ema + 0.05 * stats["mse"]
            bar.update(1)
            if self.iteration % 10 == 0:
                bar.set_postfix(psnr=f"{psnr_from_mse(ema):.2f}", rays=stats["rays"], occ=f"{self.summary.occupied_fraction:.3f}")
            if checkpoint_dir and cfg.checkpoint_every and self.iteration % cfg.checkpoint_every == 0:
                self.save_checkpoint(checkpoint_dir)
            self.summary.samples_per_step = stats["samples"]
        bar.close()
        self.summary.iterations = self.iteration
        self.summary.seconds = round(self.seconds, 2)
        self.summary.train_psnr = round(psnr_from_mse(ema), 3) if ema is not None else 0.0
        self.summary.rays_per_step = self.rays
        if checkpoint_dir:
            self.save_checkpoint(checkpoint_dir)
        log.info(
            "trained %d iterations in %.1f s, train PSNR %.2f dB, occupied %.3f",
            self.iteration, self.seconds, self.summary.train_psnr, self.summary.occupied_fraction,
        )
        return self.model

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, directory: Path) -> None:
        """Write weights, optimiser moments, occupancy and counters to ``directory`` (safetensors + npz + json)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"field.{k}": v.detach().contiguous() for k, v in self.model.field.state_dict().items()}
        for i, p in enumerate(self.model.field.parameters()):
            st = self.optimizer.state.get(p, {})
            for k in ("exp_avg", "exp_avg_sq"):
                if k in st:
                    tensors[f"adam.{i}.{k}"] = st[k].contiguous()
            if "step" in st:
                tensors[f"adam.{i}.step"] = torch.as_tensor(st["step"]).reshape(1).float()
        tmp = directory / "checkpoint.safetensors.tmp"
        save_file(tensors, str(tmp))
        tmp.replace(directory / "checkpoint.safetensors")
        np.savez_compressed(directory / "occupancy.npz", **self.model.occupancy.state())
        meta = {
            "iteration": self.iteration, "seconds": self.seconds, "rays": self.rays,
            "box": self.model.box.to_dict(), "field": self.model.field.config.to_dict(),
            "render": self.model.render_config.to_dict(), "train": asdict(self.config),
            "generator_state": self.generator.get_state().tolist(),
        }
        (directory / "checkpoint.json").write_text(json.dumps(meta))

    def load_checkpoint(self, directory: Path) -> bool:
        """Resume from :meth:`save_checkpoint` output; returns False when there is none."""
        directory = Path(directory)
        meta_path = directory / "checkpoint.json"
        if not meta_path.is_file():
            return False
        meta = json.loads(meta_path.read_text())
        if meta["box"] != self.model.box.to_dict() or meta["field"] != self.model.field.config.to_dict():
            raise ValueError(f"{directory}: checkpoint was made for a different scene box or field config")
        tensors = load_file(str(directory / "checkpoint.safetensors"), device=str(self.device))
        self.model.field.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("field.")})
        for i, p in enumerate(self.model.field.parameters()):
            if f"adam.{i}.exp_avg" in tensors:
                self.optimizer.state[p] = {
                    "step": tensors[f"adam.{i}.step"].reshape(()).cpu(),
                    "exp_avg": tensors[f"adam.{i}.exp_avg"],
                    "exp_avg_sq": tensors[f"adam.{i}.exp_avg_sq"],
                }
        with np.load(directory / "occupancy.npz", allow_pickle=False) as z:
            self.model.occupancy.load_state(dict(z))
        self.iteration, self.seconds, self.rays = meta["iteration"], meta["seconds"], meta["rays"]
        self.generator.set_state(torch.tensor(meta["generator_state"], dtype=torch.uint8))
        log.info("resumed from %s at iteration %d", directory, self.iteration)
        return True


def _background_of(data: PosedImages) -> tuple[float, float, float]:
    """Colour behind transparent rays: what the images were composited on (``extras['background']``, RGB
    0-255), else the mean training colour. (A black background makes early, still transparent renders too
    dark; the colour MLP then races to saturation and its sigmoid never recovers.)"""
    bg = data.extras.get("background")
    if bg is not None:
        return tuple(float(c) / 255.0 for c in bg)
    mean = np.mean([im.reshape(-1, 3).mean(0) for im in data.images], axis=0) / 255.0
    return tuple(float(c) for c in mean)
