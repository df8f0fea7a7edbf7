"""``nerf-loc data``: inspect datasets (any layout ``load_dataset`` reads) and save contact sheets."""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np

log = logging.getLogger(__name__)

DATA_HELP = (
    "dataset: a path (transforms.json / Blender, LLFF, COLMAP, 7-Scenes, TUM RGB-D, ROS bag), an alias "
    "(lego, fern, redkitchen) or 'procedural[:seed=N][:frames=N][:size=WxH]'; options as ':key=value'"
)
SPLIT_HELP = "split: the layout's own (train/test, map/query, mapping/query, all<700) or test@N / train@N hold-out"


def add_data_arguments(parser: argparse.ArgumentParser, split: bool = True) -> None:
    """Add the common ``--data`` / ``--split`` options to a sub-command parser."""
    parser.add_argument("--data", required=True, help=DATA_HELP)
    if split:
        parser.add_argument("--split", default=None, help=SPLIT_HELP)


def summarize(posed) -> dict:
    """A JSON-able summary of a :class:`PosedImages` (counts, sizes, intrinsics, trajectory extent)."""
    sizes = sorted({posed.size(i) for i in range(len(posed))})
    C = posed.camera_centres()
    steps = np.linalg.norm(np.diff(C, axis=0), axis=1) if len(C) > 1 else np.zeros(1)
    out = {
        "source": posed.source,
        "frames": len(posed),
        "sizes": [f"{w}x{h}" for w, h in sizes],
        "fx_fy_cx_cy_first": [round(float(v), 3) for v in posed.K[0][[0, 1, 0, 1], [0, 1, 2, 2]]],
        "has_depth": posed.has_depth,
        "metric": posed.metric,
        "frame_id": posed.frame_id,
        "camera_box_min": C.min(0).round(3).tolist(),
        "camera_box_max": C.max(0).round(3).tolist(),
        "extent": round(posed.extent(), 4),
        "path_length": round(float(steps.sum()), 3),
        "duration_s": round(float(posed.timestamps_ns[-1] - posed.timestamps_ns[0]) * 1e-9, 3),
    }
    if posed.has_depth:
        d = np.concatenate([x[x > 0].ravel()[::17] for x in posed.depths])
        out["depth_median"] = round(float(np.median(d)), 3) if len(d) else None
    return out


def cmd_info(args: argparse.Namespace) -> int:
    from ..datasets import load_dataset

    posed = load_dataset(args.data, split=args.split)
    info = summarize(posed)
    width = max(len(k) for k in info)
    for k, v in info.items():
        print(f"{k:<{width}}  {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=2)
    if args.sheet:
        save_contact_sheet(posed, args.sheet, n=args.sheet_count)
        print(f"contact sheet: {args.sheet}")
    return 0


def save_contact_sheet(posed, path: str, n: int = 8) -> None:
    """Save a PNG grid of ``n`` evenly spaced frames (RGB, and depth below when present)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.linspace(0, len(posed) - 1, min(n, len(posed))).round().astype(int)
    rows = 2 if posed.has_depth else 1
    fig, axes = plt.subplots(rows, len(idx), figsize=(2.2 * len(idx), 2.0 * rows), squeeze=False)
    for c, i in enumerate(idx):
        axes[0, c].imshow(posed.images[i])
        axes[0, c].set_title(posed.names[i], fontsize=7)
        if rows == 2:
            axes[1, c].imshow(np.where(posed.depths[i] > 0, posed.depths[i], np.nan), cmap="turbo")
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def register(sub) -> None:
    """Register ``nerf-loc data ...``."""
    p = sub.add_parser("data", help="inspect datasets", description="Inspect datasets.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    info = dsub.add_parser("info", help="summarise a dataset (frames, intrinsics, trajectory, depth)")
    add_data_arguments(info)
    info.add_argument("--json", default=None, help="also write the summary to this JSON file")
    info.add_argument("--sheet", default=None, help="save a PNG contact sheet of frames (RGB, depth) here")
    info.add_argument("--sheet-count", type=int, default=8, help="number of frames on the contact sheet (default 8)")
    info.set_defaults(func=cmd_info)
