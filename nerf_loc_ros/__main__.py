"""``python -m nerf_loc_ros`` is the same as ``nerf-loc``."""

import sys

from .cli.main import main

sys.exit(main())
