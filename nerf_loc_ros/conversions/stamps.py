"""ROS time stamps <-> integer nanoseconds (DESIGN.md section 2: time is int ns from headers)."""

from __future__ import annotations

from typing import Any

from .errors import MalformedMessageError

__all__ = ["stamp_to_ns", "ns_to_stamp", "header_stamp_ns"]

_NS = 1_000_000_000
_INT32_MAX = 2**31 - 1


def stamp_to_ns(stamp: Any) -> int:
    """Integer nanoseconds of a ROS time stamp.

    Accepts ROS 2 ``builtin_interfaces/Time`` (``sec``/``nanosec``), ROS 1 / genpy time
    (``secs``/``nsecs``), an ``rclpy.time.Time``-like object (``nanoseconds``) or a plain int (ns).
    """
    if isinstance(stamp, int):
        return int(stamp)
    if hasattr(stamp, "sec") and hasattr(stamp, "nanosec"):
        sec, nsec = stamp.sec, stamp.nanosec
    elif hasattr(stamp, "secs") and hasattr(stamp, "nsecs"):
        sec, nsec = stamp.secs, stamp.nsecs
    elif hasattr(stamp, "nanoseconds"):
        return int(stamp.nanoseconds)
    else:
        raise MalformedMessageError(
            f"not a time stamp: {type(stamp).__name__} has neither sec/nanosec (ROS 2) nor secs/nsecs (ROS 1)"
        )
    return int(sec) * _NS + int(nsec)


def ns_to_stamp(stamp_ns: int, types: Any = None) -> Any:
    """``builtin_interfaces/msg/Time`` for ``stamp_ns`` (int nanoseconds since the epoch).

    ``sec`` is floored so that ``0 <= nanosec < 1e9`` also for negative times; ``sec`` must fit int32.
    ``types``: a :class:`~.msgtypes.MessageTypes` (default: rosbags ROS 2 Humble).
    """
    if types is None:
        from .msgtypes import default_types

        types = default_types()
    stamp_ns = int(stamp_ns)
    sec, nsec = divmod(stamp_ns, _NS)
    if not -_INT32_MAX - 1 <= sec <= _INT32_MAX:
        raise ValueError(f"time stamp {stamp_ns} ns does not fit a ROS Time (int32 seconds)")
    return types.make("builtin_interfaces/msg/Time", sec=int(sec), nanosec=int(nsec))


def header_stamp_ns(msg: Any) -> int:
    """Nanoseconds of ``msg.header.stamp``; raises :class:`MalformedMessageError` if there is no header."""
    header = getattr(msg, "header", None)
    if header is None:
        raise MalformedMessageError(f"{type(msg).__name__} has no header")
    return stamp_to_ns(header.stamp)
