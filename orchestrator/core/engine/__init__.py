"""The pure journey engine: per-customer state, step execution, timers, action ids.

Nothing here imports Kafka or reads the wall clock; time is the logical ``now_ms`` passed in.
The entry points are in :mod:`orchestrator.core.customer`.
"""

from orchestrator.core.engine.ids import action_id, split_bucket
from orchestrator.core.engine.records import Transition
from orchestrator.core.engine.state import CustomerState, Instance

__all__ = ["CustomerState", "Instance", "Transition", "action_id", "split_bucket"]
