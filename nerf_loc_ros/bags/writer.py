"""Write a :class:`~nerf_loc_ros.datasets.PosedImages` as a ROS 2 bag (MCAP or sqlite3), without ROS.

The bag looks like a robot recording (REP-105 frames) so a localizer can be replayed on it:

- camera: ``image_topic`` (``sensor_msgs/Image`` in rgb8/bgr8/mono8/rgba8/bgra8, or
  ``sensor_msgs/CompressedImage`` jpeg/png on ``.../compressed``), ``camera_info_topic`` (plumb_bob,
  zero D, K in ROS pixel convention = core K - 0.5 px), optional ``depth_topic`` (16UC1 millimetres);
  all with ``frame_id = camera_optical_frame`` and the frame's stamp;
- ``gt_topic``: ``geometry_msgs/PoseStamped`` in ``map``: the ground-truth pose of the camera
  optical frame, ``T_map_optical`` = the dataset's ``T_world_cam`` (OpenCV axes = optical frame);
- ``/tf``: ``odom -> base_link`` per frame (and ``odom_topic``, ``nav_msgs/Odometry``, the same pose):
  ``T_odom_base = inv(T_map_odom) @ T_map_optical @ inv(T_base_optical)``, plus an optional random-walk
  drift (per-frame increments perturbed by N(0, sigma_t) metres and N(0, sigma_r) radians);
- ``/tf_static`` (once, transient_local): ``base_link -> camera_link`` = ``T_base_camera`` and
  ``camera_link -> camera_optical_frame`` = :func:`nerf_loc_ros.geometry.ros_body_from_optical`.

``map -> odom`` is NOT written (a localizer publishes it); its true value ``T_map_odom`` (default:
:data:`DEFAULT_T_MAP_ODOM`) and all settings are stored in the bag's ``metadata.yaml`` ``custom_data``
under ``nerf_loc_ros`` (JSON). Without drift: ``T_map_odom @ T_odom_base @ T_base_optical == GT``.
Metadata version 8 with ROS 2 Humble message definitions (readable by Humble and Jazzy rosbag2).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from ..conversions import (
    COLOUR_ENCODINGS,
    K_core_to_ros,
    MessageTypes,
    depth_to_image_msg,
    intrinsics_to_camera_info,
    make_odometry,
    make_pose_stamped,
    make_tf_message,
    make_transform_stamped,
    rgb_to_compressed_msg,
    rgb_to_image_msg,
)
from ..datasets.posed_images import PosedImages
from ..geometry import invert_pose, make_pose, ros_body_from_optical
from .reader import BagError

__all__ = ["DEFAULT_T_MAP_ODOM", "DEFAULT_T_BASE_CAMERA", "FRAMES", "write_bag", "read_bag_custom_data"]

log = logging.getLogger(__name__)

#: Default true ``map -> odom`` offset: yaw +30 deg about z, translation (1.5, -0.75, 0.0) m.
DEFAULT_T_MAP_ODOM = make_pose(Rotation.from_euler("z", 30.0, degrees=True).as_matrix(), [1.5, -0.75, 0.0])
#: Default ``base_link -> camera_link``: camera 0.10 m forward and 0.20 m above base_link, no rotation.
DEFAULT_T_BASE_CAMERA = make_pose(np.eye(3), [0.10, 0.0, 0.20])
#: Default frame names (REP-105 / REP-103).
FRAMES = {"map": "map", "odom": "odom", "base": "base_link", "camera": "camera_link", "optical": "camera_optical_frame"}
_CUSTOM_KEY = "nerf_loc_ros"


def _qos(reliable: bool = True, transient_local: bool = False, depth: int = 10) -> Any:
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)  # 0 = "default" (infinite) for deadline / lifespan / lease duration
    return Qos(
        QosHistory.KEEP_LAST,
        int(depth),
        QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )


def _stamps(posed: PosedImages, start_ns: int | None, rate_hz: float | None) -> tuple[np.ndarray, int]:
    """Bag stamps per frame (int64 ns) and the offset applied to the dataset's stamps (None if re-timed)."""
    n = len(posed)
    if rate_hz is not None:
        base = 1_000_000_000 if start_ns is None else int(start_ns)
        return base + np.round(np.arange(n) * (1e9 / float(rate_hz))).astype(np.int64), base
    ts = posed.timestamps_ns.astype(np.int64)
    if n > 1 and np.any(np.diff(ts) <= 0):
        raise ValueError(
            f"{posed.source or 'dataset'}: timestamps are not strictly increasing; pass rate_hz to re-time the frames"
        )
    offset = 0
    if start_ns is not None:
        offset = int(start_ns) - int(ts[0])
    elif n and ts.min() < 1_000_000_000:  # no message at t <= 0: tf2 reads stamp 0 as "latest"
        offset = 1_000_000_000 - int(ts.min())
    if n > 2 and np.median(np.diff(ts)) < 1_000_000:
        log.warning("timestamps are < 1 ms apart (frame indices?); pass rate_hz for a playable bag")
    return ts + offset, offset


