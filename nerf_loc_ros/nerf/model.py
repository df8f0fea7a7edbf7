"""``NerfModel``: a trained field with its occupancy grid and render settings, ready to render."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .field import FieldConfig, NerfField
from .occupancy import OccupancyConfig, OccupancyGrid
from .renderer import RenderConfig, render_image, render_rays
from .scene_box import SceneBox

__all__ = ["NerfModel"]


@dataclass
class NerfModel:
    """Field + occupancy grid + render settings (world frame = the dataset's, OpenCV cameras)."""

    field: NerfField
    occupancy: OccupancyGrid
    render_config: RenderConfig

    @classmethod
    def create(
        cls, box: SceneBox, field_config: FieldConfig | None = None, occupancy_config: OccupancyConfig | None = None,
        render_config: RenderConfig | None = None, device: str | torch.device = "cpu",
    ) -> "NerfModel":
        """A freshly initialised model for ``box``."""
        field = NerfField(box, field_config).to(device)
        return cls(field, OccupancyGrid(box, occupancy_config, device=device), render_config or RenderConfig())

    @property
    def box(self) -> SceneBox:
        return self.field.box

    @property
    def device(self) -> torch.device:
        return next(self.field.parameters()).device

    def render_step(self) -> float:
        """Length (world units) of one fine sample inside the box, used to turn density into alpha."""
        cell = float(np.min(self.box.half_size)) * 2 / self.occupancy.resolution
        if self.box.contract:
            cell /= 2
        return cell / self.render_config.fine_per_segment

    def render_rays(self, origins: torch.Tensor, dirs: torch.Tensor, **kwargs) -> dict[str, torch.Tensor]:
        """See :func:`nerf_loc_ros.nerf.renderer.render_rays` (rays in the world frame)."""
        return render_rays(self.field, self.occupancy, origins, dirs, self.render_config, **kwargs)

    def render_image(self, K: np.ndarray, T_world_cam: np.ndarray, width: int, height: int, **kwargs):
        """See :func:`nerf_loc_ros.nerf.renderer.render_image`."""
        self.field.eval()
        return render_image(self.field, self.occupancy, K, T_world_cam, width, height, self.render_config, **kwargs)

    @torch.no_grad()
    def query(self, x: np.ndarray | torch.Tensor, chunk: int = 1 << 17) -> dict[str, np.ndarray]:
        """Density ``[N]``, embedding ``[N x C]`` and occupancy ``[N]`` at world points ``[N x 3]``."""
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32, device=self.device)
        sig, feat, occ = [], [], []
        for c in torch.split(x, chunk):
            out = self.field(c)
            sig.append(out.sigma)
            feat.append(out.feature)
            occ.append(self.occupancy.query(self.box.to_grid(c)))
        return {
            "sigma": torch.cat(sig).cpu().numpy(),
            "feature": torch.cat(feat).cpu().numpy(),
            "occupied": torch.cat(occ).cpu().numpy(),
        }
