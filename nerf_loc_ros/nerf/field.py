"""The NeRF field: density ``sigma(x)``, view-independent embedding ``f(x)`` and colour ``c(x, d)``.

``f(x)`` comes from the density branch (it does not see the view direction), so it describes the
surface itself; localization matches image features against it and registration aggregates it. It is
layer-normalised (zero mean, unit variance over its channels).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .encoding import SH_DIM, MultiResPlanes, spherical_harmonics
from .scene_box import SceneBox

__all__ = ["FieldConfig", "NerfField", "FieldOutput"]


@dataclass
class FieldConfig:
    """Architecture of :class:`NerfField` (stored in the map manifest)."""

    resolutions: tuple[int, ...] = (64, 128, 256)  #: plane resolution per level
    channels: tuple[int, ...] = (16, 16, 8)  #: feature channels per level
    feature_dim: int = 32  #: dimension of the view-independent embedding f(x)
    hidden_dim: int = 64  #: width of the density MLP
    color_hidden_dim: int = 64  #: width of the colour MLP
    density_bias: float = -4.8  #: initial pre-activation density (small density everywhere at start)
    density_unit: float = 256.0  #: density is exp(h) * density_unit / box diagonal, so scale does not matter

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "FieldConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("resolutions", "channels"):
            if k in known:
                known[k] = tuple(int(v) for v in known[k])
        return cls(**known)


@dataclass
class FieldOutput:
    """Per-point field values: ``sigma [N]`` (1/unit), ``rgb [N x 3]`` in [0, 1], ``feature [N x C]``."""

    sigma: torch.Tensor
    rgb: torch.Tensor | None = None
    feature: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)


class TruncExp(torch.autograd.Function):
    """``exp`` whose gradient is clamped (instant-ngp's trunc_exp) to keep early training stable; the value is
    capped at ``exp(20)`` so a density never becomes infinite (``inf - inf`` in transmittance sums is NaN)."""

    @staticmethod
    def forward(ctx, x):  # noqa: D102
        ctx.save_for_backward(x)
        return torch.exp(x.clamp(max=20))

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        (x,) = ctx.saved_tensors
        return g * torch.exp(x.clamp(max=15))


class NerfField(nn.Module):
    """Multi-resolution K-planes encoding + small MLPs. Points are world coordinates (dataset units)."""

    def __init__(self, box: SceneBox, config: FieldConfig | None = None) -> None:
        super().__init__()
        self.box = box
        self.config = config = config or FieldConfig()
        self.encoding = MultiResPlanes(config.resolutions, config.channels)
        self.density_mlp = nn.Sequential(
            nn.Linear(self.encoding.out_dim, config.hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(config.hidden_dim, 1 + config.feature_dim),
        )
        with torch.no_grad():
            self.density_mlp[-1].bias[0] = config.density_bias
        self.color_mlp = nn.Sequential(
            nn.Linear(config.feature_dim + SH_DIM, config.color_hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(config.color_hidden_dim, config.color_hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(config.color_hidden_dim, 3),
        )

    def _geometry(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.box.to_grid(x)
        inside = self.box.inside(u)
        h = self.density_mlp(self.encoding(u.clamp(-1, 1)))
        scale = self.config.density_unit / self.box.diagonal
        sigma = TruncExp.apply(h[:, 0]) * scale * inside.to(h.dtype)
        # layer-normalised embedding: a scale-free descriptor for matching, and a well-conditioned colour input
        # (raw outputs grow with the density during training and saturate the colour MLP's sigmoid)
        feat = torch.nn.functional.layer_norm(h[:, 1:], (self.config.feature_dim,))
        return sigma, feat

    def density(self, x: torch.Tensor) -> torch.Tensor:
        """World points ``[N x 3]`` -> density ``[N]`` (per unit length; zero outside the scene box)."""
        return self._geometry(x)[0]

    def forward(self, x: torch.Tensor, d: torch.Tensor | None = None) -> FieldOutput:
        """World points ``[N x 3]`` and unit view directions ``[N x 3]`` -> :class:`FieldOutput`.

        Without ``d`` only density and the embedding are computed (no colour).
        """
        sigma, feat = self._geometry(x)
        return FieldOutput(sigma=sigma, rgb=None if d is None else self.color(feat, d), feature=feat)

    def color(self, feature: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Colour ``[N x 3]`` in [0, 1] of embeddings ``[N x C]`` seen along unit directions ``[N x 3]``."""
        return torch.sigmoid(self.color_mlp(torch.cat([feature, spherical_harmonics(d)], dim=-1)))
