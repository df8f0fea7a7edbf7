"""Undistortion at the dataset boundary: the core only sees ideal pinhole images (DESIGN.md section 2)."""

from __future__ import annotations

import cv2
import numpy as np

from .posed_images import DatasetError

__all__ = ["undistort_frame"]


def undistort_frame(
    rgb: np.ndarray, depth: np.ndarray | None, K: np.ndarray, D: np.ndarray, where: str = ""
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Remove OpenCV (``plumb_bob``: k1, k2, p1, p2[, k3]) distortion from an RGB image and its depth.

    The output keeps ``K`` and the image size (pixels outside the source become black / depth 0).
    RGB is resampled bilinearly, depth with nearest neighbour (never mixes valid and invalid depth).
    Returns ``(rgb, depth, K)`` unchanged when all coefficients are zero.
    """
    D = np.asarray(D, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(D)):
        raise DatasetError(f"{where}: distortion coefficients contain NaN/inf: {D.tolist()}")
    if not np.any(D):
        return rgb, depth, K
    h, w = rgb.shape[:2]
    map1, map2 = cv2.initUndistortRectifyMap(K, D, None, K, (w, h), cv2.CV_32FC1)
    rgb = cv2.remap(rgb, map1, map2, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    if depth is not None:
        depth = cv2.remap(depth, map1, map2, interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    return rgb, depth, K
