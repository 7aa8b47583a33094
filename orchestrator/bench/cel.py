"""``orchestrator bench --only cel``: what the CEL cost budget and RE2 cost on the hot path.

Each condition is compiled once and evaluated many times on the same activation; the budgeted variant
(as shipped: a macro charges the size of its list, each evaluation resets the budget) and the same
compiled condition with the budget off run in the same process, interleaved, best of 5: the ratio is
the figure. ``matches`` runs with RE2 (as shipped) and with Python's ``re`` on the same pattern.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from orchestrator.core.cel import _compile, compile_condition
from orchestrator.core.cel.functions import compile_regex

__all__ = ["bench_cel"]

CONDITIONS = {
    "no macro": 'profile.country in ["US", "CA"] && event.properties.total > 50.0',
    "macro over 10 items": 'event.properties.items.exists(i, i.sku == "A9")',
    "macro over 1,000 items": 'event.properties.items.exists(i, i.sku == "none")',
    "nested over parts": 'event.properties.items.exists(i, i.tags.exists(t, t == "z"))',
}


def _activation(items: int) -> dict[str, Any]:
    rows = [{"sku": f"A{n}", "tags": ["x", "y"]} for n in range(items)]
    return {
        "profile": {"country": "US"},
        "event": {"properties": {"total": 80.0, "items": rows}},
        "now_ms": 1_740_000_000_000,
    }


def _best(fn: Callable[[], object], runs: int) -> float:
    """Best of 5 of the time per call, in µs."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(runs):
            fn()
        best = min(best, (time.perf_counter() - t0) / runs)
    return best * 1e6


def bench_cel(quick: bool = False) -> dict[str, Any]:
    runs = 2_000 if quick else 20_000
    rows = []
    for name, source in CONDITIONS.items():
        act = _activation(1_000 if "1,000" in name else 10)
        cond = compile_condition(source)
        n = max(200, runs // 50) if "1,000" in name else runs

        def with_budget(c: Any = cond, a: dict[str, Any] = act) -> object:
            return c.evaluate(a)

        off = _compile(source, None, check=True, budget=False)  # (the same, without the budget)

        def without(c: Any = off, a: dict[str, Any] = act) -> object:
            return c.evaluate(a)

        budgeted, plain = _best(with_budget, n), _best(without, n)
        rows.append(
            {
                "condition": name,
                "us_with_budget": round(budgeted, 3),
                "us_without": round(plain, 3),
                "ratio": round(budgeted / plain, 3),
            }
        )
    text = "visitor-" + "a" * 30 + "b"
    pattern = r"^visitor-(a+)+b$"
    ours = compile_regex(pattern)
    python = re.compile(pattern)
    re2_us = _best(lambda: ours.search(text), runs)
    re_us = _best(lambda: python.search(text), runs)
    evil = "a" * (18 if quick else 24) + "!"
    slow_pattern = r"(a+)+$"
    re2_evil = _best(lambda: compile_regex(slow_pattern).search(evil), 20)
    t0 = time.perf_counter()
    re.compile(slow_pattern).search(evil)
    re_evil = time.perf_counter() - t0
    return {
        "what": "µs per evaluation, best of 5; with the cost budget (as shipped) and without, same run",
        "rows": rows,
        "matches": {
            "pattern": pattern,
            "re2_us": round(re2_us, 3),
            "python_re_us": round(re_us, 3),
            "ratio": round(re2_us / re_us, 2),
            "backtracking_case": f"{slow_pattern!r} on {len(evil)} characters",
            "re2_backtracking_us": round(re2_evil, 2),
            "python_re_backtracking_s": round(re_evil, 2),
        },
    }
