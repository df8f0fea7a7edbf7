"""``map_server_node``: publishes a map for RViz and other nodes (transient local, so late subscribers get it).

Publishes ``~/cloud`` (sensor_msgs/PointCloud2: the cached NeRF surface points of a localization map, else the
occupied occupancy cells) and ``~/keyframes`` (visualization_msgs/MarkerArray: keyframe camera frustums).
Service ``~/load_map`` (nerf_loc_ros/srv/LoadMap) switches maps.
"""

from __future__ import annotations

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..conversions import MessageTypes
from ..maps import MapError, load_map, occupied_points, read_manifest
from .messages import keyframe_markers, pointcloud2_message
from .spin import run_node


class MapServerNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs):
        super().__init__("nerf_map_server", **kwargs)
        self.declare_parameter("map_path", "", ParameterDescriptor(description="map directory to publish"))
        self.declare_parameter("map_frame", "map", ParameterDescriptor(description="frame of the published map"))
        self.declare_parameter("max_points", 200000, ParameterDescriptor(
            description="at most this many cloud points", integer_range=[IntegerRange(from_value=1,
                                                                                       to_value=10_000_000, step=1)]))
        self.declare_parameter("frustum_depth", 0.0, ParameterDescriptor(
            description="keyframe frustum depth in map units (0: 5 % of the keyframe spread)",
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1000.0, step=0.0)]))
        from sensor_msgs.msg import PointCloud2
        from visualization_msgs.msg import MarkerArray

        from nerf_loc_ros.srv import LoadMap

        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.types = MessageTypes.from_rclpy()
        self.cloud_pub = self.create_publisher(PointCloud2, "~/cloud", latched)
        self.kf_pub = self.create_publisher(MarkerArray, "~/keyframes", latched)
        self.create_service(LoadMap, "~/load_map", self._on_load_map)
        path = self.get_parameter("map_path").value
        if path:
            ok, message = self.publish_map(path)
            if ok:
                self.get_logger().info(message)
            else:
                self.get_logger().error(message)

    def publish_map(self, path: str) -> tuple[bool, str]:
        """Load ``path`` and publish its cloud and keyframes; returns (success, message)."""
        frame = self.get_parameter("map_frame").value
        stamp = self.get_clock().now().nanoseconds
        try:
            manifest = read_manifest(path)
            if "localization" in manifest:
                from ..localization import load_localization_map

                loc = load_localization_map(path)
                xyz, db = loc.keyframes.points, loc.keyframes
            else:
                xyz, db = occupied_points(load_map(path)), None
        except (MapError, OSError, ValueError) as exc:
            return False, f"cannot load map '{path}': {exc}"
        n = self.get_parameter("max_points").value
        if len(xyz) > n:
            xyz = xyz[np.random.default_rng(0).choice(len(xyz), n, replace=False)]
        self.cloud_pub.publish(pointcloud2_message(self.types, xyz, frame, stamp))
        if db is not None and len(db):
            depth = self.get_parameter("frustum_depth").value or max(db.length_scale() * 0.5, 1e-3)
            self.kf_pub.publish(keyframe_markers(self.types, db.T_world_cam, db.K, db.size, frame, stamp, depth))
        return True, f"published map '{path}': {len(xyz)} points, {0 if db is None else len(db)} keyframes"

    def _on_load_map(self, request, response):
        response.success, response.message = self.publish_map(request.map_path)
        return response


def main(args=None) -> None:
    """``ros2 run nerf_loc_ros map_server_node``."""
    run_node(MapServerNode, args)


if __name__ == "__main__":
    main()
