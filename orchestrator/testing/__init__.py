"""Testing helpers shipped with the orchestrator (for our suite and for users' own tests).

- :class:`WorkerProcess` runs ``orchestrator worker`` as a real process with its own topics/group.
- :func:`read_topic` reads what a topic holds; :func:`wait_until` waits on a condition, never a bare sleep.
- :func:`unique_settings` gives settings whose topics, app id and ports belong to one test alone.
- :class:`LocalPipeline` runs the identify stage and the customer stage's processor without Kafka.
"""

from orchestrator.testing.kafka import read_topic, unique_settings, wait_until
from orchestrator.testing.pipeline import LocalPipeline
from orchestrator.testing.worker import WorkerProcess

__all__ = ["LocalPipeline", "WorkerProcess", "read_topic", "unique_settings", "wait_until"]
