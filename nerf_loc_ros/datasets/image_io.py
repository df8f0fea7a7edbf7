"""Reading image files with errors that name the file (missing, truncated, wrong format)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .posed_images import DatasetError

__all__ = ["read_rgb", "read_rgba", "read_depth_png", "composite_alpha", "parse_background"]


def _open(path: Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: image file not found")
    try:
        img = Image.open(path)
        img.load()  # decode now: truncated files fail here, not later
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot decode image ({exc})") from exc
    return img


def read_rgba(path: Path) -> np.ndarray:
    """Read an image as ``[H x W x 4]`` uint8 RGBA (alpha 255 where the file has none)."""
    return np.asarray(_open(path).convert("RGBA"))


def read_rgb(path: Path, background: tuple[int, int, int] | None = None) -> np.ndarray:
    """Read an image as ``[H x W x 3]`` uint8 RGB.

    With ``background`` (RGB 0-255) an alpha channel is composited onto it; without, alpha is dropped.
    """
    img = _open(path)
    if background is not None and (img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info):
        return composite_alpha(np.asarray(img.convert("RGBA")), background)
    return np.asarray(img.convert("RGB"))


def composite_alpha(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """Composite ``[H x W x 4]`` uint8 RGBA onto a constant RGB background -> ``[H x W x 3]`` uint8."""
    rgb = rgba[..., :3].astype(np.float32)
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
    return np.clip(rgb * a + bg * (1.0 - a) + 0.5, 0, 255).astype(np.uint8)


def read_depth_png(path: Path, scale: float) -> np.ndarray:
    """Read a 16-bit depth PNG and return float32 metres (``value / scale``); 0 stays 0 (invalid).

    ``scale`` is units per metre: 1000 for 7-Scenes (mm), 5000 for TUM RGB-D. 65535 (the original
    7-Scenes invalid marker) is mapped to 0.
    """
    img = _open(path)
    arr = np.asarray(img)
    if arr.ndim != 2 or arr.dtype not in (np.uint16, np.int32, np.uint8):
        raise DatasetError(f"{path}: expected a single-channel 16-bit depth PNG, got mode {img.mode}")
    arr = arr.astype(np.float32)
    arr[arr >= 65535] = 0.0
    return arr / float(scale)


def parse_background(value: str | tuple | None) -> tuple[int, int, int] | None:
    """Parse a background colour: ``white``/``black``/``none`` or ``R,G,B`` (0-255) -> RGB tuple or None."""
    if value is None or isinstance(value, tuple):
        return value
    named = {"white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128), "gray": (128, 128, 128)}
    v = value.strip().lower()
    if v in ("none", ""):
        return None
    if v in named:
        return named[v]
    try:
        rgb = tuple(int(c) for c in v.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise ValueError(f"background must be white, black, grey, none or R,G,B in 0..255, got '{value}'")
    return rgb  # type: ignore[return-value]
