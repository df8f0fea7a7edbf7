"""Pinhole camera model (OpenCV axes; the centre of pixel (i, j) is at (i + 0.5, j + 0.5)).

``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``; pixel ``(u, v)`` with ``u`` along image columns.
Distortion is not modelled in the core: loaders undistort or reject (DESIGN.md section 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PinholeCamera", "check_intrinsics", "K_core_to_ros", "K_ros_to_core"]


def check_intrinsics(K: np.ndarray, what: str = "K") -> np.ndarray:
    """Return ``K`` as a float64 3x3 after checking it is a finite pinhole matrix with positive focals."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"{what}: expected a 3x3 intrinsics matrix, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise ValueError(f"{what}: intrinsics contain NaN or infinite values")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0:
        raise ValueError(f"{what}: not a pinhole intrinsics matrix: {K.tolist()}")
    return K


@dataclass(frozen=True)
class PinholeCamera:
    """Pinhole intrinsics with image size in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_K(cls, K: np.ndarray, width: int, height: int) -> "PinholeCamera":
        """Build from a 3x3 ``K`` and the image size (pixels)."""
        K = check_intrinsics(K)
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(width), int(height))

    @property
    def K(self) -> np.ndarray:
        """3x3 float64 intrinsics matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return self.width, self.height

    def scaled(self, factor: float) -> "PinholeCamera":
        """Intrinsics for the image resized by ``factor`` (``K' = diag(f, f, 1) K``, size rounded)."""
        return PinholeCamera(
            self.fx * factor,
            self.fy * factor,
            self.cx * factor,
            self.cy * factor,
            int(round(self.width * factor)),
            int(round(self.height * factor)),
        )

    def project(self, X_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project camera-frame points ``[N x 3]`` -> pixels ``[N x 2]`` and depth ``z`` ``[N]`` (metres).

        Points with ``z <= 0`` get NaN pixels.
        """
        X = np.asarray(X_cam, dtype=np.float64)
        z = X[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.fx * X[:, 0] / z + self.cx
            v = self.fy * X[:, 1] / z + self.cy
        uv = np.stack([u, v], axis=-1)
        uv[z <= 0] = np.nan
        return uv, z

    def in_image(self, uv: np.ndarray) -> np.ndarray:
        """Boolean mask of pixels ``[N x 2]`` inside ``[0, width) x [0, height)``."""
        uv = np.asarray(uv)
        with np.errstate(invalid="ignore"):
            return (uv[:, 0] >= 0) & (uv[:, 0] < self.width) & (uv[:, 1] >= 0) & (uv[:, 1] < self.height)

    def unproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Back-project pixels ``[N x 2]`` with z-depth ``[N]`` to camera-frame points ``[N x 3]``."""
        uv = np.asarray(uv, dtype=np.float64)
        z = np.asarray(depth, dtype=np.float64)
        x = (uv[:, 0] - self.cx) / self.fx * z
        y = (uv[:, 1] - self.cy) / self.fy * z
        return np.stack([x, y, z], axis=-1)

    def pixel_grid(self, stride: int = 1) -> np.ndarray:
        """Pixel centres ``[H' x W' x 2]`` (u, v) sampled every ``stride`` pixels, at ``+0.5`` offsets."""
        us = np.arange(0, self.width, stride) + 0.5 * stride
        vs = np.arange(0, self.height, stride) + 0.5 * stride
        uu, vv = np.meshgrid(us, vs)
        return np.stack([uu, vv], axis=-1)

    def ray_directions(self, uv: np.ndarray) -> np.ndarray:
        """Camera-frame ray directions ``[N x 3]`` through pixels ``uv`` with ``z = 1`` (not normalised)."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        return np.stack(
            [(uv[:, 0] - self.cx) / self.fx, (uv[:, 1] - self.cy) / self.fy, np.ones(len(uv))], axis=-1
        )

    def depth_to_points(self, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Back-project a z-depth image ``[H x W]`` (metres, 0/NaN = invalid).

        Returns camera-frame points ``[N x 3]`` for valid pixels and their integer pixel indices ``[N x 2]`` (u, v).
        Pixel centres are at integer + 0.5.
        """
        depth = np.asarray(depth, dtype=np.float64)
        if depth.shape != (self.height, self.width):
            raise ValueError(f"depth shape {depth.shape} does not match camera size {(self.height, self.width)}")
        v, u = np.nonzero(np.isfinite(depth) & (depth > 0))
        uv = np.stack([u + 0.5, v + 0.5], axis=-1)
        return self.unproject(uv, depth[v, u]), np.stack([u, v], axis=-1)


def K_ros_to_core(K: np.ndarray) -> np.ndarray:
    """ROS/OpenCV ``K`` (pixel centres at integers, as in CameraInfo and OpenCV calibration) -> core ``K``
    (centres at +0.5): ``cx, cy += 0.5``."""
    K = np.array(K, dtype=np.float64)
    K[0, 2] += 0.5
    K[1, 2] += 0.5
    return K


def K_core_to_ros(K: np.ndarray) -> np.ndarray:
    """Core ``K`` (pixel centres at +0.5) -> ROS/OpenCV ``K`` (centres at integers): ``cx, cy -= 0.5``."""
    K = np.array(K, dtype=np.float64)
    K[0, 2] -= 0.5
    K[1, 2] -= 0.5
    return K
