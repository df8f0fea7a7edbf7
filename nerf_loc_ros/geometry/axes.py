"""Camera-axis conventions, converted once at the dataset boundary.

The core only sees OpenCV camera axes (= ROS optical frame, REP-103): x right, y down, z forward.
- OpenGL / Blender / NeRF / nerfstudio: x right, y up, z back.
- LLFF ``poses_bounds.npy``: columns of R are [down, right, back].
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "OPENGL_FROM_OPENCV",
    "opengl_to_opencv_pose",
    "opencv_to_opengl_pose",
    "llff_to_opencv_pose",
    "ros_body_from_optical",
]

#: Right-multiplying a camera-to-world pose by this flips y and z (OpenGL <-> OpenCV); it is its own inverse.
OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def opengl_to_opencv_pose(T_world_cam_gl: np.ndarray) -> np.ndarray:
    """Camera-to-world pose(s) with OpenGL camera axes -> OpenCV camera axes (``[..., 4, 4]``)."""
    return np.asarray(T_world_cam_gl, dtype=np.float64) @ OPENGL_FROM_OPENCV


def opencv_to_opengl_pose(T_world_cam_cv: np.ndarray) -> np.ndarray:
    """Camera-to-world pose(s) with OpenCV camera axes -> OpenGL camera axes (``[..., 4, 4]``)."""
    return np.asarray(T_world_cam_cv, dtype=np.float64) @ OPENGL_FROM_OPENCV


def llff_to_opencv_pose(R_t_llff: np.ndarray) -> np.ndarray:
    """LLFF camera-to-world ``[..., 3, 4]`` (R columns = [down, right, back]) -> OpenCV ``[..., 4, 4]``.

    OpenCV axes are ``[right, down, forward] = [R[:,1], R[:,0], -R[:,2]]``.
    """
    P = np.asarray(R_t_llff, dtype=np.float64)
    out = np.zeros(P.shape[:-2] + (4, 4))
    out[..., :3, 0] = P[..., :3, 1]
    out[..., :3, 1] = P[..., :3, 0]
    out[..., :3, 2] = -P[..., :3, 2]
    out[..., :3, 3] = P[..., :3, 3]
    out[..., 3, 3] = 1.0
    return out


def ros_body_from_optical() -> np.ndarray:
    """``T_body_optical``: REP-103 body frame (x forward, y left, z up) from the optical frame.

    Use it to attach an optical frame under a ``camera_link``-style frame.
    """
    T = np.eye(4)
    T[:3, :3] = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    return T
