"""From a sampled NeRF point cloud to DeSC's input levels: fine points, superpoints, patches, normals.

* **fine points**: voxel-grid centroids of the dense cloud (mean colour, density and free-space normal per voxel),
  at most ``max_fine`` of them; their normals come from a PCA of ``k_normal`` neighbours, oriented to the
  free-space side the NeRF was seen from (so both submaps agree on the sign);
* **superpoints**: farthest-point samples of the fine points (``num_super``);
* **patches**: per superpoint its ``k_patch_fine`` nearest fine points (fine matching) and its ``k_patch_dense``
  nearest dense points (DSAM's texture patch); per fine point and per superpoint the neighbours of the geometric
  backbone.

Scale: the voxel size is given (map units); :func:`pair_voxel_size` picks one for a pair from the clouds' extents,
so both clouds of a pair are always prepared at the same scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .result import cloud_extent
from .sampling import NerfPointCloud, farthest_point_sampling

__all__ = ["PrepareConfig", "PreparedCloud", "prepare_cloud", "pair_voxel_size", "knn"]


@dataclass
class PrepareConfig:
    """Sizes of DeSC's input levels.

    Attributes:
        voxel_fraction: fine voxel edge as a fraction of the larger cloud extent of a pair.
        max_fine: at most this many fine points (random subset beyond).
        num_super: superpoints per cloud.
        k_normal: neighbours of the PCA normal.
        k_fine: backbone neighbours of a fine point.
        k_super: backbone neighbours of a superpoint.
        k_patch_fine: fine points per superpoint patch (fine matching, pooling).
        k_patch_dense: dense points per superpoint patch (DSAM).
        max_dense: at most this many dense points are kept (random subset beyond).
    """

    voxel_fraction: float = 1 / 64
    max_fine: int = 3000
    num_super: int = 256
    k_normal: int = 12
    k_fine: int = 16
    k_super: int = 16
    k_patch_fine: int = 32
    k_patch_dense: int = 32
    max_dense: int = 20000


@dataclass
class PreparedCloud:
    """DeSC's input for one cloud (torch tensors, map frame and units; ``M`` fine points, ``S`` superpoints,
    ``D`` dense points).

    ``fine_xyz [M x 3]``, ``fine_normal [M x 3]``, ``fine_color [M x 3]``, ``fine_density [M]``,
    ``fine_nbr [M x k_fine]``; ``super_idx [S]`` (into fine), ``super_nbr [S x k_super]``,
    ``patch_fine [S x k_patch_fine]`` (into fine), ``patch_dense [S x k_patch_dense]`` (into dense);
    ``dense_xyz [D x 3]``, ``dense_color [D x 3]``, ``dense_density [D]``, ``dense_feature [D x C]`` (NeRF
    embedding); ``voxel`` (map units)."""

    fine_xyz: torch.Tensor
    fine_normal: torch.Tensor
    fine_color: torch.Tensor
    fine_density: torch.Tensor
    fine_nbr: torch.Tensor
    super_idx: torch.Tensor
    super_nbr: torch.Tensor
    patch_fine: torch.Tensor
    patch_dense: torch.Tensor
    dense_xyz: torch.Tensor
    dense_color: torch.Tensor
    dense_density: torch.Tensor
    dense_feature: torch.Tensor
    voxel: float

    @property
    def super_xyz(self) -> torch.Tensor:
        return self.fine_xyz[self.super_idx]

    @property
    def super_normal(self) -> torch.Tensor:
        return self.fine_normal[self.super_idx]

    def transformed(self, T_new_old: np.ndarray) -> "PreparedCloud":
        """The same cloud with points and normals mapped by a rigid ``[4 x 4]`` transform."""
        from dataclasses import replace

        T = torch.as_tensor(np.asarray(T_new_old), dtype=torch.float32)
        R, t = T[:3, :3], T[:3, 3]
        return replace(self, fine_xyz=self.fine_xyz @ R.T + t, fine_normal=self.fine_normal @ R.T,
                       dense_xyz=self.dense_xyz @ R.T + t)


def knn(query: torch.Tensor, points: torch.Tensor, k: int, chunk: int = 4096) -> torch.Tensor:
    """Indices ``[Q x k]`` of the ``k`` nearest ``points [N x 3]`` of each ``query [Q x 3]`` (nearest first;
    ``k`` is capped at ``N``)."""
    k = min(k, len(points))
    out = [torch.cdist(q, points).topk(k, dim=1, largest=False).indices for q in torch.split(query, chunk)]
    return torch.cat(out) if out else torch.zeros(0, k, dtype=torch.long)


def pair_voxel_size(a: NerfPointCloud, b: NerfPointCloud, config: PrepareConfig | None = None) -> float:
    """The fine voxel edge (map units) for registering clouds ``a`` and ``b``: a fraction of the larger extent."""
    cfg = config or PrepareConfig()
    return cfg.voxel_fraction * max(cloud_extent(a.points), cloud_extent(b.points))


def _voxel_centroids(cloud: NerfPointCloud, voxel: float) -> tuple[np.ndarray, ...]:
    keys = np.floor(cloud.points / voxel).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)

    def mean(values: np.ndarray) -> np.ndarray:
        out = np.zeros((len(counts),) + values.shape[1:], np.float64)
        np.add.at(out, inverse, values)
        return out / counts.reshape((-1,) + (1,) * (values.ndim - 1))

    normals = mean(cloud.normals)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return mean(cloud.points), normals, mean(cloud.colors), mean(cloud.density)


def pca_normals(xyz: torch.Tensor, nbr: torch.Tensor, orient: torch.Tensor) -> torch.Tensor:
    """Unit normals ``[M x 3]``: smallest-eigenvalue direction of each point's neighbourhood ``nbr [M x k]``,
    flipped to agree with ``orient [M x 3]``."""
    P = xyz[nbr]  # [M x k x 3]
    C = P - P.mean(1, keepdim=True)
    cov = C.transpose(1, 2) @ C
    _, vecs = torch.linalg.eigh(cov)
    n = vecs[:, :, 0]
    return n * torch.where((n * orient).sum(1, keepdim=True) < 0, -1.0, 1.0)


def prepare_cloud(cloud: NerfPointCloud, voxel: float, config: PrepareConfig | None = None,
                  seed: int = 0) -> PreparedCloud:
    """DeSC's input levels of ``cloud`` at fine voxel edge ``voxel`` (map units); see the module docstring.

    Raises ``ValueError`` for a cloud with fewer fine points than superpoints (too small or too sparse to register).
    """
    cfg = config or PrepareConfig()
    if not voxel > 0 or not np.isfinite(voxel):
        raise ValueError(f"voxel size must be positive and finite, got {voxel}")
    rng = np.random.default_rng(seed)
    if len(cloud) > cfg.max_dense:
        cloud = cloud.subset(np.sort(rng.choice(len(cloud), cfg.max_dense, replace=False)))
    xyz, free_normal, color, density = _voxel_centroids(cloud, voxel)
    if len(xyz) > cfg.max_fine:
        keep = np.sort(rng.choice(len(xyz), cfg.max_fine, replace=False))
        xyz, free_normal, color, density = xyz[keep], free_normal[keep], color[keep], density[keep]
    if len(xyz) < cfg.num_super:
        raise ValueError(f"the cloud has {len(xyz)} fine points at voxel {voxel:.4g}, fewer than the "
                         f"{cfg.num_super} superpoints it needs (too small or too sparse a submap)")
    f32 = lambda a: torch.as_tensor(np.asarray(a, np.float32))  # noqa: E731
    fine_xyz = f32(xyz)
    fine_nbr = knn(fine_xyz, fine_xyz, cfg.k_fine)
    normal_nbr = fine_nbr[:, : cfg.k_normal] if cfg.k_normal <= cfg.k_fine else knn(fine_xyz, fine_xyz, cfg.k_normal)
    fine_normal = pca_normals(fine_xyz, normal_nbr, f32(free_normal))
    super_idx = torch.as_tensor(farthest_point_sampling(xyz, cfg.num_super, seed=seed), dtype=torch.long)
    super_xyz = fine_xyz[super_idx]
    dense_xyz = f32(cloud.points)
    return PreparedCloud(
        fine_xyz=fine_xyz, fine_normal=fine_normal, fine_color=f32(color), fine_density=f32(density),
        fine_nbr=fine_nbr, super_idx=super_idx, super_nbr=knn(super_xyz, super_xyz, cfg.k_super),
        patch_fine=knn(super_xyz, fine_xyz, cfg.k_patch_fine), patch_dense=knn(super_xyz, dense_xyz, cfg.k_patch_dense),
        dense_xyz=dense_xyz, dense_color=f32(cloud.colors), dense_density=f32(cloud.density),
        dense_feature=f32(cloud.features), voxel=float(voxel),
    )
