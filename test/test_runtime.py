"""Process settings of the executables (glibc allocator thresholds)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
from nerf_loc_ros.runtime import keep_freed_heap_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
applied = keep_freed_heap_memory() if sys.argv[1] == "tune" else None
before = libc.mallinfo2().hblkhd
block = libc.malloc(8 << 20)  # an 8 MB tensor-sized block
mapped = libc.mallinfo2().hblkhd - before
libc.free(ctypes.c_void_p(block))
print(applied, mapped)
"""


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


@pytest.mark.skipif(not _glibc(), reason="glibc allocator only")
def test_keep_freed_heap_memory_serves_large_blocks_from_the_heap():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}

    def probe(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True)
        applied, mapped = out.stdout.split()
        return applied, int(mapped)

    # glibc's default: a block this large is its own mmap (unmapped on free, its pages faulted in again next time)
    assert probe("default")[1] >= 8 << 20
    assert probe("tune") == ("True", 0)
