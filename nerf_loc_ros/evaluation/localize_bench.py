"""``nerf-loc bench localize``: our localizer and the SIFT baseline on the same query frames, one run.

JSON layout: ``{"methods": {"nerf": {...}, "sift": {...}}, "map_build_seconds": ..., "thresholds": {...}}``;
each method has ``median_rot_deg``, ``median_trans``, ``recall`` (threshold name -> fraction),
``failed_fraction``, ``latency_ms_p50``/``p95`` and ``stage_ms_p50`` (see :mod:`.pose_metrics`).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..datasets import PosedImages, load_dataset
from ..datasets.registry import default_eval_splits, train_split_for
from .plots import plot_error_cdf
from .pose_metrics import FrameRecord, json_safe, recall_thresholds, summarize_localization

__all__ = ["run_localize_benchmark", "localize_frames", "format_localize_table"]

log = logging.getLogger(__name__)


def localize_frames(method, query: PosedImages, desc: str = "localize", progress: bool = True) -> list[FrameRecord]:
    """Run ``method.localize`` on every query frame (no prior: each frame is a relocalization)."""
    out = []
    for i in tqdm(range(len(query)), desc=desc, unit="frame", disable=not progress):
        res = method.localize(query.images[i], query.K[i])
        out.append(FrameRecord(query.names[i], res.T_world_cam, query.T_world_cam[i], res.status.value,
                               res.timings_ms, res.num_inliers, int(query.timestamps_ns[i])))
    return out


def run_localize_benchmark(
    data: str, map_split: str | None = None, query_split: str | None = None, map_path: Path | None = None,
    budget_min: float = 10.0, encoder_budget_s: float = 120.0, methods: tuple[str, ...] = ("nerf", "sift"),
    max_queries: int | None = None, json_path: Path | None = None, out_dir: Path | None = None,
    device: str = "cpu", progress: bool = True,
) -> dict:
    """Build (or load) a localization map from ``map_split`` and localize every frame of ``query_split``."""
    from ..localization import (
        EncoderTrainConfig, Localizer, LocalizerConfig, build_localization_map, load_localization_map,
    )
    from ..localization.sift_baseline import SiftLocalizer
    from ..nerf import TrainConfig

    if query_split is None:
        map_default, query_split = default_eval_splits(data)
        map_split = map_split or map_default
    map_split = map_split or train_split_for(data, query_split)
    mapping = load_dataset(data, map_split)
    query = load_dataset(data, query_split)
    if max_queries and len(query) > max_queries:
        query = query.subset(np.unique(np.linspace(0, len(query) - 1, max_queries).round().astype(int)))
    log.info("bench localize: %s, map %s (%d views), queries %s (%d)", data, map_split, len(mapping), query_split,
             len(query))
    result: dict = {"data": data, "map_split": map_split, "query_split": query_split,
                    "map_views": len(mapping), "query_frames": len(query)}
    if map_path is not None:
        loc_map = load_localization_map(map_path, device=device)
        result["map_build_seconds"] = None
        result["map"] = str(map_path)
    else:
        t0 = time.perf_counter()
        tmp = tempfile.TemporaryDirectory()
        out = Path(out_dir or tmp.name) / "map"
        loc_map, summary = build_localization_map(
            mapping, out, TrainConfig(budget_seconds=budget_min * 60, progress=progress), device=device,
            encoder_train=EncoderTrainConfig(budget_s=encoder_budget_s), overwrite=True, progress=progress)
        result["map_build_seconds"] = round(time.perf_counter() - t0, 1)
        result["map_build"] = summary
        result["map"] = str(out) if out_dir else None
    extent = mapping.extent()
    thresholds = recall_thresholds(mapping.metric, extent)
    result["thresholds"] = {k: {"trans": t, "rot_deg": a} for k, (t, a) in thresholds.items()}
    result["scene_extent"] = extent
    result["units"] = "m" if mapping.metric else "scene units"
    runs: dict[str, list[FrameRecord]] = {}
    for name in methods:
        if name == "nerf":
            method = Localizer(loc_map)
        elif name == "nerf_render":
            method = Localizer(loc_map, LocalizerConfig(render_refine=True))
        elif name == "sift":
            method = SiftLocalizer(loc_map, mapping)
        else:
            raise ValueError(f"unknown method '{name}' (nerf, nerf_render, sift)")
        runs[name] = localize_frames(method, query, desc=name, progress=progress)
    result["methods"] = {name: summarize_localization(recs, thresholds) for name, recs in runs.items()}
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        result["cdf_png"] = str(plot_error_cdf(runs, Path(out_dir) / "localize_error_cdf.png", result["units"]))
    result = json_safe(result)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2))
    return result


def format_localize_table(result: dict) -> str:
    """Plain-text table of a :func:`run_localize_benchmark` result, thresholds stated."""
    th = result["thresholds"]
    names = list(th)
    unit = result["units"]
    head = f"{'method':8s} {'med rot':>9s} {'med trans':>10s} " + " ".join(f"{n:>10s}" for n in names)
    head += f" {'failed':>7s} {'p50 ms':>7s} {'p95 ms':>7s}"
    lines = [f"{result['data']}: map {result['map_split']} ({result['map_views']} views), "
             f"queries {result['query_split']} ({result['query_frames']})", head]
    for m, s in result["methods"].items():
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        row = f"{m:8s} {fmt(s['median_rot_deg'], '9.3f')} {fmt(s['median_trans'], '10.4f')} "
        row += " ".join(f"{100 * s['recall'][n]:9.1f}%" for n in names)
        row += f" {fmt(100 * s['failed_fraction'], '6.1f')}% {fmt(s['latency_ms_p50'], '7.1f')} " \
               f"{fmt(s['latency_ms_p95'], '7.1f')}"
        lines.append(row)
    lines.append("thresholds: " + ", ".join(f"{n} = {v['trans']:.4g} {unit} / {v['rot_deg']:g} deg"
                                           for n, v in th.items()))
    if result.get("map_build_seconds") is not None:
        lines.append(f"map build: {result['map_build_seconds']} s")
    return "\n".join(lines)
