"""``nerf-loc make-pairs`` / ``train-desc`` / ``register`` / ``merge``: NeRF-to-NeRF registration and map merging."""

from __future__ import annotations

import argparse
from pathlib import Path

from .data import DATA_HELP, SPLIT_HELP


def _percent_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) / 100 for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated percentages, got {text!r}") from None
    if not values or not all(0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"overlaps must be percentages in (0, 100), got {text!r}")
    return values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-pairs", help="train NeRF submaps of one capture at controlled overlaps (registration "
                       "training / evaluation pairs)")
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--split", default=None, help=SPLIT_HELP)
    p.add_argument("--out", type=Path, required=True, help="pair scene directory (resumes when it exists)")
    p.add_argument("--overlaps", type=_percent_list, default=(0.3, 0.5, 0.8),
                   help="target surface overlaps in percent, comma-separated (default 30,50,80)")
    p.add_argument("--iterations", type=int, default=300, help="NeRF training steps per submap (default 300)")
    p.add_argument("--budget-min", type=float, default=None,
                   help="NeRF training wall-time budget per submap in minutes (default: steps only)")
    p.add_argument("--points", type=int, default=20000, help="dense points sampled per submap (default 20000)")
    p.add_argument("--reference-map", type=Path, default=None,
                   help="NeRF map of the whole capture whose surface measures overlap (captures without depth); "
                        "a surface point counts as seen only by cameras on its free-space side")
    p.add_argument("--max-incidence-deg", type=float, default=75.0,
                   help="with --reference-map, a surface point counts as seen only by cameras whose ray meets its "
                        "normal at less than this angle (default 75; 90 counts grazing views)")
    p.add_argument("--order", default="capture", choices=("capture", "sweep"),
                   help="views are split into contiguous runs of the capture order (default) or of their order along "
                        "the camera centres' widest spread (object-centric sets shot in random order, e.g. lego)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random rigid motions (default 0)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="torch device (default cpu)")
    p.set_defaults(func=cmd_make_pairs)

    t = sub.add_parser("train-desc", help="train the DeSC registration network on pair scenes (resumable)")
    t.add_argument("--pairs", type=Path, nargs="+", required=True, help="training pair scene directories")
    t.add_argument("--eval-pairs", type=Path, nargs="*", default=[],
                   help="held-out pair scene directories scored at the end (other scenes / seeds than --pairs)")
    t.add_argument("--out", type=Path, required=True,
                   help="checkpoint directory (resumes when it holds one); desc.safetensors and MODEL_CARD.md go here")
    t.add_argument("--steps", type=int, default=3000, help="total training steps (default 3000)")
    t.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    t.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (default 200)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    t.set_defaults(func=cmd_train_desc)

    r = sub.add_parser("register", help="register two NeRF maps: T_target_source (DeSC or the FPFH baseline)")
    r.add_argument("--source", type=Path, required=True, help="map to align (its frame is the source frame)")
    r.add_argument("--target", type=Path, required=True, help="reference map")
    _add_registrar_arguments(r)
    r.add_argument("--json", type=Path, default=None, help="write the result JSON here")
    r.set_defaults(func=cmd_register)

    m = sub.add_parser("merge", help="register a submap against a global map and add it (atomic)")
    m.add_argument("--global", dest="global_map", type=Path, required=True,
                   help="global map directory (created from the submap with --create)")
    m.add_argument("--submap", type=Path, required=True, help="NeRF map directory to merge")
    m.add_argument("--id", default=None, help="submap id (default: the next free number)")
    m.add_argument("--create", action="store_true", help="start a new global map whose frame is this submap's")
    m.add_argument("--force", action="store_true", help="merge an AMBIGUOUS registration too (never a FAILED one)")
    _add_registrar_arguments(m)
    m.set_defaults(func=cmd_merge)


def _add_registrar_arguments(p: argparse.ArgumentParser) -> None:
    from ..registration.base import DEFAULT_REGISTRATION_METHOD, REGISTRATION_METHODS

    p.add_argument("--method", default=DEFAULT_REGISTRATION_METHOD, choices=REGISTRATION_METHODS,
                   help="views (matching views rendered from both NeRFs, default), desc (learned DeSC) or fpfh "
                   "(Open3D FPFH + RANSAC + ICP baseline)")
    p.add_argument("--weights", type=Path, default=None, help="DeSC weights (default: the ones shipped)")
    p.add_argument("--init", type=Path, default=None,
                   help="text file with an initial guess, a 4x4 matrix or tx ty tz qx qy qz qw (register: T_target_source; "
                   "merge: T_global_submap)")


def _registrar(args: argparse.Namespace):
    from ..registration import make_registrar

    return make_registrar(args.method, args.weights)


def _read_init(path: Path | None):
    from .map import parse_pose_file

    return None if path is None else parse_pose_file(path)


def _result_dict(res) -> dict:
    from ..evaluation.pose_metrics import json_safe  # JSON has no NaN

    return json_safe({
        "status": res.status.value, "T_target_source": None if res.T_target_source is None
        else res.T_target_source.tolist(), "fitness": res.fitness, "inlier_rmse": res.inlier_rmse,
        "correspondences": res.correspondences, "inliers": res.inliers, "confidence": res.confidence,
        "free_space_violation": res.free_space_violation, "grey_correlation": res.grey_correlation,
        "reason": res.reason, "timings_ms": {k: round(v, 1) for k, v in res.timings_ms.items()}})


def cmd_train_desc(args: argparse.Namespace) -> int:
    from ..registration.trainer import DescTrainConfig, train_desc, write_trained_weights

    cfg = DescTrainConfig(steps=args.steps, lr=args.lr, checkpoint_every=args.checkpoint_every, seed=args.seed,
                          threads=args.threads)
    net, summary = train_desc(args.pairs, args.out, cfg)
    path, card = write_trained_weights(net, summary, args.out, args.eval_pairs)
    print(card)
    print(f"weights: {path}")
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    import json

    from ..maps import load_map

    res = _registrar(args).register_maps(load_map(args.source), load_map(args.target), _read_init(args.init))
    doc = _result_dict(res)
    print(json.dumps(doc, indent=2))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2))
    return 0 if res.ok else 1