def _drifted(T_odom_base: np.ndarray, drift: tuple[float, float] | None, seed: int) -> np.ndarray:
    """Odometry with a random-walk drift on each frame-to-frame increment (first frame exact)."""
    if drift is None or (drift[0] <= 0 and drift[1] <= 0):
        return T_odom_base
    rng = np.random.default_rng(seed)
    out = np.empty_like(T_odom_base)
    out[0] = T_odom_base[0]
    for i in range(1, len(T_odom_base)):
        delta = invert_pose(T_odom_base[i - 1]) @ T_odom_base[i]
        noise = make_pose(Rotation.from_rotvec(rng.normal(0.0, drift[1], 3)).as_matrix(), rng.normal(0.0, drift[0], 3))
        out[i] = out[i - 1] @ delta @ noise
    return out


def read_bag_custom_data(path: str | Path) -> dict:
    """The ``nerf_loc_ros`` settings :func:`write_bag` stored in ``metadata.yaml`` (empty dict if none)."""
    meta = Path(path) / "metadata.yaml"
    if not meta.exists():
        return {}
    import yaml

    info = (yaml.safe_load(meta.read_text()) or {}).get("rosbag2_bagfile_information", {})
    raw = (info.get("custom_data") or {}).get(_CUSTOM_KEY)
    return json.loads(raw) if raw else {}


