"""``nerf-loc demo``: the main job on the built-in procedural scene, end to end, with a report.

Render the mapping and the second (query) session of the procedural room; build a localization map from
the mapping session (NeRF + keyframe caches + scene encoder); record the second session as a ROS 2 bag
exactly as a robot would (image, camera_info, tf, ground truth); replay the bag through the localizer as the
live node does (``nerf-loc replay``) and report accuracy and latency.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def run_demo(out: Path, seed: int, frames: int, width: int, height: int, nerf_budget_min: float = 4.0,
             encoder_budget_s: float = 90.0, nerf_iterations: int = 20000, encoder_steps: int = 3000) -> dict:
    """Run the demo into ``out``; returns the report dict (also written to ``out/demo.json``)."""
    from ..bags import bag_info, write_bag
    from ..datasets import load_dataset
    from ..datasets.bag import load_bag
    from ..geometry import pose_errors
    from .data import save_contact_sheet

    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"seed": seed, "size": f"{width}x{height}"}
    spec = f"procedural:seed={seed}:frames={frames}:size={width}x{height}"

    t0 = time.perf_counter()
    mapping = load_dataset(spec, split="mapping")
    query = load_dataset(spec, split="query")
    report["render_seconds"] = round(time.perf_counter() - t0, 2)
    report["mapping_frames"], report["query_frames"] = len(mapping), len(query)
    save_contact_sheet(mapping, str(out / "mapping_session.png"))
    save_contact_sheet(query, str(out / "query_session.png"))

    bag_path = out / "query_session_bag"
    t0 = time.perf_counter()
    write_bag(query, bag_path, storage="mcap", overwrite=True, progress=True)
    report["bag_write_seconds"] = round(time.perf_counter() - t0, 2)
    info = bag_info(bag_path)
    report["bag"] = {"path": str(bag_path), "topics": {name: t["count"] for name, t in info["topics"].items()}}

    t0 = time.perf_counter()
    replayed = load_bag(bag_path, image_topic="/camera/image_raw", gt_topic="/ground_truth/pose")
    report["bag_read_seconds"] = round(time.perf_counter() - t0, 2)
    rot, trans = pose_errors(replayed.T_world_cam, query.T_world_cam)
    report["bag_roundtrip"] = {
        "frames": len(replayed),
        "images_identical": all(np.array_equal(a, b) for a, b in zip(replayed.images, query.images)),
        "max_rot_err_deg": float(rot.max()),
        "max_trans_err_m": float(trans.max()),
    }

    from ..evaluation.replay import run_replay
    from ..localization import EncoderTrainConfig, build_localization_map
    from ..nerf import TrainConfig

    t0 = time.perf_counter()
    build_localization_map(mapping, out / "map", TrainConfig(iterations=nerf_iterations,
                                                             budget_seconds=nerf_budget_min * 60),
                           encoder_train=EncoderTrainConfig(budget_s=encoder_budget_s, max_steps=encoder_steps),
                           overwrite=True)
    report["map_build_seconds"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    metrics = run_replay(out / "map", bag_path, "/camera/image_raw", out / "replay", gt_topic="/ground_truth/pose")
    report["replay_seconds"] = round(time.perf_counter() - t0, 1)
    report["replay"] = {k: metrics[k] for k in ("frames", "median_rot_deg", "median_trans", "recall", "failed_fraction",
                                                "latency_ms_p50", "latency_ms_p95", "status_counts")}
    (out / "demo.json").write_text(json.dumps(report, indent=2))
    return report


def cmd_demo(args: argparse.Namespace) -> int:
    report = run_demo(Path(args.out), args.seed, args.frames, args.width, args.height, args.nerf_budget_min,
                      args.encoder_budget_s, args.nerf_iterations, args.encoder_steps)
    rt = report["bag_roundtrip"]
    print(f"procedural scene seed {report['seed']} at {report['size']}: "
          f"{report['mapping_frames']} mapping + {report['query_frames']} query frames rendered in "
          f"{report['render_seconds']} s (contact sheets: {args.out}/mapping_session.png, query_session.png)")
    print(f"second session recorded to {report['bag']['path']} in {report['bag_write_seconds']} s: "
          + ", ".join(f"{k} x{v}" for k, v in report["bag"]["topics"].items()))
    print(f"bag read back in {report['bag_read_seconds']} s: {rt['frames']} frames, images identical: "
          f"{rt['images_identical']}, max pose error {rt['max_rot_err_deg']:.2e} deg / {rt['max_trans_err_m']:.2e} m")
    r = report["replay"]
    print(f"map built from the mapping session in {report['map_build_seconds']} s ({args.out}/map)")
    if r["median_trans"] is not None:
        print(f"replay of the second session ({report['replay_seconds']} s): {r['frames']} frames, status "
              f"{r['status_counts']}; median error {100 * r['median_trans']:.1f} cm / {r['median_rot_deg']:.2f} deg; "
              "recall " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["recall"].items()))
        print(f"latency per frame: p50 {r['latency_ms_p50']:.0f} ms, p95 {r['latency_ms_p95']:.0f} ms "
              f"(plots in {args.out}/replay)")
    print(f"report: {args.out}/demo.json")
    ok = rt["images_identical"] and rt["frames"] == report["query_frames"] and rt["max_trans_err_m"] < 1e-6
    return 0 if ok else 1


def register(sub) -> None:
    """Register ``nerf-loc demo``."""
    p = sub.add_parser("demo", help="run the main job on the built-in procedural scene and report")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--seed", type=int, default=0, help="procedural scene seed (default 0)")
    p.add_argument("--frames", type=int, default=120, help="frames per session (default 120)")
    p.add_argument("--width", type=int, default=320, help="image width in pixels (default 320)")
    p.add_argument("--height", type=int, default=240, help="image height in pixels (default 240)")
    p.add_argument("--nerf-budget-min", type=float, default=4.0, help="NeRF training budget in minutes (default 4)")
    p.add_argument("--encoder-budget-s", type=float, default=90.0, help="encoder training budget in s (default 90)")
    p.add_argument("--nerf-iterations", type=int, default=20000,
                   help="NeRF training steps at most (default 20000: the budget decides)")
    p.add_argument("--encoder-steps", type=int, default=3000,
                   help="encoder training steps at most (default 3000: the budget decides)")
    p.set_defaults(func=cmd_demo)
