"""Geometry conventions (DESIGN.md section 2): SE(3), pinhole camera, camera-axis conversions."""

from .axes import (
    OPENGL_FROM_OPENCV,
    llff_to_opencv_pose,
    opencv_to_opengl_pose,
    opengl_to_opencv_pose,
    ros_body_from_optical,
)
from .camera import K_core_to_ros, K_ros_to_core, PinholeCamera, check_intrinsics
from .se3 import (
    NonRigidPoseError,
    check_rigid,
    invert_pose,
    is_rigid,
    make_pose,
    pose_errors,
    pose_from_translation_quaternion,
    pose_to_translation_quaternion,
    rotation_error_deg,
    transform_points,
    translation_error,
)

from .undistort import Undistorter, UnsupportedDistortionError, undistort_image, undistort_points

__all__ = [
    "K_core_to_ros",
    "K_ros_to_core",
    "OPENGL_FROM_OPENCV",
    "Undistorter",
    "UnsupportedDistortionError",
    "undistort_image",
    "undistort_points",
    "NonRigidPoseError",
    "PinholeCamera",
    "check_intrinsics",
    "check_rigid",
    "invert_pose",
    "is_rigid",
    "llff_to_opencv_pose",
    "make_pose",
    "opencv_to_opengl_pose",
    "opengl_to_opencv_pose",
    "pose_errors",
    "pose_from_translation_quaternion",
    "pose_to_translation_quaternion",
    "ros_body_from_optical",
    "rotation_error_deg",
    "transform_points",
    "translation_error",
]
