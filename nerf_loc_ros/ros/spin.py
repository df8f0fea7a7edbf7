"""``run_node``: the ``main()`` of a node executable (rclpy context, spin, clean shutdown)."""

from __future__ import annotations

import sys
from typing import Callable

import rclpy
import rclpy.executors
from rclpy.node import Node

from ..runtime import keep_freed_heap_memory


def run_node(factory: Callable[[], Node], args=None) -> None:
    """Create the node with ``factory`` inside an rclpy context and spin it until Ctrl-C or shutdown.

    A ``ValueError`` from the constructor (bad parameters) is printed as one line and exits with status 2.
    """
    keep_freed_heap_memory()
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except ValueError as exc:
        print(f"{getattr(factory, '__name__', 'node')}: {exc}", file=sys.stderr)
        code = 2
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    if code:
        sys.exit(code)
