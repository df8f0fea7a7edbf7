"""Merge NeRF submaps into a global map: the map-merge node (+ RViz showing the merged cloud).

    ros2 launch nerf_loc_ros map_merge.launch.py global_map:=/path/to/global [method:=views|desc|fpfh] [use_rviz:=true]
    ros2 service call /nerf_map_merge/merge_submap nerf_loc_ros/srv/MergeSubmap "{submap_path: /path/to/submap}"
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = {
    "global_map": ("", "global map directory (created from the first submap merged when it does not exist)"),
    "method": ("views", "registration method: views (rendered-view matching), desc (learned DeSC) or fpfh "
               "(FPFH + RANSAC + ICP baseline)"),
    "params_file": ("", "parameter file (default: the package's config/map_merge.yaml)"),
    "use_rviz": ("false", "start RViz with rviz/localize.rviz (map frame, merged cloud)"),
    "namespace": ("", "namespace of the node"),
    "use_sim_time": ("false", "use /clock"),
}


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("nerf_loc_ros")
    cfg = {name: LaunchConfiguration(name) for name in ARGUMENTS}
    args = [DeclareLaunchArgument(n, default_value=d, description=desc) for n, (d, desc) in ARGUMENTS.items()]
    args[2] = DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "map_merge.yaml"]),
                                    description=ARGUMENTS["params_file"][1])
    sim_time = ParameterValue(cfg["use_sim_time"], value_type=bool)
    merge = Node(
        package="nerf_loc_ros", executable="map_merge_node", name="nerf_map_merge", namespace=cfg["namespace"],
        output="screen",
        parameters=[cfg["params_file"], {"global_map": cfg["global_map"], "method": cfg["method"],
                                         "use_sim_time": sim_time}],
    )
    rviz = Node(
        package="rviz2", executable="rviz2", name="rviz2", output="log", condition=IfCondition(cfg["use_rviz"]),
        arguments=["-d", PathJoinSubstitution([share, "rviz", "localize.rviz"])],
        parameters=[{"use_sim_time": sim_time}],
    )
    return LaunchDescription(args + [merge, rviz])
