"""Throughput benchmarks: raw Kafka clients against Faust on a real broker (issue 2).

Run ``python -m orchestrator.bench.baseline --help``.
"""

from orchestrator.bench.common import RunResult, make_events

__all__ = ["RunResult", "make_events"]
