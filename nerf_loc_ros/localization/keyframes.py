"""Keyframe database: keyframe poses, retrieval descriptors and the cached NeRF surface points they observe.

Stored as ``keyframes.npz`` in the map directory (``allow_pickle=False``):

==================  ===============  ==========================================================
key                 shape / dtype    meaning
==================  ===============  ==========================================================
T_world_cam         [K x 4 x 4] f8   keyframe poses (OpenCV camera axes)
K                   [K x 3 x 3] f8   intrinsics
size                [K x 2] i4       (width, height)
names               [K] unicode      source image names
global_desc         [K x G] f4       retrieval descriptors (:mod:`.retrieval`)
codebook            [C x 64] f4      retrieval vocabulary
points              [P x 3] f4       expected NeRF surface points ``X = sum w_i x_i`` (world frame)
point_features      [P x F] f2       expected NeRF embeddings ``F = sum w_i f_i``
point_descriptors   [P x D] f2       point-head descriptors (filled once the encoder is trained)
obs_ptr             [K + 1] i8       CSR row pointer: observations of keyframe k are obs_ptr[k]:obs_ptr[k+1]
obs_point           [O] i4           point index of each observation
obs_uv              [O x 2] f4       keyframe pixel (pixel-centre convention) of each observation
point_patches       [P x S x S] u1   grey levels around each point's first observation in its keyframe image
                                     (the fine level's templates, :mod:`.fine`); [0 x 0 x 0] in maps without them
==================  ===============  ==========================================================
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..maps.manifest import MapError

__all__ = ["KeyframeDB", "select_keyframes", "pose_distance", "KEYFRAMES_FILE"]

KEYFRAMES_FILE = "keyframes.npz"


def pose_distance(T_a: np.ndarray, T_b: np.ndarray, length_scale: float, angle_scale_deg: float = 20.0) -> np.ndarray:
    """Combined pose distance ``|c_a - c_b| / length_scale + angle(R_a, R_b) / angle_scale_deg``.

    ``T_a`` is ``[4 x 4]`` or ``[N x 4 x 4]``; ``T_b`` is ``[M x 4 x 4]``; returns ``[M]`` or ``[N x M]``.
    """
    T_a = np.asarray(T_a)
    single = T_a.ndim == 2
    A = T_a[None] if single else T_a
    trans = np.linalg.norm(A[:, None, :3, 3] - T_b[None, :, :3, 3], axis=-1)
    cos = (np.einsum("aij,bij->ab", A[:, :3, :3], T_b[:, :3, :3]) - 1) / 2
    ang = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    d = trans / max(length_scale, 1e-9) + ang / angle_scale_deg
    return d[0] if single else d


def select_keyframes(T_world_cam: np.ndarray, max_keyframes: int, length_scale: float) -> np.ndarray:
    """Farthest-pose sampling: indices (sorted) of at most ``max_keyframes`` well-spread poses (all if fewer)."""
    n = len(T_world_cam)
    if max_keyframes <= 0:
        raise ValueError("max_keyframes must be positive")
    if n <= max_keyframes:
        return np.arange(n)
    chosen = [0]
    dist = pose_distance(T_world_cam[0], T_world_cam, length_scale)
    for _ in range(max_keyframes - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, pose_distance(T_world_cam[nxt], T_world_cam, length_scale))
    return np.sort(np.array(chosen))


@dataclass
class KeyframeDB:
    """Keyframes and cached surface points (see the module docstring for shapes and frames)."""

    T_world_cam: np.ndarray
    K: np.ndarray
    size: np.ndarray
    names: np.ndarray
    global_desc: np.ndarray
    codebook: np.ndarray
    points: np.ndarray
    point_features: np.ndarray
    point_descriptors: np.ndarray
    obs_ptr: np.ndarray
    obs_point: np.ndarray
    obs_uv: np.ndarray
    point_patches: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.uint8))

    def __len__(self) -> int:
        return len(self.T_world_cam)

    @property
    def num_points(self) -> int:
        return len(self.points)

    @property
    def has_patches(self) -> bool:
        """Whether every point has a fine-level patch (maps built before patches have none)."""
        return len(self.point_patches) == len(self.points) > 0

    def observed_points(self, keyframes: np.ndarray | list[int]) -> np.ndarray:
        """Sorted unique indices of the points observed by the given keyframes."""
        parts = [self.obs_point[self.obs_ptr[k]:self.obs_ptr[k + 1]] for k in keyframes]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def length_scale(self) -> float:
        """A tenth of the keyframe-centre spread (unit of :func:`pose_distance`), at least 1e-3."""
        c = self.T_world_cam[:, :3, 3]
        return max(float(np.linalg.norm(c.max(0) - c.min(0))) / 10, 1e-3) if len(c) > 1 else 1.0

    def nearest_keyframes(self, T_world_cam: np.ndarray, k: int, exclude: int | None = None) -> np.ndarray:
        """Indices of the ``k`` keyframes closest to a pose (by :func:`pose_distance`)."""
        d = pose_distance(T_world_cam, self.T_world_cam, self.length_scale())
        if exclude is not None:
            d[exclude] = np.inf
        return np.argsort(d)[:k]

    # ------------------------------------------------------------------ io
    def save(self, path: Path) -> None:
        """Write ``keyframes.npz`` (compressed, no pickles)."""
        np.savez_compressed(
            path, T_world_cam=self.T_world_cam, K=self.K, size=self.size.astype(np.int32),
            names=np.asarray(self.names, dtype=str), global_desc=self.global_desc.astype(np.float32),
            codebook=self.codebook.astype(np.float32), points=self.points.astype(np.float32),
            point_features=self.point_features.astype(np.float16),
            point_descriptors=self.point_descriptors.astype(np.float16), obs_ptr=self.obs_ptr.astype(np.int64),
            obs_point=self.obs_point.astype(np.int32), obs_uv=self.obs_uv.astype(np.float32),
            point_patches=self.point_patches.astype(np.uint8),
        )

    @classmethod
    def load(cls, path: Path) -> "KeyframeDB":
        """Read and validate ``keyframes.npz``; raises :class:`MapError` naming the file on bad content."""
        try:
            with np.load(path, allow_pickle=False) as z:
                # point_patches came later: maps without them load (the localizer skips its fine level)
                arrays = {k: z[k] for k in cls.__dataclass_fields__ if k in z.files or k != "point_patches"}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise MapError(f"{path}: cannot read keyframe database ({exc})") from exc
        db = cls(**arrays)
        db.validate(str(path))
        return db

    def validate(self, where: str = "keyframes") -> None:
        """Raise :class:`MapError` on inconsistent shapes, bad indices or non-finite values."""
        k, p = len(self.T_world_cam), len(self.points)
        checks = [
            (self.T_world_cam.shape == (k, 4, 4), "T_world_cam must be [K,4,4]"),
            (self.K.shape == (k, 3, 3) and self.size.shape == (k, 2) and len(self.names) == k, "K/size/names count"),
            (len(self.global_desc) == k, "global_desc count"),
            (self.points.shape == (p, 3) and len(self.point_features) == p and len(self.point_descriptors) == p,
             "points/point_features/point_descriptors count"),
            (self.obs_ptr.shape == (k + 1,) and self.obs_ptr[0] == 0 and self.obs_ptr[-1] == len(self.obs_point)
             and np.all(np.diff(self.obs_ptr) >= 0), "obs_ptr is not a valid CSR pointer"),
            (len(self.obs_uv) == len(self.obs_point), "obs_uv count"),
            (len(self.point_patches) == 0 or (self.point_patches.ndim == 3 and len(self.point_patches) == p
                                              and self.point_patches.shape[1] == self.point_patches.shape[2]),
             "point_patches must be [P,S,S] or empty"),
            (len(self.obs_point) == 0 or (self.obs_point.min() >= 0 and self.obs_point.max() < p),
             "obs_point index out of range"),
            (np.isfinite(self.points).all() and np.isfinite(self.T_world_cam).all(), "non-finite points or poses"),
        ]
        bad = [msg for ok, msg in checks if not ok]
        if bad:
            raise MapError(f"{where}: invalid keyframe database: {'; '.join(bad)}")
