"""Load posed images from a ROS bag (ROS 1 ``.bag``, ROS 2 sqlite3 / MCAP) without ROS.

Pairing rules (all times are header stamps, int ns):

- **image**: ``sensor_msgs/Image`` (rgb8/bgr8/rgba8/bgra8/mono8) or ``CompressedImage`` (jpeg/png);
  a zero header stamp falls back to the receive time. Duplicate stamps keep the first image.
- **intrinsics**: the ``CameraInfo`` nearest in time to the image (calibration is treated as
  static, so there is no tolerance). Its size must match the image. K is converted to the core
  pixel convention (:func:`nerf_loc_ros.conversions.K_ros_to_core`). With distortion, images (and
  depth, nearest-neighbour) are undistorted keeping K (``undistort=True``), or rejected
  (``undistort=False``: the core is pinhole-only, DESIGN.md section 2).
- **ground truth** (camera pose ``T_world_cam``, OpenCV = optical axes):
  from ``gt_topic`` (PoseStamped / PoseWithCovarianceStamped / Odometry / TransformStamped):
  interpolated between the two samples around the image stamp (linear + SLERP) when they are at most
  ``gt_max_gap_ns`` apart, else the nearest sample within ``gt_tolerance_ns``. The message pose is the
  pose of ``gt_frame`` (default: Odometry/TransformStamped ``child_frame_id``, else the image's
  ``frame_id``); when that is not the image frame, ``T_gtframe_cam`` comes from the bag's TF.
  Or from TF: ``gt_tf = (world_frame, camera_frame)`` looks up ``T_world_camera`` in ``/tf`` +
  ``/tf_static`` (camera_frame default: the image ``frame_id``; it must be an *optical* frame).
  Frames without ground truth are dropped (count logged, ``extras["dropped_no_gt"]``).
- **no ground truth** (neither ``gt_topic`` nor ``gt_tf``): every pose is the identity placeholder,
  ``extras["has_gt"] = False`` and ``frame_id`` is the camera frame. Do not evaluate against them.
- **depth** (optional ``depth_topic``: 16UC1 / 32FC1 Image or compressedDepth): nearest depth
  within ``depth_tolerance_ns`` of the image stamp; missing depth becomes an all-zero (invalid) map.
- **order**: out-of-order image stamps (in bag order) are **sorted** by stamp with a warning
  (``extras["out_of_order"]``). ``max_frames`` takes the first frames with ground truth in bag order.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..bags.reader import BagError, BagReader, load_tf_buffer, TF_TOPICS
from ..bags.tf_buffer import ExtrapolationError, TFError, TransformBuffer
from ..bags.writer import read_bag_custom_data
from ..conversions import (
    UnusableCameraInfoError,
    camera_info_to_intrinsics,
    compressed_depth_msg_to_metres,
    depth_msg_to_metres,
    stamp_to_ns,
    stamped_pose_msg_to_matrix,
)
from ..conversions.camera_frame import CameraFrameConverter
from ..geometry.undistort import Undistorter
from .posed_images import DatasetError, PosedImages

__all__ = ["load_bag"]

log = logging.getLogger(__name__)

_IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
_GT_TYPES = (
    "geometry_msgs/msg/PoseStamped",
    "geometry_msgs/msg/PoseWithCovarianceStamped",
    "nav_msgs/msg/Odometry",
    "geometry_msgs/msg/TransformStamped",
)
_GT_BODY = "__gt_body__"


def _pick_camera_info(bag: BagReader, image_topic: str, requested: str | None) -> str:
    if requested is not None:
        rec = bag.resolve_topic(requested)
        if rec is None:
            raise BagError(f"bag '{bag.path}' has no camera_info topic '{requested}'; topics: {sorted(bag.topics)}")
        return rec
    infos = bag.topics_of_type("sensor_msgs/msg/CameraInfo")
    if len(infos) == 1:
        return infos[0]
    base = "/" + image_topic.strip("/")
    if base.endswith("/compressed") or base.endswith("/compressedDepth"):
        base = base.rsplit("/", 1)[0]
    sibling = base.rsplit("/", 1)[0] + "/camera_info"
    rec = bag.resolve_topic(sibling)
    if rec is not None and rec in infos:
        return rec
    if not infos:
        raise BagError(f"bag '{bag.path}' has no sensor_msgs/CameraInfo topic: intrinsics are required")
    raise BagError(f"bag '{bag.path}': several CameraInfo topics {infos}; pass camera_info_topic")


def _pose_of_frame(tf: TransformBuffer, world: str, frame: str, stamp: int, tol: int) -> np.ndarray | None:
    """``T_world_frame`` from TF, None when out of time range; configuration errors raise."""
    try:
        return tf.lookup(world, frame, stamp, tol)
    except ExtrapolationError:
        return None
    except TFError as exc:
        raise DatasetError(f"ground truth from TF: {exc}") from exc


def load_bag(
    path: str | Path,
    image_topic: str | None = None,
    camera_info_topic: str | None = None,
    gt_topic: str | None = None,
    gt_tf: tuple[str, str | None] | None = None,
    depth_topic: str | None = None,
    max_frames: int | None = None,
    undistort: bool = True,
    undistort_alpha: float | None = None,
    gt_frame: str | None = None,
    gt_tolerance_ns: int = 20_000_000,
    gt_max_gap_ns: int = 200_000_000,
    tf_tolerance_ns: int = 20_000_000,
    depth_tolerance_ns: int = 5_000_000,
) -> PosedImages:
    """Posed images from a bag (see the module docstring for every pairing rule).

    Args:
        path: ``.bag`` file, rosbag2 directory, or bare ``.db3``/``.mcap`` file.
        image_topic: ``sensor_msgs/Image`` or ``CompressedImage`` topic; None: the bag's only
            non-depth image topic.
        camera_info_topic: default: the bag's only CameraInfo topic, else the image's sibling ``camera_info``.
        gt_topic: stamped pose topic with the ground truth (pose of ``gt_frame`` in the world frame).
        gt_tf: ``(world_frame, camera_optical_frame or None)`` to take ground truth from TF instead.
        depth_topic: optional depth topic (16UC1 millimetres / 32FC1 metres / compressedDepth).
        max_frames: stop after this many frames with ground truth (bag order).
        undistort: undistort images with non-zero distortion (False: reject them).
        undistort_alpha: None keeps K; 0..1 uses OpenCV's optimal new camera matrix.
        gt_tolerance_ns, gt_max_gap_ns: GT matching (nearest within tolerance / interpolation gap), ns.
        tf_tolerance_ns: extrapolation tolerance for TF lookups, ns.
        depth_tolerance_ns: max |depth stamp - image stamp|, ns.
    Returns: :class:`PosedImages` with ``T_world_cam`` (OpenCV axes, metres), K (core convention),
        ``timestamps_ns`` = image header stamps, ``names`` = ``topic@stamp``.
    """
    if gt_topic is not None and gt_tf is not None:
        raise ValueError("pass either gt_topic or gt_tf, not both")
    path = Path(path)
    with BagReader(path) as bag:
        images = sorted(t for t, (mt, _) in bag.topics.items() if mt in _IMAGE_TYPES)
        if image_topic is None:
            colour = [t for t in images if "depth" not in t.lower()]
            if len(colour) != 1:
                raise BagError(f"bag '{path}': pass image_topic (image topics: {images})")
            image_topic = colour[0]
        img_topic = bag.resolve_topic(image_topic)
        if img_topic is None:
            raise BagError(f"bag '{path}' has no topic '{image_topic}'; image topics: {images}")
        img_type = bag.topics[img_topic][0]
        if img_type not in _IMAGE_TYPES:
            raise BagError(f"'{img_topic}' in '{path}' is {img_type}, not sensor_msgs/Image or CompressedImage")
        info_topic = _pick_camera_info(bag, img_topic, camera_info_topic)
        gt_rec = None
        if gt_topic is not None:
            gt_rec = bag.resolve_topic(gt_topic)
            if gt_rec is None:
                raise BagError(f"bag '{path}' has no ground-truth topic '{gt_topic}'; topics: {sorted(bag.topics)}")
            if bag.topics[gt_rec][0] not in _GT_TYPES:
                raise BagError(f"ground-truth topic '{gt_rec}' is {bag.topics[gt_rec][0]}; expected one of {_GT_TYPES}")

        # ---- pass 1: calibration, ground truth, TF (small messages)
        info_stamps: list[int] = []
        infos: list[Any] = []
        gt_buf = TransformBuffer(max_gap_ns=gt_max_gap_ns)
        world, body = None, gt_frame
        tf_msgs = []
        topics1 = [info_topic] + ([gt_rec] if gt_rec else []) + list(TF_TOPICS)
        for m in bag.messages(topics1, missing_ok=True):
            if m.topic == info_topic:
                info_stamps.append(stamp_to_ns(m.msg.header.stamp))
                infos.append(camera_info_to_intrinsics(m.msg))
            elif m.topic == gt_rec:
                sp = stamped_pose_msg_to_matrix(m.msg)
                if world is None:
                    world = sp.frame_id
                elif sp.frame_id != world:
                    raise DatasetError(f"'{gt_rec}' changes frame from '{world}' to '{sp.frame_id}' at {sp.stamp_ns}")
                if body is None and sp.child_frame_id:
                    body = sp.child_frame_id
                gt_buf.add(sp.T, "world", _GT_BODY, sp.stamp_ns)
            else:
                tf_msgs.append(m)
        tf_buf = load_tf_buffer(messages=tf_msgs)
        if not infos:
            raise BagError(f"bag '{path}': no message on camera_info topic '{info_topic}'")
        order = np.argsort(info_stamps, kind="stable")
        info_st = np.asarray(info_stamps, dtype=np.int64)[order]
        infos = [infos[i] for i in order]
        if gt_tf is not None:
            world = gt_tf[0]
        if gt_rec is not None and not len(gt_buf):
            raise DatasetError(f"ground-truth topic '{gt_rec}' in '{path}' has no messages")

        # ---- pass 2: images
        frames: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray, Undistorter]] = []
        seen: set[int] = set()
        convert = CameraFrameConverter(undistort=undistort, alpha=undistort_alpha)
        dropped = dup = zero_stamp = 0
        cam_frame = None
        distortion: dict | None = None
        for m in bag.messages([img_topic]):
            stamp = stamp_to_ns(m.msg.header.stamp)
            if stamp == 0:
                stamp, zero_stamp = m.recv_ns, zero_stamp + 1
            if stamp in seen:
                dup += 1
                continue
            seen.add(stamp)
            frame_id = str(m.msg.header.frame_id).lstrip("/")
            cam_frame = cam_frame or frame_id
            T = np.eye(4)
            if gt_rec is not None:
                try:
                    T = gt_buf.lookup("world", _GT_BODY, stamp, gt_tolerance_ns)
                except ExtrapolationError:
                    dropped += 1
                    continue
                if body and body != frame_id:
                    T_body_cam = _pose_of_frame(tf_buf, body, frame_id, stamp, tf_tolerance_ns)
                    if T_body_cam is None:
                        dropped += 1
                        continue
                    T = T @ T_body_cam
            elif gt_tf is not None:
                T = _pose_of_frame(tf_buf, gt_tf[0], gt_tf[1] or frame_id, stamp, tf_tolerance_ns)
                if T is None:
                    dropped += 1
                    continue
            j = int(np.searchsorted(info_st, stamp))
            j = min(range(max(j - 1, 0), min(j + 1, len(info_st))), key=lambda k: abs(int(info_st[k]) - stamp))
            intr = infos[j]
            if intr.has_distortion:
                distortion = {"model": intr.distortion_model, "D": intr.D.tolist(), "K": intr.K.tolist()}
            try:
                rgb, K_core = convert(m.msg, intr)
            except UnusableCameraInfoError as exc:
                raise DatasetError(f"'{img_topic}' image at {stamp} with CameraInfo '{info_topic}': {exc}") from exc
            frames.append((stamp, m.recv_ns, rgb, K_core, T, convert.undistorter(intr)))
            if max_frames is not None and len(frames) >= max_frames:
                break

        # ---- pass 3: depth
        depths = None
        missing_depth = 0
        if depth_topic is not None and frames:
            depth_rec = bag.resolve_topic(depth_topic)
            if depth_rec is None:
                raise BagError(f"bag '{path}' has no depth topic '{depth_topic}'; topics: {sorted(bag.topics)}")
            want = np.array(sorted(f[0] for f in frames), dtype=np.int64)
            best: dict[int, tuple[int, Any]] = {}
            lo, hi = int(want[0]) - depth_tolerance_ns, int(want[-1]) + depth_tolerance_ns
            for m in bag.messages([depth_rec]):
                s = stamp_to_ns(m.msg.header.stamp)
                if s < lo or s > hi:
                    continue
                k = int(np.argmin(np.abs(want - s)))
                d = abs(int(want[k]) - s)
                if d <= depth_tolerance_ns and (int(want[k]) not in best or d < best[int(want[k])][0]):
                    best[int(want[k])] = (d, m.msg)
            depths = []
            for stamp, _, rgb, _, _, und in frames:
                msg = best.get(stamp, (None, None))[1]
                if msg is None:
                    missing_depth += 1
                    depths.append(np.zeros(rgb.shape[:2], dtype=np.float32))
                    continue
                d = compressed_depth_msg_to_metres(msg) if hasattr(msg, "format") else depth_msg_to_metres(msg)
                if d.shape != (und.size[1], und.size[0]):
                    raise DatasetError(f"depth at {stamp} on '{depth_rec}' is {d.shape[::-1]}, image is {und.size}")
                depths.append(und(d, cv2.INTER_NEAREST))
        storage = bag.storage

    if not frames:
        why = f"no frame had ground truth ({dropped} dropped)" if dropped else "no images on the topic"
        raise DatasetError(f"bag '{path}': {why} (image topic '{img_topic}')")
    stamps = np.array([f[0] for f in frames], dtype=np.int64)
    out_of_order = int(np.sum(np.diff(stamps) < 0))
    sort = np.argsort(stamps, kind="stable")
    if out_of_order:
        log.warning("%s: %d image stamp(s) out of order in bag order; sorted by header stamp", path, out_of_order)
    if dropped:
        log.warning("%s: dropped %d image(s) without ground truth", path, dropped)
    if dup:
        log.warning("%s: dropped %d image(s) with a duplicate stamp", path, dup)
    if zero_stamp:
        log.warning("%s: %d image(s) had a zero header stamp; used the receive time", path, zero_stamp)
    if missing_depth:
        tol_ms = depth_tolerance_ns / 1e6
        log.warning("%s: %d image(s) without depth within %.1f ms (all-invalid depth)", path, missing_depth, tol_ms)
    frames = [frames[i] for i in sort]
    if depths is not None:
        depths = [depths[i] for i in sort]
    has_gt = gt_rec is not None or gt_tf is not None
    extras = {
        "has_gt": has_gt,
        "gt_source": f"topic:{gt_rec}" if gt_rec else (f"tf:{gt_tf[0]}->{gt_tf[1] or cam_frame}" if gt_tf else None),
        "camera_frame": cam_frame,
        "image_topic": img_topic,
        "camera_info_topic": info_topic,
        "storage": storage,
        "undistorted": distortion is not None,
        "distortion": distortion,
        "dropped_no_gt": dropped,
        "dropped_duplicate": dup,
        "out_of_order": out_of_order,
        "recv_ns": np.array([f[1] for f in frames], dtype=np.int64),
        "bag_custom_data": read_bag_custom_data(path) if path.is_dir() else {},
    }
    return PosedImages(
        images=[f[2] for f in frames],
        K=np.stack([f[3] for f in frames]),
        T_world_cam=np.stack([f[4] for f in frames]),
        names=[f"{img_topic}@{f[0]}" for f in frames],
        timestamps_ns=stamps[sort],
        depths=depths,
        frame_id=(world or cam_frame or "") if has_gt else (cam_frame or ""),
        metric=True,
        source=str(path),
        extras=extras,
    )
