"""DeSC's network: geometric backbone + DSAM texture patches, fused, then self/cross attention (DESIGN.md 5).

Everything is invariant to rigid motions of either cloud by construction, so no rotation augmentation is needed
(two NeRF submaps live in unrelated frames):

* **geometric backbone**: KPConv-style kernel point convolutions whose kernel points live in the 4-d space of
  point-pair features ``(|d| / r, n_i . d^, n_j . d^, n_i . n_j)`` (PPF) instead of xyz offsets: the same
  linear-correlation kernels as KPConv, made rotation invariant. Two levels: fine points, then superpoints
  (features max-pooled over each superpoint's fine patch).
* **DSAM** (density- and texture-aware patch module): per superpoint, ``k`` dense NeRF points; a photometric
  encoding of colour (absolute and relative to the patch mean) and density; a texture-aware graph convolution
  whose edge weights include the local high-frequency texture weight (LHTW: how far a point's colour departs from
  the mean of its nearest neighbours). The raw NeRF embedding can be appended (``use_nerf_embedding``); it is off
  by default because two independently trained NeRFs have unrelated embedding spaces (measured on procedural
  pairs: cosine similarity -0.02 at true correspondences, nearest-neighbour accuracy 0 %), while their colours
  agree (median difference 0.026).
* **attention**: self-attention with a geometric position encoding (sinusoidal pairwise superpoint distances as
  per-head attention biases, after GeoTransformer) and cross-attention between the clouds.
* **fine features** per fine point for patch-level matching.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .preprocess import PreparedCloud

__all__ = ["DescConfig", "DescNetwork"]


@dataclass
class DescConfig:
    """Sizes of :class:`DescNetwork` (stored with the weights)."""

    d_model: int = 128  #: superpoint feature width (attention, coarse matching)
    fine_dim: int = 64  #: fine point feature width (fine matching)
    level0_dims: tuple[int, int] = (32, 64)  #: fine-point backbone widths
    kernel_points: int = 15  #: kernel points per PPF convolution
    kernel_sigma: float = 0.6  #: kernel influence radius in PPF space
    tex_dim: int = 64  #: DSAM output width
    heads: int = 4  #: attention heads
    blocks: int = 2  #: (self, cross) attention blocks
    distance_scale: float = 8.0  #: superpoint distances in units of this many voxels for the position encoding
    use_nerf_embedding: bool = False  #: append the raw NeRF embedding to DSAM's photometric encoding
    nerf_feature_dim: int = 32  #: its width (only with use_nerf_embedding)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "DescConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "level0_dims" in known:
            known["level0_dims"] = tuple(int(v) for v in known["level0_dims"])
        return cls(**known)


def point_pair_features(c_xyz: torch.Tensor, c_n: torch.Tensor, p_xyz: torch.Tensor, p_n: torch.Tensor,
                        radius: float) -> torch.Tensor:
    """PPF ``[N x k x 4]`` between centres ``c_xyz, c_n [N x 3]`` and their neighbours ``p_xyz, p_n [N x k x 3]``:
    ``(|d| / radius, n_c . d^, n_p . d^, n_c . n_p)`` with ``d = p - c`` (rigid-motion invariant)."""
    d = p_xyz - c_xyz[:, None]
    dist = d.norm(dim=-1, keepdim=True)
    dhat = d / dist.clamp_min(1e-9)
    return torch.cat([dist / radius, (c_n[:, None] * dhat).sum(-1, keepdim=True),
                      (p_n * dhat).sum(-1, keepdim=True), (c_n[:, None] * p_n).sum(-1, keepdim=True)], dim=-1)


class PPFKernelConv(nn.Module):
    """Kernel point convolution in PPF space: ``out_i = sum_q W_q^T sum_j h(ppf_ij, k_q) f_j / k`` with KPConv's
    linear correlation ``h = max(0, 1 - |ppf - k_q| / sigma)`` and fixed kernel points ``k_q``."""

    def __init__(self, c_in: int, c_out: int, kernel_points: int, sigma: float) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1234)
        kp = torch.rand(kernel_points, 4, generator=g) * torch.tensor([1.5, 2.0, 2.0, 2.0]) - torch.tensor(
            [0.0, 1.0, 1.0, 1.0])
        kp[0] = torch.tensor([0.0, 0.0, 0.0, 1.0])  # the centre itself, as KPConv's first kernel point
        self.register_buffer("kernel", kp)
        self.sigma = sigma
        self.weight = nn.Parameter(torch.randn(kernel_points, c_in, c_out) * math.sqrt(2.0 / (kernel_points * c_in)))

    def forward(self, feats: torch.Tensor, ppf: torch.Tensor) -> torch.Tensor:
        """``feats [N x k x C_in]`` (neighbour features), ``ppf [N x k x 4]`` -> ``[N x C_out]``."""
        h = (1 - torch.cdist(ppf, self.kernel[None].expand(len(ppf), -1, -1)) / self.sigma).clamp_min(0)  # [N x k x Q]
        agg = torch.einsum("nkq,nkc->nqc", h, feats) / feats.shape[1]
        return torch.einsum("nqc,qco->no", agg, self.weight)


class PPFBlock(nn.Module):
    """PPF convolution + layer norm + leaky ReLU, with a linear shortcut (a KPConv residual block)."""

    def __init__(self, c_in: int, c_out: int, cfg: DescConfig) -> None:
        super().__init__()
        self.conv = PPFKernelConv(c_in, c_out, cfg.kernel_points, cfg.kernel_sigma)
        self.norm = nn.LayerNorm(c_out)
        self.shortcut = nn.Linear(c_in, c_out) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, nbr: torch.Tensor, ppf: torch.Tensor) -> torch.Tensor:
        """``x [N x C_in]``, neighbour indices ``nbr [N x k]``, their PPF ``[N x k x 4]`` -> ``[N x C_out]``."""
        return nn.functional.leaky_relu(self.norm(self.conv(x[nbr], ppf)), 0.1) + self.shortcut(x)


class DSAM(nn.Module):
    """Texture patch module: photometric encoding of a superpoint's dense NeRF points, aggregated by a
    texture-aware graph convolution (edge weights from features and the local high-frequency texture weight)."""

    def __init__(self, cfg: DescConfig) -> None:
        super().__init__()
        c_photo = 7 + (cfg.nerf_feature_dim if cfg.use_nerf_embedding else 0)
        self.photo = nn.Sequential(nn.Linear(c_photo, 32), nn.LeakyReLU(0.1), nn.Linear(32, 32))
        self.edge = nn.Sequential(nn.Linear(32 + 32 + 2, 64), nn.LeakyReLU(0.1), nn.Linear(64, cfg.tex_dim))
        self.weight_logit = nn.Linear(cfg.tex_dim, 1)
        self.lhtw_gain = nn.Parameter(torch.tensor(1.0))
        self.out = nn.Linear(2 * cfg.tex_dim, cfg.tex_dim)

    def forward(self, centre_xyz: torch.Tensor, centre_n: torch.Tensor, xyz: torch.Tensor, color: torch.Tensor,
                density: torch.Tensor, radius: float, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Patches of ``S`` superpoints: ``centre_xyz, centre_n [S x 3]``, dense ``xyz, color [S x k x 3]``,
        ``density [S x k]`` (optionally ``embedding [S x k x C]``) -> texture features ``[S x tex_dim]``."""
        mean_c = color.mean(1, keepdim=True)
        log_d = torch.log1p(density.clamp_min(0))[..., None]
        log_d = log_d - log_d.mean(1, keepdim=True)  # relative solidity: density units differ between scenes
        x = [color - 0.5, color - mean_c, log_d]
        if embedding is not None:
            x.append(embedding)
        h = self.photo(torch.cat(x, -1))  # [S x k x 32]
        d = xyz - centre_xyz[:, None]
        dist = d.norm(dim=-1, keepdim=True)
        geom = torch.cat([dist / radius, (centre_n[:, None] * d).sum(-1, keepdim=True) / dist.clamp_min(1e-9)], -1)
        e = self.edge(torch.cat([h, h - h.mean(1, keepdim=True), geom], -1))  # [S x k x tex]
        # LHTW: colour departure from the mean of each point's 4 nearest patch neighbours (high-frequency texture)
        near = torch.cdist(xyz, xyz).topk(min(5, xyz.shape[1]), dim=-1, largest=False).indices[..., 1:]
        local_mean = torch.gather(color[:, None].expand(-1, xyz.shape[1], -1, -1), 2,
                                  near[..., None].expand(-1, -1, -1, 3)).mean(2)
        lhtw = (color - local_mean).norm(dim=-1, keepdim=True)  # [S x k x 1]
        w = torch.softmax(self.weight_logit(e) + self.lhtw_gain * 10.0 * lhtw, dim=1)
        return self.out(torch.cat([(w * e).sum(1), e.amax(1)], -1))


