"""Analytic surface textures of the procedural room (no texture images stored).

Every texture is a deterministic function of a surface coordinate ``uv`` (metres, 2D, on the surface)
and of a :class:`Material` drawn from the scene seed: plaster stains, bricks, wood planks, tiles,
camouflage blobs, stripes, dots, mosaics, marble, rings, printed pages and soft "photos"; walls carry
posters, a door and sometimes a wainscot. Edges and noise octaves are anti-aliased analytically from the
pixel footprint ``fw`` (metres per pixel on the surface), so textures stay crisp at 320x240 without
aliasing. Albedo values are float32 RGB in [0, 1]; the scene multiplies them by the (view-independent)
Lambertian shading.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field, replace

import numpy as np

from .noise import NoiseBank, aa_step, band_limit, hash01

__all__ = ["Material", "NoiseBank", "Poster", "material_albedo", "random_material"]


def _lerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    return a + (b - a) * w[:, None]


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32)


def _palette(rng: np.random.Generator, n: int, sat: tuple[float, float], val: tuple[float, float]) -> np.ndarray:
    """``n`` colours with well separated hues and alternating brightness (high contrast)."""
    h0 = rng.random()
    hues = h0 + np.arange(n) / n + rng.uniform(-0.06, 0.06, n)
    rng.shuffle(hues)
    vals = np.linspace(val[0], val[1], n)
    rng.shuffle(vals)
    return np.stack([_hsv(h, rng.uniform(*sat), v) for h, v in zip(hues, vals)])


def _muted(rng: np.random.Generator, n: int, sat: tuple[float, float], val: tuple[float, float]) -> np.ndarray:
    """``n`` related tones (one hue family, a few value steps): paint, plaster, wallpaper."""
    h = rng.random()
    vals = np.linspace(val[0], val[1], n)
    rng.shuffle(vals)
    return np.stack([_hsv(h + rng.uniform(-0.05, 0.05), rng.uniform(*sat), v) for v in vals])


@dataclass(frozen=True)
class Poster:
    """A flat rectangle of pattern on a surface: ``[u0, u1] x [v0, v1]`` in surface metres."""

    rect: tuple[float, float, float, float]
    material: "Material"
    frame: np.ndarray  # frame colour, RGB in [0, 1]
    frame_width: float


@dataclass(frozen=True)
class Material:
    """Parameters of one surface texture; see :func:`material_albedo`.

    ``lower`` (walls): another material below ``lower_height`` metres of v (a wainscot / dado).
    """

    kind: str  # plaster, brick, wood, tiles, camo, stripes, dots, mosaic, marble, rings, text, photo
    palette: np.ndarray  # [k x 3] float32 RGB in [0, 1]
    freq: float  # base frequency, cycles per metre
    key: int  # noise key
    angle: float = 0.0  # pattern orientation (radians)
    scale: float = 0.15  # cell / plank / stripe size (metres)
    grain: float = 0.08  # amplitude of fine grain noise
    posters: tuple[Poster, ...] = field(default_factory=tuple)
    lower: "Material | None" = None
    lower_height: float = 0.0


_OBJECT_KINDS = ("wood", "marble", "camo", "stripes", "dots", "mosaic", "rings")
_POSTER_KINDS = ("camo", "stripes", "dots", "mosaic", "rings", "marble", "text", "photo", "text", "photo")


def random_material(rng: np.random.Generator, role: str, extent: tuple[float, float] = (1.0, 1.0)) -> Material:
    """Draw a material for ``role`` in {wall, floor, ceiling, object, poster, wood}.

    ``extent`` is the (u, v) size of the surface in metres (walls: where to hang posters).
    """
    key = int(rng.integers(1, 2**30))
    if role == "wall":
        kind = str(rng.choice(["plaster", "plaster", "brick", "stripes"]))
        if kind == "brick":
            pal = _muted(rng, 3, (0.3, 0.6), (0.45, 0.7))
            pal = np.concatenate([pal, _hsv(0, 0, rng.uniform(0.7, 0.85))[None]])  # mortar
            scale = rng.uniform(0.07, 0.1)
        else:
            pal = _muted(rng, 3, (0.08, 0.35), (0.6, 0.85))
            scale = rng.uniform(0.06, 0.16)
        lower = None
        lower_h = 0.0
        if rng.random() < 0.5:
            lower = replace(random_material(rng, "wood"), angle=np.pi / 2) if rng.random() < 0.5 else Material(
                "tiles", _muted(rng, 3, (0.1, 0.4), (0.4, 0.8)), rng.uniform(1, 2), int(rng.integers(1, 2**30)),
                scale=float(rng.uniform(0.1, 0.2)), grain=0.05)
            lower_h = float(rng.uniform(0.8, 1.1))
        return Material(kind, pal, rng.uniform(1.0, 2.0), key, angle=np.pi / 2, scale=scale, grain=0.07,
                        posters=_random_posters(rng, extent, lower_h), lower=lower, lower_height=lower_h)
    if role == "ceiling":
        base = _hsv(rng.random(), rng.uniform(0.0, 0.1), rng.uniform(0.8, 0.88))
        return Material("tiles", np.stack([base, base * 0.93, base * 0.7]), rng.uniform(0.8, 1.5), key,
                        angle=0.0, scale=float(rng.choice([0.5, 0.6])), grain=0.05)
    if role == "floor":
        kind = str(rng.choice(["wood", "wood", "tiles", "camo"]))
        if kind == "wood":
            return _wood_material(rng, key, rng.uniform(0.12, 0.2))
        pal = _palette(rng, 4, (0.2, 0.5), (0.3, 0.75))
        return Material(kind, pal, rng.uniform(1.0, 2.0), key, angle=rng.uniform(0, np.pi),
                        scale=rng.uniform(0.3, 0.5), grain=0.08)
    if role not in ("object", "poster", "wood"):
        raise ValueError(f"unknown material role '{role}'")
    kind = "wood" if role == "wood" else str(rng.choice(_OBJECT_KINDS if role == "object" else _POSTER_KINDS))
    if kind == "wood":
        return _wood_material(rng, key, rng.uniform(0.1, 0.25))
    pal = _palette(rng, 5, (0.4, 0.8), (0.25, 0.9))
    if kind == "text":
        pal = np.stack([_hsv(rng.random(), rng.uniform(0, 0.2), rng.uniform(0.8, 0.92)),
                        _hsv(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.1, 0.35)), pal[0], pal[1], pal[2]])
    scale = {"stripes": rng.uniform(0.03, 0.09), "dots": rng.uniform(0.06, 0.14), "mosaic": rng.uniform(0.05, 0.15),
             "rings": rng.uniform(0.03, 0.07), "text": rng.uniform(0.04, 0.07)}.get(kind, 0.1)
    return Material(kind, pal, rng.uniform(2.0, 5.0), key, angle=rng.uniform(0, np.pi), scale=scale, grain=0.08)


def _wood_material(rng: np.random.Generator, key: int, plank: float) -> Material:
    h = rng.uniform(0.03, 0.12)
    pal = np.stack([_hsv(h, 0.6, 0.68), _hsv(h, 0.75, 0.4), _hsv(h + 0.02, 0.5, 0.8), _hsv(h, 0.8, 0.18)])
    return Material("wood", pal, rng.uniform(15, 30), key, angle=rng.uniform(0, np.pi), scale=plank, grain=0.07)


def _random_posters(rng: np.random.Generator, extent: tuple[float, float], v_min: float) -> tuple[Poster, ...]:
    """4-8 non-overlapping posters, boards and a door on a wall of size ``extent`` (u along, v = height)."""
    posters: list[Poster] = []
    rects: list[tuple[float, float, float, float]] = []
    want = int(rng.integers(4, 9))
    if rng.random() < 0.5 and extent[0] > 2.0:  # a door, down to the floor
        u0 = rng.uniform(0.3, extent[0] - 1.2)
        rects.append((u0, -0.1, u0 + rng.uniform(0.8, 0.95), rng.uniform(2.0, 2.15)))
        door = random_material(rng, "wood")
        posters.append(Poster(rects[-1], replace(door, angle=np.pi / 2), _hsv(0, 0, 0.9), 0.06))
    for _ in range(100):
        if len(rects) >= want:
            break
        w, h = rng.uniform(0.3, 1.1), rng.uniform(0.25, 0.85)
        u0 = rng.uniform(0.1, max(0.11, extent[0] - w - 0.1))
        v0 = rng.uniform(max(0.5, v_min + 0.15), max(0.56, min(extent[1] - h - 0.2, 2.3 - h / 2)))
        r = (u0, v0, u0 + w, v0 + h)
        if any(r[0] < q[2] + 0.1 and q[0] < r[2] + 0.1 and r[1] < q[3] + 0.1 and q[1] < r[3] + 0.1 for q in rects):
            continue
        rects.append(r)
        frame = _hsv(rng.random(), rng.uniform(0.0, 0.6), float(rng.choice([0.12, 0.9])))
        posters.append(Poster(r, random_material(rng, "poster"), frame, float(rng.uniform(0.015, 0.04))))
    return tuple(posters)


# ----------------------------------------------------------------------------- patterns
# Each pattern: (material, uv [N x 2] m, q = uv rotated by material.angle, fw [N] m/px, bank) -> RGB [N x 3].
def _rot(uv: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return np.stack([c * uv[:, 0] + s * uv[:, 1], -s * uv[:, 0] + c * uv[:, 1]], axis=1)


def _const(colour: np.ndarray, n: int) -> np.ndarray:
    return np.repeat(np.asarray(colour, np.float32).reshape(1, 3), n, axis=0)


def _ramp(v: np.ndarray, lo: float, gain: float) -> np.ndarray:
    return np.clip((v - np.float32(lo)) * np.float32(gain), 0.0, 1.0)


def _posterize(v: np.ndarray, pal: np.ndarray, edges: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Map scalar ``v`` to palette colours with anti-aliased boundaries at ``edges``."""
    col = _const(pal[0], len(v))
    for i, e in enumerate(edges):
        col = _lerp(col, pal[np.newaxis, i + 1], aa_step(v - e, width))
    return col


