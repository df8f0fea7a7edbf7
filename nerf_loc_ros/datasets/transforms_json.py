"""nerfstudio / instant-ngp ``transforms.json`` and Blender ``transforms_{train,val,test}.json``.

Poses in these files are camera-to-world with OpenGL camera axes (x right, y up, z back); they are
converted to OpenCV axes here. Intrinsics come from ``fl_x/fl_y/cx/cy/w/h`` (global or per frame) or
from ``camera_angle_x`` (Blender). Distortion (``k1, k2, p1, p2[, k3]``, OPENCV model) is removed by
undistorting the images; fisheye models are rejected. Alpha is composited onto ``background``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..geometry import opengl_to_opencv_pose
from .image_io import read_depth_png, read_rgb
from .posed_images import DatasetError, PosedImages
from .undistortion import undistort_frame

__all__ = ["load_transforms_json", "find_transforms_file"]

log = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")


def find_transforms_file(root: Path, split: str | None) -> Path:
    """The JSON file for ``split`` under ``root`` (``transforms_<split>.json`` or ``transforms.json``)."""
    root = Path(root)
    if root.is_file():
        return root
    if split not in (None, "all"):
        per_split = root / f"transforms_{split}.json"
        if per_split.is_file():
            return per_split
    if (root / "transforms.json").is_file():
        return root / "transforms.json"
    if (root / "transforms_train.json").is_file() and split in (None, "all"):
        return root / "transforms_train.json"
    raise DatasetError(f"{root}: no transforms.json or transforms_{split or 'train'}.json")


def _resolve_image(root: Path, file_path: str) -> Path:
    p = root / file_path
    if p.suffix in _IMAGE_SUFFIXES and p.is_file():
        return p
    for suffix in _IMAGE_SUFFIXES:  # Blender stores file_path without extension
        candidate = p.with_name(p.name + suffix)
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{root}: image '{file_path}' listed in transforms JSON not found")


def _intrinsics(meta: dict, frame: dict, width: int, height: int, where: str) -> tuple[np.ndarray, np.ndarray, str]:
    """K, distortion coefficients (OpenCV order) and model for one frame."""
    def get(key, default=None):
        return frame.get(key, meta.get(key, default))

    model = str(get("camera_model", "OPENCV")).upper()
    if model not in ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE"):
        raise DatasetError(f"{where}: camera_model {model} is not supported (only pinhole/OPENCV distortion)")
    fw, fh = get("w"), get("h")
    if fw is not None and fh is not None and (int(fw), int(fh)) != (width, height):
        # Images may have been downsampled after the JSON was written: scale intrinsics along.
        sx, sy = width / float(fw), height / float(fh)
    else:
        sx = sy = 1.0
    if get("fl_x") is not None:
        fx = float(get("fl_x")) * sx
        fy = float(get("fl_y", get("fl_x"))) * sy
        cx = float(get("cx", (fw or width) / 2.0)) * sx
        cy = float(get("cy", (fh or height) / 2.0)) * sy
    elif get("camera_angle_x") is not None:
        fx = 0.5 * width / np.tan(0.5 * float(get("camera_angle_x")))
        fy = 0.5 * height / np.tan(0.5 * float(get("camera_angle_y"))) if get("camera_angle_y") is not None else fx
        cx, cy = width / 2.0, height / 2.0
    else:
        raise DatasetError(f"{where}: no intrinsics (need fl_x/fl_y/cx/cy or camera_angle_x)")
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    D = np.array([float(get(k, 0.0)) for k in ("k1", "k2", "p1", "p2", "k3")])
    if any(float(get(k, 0.0)) != 0.0 for k in ("k4", "k5", "k6")):
        raise DatasetError(f"{where}: rational/fisheye distortion (k4..k6) is not supported")
    return K, D, model


def load_transforms_json(
    path: Path,
    split: str | None = None,
    background: tuple[int, int, int] | None = (255, 255, 255),
    depth_scale: float | None = None,
    max_frames: int | None = None,
) -> PosedImages:
    """Load a nerfstudio / instant-ngp / Blender dataset as :class:`PosedImages` (OpenCV camera axes).

    Args:
        path: dataset directory or the JSON file itself.
        split: ``train``/``val``/``test`` (Blender per-split files, or nerfstudio ``{split}_filenames``
            lists); ``None``/``all`` = every frame of the file.
        background: RGB colour alpha is composited onto (Blender default white); ``None`` drops alpha.
        depth_scale: depth PNG units per metre for ``depth_file_path`` (default 1000, or
            ``1/integer_depth_scale`` when the file gives it).
        max_frames: keep only the first N frames (for quick tests).
    """
    json_path = find_transforms_file(Path(path), split)
    root = json_path.parent
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{json_path}: cannot parse JSON ({exc})") from exc
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise DatasetError(f"{json_path}: no 'frames' list")
    wanted = meta.get(f"{split}_filenames") if split not in (None, "all") else None
    if wanted is not None:
        wanted = {str(Path(w)) for w in wanted}
        frames = [f for f in frames if str(Path(f.get("file_path", ""))) in wanted]
    if max_frames is not None:
        frames = frames[:max_frames]
    if depth_scale is None:
        depth_scale = 1.0 / float(meta["integer_depth_scale"]) if "integer_depth_scale" in meta else 1000.0

    images, Ks, poses, names, depths = [], [], [], [], []
    for i, frame in enumerate(tqdm(frames, desc=f"load {json_path.name}", leave=False, disable=None)):
        where = f"{json_path}: frame {i}"
        if "file_path" not in frame or "transform_matrix" not in frame:
            raise DatasetError(f"{where}: needs 'file_path' and 'transform_matrix'")
        img_path = _resolve_image(root, frame["file_path"])
        rgb = read_rgb(img_path, background=background)
        h, w = rgb.shape[:2]
        K, D, _ = _intrinsics(meta, frame, w, h, where)
        T_gl = np.asarray(frame["transform_matrix"], dtype=np.float64)
        if T_gl.shape != (4, 4):
            raise DatasetError(f"{where}: transform_matrix must be 4x4, got {T_gl.shape}")
        depth = None
        if "depth_file_path" in frame:
            depth = read_depth_png(root / frame["depth_file_path"], depth_scale)
        rgb, depth, K = undistort_frame(rgb, depth, K, D, where=str(img_path))
        images.append(rgb)
        depths.append(depth)
        Ks.append(K)
        poses.append(opengl_to_opencv_pose(T_gl))
        names.append(img_path.stem)
    has_depth = any(d is not None for d in depths)
    if has_depth and any(d is None for d in depths):
        raise DatasetError(f"{json_path}: depth_file_path given for some frames but not all")
    return PosedImages(
        images=images,
        K=np.stack(Ks),
        T_world_cam=np.stack(poses),
        names=names,
        timestamps_ns=np.arange(len(images), dtype=np.int64) * 100_000_000,  # no time in the format: 10 Hz
        depths=depths if has_depth else None,
        metric=False,
        source=str(json_path),
        extras={"background": background} if background is not None else {},
    )
