"""Dataset loaders: every layout becomes one :class:`PosedImages` (OpenCV camera axes, RGB uint8).

Use :func:`load_dataset` (path, alias or ``procedural`` spec) or a specific loader.
"""

from .colmap import load_colmap, read_cameras, read_images, read_points3D
from .llff import load_llff
from .posed_images import DatasetError, PosedImages
from .registry import DATASET_ALIASES, default_eval_splits, detect_layout, load_dataset, shared_data_dir, train_split_for
from .sevenscenes import load_sevenscenes
from .transforms_json import load_transforms_json
from .tum import load_tum

__all__ = [
    "DATASET_ALIASES",
    "DatasetError",
    "PosedImages",
    "detect_layout",
    "load_bag",
    "load_colmap",
    "load_dataset",
    "default_eval_splits",
    "train_split_for",
    "load_llff",
    "load_sevenscenes",
    "load_transforms_json",
    "load_tum",
    "read_cameras",
    "read_images",
    "read_points3D",
    "shared_data_dir",
]


def __getattr__(name: str):
    # load_bag imports nerf_loc_ros.bags, which itself uses datasets.posed_images: import it lazily.
    if name == "load_bag":
        from .bag import load_bag

        return load_bag
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
