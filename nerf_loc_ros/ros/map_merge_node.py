"""``map_merge_node``: merges new NeRF submaps into the global map (DESIGN.md section 6).

Service ``~/merge_submap`` (nerf_loc_ros/srv/MergeSubmap): registers the submap at ``submap_path`` against every
submap of the global map (:func:`nerf_loc_ros.registration.merge_submap`) in a worker thread (the executor keeps
serving), and merges it when the registration is OK (or AMBIGUOUS with ``force``). Publishes
``~/registration_result`` (nerf_loc_ros/msg/RegistrationResult, reliable + transient local, depth 10), the static
TF ``map_frame -> submap_<id>`` of every submap, and ``~/cloud`` (sensor_msgs/PointCloud2, transient local): the
occupied cells of all submaps in the global frame. A missing global map is created from the first submap merged.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from rcl_interfaces.msg import IntegerRange, ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..conversions import MessageTypes
from ..geometry import transform_points
from ..maps import MapError, create_global_map, load_global_map, load_map, occupied_points
from ..registration.base import DEFAULT_REGISTRATION_METHOD, REGISTRATION_METHODS, make_registrar
from .messages import pointcloud2_message, registration_result_message, submap_transforms
from .spin import run_node


class MapMergeNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs):
        super().__init__("nerf_map_merge", **kwargs)
        self.declare_parameter("global_map", "", ParameterDescriptor(
            description="global map directory (submaps.yaml); created from the first merged submap if missing"))
        self.declare_parameter("map_frame", "map", ParameterDescriptor(description="frame of the global map"))
        self.declare_parameter("method", DEFAULT_REGISTRATION_METHOD, ParameterDescriptor(
            description="registration method: views (matching views rendered from both NeRFs, default), desc "
                        "(learned DeSC) or fpfh (FPFH + RANSAC + ICP baseline)"))
        self.declare_parameter("weights", "", ParameterDescriptor(
            description="DeSC weights file (empty: the weights shipped with the package)"))
        self.declare_parameter("max_points", 200000, ParameterDescriptor(
            description="at most this many points in ~/cloud",
            integer_range=[IntegerRange(from_value=1, to_value=10_000_000, step=1)]))
        method = self.get_parameter("method").value
        if method not in REGISTRATION_METHODS:
            raise ValueError(f"parameter method must be one of {', '.join(REGISTRATION_METHODS)}, got {method!r}")
        from sensor_msgs.msg import PointCloud2
        from tf2_ros import StaticTransformBroadcaster

        from nerf_loc_ros.msg import RegistrationResult
        from nerf_loc_ros.srv import MergeSubmap

        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        results_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.types = MessageTypes.from_rclpy()
        self.result_pub = self.create_publisher(RegistrationResult, "~/registration_result", results_qos)
        self.cloud_pub = self.create_publisher(PointCloud2, "~/cloud", latched)
        self.tf_static = StaticTransformBroadcaster(self)
        self.create_service(MergeSubmap, "~/merge_submap", self._on_merge)
        self._busy = threading.Lock()
        # wakes the executor when a merge finishes, so the awaiting service callback resumes even when nothing
        # else happens (rclpy.spin blocks in wait without a timeout); in its own callback group, since the service's
        # group stays busy until the callback returns and the executor does not wait on busy groups
        self._merge_done = self.create_guard_condition(lambda: None, callback_group=MutuallyExclusiveCallbackGroup())
        self._registrar = None
        gpath = self.get_parameter("global_map").value
        if gpath and (Path(gpath) / "submaps.yaml").is_file():
            try:
                self._publish_global(load_global_map(gpath))
            except (MapError, OSError, ValueError) as exc:
                self.get_logger().error(f"cannot load global map '{gpath}': {exc}")

    def registrar(self):
        """The registrar (built on first use: loading DeSC weights takes a moment)."""
        if self._registrar is None:
            weights = self.get_parameter("weights").value
            self._registrar = make_registrar(self.get_parameter("method").value, Path(weights) if weights else None)
        return self._registrar

    def _publish_global(self, gmap) -> None:
        frame = self.get_parameter("map_frame").value
        stamp = self.get_clock().now().nanoseconds
        self.tf_static.sendTransform(submap_transforms(self.types, gmap, frame, stamp))
        clouds = []
        for sub in gmap.submaps:
            clouds.append(transform_points(sub.T_global_submap, occupied_points(load_map(sub.path))))
        xyz = np.concatenate(clouds)
        n = self.get_parameter("max_points").value
        if len(xyz) > n:
            xyz = xyz[np.random.default_rng(0).choice(len(xyz), n, replace=False)]
        self.cloud_pub.publish(pointcloud2_message(self.types, xyz, frame, stamp))
        self.get_logger().info(f"global map '{gmap.path}': {len(gmap.submaps)} submaps, {len(xyz)} cloud points")

    def merge(self, request) -> tuple[bool, str, object]:
        """Do one merge request; returns (success, message, RegistrationResult message)."""
        from ..conversions import transform_msg_to_matrix
        from ..registration.merge import merge_submap, register_against_global

        gparam = self.get_parameter("global_map").value
        frame = self.get_parameter("map_frame").value
        submap = Path(request.submap_path)
        stamp = self.get_clock().now().nanoseconds
        if not gparam:
            return False, "parameter global_map is empty", None
        gpath = Path(gparam)
        try:
            if not (gpath / "submaps.yaml").is_file():
                load_map(submap)  # a whole, loadable map before it defines the global frame
                gmap = create_global_map(gpath, submap, submap_id=request.submap_id or "0", frame_id=frame)
                self._publish_global(gmap)
                return True, f"created global map {gpath} from {submap}", None
            init = transform_msg_to_matrix(request.initial_guess) if request.use_initial_guess else None
            if request.dry_run:
                res, target_id, T = register_against_global(gpath, submap, self.registrar(), init)
                merged_map = None
            else:
                out = merge_submap(gpath, submap, self.registrar(), init, force=request.force,
                                   submap_id=request.submap_id or None)
                res, target_id, T, merged_map = out.result, out.target_id, out.T_global_submap, out.global_map
        except (MapError, OSError, ValueError) as exc:
            return False, f"cannot merge '{submap}': {exc}", None
        sub_id = merged_map.submaps[-1].id if merged_map is not None else (request.submap_id or "")
        msg = registration_result_message(self.types, res, T, sub_id, merged_map is not None, frame, stamp)
        self.result_pub.publish(msg)
        if merged_map is not None:
            self._publish_global(merged_map)
            return True, f"merged {submap} as submap {sub_id} (against {target_id}, {res.inliers} inliers)", msg
        ok = bool(request.dry_run and res.ok)
        return ok, f"{res.status.value} against submap {target_id}: {res.reason or f'{res.inliers} inliers'}", msg

    async def _on_merge(self, request, response):
        """Runs :meth:`merge` in a worker thread and awaits it, so the executor keeps spinning."""
        from rclpy.task import Future

        if not self._busy.acquire(blocking=False):
            response.success, response.message = False, "a merge is already running"
            return response
        done = Future(executor=self.executor)

        def work():
            try:
                done.set_result(self.merge(request))
            except Exception as exc:  # reported to the caller, never kills the node
                done.set_result((False, f"merge failed: {exc!r}", None))
            finally:
                self._busy.release()
                self._merge_done.trigger()

        threading.Thread(target=work, daemon=True).start()
        response.success, response.message, result = await done
        if result is not None:
            response.result = result
        # one call site per severity: rclpy refuses a call site whose severity changes between calls
        if response.success:
            self.get_logger().info(response.message)
        else:
            self.get_logger().warning(response.message)
        return response


def main(args=None) -> None:
    """``ros2 run nerf_loc_ros map_merge_node``."""
    run_node(MapMergeNode, args)


if __name__ == "__main__":
    main()
