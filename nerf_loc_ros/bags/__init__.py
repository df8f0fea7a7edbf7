"""ROS bags without ROS: read any ROS 1 / ROS 2 (sqlite3, MCAP) bag, a numpy TF buffer, and a bag writer.

Built on the ``rosbags`` PyPI library; message <-> numpy conversions live in
:mod:`nerf_loc_ros.conversions`. The bag dataset loader is :func:`nerf_loc_ros.datasets.bag.load_bag`.
"""

from .reader import BagError, BagMessage, BagReader, bag_info, iter_messages, load_tf_buffer, resolve_bag_paths
from .tf_buffer import (
    ConnectivityError,
    ExtrapolationError,
    TFError,
    TFTreeError,
    TransformBuffer,
    UnknownFrameError,
)
from .writer import DEFAULT_T_BASE_CAMERA, DEFAULT_T_MAP_ODOM, FRAMES, read_bag_custom_data, write_bag

__all__ = [
    "BagError",
    "BagMessage",
    "BagReader",
    "ConnectivityError",
    "DEFAULT_T_BASE_CAMERA",
    "DEFAULT_T_MAP_ODOM",
    "ExtrapolationError",
    "FRAMES",
    "TFError",
    "TFTreeError",
    "TransformBuffer",
    "UnknownFrameError",
    "bag_info",
    "iter_messages",
    "load_tf_buffer",
    "read_bag_custom_data",
    "resolve_bag_paths",
    "write_bag",
]
