"""Command-line interface ``nerf-loc`` (see :mod:`nerf_loc_ros.cli.main`)."""
