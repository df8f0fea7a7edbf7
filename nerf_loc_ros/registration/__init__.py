"""NeRF-to-NeRF registration for map merging (DeSC, DESIGN.md section 5): point sampling from NeRF maps, the DeSC
network and registrar, the rendered-view registrar, the FPFH baseline, training pairs and merging into a global
map."""

from .base import REGISTRATION_METHODS, Registrar, make_registrar, sample_map
from .desc import DEFAULT_WEIGHTS, DescRegistrar, DescRegistrarConfig, load_desc_weights, save_desc_weights
from .estimation import MatchConfig, weighted_kabsch
from .fpfh import FPFHConfig, FPFHRegistrar
from .merge import MergeOutcome, merge_submap
from .network import DescConfig, DescNetwork
from .pair_data import PairScene, RegistrationPair, SubmapRecord, load_pair_scene, make_pair_scene
from .pairs import (
    ViewSplit,
    move_cameras,
    random_rigid_transform,
    points_seen_by_views,
    split_views_for_overlap,
    sweep_order,
)
from .preprocess import PrepareConfig, PreparedCloud, pair_voxel_size, prepare_cloud
from .result import RegistrationResult, RegistrationStatus, cloud_extent, registration_errors
from .sampling import NerfPointCloud, SamplingConfig, farthest_point_sampling, sample_nerf_points, visible_surface_cells
from .views import (
    GuidedMatcher,
    ViewPoints,
    ViewRegistrar,
    ViewRegistrarConfig,
    distinct_first_order,
    guided_matches,
    keep_best_correlated,
    match_views,
    render_view_points,
)
from .visibility import DepthView, SurfacePoints, VisibilityCheck, depth_surface_points, visibility_check

__all__ = [
    "DEFAULT_WEIGHTS",
    "REGISTRATION_METHODS",
    "DepthView",
    "DescConfig",
    "DescNetwork",
    "DescRegistrar",
    "DescRegistrarConfig",
    "FPFHConfig",
    "FPFHRegistrar",
    "GuidedMatcher",
    "MatchConfig",
    "MergeOutcome",
    "NerfPointCloud",
    "PairScene",
    "PrepareConfig",
    "PreparedCloud",
    "Registrar",
    "RegistrationPair",
    "RegistrationResult",
    "RegistrationStatus",
    "SamplingConfig",
    "SubmapRecord",
    "SurfacePoints",
    "ViewPoints",
    "ViewRegistrar",
    "ViewRegistrarConfig",
    "ViewSplit",
    "VisibilityCheck",
    "cloud_extent",
    "depth_surface_points",
    "distinct_first_order",
    "farthest_point_sampling",
    "guided_matches",
    "keep_best_correlated",
    "load_desc_weights",
    "load_pair_scene",
    "make_pair_scene",
    "make_registrar",
    "match_views",
    "merge_submap",
    "move_cameras",
    "points_seen_by_views",
    "pair_voxel_size",
    "prepare_cloud",
    "random_rigid_transform",
    "registration_errors",
    "render_view_points",
    "sample_map",
    "sample_nerf_points",
    "save_desc_weights",
    "split_views_for_overlap",
    "sweep_order",
    "visibility_check",
    "visible_surface_cells",
    "weighted_kabsch",
]
