"""Fine level: map points located in the query to a fraction of a pixel by their keyframe patches (NCC).

The coarse matcher pairs a query keypoint with a cached map point, but the two are detected independently and the
image head's 1/8-resolution descriptors cannot tell a point from its neighbours a few pixels away: on redkitchen the
coarse inliers of a blurred frame sat 3-7 px from where the ground truth projects their points, all leaning the same
way, which biases the pose. The map keeps, for each point, the grey-level patch around the keyframe keypoint it was
cached from (``KeyframeDB.point_patches``); the fine level searches the query around each point's projection under
the coarse pose for the position whose patch correlates best with it (normalised cross-correlation, so exposure
gain and offset do not matter; a parabola through the peak for the sub-pixel position) and refines the pose on the
points found. The points come from the keyframes nearest the pose, so their patches need no warping.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["grey_image", "locate_patches", "sample_patches"]


def grey_image(image: np.ndarray) -> torch.Tensor:
    """``[H x W x 3]`` uint8 RGB (or ``[H x W]`` grey) -> ``[H x W]`` float32 grey levels (ITU-R BT.601 luma)."""
    img = torch.from_numpy(np.array(image, copy=True))
    if img.ndim == 2:
        return img.float()
    if img.shape[-1] == 1:
        return img[..., 0].float()
    return img[..., :3].float() @ torch.tensor([0.299, 0.587, 0.114])


def sample_patches(grey: torch.Tensor, centres: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear ``[N x size x size]`` patches of ``grey [H x W]`` centred on ``centres [N x 2]`` (x, y pixels,
    pixel-centre convention: the centre of pixel (i, j) is (i + 0.5, j + 0.5)); edge pixels repeat outside."""
    h, w = grey.shape
    c = torch.as_tensor(centres, dtype=torch.float32)
    d = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    x = c[:, 0, None, None] + d[None, None, :]  # [N x 1 x S]
    y = c[:, 1, None, None] + d[None, :, None]  # [N x S x 1]
    grid = torch.stack(torch.broadcast_tensors(x / w * 2 - 1, y / h * 2 - 1), -1)  # [N x S x S x 2]
    out = F.grid_sample(grey[None, None], grid.reshape(1, len(c), size * size, 2), mode="bilinear",
                        padding_mode="border", align_corners=False)
    return out.reshape(len(c), size, size)


def locate_patches(grey: torch.Tensor, uv: np.ndarray, patches: torch.Tensor, search: int, min_ncc: float,
                   min_std: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Locate each patch ``patches [M x S x S]`` (uint8 or float grey levels) in the image ``grey [H x W]`` within
    ``search`` pixels of its starting pixel ``uv [M x 2]`` (pixel-centre convention).

    Returns ``(uv_found [M x 2], found [M])``; a patch is found when it has texture (grey-level standard deviation
    >= ``min_std``), its best normalised cross-correlation is >= ``min_ncc`` and the peak is inside the search window
    (not on its rim); the others keep their starting pixel.
    """
    m = len(uv)
    if m == 0 or patches.numel() == 0:
        return np.asarray(uv, np.float64).copy(), np.zeros(m, bool)
    s = patches.shape[-1]
    n = s * s
    t = patches.float().reshape(m, n)
    t = t - t.mean(1, keepdim=True)
    t_norm = t.norm(dim=1)
    # the query is searched on its own pixel grid around the point's pixel (no resampling of the query); the image
    # is padded by repeating its edge so that every window is one gather from a flat index
    h, w = grey.shape
    ww = s + 2 * search
    pad = (s - 1) // 2 + search
    padded = F.pad(grey[None, None], (pad, pad, pad, pad), mode="replicate")[0, 0]
    wp = w + 2 * pad
    centre = torch.as_tensor(np.floor(np.asarray(uv, np.float64)), dtype=torch.long)  # pixel (column, row)
    centre = torch.stack([centre[:, 0].clamp(-pad, w - 1 + pad), centre[:, 1].clamp(-pad, h - 1 + pad)], 1)
    offsets = (torch.arange(ww)[:, None] * wp + torch.arange(ww)[None, :]).reshape(-1)
    first = centre[:, 1] * wp + centre[:, 0]  # top-left of the window in the padded image: centre - pad + pad
    win = padded.reshape(-1)[first[:, None] + offsets[None, :]].reshape(m, ww, ww)  # [M x W x W]
    win = win - win.mean((1, 2), keepdim=True)  # NCC ignores offsets; float32 variances below need small values
    # correlation of the zero-mean patch with every S x S sub-window (one group per match), and each sub-window's
    # spread from box sums: NCC = <t, w - mean(w)> / (|t| |w - mean(w)|) = <t, w> / (|t| sqrt(n var(w)))
    corr = F.conv2d(win[None], t.reshape(m, 1, s, s), groups=m)[0]  # [M x (2 search + 1) x (2 search + 1)]
    mean, mean_sq = _box_mean(win, s), _box_mean(win * win, s)
    var = (mean_sq - mean * mean).clamp_min(0)
    ncc = corr / (t_norm[:, None, None] * (n * var).sqrt()).clamp_min(1e-6)
    k = 2 * search + 1
    best, arg = ncc.reshape(m, -1).max(1)
    iy, ix = arg // k, arg % k
    inner = (ix > 0) & (ix < k - 1) & (iy > 0) & (iy < k - 1)
    ok = inner & (best >= min_ncc) & (t_norm >= min_std * np.sqrt(n))
    r = torch.arange(m)
    cx, cy = ix.clamp(1, k - 2), iy.clamp(1, k - 2)

    def vertex(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # parabola through -1, 0, +1
        den = a - 2 * b + c
        return torch.where(den < 0, 0.5 * (a - c) / den.clamp(max=-1e-9), torch.zeros_like(den)).clamp(-0.5, 0.5)

    dx = vertex(ncc[r, cy, cx - 1], ncc[r, cy, cx], ncc[r, cy, cx + 1])
    dy = vertex(ncc[r, cy - 1, cx], ncc[r, cy, cx], ncc[r, cy + 1, cx])
    peak = (centre + 0.5 + torch.stack([ix - search, iy - search], 1)).double() + torch.stack([dx, dy], 1).double()
    out = np.asarray(uv, np.float64).copy()
    okn = ok.numpy()
    out[okn] = peak.numpy()[okn]
    return out, okn


def _box_mean(x: torch.Tensor, s: int) -> torch.Tensor:
    """Means of all ``s x s`` windows of ``x [M x W x W]`` -> ``[M x (W - s + 1) x (W - s + 1)]`` (separable sums;
    four times faster than an integral image's cumulative sums on a CPU)."""
    return x.unfold(1, s, 1).sum(-1).unfold(2, s, 1).sum(-1) / (s * s)
