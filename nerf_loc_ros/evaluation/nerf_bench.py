"""``nerf-loc bench nerf``: train a NeRF map under a budget and score it on held-out views.

Reports PSNR/SSIM on the held-out views, training time and iterations, map size on disk, and where the
held-out views have ground-truth depth the median per-pixel depth abs-rel error. Writes JSON and a PNG
strip (ground truth | render | rendered depth) of a few held-out views.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..datasets import PosedImages, default_eval_splits, load_dataset, train_split_for
from ..maps import build_map, map_bytes, save_map
from ..nerf import TrainConfig
from .image_metrics import colorize_depth, depth_abs_rel, psnr, ssim

__all__ = ["evaluate_views", "run_nerf_benchmark", "save_strip"]

log = logging.getLogger(__name__)


def evaluate_views(
    model, test: PosedImages, max_views: int | None = None, keep_renders: int = 4, progress: bool = True
) -> dict:
    """Render held-out views with ``model``; PSNR/SSIM per view and pooled depth abs-rel where depth exists.

    Returns ``{"psnr": [...], "ssim": [...], "abs_rel": np.ndarray | None, "renders": [(i, render dict)]}``
    where ``renders`` holds only ``keep_renders`` evenly spaced views (for :func:`save_strip`).
    """
    idx = np.arange(len(test))
    if max_views and len(idx) > max_views:
        idx = idx[np.linspace(0, len(idx) - 1, max_views).round().astype(int)]
    kept = set(range(0, len(idx), max(1, len(idx) // keep_renders))[:keep_renders])
    psnrs, ssims, rels, renders = [], [], [], []
    for pos, i in enumerate(tqdm(idx, desc="render test views", disable=not progress, leave=False)):
        w, h = test.size(i)
        r = model.render_image(test.K[i], test.T_world_cam[i], w, h)
        gt = test.images[i].astype(np.float32) / 255.0
        psnrs.append(psnr(r["rgb"], gt))
        ssims.append(ssim(r["rgb"], gt))
        if test.has_depth and test.depths[i] is not None:
            rels.append(depth_abs_rel(r["depth"], test.depths[i]))
        if pos in kept:
            renders.append((int(i), r))
    return {
        "psnr": psnrs,
        "ssim": ssims,
        "abs_rel": np.concatenate(rels) if rels else None,
        "renders": renders,
    }


def save_strip(test: PosedImages, renders: list, path: Path) -> Path:
    """PNG with one row per ``(view index, render)``: ground truth | render | coloured rendered depth."""
    from PIL import Image

    rows = []
    for i, r in renders:
        gt = test.images[i]
        rgb = (np.clip(r["rgb"], 0, 1) * 255).astype(np.uint8)
        depth = r["depth"] * (r["opacity"] > 0.5)
        rows.append(np.concatenate([gt, rgb, colorize_depth(depth)], axis=1))
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0))) for row in rows]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return path


def run_nerf_benchmark(
    data: str, split: str | None = None, budget_min: float = 10.0, iterations: int = 1_000_000,
    device: str = "cpu", json_path: Path | None = None, out_dir: Path | None = None,
    max_views: int | None = None, seed: int = 0, progress: bool = True,
) -> dict:
    """Train on the training split of ``data`` within ``budget_min`` minutes and evaluate on ``split``.

    Args:
        data: dataset spec (see :func:`load_dataset`).
        split: held-out split (``test``, ``query``, ``test@N``); default per dataset (:func:`default_eval_splits`).
        out_dir: where the map and the PNG strip go (a temporary directory when None; the map is then dropped).
        max_views: evaluate at most this many held-out views (evenly spaced); None = all.
    """
    test_split = split or default_eval_splits(data)[1]
    train_split = train_split_for(data, test_split)
    train = load_dataset(data, train_split)
    test = load_dataset(data, test_split)
    log.info("bench nerf: %s, train %s (%d views), test %s (%d views)", data, train_split, len(train), test_split, len(test))
    cfg = TrainConfig(budget_seconds=budget_min * 60, iterations=iterations, seed=seed, progress=progress)
    t0 = time.perf_counter()
    nerf_map = build_map(train, None, cfg, device=device)
    wall = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:  # the map is kept only with out_dir; its size is measured either way
        size = map_bytes(save_map(nerf_map, Path(out_dir or tmp) / "map", overwrite=True))
    ev = evaluate_views(nerf_map.model, test, max_views=max_views, progress=progress)
    strip = save_strip(test, ev["renders"], Path(out_dir or ".") / "nerf_bench_strip.png")
    summary = nerf_map.training
    result = {
        "data": data,
        "train_split": train_split,
        "test_split": test_split,
        "train_views": len(train),
        "test_views": len(ev["psnr"]),
        "psnr_test": float(np.mean(ev["psnr"])),
        "ssim_test": float(np.mean(ev["ssim"])),
        "train_seconds": float(summary["seconds"]),
        "wall_seconds": round(wall, 2),
        "iterations": int(summary["iterations"]),
        "map_bytes": int(size),
        "device": device,
        "strip_png": str(strip),
    }
    if ev["abs_rel"] is not None and len(ev["abs_rel"]):
        result["depth_abs_rel_median"] = float(np.median(ev["abs_rel"]))
        result["depth_abs_rel_mean"] = float(np.mean(ev["abs_rel"]))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2))
    return result


def format_table(result: dict) -> str:
    """Plain-text table of a benchmark result."""
    rows = [
        ("dataset", result["data"]),
        ("train / test views", f"{result['train_views']} ({result['train_split']}) / {result['test_views']} ({result['test_split']})"),
        ("PSNR test (dB)", f"{result['psnr_test']:.2f}"),
        ("SSIM test", f"{result['ssim_test']:.3f}"),
        ("train seconds", f"{result['train_seconds']:.1f}"),
        ("iterations", str(result["iterations"])),
        ("map size (MB)", f"{result['map_bytes'] / 1e6:.2f}"),
    ]
    if "depth_abs_rel_median" in result:
        rows.append(("depth abs-rel median", f"{100 * result['depth_abs_rel_median']:.2f} %"))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)
