"""Maps on disk (DESIGN.md section 3): versioned, checksummed directories; never pickled."""

from .manifest import FORMAT_VERSION, MapError, atomic_dir, read_manifest, sha256_file, write_manifest
from .build import build_map
from .global_map import SUBMAPS_FILE, GlobalMap, Submap, add_submap, create_global_map, load_global_map
from .nerf_map import MapCameras, NerfMap, load_map, map_bytes, map_info, occupied_points, save_map

__all__ = [
    "FORMAT_VERSION",
    "GlobalMap",
    "MapCameras",
    "MapError",
    "NerfMap",
    "SUBMAPS_FILE",
    "Submap",
    "add_submap",
    "atomic_dir",
    "build_map",
    "create_global_map",
    "load_global_map",
    "load_map",
    "map_bytes",
    "map_info",
    "occupied_points",
    "read_manifest",
    "save_map",
    "sha256_file",
    "write_manifest",
]
