"""The thin ROS 2 layer: rclpy nodes (one per file) and their message builders.

Node modules import rclpy and only work in a sourced ROS 2 environment; :mod:`.messages` does not.
"""