def _bands(x: np.ndarray, m: "Material", fw: np.ndarray, salt: int) -> np.ndarray:
    """Bands of width ``m.scale`` along ``x`` with random palette colours, anti-aliased borders."""
    band = np.floor(x / m.scale)
    ib = band.astype(np.int64)
    n_pal = len(m.palette)
    cur = (hash01(ib, salt, m.key) * n_pal).astype(np.int64)
    prev = (hash01(ib - 1, salt, m.key) * n_pal).astype(np.int64)
    return _lerp(m.palette[prev], m.palette[cur], aa_step((x / m.scale - band) * m.scale, fw))


def _plaster(m, uv, q, fw, bank):  # soft stains / patches in related tones, mottled
    v = bank.fbm(uv, fw, m.freq, 4, m.key, gain=0.6)
    col = _posterize(v, m.palette, np.array([0.42, 0.6], np.float32), np.float32(0.04) + 1.5 * m.freq * fw)
    return col * (0.92 + 0.16 * bank.fbm(uv, fw, m.freq * 3.0, 2, m.key + 5))[:, None]


def _brick(m, uv, q, fw, bank):
    pal, bh, bl = m.palette, m.scale, m.scale * 3.0
    row = np.floor(uv[:, 1] / bh)
    irow = row.astype(np.int64)
    u = uv[:, 0] + (irow % 2) * (bl / 2) + hash01(irow, 9, m.key) * 0.05
    col = np.floor(u / bl)
    ic = col.astype(np.int64)
    r1, r2, r3 = hash01(irow, ic, m.key), hash01(irow, ic, m.key + 1), hash01(irow, ic, m.key + 2)
    brick = _lerp(pal[(r1 * 3).astype(np.int64)], pal[np.newaxis, (int(m.key) % 3)],
                  _ramp(bank.fbm(uv, fw, m.freq, 3, m.key), 0.3, 1.5) * 0.6)
    # per-brick brightness, a few odd bricks, and grime patches: no two stretches of wall alike
    tone = 0.72 + 0.45 * r2 + np.where(r3 < 0.05, -0.35, np.where(r3 > 0.96, 0.3, 0.0))
    grime = _ramp(bank.fbm(uv, fw, m.freq * 0.7, 3, m.key + 4), 0.56, 5.0)
    brick = brick * (tone * (1.0 - 0.4 * grime))[:, None]
    edge = np.minimum(np.minimum(uv[:, 1] - row * bh, (row + 1) * bh - uv[:, 1]),
                      np.minimum(u - col * bl, (col + 1) * bl - u))
    return _lerp(_const(pal[3], len(uv)), brick, aa_step(edge - 0.006, fw))


