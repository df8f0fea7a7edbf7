"""``PosedImages``: the one type every dataset loader returns.

All poses are ``T_world_cam`` (camera-to-world, 4x4 float64) with OpenCV camera axes
(x right, y down, z forward), metres (or the dataset's unit for scale-free scenes such as LLFF).
Images are ``H x W x 3`` uint8 RGB; depth is ``H x W`` float32 z-depth in the same unit, 0 = invalid.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from ..geometry import PinholeCamera, check_intrinsics, check_rigid

__all__ = ["DatasetError", "PosedImages"]


class DatasetError(ValueError):
    """A dataset on disk (or in a bag) is missing, malformed or inconsistent; the message names the file."""


@dataclass
class PosedImages:
    """A set of posed RGB images (optionally with depth), as plain numpy arrays.

    Attributes:
        images: list of ``[H x W x 3]`` uint8 RGB images (sizes may differ per image).
        K: ``[N x 3 x 3]`` float64 pinhole intrinsics (pixel-centre convention: centre of pixel
            (col i, row j) is at (i + 0.5, j + 0.5)).
        T_world_cam: ``[N x 4 x 4]`` float64 camera-to-world poses, OpenCV camera axes.
        names: one name per image (file stem or ``topic@stamp``).
        timestamps_ns: ``[N]`` int64 nanoseconds (frame index based when the dataset has no time).
        depths: optional list of ``[H x W]`` float32 z-depth maps (0 = invalid), metres.
        frame_id: name of the world frame (e.g. ``map``).
        metric: True when the poses are in metres (False for scale-free reconstructions such as LLFF).
        source: where the data came from (path or generator spec), for reports.
    """

    images: list[np.ndarray]
    K: np.ndarray
    T_world_cam: np.ndarray
    names: list[str]
    timestamps_ns: np.ndarray
    depths: list[np.ndarray] | None = None
    frame_id: str = "map"
    metric: bool = True
    source: str = ""
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64)
        self.T_world_cam = np.asarray(self.T_world_cam, dtype=np.float64)
        self.timestamps_ns = np.asarray(self.timestamps_ns, dtype=np.int64)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise :class:`DatasetError` on inconsistent counts, bad images, non-rigid poses or bad intrinsics."""
        n = len(self.images)
        where = self.source or "PosedImages"
        counts = {
            "K": len(self.K),
            "T_world_cam": len(self.T_world_cam),
            "names": len(self.names),
            "timestamps_ns": len(self.timestamps_ns),
        }
        if self.depths is not None:
            counts["depths"] = len(self.depths)
        bad = {k: v for k, v in counts.items() if v != n}
        if bad:
            raise DatasetError(f"{where}: {n} images but counts differ: {bad}")
        if self.K.shape[1:] != (3, 3) or self.T_world_cam.shape[1:] != (4, 4):
            raise DatasetError(f"{where}: K must be [N,3,3] and T_world_cam [N,4,4]")
        for i in range(n):
            img = self.images[i]
            name = self.names[i]
            if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
                desc = getattr(img, "shape", type(img))
                raise DatasetError(f"{where}: image '{name}' must be HxWx3 uint8 RGB, got {desc}")
            try:
                check_intrinsics(self.K[i], what=f"{where}: intrinsics of '{name}'")
                self.T_world_cam[i] = check_rigid(self.T_world_cam[i], what=f"{where}: pose of '{name}'")
            except ValueError as exc:
                raise DatasetError(str(exc)) from exc
            if self.depths is not None:
                d = self.depths[i]
                if d is not None and d.shape != img.shape[:2]:
                    raise DatasetError(f"{where}: depth of '{name}' has shape {d.shape}, image {img.shape[:2]}")

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.images)

    def size(self, i: int) -> tuple[int, int]:
        """``(width, height)`` of image ``i`` in pixels."""
        h, w = self.images[i].shape[:2]
        return w, h

    def camera(self, i: int) -> PinholeCamera:
        """Pinhole camera of image ``i``."""
        w, h = self.size(i)
        return PinholeCamera.from_K(self.K[i], w, h)

    @property
    def has_depth(self) -> bool:
        return self.depths is not None

    def subset(self, indices: Sequence[int] | np.ndarray) -> "PosedImages":
        """A new ``PosedImages`` with the images at ``indices`` (in that order); arrays are shared, not copied."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"subset index out of range for {len(self)} images")
        return replace(
            self,
            images=[self.images[i] for i in idx],
            K=self.K[idx],
            T_world_cam=self.T_world_cam[idx],
            names=[self.names[i] for i in idx],
            timestamps_ns=self.timestamps_ns[idx],
            depths=None if self.depths is None else [self.depths[i] for i in idx],
            extras=dict(self.extras),
        )

    def camera_centres(self) -> np.ndarray:
        """Camera centres ``[N x 3]`` in the world frame."""
        return self.T_world_cam[:, :3, 3].copy()

    def extent(self) -> float:
        """Scene extent used for scale-relative thresholds: diagonal of the camera-centre bounding box.

        (Object-centric datasets where cameras orbit the scene get a meaningful value too.)
        """
        c = self.camera_centres()
        return float(np.linalg.norm(c.max(0) - c.min(0))) if len(c) > 1 else 0.0
