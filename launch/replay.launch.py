"""Replay a bag through the live localizer with sim time and score it against ground truth.

    ros2 launch nerf_loc_ros replay.launch.py map:=/path/to/map bag:=/path/to/bag out_dir:=replay_eval

Runs localize.launch.py with use_sim_time:=true and the evaluation node; once the localizer has loaded its map it
plays the bag with `ros2 bag play --clock` (so no frame is lost to start-up), and the evaluation node writes
metrics.json and plots (as `nerf-loc replay`) once the bag has ended; then everything stops. The localizer runs live:
frames that arrive while it is busy are dropped as on a robot (`rate:=0.5` scores more of them on a slow CPU).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, ExecuteProcess, IncludeLaunchDescription, RegisterEventHandler
from launch.event_handlers import OnProcessExit, OnProcessIO
from launch.events import Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = {
    "map": ("", "map directory"),
    "bag": ("", "bag to play (rosbag2 directory)"),
    "rate": ("1.0", "playback rate"),
    "image": ("/camera/image_raw", "image topic in the bag (its /compressed sibling with compressed:=true)"),
    "compressed": ("false", "the bag has sensor_msgs/CompressedImage on <image>/compressed"),
    "camera_info": ("/camera/camera_info", "camera_info topic in the bag"),
    "gt_topic": ("/ground_truth/pose", "ground-truth PoseStamped topic in the bag"),
    "out_dir": ("replay_eval", "folder for metrics.json and the plots"),
    "metric": ("true", "map in metres (5cm5deg thresholds)"),
    "use_rviz": ("false", "start RViz"),
}


def generate_launch_description() -> LaunchDescription:
    cfg = {name: LaunchConfiguration(name) for name in ARGUMENTS}
    args = [DeclareLaunchArgument(n, default_value=d, description=desc) for n, (d, desc) in ARGUMENTS.items()]
    play = ExecuteProcess(cmd=["ros2", "bag", "play", cfg["bag"], "--clock", "--rate", cfg["rate"]], output="screen")
    localize = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("nerf_loc_ros"), "launch",
                                                            "localize.launch.py"])),
        launch_arguments={"map": cfg["map"], "image": cfg["image"], "camera_info": cfg["camera_info"],
                          "compressed": cfg["compressed"], "use_sim_time": "true", "use_rviz": cfg["use_rviz"]}.items(),
    )
    evaluation = Node(
        package="nerf_loc_ros", executable="replay_eval_node", name="nerf_replay_eval", output="screen",
        parameters=[{"gt_topic": cfg["gt_topic"], "out_dir": cfg["out_dir"], "use_sim_time": True,
                     "metric": ParameterValue(cfg["metric"], value_type=bool)}],
    )
    started = []

    def play_once_map_loaded(event):  # the localizer logs "loaded map ..." once its map is in memory
        if started or "localizer" not in event.process_name:
            return None
        if b"loaded map" in event.text:
            started.append(True)
            return [play]
        if b"cannot load map" in event.text:
            return [EmitEvent(event=Shutdown(reason="the localizer could not load the map"))]
        return None

    play_when_ready = RegisterEventHandler(OnProcessIO(on_stdout=play_once_map_loaded,
                                                       on_stderr=play_once_map_loaded))
    stop_when_scored = RegisterEventHandler(OnProcessExit(target_action=evaluation,
                                                          on_exit=[EmitEvent(event=Shutdown(reason="scored"))]))
    return LaunchDescription(args + [play_when_ready, localize, evaluation, stop_when_scored])
