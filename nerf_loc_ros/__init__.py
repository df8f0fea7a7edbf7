"""nerf_loc_ros: relocalize a camera against a NeRF map and merge NeRF submaps (ROS-free core).

Sub-packages, one per concern: ``geometry`` (conventions), ``datasets`` (loaders -> PosedImages),
``bags`` (ROS bag I/O without ROS), ``nerf``, ``maps``, ``localization``, ``registration``,
``evaluation`` and ``ros`` (thin rclpy nodes; the only place that imports ROS).

In a colcon build this file is *not* installed: the package directory is shared with the Python
package that ``rosidl`` generates for the messages (``nerf_loc_ros.msg``), which owns ``__init__.py``.
Keep it free of side effects and imports.
"""

__version__ = "0.1.0"
