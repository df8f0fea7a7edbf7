"""Errors raised when a ROS message cannot be converted to plain numpy (or back).

All are ``ValueError`` subclasses, so the CLI reports them as one clear line.
"""

from __future__ import annotations

__all__ = ["ConversionError", "UnsupportedEncodingError", "MalformedMessageError", "UnusableCameraInfoError"]


class ConversionError(ValueError):
    """Base class: a message could not be converted."""


class UnsupportedEncodingError(ConversionError):
    """The message uses an image encoding / compressed format / distortion model we do not convert."""


class MalformedMessageError(ConversionError):
    """The message is internally inconsistent (size vs step vs data length, undecodable bytes, ...)."""


class UnusableCameraInfoError(MalformedMessageError):
    """A ``CameraInfo`` cannot give pinhole intrinsics (uncalibrated all-zero K, zero image size, ...)."""
