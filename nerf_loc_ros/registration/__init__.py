"""NeRF-to-NeRF registration for map merging (DeSC, DESIGN.md section 5): point sampling from NeRF maps,
registration methods and their evaluation."""

from .fpfh import FPFHConfig, FPFHRegistrar
from .pair_data import PairScene, RegistrationPair, SubmapRecord, load_pair_scene, make_pair_scene
from .pairs import ViewSplit, move_cameras, random_rigid_transform, split_views_for_overlap, visibility
from .result import RegistrationResult, RegistrationStatus, cloud_extent, registration_errors
from .sampling import NerfPointCloud, SamplingConfig, farthest_point_sampling, sample_nerf_points, surface_cells

__all__ = [
    "FPFHConfig",
    "FPFHRegistrar",
    "NerfPointCloud",
    "PairScene",
    "RegistrationPair",
    "RegistrationResult",
    "RegistrationStatus",
    "SamplingConfig",
    "SubmapRecord",
    "ViewSplit",
    "cloud_extent",
    "farthest_point_sampling",
    "load_pair_scene",
    "make_pair_scene",
    "move_cameras",
    "random_rigid_transform",
    "registration_errors",
    "sample_nerf_points",
    "split_views_for_overlap",
    "surface_cells",
    "visibility",
]
