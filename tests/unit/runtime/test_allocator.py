"""The C heap's figures and the trim (glibc: this project's images and CI are Debian)."""

from __future__ import annotations

import os

import pytest

from orchestrator.runtime.allocator import heap, trim

pytestmark = pytest.mark.skipif(heap() is None, reason="not glibc")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_trim_gives_freed_heap_memory_back_and_only_when_worth_it() -> None:
    # As after a backlog: many records of a few hundred bytes to a few kB, most of them freed.
    made = [os.urandom(600 + (i * 37) % 2400) for i in range(60_000)]
    kept = made[::10]
    del made
    before = heap()
    assert before is not None
    assert before.free > 50 * 2**20, before  # freed, and kept by the allocator
    rss = _rss_mb()
    assert trim(above=1 << 62) == 0  # not worth it: nothing done
    released = trim()
    assert released >= before.free * 0.9
    after = heap()
    assert after is not None
    assert after.in_use >= sum(len(k) for k in kept)
    assert _rss_mb() < rss - 40, "the free pages went back to the system"
