"""Keep freed heap memory in the process, so PyTorch's per-batch buffers are reused.

glibc's malloc serves large blocks (from 128 KiB, a limit it raises as it goes)
with fresh pages from the kernel and returns them when they are freed. PyTorch on
the CPU frees every activation and gradient after each batch, so the next batch
faults all of its pages in again. On 4 x 1024 raw windows this page-fault time
was about half of the CPU time of scoring and about two fifths of training
(``benchmarks/BENCHMARKS.md``). Raising glibc's mmap and trim thresholds keeps
those blocks on the heap, where the next batch finds them.

The setting is process-wide and lasts until the process ends: memory freed at
the top of the heap stays with the process up to ``_TRIM_BYTES``. Set the
environment variable ``GRINDWATCH_KEEP_FREED_MEMORY=0`` to leave malloc as it is.
Other C libraries (musl, macOS, Windows) are left alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

logger = logging.getLogger(__name__)

__all__ = ["keep_freed_memory"]

# mallopt parameter numbers from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap rather than from mmap. 32 MiB is
# glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems, the top of the range its
# own adjustment of the threshold covers.
_MMAP_BYTES = 32 << 20
# Free memory at the top of the heap is returned to the kernel above this size.
_TRIM_BYTES = 256 << 20

_state: dict[str, bool] = {}


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process.

    Returns True when the thresholds are set (now or by an earlier call), False
    on other C libraries or when ``GRINDWATCH_KEEP_FREED_MEMORY`` is ``0``.
    """
    if "set" in _state:
        return _state["set"]
    _state["set"] = _set_thresholds()
    return _state["set"]


def _set_thresholds() -> bool:
    if os.environ.get("GRINDWATCH_KEEP_FREED_MEMORY", "1").strip() == "0":
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        version = libc.gnu_get_libc_version
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc: its mallopt parameters may mean something else
    version.restype = ctypes.c_char_p
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    done = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES)
    )
    logger.debug(
        "glibc %s: mmap threshold %d MiB, trim threshold %d MiB: %s",
        version().decode(),
        _MMAP_BYTES >> 20,
        _TRIM_BYTES >> 20,
        "set" if done else "rejected",
    )
    return done
