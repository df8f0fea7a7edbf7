"""A time-indexed transform tree in numpy (tf2's buffer, without ROS), for bag replay and bag loading.

Edges are ``T_parent_child`` (4x4 float64, metres; ``x_parent = T @ x_child``), each either static
(valid at all times, from ``/tf_static``) or dynamic (samples at int-nanosecond stamps, from ``/tf``).
A lookup at time ``t`` chains edges through the tree; a dynamic edge is evaluated by interpolating its
two neighbouring samples (linear translation, SLERP rotation via scipy) or returning a sample exactly
when ``t`` hits its stamp. Times outside an edge's samples are accepted within ``tolerance_ns``
(the nearest end sample is used); further out :class:`ExtrapolationError` is raised, as in tf2.
Frame names are compared without a leading ``/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ..conversions import stamp_to_ns, transform_msg_to_matrix
from ..geometry import check_rigid, invert_pose, pose_to_translation_quaternion

__all__ = [
    "TFError",
    "UnknownFrameError",
    "ConnectivityError",
    "ExtrapolationError",
    "TFTreeError",
    "TransformBuffer",
]


class TFError(ValueError):
    """Base class of transform-tree errors."""


class UnknownFrameError(TFError):
    """A frame that no transform mentions."""


class ConnectivityError(TFError):
    """The two frames are in different trees (no common ancestor)."""


class ExtrapolationError(TFError):
    """The requested time is outside a dynamic edge's samples by more than the tolerance."""


class TFTreeError(TFError):
    """Inconsistent tree: a frame given two parents, an edge both static and dynamic, or a cycle."""


def _frame(name: str) -> str:
    name = str(name).strip().lstrip("/")
    if not name:
        raise TFError("empty frame id")
    return name


