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

    lo = bsub.add_parser("localize", help="our localizer vs the SIFT baseline on the same query frames")
    lo.add_argument("--data", required=True, help=DATA_HELP)
    lo.add_argument("--map-split", default=None, help="split the map is built from (default: by dataset)")
    lo.add_argument("--query-split", default=None,
                    help="query split: test, query, test@N or a 7-Scenes filter such as query>=700 (default: by dataset)")
    lo.add_argument("--map", type=Path, default=None, help="use this localization map instead of building one")
    lo.add_argument("--budget-min", type=float, default=10.0, help="NeRF training budget in minutes (default 10)")
    lo.add_argument("--encoder-budget-s", type=float, default=120.0, help="encoder training budget in s (default 120)")
    lo.add_argument("--methods", default="nerf,sift", help="comma-separated methods: nerf, sift, nerf_render (nerf + NeRF re-rendering "
                    "refinement) (default nerf,sift)")
    lo.add_argument("--max-queries", type=int, default=None, help="localize at most this many query frames")
    lo.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="torch device (default cpu)")
    lo.add_argument("--json", type=Path, default=None, help="write the result JSON here")
    lo.add_argument("--out-dir", type=Path, default=None, help="keep the built map and the error-CDF plot here")
    lo.set_defaults(func=cmd_localize)

    rg = bsub.add_parser("register", help="DeSC, rendered views and FPFH + RANSAC + ICP on the evaluation pairs of "
                         "pair scenes")
    rg.add_argument("--pairs", type=Path, nargs="+", required=True,
                    help="pair scene directories (`nerf-loc make-pairs`); held out from DeSC training")
    rg.add_argument("--methods", default="desc,fpfh,views",
                    help="comma-separated: desc (DeSC), fpfh (FPFH + RANSAC + ICP), views (rendered-view matching) "
                    "(default desc,fpfh,views)")
    rg.add_argument("--weights", type=Path, default=None, help="DeSC weights (default: the ones shipped)")
    rg.add_argument("--no-resample", action="store_true",
                    help="use the clouds cached in the pair scenes instead of sampling the maps (times exclude sampling)")
    rg.add_argument("--json", type=Path, default=None, help="write the result JSON here")
    rg.add_argument("--png", type=Path, default=Path("register_pairs.png"),
                    help="top views of every registration, pairs x methods (default register_pairs.png)")
    rg.set_defaults(func=cmd_register)

    mg = bsub.add_parser("merge", help="localization after a merge: split a capture into two submaps, merge the second "
                         "into a global map made from the first, localize its queries against it alone and the global map")
    mg.add_argument("--data", required=True, help=DATA_HELP)
    mg.add_argument("--map-split", default=None, help="split the two submaps are cut from (default: by dataset)")
    mg.add_argument("--query-split", default=None, help="query split (default: by dataset); only the frames nearest "
                    "the second submap's views are localized")
    mg.add_argument("--overlap", type=float, default=0.8, help="surface overlap of the two submaps (default 0.8)")
    mg.add_argument("--budget-min", type=float, default=5.0, help="NeRF training budget per submap in minutes "
                    "(default 5)")
    mg.add_argument("--iterations", type=int, default=1_000_000, help="maximum NeRF steps per submap (default: budget "
                    "only)")
    mg.add_argument("--encoder-budget-s", type=float, default=120.0, help="encoder training budget per submap in s "
                    "(default 120)")
    mg.add_argument("--method", default=None, help="registration method: views, desc, fpfh (default views)")
    mg.add_argument("--max-queries", type=int, default=None, help="localize at most this many query frames")
    mg.add_argument("--seed", type=int, default=0, help="seeds the submap motions and NeRFs (default 0)")
    mg.add_argument("--out-dir", type=Path, default=None, help="keep the submaps and the global map here (default: "
                    "a temporary directory; an existing pair scene there is resumed)")
    mg.add_argument("--json", type=Path, default=None, help="write the result JSON here")
    mg.set_defaults(func=cmd_merge)


def cmd_nerf(args: argparse.Namespace) -> int:
    from ..evaluation.nerf_bench import format_table, run_nerf_benchmark

    result = run_nerf_benchmark(
        args.data, split=args.split, budget_min=args.budget_min, iterations=args.iterations, device=args.device,
        json_path=args.json, out_dir=args.out_dir, max_views=args.max_views, seed=args.seed,
    )
    print(format_table(result))
    print(f"strip: {result['strip_png']}" + (f"\njson: {args.json}" if args.json else ""))
    return 0


def cmd_localize(args: argparse.Namespace) -> int:
    from ..evaluation.localize_bench import format_localize_table, run_localize_benchmark

    result = run_localize_benchmark(
        args.data, map_split=args.map_split, query_split=args.query_split, map_path=args.map,
        budget_min=args.budget_min, encoder_budget_s=args.encoder_budget_s,
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()), max_queries=args.max_queries,
        json_path=args.json, out_dir=args.out_dir, device=args.device,
    )
    print(format_localize_table(result))
    if args.json:
        print(f"json: {args.json}")
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from ..evaluation.register_bench import format_register_table, run_register_benchmark

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    result = run_register_benchmark(args.pairs, methods, weights=args.weights, resample=not args.no_resample,
                                    json_path=args.json, png_path=args.png)
    print(format_register_table(result))
    print(f"figure: {args.png}")
    if args.json:
        print(f"json: {args.json}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from ..evaluation.merge_bench import format_merge_table, run_merge_benchmark

    result = run_merge_benchmark(
        args.data, out_dir=args.out_dir, map_split=args.map_split, query_split=args.query_split, overlap=args.overlap,
        budget_min=args.budget_min, iterations=args.iterations, encoder_budget_s=args.encoder_budget_s,
        method=args.method, seed=args.seed, max_queries=args.max_queries, json_path=args.json,
    )
    print(format_merge_table(result))
    if args.json:
        print(f"json: {args.json}")
    return 0
