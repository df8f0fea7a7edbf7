"""geometry_msgs / nav_msgs / tf2_msgs poses <-> 4x4 float64 matrices.

Convention (DESIGN.md section 2): ``T_a_b`` maps points in frame b to frame a. A
``TransformStamped`` with ``header.frame_id = a`` and ``child_frame_id = b`` *is* ``T_a_b``; a
``PoseStamped`` in frame ``a`` is ``T_a_body``. Quaternions are ROS order (x, y, z, w) and go through
:func:`nerf_loc_ros.geometry.pose_from_translation_quaternion` /
:func:`~nerf_loc_ros.geometry.pose_to_translation_quaternion`. Translations in metres.
Covariances are 6x6 row-major over (x, y, z, rot_x, rot_y, rot_z) in the header frame (ROS order),
metres^2 / radians^2.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from ..geometry import check_rigid, pose_from_translation_quaternion, pose_to_translation_quaternion
from .errors import MalformedMessageError
from .msgtypes import MessageTypes, default_types
from .stamps import header_stamp_ns

__all__ = [
    "StampedPose",
    "transform_msg_to_matrix",
    "pose_msg_to_matrix",
    "covariance_from_msg",
    "stamped_pose_msg_to_matrix",
    "matrix_to_transform_msg",
    "matrix_to_pose_msg",
    "make_transform_stamped",
    "make_tf_message",
    "make_pose_stamped",
    "make_pose_with_covariance_stamped",
    "make_odometry",
]


class StampedPose(NamedTuple):
    """A pose read from a stamped message: ``T_frame_child`` (4x4), its stamp and frames."""

    T: np.ndarray
    stamp_ns: int
    frame_id: str
    child_frame_id: str | None  # None for PoseStamped / PoseWithCovarianceStamped (no child named)
    covariance: np.ndarray | None  # 6x6 or None


def _xyz(v: Any) -> list[float]:
    return [float(v.x), float(v.y), float(v.z)]


def _xyzw(q: Any) -> list[float]:
    return [float(q.x), float(q.y), float(q.z), float(q.w)]


def transform_msg_to_matrix(msg: Any) -> np.ndarray:
    """``geometry_msgs/Transform`` (or ``TransformStamped``) -> ``T_parent_child`` 4x4 float64 (metres)."""
    tf = getattr(msg, "transform", msg)
    try:
        return pose_from_translation_quaternion(_xyz(tf.translation), _xyzw(tf.rotation))
    except AttributeError as exc:
        raise MalformedMessageError(f"{type(msg).__name__} is not a geometry_msgs/Transform: {exc}") from None
    except ValueError as exc:
        raise MalformedMessageError(f"bad transform in {type(msg).__name__}: {exc}") from None


def pose_msg_to_matrix(msg: Any) -> np.ndarray:
    """``geometry_msgs/Pose`` -> ``T_frame_body`` 4x4 float64 (metres).

    Also unwraps ``PoseStamped``, ``PoseWithCovariance(Stamped)`` and ``nav_msgs/Odometry``
    (following ``.pose`` until a Pose with ``position``/``orientation``).
    """
    pose = msg
    for _ in range(4):
        if hasattr(pose, "position") and hasattr(pose, "orientation"):
            break
        pose = getattr(pose, "pose", None)
        if pose is None:
            break
    if pose is None or not hasattr(pose, "position"):
        raise MalformedMessageError(f"{type(msg).__name__} does not contain a geometry_msgs/Pose")
    try:
        return pose_from_translation_quaternion(_xyz(pose.position), _xyzw(pose.orientation))
    except ValueError as exc:
        raise MalformedMessageError(f"bad pose in {type(msg).__name__}: {exc}") from None


def covariance_from_msg(msg: Any) -> np.ndarray | None:
    """6x6 pose covariance of a ``PoseWithCovariance(Stamped)`` / ``Odometry`` (None if it has none)."""
    node = msg
    for _ in range(3):
        if hasattr(node, "covariance"):
            cov = np.asarray(node.covariance, dtype=np.float64)
            if cov.size != 36:
                raise MalformedMessageError(f"pose covariance has {cov.size} values, expected 36")
            return cov.reshape(6, 6).copy()
        node = getattr(node, "pose", None)
        if node is None:
            return None
    return None


def stamped_pose_msg_to_matrix(msg: Any) -> StampedPose:
    """Pose of a ``PoseStamped``, ``PoseWithCovarianceStamped``, ``Odometry`` or ``TransformStamped``.

    Returns ``T_{frame_id}_{child}`` with the header stamp (int ns); ``child_frame_id`` is the
    message's ``child_frame_id`` (Odometry, TransformStamped) or None.
    """
    stamp = header_stamp_ns(msg)
    frame = str(msg.header.frame_id).lstrip("/")
    child = getattr(msg, "child_frame_id", None)
    child = None if child is None else str(child).lstrip("/")
    if hasattr(msg, "transform"):
        return StampedPose(transform_msg_to_matrix(msg), stamp, frame, child, None)
    return StampedPose(pose_msg_to_matrix(msg), stamp, frame, child, covariance_from_msg(msg))


# ---------------------------------------------------------------------- builders
def _types(types: MessageTypes | None) -> MessageTypes:
    return default_types() if types is None else types


def _quaternion(q: np.ndarray, types: MessageTypes) -> Any:
    return types.make("geometry_msgs/msg/Quaternion", x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))


def matrix_to_transform_msg(T: np.ndarray, types: MessageTypes | None = None) -> Any:
    """4x4 rigid ``T_parent_child`` -> ``geometry_msgs/Transform`` (metres, quaternion x, y, z, w; w >= 0)."""
    types = _types(types)
    t, q = pose_to_translation_quaternion(check_rigid(T, what="transform"))
    return types.make(
        "geometry_msgs/msg/Transform",
        translation=types.make("geometry_msgs/msg/Vector3", x=float(t[0]), y=float(t[1]), z=float(t[2])),
        rotation=_quaternion(q, types),
    )


def matrix_to_pose_msg(T: np.ndarray, types: MessageTypes | None = None) -> Any:
    """4x4 rigid ``T_frame_body`` -> ``geometry_msgs/Pose`` (metres, quaternion x, y, z, w; w >= 0)."""
    types = _types(types)
    t, q = pose_to_translation_quaternion(check_rigid(T, what="pose"))
    return types.make(
        "geometry_msgs/msg/Pose",
        position=types.make("geometry_msgs/msg/Point", x=float(t[0]), y=float(t[1]), z=float(t[2])),
        orientation=_quaternion(q, types),
    )


def make_transform_stamped(
    T_parent_child: np.ndarray, parent: str, child: str, stamp_ns: int, types: MessageTypes | None = None
) -> Any:
    """``geometry_msgs/TransformStamped`` for ``T_parent_child`` (header.frame_id = parent)."""
    types = _types(types)
    return types.make(
        "geometry_msgs/msg/TransformStamped",
        header=types.header(stamp_ns, parent),
        child_frame_id=str(child),
        transform=matrix_to_transform_msg(T_parent_child, types),
    )


def make_tf_message(transforms: Sequence[Any], types: MessageTypes | None = None) -> Any:
    """``tf2_msgs/TFMessage`` holding the given ``TransformStamped`` messages (for /tf or /tf_static)."""
    return _types(types).make("tf2_msgs/msg/TFMessage", transforms=list(transforms))


def make_pose_stamped(T_frame_body: np.ndarray, frame_id: str, stamp_ns: int, types: MessageTypes | None = None) -> Any:
    """``geometry_msgs/PoseStamped``: pose of a body in ``frame_id`` at ``stamp_ns`` (int ns)."""
    types = _types(types)
    return types.make(
        "geometry_msgs/msg/PoseStamped",
        header=types.header(stamp_ns, frame_id),
        pose=matrix_to_pose_msg(T_frame_body, types),
    )


def _cov36(cov6x6: np.ndarray | None, what: str) -> np.ndarray:
    if cov6x6 is None:
        return np.zeros(36)
    cov = np.asarray(cov6x6, dtype=np.float64)
    if cov.shape not in ((6, 6), (36,)) or not np.all(np.isfinite(cov)):
        raise ValueError(f"{what}: expected a finite 6x6 covariance, got shape {cov.shape}")
    return cov.reshape(36)


def _pose_with_covariance(T: np.ndarray, cov6x6: np.ndarray | None, types: MessageTypes) -> Any:
    return types.make(
        "geometry_msgs/msg/PoseWithCovariance",
        pose=matrix_to_pose_msg(T, types),
        covariance=types.float64_array(_cov36(cov6x6, "pose covariance")),
    )


def make_pose_with_covariance_stamped(
    T_frame_body: np.ndarray,
    cov6x6: np.ndarray | None,
    frame_id: str,
    stamp_ns: int,
    types: MessageTypes | None = None,
) -> Any:
    """``geometry_msgs/PoseWithCovarianceStamped`` (covariance 6x6 over x, y, z, rx, ry, rz; zeros if None)."""
    types = _types(types)
    return types.make(
        "geometry_msgs/msg/PoseWithCovarianceStamped",
        header=types.header(stamp_ns, frame_id),
        pose=_pose_with_covariance(T_frame_body, cov6x6, types),
    )


def make_odometry(
    T_odom_base: np.ndarray,
    frame_id: str,
    child_frame_id: str,
    stamp_ns: int,
    pose_cov: np.ndarray | None = None,
    twist: np.ndarray | None = None,
    twist_cov: np.ndarray | None = None,
    types: MessageTypes | None = None,
) -> Any:
    """``nav_msgs/Odometry``: pose of ``child_frame_id`` in ``frame_id``; twist (vx, vy, vz, wx, wy, wz)
    in m/s and rad/s expressed in ``child_frame_id`` (zeros if None)."""
    types = _types(types)
    tw = np.zeros(6) if twist is None else np.asarray(twist, dtype=np.float64).reshape(6)
    twist_msg = types.make(
        "geometry_msgs/msg/Twist",
        linear=types.make("geometry_msgs/msg/Vector3", x=float(tw[0]), y=float(tw[1]), z=float(tw[2])),
        angular=types.make("geometry_msgs/msg/Vector3", x=float(tw[3]), y=float(tw[4]), z=float(tw[5])),
    )
    return types.make(
        "nav_msgs/msg/Odometry",
        header=types.header(stamp_ns, frame_id),
        child_frame_id=str(child_frame_id),
        pose=_pose_with_covariance(T_odom_base, pose_cov, types),
        twist=types.make(
            "geometry_msgs/msg/TwistWithCovariance",
            twist=twist_msg,
            covariance=types.float64_array(_cov36(twist_cov, "twist covariance")),
        ),
    )
