"""``load_dataset(spec, split)``: one entry point for every dataset layout.

``spec`` is a path (the layout is detected), an alias of a dataset in the shared data folder
(``lego``, ``fern``, ``redkitchen``), or ``procedural``; options follow as ``:key=value``:

- ``procedural:seed=3:frames=120:size=320x240`` (split ``mapping``/``query`` picks the session);
- ``path/to/bag:image_topic=/cam/image_raw:gt_topic=/ground_truth/pose`` (also ``camera_info_topic``,
  ``depth_topic``, ``gt_tf=map,camera_optical_frame``, ``undistort=false``);
- ``fern:factor=8``, ``lego:background=black``, ``redkitchen:depth=false``, ``...:max_frames=10``.

Splits: the layout's own (Blender ``train``/``val``/``test``; 7-Scenes ``map``/``query``/``all<700``;
procedural ``mapping``/``query``) or the generic hold-out ``test@N`` / ``train@N`` (every N-th view,
starting with the first, is a test view; the rest are training views — the LLFF convention).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .posed_images import DatasetError, PosedImages

__all__ = ["load_dataset", "detect_layout", "shared_data_dir", "DATASET_ALIASES", "parse_spec"]

DATASET_ALIASES = {
    "lego": "nerf_synthetic_lego",
    "fern": "llff_fern",
    "redkitchen": "sevenscenes_redkitchen",
    "7scenes": "sevenscenes_redkitchen",
}
_HOLDOUT_RE = re.compile(r"^(train|test)@(\d+)$")


def shared_data_dir() -> Path | None:
    """The shared datasets folder: ``$NERF_LOC_DATA``, else ``../shared/data`` from the cwd or the repo."""
    env = os.environ.get("NERF_LOC_DATA")
    candidates = [Path(env)] if env else []
    candidates += [Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[3] / "shared" / "data"]
    return next((c for c in candidates if c.is_dir()), None)


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``name_or_path:key=value:...`` into the base and an options dict."""
    parts = spec.split(":")
    base = [parts[0]]
    opts: dict[str, str] = {}
    for p in parts[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            opts[k.strip()] = v.strip()
        else:  # a ':' inside a path
            base.append(p)
    return ":".join(base), opts


def detect_layout(path: Path) -> str:
    """Name of the loader for a dataset at ``path``: blender, llff, colmap, sevenscenes, tum or bag."""
    path = Path(path)
    if path.is_file():
        if path.suffix == ".json":
            return "transforms"
        if path.suffix in (".bag", ".db3", ".mcap"):
            return "bag"
        raise DatasetError(f"{path}: unknown dataset file type")
    if not path.is_dir():
        raise DatasetError(f"{path}: dataset not found")
    if (path / "metadata.yaml").is_file() or any(path.glob("*.db3")) or any(path.glob("*.mcap")):
        return "bag"
    if any(path.glob("transforms*.json")):
        return "transforms"
    if (path / "poses_bounds.npy").is_file():
        return "llff"
    if (path / "groundtruth.txt").is_file() and (path / "rgb.txt").is_file():
        return "tum"
    if any(path.glob("frames/frame-*.pose.txt")) or any(path.glob("seq-*/frame-*.pose.txt")) or any(
        path.glob("frame-*.pose.txt")
    ):
        return "sevenscenes"
    if any((path / "sparse" / "0").glob("images.*")) or any(path.glob("images.bin")) or any(path.glob("images.txt")):
        return "colmap"
    raise DatasetError(f"{path}: cannot tell the dataset layout (transforms.json, poses_bounds.npy, COLMAP, "
                       "7-Scenes, TUM RGB-D or a ROS bag expected)")


def _resolve_path(base: str) -> Path:
    """A dataset path; an alias (``lego``...) names the shared data unless a *dataset* of that name is in the cwd."""
    p = Path(base).expanduser()
    if p.exists() and (base not in DATASET_ALIASES or _has_layout(p)):
        return p
    if base in DATASET_ALIASES:
        data = shared_data_dir()
        if data is None:
            raise DatasetError(f"dataset alias '{base}' needs the shared data folder: set NERF_LOC_DATA")
        return data / DATASET_ALIASES[base]
    raise DatasetError(f"{base}: dataset not found (not a path, not one of {sorted(DATASET_ALIASES)} or procedural)")


def _has_layout(path: Path) -> bool:
    try:
        detect_layout(path)
        return True
    except DatasetError:
        return False


def _as_bool(v: str) -> bool:
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true/false, got '{v}'")


def _holdout(posed: PosedImages, which: str, every: int) -> PosedImages:
    if every < 2:
        raise ValueError("hold-out split needs N >= 2 (e.g. test@8)")
    idx = np.arange(len(posed))
    test = idx % every == 0
    return posed.subset(idx[test] if which == "test" else idx[~test])


def default_eval_splits(spec: str) -> tuple[str, str]:
    """``(train_split, test_split)`` for held-out evaluation of a dataset spec.

    Blender-style ``transforms_test.json`` -> (train, test); 7-Scenes -> (map, query); procedural ->
    (mapping, query); everything else holds out every 8th frame (train@8, test@8, the LLFF protocol).
    """
    base, _ = parse_spec(spec)
    if base == "procedural":
        return "mapping", "query"
    path = _resolve_path(base)
    layout = detect_layout(path)
    if layout == "transforms" and path.is_dir() and (path / "transforms_test.json").is_file():
        return "train", "test"
    if layout == "sevenscenes":
        return "map", "query"
    return "train@8", "test@8"


def train_split_for(spec: str, test_split: str) -> str:
    """The training split that goes with held-out ``test_split`` (test -> train, query -> map/mapping, test@N -> train@N)."""
    m = _HOLDOUT_RE.match(test_split)
    if m:
        return f"train@{m.group(2)}"
    if test_split == "test":
        return "train"
    if test_split == "query":
        return default_eval_splits(spec)[0]
    raise ValueError(f"no training split known for held-out split '{test_split}'; use test, query or test@N")


def load_dataset(spec: str, split: str | None = None, **overrides) -> PosedImages:
    """Load any supported dataset as :class:`PosedImages` (OpenCV camera axes).

    Args:
        spec: path, alias or ``procedural``, with optional ``:key=value`` options (module docstring).
        split: layout split or generic ``test@N``/``train@N``; ``None`` = the layout's default
            (Blender ``train``, procedural ``mapping``, others every frame).
        overrides: options as keyword arguments (take precedence over those in ``spec``).
    """
    base, opts = parse_spec(spec)
    opts.update({k: str(v) for k, v in overrides.items() if v is not None})
    holdout = _HOLDOUT_RE.match(split) if split else None
    native_split = None if holdout else split
    max_frames = int(opts.pop("max_frames")) if "max_frames" in opts else None

    if base == "procedural":
        from .procedural import make_session

        size = opts.pop("size", "320x240").lower().split("x")
        kwargs = {"seed": int(opts.pop("seed", 0)), "session": opts.pop("session", native_split or "mapping"),
                  "width": int(size[0]), "height": int(size[1])}
        if "frames" in opts:
            kwargs["n_frames"] = int(opts.pop("frames"))
        posed = make_session(**kwargs)
    else:
        path = _resolve_path(base)
        layout = detect_layout(path)
        if layout == "transforms":
            from .image_io import parse_background
            from .transforms_json import load_transforms_json

            posed = load_transforms_json(
                path,
                split=native_split or ("train" if any(Path(path).glob("transforms_train.json")) else None),
                background=parse_background(opts.pop("background", "white")),
                max_frames=None if holdout else max_frames,
            )
        elif layout == "llff":
            from .llff import load_llff

            factor = opts.pop("factor", None)
            posed = load_llff(path, factor=int(factor) if factor else None)
        elif layout == "colmap":
            from .colmap import load_colmap

            posed = load_colmap(path, images_dir=opts.pop("images_dir", None))
        elif layout == "sevenscenes":
            from .sevenscenes import load_sevenscenes

            posed = load_sevenscenes(path, split=native_split, with_depth=_as_bool(opts.pop("depth", "true")))
        elif layout == "tum":
            from .tum import load_tum

            posed = load_tum(path, with_depth=_as_bool(opts.pop("depth", "true")),
                             stride=int(opts.pop("stride", 1)))
        else:
            from .bag import load_bag

            gt_tf = opts.pop("gt_tf", None)
            posed = load_bag(
                path,
                image_topic=opts.pop("image_topic", None),
                camera_info_topic=opts.pop("camera_info_topic", None),
                gt_topic=opts.pop("gt_topic", None),
                gt_tf=tuple(gt_tf.split(",")) if gt_tf else None,
                depth_topic=opts.pop("depth_topic", None),
                undistort=_as_bool(opts.pop("undistort", "true")),
            )
        if native_split and layout in ("llff", "colmap", "tum", "bag"):
            raise ValueError(f"{layout} datasets have no split '{native_split}'; use test@N / train@N")
    if opts:
        raise ValueError(f"unknown dataset option(s) for '{base}': {sorted(opts)}")
    if holdout:
        posed = _holdout(posed, holdout.group(1), int(holdout.group(2)))
    if max_frames is not None and len(posed) > max_frames:
        posed = posed.subset(np.arange(max_frames))
    return posed
