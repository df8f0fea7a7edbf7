"""COLMAP sparse models (``cameras``, ``images``, ``points3D`` in ``.bin`` or ``.txt``).

COLMAP stores world-to-camera poses (``qvec`` = w, x, y, z and ``tvec``) with OpenCV camera axes;
:func:`load_colmap` inverts them to ``T_world_cam``. Pixel coordinates use COLMAP's convention (the
centre of the top-left pixel is (0.5, 0.5)), the one the core uses. Cameras with radial/OpenCV
distortion are undistorted; fisheye and other models are rejected with a clear error.
Format reference: COLMAP documentation, "Output Format".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..geometry import invert_pose, make_pose
from .image_io import read_rgb
from .posed_images import DatasetError, PosedImages
from .undistortion import undistort_frame

__all__ = ["ColmapCamera", "ColmapImage", "read_cameras", "read_images", "read_points3D", "load_colmap"]

# model id -> (name, number of params)
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
}
_MODEL_BY_NAME = {name: (mid, n) for mid, (name, n) in CAMERA_MODELS.items()}


@dataclass
class ColmapCamera:
    """One COLMAP camera: model name, size (pixels) and raw parameter vector."""

    camera_id: int
    model: str
    width: int
    height: int
    params: np.ndarray

    def pinhole(self) -> tuple[np.ndarray, np.ndarray]:
        """``(K 3x3, D)`` with D in OpenCV order (k1, k2, p1, p2, k3); raises for unsupported models."""
        p = self.params
        if self.model == "SIMPLE_PINHOLE":
            f, cx, cy = p
            return _K(f, f, cx, cy), np.zeros(5)
        if self.model == "PINHOLE":
            fx, fy, cx, cy = p
            return _K(fx, fy, cx, cy), np.zeros(5)
        if self.model == "SIMPLE_RADIAL":
            f, cx, cy, k = p
            return _K(f, f, cx, cy), np.array([k, 0, 0, 0, 0.0])
        if self.model == "RADIAL":
            f, cx, cy, k1, k2 = p
            return _K(f, f, cx, cy), np.array([k1, k2, 0, 0, 0.0])
        if self.model == "OPENCV":
            fx, fy, cx, cy, k1, k2, p1, p2 = p
            return _K(fx, fy, cx, cy), np.array([k1, k2, p1, p2, 0.0])
        raise DatasetError(f"COLMAP camera {self.camera_id}: model {self.model} is not supported (pinhole/radial/OPENCV)")


@dataclass
class ColmapImage:
    """One registered COLMAP image: world-to-camera rotation (w, x, y, z) and translation."""

    image_id: int
    qvec_wxyz: np.ndarray
    tvec: np.ndarray
    camera_id: int
    name: str

    def T_world_cam(self) -> np.ndarray:
        """Camera-to-world pose (OpenCV axes)."""
        w, x, y, z = self.qvec_wxyz
        T_cam_world = make_pose(Rotation.from_quat([x, y, z, w]).as_matrix(), self.tvec)
        return invert_pose(T_cam_world)


def _K(fx, fy, cx, cy) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


class _Reader:
    """Little-endian struct reader that names the file on truncation."""

    def __init__(self, path: Path):
        self.path = path
        self.data = path.read_bytes()
        self.pos = 0

    def read(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise DatasetError(f"{self.path}: truncated at byte {self.pos} (file has {len(self.data)} bytes)")
        out = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return out

    def read_string(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise DatasetError(f"{self.path}: truncated image name at byte {self.pos}")
        s = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return s

    def skip(self, nbytes: int) -> None:
        if self.pos + nbytes > len(self.data):
            raise DatasetError(f"{self.path}: truncated at byte {self.pos}")
        self.pos += nbytes


def _model_file(model_dir: Path, stem: str) -> Path:
    for suffix in (".bin", ".txt"):
        p = Path(model_dir) / f"{stem}{suffix}"
        if p.is_file():
            return p
    raise DatasetError(f"{model_dir}: {stem}.bin / {stem}.txt not found")


def _text_lines(path: Path):
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line


def read_cameras(model_dir: Path) -> dict[int, ColmapCamera]:
    """Read ``cameras.bin``/``cameras.txt`` -> ``{camera_id: ColmapCamera}``."""
    path = _model_file(model_dir, "cameras")
    cams: dict[int, ColmapCamera] = {}
    try:
        if path.suffix == ".bin":
            r = _Reader(path)
            (n,) = r.read("Q")
            for _ in range(n):
                cid, mid, w, h = r.read("iiQQ")
                if mid not in CAMERA_MODELS:
                    raise DatasetError(f"{path}: unknown camera model id {mid}")
                name, npar = CAMERA_MODELS[mid]
                cams[cid] = ColmapCamera(cid, name, int(w), int(h), np.array(r.read("d" * npar)))
        else:
            for line in _text_lines(path):
                tok = line.split()
                name = tok[1]
                if name not in _MODEL_BY_NAME:
                    raise DatasetError(f"{path}: unknown camera model {name}")
                params = np.array([float(v) for v in tok[4:]])
                if len(params) != _MODEL_BY_NAME[name][1]:
                    raise DatasetError(f"{path}: camera {tok[0]} has {len(params)} params, {name} needs "
                                       f"{_MODEL_BY_NAME[name][1]}")
                cams[int(tok[0])] = ColmapCamera(int(tok[0]), name, int(tok[2]), int(tok[3]), params)
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path}: malformed ({exc})") from exc
    return cams


def read_images(model_dir: Path) -> dict[int, ColmapImage]:
    """Read ``images.bin``/``images.txt`` -> ``{image_id: ColmapImage}`` (2D observations skipped)."""
    path = _model_file(model_dir, "images")
    images: dict[int, ColmapImage] = {}
    try:
        if path.suffix == ".bin":
            r = _Reader(path)
            (n,) = r.read("Q")
            for _ in range(n):
                iid, qw, qx, qy, qz, tx, ty, tz, cid = r.read("idddddddi")
                name = r.read_string()
                (npts,) = r.read("Q")
                r.skip(24 * npts)
                images[iid] = ColmapImage(iid, np.array([qw, qx, qy, qz]), np.array([tx, ty, tz]), cid, name)
        else:
            # two lines per image (pose, then 2D points, possibly empty): keep empty lines here
            raw = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
            for i in range(0, len(raw), 2):
                tok = raw[i].split()
                if not tok:
                    continue
                iid = int(tok[0])
                q = np.array([float(v) for v in tok[1:5]])
                t = np.array([float(v) for v in tok[5:8]])
                images[iid] = ColmapImage(iid, q, t, int(tok[8]), " ".join(tok[9:]))
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path}: malformed ({exc})") from exc
    return images


def read_points3D(model_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read ``points3D.bin``/``.txt`` -> ``(xyz [N x 3] float64 world, rgb [N x 3] uint8, error [N] px)``."""
    path = _model_file(model_dir, "points3D")
    xyz, rgb, err = [], [], []
    try:
        if path.suffix == ".bin":
            r = _Reader(path)
            (n,) = r.read("Q")
            for _ in range(n):
                vals = r.read("QdddBBBd")
                xyz.append(vals[1:4])
                rgb.append(vals[4:7])
                err.append(vals[7])
                (track_len,) = r.read("Q")
                r.skip(8 * track_len)
        else:
            for line in _text_lines(path):
                tok = line.split()
                xyz.append([float(v) for v in tok[1:4]])
                rgb.append([int(v) for v in tok[4:7]])
                err.append(float(tok[7]))
    except (ValueError, IndexError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path}: malformed ({exc})") from exc
    return (
        np.asarray(xyz, dtype=np.float64).reshape(-1, 3),
        np.asarray(rgb, dtype=np.uint8).reshape(-1, 3),
        np.asarray(err, dtype=np.float64),
    )


