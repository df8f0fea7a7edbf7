"""Lens undistortion at the data boundary (the core is pinhole-only, DESIGN.md section 2).

Models (ROS ``CameraInfo.distortion_model`` names):

- ``plumb_bob``: OpenCV radial-tangential ``(k1, k2, p1, p2[, k3])``;
- ``rational_polynomial``: OpenCV ``(k1, k2, p1, p2, k3, k4, k5, k6[, s1..s4, tx, ty])``;
- ``equidistant``: OpenCV fisheye / Kannala-Brandt ``(k1, k2, k3, k4)``.

``K`` is in OpenCV/ROS pixel convention (pixel centres at integer coordinates, as in CameraInfo);
convert a core K with :func:`nerf_loc_ros.geometry.K_core_to_ros` first if needed (undistortion
maps change by well under a pixel either way). Images are ``H x W [x C]`` arrays of any dtype that
``cv2.remap`` accepts; pixels that map outside the source image become 0 (invalid for depth).
"""

from __future__ import annotations

import cv2
import numpy as np

from .camera import check_intrinsics

__all__ = [
    "SUPPORTED_DISTORTION_MODELS",
    "UnsupportedDistortionError",
    "Undistorter",
    "has_distortion",
    "undistort_image",
    "undistort_points",
]

SUPPORTED_DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
_LENGTHS = {"plumb_bob": (4, 5, 8, 12, 14), "rational_polynomial": (8, 12, 14), "equidistant": (4,)}


class UnsupportedDistortionError(ValueError):
    """Unknown distortion model or a coefficient vector of the wrong length for the model."""


def has_distortion(D: np.ndarray | None) -> bool:
    """True when ``D`` holds any non-zero coefficient (None / empty = no distortion)."""
    return D is not None and bool(np.any(np.asarray(D, dtype=np.float64) != 0))


def _check(K: np.ndarray, D: np.ndarray | None, model: str) -> tuple[np.ndarray, np.ndarray, str]:
    K = check_intrinsics(K, what="undistortion K")
    D = np.zeros(0) if D is None else np.asarray(D, dtype=np.float64).reshape(-1)
    model = (model or "").strip().lower()
    if not has_distortion(D):
        return K, D, model
    if model == "fisheye":
        model = "equidistant"
    if model not in _LENGTHS:
        raise UnsupportedDistortionError(
            f"distortion model '{model}' is not supported (non-zero D {D.tolist()}); "
            f"expected one of {list(SUPPORTED_DISTORTION_MODELS)}"
        )
    if model == "equidistant" and len(D) > 4 and not np.any(D[4:]):
        D = D[:4]
    if len(D) not in _LENGTHS[model]:
        raise UnsupportedDistortionError(
            f"distortion model '{model}' needs {_LENGTHS[model]} coefficients, got {len(D)}"
        )
    return K, D, model


class Undistorter:
    """Precomputed undistortion maps for one camera: call it on many images of size ``(width, height)``.

    ``alpha=None`` keeps ``K`` as the new intrinsics (same focal length and principal point, some
    border pixels invalid); ``alpha`` in [0, 1] uses ``cv2.getOptimalNewCameraMatrix`` (0: only valid
    pixels, 1: all source pixels) or, for ``equidistant``, the fisheye ``balance``.
    Attributes: ``K_new`` (3x3, pixels, OpenCV convention), ``size``, ``identity`` (no distortion).
    """

    def __init__(
        self,
        K: np.ndarray,
        D: np.ndarray | None,
        model: str,
        size: tuple[int, int],
        alpha: float | None = None,
    ) -> None:
        self.K, self.D, self.model = _check(K, D, model)
        self.size = (int(size[0]), int(size[1]))
        self.identity = not has_distortion(self.D)
        self._maps: tuple[np.ndarray, np.ndarray] | None = None
        if self.identity or alpha is None:
            self.K_new = self.K.copy()
        elif self.model == "equidistant":
            self.K_new = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(
                self.K, self.D, self.size, np.eye(3), balance=float(alpha)
            )
        else:
            self.K_new, _ = cv2.getOptimalNewCameraMatrix(self.K, self.D, self.size, float(alpha), self.size)
        self.K_new = np.asarray(self.K_new, dtype=np.float64)

    def _get_maps(self) -> tuple[np.ndarray, np.ndarray]:
        if self._maps is None:
            if self.model == "equidistant":
                self._maps = cv2.fisheye.initUndistortRectifyMap(
                    self.K, self.D, np.eye(3), self.K_new, self.size, cv2.CV_16SC2
                )
            else:
                self._maps = cv2.initUndistortRectifyMap(self.K, self.D, None, self.K_new, self.size, cv2.CV_16SC2)
        return self._maps

    def __call__(self, image: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """Undistorted copy of ``image`` (``H x W [x C]``); use ``cv2.INTER_NEAREST`` for depth maps.

        Returns ``image`` itself when there is no distortion and ``K_new == K``.
        """
        h, w = image.shape[:2]
        if (w, h) != self.size:
            raise ValueError(f"image is {w}x{h} but the undistorter was built for {self.size[0]}x{self.size[1]}")
        if self.identity:
            return image
        m1, m2 = self._get_maps()
        return cv2.remap(image, m1, m2, interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def points(self, uv: np.ndarray) -> np.ndarray:
        """Undistort pixel coordinates ``[N x 2]`` (distorted image) -> pixels of the undistorted image (``K_new``)."""
        return undistort_points(uv, self.K, self.D, self.model, self.K_new)


def undistort_image(
    image: np.ndarray,
    K: np.ndarray,
    D: np.ndarray | None,
    model: str = "plumb_bob",
    alpha: float | None = None,
    interpolation: int = cv2.INTER_LINEAR,
) -> tuple[np.ndarray, np.ndarray]:
    """Undistort one image; returns ``(image, K_new)`` (K_new 3x3 float64, pixels).

    All-zero (or empty) ``D`` returns the input image unchanged with a copy of ``K``. Unknown models
    raise :class:`UnsupportedDistortionError`. For many images of one camera build an
    :class:`Undistorter` once instead (the maps are the expensive part).
    """
    h, w = image.shape[:2]
    und = Undistorter(K, D, model, (w, h), alpha=alpha)
    return und(image, interpolation), und.K_new.copy()


def undistort_points(
    uv: np.ndarray,
    K: np.ndarray,
    D: np.ndarray | None,
    model: str = "plumb_bob",
    K_new: np.ndarray | None = None,
) -> np.ndarray:
    """Undistort pixel coordinates ``[N x 2]`` -> pinhole pixels under ``K_new`` (default ``K``)."""
    K, D, model = _check(K, D, model)
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    P = K if K_new is None else np.asarray(K_new, dtype=np.float64)
    if not has_distortion(D) and K_new is None:
        return uv.copy()
    pts = uv.reshape(-1, 1, 2)
    if model == "equidistant":
        out = cv2.fisheye.undistortPoints(pts, K, D, R=np.eye(3), P=P)
    else:
        out = cv2.undistortPoints(pts, K, D if has_distortion(D) else None, P=P)
    return out.reshape(-1, 2)
