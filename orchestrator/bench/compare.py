"""Two checkouts measured against each other, alternating, in one run (the way docs/performance.md's
before/after figures are taken on a shared, noisy machine)::

    git worktree add /tmp/old <commit>
    python orchestrator/bench/compare.py --tree /tmp/old --tree . --rounds 3 processor 120000 24000
    python orchestrator/bench/compare.py --tree /tmp/old --tree . --rounds 3 simulate 200000
    python orchestrator/bench/compare.py --tree /tmp/old --tree . --rounds 2 engine 40000 1000 0.1

Each measurement is a fresh process with ``PYTHONPATH`` set to one checkout, running this file with
``--measure``: it uses only what both sides have (``LocalPipeline``, ``simulate_file``, the engine
bench helpers), so an older checkout can be measured with a newer script. One JSON line per
measurement.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _processor(n: int, customers: int, journeys: int = 100) -> dict[str, Any]:
    import orjson

    from orchestrator.bench.micro import build_registry
    from orchestrator.core.customer import CustomerLogic
    from orchestrator.simulate.generate import generate_events
    from orchestrator.testing.pipeline import LocalPipeline

    lines = [orjson.dumps(e) for e in generate_events(n, customers, 7, 0.2)]
    run = LocalPipeline(CustomerLogic(build_registry(journeys)), partitions=6, batch=3000)
    inner = run.processor.apply
    spent = [0.0]

    def timed(*args: Any) -> Any:
        t0 = time.perf_counter()
        out = inner(*args)
        spent[0] += time.perf_counter() - t0
        return out

    run.processor.apply = timed  # type: ignore[method-assign,assignment]
    run.resolve(lines)
    gc.collect()
    out = run.run()
    sizes = [len(r) for r in run.records.values()]
    return {
        "us_per_msg": spent[0] / out.messages * 1e6,
        "messages": out.messages,
        "mean_record": sum(sizes) / len(sizes),
        "actions": len(out.actions),
    }


def _simulate(n: int) -> dict[str, Any]:
    from orchestrator.simulate.generate import write_events
    from orchestrator.simulate.runner import simulate_file

    path = Path(tempfile.gettempdir()) / f"compare-sim-{n}.jsonl"
    if not path.exists():
        write_events(path, n, n // 5)
    gc.collect()
    c0 = time.process_time()
    result = simulate_file(
        Path("journeys"), path, out_path=Path(tempfile.gettempdir()) / "compare-actions.jsonl"
    )
    return {"cpu_events_per_s": n / (time.process_time() - c0), "actions": result.actions}


def _engine(n: int, journeys: int, share: float) -> dict[str, Any]:
    from orchestrator.bench.micro import _events, _run_engine, build_registry

    events = _events(n, max(500, n // 8))
    seconds, actions = _run_engine(build_registry(journeys, same_type_share=share), events, 3)
    return {"us_per_event": seconds / n * 1e6, "actions": actions}


def measure(what: str, args: list[str]) -> dict[str, Any]:
    if what == "processor":
        return _processor(*map(int, args))
    if what == "simulate":
        return _simulate(int(args[0]))
    if what == "engine":
        return _engine(int(args[0]), int(args[1]), float(args[2]))
    raise SystemExit(f"unknown measurement {what!r}: processor, simulate or engine")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree", action="append", type=Path, default=[], help="a checkout (repeat)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("what", help="processor N CUSTOMERS | simulate N | engine N JOURNEYS SHARE")
    parser.add_argument("args", nargs="*")
    ns = parser.parse_args()
    if ns.measure:
        print(json.dumps(measure(ns.what, ns.args)))
        return
    script = str(Path(__file__).resolve())
    for _ in range(ns.rounds):
        for tree in ns.tree:
            root = tree.resolve()
            proc = subprocess.run(
                [sys.executable, script, "--measure", ns.what, *ns.args],
                cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]
            print(f"{root} {line}", flush=True)


if __name__ == "__main__":
    main()