def load_colmap(
    path: Path, images_dir: Path | None = None, max_frames: int | None = None
) -> PosedImages:
    """Load a COLMAP model and its images as :class:`PosedImages` (OpenCV axes, COLMAP units).

    Args:
        path: the model folder (holding cameras/images/points3D), or a scene root with ``sparse/0``.
        images_dir: folder the image names are relative to (default ``<scene root>/images``).
        max_frames: keep only the first N images in name order.
    """
    path = Path(path)
    model_dir = path / "sparse" / "0" if (path / "sparse" / "0").is_dir() else path
    scene_root = path if model_dir != path else model_dir.parent.parent
    images_dir = Path(images_dir) if images_dir is not None else scene_root / "images"
    cams = read_cameras(model_dir)
    imgs = sorted(read_images(model_dir).values(), key=lambda im: im.name)
    if max_frames is not None:
        imgs = imgs[:max_frames]
    if not imgs:
        raise DatasetError(f"{model_dir}: no registered images")
    out_rgb, Ks, poses = [], [], []
    for im in imgs:
        if im.camera_id not in cams:
            raise DatasetError(f"{model_dir}: image {im.name} refers to missing camera {im.camera_id}")
        cam = cams[im.camera_id]
        K, D = cam.pinhole()
        rgb = read_rgb(images_dir / im.name)
        h, w = rgb.shape[:2]
        if (w, h) != (cam.width, cam.height):
            s = w / cam.width
            if abs(h / cam.height - s) > 0.01:
                raise DatasetError(f"{images_dir / im.name}: size {w}x{h} does not match camera {cam.width}x{cam.height}")
            K = np.diag([s, s, 1.0]) @ K
        rgb, _, K = undistort_frame(rgb, None, K, D, where=str(images_dir / im.name))
        out_rgb.append(rgb)
        Ks.append(K)
        poses.append(im.T_world_cam())
    return PosedImages(
        images=out_rgb,
        K=np.stack(Ks),
        T_world_cam=np.stack(poses),
        names=[Path(im.name).stem for im in imgs],
        timestamps_ns=np.arange(len(imgs), dtype=np.int64) * 100_000_000,
        metric=False,
        source=str(model_dir),
    )
