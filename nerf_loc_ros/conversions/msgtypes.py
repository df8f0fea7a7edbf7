"""Where message *classes* come from: ``rosbags`` (offline, no ROS) or ``rclpy`` (live nodes).

Every builder in :mod:`nerf_loc_ros.conversions` takes a :class:`MessageTypes` and only ever
(1) constructs messages by full type name with every field given by keyword, and (2) fills array
fields through :meth:`MessageTypes.uint8_array` / :meth:`MessageTypes.float64_array`. That is all
that differs between the two worlds:

- ``rosbags`` message classes are dataclasses without defaults; ``uint8[]`` fields must be numpy
  ``uint8`` arrays and float arrays numpy ``float64`` arrays.
- ``rclpy`` messages want ``array.array('B')`` (or bytes) for ``uint8[]`` and accept lists/numpy for
  float arrays; unset fields have defaults (we still pass everything).

Readers need no ``MessageTypes``: converters only read attributes with the ROS field names.

The core never imports ROS: :meth:`MessageTypes.from_rclpy` imports the ROS Python message packages
lazily, inside the call (it is the hook the ``nerf_loc_ros.ros`` layer uses).
"""

from __future__ import annotations

import array
import importlib
from functools import lru_cache
from typing import Any, Callable

import numpy as np

__all__ = ["MessageTypes", "default_types", "normalize_msgtype"]


def normalize_msgtype(name: str) -> str:
    """``'sensor_msgs/Image'`` or ``'sensor_msgs/msg/Image'`` -> ``'sensor_msgs/msg/Image'``."""
    parts = name.strip().split("/")
    if len(parts) == 2:
        return f"{parts[0]}/msg/{parts[1]}"
    if len(parts) == 3:
        return name.strip()
    raise ValueError(f"not a ROS message type name: {name!r} (expected 'pkg/msg/Type' or 'pkg/Type')")


