"""``nerf-loc bench``: benchmarks that print a table and write JSON (they never assert speed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .data import DATA_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (print a table, write JSON)")
    bsub = p.add_subparsers(dest="bench_command", metavar="BENCH")
    bsub.required = True

    n = bsub.add_parser("nerf", help="train a NeRF under a budget, score held-out views (PSNR, SSIM, depth)")
    n.add_argument("--data", required=True, help=DATA_HELP)
    n.add_argument("--split", default=None,
                   help="held-out split: test, query or test@N (default: test / query / test@8 by dataset)")
    n.add_argument("--budget-min", type=float, default=10.0, help="training wall-time budget in minutes (default 10)")
    n.add_argument("--iterations", type=int, default=1_000_000, help="maximum training steps (default: budget only)")
    n.add_argument("--max-views", type=int, default=None, help="evaluate at most this many held-out views")
    n.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="torch device (default cpu)")
    n.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    n.add_argument("--json", type=Path, default=None, help="write the result JSON here")
    n.add_argument("--out-dir", type=Path, default=None,
                   help="keep the map and the PNG strip here (default: strip in the current directory)")
    n.set_defaults(func=cmd_nerf)


def cmd_nerf(args: argparse.Namespace) -> int:
    from ..evaluation.nerf_bench import format_table, run_nerf_benchmark

    result = run_nerf_benchmark(
        args.data, split=args.split, budget_min=args.budget_min, iterations=args.iterations, device=args.device,
        json_path=args.json, out_dir=args.out_dir, max_views=args.max_views, seed=args.seed,
    )
    print(format_table(result))
    print(f"strip: {result['strip_png']}" + (f"\njson: {args.json}" if args.json else ""))
    return 0