def _text(m, uv, q, fw, bank):  # a printed page: rows of blocky glyphs, words and ragged line ends
    pal, lh, cw = m.palette, m.scale * 1.5, m.scale * 0.6
    row = np.floor(uv[:, 1] / lh)
    irow = row.astype(np.int64)
    fv = uv[:, 1] / lh - row
    ci = np.floor(uv[:, 0] / cw).astype(np.int64)
    fu = uv[:, 0] / cw - ci
    line_len = 4 + (hash01(irow, -1, m.key) * 24).astype(np.int64)
    on = (hash01(irow, ci // 6, m.key + 2) > 0.12) & (ci % 6 != 5) & (ci < line_len) & (ci >= 1)
    on &= (fv > 0.2) & (fv < 0.8) & (fu > 0.12) & (fu < 0.88) & (irow % 7 != 3)
    gx = np.clip(((fu - 0.12) / 0.76 * 3).astype(np.int64), 0, 2)
    gy = np.clip(((fv - 0.2) / 0.6 * 3).astype(np.int64), 0, 2)
    on &= hash01(irow * 4096 + ci, gx * 3 + gy, m.key + 3) > 0.4
    ink = np.where((irow % 7 == 0)[:, None], pal[np.newaxis, 2], pal[np.newaxis, 1])
    return _lerp(_const(pal[0], len(uv)), ink, on.astype(np.float32) * band_limit(1.0 / cw * 1.5, fw))


def _photo(m, uv, q, fw, bank):  # a soft, colourful picture
    pal = m.palette
    s1 = _ramp(bank.fbm(uv, fw, m.freq, 4, m.key, gain=0.65), 0.3, 2.5)
    s2 = _ramp(bank.fbm(uv, fw, m.freq, 4, m.key + 1, gain=0.65), 0.3, 2.5)
    top = _lerp(_const(pal[0], len(uv)), pal[np.newaxis, 1], s1)
    return _lerp(top, _lerp(_const(pal[2], len(uv)), pal[np.newaxis, 3], s1), s2)


def _camo(m, uv, q, fw, bank):  # sharp-edged blobs in 3-5 colours
    v = bank.fbm(uv, fw, m.freq, 4, m.key, gain=0.6)
    edges = np.array([0.38, 0.48, 0.56, 0.64], np.float32)[: len(m.palette) - 1]
    return _posterize(v, m.palette, edges, 1.08 * m.freq * fw + 0.01)


def _marble(m, uv, q, fw, bank):
    pal = m.palette
    warp = bank.fbm(uv, fw, m.freq, 4, m.key)
    s = np.sin(np.float32(2 * np.pi * m.freq * 1.3) * q[:, 0] + 14.0 * warp)
    vein = np.clip(1.0 - np.abs(s) * 4.0, 0.0, 1.0) * band_limit(m.freq * 8.0, fw)
    mott = _ramp(bank.fbm(uv, fw, m.freq * 0.5, 2, m.key + 1), 0.3, 1.6)
    base = _lerp(_const(pal[0], len(uv)), pal[np.newaxis, 1], mott)
    return _lerp(base, pal[np.newaxis, 2] * 0.5, vein)


def _stripes(m, uv, q, fw, bank):  # warped bands
    return _bands(q[:, 0] + 2.4 * m.scale * (bank.fbm(uv, fw, m.freq, 2, m.key) - 0.5), m, fw, 0)


def _rings(m, uv, q, fw, bank):  # warped concentric bands
    centre = np.array([0.3, 0.2], np.float32) * m.key % 1.0
    r = np.linalg.norm(uv - centre, axis=1) + 2.0 * m.scale * (bank.fbm(uv, fw, m.freq, 2, m.key) - 0.5)
    return _bands(r, m, fw, 1)


def _cells(m, uv, q, fw, bank):  # dots, mosaic, tiles: a grid of cells with per-cell randomness
    pal = m.palette
    cell = np.floor(q / m.scale)
    ix, iy = cell[:, 0].astype(np.int64), cell[:, 1].astype(np.int64)
    local = q / m.scale - cell  # [0, 1)
    r1, r2 = hash01(ix, iy, m.key), hash01(ix, iy, m.key + 7)
    if m.kind == "dots":
        back = _posterize(bank.fbm(uv, fw, m.freq, 3, m.key), pal[:2], np.array([0.5], np.float32), 0.05)
        centre = 0.3 + 0.4 * np.stack([r1, r2], 1)
        rad = 0.12 + 0.26 * hash01(ix, iy, m.key + 3)
        disc = aa_step(rad * m.scale - np.linalg.norm(local - centre, axis=1) * m.scale, fw)
        return _lerp(back, pal[2 + (r1 * (len(pal) - 2)).astype(np.int64)], disc)
    edge = np.minimum(local, 1.0 - local).min(1) * m.scale
    if m.kind == "tiles":
        mott = _ramp(bank.fbm(uv, fw, m.freq, 3, m.key), 0.3, 1.6)
        inner = _lerp(_const(pal[0], len(uv)), pal[np.newaxis, 1], mott) * (0.9 + 0.2 * r1)[:, None]
        return _lerp(_const(pal[-1] * 0.6, len(uv)), inner, aa_step(edge - 0.012, fw))
    inner = pal[(r1 * len(pal)).astype(np.int64)] * (0.85 + 0.3 * r2)[:, None]
    return _lerp(_const([0.15, 0.15, 0.15], len(uv)), inner, aa_step(edge - 0.006, fw))


def _wood(m, uv, q, fw, bank):
    """Planks along rotated u: per-plank tint and warped log-ring grain, dark gaps between planks."""
    pal = m.palette
    row = np.floor(q[:, 1] / m.scale)
    irow = row.astype(np.int64)
    length = 1.2
    u = q[:, 0] + hash01(irow, 3, m.key) * length
    col = np.floor(u / length)
    icol = col.astype(np.int64)
    lu, lv = u - col * length, q[:, 1] - row * m.scale
    h1, h2 = hash01(irow, icol, m.key), hash01(irow, icol, m.key + 1)
    warp = bank.fbm(np.stack([lu * 1.2 + icol * 3.1, lv * 3.0 + irow * 1.7], 1), fw, 1.5, 3, m.key)
    r = np.hypot(lv - m.scale * (0.2 + 0.6 * h1), 0.02 + 0.06 * h2) + 0.25 * warp
    ring = np.sin(np.float32(2 * np.pi * m.freq) * r) * band_limit(m.freq, fw)
    fibre = bank.fbm(np.stack([lu * 0.1, lv * 4.0], 1), fw * 4.0, 30.0, 2, m.key + 2)
    base = _lerp(pal[np.newaxis, 0] * (0.8 + 0.4 * h1)[:, None], pal[np.newaxis, 1], np.clip(0.4 + 0.4 * ring, 0, 1))
    base = base * (0.85 + 0.3 * fibre)[:, None]
    gap = np.minimum(np.minimum(lv, m.scale - lv), np.minimum(lu, length - lu))
    return _lerp(pal[np.newaxis, 3], base, aa_step(gap - 0.003, fw))


_PATTERNS = {"plaster": _plaster, "brick": _brick, "text": _text, "photo": _photo, "camo": _camo, "marble": _marble,
             "stripes": _stripes, "rings": _rings, "dots": _cells, "mosaic": _cells, "tiles": _cells, "wood": _wood}


def _pattern(m: Material, uv: np.ndarray, fw: np.ndarray, bank: NoiseBank) -> np.ndarray:
    if m.kind not in _PATTERNS:
        raise ValueError(f"unknown material kind '{m.kind}'")
    return _PATTERNS[m.kind](m, uv, _rot(uv, m.angle), fw, bank)


def material_albedo(m: Material, uv: np.ndarray, fw: np.ndarray, bank: NoiseBank) -> np.ndarray:
    """Albedo ``[N x 3]`` float32 in [0, 1] of material ``m`` at surface coords ``uv`` ``[N x 2]`` (metres).

    ``fw`` ``[N]``: pixel footprint on the surface (metres per pixel), for band-limiting.
    """
    uv = np.asarray(uv, np.float32)
    fw = np.asarray(fw, np.float32)
    col = _pattern(m, uv, fw, bank)
    if m.lower is not None:  # wainscot below lower_height, with a rail
        w = aa_step(m.lower_height - uv[:, 1], fw)
        sel = np.nonzero(w > 0)[0]
        if len(sel):
            col[sel] = _lerp(col[sel], _pattern(m.lower, uv[sel], fw[sel], bank), w[sel])
        rail = aa_step(0.025 - np.abs(uv[:, 1] - m.lower_height), fw)
        col = _lerp(col, m.lower.palette[np.newaxis, 1] * 0.8, rail)
    for p in m.posters:
        u0, v0, u1, v1 = p.rect
        dist_in = np.minimum(np.minimum(uv[:, 0] - u0, u1 - uv[:, 0]), np.minimum(uv[:, 1] - v0, v1 - uv[:, 1]))
        inside = aa_step(dist_in, fw)
        sel = np.nonzero(inside > 0)[0]
        if len(sel) == 0:
            continue
        inner = _pattern(p.material, uv[sel] - np.array([u0, v0], np.float32), fw[sel], bank)
        inner = _lerp(_const(p.frame, len(sel)), inner, aa_step(dist_in[sel] - p.frame_width, fw[sel]))
        col[sel] = _lerp(col[sel], inner, inside[sel])
    if m.grain > 0:  # fine grain everywhere (band-limited)
        g = bank.fbm(uv, fw, 40.0, 2, m.key + 11)
        col = col * (1.0 + np.float32(m.grain / 0.18) * (g - 0.5))[:, None]
    return np.clip(col, 0.0, 1.0).astype(np.float32)
