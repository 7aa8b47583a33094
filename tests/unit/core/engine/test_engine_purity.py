"""The engine is pure: no Kafka, Faust or Prometheus import, and no wall-clock read."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4] / "orchestrator" / "core"
FILES = [*ROOT.glob("journey/*.py"), *ROOT.glob("engine/*.py"), ROOT / "customer.py", ROOT / "profile.py"]
FORBIDDEN_MODULES = (
    "faust",
    "mode",
    "aiokafka",
    "confluent_kafka",
    "kafka",
    "prometheus_client",
    "time",
    "orchestrator.runtime",
    "orchestrator.kafka",
)
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "time_ns"}


def test_no_forbidden_import_or_clock_read() -> None:
    assert len(FILES) > 10
    for path in FILES:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                names = []
            for name in names:
                assert not any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES), (
                    f"{path}: {name}"
                )
            if isinstance(node, ast.Attribute) and node.attr in CLOCK_CALLS:
                assert not (
                    isinstance(node.value, ast.Name) and node.value.id in ("datetime", "date", "time")
                ), f"{path}:{node.lineno}: reads the clock"