def _distance_encoding(dist: torch.Tensor, dims: int) -> torch.Tensor:
    """Sinusoidal encoding ``[... x dims]`` of (scaled) distances ``[...]``."""
    freq = torch.exp(torch.arange(0, dims, 2, dtype=dist.dtype, device=dist.device) * (-math.log(100.0) / dims))
    ang = dist[..., None] * freq * math.pi
    return torch.cat([torch.sin(ang), torch.cos(ang)], -1)


class AttentionBlock(nn.Module):
    """Pre-norm multi-head attention + feed-forward; ``bias [H x S x T]`` is added to the attention logits."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm_q, self.norm_kv, self.norm_ff = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.LeakyReLU(0.1), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor, memory: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``x [S x d]`` attends to ``memory [T x d]`` -> ``[S x d]``."""
        h = self.heads
        q = self.q(self.norm_q(x)).reshape(len(x), h, -1).transpose(0, 1)
        m = self.norm_kv(memory)
        k = self.k(m).reshape(len(m), h, -1).transpose(0, 1)
        v = self.v(m).reshape(len(m), h, -1).transpose(0, 1)
        logits = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
        if bias is not None:
            logits = logits + bias
        att = torch.softmax(logits, dim=-1) @ v  # [H x S x d/H]
        x = x + self.o(att.transpose(0, 1).reshape(len(x), -1))
        return x + self.ff(self.norm_ff(x))