def write_bag(
    posed: PosedImages,
    out_path: str | Path,
    storage: str = "mcap",
    encoding: str = "rgb8",
    image_topic: str | None = None,
    camera_info_topic: str | None = "/camera/camera_info",
    depth_topic: str | None = "/camera/depth/image_raw",
    gt_topic: str | None = "/ground_truth/pose",
    odom_topic: str | None = "/odom",
    write_tf: bool = True,
    frames: dict[str, str] | None = None,
    T_map_odom: np.ndarray = DEFAULT_T_MAP_ODOM,
    T_base_camera: np.ndarray = DEFAULT_T_BASE_CAMERA,
    odom_drift: tuple[float, float] | None = None,
    seed: int = 0,
    jpeg_quality: int = 95,
    start_ns: int | None = None,
    rate_hz: float | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write ``posed`` as a ROS 2 bag directory at ``out_path`` (see the module docstring for topics/frames).

    Args:
        storage: ``mcap`` or ``sqlite3``.
        encoding: ``rgb8``/``bgr8``/``mono8``/``rgba8``/``bgra8`` (raw Image) or ``jpeg``/``png``
            (CompressedImage). ``image_topic`` defaults to ``/camera/image_raw`` (raw) or
            ``/camera/image_raw/compressed`` (compressed).
        camera_info_topic, depth_topic, gt_topic, odom_topic: None to leave the topic out (depth is
            only written for frames that have depth).
        frames: overrides of :data:`FRAMES` (keys map, odom, base, camera, optical).
        T_map_odom: true 4x4 ``map -> odom`` offset (metres); T_base_camera: 4x4 ``base_link -> camera_link``.
        odom_drift: ``(sigma_t metres, sigma_r radians)`` random-walk noise per frame on odometry, or None.
        start_ns: first frame's stamp (default: dataset stamps, shifted to >= 1 s if they start near 0);
            rate_hz: re-time the frames at this rate instead of using the dataset stamps.
        overwrite: replace an existing bag directory at ``out_path``.
        progress: show a tqdm progress bar.
    Returns the bag directory. The bag is written to a temporary directory and renamed on success.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    out = Path(out_path)
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}.get(storage)
    if plugin is None:
        raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
    enc = encoding.lower()
    compressed = enc in ("jpeg", "jpg", "png")
    if not compressed and enc not in COLOUR_ENCODINGS:
        raise ValueError(f"encoding must be one of {sorted(COLOUR_ENCODINGS) + ['jpeg', 'png']}, got {encoding!r}")
    if image_topic is None:
        image_topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
    if out.exists():
        if not overwrite:
            raise BagError(f"'{out}' exists already (pass overwrite=True / --overwrite to replace it)")
        if not (out.is_dir() and (out / "metadata.yaml").exists()):
            raise BagError(f"refusing to overwrite '{out}': it is not a rosbag2 directory")
    if len(posed) == 0:
        raise ValueError("nothing to write: the dataset has no images")
    fr = {**FRAMES, **(frames or {})}
    stamps, offset = _stamps(posed, start_ns, rate_hz)

    T_base_optical = np.asarray(T_base_camera, dtype=np.float64) @ ros_body_from_optical()
    T_odom_map = invert_pose(np.asarray(T_map_odom, dtype=np.float64))
    T_odom_base_true = T_odom_map @ posed.T_world_cam @ invert_pose(T_base_optical)
    T_odom_base = _drifted(T_odom_base_true, odom_drift, seed)

    types = MessageTypes.from_rosbags()
    custom = {
        "format": 1,
        "frames": fr,
        "T_map_odom": np.asarray(T_map_odom, dtype=np.float64).tolist(),
        "T_base_camera": np.asarray(T_base_camera, dtype=np.float64).tolist(),
        "odom_drift": None if odom_drift is None else [float(x) for x in odom_drift],
        "seed": int(seed),
        "time_offset_ns": int(offset) if rate_hz is None else None,
        "rate_hz": rate_hz,
        "source": str(posed.source),
        "world_frame_of_source": posed.frame_id,
    }

    tmp_root = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp_root.exists():
        shutil.rmtree(tmp_root)
    tmp_root.mkdir(parents=True)
    tmp = tmp_root / out.name
    try:
        with Writer(tmp, version=8, storage_plugin=plugin) as writer:
            ts = types.typestore

            def conn(topic: str, msgtype: str, **qos: Any) -> Any:
                return writer.add_connection(topic, msgtype, typestore=ts, offered_qos_profiles=[_qos(**qos)])

            def put(c: Any, stamp: int, msg: Any) -> None:
                writer.write(c, int(stamp), types.serialize(msg))

            c_img = conn(image_topic, "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image")
            c_info = conn(camera_info_topic, "sensor_msgs/msg/CameraInfo") if camera_info_topic else None
            has_depth = posed.depths is not None and any(d is not None for d in posed.depths)
            c_depth = conn(depth_topic, "sensor_msgs/msg/Image") if depth_topic and has_depth else None
            c_gt = conn(gt_topic, "geometry_msgs/msg/PoseStamped") if gt_topic else None
            c_odom = conn(odom_topic, "nav_msgs/msg/Odometry") if odom_topic else None
            if write_tf:
                c_tf = conn("/tf", "tf2_msgs/msg/TFMessage", depth=100)
                c_static = conn("/tf_static", "tf2_msgs/msg/TFMessage", transient_local=True, depth=1)
                static = make_tf_message(
                    [
                        make_transform_stamped(T_base_camera, fr["base"], fr["camera"], int(stamps[0]), types),
                        make_transform_stamped(
                            ros_body_from_optical(), fr["camera"], fr["optical"], int(stamps[0]), types
                        ),
                    ],
                    types,
                )
                put(c_static, stamps[0], static)
            writer.set_custom_data(_CUSTOM_KEY, json.dumps(custom))

            from tqdm import tqdm

            for i in tqdm(range(len(posed)), desc=f"writing {out.name}", unit="frame", disable=not progress):
                t = int(stamps[i])
                if write_tf:
                    tf = make_transform_stamped(T_odom_base[i], fr["odom"], fr["base"], t, types)
                    put(c_tf, t, make_tf_message([tf], types))
                if c_odom is not None:
                    put(c_odom, t, make_odometry(T_odom_base[i], fr["odom"], fr["base"], t, types=types))
                rgb = posed.images[i]
                if c_info is not None:
                    h, w = rgb.shape[:2]
                    K_ros = K_core_to_ros(posed.K[i])
                    put(c_info, t, intrinsics_to_camera_info(K_ros, w, h, None, "plumb_bob", t, fr["optical"], types))
                if compressed:
                    msg = rgb_to_compressed_msg(rgb, enc, t, fr["optical"], types, jpeg_quality=jpeg_quality)
                else:
                    msg = rgb_to_image_msg(rgb, enc, t, fr["optical"], types)
                put(c_img, t, msg)
                if c_depth is not None and posed.depths[i] is not None:
                    put(c_depth, t, depth_to_image_msg(posed.depths[i], "16UC1", t, fr["optical"], types))
                if c_gt is not None:
                    put(c_gt, t, make_pose_stamped(posed.T_world_cam[i], fr["map"], t, types))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    log.info("wrote %d frames to %s (%s, %s)", len(posed), out, storage, enc)
    return out
