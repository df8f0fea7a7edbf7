"""``nerf-loc bag``: write a dataset as a ROS 2 bag (``make``) and summarise any bag (``info``), without ROS."""

from __future__ import annotations

import argparse
import json
import logging
import math

log = logging.getLogger(__name__)

_RAW_ENCODINGS = ("rgb8", "bgr8", "mono8", "rgba8", "bgra8")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bag`` command (``make``, ``info``) to the top-level sub-parsers."""
    p = subparsers.add_parser(
        "bag",
        help="write datasets as ROS 2 bags and inspect bags (no ROS needed)",
        description="Write a dataset as a ROS 2 bag (REP-105 TF tree, camera topics, ground truth) or summarise a bag.",
    )
    sub = p.add_subparsers(dest="bag_command", metavar="ACTION")
    sub.required = True

    mk = sub.add_parser(
        "make",
        help="write a dataset as a ROS 2 bag (mcap or sqlite3)",
        description=(
            "Write images, camera_info, optional depth, ground truth (/ground_truth/pose, PoseStamped in map), "
            "odometry (/odom and /tf odom->base_link) and /tf_static base_link->camera_link->camera_optical_frame. "
            "map->odom is not written (a localizer publishes it); its true value is stored in metadata.yaml "
            "custom_data."
        ),
    )
    mk.add_argument(
        "--data",
        required=True,
        metavar="DATASET",
        help="dataset: a directory (7-Scenes, transforms.json, LLFF, ...) or "
        "'procedural[:seed=N][:session=mapping|query]'",
    )
    mk.add_argument("--split", default=None, help="dataset split to write, if the dataset has splits (e.g. map, query)")
    mk.add_argument(
        "--out", required=True, metavar="BAG", help="output bag directory (must not exist unless --overwrite)"
    )
    mk.add_argument(
        "--format", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage plugin (default: mcap)"
    )
    mk.add_argument(
        "--encoding", choices=_RAW_ENCODINGS, default="rgb8", help="raw sensor_msgs/Image encoding (default: rgb8)"
    )
    mk.add_argument(
        "--compressed",
        choices=("jpeg", "png"),
        default=None,
        help="write sensor_msgs/CompressedImage on <topic>/compressed instead of raw images (overrides --encoding)",
    )
    mk.add_argument(
        "--jpeg-quality", type=int, default=95, help="JPEG quality 1-100 with --compressed jpeg (default: 95)"
    )
    mk.add_argument("--max-frames", type=int, default=None, metavar="N", help="write only the first N frames")
    mk.add_argument(
        "--odom-drift",
        type=float,
        nargs=2,
        default=None,
        metavar=("SIGMA_T_M", "SIGMA_R_DEG"),
        help="random-walk odometry drift per frame: translation sigma (metres) and rotation sigma (degrees)",
    )
    mk.add_argument("--seed", type=int, default=0, help="random seed of the odometry drift (default: 0)")
    mk.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="HZ",
        help="re-time frames at HZ instead of using the dataset stamps",
    )
    mk.add_argument("--no-depth", action="store_true", help="do not write depth even if the dataset has it")
    mk.add_argument("--overwrite", action="store_true", help="replace an existing bag directory at --out")
    mk.set_defaults(func=cmd_make)

    inf = sub.add_parser(
        "info", help="print topics, types, counts and duration of a bag (.bag, .db3, .mcap or directory)"
    )
    inf.add_argument("bag", metavar="BAG", help="ROS 1 .bag file, rosbag2 directory, or bare .db3/.mcap file")
    inf.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    inf.set_defaults(func=cmd_info)


def _load_dataset(spec: str, split: str | None):
    try:
        from nerf_loc_ros.datasets import load_dataset
    except ImportError as exc:  # the dataset registry is provided by nerf_loc_ros.datasets
        raise ValueError(f"dataset loading is not available ({exc})") from exc
    return load_dataset(spec, split=split)


def cmd_make(args: argparse.Namespace) -> int:
    """``nerf-loc bag make``: load ``--data`` and write it with :func:`nerf_loc_ros.bags.write_bag`."""
    import numpy as np

    from nerf_loc_ros.bags import bag_info, write_bag

    posed = _load_dataset(args.data, args.split)
    if args.max_frames is not None:
        if args.max_frames <= 0:
            raise ValueError("--max-frames must be positive")
        posed = posed.subset(np.arange(min(args.max_frames, len(posed))))
    if args.no_depth and posed.depths is not None:
        from dataclasses import replace

        posed = replace(posed, depths=None)
    drift = None
    if args.odom_drift is not None:
        drift = (float(args.odom_drift[0]), math.radians(float(args.odom_drift[1])))
    out = write_bag(
        posed,
        args.out,
        storage=args.format,
        encoding=args.compressed or args.encoding,
        odom_drift=drift,
        seed=args.seed,
        jpeg_quality=args.jpeg_quality,
        rate_hz=args.rate,
        overwrite=args.overwrite,
        progress=True,
    )
    print_info(bag_info(out))
    return 0


def print_info(info: dict) -> None:
    """Print a bag summary (from :func:`nerf_loc_ros.bags.bag_info`) as a table."""
    print(f"bag:       {info['path']}")
    print(f"storage:   {info['storage']}")
    print(f"duration:  {info['duration_s']:.3f} s  (receive times {info['start_ns']} .. {info['end_ns']} ns)")
    print(f"messages:  {info['message_count']}")
    rows = [(t, v["type"], str(v["count"])) for t, v in info["topics"].items()]
    w_topic = max([len("topic")] + [len(r[0]) for r in rows])
    w_type = max([len("type")] + [len(r[1]) for r in rows])
    print(f"{'topic':<{w_topic}}  {'type':<{w_type}}  {'count':>7}")
    print(f"{'-' * w_topic}  {'-' * w_type}  {'-' * 7}")
    for topic, typ, count in rows:
        print(f"{topic:<{w_topic}}  {typ:<{w_type}}  {count:>7}")


def cmd_info(args: argparse.Namespace) -> int:
    """``nerf-loc bag info``: print the topics/types/counts/duration of a bag."""
    from nerf_loc_ros.bags import bag_info

    info = bag_info(args.bag)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print_info(info)
    return 0
