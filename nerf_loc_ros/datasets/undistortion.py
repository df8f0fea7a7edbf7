"""Undistortion of dataset frames at the boundary: the core only sees ideal pinhole images."""

from __future__ import annotations

import cv2
import numpy as np

from ..geometry import K_core_to_ros, K_ros_to_core, Undistorter, UnsupportedDistortionError
from .posed_images import DatasetError

__all__ = ["undistort_frame"]


def undistort_frame(
    rgb: np.ndarray, depth: np.ndarray | None, K: np.ndarray, D: np.ndarray, model: str = "plumb_bob", where: str = ""
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Remove lens distortion from an RGB frame and its depth, keeping ``K`` and the image size.

    ``K`` is in the core pixel convention (centres at +0.5); ``D`` in OpenCV order for ``model``.
    RGB is resampled bilinearly, depth with nearest neighbour (valid and invalid depth never mix);
    pixels with no source become black / depth 0. Returns the inputs unchanged when ``D`` is all zero.
    """
    D = np.asarray(D, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(D)):
        raise DatasetError(f"{where}: distortion coefficients contain NaN/inf: {D.tolist()}")
    h, w = rgb.shape[:2]
    try:
        und = Undistorter(K_core_to_ros(K), D, model, (w, h))
    except (UnsupportedDistortionError, ValueError) as exc:
        raise DatasetError(f"{where}: {exc}") from exc
    if und.identity:
        return rgb, depth, K
    depth = None if depth is None else und(depth, interpolation=cv2.INTER_NEAREST)
    return und(rgb), depth, K_ros_to_core(und.K_new)
