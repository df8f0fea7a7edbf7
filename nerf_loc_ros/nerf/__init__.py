"""NeRF maps: K-planes field with a view-independent embedding, occupancy grid, packed volume renderer, trainer.

Public API::

    from nerf_loc_ros.nerf import NerfTrainer, TrainConfig, NerfModel, SceneBox, estimate_scene_box
"""

from .field import FieldConfig, FieldOutput, NerfField
from .model import NerfModel
from .occupancy import OccupancyConfig, OccupancyGrid, visible_cells
from .rays import box_intersection, image_rays, pixel_rays
from .renderer import RenderConfig, render_image, render_rays
from .scene_box import SceneBox, estimate_scene_box
from .trainer import NerfTrainer, TrainConfig, TrainSummary, psnr_from_mse

__all__ = [
    "FieldConfig",
    "FieldOutput",
    "NerfField",
    "NerfModel",
    "NerfTrainer",
    "OccupancyConfig",
    "OccupancyGrid",
    "RenderConfig",
    "SceneBox",
    "TrainConfig",
    "TrainSummary",
    "box_intersection",
    "estimate_scene_box",
    "image_rays",
    "pixel_rays",
    "psnr_from_mse",
    "render_image",
    "render_rays",
    "visible_cells",
]
