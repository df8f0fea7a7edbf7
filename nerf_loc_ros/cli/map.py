"""``nerf-loc map``: build a NeRF map from a dataset, render it from a pose, show its manifest."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from .data import add_data_arguments

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="build, render and inspect NeRF maps")
    msub = p.add_subparsers(dest="map_command", metavar="ACTION")
    msub.required = True

    b = msub.add_parser("build", help="train a NeRF map from a dataset and save the map directory")
    add_data_arguments(b)
    b.add_argument("--out", required=True, type=Path, help="map directory to write (atomically)")
    b.add_argument("--budget-min", type=float, default=10.0, help="wall-time training budget in minutes (default 10)")
    b.add_argument("--iterations", type=int, default=1_000_000, help="maximum training steps (default: budget only)")
    b.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="torch device (default cpu)")
    b.add_argument("--name", default=None, help="map name in the manifest (default: directory name)")
    b.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    b.add_argument("--checkpoint", type=Path, default=None,
                   help="checkpoint directory: resume from it if present, save to it every 500 steps")
    b.add_argument("--overwrite", action="store_true", help="replace an existing map directory")
    _add_localization_arguments(b)
    b.add_argument("--no-localization", action="store_true",
                   help="only the NeRF (no keyframe caches or encoder; the map cannot localize)")
    b.set_defaults(func=cmd_build)

    a = msub.add_parser("add-localization",
                        help="add keyframe caches and a trained encoder to a NeRF map (rewrites it atomically)")
    a.add_argument("--map", required=True, type=Path, help="map directory (NeRF already trained)")
    add_data_arguments(a)
    _add_localization_arguments(a)
    a.add_argument("--out", type=Path, default=None, help="write here instead of replacing --map")
    a.set_defaults(func=cmd_add_localization)

    r = msub.add_parser("render", help="render RGB and depth (side by side) from a camera pose")
    r.add_argument("--map", required=True, type=Path, help="map directory")
    r.add_argument("--pose", required=True, type=Path,
                   help="T_world_cam (OpenCV camera axes): a 4x4 matrix text file or one line 'tx ty tz qx qy qz qw'")
    r.add_argument("--K", required=True, help="intrinsics 'fx,fy,cx,cy' in pixels")
    r.add_argument("--size", default=None, help="image size WxH (default 2*cx x 2*cy)")
    r.add_argument("--out", required=True, type=Path, help="output PNG (RGB | coloured depth)")
    r.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="torch device (default cpu)")
    r.set_defaults(func=cmd_render)

    i = msub.add_parser("info", help="validate a map and print its manifest summary")
    i.add_argument("map", type=Path, help="map directory")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=cmd_info)


def _add_localization_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-keyframes", type=int, default=150,
                   help="keyframes chosen by farthest-pose sampling (default 150; all images if fewer)")
    p.add_argument("--encoder-budget-s", type=float, default=120.0,
                   help="wall-time budget for training the scene encoder in seconds (default 120)")
    p.add_argument("--merge-voxel", type=float, default=None,
                   help="keyframe observations in one voxel of this fraction of the scene-box diagonal become one "
                        "map point (default 0: one point per observation, the most precise; e.g. 0.003 makes maps "
                        "about 2.5x smaller)")


def _localization_configs(args: argparse.Namespace):
    from ..localization import EncoderTrainConfig, MappingConfig

    mapping = MappingConfig(max_keyframes=args.max_keyframes)
    if args.merge_voxel is not None:
        mapping = replace(mapping, merge_voxel=args.merge_voxel)
    return mapping, EncoderTrainConfig(budget_s=args.encoder_budget_s, seed=getattr(args, "seed", 0))


def cmd_build(args: argparse.Namespace) -> int:
    from ..datasets import load_dataset
    from ..maps import build_map, map_bytes
    from ..nerf import TrainConfig

    if args.device == "cuda":
        _require_cuda()
    if args.out.exists() and not args.overwrite:
        raise FileExistsError(f"{args.out}: already exists (use --overwrite)")
    data = load_dataset(args.data, args.split)
    cfg = TrainConfig(budget_seconds=args.budget_min * 60, iterations=args.iterations, seed=args.seed,
                      checkpoint_every=500 if args.checkpoint else 0)
    if args.no_localization:
        m = build_map(data, args.out, cfg, device=args.device, name=args.name, overwrite=args.overwrite,
                      checkpoint_dir=args.checkpoint)
    else:
        from ..localization import build_localization_map

        mapping, enc = _localization_configs(args)
        loc_map, summary = build_localization_map(
            data, args.out, cfg, device=args.device, mapping=mapping, encoder_train=enc, name=args.name,
            overwrite=args.overwrite, checkpoint_dir=args.checkpoint)
        m = loc_map.nerf_map
        e = summary["encoder_training"]
        print(f"localization: {len(loc_map.keyframes)} keyframes, {loc_map.keyframes.num_points} cached points, "
              f"encoder {e['steps']} steps in {e['seconds']} s (match accuracy on training views {e['mnn_accuracy']:.2f})")
    t = m.training
    print(f"map {args.out}: {t['iterations']} iterations in {t['seconds']:.0f} s, train PSNR {t['train_psnr']:.2f} dB, "
          f"{map_bytes(args.out) / 1e6:.2f} MB")
    return 0


def cmd_add_localization(args: argparse.Namespace) -> int:
    from ..datasets import load_dataset
    from ..localization import add_localization, save_localization_map
    from ..maps import load_map, map_bytes

    nerf_map = load_map(args.map)
    data = load_dataset(args.data, args.split)
    mapping, enc = _localization_configs(args)
    loc_map, summary = add_localization(nerf_map, data, mapping, train=enc)
    out = args.out or args.map
    save_localization_map(loc_map, out, overwrite=True, extra=summary)
    e = summary["encoder_training"]
    print(f"map {out}: {len(loc_map.keyframes)} keyframes, {loc_map.keyframes.num_points} cached points, encoder "
          f"{e['steps']} steps in {e['seconds']} s, {map_bytes(out) / 1e6:.2f} MB")
    return 0


def parse_pose_file(path: Path) -> np.ndarray:
    """Read ``T_world_cam`` from a 4x4 text matrix or one line ``tx ty tz qx qy qz qw``."""
    from ..geometry import check_rigid, pose_from_translation_quaternion

    try:
        vals = np.loadtxt(path, dtype=np.float64, ndmin=1).reshape(-1)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read a pose ({exc})") from exc
    if vals.size == 16:
        return check_rigid(vals.reshape(4, 4), what=str(path))
    if vals.size == 7:
        return pose_from_translation_quaternion(vals[:3], vals[3:])
    raise ValueError(f"{path}: expected 16 numbers (4x4) or 7 (tx ty tz qx qy qz qw), got {vals.size}")


def parse_K(text: str) -> np.ndarray:
    """``'fx,fy,cx,cy'`` -> 3x3 K."""
    try:
        fx, fy, cx, cy = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise ValueError(f"--K must be 'fx,fy,cx,cy', got '{text}'") from exc
    from ..geometry import check_intrinsics

    return check_intrinsics(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]), what="--K")


def cmd_render(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..evaluation import colorize_depth
    from ..maps import load_map

    if args.device == "cuda":
        _require_cuda()
    K = parse_K(args.K)
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
        except ValueError as exc:
            raise ValueError(f"--size must be WxH, got '{args.size}'") from exc
    else:
        w, h = int(round(2 * K[0, 2])), int(round(2 * K[1, 2]))
    T = parse_pose_file(args.pose)
    m = load_map(args.map, device=args.device)
    r = m.model.render_image(K, T, w, h)
    rgb = (np.clip(r["rgb"], 0, 1) * 255).astype(np.uint8)
    depth = colorize_depth(r["depth"] * (r["opacity"] > 0.5))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([rgb, depth], axis=1)).save(args.out)
    hit = r["opacity"] > 0.5
    med = float(np.median(r["depth"][hit])) if hit.any() else float("nan")
    print(f"wrote {args.out} ({w}x{h} RGB | depth), median depth {med:.3f} {m.units}, coverage {hit.mean():.1%}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..maps import map_info

    info = map_info(args.map)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"map {args.map}: '{info.get('name')}' frame {info.get('frame_id')}, units {info.get('units')}, "
          f"format v{info.get('format_version')}, created {info.get('created')}")
    box = info.get("scene_box") or {}
    print(f"  scene box lo={box.get('lo')} hi={box.get('hi')} contract={box.get('contract')}")
    t = info.get("training") or {}
    print(f"  training: {t.get('iterations')} iterations, {t.get('seconds')} s, train PSNR {t.get('train_psnr')} dB")
    for name, size in info["components"].items():
        print(f"  {name:<22} {size / 1e6:8.2f} MB")
    print(f"  total {info['bytes'] / 1e6:.2f} MB (checksums verified)")
    return 0


def _require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise ValueError("--device cuda requested but torch sees no CUDA device")
