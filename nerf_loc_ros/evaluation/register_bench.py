"""``nerf-loc bench register``: DeSC, rendered-view matching and FPFH + RANSAC + ICP on the evaluation pairs of pair
scenes.

For every evaluation pair (the ``(a, b)`` submaps of each target overlap, 30 / 50 / 80 %) both NeRF maps are
sampled afresh (timed: the per-pair time of a method that registers clouds includes sampling both maps) and every
method registers the same two clouds (the view registrar renders views of the two maps instead). A pair is
*recalled* when the method says OK and its estimate has RRE < 5 deg and RTE < 5 % of the scene extent (the larger
extent of the two clouds, DESIGN.md section 7); ``recall_any_status`` also counts estimates reported AMBIGUOUS.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from ..registration.pair_data import RegistrationPair, load_pair_scene
from ..registration.result import RegistrationStatus, cloud_extent, registration_errors

__all__ = ["RRE_THRESHOLD_DEG", "RTE_THRESHOLD_FRAC", "evaluate_pairs", "summarise_rows", "run_register_benchmark",
           "format_register_table"]

log = logging.getLogger(__name__)

RRE_THRESHOLD_DEG = 5.0
RTE_THRESHOLD_FRAC = 0.05


def _load(record, registrar, resample: bool, need_map: bool):
    """``(map or None, cloud)`` of a submap record: the map when it exists and is needed (to resample, or for a
    registrar of maps), the cloud sampled afresh with the registrar's sampling config (``resample``) or the stored
    one."""
    from ..maps import load_map
    from ..registration.base import sample_map

    nerf_map = None
    if (resample or need_map) and record.map_path.exists():
        nerf_map = load_map(record.map_path)
    if resample and nerf_map is not None:
        return nerf_map, sample_map(nerf_map, registrar.sampling)
    return nerf_map, record.cloud()


def evaluate_pairs(pairs: list[RegistrationPair], registrars: dict, resample: bool = True,
                   progress: bool = True, panels: list | None = None) -> list[dict]:
    """One row per (pair, method): scene, overlap key, measured overlap, status, RRE (deg), RTE fraction,
    seconds (sampling both maps, for methods that use the clouds, + registration), inliers. With ``panels`` (a
    list), appends one row of :func:`~.plots.plot_registrations` panels per pair."""
    from tqdm import tqdm

    rows = []
    first = next(iter(registrars.values()))  # its sampling config samples the clouds every method registers
    need_maps = any(reg.needs_maps for reg in registrars.values())
    for pair in tqdm(pairs, desc="pairs", disable=not progress):
        t0 = time.perf_counter()
        (src_map, src), (tgt_map, tgt) = (_load(r, first, resample, need_maps) for r in (pair.source, pair.target))
        sampling_s = time.perf_counter() - t0
        extent = max(cloud_extent(src.points), cloud_extent(tgt.points))
        row_panels = []
        for name, reg in registrars.items():
            if reg.needs_maps:
                if src_map is None or tgt_map is None:
                    raise ValueError(f"{pair.scene}: method {name} registers NeRF maps, but a submap has no map/")
                res = reg.register_maps(src_map, tgt_map, clouds=(src, tgt))
            else:
                res = reg.register(src, tgt)
            sampled = resample and reg.uses_clouds  # the view registrar renders instead (unless it runs ICP)
            rre, rte = registration_errors(res.T_target_source, pair.T_target_source, extent)
            good = rre < RRE_THRESHOLD_DEG and rte < RTE_THRESHOLD_FRAC
            rows.append({
                "scene": pair.scene, "overlap_key": pair.key, "overlap": round(pair.overlap, 3),
                "method": name, "status": res.status.value, "rre_deg": rre, "rte_frac": rte,
                "recalled": bool(good and res.status == RegistrationStatus.OK), "good_estimate": bool(good),
                "seconds": (sampling_s if sampled else 0.0) + res.timings_ms.get("total", 0.0) / 1000,
                "sampling_seconds": sampling_s if sampled else None, "inliers": res.inliers,
            })
            log.info("%s %s %s: %s rre %.2f rte %.4f", pair.scene, rows[-1]["overlap_key"], name,
                     res.status.value, rre, rte)
            row_panels.append({"source": src.points, "target": tgt.points, "T": res.T_target_source,
                               "T_gt": pair.T_target_source, "T_view": pair.target.T_world_submap,
                               "title": f"{pair.scene} {pair.key}% {name}: {res.status.value}\nRRE {rre:.1f} deg, "
                                        f"RTE {100 * rte:.1f} %"})
        if panels is not None:
            panels.append(row_panels)
    return rows


def summarise_rows(rows: list[dict]) -> dict:
    """Recall, median errors, p50 seconds and status counts of result rows."""
    rre = np.array([r["rre_deg"] for r in rows])
    rte = np.array([r["rte_frac"] for r in rows])
    return {
        "pairs": len(rows),
        "recall": float(np.mean([r["recalled"] for r in rows])) if rows else 0.0,
        "recall_any_status": float(np.mean([r["good_estimate"] for r in rows])) if rows else 0.0,
        "median_rre_deg": float(np.median(rre)) if rows else float("nan"),
        "median_rte_frac": float(np.median(rte)) if rows else float("nan"),
        "seconds_p50": float(np.median([r["seconds"] for r in rows])) if rows else float("nan"),
        "ambiguous": int(sum(r["status"] == "AMBIGUOUS" for r in rows)),
        "failed": int(sum(r["status"] == "FAILED" for r in rows)),
    }


def run_register_benchmark(scene_dirs: list[Path], methods: tuple[str, ...] = ("desc", "fpfh", "views"),
                           weights: Path | None = None, resample: bool = True, json_path: Path | None = None,
                           png_path: Path | None = None, progress: bool = True) -> dict:
    """Score ``methods`` on the evaluation pairs of the pair scenes ``scene_dirs``; writes ``json_path`` and a
    top-view figure of every registration to ``png_path``."""
    from ..registration import make_registrar

    registrars = {m: make_registrar(m, weights) for m in methods}
    pairs = []
    for d in scene_dirs:
        pairs += list(load_pair_scene(Path(d)).evaluation_pairs().values())
    if not pairs:
        raise ValueError("no finished evaluation pairs in " + ", ".join(map(str, scene_dirs)))
    panels: list = []
    rows = evaluate_pairs(pairs, registrars, resample=resample, progress=progress, panels=panels)
    if png_path is not None:
        from .plots import plot_registrations

        plot_registrations(panels, png_path)
    result = {"thresholds": {"rre_deg": RRE_THRESHOLD_DEG, "rte_frac": RTE_THRESHOLD_FRAC},
              "scenes": [str(d) for d in scene_dirs], "methods": {}, "pairs": rows,
              "figure": None if png_path is None else str(png_path)}
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        keys = sorted({r["overlap_key"] for r in mine}, key=lambda k: float(k))
        result["methods"][m] = {k: summarise_rows([r for r in mine if r["overlap_key"] == k]) for k in keys}
        result["methods"][m]["all"] = summarise_rows(mine)
    if json_path is not None:
        Path(json_path).write_text(json.dumps(result, indent=2))
    return result


def format_register_table(result: dict) -> str:
    """A text table: method x overlap with recall, median RRE / RTE and p50 seconds."""
    th = result["thresholds"]
    lines = [f"registration recall: OK and RRE < {th['rre_deg']} deg and RTE < {100 * th['rte_frac']:.0f} % of the "
             "scene extent; seconds include sampling both maps where a method uses the clouds",
             f"{'method':8} {'overlap':>7} {'pairs':>5} {'recall':>7} {'any':>6} {'RRE deg':>8} {'RTE %':>7} "
             f"{'s p50':>6} {'ambig':>5} {'fail':>4}"]
    for m, per in result["methods"].items():
        for k, s in per.items():
            lines.append(f"{m:8} {k:>7} {s['pairs']:5d} {100 * s['recall']:6.1f}% {100 * s['recall_any_status']:5.1f}% "
                         f"{s['median_rre_deg']:8.2f} {100 * s['median_rte_frac']:7.2f} {s['seconds_p50']:6.2f} "
                         f"{s['ambiguous']:5d} {s['failed']:4d}")
    return "\n".join(lines)