class MessageTypes:
    """Supplies ROS message classes by full type name and owns array-field representations.

    Construct with :meth:`from_rosbags` (default: ``rosbags`` ROS 2 Humble typestore) or
    :meth:`from_rclpy`.
    """

    def __init__(self, get_class: Callable[[str], type], *, flavour: str, typestore: Any = None) -> None:
        self._get_class = get_class
        self.flavour = flavour
        #: the ``rosbags`` typestore (serialisation); ``None`` for rclpy.
        self.typestore = typestore
        self._cache: dict[str, type] = {}

    # ------------------------------------------------------------------ factories
    @classmethod
    def from_rosbags(cls, typestore: Any = None) -> "MessageTypes":
        """Message classes from a ``rosbags`` typestore (``Stores.ROS2_HUMBLE`` when ``None``)."""
        if typestore is None:
            from rosbags.typesys import Stores, get_typestore

            typestore = get_typestore(Stores.ROS2_HUMBLE)

        def get_class(name: str) -> type:
            try:
                return typestore.types[name]
            except KeyError:
                raise ValueError(f"message type {name!r} is not in the rosbags typestore") from None

        return cls(get_class, flavour="rosbags", typestore=typestore)

    @classmethod
    def from_rclpy(cls) -> "MessageTypes":
        """Message classes from the installed ROS 2 Python packages (``sensor_msgs.msg`` ...).

        Imports happen lazily on first use of each type, never at module import, so the core stays
        importable without ROS. Not exercised by the ROS-free test suite; the ``ros/`` layer tests it.
        """

        def get_class(name: str) -> type:
            pkg, sub, typ = name.split("/")
            try:
                module = importlib.import_module(f"{pkg}.{sub}")
            except ImportError as exc:
                raise ImportError(
                    f"cannot import ROS message package '{pkg}.{sub}' for {name} (is ROS 2 sourced?)"
                ) from exc
            return getattr(module, typ)

        return cls(get_class, flavour="rclpy")

    # ------------------------------------------------------------------ classes / construction
    def cls(self, name: str) -> type:
        """The message class for ``name`` (``'sensor_msgs/msg/Image'`` or ``'sensor_msgs/Image'``)."""
        name = normalize_msgtype(name)
        if name not in self._cache:
            self._cache[name] = self._get_class(name)
        return self._cache[name]

    def make(self, msgtype: str, /, **fields: Any) -> Any:
        """Construct message ``msgtype`` from keyword fields; fields left out get ROS defaults (zero, empty,
        default sub-message), as rclpy does, also for rosbags classes (which have no defaults of their own).

        ``msgtype`` is positional-only, so messages with a field called ``name`` can be built too."""
        if self.typestore is not None:
            name = normalize_msgtype(msgtype)
            for field, spec in self.typestore.fielddefs[name][1]:
                if field not in fields:
                    fields[field] = self._default(spec)
        return self.cls(msgtype)(**fields)

    _BASE_DEFAULTS = {"string": "", "bool": False, "float32": 0.0, "float64": 0.0}

    def _default(self, spec: Any) -> Any:
        """Default value of a rosbags field spec ``(nodetype, details)``."""
        kind, detail = spec
        kind = int(kind)
        if kind == 1:  # BASE
            return self._BASE_DEFAULTS.get(detail[0], 0)
        if kind == 2:  # NAME: nested message
            return self.make(detail)
        sub, length = detail  # ARRAY (3, fixed length) / SEQUENCE (4)
        if int(sub[0]) == 1 and sub[1][0] not in ("string",):
            dtype = {"bool": np.bool_, "float32": np.float32, "float64": np.float64, "uint8": np.uint8,
                     "char": np.uint8, "byte": np.uint8, "int8": np.int8, "int16": np.int16, "uint16": np.uint16,
                     "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64}[sub[1][0]]
            return np.zeros(length if kind == 3 else 0, dtype=dtype)
        return [self._default(sub) for _ in range(length if kind == 3 else 0)]

    def uint8_array(self, data: np.ndarray | bytes | bytearray | memoryview) -> Any:
        """A ``uint8[]`` field value from raw bytes or a numpy array (flattened, C order)."""
        if isinstance(data, np.ndarray):
            arr = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        else:
            arr = np.frombuffer(bytes(data), dtype=np.uint8)
        if self.flavour == "rclpy":
            out = array.array("B")
            out.frombytes(arr.tobytes())
            return out
        return arr.copy()  # own the memory: callers may reuse their buffer

    def float64_array(self, values: Any) -> Any:
        """A ``float64[N]`` / ``float64[]`` field value (numpy for rosbags, list of float for rclpy)."""
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if self.flavour == "rclpy":
            return [float(x) for x in arr]
        return arr.copy()

    # ------------------------------------------------------------------ common pieces
    def time(self, stamp_ns: int) -> Any:
        """``builtin_interfaces/msg/Time`` for integer nanoseconds (see :func:`..stamps.ns_to_stamp`)."""
        from .stamps import ns_to_stamp

        return ns_to_stamp(stamp_ns, self)

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        """``std_msgs/msg/Header`` with ``stamp_ns`` (int nanoseconds) and ``frame_id``."""
        return self.make("std_msgs/msg/Header", stamp=self.time(stamp_ns), frame_id=str(frame_id))

    def serialize(self, msg: Any, msgtype: str | None = None) -> bytes:
        """CDR-serialise a rosbags message (for writing bags); ``msgtype`` defaults to ``msg.__msgtype__``."""
        if self.typestore is None:
            raise TypeError("serialize() needs rosbags message types (MessageTypes.from_rosbags())")
        name = normalize_msgtype(msgtype or msg.__msgtype__)
        return bytes(self.typestore.serialize_cdr(msg, name))

    def __repr__(self) -> str:
        return f"MessageTypes(flavour={self.flavour!r})"


@lru_cache(maxsize=1)
def default_types() -> MessageTypes:
    """The shared ``MessageTypes.from_rosbags()`` (ROS 2 Humble) used when a builder gets ``types=None``."""
    return MessageTypes.from_rosbags()