@dataclass
class _Edge:
    parent: str
    static: bool
    samples: dict[int, np.ndarray] = field(default_factory=dict)  # stamp -> T (last one wins)
    _cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(stamps [N] int64 sorted, T [N,4,4], quaternions xyzw [N,4])``."""
        if self._cache is None:
            stamps = np.array(sorted(self.samples), dtype=np.int64)
            Ts = np.stack([self.samples[int(s)] for s in stamps])
            quats = np.stack([pose_to_translation_quaternion(T)[1] for T in Ts])
            self._cache = (stamps, Ts, quats)
        return self._cache


class TransformBuffer:
    """Static and dynamic transforms with stamps; :meth:`lookup` chains and interpolates.

    Args:
        default_tolerance_ns: extrapolation allowed beyond an edge's first/last sample when a lookup
            passes no ``tolerance_ns`` (int ns, default 0 = none).
        max_gap_ns: if set, do not interpolate between samples further apart than this; then only a
            sample within the tolerance is used (for sparse ground truth). None = always interpolate.
    """

    def __init__(self, default_tolerance_ns: int = 0, max_gap_ns: int | None = None) -> None:
        self.default_tolerance_ns = int(default_tolerance_ns)
        self.max_gap_ns = None if max_gap_ns is None else int(max_gap_ns)
        self._edges: dict[str, _Edge] = {}  # child -> edge to its parent

    # ------------------------------------------------------------------ adding
    def add(self, T_parent_child: np.ndarray, parent: str, child: str, stamp_ns: int = 0, static: bool = False) -> None:
        """Add ``T_parent_child`` (4x4 rigid, metres) at ``stamp_ns`` (ignored for static edges)."""
        parent, child = _frame(parent), _frame(child)
        if parent == child:
            raise TFTreeError(f"transform from frame '{child}' to itself")
        T = check_rigid(T_parent_child, what=f"transform {parent} -> {child}")
        edge = self._edges.get(child)
        if edge is None:
            self._check_no_cycle(parent, child)
            edge = self._edges[child] = _Edge(parent, bool(static))
        elif edge.parent != parent:
            raise TFTreeError(
                f"frame '{child}' already has parent '{edge.parent}'; cannot also attach it to '{parent}'"
            )
        elif edge.static != bool(static):
            kind = "static" if edge.static else "dynamic"
            raise TFTreeError(f"edge {parent} -> {child} is already {kind}; it cannot be both static and dynamic")
        edge.samples[0 if static else int(stamp_ns)] = T
        edge._cache = None

    def _check_no_cycle(self, parent: str, child: str) -> None:
        f: str | None = parent
        seen = set()
        while f is not None and f not in seen:
            if f == child:
                raise TFTreeError(f"adding {parent} -> {child} would create a cycle")
            seen.add(f)
            e = self._edges.get(f)
            f = e.parent if e else None

    def add_transform_msg(self, msg: Any, static: bool = False) -> None:
        """Add one ``geometry_msgs/TransformStamped`` (header.frame_id = parent)."""
        self.add(
            transform_msg_to_matrix(msg),
            msg.header.frame_id,
            msg.child_frame_id,
            stamp_to_ns(msg.header.stamp),
            static=static,
        )

    def add_tf_message(self, msg: Any, static: bool = False) -> int:
        """Add every transform of a ``tf2_msgs/TFMessage``; returns how many were added."""
        for tf in msg.transforms:
            self.add_transform_msg(tf, static=static)
        return len(msg.transforms)

    # ------------------------------------------------------------------ queries
    def frames(self) -> list[str]:
        """All known frame names, sorted."""
        names = set(self._edges) | {e.parent for e in self._edges.values()}
        return sorted(names)

    def parent(self, frame: str) -> str | None:
        """Parent of ``frame`` (None for a root)."""
        e = self._edges.get(_frame(frame))
        return e.parent if e else None

    def is_static(self, child: str) -> bool:
        """True if the edge from ``child`` to its parent is static."""
        return self._edge(child).static

    def time_range(self, child: str) -> tuple[int, int] | None:
        """``(first, last)`` sample stamps (ns) of the dynamic edge above ``child``; None if static."""
        edge = self._edge(child)
        if edge.static:
            return None
        st = edge.arrays()[0]
        return int(st[0]), int(st[-1])

    def _edge(self, child: str) -> _Edge:
        child = _frame(child)
        if child not in self._edges:
            raise UnknownFrameError(f"frame '{child}' has no parent in the TF tree; known frames: {self.frames()}")
        return self._edges[child]

    def _path_to_root(self, frame: str) -> list[str]:
        path = [frame]
        while frame in self._edges:
            frame = self._edges[frame].parent
            path.append(frame)
        return path

    def _chain(self, target: str, source: str) -> tuple[list[str], list[str]]:
        known = set(self.frames())
        for f in (target, source):
            if f not in known:
                raise UnknownFrameError(f"frame '{f}' does not exist in the TF tree; known frames: {sorted(known)}")
        up_s, up_t = self._path_to_root(source), self._path_to_root(target)
        common = next((f for f in up_s if f in set(up_t)), None)
        if common is None:
            raise ConnectivityError(
                f"frames '{target}' and '{source}' are not connected (roots '{up_t[-1]}' and '{up_s[-1]}')"
            )
        return up_s[: up_s.index(common)], up_t[: up_t.index(common)]

    def latest_common_time(self, target: str, source: str) -> int | None:
        """Latest stamp at which every dynamic edge between the frames has data (None: all static)."""
        a, b = self._chain(_frame(target), _frame(source))
        lasts = [self._edges[c].arrays()[0][-1] for c in a + b if not self._edges[c].static]
        return int(min(lasts)) if lasts else None

    def _edge_at(self, child: str, t: int, tol: int) -> np.ndarray:
        edge = self._edges[child]
        if edge.static:
            return edge.samples[0]
        st, Ts, qs = edge.arrays()
        i = int(np.searchsorted(st, t))
        if i < len(st) and st[i] == t:
            return Ts[i]
        name = f"{edge.parent} -> {child}"
        if i == 0 or i == len(st):
            j = 0 if i == 0 else len(st) - 1
            if abs(int(st[j]) - t) <= tol:
                return Ts[j]
            when = "before the first" if i == 0 else "after the last"
            raise ExtrapolationError(
                f"lookup of {name} at {t} ns is {abs(int(st[j]) - t) / 1e6:.3f} ms {when} sample "
                f"(samples {st[0]}..{st[-1]} ns, tolerance {tol / 1e6:.3f} ms)"
            )
        t0, t1 = int(st[i - 1]), int(st[i])
        if self.max_gap_ns is not None and t1 - t0 > self.max_gap_ns:
            j = i - 1 if t - t0 <= t1 - t else i
            if abs(int(st[j]) - t) <= tol:
                return Ts[j]
            raise ExtrapolationError(
                f"lookup of {name} at {t} ns falls in a {(t1 - t0) / 1e6:.1f} ms gap between samples "
                f"(max interpolation gap {self.max_gap_ns / 1e6:.1f} ms, tolerance {tol / 1e6:.3f} ms)"
            )
        a = (t - t0) / (t1 - t0)
        T = np.eye(4)
        T[:3, 3] = (1.0 - a) * Ts[i - 1][:3, 3] + a * Ts[i][:3, 3]
        T[:3, :3] = Slerp([0.0, 1.0], Rotation.from_quat(qs[i - 1 : i + 1]))([a]).as_matrix()[0]
        return T

    def lookup(
        self, target: str, source: str, stamp_ns: int | None = None, tolerance_ns: int | None = None
    ) -> np.ndarray:
        """``T_target_source`` (4x4 float64): maps points in ``source`` to ``target`` at ``stamp_ns``.

        Same argument order as tf2's ``lookup_transform(target, source, time)``. ``stamp_ns=None``
        uses the latest time at which all edges on the chain have data. ``tolerance_ns`` (default
        ``default_tolerance_ns``) bounds extrapolation beyond each edge's first/last sample.
        Raises :class:`UnknownFrameError`, :class:`ConnectivityError` or :class:`ExtrapolationError`.
        """
        target, source = _frame(target), _frame(source)
        up_s, up_t = self._chain(target, source)
        if target == source:
            return np.eye(4)
        if stamp_ns is None:
            stamp_ns = self.latest_common_time(target, source) or 0
        tol = self.default_tolerance_ns if tolerance_ns is None else int(tolerance_ns)
        T_common_source = np.eye(4)
        for f in up_s:
            T_common_source = self._edge_at(f, int(stamp_ns), tol) @ T_common_source
        T_common_target = np.eye(4)
        for f in up_t:
            T_common_target = self._edge_at(f, int(stamp_ns), tol) @ T_common_target
        return invert_pose(T_common_target) @ T_common_source

    def can_transform(
        self, target: str, source: str, stamp_ns: int | None = None, tolerance_ns: int | None = None
    ) -> bool:
        """True if :meth:`lookup` would succeed."""
        try:
            self.lookup(target, source, stamp_ns, tolerance_ns)
        except TFError:
            return False
        return True

    def describe(self) -> str:
        """One line per edge: ``parent -> child (static | N samples, first..last ns)``."""
        lines = []
        for child in sorted(self._edges):
            e = self._edges[child]
            if e.static:
                lines.append(f"{e.parent} -> {child} (static)")
            else:
                st = e.arrays()[0]
                lines.append(f"{e.parent} -> {child} ({len(st)} samples, {st[0]}..{st[-1]} ns)")
        return "\n".join(lines)

    def __len__(self) -> int:
        return len(self._edges)

    @classmethod
    def from_transforms(
        cls, transforms: Iterable[tuple[np.ndarray, str, str, int, bool]], **kwargs: Any
    ) -> "TransformBuffer":
        """Build from ``(T_parent_child, parent, child, stamp_ns, static)`` tuples."""
        buf = cls(**kwargs)
        for T, parent, child, stamp, static in transforms:
            buf.add(T, parent, child, stamp, static)
        return buf
