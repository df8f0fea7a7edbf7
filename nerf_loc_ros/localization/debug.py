"""Debug image of a localization: the query with its keypoints, inlier and outlier matches, and the status."""

from __future__ import annotations

import cv2
import numpy as np

from .localizer import LocalizationResult, Status
from .pose import project

__all__ = ["draw_matches"]

_COLOURS = {Status.OK: (40, 200, 40), Status.LOW_CONFIDENCE: (240, 170, 0), Status.FAILED: (230, 40, 40)}


def draw_matches(rgb: np.ndarray, result: LocalizationResult, K: np.ndarray | None = None) -> np.ndarray:
    """``H x W x 3`` uint8 RGB copy of the query with keypoints (grey), outlier matches (red), inliers (green)
    and, when the pose and ``K`` are known, a line from each inlier to the reprojection of its 3D point."""
    out = np.ascontiguousarray(rgb.copy())
    for u, v in np.asarray(result.keypoints, np.float64):
        cv2.circle(out, (int(u), int(v)), 1, (160, 160, 160), -1)
    inl = np.asarray(result.inliers, bool)
    uv = np.asarray(result.matches_2d, np.float64)
    if len(inl) == len(uv):
        for (u, v), ok in zip(uv, inl):
            cv2.circle(out, (int(u), int(v)), 3, (40, 220, 40) if ok else (230, 40, 40), 1, cv2.LINE_AA)
        if result.T_world_cam is not None and K is not None and inl.any():
            proj, _ = project(K, result.T_world_cam, np.asarray(result.matches_3d)[inl])
            for (u, v), (pu, pv) in zip(uv[inl], proj):
                cv2.line(out, (int(u), int(v)), (int(pu), int(pv)), (255, 255, 0), 1, cv2.LINE_AA)
    text = f"{result.status.value} {result.num_inliers}/{result.num_matches}"
    if result.reason:
        text += f" ({result.reason})"
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _COLOURS[result.status], 1, cv2.LINE_AA)
    return out
