"""Kafka-native customer-journey orchestrator.

The journey core (``orchestrator.core``) is pure: no Kafka, Faust, Prometheus or wall clock.
Two shells sit on it: the streaming runtime (``orchestrator.runtime``) and ``orchestrator simulate``.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
