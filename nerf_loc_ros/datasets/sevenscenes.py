"""Microsoft 7-Scenes layout (and the staged ``sevenscenes_redkitchen`` subset).

Frames are ``frame-XXXXXX.{color.png,depth.png,pose.txt}``, either in ``frames/``, in the scene
root, or in ``seq-NN/`` folders. ``pose.txt`` is camera-to-world with OpenCV axes, metres. Depth is
uint16 millimetres (0 or 65535 = invalid) and, in 7-Scenes, not registered to colour.
Intrinsics: ``camera-intrinsics.txt`` if present, else the nominal 585/320/240 at 640x480 scaled to
the image size. The Kinect ran at about 30 Hz and there are no timestamps: time = frame number / 30.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..geometry import check_rigid
from .image_io import read_depth_png, read_rgb
from .posed_images import DatasetError, PosedImages

__all__ = ["load_sevenscenes", "parse_frame_filter"]

_FRAME_RE = re.compile(r"frame-(\d{6})\.pose\.txt$")
_FILTER_RE = re.compile(r"^(all|map|query|train|test)?(?:(<|>=)(\d+))?$")
NOMINAL_K_640 = np.array([[585.0, 0.0, 320.0], [0.0, 585.0, 240.0], [0.0, 0.0, 1.0]])


def parse_frame_filter(split: str | None) -> tuple[str, str | None, int | None]:
    """Parse ``map``, ``query``, ``all``, ``train``/``test`` (7-Scenes sequence splits), optionally
    followed by a frame-number filter such as ``<700`` or ``>=700`` (e.g. ``all<700``)."""
    m = _FILTER_RE.match((split or "all").strip())
    if not m:
        raise ValueError(f"7-Scenes split must look like map, query, all, train, test, all<700 or query>=700; got '{split}'")
    return m.group(1) or "all", m.group(2), int(m.group(3)) if m.group(3) else None


def _read_list(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def _frame_dirs(root: Path, which: str) -> list[Path]:
    seqs = sorted(p for p in root.glob("seq-*") if p.is_dir())
    if seqs:
        if which in ("train", "test"):
            split_file = root / ("TrainSplit.txt" if which == "train" else "TestSplit.txt")
            if not split_file.is_file():
                raise DatasetError(f"{root}: {split_file.name} not found for split '{which}'")
            nums = {int(re.sub(r"\D", "", s)) for s in _read_list(split_file)}
            seqs = [s for s in seqs if int(s.name.split("-")[1]) in nums]
        return seqs
    return [root / "frames"] if (root / "frames").is_dir() else [root]


def load_sevenscenes(
    path: Path, split: str | None = None, with_depth: bool = True, max_frames: int | None = None
) -> PosedImages:
    """Load a 7-Scenes scene (or the staged subset) as :class:`PosedImages` with metric depth.

    Args:
        path: scene root (holding ``frames/`` or ``seq-NN/`` or the frame files).
        split: ``map``/``query`` (lists in ``map.txt``/``query.txt``), ``train``/``test`` (7-Scenes
            sequence splits), ``all`` (default); append ``<N`` or ``>=N`` to filter by frame number.
        with_depth: also read the depth PNGs (metres, 0 = invalid).
        max_frames: keep only the first N frames after filtering.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: 7-Scenes directory not found")
    which, op, num = parse_frame_filter(split)
    entries: list[tuple[Path, str]] = []  # (pose file, name)
    for d in _frame_dirs(root, which):
        for p in sorted(d.iterdir()):
            if _FRAME_RE.search(p.name):
                name = p.name[: -len(".pose.txt")]
                entries.append((p, f"{d.name}/{name}" if d.name.startswith("seq-") else name))
    if not entries:
        raise DatasetError(f"{root}: no frame-XXXXXX.pose.txt files found")
    if which in ("map", "query"):
        list_file = root / f"{which}.txt"
        if not list_file.is_file():
            raise DatasetError(f"{root}: {list_file.name} not found for split '{which}'")
        keep = set(_read_list(list_file))
        entries = [e for e in entries if e[1] in keep]
        missing = keep - {e[1] for e in entries}
        if missing:
            raise DatasetError(f"{list_file}: {len(missing)} listed frames have no pose file, e.g. {sorted(missing)[0]}")
    frame_no = [int(_FRAME_RE.search(p.name).group(1)) for p, _ in entries]
    if op is not None:
        sel = [i for i, n in enumerate(frame_no) if (n < num if op == "<" else n >= num)]
        entries = [entries[i] for i in sel]
        frame_no = [frame_no[i] for i in sel]
    if max_frames is not None:
        entries, frame_no = entries[:max_frames], frame_no[:max_frames]
    if not entries:
        raise DatasetError(f"{root}: split '{split}' selects no frames")

    K_file = root / "camera-intrinsics.txt"
    K_file_values = None
    if K_file.is_file():
        try:
            K_file_values = np.loadtxt(K_file).reshape(3, 3)
        except ValueError as exc:
            raise DatasetError(f"{K_file}: expected a 3x3 matrix ({exc})") from exc

    images, depths, poses, Ks = [], [], [], []
    for pose_path, _ in tqdm(entries, desc=f"load {root.name}", leave=False, disable=None):
        stem = pose_path.name[: -len(".pose.txt")]
        try:
            T = np.loadtxt(pose_path)
        except ValueError as exc:
            raise DatasetError(f"{pose_path}: cannot parse pose ({exc})") from exc
        if T.shape != (4, 4):
            raise DatasetError(f"{pose_path}: expected a 4x4 matrix, got shape {T.shape}")
        try:
            T = check_rigid(T, what=str(pose_path))
        except ValueError as exc:
            raise DatasetError(str(exc)) from exc
        rgb = read_rgb(pose_path.with_name(f"{stem}.color.png"))
        h, w = rgb.shape[:2]
        if K_file_values is not None:
            K = K_file_values
        else:
            K = np.diag([w / 640.0, h / 480.0, 1.0]) @ NOMINAL_K_640
        images.append(rgb)
        Ks.append(K)
        poses.append(T)
        if with_depth:
            d = read_depth_png(pose_path.with_name(f"{stem}.depth.png"), scale=1000.0)
            depths.append(d)
    return PosedImages(
        images=images,
        K=np.stack(Ks),
        T_world_cam=np.stack(poses),
        names=[e[1] for e in entries],
        timestamps_ns=np.asarray(frame_no, dtype=np.int64) * 1_000_000_000 // 30,
        depths=depths if with_depth else None,
        metric=True,
        source=f"{root} [{split or 'all'}]",
    )