def cmd_merge(args: argparse.Namespace) -> int:
    import logging

    from ..maps import create_global_map, load_map
    from ..registration.merge import merge_submap

    if args.create:
        load_map(args.submap)  # validate before creating anything
        g = create_global_map(args.global_map, args.submap, submap_id=args.id or "0")
        print(f"created global map {args.global_map} with submap {g.submaps[0].id}")
        return 0
    out = merge_submap(args.global_map, args.submap, _registrar(args), _read_init(args.init), force=args.force,
                       submap_id=args.id)
    res = out.result
    if not out.merged:
        logging.getLogger(__name__).error("not merged: %s against submap %s (%s)%s", res.status.value,
                                          out.target_id, res.reason or f"{res.inliers} inliers",
                                          "; --force merges an AMBIGUOUS result" if res.status.value == "AMBIGUOUS"
                                          else "")
        return 1
    print(f"merged {args.submap} into {args.global_map} as submap {out.global_map.submaps[-1].id} "
          f"(against {out.target_id}: {res.status.value}, {res.inliers} inliers)")
    print("T_global_submap:\n" + "\n".join(" ".join(f"{v: .6f}" for v in row) for row in out.T_global_submap))
    return 0


def cmd_make_pairs(args: argparse.Namespace) -> int:
    from ..datasets import load_dataset
    from ..maps import load_map
    from ..nerf import TrainConfig
    from ..registration import SamplingConfig, make_pair_scene, sample_map

    data = load_dataset(args.data, args.split)
    reference = normals = None
    if args.reference_map is not None:
        cloud = sample_map(load_map(args.reference_map), SamplingConfig(max_points=40000))
        reference, normals = cloud.points, cloud.normals
    budget = None if args.budget_min is None else 60.0 * args.budget_min
    scene = make_pair_scene(data, args.out, args.overlaps, TrainConfig(iterations=args.iterations,
                                                                       budget_seconds=budget),
                            SamplingConfig(max_points=args.points), seed=args.seed, reference_points=reference,
                            order=args.order, reference_normals=normals, max_incidence_deg=args.max_incidence_deg)
    for key, pair in scene.evaluation_pairs().items():
        print(f"{key} %: {pair.target.name} ({len(pair.target.views)} views) <- {pair.source.name} "
              f"({len(pair.source.views)} views), measured overlap {pair.overlap:.3f}")
    print(f"{len(scene.training_pairs())} pairs with overlap >= 10 % in {args.out}")
    return 0
