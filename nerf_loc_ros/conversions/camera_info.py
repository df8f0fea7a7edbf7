"""sensor_msgs/CameraInfo <-> intrinsics, and the ROS <-> core pixel-centre convention.

ROS ``CameraInfo.K`` follows OpenCV: the centre of pixel (col i, row j) is at (i, j). The core
(:class:`nerf_loc_ros.datasets.PosedImages`, :class:`nerf_loc_ros.geometry.PinholeCamera`) puts it at
(i + 0.5, j + 0.5). So a core ``K`` has ``cx_core = cx_ros + 0.5`` and ``cy_core = cy_ros + 0.5``:
use :func:`K_ros_to_core` / :func:`K_core_to_ros` at the ROS boundary (bag loader, bag writer, nodes).
:func:`camera_info_to_intrinsics` itself returns K exactly as in the message (ROS convention), which
is also what OpenCV undistortion expects.

ROS 1 messages name the arrays ``K/D/R/P``, ROS 2 ``k/d/r/p``; both are accepted.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..geometry import check_intrinsics
from ..geometry.camera import K_core_to_ros, K_ros_to_core  # the pixel convention lives in geometry
from .errors import UnusableCameraInfoError
from .msgtypes import MessageTypes, default_types

__all__ = [
    "CameraIntrinsics",
    "DISTORTION_SIZES",
    "camera_info_to_intrinsics",
    "intrinsics_to_camera_info",
    "K_ros_to_core",
    "K_core_to_ros",
]

#: Number of coefficients ROS writes for each distortion model (readers accept 4..N for plumb_bob).
DISTORTION_SIZES = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}


class CameraIntrinsics(NamedTuple):
    """Intrinsics from a CameraInfo (unpacks as ``K, (width, height), distortion_model, D``).

    ``K`` is 3x3 float64 in ROS/OpenCV pixel convention (pixel centres at integer coordinates), pixels.
    """

    K: np.ndarray
    size: tuple[int, int]
    distortion_model: str
    D: np.ndarray

    @property
    def has_distortion(self) -> bool:
        """True when any distortion coefficient is non-zero."""
        return bool(np.any(self.D != 0))


def _field(msg: Any, name: str) -> Any:
    """ROS 2 lower-case field, else the ROS 1 upper-case one."""
    if hasattr(msg, name):
        return getattr(msg, name)
    if hasattr(msg, name.upper()):
        return getattr(msg, name.upper())
    raise UnusableCameraInfoError(f"{type(msg).__name__} has no field '{name}' or '{name.upper()}': not a CameraInfo")


def camera_info_to_intrinsics(msg: Any) -> CameraIntrinsics:
    """``sensor_msgs/CameraInfo`` -> :class:`CameraIntrinsics` ``(K, (width, height), model, D)``.

    ``K`` is the message's K (ROS pixel convention; see :func:`K_ros_to_core`). Binning and a region
    of interest, when set, are applied so that K and size describe the published image
    (``cx -= roi.x_offset``; ``fx, cx /= binning_x``; likewise for y). The distortion model is
    lower-cased (empty stays empty); D is float64. Raises :class:`UnusableCameraInfoError` for a zero
    size, an all-zero (uncalibrated) K or a K that is not a pinhole matrix.
    """
    width, height = int(msg.width), int(msg.height)
    K = np.asarray(_field(msg, "k"), dtype=np.float64).reshape(-1)
    frame = getattr(getattr(msg, "header", None), "frame_id", "?")
    if width <= 0 or height <= 0:
        raise UnusableCameraInfoError(f"CameraInfo (frame '{frame}') has image size {width}x{height}: not calibrated")
    if K.size != 9:
        raise UnusableCameraInfoError(f"CameraInfo (frame '{frame}') K has {K.size} values, expected 9")
    K = K.reshape(3, 3)
    if not np.any(K):
        raise UnusableCameraInfoError(f"CameraInfo (frame '{frame}') has an all-zero K: the camera is uncalibrated")
    D = np.asarray(_field(msg, "d"), dtype=np.float64).reshape(-1).copy()
    model = str(msg.distortion_model).strip().lower()
    bx, by = int(getattr(msg, "binning_x", 0) or 0), int(getattr(msg, "binning_y", 0) or 0)
    roi = getattr(msg, "roi", None)
    K = K.copy()
    roi_size = (int(roi.width), int(roi.height)) if roi is not None else (0, 0)
    if min(roi_size) > 0 and roi_size != (width, height):
        K[0, 2] -= int(roi.x_offset)
        K[1, 2] -= int(roi.y_offset)
        width, height = int(roi.width), int(roi.height)
    if bx > 1:
        K[0] /= bx
        width //= bx
    if by > 1:
        K[1] /= by
        height //= by
    K[2] = [0.0, 0.0, 1.0]
    try:
        check_intrinsics(K, what=f"CameraInfo (frame '{frame}') K")
    except ValueError as exc:
        raise UnusableCameraInfoError(str(exc)) from None
    return CameraIntrinsics(K, (width, height), model, D)


def intrinsics_to_camera_info(
    K: np.ndarray,
    width: int,
    height: int,
    D: np.ndarray | None = None,
    model: str = "plumb_bob",
    stamp_ns: int = 0,
    frame_id: str = "",
    types: MessageTypes | None = None,
) -> Any:
    """``sensor_msgs/CameraInfo`` for a pinhole ``K`` (ROS pixel convention) and image size (pixels).

    ``D`` defaults to zeros of the model's usual length (plumb_bob 5, rational_polynomial 8,
    equidistant 4); ``R`` = identity, ``P = [K | 0]``, no binning, empty ROI.
    """
    types = default_types() if types is None else types
    K = check_intrinsics(K, what="intrinsics_to_camera_info K")
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    model = str(model)
    if D is None:
        D = np.zeros(DISTORTION_SIZES.get(model, 0))
    D = np.asarray(D, dtype=np.float64).reshape(-1)
    P = np.hstack([K, np.zeros((3, 1))])
    return types.make(
        "sensor_msgs/msg/CameraInfo",
        header=types.header(stamp_ns, frame_id),
        height=int(height),
        width=int(width),
        distortion_model=model,
        d=types.float64_array(D),
        k=types.float64_array(K.reshape(9)),
        r=types.float64_array(np.eye(3).reshape(9)),
        p=types.float64_array(P.reshape(12)),
        binning_x=0,
        binning_y=0,
        roi=types.make("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )
