"""sensor_msgs/Image and sensor_msgs/CompressedImage <-> numpy (the one place ROS encodings live).

Core images are ``H x W x 3`` uint8 **RGB**; depth is ``H x W`` float32 **metres**, 0 = invalid
(DESIGN.md section 2). Converters read only ROS field names, so they take rosbags messages (numpy
``data``), rclpy messages (``array.array``) or anything with ``height/width/encoding/step/data``.

Supported:

- raw colour ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` (alpha dropped), ``mono8`` (grey replicated
  to 3 channels); row padding (``step`` > width * bytes per pixel) and ``is_bigendian`` respected;
- raw depth ``16UC1`` (millimetres, 0 = invalid) and ``32FC1`` (metres; NaN/inf/<= 0 -> 0);
- compressed colour: ``format`` ``jpeg``/``jpg``/``png`` (ROS 1 style), ``"<enc>; jpeg compressed bgr8"``
  / ``"<enc>; png compressed <enc>"`` (image_transport ``compressed``), or empty (sniffed);
- compressed depth: ``"16UC1; compressedDepth[ png]"`` and ``"32FC1; compressedDepth[ png]"``
  (image_transport ``compressedDepth``: 12-byte header + PNG) and ``"16UC1; png compressed ..."``.

Not supported (raise :class:`UnsupportedEncodingError`): Bayer, YUV, 16-bit colour, ``rvl``,
video codecs (h264, theora, ...).
"""

from __future__ import annotations

import logging
import struct
from typing import Any, NamedTuple

import cv2
import numpy as np

from .errors import MalformedMessageError, UnsupportedEncodingError
from .msgtypes import MessageTypes, default_types

__all__ = [
    "COLOUR_ENCODINGS",
    "DEPTH_ENCODINGS",
    "CompressedFormat",
    "parse_compressed_format",
    "image_msg_to_rgb",
    "depth_msg_to_metres",
    "compressed_msg_to_rgb",
    "compressed_depth_msg_to_metres",
    "rgb_to_image_msg",
    "rgb_to_compressed_msg",
    "depth_to_image_msg",
]

log = logging.getLogger(__name__)

#: encoding -> (numpy dtype, channels) for raw colour images.
COLOUR_ENCODINGS = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
}
#: encoding -> (numpy dtype, channels) for raw depth images.
DEPTH_ENCODINGS = {"16UC1": (np.uint16, 1), "32FC1": (np.float32, 1)}
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MAX_DIM = 2**31 - 1


def _data_bytes(data: Any) -> np.ndarray:
    """Flat uint8 view of a message ``data`` field (numpy, bytes, array.array('B'), list)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview)) or hasattr(data, "typecode"):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)


def _raw_array(msg: Any, dtype: Any, channels: int) -> np.ndarray:
    """Decode a raw ``sensor_msgs/Image`` into a fresh ``[H, W, C]`` native-endian array, checking sizes."""
    enc = msg.encoding
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise MalformedMessageError(f"Image ({enc}) has size {w}x{h}: width and height must be positive")
    itemsize = np.dtype(dtype).itemsize
    row_bytes = w * channels * itemsize
    if step < row_bytes:
        raise MalformedMessageError(
            f"Image ({enc}) step {step} < width {w} x {channels} channel(s) x {itemsize} byte(s) = {row_bytes}"
        )
    buf = _data_bytes(msg.data)
    n, need, full = len(buf), step * (h - 1) + row_bytes, step * h
    if n < need:
        raise MalformedMessageError(
            f"Image ({enc}, {w}x{h}, step {step}) has {n} data bytes, expected {full} (step x height): truncated"
        )
    if n > full:
        raise MalformedMessageError(
            f"Image ({enc}, {w}x{h}, step {step}) has {n} data bytes, expected {full} (step x height)"
        )
    if n < full:  # last row without its padding
        tmp = np.zeros(full, dtype=np.uint8)
        tmp[:n] = buf
        buf = tmp
    rows = np.ascontiguousarray(buf.reshape(h, step)[:, :row_bytes])
    order = ">" if int(getattr(msg, "is_bigendian", 0)) else "<"
    arr = rows.view(np.dtype(dtype).newbyteorder(order) if itemsize > 1 else dtype)
    return arr.astype(dtype, copy=True).reshape(h, w, channels)


def image_msg_to_rgb(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) -> ``H x W x 3`` uint8 RGB (a new array)."""
    enc = str(msg.encoding).strip()
    key = enc.lower()
    if key not in COLOUR_ENCODINGS:
        if enc.upper() in DEPTH_ENCODINGS:
            raise UnsupportedEncodingError(f"Image encoding '{enc}' is depth: use depth_msg_to_metres()")
        raise UnsupportedEncodingError(
            f"Image encoding '{enc}' is not supported for colour; expected one of {sorted(COLOUR_ENCODINGS)}"
        )
    arr = _raw_array(msg, *COLOUR_ENCODINGS[key])
    if key == "rgb8":
        return arr
    if key == "bgr8":
        return np.ascontiguousarray(arr[..., ::-1])
    if key == "rgba8":
        return np.ascontiguousarray(arr[..., :3])
    if key == "bgra8":
        return np.ascontiguousarray(arr[..., 2::-1])
    return np.repeat(arr, 3, axis=2)  # mono8


def depth_msg_to_metres(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` depth -> ``H x W`` float32 metres, 0 = invalid.

    ``16UC1``: millimetres (0 = invalid). ``32FC1``: metres; NaN, inf and values <= 0 become 0.
    """
    enc = str(msg.encoding).strip()
    key = enc.upper()
    if key not in DEPTH_ENCODINGS:
        raise UnsupportedEncodingError(
            f"depth Image encoding '{enc}' is not supported; expected one of {sorted(DEPTH_ENCODINGS)}"
        )
    arr = _raw_array(msg, *DEPTH_ENCODINGS[key])[..., 0]
    return _depth_to_metres(arr, key)


def _depth_to_metres(arr: np.ndarray, key: str) -> np.ndarray:
    if key == "16UC1":
        return arr.astype(np.float32) / np.float32(1000.0)
    out = arr.astype(np.float32, copy=True)
    out[~np.isfinite(out) | (out <= 0)] = 0.0
    return out


class CompressedFormat(NamedTuple):
    """Parsed ``CompressedImage.format``: codec ``jpeg``/``png``/``compressedDepth``/``""`` (sniff) and
    the original raw encoding when the string names one (``"rgb8; jpeg compressed bgr8"`` -> ``rgb8``)."""

    codec: str
    original_encoding: str | None


def parse_compressed_format(fmt: str) -> CompressedFormat:
    """Parse a ``CompressedImage.format`` string; raises :class:`UnsupportedEncodingError` for unknown codecs."""
    text = str(fmt).strip()
    original = None
    rest = text
    if ";" in text:
        original, rest = (s.strip() for s in text.split(";", 1))
        original = original or None
    words = rest.lower().split()
    if not words:
        return CompressedFormat("", original)
    if words[0] == "compresseddepth":
        if len(words) > 1 and words[1] != "png":
            raise UnsupportedEncodingError(f"CompressedImage format '{fmt}': only PNG compressedDepth is supported")
        return CompressedFormat("compressedDepth", original)
    codec = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}.get(words[0])
    if codec is None:
        raise UnsupportedEncodingError(
            f"CompressedImage format '{fmt}' is not supported; expected jpeg/jpg/png, "
            f"'<enc>; jpeg compressed bgr8', '<enc>; png compressed <enc>' or '<16UC1|32FC1>; compressedDepth'"
        )
    return CompressedFormat(codec, original)


def _sniff(buf: np.ndarray) -> str:
    head = buf[:8].tobytes()
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    if head.startswith(_PNG_MAGIC):
        return "png"
    return ""


def _decode(buf: np.ndarray, flags: int, what: str) -> np.ndarray:
    if len(buf) == 0:
        raise MalformedMessageError(f"{what}: no data")
    if not _sniff(buf):
        raise MalformedMessageError(f"{what}: data is neither JPEG nor PNG (first bytes {buf[:8].tobytes()!r})")
    img = cv2.imdecode(buf, flags)
    if img is None:
        kind = _sniff(buf).upper()
        raise MalformedMessageError(f"{what}: {kind} data could not be decoded (corrupt or truncated, {len(buf)} B)")
    return img


def compressed_msg_to_rgb(msg: Any) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (JPEG or PNG colour/grey) -> ``H x W x 3`` uint8 RGB.

    Depth formats (``compressedDepth``, or an original encoding 16UC1/32FC1) are rejected: use
    :func:`compressed_depth_msg_to_metres`.
    """
    fmt = parse_compressed_format(msg.format)
    what = f"CompressedImage (format '{msg.format}')"
    if fmt.codec == "compressedDepth" or (fmt.original_encoding or "").upper() in DEPTH_ENCODINGS:
        raise UnsupportedEncodingError(f"{what} is a depth image: use compressed_depth_msg_to_metres()")
    bgr = _decode(_data_bytes(msg.data), cv2.IMREAD_COLOR, what)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def compressed_depth_msg_to_metres(msg: Any) -> np.ndarray:
    """Compressed depth ``CompressedImage`` -> ``H x W`` float32 metres, 0 = invalid.

    ``"16UC1; compressedDepth"``: 12-byte header + 16-bit PNG of millimetres.
    ``"32FC1; compressedDepth"``: 12-byte header (format, quantA, quantB) + 16-bit PNG of quantised
    inverse depth, ``depth = quantA / (v - quantB)``, ``v = 0`` invalid (image_transport codec).
    ``"16UC1; png compressed mono16"``: plain 16-bit PNG of millimetres.
    """
    fmt = parse_compressed_format(msg.format)
    what = f"CompressedImage (format '{msg.format}')"
    enc = (fmt.original_encoding or "").upper()
    if enc not in DEPTH_ENCODINGS:
        raise UnsupportedEncodingError(
            f"{what}: depth needs an original encoding 16UC1 or 32FC1, got '{fmt.original_encoding}'"
        )
    buf = _data_bytes(msg.data)
    quant = None
    if fmt.codec == "compressedDepth" and not buf[:8].tobytes().startswith(_PNG_MAGIC):
        if len(buf) < 12:
            raise MalformedMessageError(f"{what}: {len(buf)} bytes, shorter than the 12-byte compressedDepth header")
        quant = struct.unpack("<iff", buf[:12].tobytes())[1:]
        buf = buf[12:]
    img = _decode(buf, cv2.IMREAD_UNCHANGED, what)
    if img.dtype != np.uint16 or img.ndim != 2:
        raise MalformedMessageError(f"{what}: expected a single-channel 16-bit PNG, got {img.dtype} {img.shape}")
    if enc == "16UC1":
        return _depth_to_metres(img, "16UC1")
    if quant is None:
        raise MalformedMessageError(f"{what}: 32FC1 depth needs the compressedDepth quantisation header")
    a, b = quant
    v = img.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(img > 0, np.float32(a) / (v - np.float32(b)), 0.0).astype(np.float32)
    return _depth_to_metres(depth, "32FC1")


# ---------------------------------------------------------------------- builders
def _check_rgb(rgb: np.ndarray, allow_grey: bool = False) -> np.ndarray:
    rgb = np.asarray(rgb)
    ok = rgb.dtype == np.uint8 and ((rgb.ndim == 3 and rgb.shape[2] == 3) or (allow_grey and rgb.ndim == 2))
    if not ok:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0 or max(rgb.shape[:2]) > _MAX_DIM:
        raise ValueError(f"image size {rgb.shape[1]}x{rgb.shape[0]} is empty or too large")
    return rgb


def _raw_msg(
    arr: np.ndarray, encoding: str, stamp_ns: int, frame_id: str, types: MessageTypes, step: int | None
) -> Any:
    h, w = arr.shape[:2]
    row = np.ascontiguousarray(arr).reshape(h, -1).view(np.uint8)
    row_bytes = row.shape[1]
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise ValueError(f"step {step} < {row_bytes} bytes per row for {encoding} {w}x{h}")
    if step > row_bytes:
        padded = np.zeros((h, step), dtype=np.uint8)
        padded[:, :row_bytes] = row
        row = padded
    return types.make(
        "sensor_msgs/msg/Image",
        header=types.header(stamp_ns, frame_id),
        height=int(h),
        width=int(w),
        encoding=encoding,
        is_bigendian=0,
        step=int(step),
        data=types.uint8_array(row),
    )


def rgb_to_image_msg(
    rgb: np.ndarray,
    encoding: str = "rgb8",
    stamp_ns: int = 0,
    frame_id: str = "",
    types: MessageTypes | None = None,
    step: int | None = None,
) -> Any:
    """``H x W x 3`` uint8 RGB -> ``sensor_msgs/Image`` in ``encoding`` (rgb8, bgr8, rgba8, bgra8 with
    alpha 255, mono8 via OpenCV's RGB->grey; mono8 also takes an ``H x W`` grey image).

    ``step``: bytes per row, ``>=`` width x bytes per pixel (extra bytes are zero padding).
    ``stamp_ns``: header stamp, int nanoseconds; ``frame_id``: the camera optical frame.
    """
    types = default_types() if types is None else types
    key = encoding.lower()
    if key not in COLOUR_ENCODINGS:
        raise UnsupportedEncodingError(
            f"cannot build an Image in '{encoding}'; expected one of {sorted(COLOUR_ENCODINGS)}"
        )
    rgb = _check_rgb(rgb, allow_grey=key == "mono8")
    if key == "mono8":
        arr = rgb if rgb.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    elif key == "rgb8":
        arr = rgb
    elif key == "bgr8":
        arr = rgb[..., ::-1]
    else:
        alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
        arr = np.concatenate([rgb if key == "rgba8" else rgb[..., ::-1], alpha], axis=2)
    return _raw_msg(arr, key, stamp_ns, frame_id, types, step)


def rgb_to_compressed_msg(
    rgb: np.ndarray,
    fmt: str = "jpeg",
    stamp_ns: int = 0,
    frame_id: str = "",
    types: MessageTypes | None = None,
    jpeg_quality: int = 95,
    png_level: int = 3,
) -> Any:
    """``H x W x 3`` uint8 RGB -> ``sensor_msgs/CompressedImage`` (``fmt`` ``jpeg`` or ``png``; PNG is lossless).

    ``format`` is written the ROS 2 image_transport way: ``"rgb8; jpeg compressed bgr8"``.
    """
    types = default_types() if types is None else types
    codec = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}.get(fmt.lower())
    if codec is None:
        raise UnsupportedEncodingError(f"cannot compress to '{fmt}'; expected 'jpeg' or 'png'")
    bgr = cv2.cvtColor(np.ascontiguousarray(_check_rgb(rgb)), cv2.COLOR_RGB2BGR)
    if codec == "jpeg":
        ok, enc = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    else:
        ok, enc = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
    if not ok:
        raise ValueError(f"OpenCV failed to encode a {rgb.shape} image as {codec}")
    return types.make(
        "sensor_msgs/msg/CompressedImage",
        header=types.header(stamp_ns, frame_id),
        format=f"rgb8; {codec} compressed bgr8",
        data=types.uint8_array(enc),
    )


def depth_to_image_msg(
    depth_m: np.ndarray,
    encoding: str = "16UC1",
    stamp_ns: int = 0,
    frame_id: str = "",
    types: MessageTypes | None = None,
) -> Any:
    """``H x W`` depth in metres (0/NaN/inf/<=0 = invalid) -> ``sensor_msgs/Image``.

    ``16UC1``: rounded millimetres, invalid -> 0; depths beyond 65.535 m are written as 0 (logged).
    ``32FC1``: metres as float32, invalid -> NaN (REP 118).
    """
    types = default_types() if types is None else types
    key = encoding.upper()
    if key not in DEPTH_ENCODINGS:
        raise UnsupportedEncodingError(
            f"cannot build a depth Image in '{encoding}'; expected one of {sorted(DEPTH_ENCODINGS)}"
        )
    d = np.asarray(depth_m)
    if d.ndim != 2 or d.shape[0] == 0 or d.shape[1] == 0 or not np.issubdtype(d.dtype, np.number):
        raise ValueError(f"expected an HxW numeric depth map in metres, got {d.dtype} {d.shape}")
    d = d.astype(np.float64)
    valid = np.isfinite(d) & (d > 0)
    if key == "16UC1":
        mm = np.where(valid, np.round(d * 1000.0), 0.0)
        over = mm > 65535
        if over.any():
            log.warning("depth_to_image_msg: %d pixel(s) beyond 65.535 m written as invalid (0)", int(over.sum()))
            mm[over] = 0
        arr = mm.astype("<u2")
    else:
        arr = np.where(valid, d, np.nan).astype("<f4")
    return _raw_msg(arr, key, stamp_ns, frame_id, types, None)
