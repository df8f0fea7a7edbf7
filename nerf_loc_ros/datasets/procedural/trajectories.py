"""Camera trajectories in the procedural room (OpenCV camera axes, camera-to-world, metres).

Both sessions are smooth closed loops round the room centre, the camera looking outward at the walls
and objects (yaw and pitch wobble like a handheld/robot camera):

- **mapping**: an ellipse at 0.30 x 0.30 of the half-room extents, ~1.4 m high, counter-clockwise,
  yaw swinging up to +-40 deg about the outward direction, pitch -7 +- 8 deg;
- **query** (second session): a smaller, off-centre, radius-modulated loop, ~1.2 m high, clockwise,
  with a yaw bias and different wobble frequencies -- a different path whose viewpoints stay within
  the range the mapping session covers (so relocalization against the mapping session is possible).

The paths depend only on the room bounds and the seed, so the scene can place its objects clear of
them (:func:`camera_centres`) before any trajectory is requested.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...geometry import make_pose

if TYPE_CHECKING:  # pragma: no cover
    from .scene import ProceduralScene

__all__ = ["SESSIONS", "camera_centres", "look_pose", "mapping_trajectory", "query_trajectory", "session_trajectory"]

SESSIONS = ("mapping", "query")


def look_pose(position: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """Camera-to-world pose (OpenCV axes) at ``position`` (metres, world z up).

    The optical axis points at heading ``yaw`` (radians, about +z from +x) and elevation ``pitch``
    (radians, > 0 looks up); the image x axis stays horizontal (no roll).
    """
    forward = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])  # forward x up, normalised
    down = np.cross(forward, right)
    return make_pose(np.stack([right, down, forward], axis=1), position)


def _path(lo: np.ndarray, hi: np.ndarray, seed: int, session: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera centres ``[n x 3]``, yaw ``[n]`` and pitch ``[n]`` (radians) of one session."""
    if session not in SESSIONS:
        raise ValueError(f"procedural session must be one of {SESSIONS}, got '{session}'")
    rng = np.random.default_rng([seed, 0x7A1])
    ph = rng.uniform(0, 2 * np.pi, 6)
    centre = (lo + hi) / 2
    half = (hi - lo) / 2
    s = np.arange(n) / max(n, 1)
    tau = 2 * np.pi * s
    if session == "mapping":
        c = centre[:2] + rng.uniform(-0.05, 0.05, 2) * half[:2]
        ang = ph[0] + tau
        rx, ry = 0.30 * half[0], 0.30 * half[1]
        z = lo[2] + 1.4 + 0.12 * np.sin(3 * tau + ph[1])
        yaw = ang + np.radians(30) * np.sin(4 * tau + ph[2]) + np.radians(10) * np.sin(2 * tau + ph[3])
        pitch = np.radians(-7) + np.radians(8) * np.sin(4 * tau + ph[4])
        xy = c + np.stack([rx * np.cos(ang), ry * np.sin(ang)], axis=1)
    else:
        # independent of the mapping draws above: same rng sequence, further along
        _ = rng.uniform(-0.05, 0.05, 2)
        c = centre[:2] + np.array([0.12, -0.08]) * half[:2]
        ang = ph[0] + 1.7 - tau
        mod = 1.0 + 0.15 * np.sin(3 * tau + ph[5])
        rx, ry = 0.2 * half[0] * mod, 0.2 * half[1] * mod
        z = lo[2] + 1.2 + 0.08 * np.sin(2 * tau + ph[2])
        yaw = ang + np.radians(10) + np.radians(25) * np.sin(3 * tau + ph[3])
        pitch = np.radians(-3) + np.radians(6) * np.sin(3 * tau + ph[1])
        xy = c + np.stack([rx * np.cos(ang), ry * np.sin(ang)], axis=1)
    return np.column_stack([xy, z]), yaw, pitch


def camera_centres(lo: np.ndarray, hi: np.ndarray, seed: int, session: str, n: int = 400) -> np.ndarray:
    """Camera centres ``[n x 3]`` (world, metres) of ``session`` in a room with bounds ``lo``..``hi``."""
    return _path(np.asarray(lo, float), np.asarray(hi, float), seed, session, n)[0]


def session_trajectory(scene: "ProceduralScene", session: str, n_frames: int) -> np.ndarray:
    """Poses ``[n_frames x 4 x 4]`` (camera-to-world, OpenCV axes) of ``session`` in ``scene``."""
    lo, hi = scene.bounds()
    pos, yaw, pitch = _path(lo, hi, scene.config.seed, session, int(n_frames))
    if len(pos) == 0:
        return np.zeros((0, 4, 4))
    return np.stack([look_pose(p, a, b) for p, a, b in zip(pos, yaw, pitch)])


def mapping_trajectory(scene: "ProceduralScene", n_frames: int = 300) -> np.ndarray:
    """Mapping session: ``[n_frames x 4 x 4]`` camera-to-world poses (OpenCV axes), one loop round the room."""
    return session_trajectory(scene, "mapping", n_frames)


def query_trajectory(scene: "ProceduralScene", n_frames: int = 300) -> np.ndarray:
    """Second (query) session: ``[n_frames x 4 x 4]`` poses on a different loop inside the mapped viewpoints."""
    return session_trajectory(scene, "query", n_frames)
