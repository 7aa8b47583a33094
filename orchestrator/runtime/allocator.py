"""The C allocator's heap: what the worker's memory holds, and giving freed memory back to the system.

A worker that has worked through a backlog frees the fetched records, batches and outputs it made, but
glibc's ``malloc`` keeps the freed memory in its heap for later use: the process's RSS stays at the
backlog's high-water mark (measured: a 100,000-customer backlog left ~360 MB resident, most of it free
in the heap). ``malloc_trim`` gives the free pages back. The worker calls it every
``malloc_trim_s`` when the heap holds more than :data:`TRIM_ABOVE_BYTES` free (``/metrics``:
``orchestrator_heap_bytes``), in a thread: the call scans the heap (tens of ms for hundreds of MB) and
releases the GIL; the event loop's own allocations may wait on an arena's lock meanwhile (glibc makes
the call safe beside other threads).

Only on glibc (Linux; ``mallinfo2`` from glibc 2.33): elsewhere :func:`heap` gives None and
:func:`trim` does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from typing import Any

__all__ = ["TRIM_ABOVE_BYTES", "Heap", "heap", "trim"]

TRIM_ABOVE_BYTES = 16 * 1024 * 1024
"""Free heap memory worth a trim (below it the scan costs more than it returns)."""


@dataclass(frozen=True, slots=True)
class Heap:
    in_use: int
    """Bytes allocated and not freed (including large blocks mapped on their own)."""
    free: int
    """Bytes freed but kept by the allocator (what a trim can give back, at most)."""


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
            "keepcost",
        )
    ]  # fmt: skip


def _libc() -> Any | None:
    for name in ("libc.so.6", ctypes.util.find_library("c")):  # (find_library needs ldconfig or gcc)
        if name is None:
            continue
        try:
            libc = ctypes.CDLL(name)
            libc.mallinfo2.restype = _MallInfo2
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            libc.malloc_trim.restype = ctypes.c_int
        except (OSError, AttributeError):  # not glibc, or older than 2.33
            continue
        return libc
    return None


_LIBC = _libc()


def heap() -> Heap | None:
    """The heap's bytes in use and free (None without glibc)."""
    if _LIBC is None:
        return None
    info = _LIBC.mallinfo2()
    return Heap(in_use=int(info.uordblks + info.hblkhd), free=int(info.fordblks))


def trim(above: int = TRIM_ABOVE_BYTES) -> int:
    """Give the heap's free pages back to the system when more than ``above`` bytes are free; the
    free bytes before the trim (0: nothing done)."""
    before = heap()
    if _LIBC is None or before is None or before.free <= above:
        return 0
    _LIBC.malloc_trim(0)
    return before.free
