"""``nerf-loc bench merge``: localization after a map merge, against the submap alone.

A mapping capture is split into two submaps at a surface overlap (:func:`~nerf_loc_ros.registration.make_pair_scene`:
contiguous view runs, each trained as its own NeRF under its own random rigid motion), both get localization data
(keyframe caches + scene encoder, from their own views in their own frames), the second (``b``) is merged into a
global map made from the first (``a``) with a registrar (:func:`~nerf_loc_ros.registration.merge_submap`), and the
query frames whose nearest mapping camera (by centre) is one of b's views are localized twice: against b alone (in
b's frame) and against the global map (in a's frame, :class:`~nerf_loc_ros.localization.GlobalLocalizer`). The
merge is as good as the map when the two rows match.

JSON: ``{"merge": {"status", "inliers", "rot_deg", "trans", "trans_frac", "seconds", ...}, "methods": {"submap":
{...}, "global": {...}}, "thresholds": {...}, ...}``; each method as in :mod:`.localize_bench` (:mod:`.pose_metrics`);
``rot_deg`` / ``trans`` are the merged ``T_global_submap``'s errors (degrees, map units), ``trans_frac`` the latter
over the capture's camera-centre extent (the localization thresholds' extent, not the registration benchmark's).
The ground truth of b's frame and of the global frame is the capture's, moved by the known submap motions.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ..datasets import PosedImages, load_dataset
from ..datasets.registry import default_eval_splits
from ..geometry import pose_errors
from .localize_bench import format_localize_table, localize_frames
from .pose_metrics import json_safe, recall_thresholds, summarize_localization

__all__ = ["format_merge_table", "queries_near_views", "run_merge_benchmark"]

log = logging.getLogger(__name__)


def queries_near_views(mapping: PosedImages, query: PosedImages, views: list[int]) -> np.ndarray:
    """Indices of the query frames whose nearest mapping camera (camera centre, map units) is one of ``views``."""
    centres = mapping.T_world_cam[:, :3, 3]
    q = query.T_world_cam[:, :3, 3]
    nearest = np.argmin(np.linalg.norm(q[:, None, :] - centres[None, :, :], axis=2), axis=1)
    return np.nonzero(np.isin(nearest, np.asarray(views)))[0]


def run_merge_benchmark(
    data: str, out_dir: Path | None = None, map_split: str | None = None, query_split: str | None = None,
    overlap: float = 0.8, budget_min: float = 5.0, iterations: int = 1_000_000, encoder_budget_s: float = 120.0,
    method: str | None = None, seed: int = 0, max_queries: int | None = None, json_path: Path | None = None,
    progress: bool = True,
) -> dict:
    """Split ``map_split`` of ``data`` into two submaps at ``overlap``, merge, localize (see the module docstring).

    Args:
        out_dir: keeps the pair scene, both localization submaps and the global map (default: a temporary dir).
        budget_min, iterations: NeRF training limits per submap (whichever comes first).
        encoder_budget_s: scene-encoder training budget per submap.
        method: registrar (default :data:`~nerf_loc_ros.registration.base.DEFAULT_REGISTRATION_METHOD`).
        max_queries: localize at most this many of b's query frames (evenly spaced).
    """
    from ..localization import (
        EncoderTrainConfig,
        GlobalLocalizer,
        Localizer,
        add_localization,
        load_localization_map,
        save_localization_map,
    )
    from ..maps import create_global_map, load_map
    from ..nerf import TrainConfig
    from ..registration import make_pair_scene, make_registrar, merge_submap, move_cameras
    from ..registration.base import DEFAULT_REGISTRATION_METHOD

    method = method or DEFAULT_REGISTRATION_METHOD
    if query_split is None:
        map_default, query_split = default_eval_splits(data)
        map_split = map_split or map_default
    mapping, query = load_dataset(data, map_split), load_dataset(data, query_split)
    tmp = tempfile.TemporaryDirectory() if out_dir is None else None
    out = Path(out_dir or tmp.name)
    t0 = time.perf_counter()
    scene = make_pair_scene(mapping, out / "pairs", (overlap,), TrainConfig(budget_seconds=60 * budget_min,
                            iterations=iterations), seed=seed, progress=progress)
    pair = next(iter(scene.evaluation_pairs().values()))
    submaps = {"a": pair.target, "b": pair.source}
    for name, rec in submaps.items():  # localization data from the submap's own views, in its own frame
        d = out / name
        if not (d / "keyframes.npz").exists():
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(rec.map_path, d)
            views = move_cameras(mapping.subset(rec.views), np.linalg.inv(rec.T_world_submap))
            loc_map, summary = add_localization(load_map(d), views, train=EncoderTrainConfig(budget_s=encoder_budget_s),
                                                progress=progress)
            save_localization_map(loc_map, d, overwrite=True, extra=summary)
    build_s = time.perf_counter() - t0

    global_dir = out / "global"
    shutil.rmtree(global_dir, ignore_errors=True)
    create_global_map(global_dir, out / "a", submap_id="a")
    t = time.perf_counter()
    merged = merge_submap(global_dir, out / "b", make_registrar(method), submap_id="b")
    merge_s = time.perf_counter() - t
    T_ab = pair.T_target_source  # the ground-truth T_global_b (the global frame is a's)
    rot = trans = float("inf")
    if merged.T_global_submap is not None:
        r, tr = pose_errors(merged.T_global_submap[None], T_ab[None])
        rot, trans = float(r[0]), float(tr[0])
    res = merged.result
    log.info("merge: %s, %d inliers, %.2f deg / %.4f from the truth", res.status.value, res.inliers, rot, trans)

    idx = queries_near_views(mapping, query, submaps["b"].views)
    if max_queries and len(idx) > max_queries:
        idx = idx[np.unique(np.linspace(0, len(idx) - 1, max_queries).round().astype(int))]
    extent = mapping.extent()
    thresholds = recall_thresholds(mapping.metric, extent)
    result: dict = {
        "data": data, "map_split": f"{map_split} ({len(mapping)} views), submap b",
        "map_views": len(submaps["b"].views), "query_split": f"{query_split} near b", "query_frames": len(idx),
        "overlap": float(pair.overlap),
        "thresholds": {k: {"trans": tr, "rot_deg": a} for k, (tr, a) in thresholds.items()},
        "scene_extent": extent, "units": "m" if mapping.metric else "scene units",
        "build_seconds": round(build_s, 1),
        "merge": {"method": method, "status": res.status.value, "merged": merged.merged, "inliers": int(res.inliers),
                  "reason": res.reason, "rot_deg": rot, "trans": trans, "trans_frac": trans / max(extent, 1e-12),
                  "seconds": round(merge_s, 2)},
        "methods": {},
    }
    queries = query.subset(idx)
    runs = {"submap": (lambda: Localizer(load_localization_map(out / "b")), submaps["b"])}
    if merged.merged:
        runs["global"] = (lambda: GlobalLocalizer(global_dir), submaps["a"])
    for name, (make, frame) in runs.items():
        gt = move_cameras(queries, np.linalg.inv(frame.T_world_submap))  # truth in the frame the localizer answers in
        result["methods"][name] = summarize_localization(localize_frames(make(), gt, desc=name, progress=progress),
                                                         thresholds)
    result = json_safe(result)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return result


def format_merge_table(result: dict) -> str:
    """The merge line and the localization table (b alone vs the global map) of :func:`run_merge_benchmark`."""
    m = result["merge"]
    head = (f"merge ({m['method']}, {100 * result['overlap']:.0f} % overlap): {m['status']}, {m['inliers']} inliers, "
            f"T_global_submap {m['rot_deg'] if m['rot_deg'] is None else format(m['rot_deg'], '.3f')} deg / "
            f"{m['trans'] if m['trans'] is None else format(m['trans'], '.4f')} {result['units']} from the truth, "
            f"{m['seconds']} s" + (f" ({m['reason']})" if m["reason"] else ""))
    return head + "\n" + format_localize_table(result)
