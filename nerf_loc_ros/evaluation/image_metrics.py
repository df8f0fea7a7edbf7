"""Image-quality and depth metrics for NeRF evaluation, and depth colouring for figures."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..nerf import psnr_from_mse

__all__ = ["psnr", "ssim", "depth_abs_rel", "colorize_depth"]


def psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR (dB) between images with values in [0, 1] (any matching shape)."""
    return psnr_from_mse(float(np.mean((np.asarray(pred, np.float64) - np.asarray(gt, np.float64)) ** 2)))


def ssim(pred: np.ndarray, gt: np.ndarray, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004; Gaussian window 11, sigma 1.5) of ``[H x W x 3]`` images in [0, 1]."""
    x = torch.as_tensor(np.asarray(pred, np.float32)).permute(2, 0, 1)[None]
    y = torch.as_tensor(np.asarray(gt, np.float32)).permute(2, 0, 1)[None]
    c = x.shape[1]
    g = torch.exp(-((torch.arange(window) - window // 2) ** 2) / (2 * sigma**2))
    g = (g / g.sum()).float()
    k = (g[:, None] * g[None, :]).expand(c, 1, window, window)

    def blur(z):
        return F.conv2d(z, k, groups=c)

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def depth_abs_rel(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-pixel ``|pred - gt| / gt`` over valid ground truth (``gt > 0``, finite) -> 1-D array."""
    gt = np.asarray(gt, np.float64)
    pred = np.asarray(pred, np.float64)
    valid = np.isfinite(gt) & (gt > 0) & np.isfinite(pred)
    return np.abs(pred[valid] - gt[valid]) / gt[valid]


def colorize_depth(depth: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """``[H x W]`` depth -> ``[H x W x 3]`` uint8 turbo colours (near = blue); invalid (<= 0 / NaN) black."""
    from matplotlib import colormaps

    d = np.asarray(depth, np.float64)
    valid = np.isfinite(d) & (d > 0)
    if not valid.any():
        return np.zeros(d.shape + (3,), np.uint8)
    lo = float(np.percentile(d[valid], 1)) if lo is None else lo
    hi = float(np.percentile(d[valid], 99)) if hi is None else hi
    t = np.clip((d - lo) / max(hi - lo, 1e-9), 0, 1)
    rgb = (colormaps["turbo"](t)[..., :3] * 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb
