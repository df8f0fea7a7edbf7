"""``nerf-loc``: drive the core without ROS (datasets, bags, maps, localization, registration, benchmarks).

Each sub-command lives in its own module of :mod:`nerf_loc_ros.cli` exposing
``register(subparsers)``; heavy imports happen inside the command functions so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..runtime import keep_freed_heap_memory

#: Modules of nerf_loc_ros.cli that contribute sub-commands, in the order ``--help`` lists them.
COMMAND_MODULES = ("demo", "data", "bag", "map", "localize", "registration", "bench")

log = logging.getLogger("nerf_loc_ros")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="nerf-loc",
        description="NeRF relocalization and NeRF map merging, without ROS.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def setup_logging(verbose: int, quiet: bool) -> None:
    """Configure root logging for CLI use (library code only ever logs, never prints)."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname).1s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nerf-loc`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    keep_freed_heap_memory()
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, OSError) as exc:  # user-facing errors: one clear line, no traceback
        if args.verbose > 1:
            raise
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
