"""Band-limited procedural noise, anti-aliased steps and integer hashing for the procedural textures.

Noise comes from one periodic, band-limited random table (512 x 512, FFT-filtered white noise, period 64
feature wavelengths) sampled with ``cv2.remap``; every octave of every surface uses its own rotation and
offset into the table (from an integer ``key``), so nothing repeats at the scale of the room. Lookups take
the pixel footprint ``fw`` (metres per pixel on the surface) and fade out detail finer than ~2-4 pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["NoiseBank", "aa_step", "band_limit", "hash01"]

_TABLE = 512  # noise table size (pixels)
_WAVE = 8.0  # feature wavelength in table pixels
_REMAP_COLS = 256  # cv2.remap needs rows, cols < 32767


class NoiseBank:
    """Periodic band-limited noise table with per-key rotated/offset lookups (deterministic from ``seed``)."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng([seed, 0x5EED])
        white = rng.standard_normal((_TABLE, _TABLE))
        k = np.fft.fftfreq(_TABLE) * _TABLE
        kk = np.hypot(k[:, None], k[None, :])
        k0 = _TABLE / _WAVE
        spec = np.fft.fft2(white) * np.exp(-0.5 * ((kk - k0) / (0.45 * k0)) ** 2)
        noise = np.real(np.fft.ifft2(spec))
        self.table = (0.5 + 0.18 * (noise - noise.mean()) / noise.std()).astype(np.float32)

    def sample(self, uv: np.ndarray, freq: float, key: int) -> np.ndarray:
        """Noise in about [0, 1] (mean 0.5, std 0.18) at ``uv`` ``[N x 2]`` metres, ``freq`` cycles per metre."""
        uv = np.ascontiguousarray(uv, np.float32)
        n = len(uv)
        if n == 0:
            return np.zeros(0, np.float32)
        a = (key * 0.6180339887) % 1.0 * 2.0 * np.pi
        c, s = np.cos(a) * _WAVE * freq, np.sin(a) * _WAVE * freq
        off = np.array([(key * 0.7548776662) % 1.0, (key * 0.5698402910) % 1.0]) * _TABLE
        xy = cv2.transform(uv.reshape(-1, 1, 2), np.array([[c, -s, off[0]], [s, c, off[1]]], np.float32)).reshape(-1, 2)
        # wrap into the table: remap needs |coords| < 32767 and is ~7x faster for in-range coords
        xy -= np.floor(xy * np.float32(1.0 / _TABLE)) * np.float32(_TABLE)
        out = np.empty(n, np.float32)
        m = n - n % _REMAP_COLS  # remap needs rows, cols < 32767: full rows of 256, then the tail
        if m:
            out[:m] = cv2.remap(self.table, xy[:m].reshape(-1, _REMAP_COLS, 2), None, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_WRAP).reshape(-1)
        if m < n:
            out[m:] = cv2.remap(self.table, xy[m:].reshape(1, -1, 2), None, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_WRAP).reshape(-1)
        return out

    def fbm(self, uv: np.ndarray, fw: np.ndarray, freq: float, octaves: int, key: int, gain: float = 0.55
            ) -> np.ndarray:
        """Band-limited fractal noise (mean 0.5, std ~0.18) at ``uv`` ``[N x 2]`` (m), base ``freq`` cycles/m.

        Octaves finer than ~3 px at footprint ``fw`` ``[N]`` (m/px) fade to the mean.
        """
        total = np.zeros(len(uv), np.float32)
        norm = 0.0
        amp = 1.0
        for o in range(octaves):
            f = freq * 2.07**o
            fade = band_limit(f, fw)
            a_o = amp
            norm += amp * amp
            amp *= gain
            if not fade.any():
                continue
            total += np.float32(a_o) * fade * (self.sample(uv, f, key * 31 + o) - 0.5)
        return 0.5 + total / np.float32(np.sqrt(norm))


def band_limit(freq: float, fw: np.ndarray) -> np.ndarray:
    """Weight in [0, 1] of a pattern of ``freq`` cycles/m at footprint ``fw`` m/px: 1 above 4 px/cycle, 0 below 2."""
    return np.clip(0.5 / (np.float32(freq) * fw) - 1.0, 0.0, 1.0).astype(np.float32)


def aa_step(x: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Anti-aliased step ``x > 0``: linear ramp over ``width`` (same units as ``x``)."""
    return np.clip(0.5 + x / np.maximum(width, 1e-6), 0.0, 1.0).astype(np.float32)


def hash01(ix: np.ndarray, iy: np.ndarray, key: int) -> np.ndarray:
    """Deterministic pseudo-random float32 in [0, 1) per integer cell ``(ix, iy)`` and ``key``."""
    h = np.asarray(ix, np.int64).astype(np.uint32) * np.uint32(0x8DA6B343)
    h ^= np.asarray(iy, np.int64).astype(np.uint32) * np.uint32(0xD8163841)
    h ^= np.uint32((key * 0x9E3779B1) & 0xFFFFFFFF)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    h *= np.uint32(0x297A2D39)
    h ^= h >> np.uint32(15)
    return (h >> np.uint32(8)).astype(np.float32) / np.float32(1 << 24)
