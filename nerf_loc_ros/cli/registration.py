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
                   help="NeRF map of the whole capture whose surface measures overlap (captures without depth)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random rigid motions (default 0)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="torch device (default cpu)")
    p.set_defaults(func=cmd_make_pairs)


def cmd_make_pairs(args: argparse.Namespace) -> int:
    from ..datasets import load_dataset
    from ..maps import load_map
    from ..nerf import TrainConfig
    from ..registration import SamplingConfig, make_pair_scene, sample_nerf_points

    data = load_dataset(args.data, args.split)
    reference = None
    if args.reference_map is not None:
        reference = sample_nerf_points(load_map(args.reference_map).model, SamplingConfig(max_points=40000)).points
    budget = None if args.budget_min is None else 60.0 * args.budget_min
    scene = make_pair_scene(data, args.out, args.overlaps, TrainConfig(iterations=args.iterations,
                                                                       budget_seconds=budget),
                            SamplingConfig(max_points=args.points), seed=args.seed, reference_points=reference)
    for key, pair in scene.evaluation_pairs().items():
        print(f"{key} %: {pair.target.name} ({len(pair.target.views)} views) <- {pair.source.name} "
              f"({len(pair.source.views)} views), measured overlap {pair.overlap:.3f}")
    print(f"{len(scene.training_pairs())} pairs with overlap >= 10 % in {args.out}")
    return 0
