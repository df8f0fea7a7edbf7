"""Input encodings of the NeRF field: multi-resolution factorised planes (K-planes) and spherical harmonics.

Why planes: on a 2-core CPU one forward+backward+Adam step on 65k points measured ~95-100 ms for a
tri-plane 3x256^2x16 against ~400-450 ms for a pure-PyTorch hash grid or a dense 128^3 grid
(DESIGN.md section 9). Several resolutions keep fine detail while coarse levels regularise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultiResPlanes", "spherical_harmonics", "SH_DIM"]

#: Plane pairs (axis indices) of the xy, xz and yz planes.
PLANE_AXES = ((0, 1), (0, 2), (1, 2))


class MultiResPlanes(nn.Module):
    """K-planes encoding: per level three axis-aligned feature planes whose bilinear lookups are multiplied.

    ``feature(u) = concat_levels( P_xy(u_x, u_y) * P_xz(u_x, u_z) * P_yz(u_y, u_z) )``, following
    K-planes (Fridovich-Keil et al., CVPR 2023); the Hadamard product makes a feature local in 3D.
    """

    def __init__(self, resolutions: tuple[int, ...] = (64, 128, 256), channels: tuple[int, ...] = (16, 16, 8)) -> None:
        super().__init__()
        if len(resolutions) != len(channels):
            raise ValueError("MultiResPlanes: one channel count per resolution")
        self.resolutions = tuple(int(r) for r in resolutions)
        self.channels = tuple(int(c) for c in channels)
        self.planes = nn.ParameterList(
            nn.Parameter(torch.empty(3, c, r, r).uniform_(0.1, 0.5)) for r, c in zip(self.resolutions, self.channels)
        )

    @property
    def out_dim(self) -> int:
        return sum(self.channels)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Grid coordinates ``[N x 3]`` in ``[-1, 1]`` -> features ``[N x out_dim]``."""
        coords = torch.stack([u[:, list(ax)] for ax in PLANE_AXES])  # [3 x N x 2]
        coords = coords.unsqueeze(1)  # [3 x 1 x N x 2]
        feats = []
        for planes in self.planes:
            g = F.grid_sample(planes, coords, mode="bilinear", padding_mode="border", align_corners=True)
            g = g[:, :, 0, :]  # [3 x C x N]
            feats.append((g[0] * g[1] * g[2]).t())
        return torch.cat(feats, dim=-1)

    def total_variation(self) -> torch.Tensor:
        """Mean squared difference of neighbouring plane cells (a smoothness prior, K-planes' TV loss)."""
        tv = 0.0
        for planes in self.planes:
            tv = tv + (planes[..., 1:, :] - planes[..., :-1, :]).square().mean()
            tv = tv + (planes[..., :, 1:] - planes[..., :, :-1]).square().mean()
        return tv / len(self.planes)


#: Number of spherical-harmonic coefficients used for view directions (degree 3 -> 16 terms).
SH_DIM = 16


def spherical_harmonics(d: torch.Tensor) -> torch.Tensor:
    """Real spherical harmonics up to degree 3 of unit directions ``[N x 3]`` -> ``[N x 16]``."""
    x, y, z = d.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, yz, xz = x * y, y * z, x * z
    return torch.stack(
        [
            torch.full_like(x, 0.28209479177387814),
            -0.48860251190291987 * y,
            0.48860251190291987 * z,
            -0.48860251190291987 * x,
            1.0925484305920792 * xy,
            -1.0925484305920792 * yz,
            0.94617469575755997 * zz - 0.31539156525251999,
            -1.0925484305920792 * xz,
            0.54627421529603959 * (xx - yy),
            0.59004358992664352 * y * (-3.0 * xx + yy),
            2.8906114426405538 * xy * z,
            0.45704579946446572 * y * (1.0 - 5.0 * zz),
            0.3731763325901154 * z * (5.0 * zz - 3.0),
            0.45704579946446572 * x * (1.0 - 5.0 * zz),
            1.4453057213202769 * z * (xx - yy),
            0.59004358992664352 * x * (-xx + 3.0 * yy),
        ],
        dim=-1,
    )
