"""Image (raw or compressed) + CameraInfo messages -> undistorted RGB and core intrinsics.

The one conversion both the bag loader (offline replay) and the live localizer node use, so a frame gives
the same pixels and the same K on both paths.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..geometry.undistort import Undistorter
from .camera_info import CameraIntrinsics, K_ros_to_core, camera_info_to_intrinsics
from .errors import UnusableCameraInfoError
from .images import compressed_msg_to_rgb, image_msg_to_rgb

__all__ = ["CameraFrameConverter", "decode_image_msg"]


def decode_image_msg(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` or ``CompressedImage`` (told apart by their fields) -> ``H x W x 3`` uint8 RGB."""
    return compressed_msg_to_rgb(msg) if hasattr(msg, "format") and not hasattr(msg, "encoding") else image_msg_to_rgb(msg)


class CameraFrameConverter:
    """Converts image + camera info to ``(rgb, K_core)``; caches one undistorter per calibration.

    Args:
        undistort: undistort images whose CameraInfo has non-zero distortion (keeping K, or with ``alpha``);
            False rejects them (the core is pinhole-only).
        alpha: None keeps K; 0..1 uses OpenCV's optimal new camera matrix.
    """

    def __init__(self, undistort: bool = True, alpha: float | None = None):
        self.undistort = undistort
        self.alpha = alpha
        self._undistorters: dict[tuple, Undistorter] = {}

    def undistorter(self, intr: CameraIntrinsics) -> Undistorter:
        """The cached :class:`Undistorter` of a calibration."""
        key = (intr.K.tobytes(), intr.D.tobytes(), intr.distortion_model, intr.size, self.alpha)
        und = self._undistorters.get(key)
        if und is None:
            und = self._undistorters[key] = Undistorter(intr.K, intr.D, intr.distortion_model, intr.size, self.alpha)
        return und

    def __call__(self, image_msg: Any, info: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(rgb [H x W x 3] uint8, K [3 x 3] core pixel convention)``.

        ``info`` is a CameraInfo message or already-parsed :class:`CameraIntrinsics`. Raises
        :class:`UnusableCameraInfoError` when the sizes differ or distortion is present with ``undistort=False``,
        and the conversion errors of the image decoders for bad encodings or data.
        """
        intr = info if isinstance(info, CameraIntrinsics) else camera_info_to_intrinsics(info)
        rgb = decode_image_msg(image_msg)
        h, w = rgb.shape[:2]
        if intr.size != (w, h):
            raise UnusableCameraInfoError(
                f"image is {w}x{h} but its CameraInfo says {intr.size[0]}x{intr.size[1]}")
        if intr.has_distortion and not self.undistort:
            raise UnusableCameraInfoError(
                f"CameraInfo has {intr.distortion_model} distortion {intr.D.tolist()}: the core is pinhole-only; "
                "enable undistortion")
        und = self.undistorter(intr)
        return und(rgb), K_ros_to_core(und.K_new)
