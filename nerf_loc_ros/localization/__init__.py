"""Relocalization against a NeRF map (NeRFMatch-style 2D-3D matching with cached NeRF surface points).

Public API::

    loc_map = load_localization_map("maps/kitchen")
    result = Localizer(loc_map).localize(image_rgb, K)          # -> LocalizationResult
"""

from .backbone import BackboneConfig, ImageFeatures, XFeatBackbone
from .encoder import EncoderConfig, SceneEncoder
from .keyframes import KeyframeDB, pose_distance, select_keyframes
from .localizer import LocalizationResult, Localizer, LocalizerConfig, Status
from .map_files import (
    LocalizationMap,
    add_localization,
    build_localization_map,
    load_localization_map,
    save_localization_map,
)
from .global_localizer import GlobalLocalizer, load_localizer
from .mapping import MappingConfig, build_keyframe_db
from .matching import dual_softmax, dual_softmax_nll, match_descriptors
from .pose import PnPConfig, PnPResult, pose_covariance, refine_pnp, solve_pnp
from .training import EncoderTrainConfig, train_encoder

__all__ = [
    "BackboneConfig", "EncoderConfig", "EncoderTrainConfig", "GlobalLocalizer", "ImageFeatures", "KeyframeDB", "LocalizationMap",
    "LocalizationResult", "Localizer", "LocalizerConfig", "MappingConfig", "PnPConfig", "PnPResult", "SceneEncoder",
    "Status", "XFeatBackbone", "add_localization", "build_keyframe_db", "build_localization_map", "dual_softmax",
    "load_localization_map", "match_descriptors", "dual_softmax_nll", "pose_covariance", "pose_distance", "save_localization_map",
    "load_localizer", "refine_pnp", "select_keyframes", "solve_pnp", "train_encoder",
]
