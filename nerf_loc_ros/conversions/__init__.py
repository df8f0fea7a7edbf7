"""ROS messages <-> plain numpy: the one place ROS encodings, stamps and poses are converted.

Converters read only ROS field names, so they work on ``rosbags`` messages (offline: bags, tests)
and on ``rclpy`` messages (live nodes). Builders take a :class:`MessageTypes` that supplies the
classes (``MessageTypes.from_rosbags()`` by default, ``MessageTypes.from_rclpy()`` in the ROS layer).
No ROS import happens at module import.
"""

from .camera_info import (
    DISTORTION_SIZES,
    CameraIntrinsics,
    K_core_to_ros,
    K_ros_to_core,
    camera_info_to_intrinsics,
    intrinsics_to_camera_info,
)
from .camera_frame import CameraFrameConverter, decode_image_msg
from .errors import ConversionError, MalformedMessageError, UnsupportedEncodingError, UnusableCameraInfoError
from .images import (
    COLOUR_ENCODINGS,
    DEPTH_ENCODINGS,
    CompressedFormat,
    compressed_depth_msg_to_metres,
    compressed_msg_to_rgb,
    depth_msg_to_metres,
    depth_to_image_msg,
    image_msg_to_rgb,
    parse_compressed_format,
    rgb_to_compressed_msg,
    rgb_to_image_msg,
)
from .msgtypes import MessageTypes, default_types, normalize_msgtype
from .poses import (
    StampedPose,
    covariance_from_msg,
    make_odometry,
    make_pose_stamped,
    make_pose_with_covariance_stamped,
    make_tf_message,
    make_transform_stamped,
    matrix_to_pose_msg,
    matrix_to_transform_msg,
    pose_msg_to_matrix,
    stamped_pose_msg_to_matrix,
    transform_msg_to_matrix,
)
from .stamps import header_stamp_ns, ns_to_stamp, stamp_to_ns

__all__ = [
    "COLOUR_ENCODINGS",
    "DEPTH_ENCODINGS",
    "DISTORTION_SIZES",
    "CameraFrameConverter",
    "CameraIntrinsics",
    "CompressedFormat",
    "ConversionError",
    "K_core_to_ros",
    "decode_image_msg",
    "K_ros_to_core",
    "MalformedMessageError",
    "MessageTypes",
    "StampedPose",
    "UnsupportedEncodingError",
    "UnusableCameraInfoError",
    "camera_info_to_intrinsics",
    "compressed_depth_msg_to_metres",
    "compressed_msg_to_rgb",
    "covariance_from_msg",
    "default_types",
    "depth_msg_to_metres",
    "depth_to_image_msg",
    "header_stamp_ns",
    "image_msg_to_rgb",
    "intrinsics_to_camera_info",
    "make_odometry",
    "make_pose_stamped",
    "make_pose_with_covariance_stamped",
    "make_tf_message",
    "make_transform_stamped",
    "matrix_to_pose_msg",
    "matrix_to_transform_msg",
    "normalize_msgtype",
    "ns_to_stamp",
    "parse_compressed_format",
    "pose_msg_to_matrix",
    "rgb_to_compressed_msg",
    "rgb_to_image_msg",
    "stamp_to_ns",
    "stamped_pose_msg_to_matrix",
    "transform_msg_to_matrix",
]
