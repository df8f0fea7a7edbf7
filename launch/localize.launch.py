"""Localize a camera against a NeRF map: localizer + map server (+ RViz).

    ros2 launch nerf_loc_ros localize.launch.py map:=/path/to/map image:=/camera/image_raw \
        camera_info:=/camera/camera_info [compressed:=true] [use_rviz:=true] [use_sim_time:=true] [namespace:=robot1]
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = {
    "map": ("", "map directory built by `nerf-loc map build`"),
    "image": ("/camera/image_raw", "image topic (its /compressed sibling with compressed:=true)"),
    "camera_info": ("/camera/camera_info", "camera_info topic"),
    "params_file": ("", "parameter file (default: the package's config/localizer.yaml)"),
    "use_rviz": ("false", "start RViz with rviz/localize.rviz"),
    "namespace": ("", "namespace of the nodes"),
    "use_sim_time": ("false", "use /clock (bag replay)"),
    "compressed": ("false", "subscribe to sensor_msgs/CompressedImage on <image>/compressed"),
}


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("nerf_loc_ros")
    cfg = {name: LaunchConfiguration(name) for name in ARGUMENTS}
    default_params = PathJoinSubstitution([share, "config", "localizer.yaml"])
    args = [DeclareLaunchArgument(n, default_value=d, description=desc) for n, (d, desc) in ARGUMENTS.items()]
    args[3] = DeclareLaunchArgument("params_file", default_value=default_params, description=ARGUMENTS["params_file"][1])
    sim_time = ParameterValue(cfg["use_sim_time"], value_type=bool)
    localizer = Node(
        package="nerf_loc_ros", executable="localizer_node", name="nerf_localizer", namespace=cfg["namespace"],
        output="screen",
        parameters=[cfg["params_file"], {"map_path": cfg["map"], "use_sim_time": sim_time,
                                         "compressed": ParameterValue(cfg["compressed"], value_type=bool)}],
        remappings=[("image", cfg["image"]), ("image/compressed", [cfg["image"], "/compressed"]),
                    ("camera_info", cfg["camera_info"])],
    )
    map_server = Node(
        package="nerf_loc_ros", executable="map_server_node", name="nerf_map_server", namespace=cfg["namespace"],
        output="screen", parameters=[cfg["params_file"], {"map_path": cfg["map"], "use_sim_time": sim_time}],
    )
    rviz = Node(
        package="rviz2", executable="rviz2", name="rviz2", output="log", condition=IfCondition(cfg["use_rviz"]),
        arguments=["-d", PathJoinSubstitution([share, "rviz", "localize.rviz"])],
        parameters=[{"use_sim_time": sim_time}],
    )
    return LaunchDescription(args + [localizer, map_server, rviz])
