"""Scene-specific encoder: an image head and a 3D point head that map into one matching space.

* :class:`ImageHead` turns the frozen backbone's dense 1/8 features into matching descriptors (a few
  convolutions widen the context; trained per scene).
* :class:`PointHead` turns what the NeRF knows about a surface point — its view-independent embedding
  ``f(X)`` and a Fourier encoding of its position in the scene box — into a descriptor in the same space.

Point descriptors depend only on the map, so they are computed once at mapping time and cached in
``keyframes.npz``; a query runs only the image head (NeRFMatch's 2D-3D matching without rendering).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["EncoderConfig", "ImageHead", "PointHead", "SceneEncoder", "fourier_encode"]


@dataclass
class EncoderConfig:
    """Encoder architecture.

    Attributes:
        backbone_dim: channels of the backbone features (XFeat: 64).
        nerf_feature_dim: dimension of the NeRF embedding ``f(X)`` (the map's ``FieldConfig.feature_dim``).
        descriptor_dim: dimension of the shared matching space.
        hidden_dim: width of both heads.
        position_frequencies: octaves of the Fourier encoding of the normalised 3D position.
        temperature: initial dual-softmax temperature (learned).
    """

    backbone_dim: int = 64
    nerf_feature_dim: int = 32
    descriptor_dim: int = 64
    hidden_dim: int = 128
    position_frequencies: int = 6
    temperature: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def fourier_encode(x: torch.Tensor, octaves: int) -> torch.Tensor:
    """``[N x 3]`` positions in [-1, 1] -> ``[N x 3 (1 + 2 octaves)]`` (x, sin(2^k pi x), cos(2^k pi x))."""
    freqs = (2.0 ** torch.arange(octaves, device=x.device, dtype=x.dtype)) * torch.pi
    arg = (x[..., None] * freqs).flatten(-2)
    return torch.cat([x, torch.sin(arg), torch.cos(arg)], -1)


class ImageHead(nn.Module):
    """Backbone features ``[B x C_b x h x w]`` -> L2-normalised descriptors ``[B x D x h x w]``."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        c, hd = cfg.backbone_dim, cfg.hidden_dim
        self.body = nn.Sequential(
            nn.Conv2d(c, hd, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hd, hd, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hd, cfg.descriptor_dim, 1),
        )
        self.skip = nn.Conv2d(c, cfg.descriptor_dim, 1)

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.body(dense) + self.skip(dense), dim=1)


class PointHead(nn.Module):
    """NeRF embedding ``[N x C_f]`` + normalised position ``[N x 3]`` -> L2-normalised descriptors ``[N x D]``."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.octaves = cfg.position_frequencies
        d_in = cfg.nerf_feature_dim + 3 * (1 + 2 * cfg.position_frequencies)
        hd = cfg.hidden_dim
        self.mlp = nn.Sequential(
            nn.Linear(d_in, hd), nn.ReLU(inplace=True),
            nn.Linear(hd, hd), nn.ReLU(inplace=True),
            nn.Linear(hd, cfg.descriptor_dim),
        )

    def forward(self, nerf_feature: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        x = torch.cat([nerf_feature, fourier_encode(position, self.octaves)], -1)
        return F.normalize(self.mlp(x), dim=-1)


class SceneEncoder(nn.Module):
    """Both heads plus the learned log-temperature of the dual softmax."""

    def __init__(self, cfg: EncoderConfig | None = None):
        super().__init__()
        self.config = cfg or EncoderConfig()
        self.image_head = ImageHead(self.config)
        self.point_head = PointHead(self.config)
        self.log_temperature = nn.Parameter(torch.tensor(float(self.config.temperature)).log())

    @property
    def temperature(self) -> float:
        return float(self.log_temperature.detach().exp())
