"""Message builders of the ROS layer (status, point cloud, keyframe markers, path, diagnostics).

No rclpy import here: every builder takes a :class:`~nerf_loc_ros.conversions.MessageTypes`, so the nodes use
``MessageTypes.from_rclpy()`` and the tests the same code with ``rosbags`` classes (this package's own messages
are registered into the rosbags typestore from ``msg/*.msg`` by :func:`register_package_messages`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..conversions import MessageTypes, make_transform_stamped, matrix_to_pose_msg, matrix_to_transform_msg
from ..localization.localizer import LocalizationResult, Status

__all__ = [
    "STATE_CODES", "register_package_messages", "status_message", "pointcloud2_message", "keyframe_markers",
    "path_message", "diagnostics_message", "covariance_summary", "REGISTRATION_STATES",
    "registration_result_message", "submap_transforms",
]

#: LocalizationStatus.state codes (msg/LocalizationStatus.msg).
STATE_CODES = {Status.OK: 0, Status.LOW_CONFIDENCE: 1, Status.FAILED: 2, "NO_MAP": 3}


def register_package_messages(typestore: Any, msg_dir: Path) -> Any:
    """Register ``nerf_loc_ros/msg/*`` from the ``.msg`` files in ``msg_dir`` into a rosbags typestore."""
    from rosbags.typesys import get_types_from_msg

    types: dict = {}
    for path in sorted(Path(msg_dir).glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"nerf_loc_ros/msg/{path.stem}"))
    typestore.register(types)
    return typestore


def covariance_summary(cov: np.ndarray) -> tuple[float, float]:
    """(position std, orientation std): square roots of the largest eigenvalues of the 3x3 diagonal blocks."""
    cov = np.asarray(cov, np.float64).reshape(6, 6)
    pos = float(np.sqrt(max(np.linalg.eigvalsh(cov[:3, :3]).max(), 0.0)))
    rot = float(np.sqrt(max(np.linalg.eigvalsh(cov[3:, 3:]).max(), 0.0)))
    return pos, rot


def status_message(types: MessageTypes, result: LocalizationResult | None, stamp_ns: int, frame_id: str,
                   keyframe_names: Sequence[str] = (), used_prior: bool = False, reason: str = "") -> Any:
    """``nerf_loc_ros/msg/LocalizationStatus`` of one frame; ``result=None`` means no map is loaded."""
    if result is None:
        state, why, stages, pos_std, rot_std = STATE_CODES["NO_MAP"], reason or "no map loaded", {}, 0.0, 0.0
        counts = (0, 0, 0.0)
    else:
        state, why, stages = STATE_CODES[result.status], result.reason, dict(result.timings_ms)
        pos_std, rot_std = covariance_summary(result.covariance) if result.T_world_cam is not None else (0.0, 0.0)
        err = result.reproj_error if np.isfinite(result.reproj_error) else 0.0
        counts = (result.num_matches, result.num_inliers, err)
    total = float(stages.pop("total", 0.0))
    return types.make(
        "nerf_loc_ros/msg/LocalizationStatus",
        header=types.header(stamp_ns, frame_id), state=int(state), reason=str(why),
        num_matches=int(counts[0]), num_inliers=int(counts[1]), reprojection_error_px=float(counts[2]),
        retrieval_candidates=[str(n) for n in keyframe_names], used_prior=bool(used_prior),
        stage_names=list(stages), stage_latency_ms=_float32_list(types, stages.values()),
        total_latency_ms=total, position_stddev_m=pos_std, orientation_stddev_rad=rot_std,
    )


def _float32_list(types: MessageTypes, values) -> Any:
    arr = np.asarray(list(values), dtype=np.float32)
    return [float(v) for v in arr] if types.flavour == "rclpy" else arr


def pointcloud2_message(types: MessageTypes, xyz: np.ndarray, frame_id: str, stamp_ns: int,
                        rgb: np.ndarray | None = None) -> Any:
    """``sensor_msgs/PointCloud2`` with float32 x, y, z (and packed ``rgb`` when colours ``[N x 3]`` uint8 are given)."""
    xyz = np.asarray(xyz, np.float32).reshape(-1, 3)
    n = len(xyz)
    names = ["x", "y", "z"] + (["rgb"] if rgb is not None else [])
    rec = np.zeros(n, dtype=[(k, "<f4") for k in names])
    rec["x"], rec["y"], rec["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    if rgb is not None:
        c = np.asarray(rgb, np.uint32).reshape(-1, 3)
        rec["rgb"] = ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).astype("<u4").view("<f4")
    fields = [types.make("sensor_msgs/msg/PointField", name=k, offset=4 * i, datatype=7, count=1)
              for i, k in enumerate(names)]  # 7 = FLOAT32
    step = 4 * len(names)
    return types.make(
        "sensor_msgs/msg/PointCloud2", header=types.header(stamp_ns, frame_id), height=1, width=n, fields=fields,
        is_bigendian=False, point_step=step, row_step=step * n, data=types.uint8_array(rec.tobytes()),
        is_dense=True,
    )


def _point(types: MessageTypes, p) -> Any:
    return types.make("geometry_msgs/msg/Point", x=float(p[0]), y=float(p[1]), z=float(p[2]))


def keyframe_markers(types: MessageTypes, T_world_cam: np.ndarray, K: np.ndarray, sizes: np.ndarray,
                     frame_id: str, stamp_ns: int, depth: float) -> Any:
    """``visualization_msgs/MarkerArray``: one LINE_LIST camera frustum per keyframe (``depth`` map units deep)."""
    lines = []
    for T, k, (w, h) in zip(T_world_cam, K, sizes):
        corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
        rays = np.c_[(corners[:, 0] - k[0, 2]) / k[0, 0], (corners[:, 1] - k[1, 2]) / k[1, 1], np.ones(4)] * depth
        c = T[:3, 3]
        pts = rays @ T[:3, :3].T + c
        for i in range(4):
            lines += [c, pts[i], pts[i], pts[(i + 1) % 4]]
    colour = types.make("std_msgs/msg/ColorRGBA", r=0.1, g=0.6, b=1.0, a=0.8)
    marker = types.make(
        "visualization_msgs/msg/Marker", header=types.header(stamp_ns, frame_id), ns="keyframes", id=0,
        type=5, action=0, pose=matrix_to_pose_msg(np.eye(4), types),  # 5 = LINE_LIST, 0 = ADD
        scale=types.make("geometry_msgs/msg/Vector3", x=depth * 0.02, y=0.0, z=0.0), color=colour,
        lifetime=types.make("builtin_interfaces/msg/Duration", sec=0, nanosec=0), frame_locked=False,
        points=[_point(types, p) for p in lines], colors=[], text="", mesh_resource="",
        mesh_use_embedded_materials=False,
    )
    return types.make("visualization_msgs/msg/MarkerArray", markers=[marker])


def path_message(types: MessageTypes, poses: Sequence[tuple[int, np.ndarray]], frame_id: str) -> Any:
    """``nav_msgs/Path`` of ``(stamp_ns, T_frame_body)`` poses; the header takes the last stamp."""
    stamped = [types.make("geometry_msgs/msg/PoseStamped", header=types.header(s, frame_id),
                          pose=matrix_to_pose_msg(T, types)) for s, T in poses]
    last = poses[-1][0] if poses else 0
    return types.make("nav_msgs/msg/Path", header=types.header(last, frame_id), poses=stamped)


def diagnostics_message(types: MessageTypes, stamp_ns: int, name: str, hardware_id: str, level: int, message: str,
                        values: dict[str, Any]) -> Any:
    """``diagnostic_msgs/DiagnosticArray`` with one status (level 0 OK, 1 WARN, 2 ERROR, 3 STALE)."""
    lvl = bytes([level]) if types.flavour == "rclpy" else int(level)
    kv = [types.make("diagnostic_msgs/msg/KeyValue", key=str(k), value=str(v)) for k, v in values.items()]
    status = types.make("diagnostic_msgs/msg/DiagnosticStatus", level=lvl, name=name, message=message,
                        hardware_id=hardware_id, values=kv)
    return types.make("diagnostic_msgs/msg/DiagnosticArray", header=types.header(stamp_ns, ""), status=[status])


#: RegistrationResult.state codes (msg/RegistrationResult.msg).
REGISTRATION_STATES = {"MERGED": 0, "AMBIGUOUS": 1, "FAILED": 2, "REGISTERED": 3}


def registration_result_message(types: MessageTypes, result, T_global_submap: np.ndarray | None, submap_id: str,
                                merged: bool, frame_id: str, stamp_ns: int) -> Any:
    """``nerf_loc_ros/msg/RegistrationResult`` of one merge request (``result``: a
    :class:`~nerf_loc_ros.registration.RegistrationResult`; ``T_global_submap`` None when nothing was estimated)."""
    status = result.status.value
    state = REGISTRATION_STATES["MERGED"] if merged else REGISTRATION_STATES.get(status, REGISTRATION_STATES["REGISTERED"])
    if not merged and status == "OK":
        state = REGISTRATION_STATES["REGISTERED"]
    finite = lambda v: float(v) if np.isfinite(v) else 0.0  # noqa: E731
    return types.make(
        "nerf_loc_ros/msg/RegistrationResult",
        header=types.header(stamp_ns, frame_id), submap_id=str(submap_id), state=int(state), reason=str(result.reason),
        transform=matrix_to_transform_msg(np.eye(4) if T_global_submap is None else T_global_submap, types),
        num_correspondences=int(result.correspondences), num_inliers=int(result.inliers),
        fitness=finite(result.fitness), inlier_rmse_m=finite(result.inlier_rmse), confidence=finite(result.confidence),
        estimated_rre_deg=finite(result.estimated_rre_deg), estimated_rte_m=finite(result.estimated_rte),
        ambiguous=status == "AMBIGUOUS", num_hypotheses=int(result.hypotheses),
        seconds=float(result.timings_ms.get("total", 0.0)) / 1000,
    )


def submap_transforms(types: MessageTypes, global_map, frame_id: str, stamp_ns: int) -> list[Any]:
    """Static ``frame_id -> submap_<id>`` transforms (``T_global_submap``) of every submap of a global map."""
    return [make_transform_stamped(s.T_global_submap, frame_id, f"submap_{s.id}", stamp_ns, types)
            for s in global_map.submaps]
