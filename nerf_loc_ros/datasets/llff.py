"""LLFF ``poses_bounds.npy`` datasets (forward-facing captures, e.g. fern).

Each row holds ``[R | t | hwf]`` (3x5, camera-to-world, R columns = [down, right, back]) and the
near/far depth bounds. ``hwf`` refers to the full-resolution images; intrinsics are scaled to the
image folder actually read (``images_8`` is an 8x downsample). Poses are converted to OpenCV axes.
The world frame and unit are COLMAP's (arbitrary scale): ``metric=False``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..geometry import llff_to_opencv_pose
from .image_io import read_rgb
from .posed_images import DatasetError, PosedImages

__all__ = ["load_llff", "pick_llff_image_dir"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def pick_llff_image_dir(root: Path, factor: int | None = None) -> Path:
    """``images_<factor>`` if given, else the most downsampled ``images_N`` present, else ``images``."""
    root = Path(root)
    if factor is not None:
        d = root / ("images" if factor == 1 else f"images_{factor}")
        if not d.is_dir():
            raise DatasetError(f"{root}: image folder {d.name} not found")
        return d
    candidates = sorted(
        (int(p.name.split("_")[1]), p) for p in root.glob("images_*") if p.is_dir() and p.name.split("_")[1].isdigit()
    )
    if candidates:
        return candidates[-1][1]
    if (root / "images").is_dir():
        return root / "images"
    raise DatasetError(f"{root}: no images/ or images_N/ folder")


def load_llff(path: Path, factor: int | None = None, max_frames: int | None = None) -> PosedImages:
    """Load an LLFF scene directory as :class:`PosedImages` (OpenCV camera axes, COLMAP units).

    Args:
        path: directory holding ``poses_bounds.npy`` and ``images*/``.
        factor: downsample folder to use (``images_<factor>``); default: the smallest images present.
        max_frames: keep only the first N frames (sorted filename order).
    """
    root = Path(path)
    pb_path = root / "poses_bounds.npy"
    if not pb_path.is_file():
        raise DatasetError(f"{root}: poses_bounds.npy not found")
    try:
        pb = np.load(pb_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{pb_path}: cannot read ({exc})") from exc
    if pb.ndim != 2 or pb.shape[1] != 17:
        raise DatasetError(f"{pb_path}: expected shape (N, 17), got {pb.shape}")
    img_dir = pick_llff_image_dir(root, factor)
    files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if len(files) != len(pb):
        raise DatasetError(f"{pb_path}: {len(pb)} poses but {len(files)} images in {img_dir}")
    P = pb[:, :15].reshape(-1, 3, 5)
    bounds = pb[:, 15:17]
    if max_frames is not None:
        files, P, bounds = files[:max_frames], P[:max_frames], bounds[:max_frames]
    images, Ks = [], []
    for f, p in zip(files, P):
        rgb = read_rgb(f)
        h, w = rgb.shape[:2]
        H, W, focal = p[:, 4]
        if not np.all(np.isfinite(p[:, 4])) or H <= 0 or W <= 0 or focal <= 0:
            raise DatasetError(f"{pb_path}: invalid hwf {p[:, 4].tolist()} for {f.name}")
        if abs(w / W - h / H) > 0.01:
            raise DatasetError(f"{f}: size {w}x{h} is not a uniform downsample of {W:.0f}x{H:.0f}")
        s = w / W
        Ks.append(np.array([[focal * s, 0.0, w / 2.0], [0.0, focal * s, h / 2.0], [0.0, 0.0, 1.0]]))
        images.append(rgb)
    return PosedImages(
        images=images,
        K=np.stack(Ks),
        T_world_cam=llff_to_opencv_pose(P[:, :, :4]),
        names=[f.stem for f in files],
        timestamps_ns=np.arange(len(files), dtype=np.int64) * 100_000_000,
        metric=False,
        source=str(root),
        extras={"near_far": bounds},
    )
