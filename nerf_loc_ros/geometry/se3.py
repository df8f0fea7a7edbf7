"""Rigid transforms (SE(3)) as 4x4 float64 matrices.

Convention (DESIGN.md section 2): ``T_a_b`` maps points in frame *b* to frame *a*,
``x_a = T_a_b @ x_b``. A camera pose is ``T_world_cam`` (camera-to-world) with OpenCV camera
axes. Quaternions follow ROS order ``(x, y, z, w)``; scipy's :class:`Rotation` does the maths.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = [
    "NonRigidPoseError",
    "make_pose",
    "invert_pose",
    "transform_points",
    "check_rigid",
    "is_rigid",
    "pose_from_translation_quaternion",
    "pose_to_translation_quaternion",
    "rotation_error_deg",
    "translation_error",
    "pose_errors",
]


class NonRigidPoseError(ValueError):
    """A matrix that should be a rigid transform is not (non-finite, scaled, sheared, reflected)."""


def make_pose(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Build ``T`` (4x4 float64) from a rotation ``R`` (3x3) and translation ``t`` (3,), metres."""
    T = np.eye(4)
    T[:3, :3] = np.asarray(R, dtype=np.float64)
    T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def invert_pose(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transform(s) ``T_a_b -> T_b_a``; works on ``[4 x 4]`` or ``[N x 4 x 4]``."""
    T = np.asarray(T, dtype=np.float64)
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    Rt = np.swapaxes(R, -1, -2)
    out = np.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


def transform_points(T_a_b: np.ndarray, X_b: np.ndarray) -> np.ndarray:
    """Map points ``X_b`` ``[N x 3]`` in frame b to frame a: ``X_a = R X_b + t``."""
    X_b = np.asarray(X_b)
    return X_b @ T_a_b[:3, :3].T + T_a_b[:3, 3]


def is_rigid(T: np.ndarray, atol: float = 2e-3) -> bool:
    """True if ``T`` is a finite 4x4 rigid transform (orthonormal rotation, det +1, last row 0 0 0 1)."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        return False
    R = T[:3, :3]
    return (
        np.allclose(R @ R.T, np.eye(3), atol=atol)
        and abs(np.linalg.det(R) - 1.0) < atol
        and np.allclose(T[3], [0.0, 0.0, 0.0, 1.0], atol=atol)
    )


def check_rigid(T: np.ndarray, what: str = "pose", atol: float = 2e-3) -> np.ndarray:
    """Return ``T`` as float64 if rigid, else raise :class:`NonRigidPoseError` naming ``what``.

    Rotations within ``atol`` of orthonormal are re-orthonormalised (SVD) so that small float
    noise from text files does not accumulate.
    """
    T = np.asarray(T, dtype=np.float64)
    if T.shape == (3, 4):
        T = np.vstack([T, [0.0, 0.0, 0.0, 1.0]])
    if T.shape != (4, 4):
        raise NonRigidPoseError(f"{what}: expected a 4x4 (or 3x4) matrix, got shape {T.shape}")
    if not np.all(np.isfinite(T)):
        raise NonRigidPoseError(f"{what}: contains NaN or infinite values")
    if not is_rigid(T, atol=atol):
        R = T[:3, :3]
        raise NonRigidPoseError(
            f"{what}: not a rigid transform (|R R^T - I|max={np.abs(R @ R.T - np.eye(3)).max():.2e}, "
            f"det(R)={np.linalg.det(R):.4f}, last row={T[3].tolist()})"
        )
    U, _, Vt = np.linalg.svd(T[:3, :3])
    out = T.copy()
    out[:3, :3] = U @ Vt
    return out


def pose_from_translation_quaternion(t_xyz, q_xyzw) -> np.ndarray:
    """Pose from a translation (metres) and a ROS-order quaternion ``(x, y, z, w)``.

    The quaternion is normalised; a zero or non-finite quaternion raises ``ValueError``.
    """
    q = np.asarray(q_xyzw, dtype=np.float64).reshape(4)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"invalid quaternion (x, y, z, w) = {q.tolist()}")
    t = np.asarray(t_xyz, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(t)):
        raise ValueError(f"invalid translation {t.tolist()}")
    return make_pose(Rotation.from_quat(q / n).as_matrix(), t)


def pose_to_translation_quaternion(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a pose into ``(t_xyz [3], q_xyzw [4])`` with ROS quaternion order and ``w >= 0``."""
    T = np.asarray(T, dtype=np.float64)
    q = Rotation.from_matrix(T[:3, :3]).as_quat()  # scipy order is (x, y, z, w), as in ROS
    if q[3] < 0:
        q = -q
    return T[:3, 3].copy(), q


def rotation_error_deg(R_est: np.ndarray, R_gt: np.ndarray) -> np.ndarray:
    """Angle of ``R_est R_gt^T`` in degrees; accepts 3x3/4x4 or batches ``[N x 3 x 3]``."""
    R_est = np.asarray(R_est, dtype=np.float64)[..., :3, :3]
    R_gt = np.asarray(R_gt, dtype=np.float64)[..., :3, :3]
    dR = R_est @ np.swapaxes(R_gt, -1, -2)
    cos = (np.trace(dR, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def translation_error(T_est: np.ndarray, T_gt: np.ndarray) -> np.ndarray:
    """``||t_est - t_gt||`` (metres, or scene units) for poses ``[4 x 4]`` or ``[N x 4 x 4]``."""
    T_est = np.asarray(T_est, dtype=np.float64)
    T_gt = np.asarray(T_gt, dtype=np.float64)
    return np.linalg.norm(T_est[..., :3, 3] - T_gt[..., :3, 3], axis=-1)


def pose_errors(T_est: np.ndarray, T_gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rotation error in degrees, translation error)`` between camera poses (DESIGN.md section 7)."""
    return rotation_error_deg(T_est, T_gt), translation_error(T_est, T_gt)