class DescNetwork(nn.Module):
    """Superpoint and fine-point descriptors of two prepared clouds (see the module docstring)."""

    def __init__(self, config: DescConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DescConfig()
        c0, c1 = cfg.level0_dims
        self.l0a = PPFBlock(1, c0, cfg)
        self.l0b = PPFBlock(c0, c1, cfg)
        self.l1a = PPFBlock(c1, cfg.d_model, cfg)
        self.l1b = PPFBlock(cfg.d_model, cfg.d_model, cfg)
        self.dsam = DSAM(cfg)
        self.fuse = nn.Sequential(nn.Linear(cfg.d_model + cfg.tex_dim, cfg.d_model), nn.LayerNorm(cfg.d_model))
        self.dist_bias = nn.Sequential(nn.Linear(32, 32), nn.LeakyReLU(0.1), nn.Linear(32, cfg.heads))
        self.self_att = nn.ModuleList(AttentionBlock(cfg.d_model, cfg.heads) for _ in range(cfg.blocks))
        self.cross_att = nn.ModuleList(AttentionBlock(cfg.d_model, cfg.heads) for _ in range(cfg.blocks))
        self.coarse_out = nn.Linear(cfg.d_model, cfg.d_model)
        self.fine_photo = nn.Sequential(nn.Linear(6, 16), nn.LeakyReLU(0.1))
        self.fine_out = nn.Sequential(nn.Linear(c1 + 16 + cfg.d_model, cfg.fine_dim), nn.LeakyReLU(0.1),
                                      nn.Linear(cfg.fine_dim, cfg.fine_dim))

    def encode(self, pc: PreparedCloud) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-cloud features before attention: superpoints ``[S x d_model]``, fine points ``[M x c1]``."""
        v = pc.voxel
        xyz, n = pc.fine_xyz, pc.fine_normal
        ppf0 = point_pair_features(xyz, n, xyz[pc.fine_nbr], n[pc.fine_nbr], 3.0 * v)
        f0 = self.l0b(self.l0a(torch.ones(len(xyz), 1), pc.fine_nbr, ppf0), pc.fine_nbr, ppf0)
        s_xyz, s_n = pc.super_xyz, pc.super_normal
        pooled = f0[pc.patch_fine].amax(1)
        radius1 = float((s_xyz[pc.super_nbr[:, -1]] - s_xyz).norm(dim=1).median())
        ppf1 = point_pair_features(s_xyz, s_n, s_xyz[pc.super_nbr], s_n[pc.super_nbr], max(radius1, 1e-9))
        f1 = self.l1b(self.l1a(pooled, pc.super_nbr, ppf1), pc.super_nbr, ppf1)
        pd = pc.patch_dense
        radius_d = float((pc.dense_xyz[pd[:, -1]] - s_xyz).norm(dim=1).median())
        emb = pc.dense_feature[pd] if self.config.use_nerf_embedding else None
        tex = self.dsam(s_xyz, s_n, pc.dense_xyz[pd], pc.dense_color[pd], pc.dense_density[pd], max(radius_d, 1e-9),
                        emb)
        return self.fuse(torch.cat([f1, tex], -1)), f0

    def _position_bias(self, xyz: torch.Tensor, voxel: float) -> torch.Tensor:
        dist = torch.cdist(xyz, xyz) / (self.config.distance_scale * voxel)
        return self.dist_bias(_distance_encoding(dist, 32)).permute(2, 0, 1)  # [H x S x S]

    def forward(self, src: PreparedCloud, tgt: PreparedCloud) -> dict[str, torch.Tensor]:
        """Descriptors of a pair.

        Returns ``super_src [S x d]``, ``super_tgt [T x d]`` (L2-normalised superpoint descriptors) and
        ``fine_src [M x f]``, ``fine_tgt [N x f]`` (L2-normalised fine point descriptors)."""
        xs, f0s = self.encode(src)
        xt, f0t = self.encode(tgt)
        bs, bt = self._position_bias(src.super_xyz, src.voxel), self._position_bias(tgt.super_xyz, tgt.voxel)
        for sa, ca in zip(self.self_att, self.cross_att):
            xs, xt = sa(xs, xs, bs), sa(xt, xt, bt)
            xs, xt = ca(xs, xt), ca(xt, xs)
        out = {"super_src": nn.functional.normalize(self.coarse_out(xs), dim=-1),
               "super_tgt": nn.functional.normalize(self.coarse_out(xt), dim=-1)}
        for key, pc, f0, x in (("fine_src", src, f0s, xs), ("fine_tgt", tgt, f0t, xt)):
            # each fine point also sees the attended feature of its nearest superpoint
            owner = torch.cdist(pc.fine_xyz, pc.super_xyz).argmin(1)
            relative = pc.fine_color - pc.fine_color[pc.fine_nbr].mean(1)
            photo = self.fine_photo(torch.cat([pc.fine_color - 0.5, relative], -1))
            out[key] = nn.functional.normalize(self.fine_out(torch.cat([f0, photo, x[owner]], -1)), dim=-1)
        return out
