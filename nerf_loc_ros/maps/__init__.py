"""Maps on disk (DESIGN.md section 3): versioned, checksummed directories; never pickled."""

from .manifest import FORMAT_VERSION, MapError, atomic_dir, read_manifest, sha256_file, write_manifest
from .build import build_map
from .nerf_map import NerfMap, load_map, map_bytes, map_info, occupied_points, save_map

__all__ = [
    "FORMAT_VERSION",
    "MapError",
    "NerfMap",
    "atomic_dir",
    "build_map",
    "load_map",
    "map_bytes",
    "map_info",
    "occupied_points",
    "read_manifest",
    "save_map",
    "sha256_file",
    "write_manifest",
]
