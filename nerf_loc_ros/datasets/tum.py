"""TUM RGB-D layout: ``rgb.txt``, ``depth.txt``, ``groundtruth.txt`` and ``rgb/``, ``depth/`` folders.

``groundtruth.txt`` lines are ``timestamp tx ty tz qx qy qz qw``: the pose of the colour camera's
optical centre in the motion-capture world (camera axes as OpenCV: x right, y down, z forward),
metres. Images, depth and poses are associated by nearest timestamp (``max_dt`` seconds). Depth PNGs
are uint16 with 5000 units per metre. Intrinsics: the published calibration of the Freiburg camera
named in the folder (``freiburg1/2/3``; fr1/fr2 distortion is removed by undistorting) or ``K`` given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..geometry import K_ros_to_core, pose_from_translation_quaternion
from .image_io import read_depth_png, read_rgb
from .posed_images import DatasetError, PosedImages
from .undistortion import undistort_frame

__all__ = ["load_tum", "TUM_CAMERAS", "read_tum_list", "read_tum_trajectory"]

#: Published calibration (640x480): fx, fy, cx, cy, d0..d4 (OpenCV order k1, k2, p1, p2, k3).
TUM_CAMERAS = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3, (0.2624, -0.9531, -0.0054, 0.0026, 1.1633)),
    "freiburg2": (520.9, 521.0, 325.1, 249.7, (0.2312, -0.7849, -0.0033, -0.0001, 0.9172)),
    "freiburg3": (535.4, 539.2, 320.1, 247.6, (0.0, 0.0, 0.0, 0.0, 0.0)),
}


def read_tum_list(path: Path) -> tuple[np.ndarray, list[str]]:
    """Read ``rgb.txt``/``depth.txt`` -> ``(timestamps [N] seconds, relative file paths)``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: not found")
    stamps, files = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        tok = line.split()
        try:
            stamps.append(float(tok[0]))
            files.append(tok[1])
        except (ValueError, IndexError) as exc:
            raise DatasetError(f"{path}:{n}: expected 'timestamp filename' ({exc})") from exc
    return np.asarray(stamps), files


def read_tum_trajectory(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a TUM trajectory file -> ``(timestamps [N] s, T_world_cam [N x 4 x 4])``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: not found")
    stamps, poses = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            v = [float(x) for x in line.split()]
            if len(v) != 8:
                raise ValueError(f"{len(v)} values, expected 8")
            poses.append(pose_from_translation_quaternion(v[1:4], v[4:8]))
        except ValueError as exc:
            raise DatasetError(f"{path}:{n}: bad trajectory line ({exc})") from exc
        stamps.append(v[0])
    if not stamps:
        raise DatasetError(f"{path}: no poses")
    stamps = np.asarray(stamps)
    if np.any(np.diff(stamps) <= 0):
        raise DatasetError(f"{path}: timestamps are not strictly increasing")
    return stamps, np.stack(poses)


def _nearest(query: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.clip(np.searchsorted(ref, query), 1, len(ref) - 1) if len(ref) > 1 else np.zeros(len(query), int)
    if len(ref) > 1:
        left_closer = np.abs(query - ref[idx - 1]) <= np.abs(query - ref[idx])
        idx = np.where(left_closer, idx - 1, idx)
    return idx, np.abs(query - ref[idx])


def load_tum(
    path: Path,
    K: np.ndarray | None = None,
    distortion: np.ndarray | None = None,
    with_depth: bool = True,
    max_dt: float = 0.02,
    stride: int = 1,
    max_frames: int | None = None,
) -> PosedImages:
    """Load a TUM RGB-D sequence folder as :class:`PosedImages` (OpenCV axes, metres, depth in metres).

    Args:
        path: sequence folder (``rgbd_dataset_freiburgX_...``).
        K, distortion: intrinsics (640x480) and OpenCV distortion; default from the folder name.
        with_depth: associate and read depth frames.
        max_dt: association tolerance in seconds between rgb, depth and ground truth.
        stride: keep every ``stride``-th associated frame.
        max_frames: keep at most this many frames.
    """
    root = Path(path)
    if K is None:
        cam = next((v for k, v in TUM_CAMERAS.items() if k in root.name), None)
        if cam is None:
            raise DatasetError(f"{root}: cannot tell the TUM camera (freiburg1/2/3) from the folder name; pass K")
        # published OpenCV calibration: pixel centres at integers -> core convention (+0.5)
        K = K_ros_to_core(np.array([[cam[0], 0, cam[2]], [0, cam[1], cam[3]], [0, 0, 1.0]]))
        distortion = np.asarray(cam[4]) if distortion is None else distortion
    distortion = np.zeros(5) if distortion is None else np.asarray(distortion, dtype=np.float64)
    t_rgb, f_rgb = read_tum_list(root / "rgb.txt")
    t_gt, T_gt = read_tum_trajectory(root / "groundtruth.txt")
    keep = np.ones(len(t_rgb), bool)
    gi, gdt = _nearest(t_rgb, t_gt)
    keep &= gdt <= max_dt
    if with_depth:
        t_d, f_d = read_tum_list(root / "depth.txt")
        di, ddt = _nearest(t_rgb, t_d)
        keep &= ddt <= max_dt
    sel = np.nonzero(keep)[0][::stride]
    if max_frames is not None:
        sel = sel[:max_frames]
    if len(sel) == 0:
        raise DatasetError(f"{root}: no rgb frame has depth and ground truth within {max_dt} s")
    images, depths = [], []
    for i in tqdm(sel, desc=f"load {root.name}", leave=False, disable=None):
        rgb = read_rgb(root / f_rgb[i])
        depth = read_depth_png(root / f_d[di[i]], scale=5000.0) if with_depth else None
        rgb, depth, _ = undistort_frame(rgb, depth, K, distortion, where=str(root / f_rgb[i]))
        images.append(rgb)
        depths.append(depth)
    return PosedImages(
        images=images,
        K=np.repeat(np.asarray(K, dtype=np.float64)[None], len(sel), axis=0),
        T_world_cam=T_gt[gi[sel]],
        names=[Path(f_rgb[i]).stem for i in sel],
        timestamps_ns=np.round(t_rgb[sel] * 1e9).astype(np.int64),
        depths=depths if with_depth else None,
        metric=True,
        source=str(root),
    )
