"""The pure journey core: language, engine, policy and profile logic.

Nothing under this package imports Kafka, Faust or Prometheus, and nothing reads the wall clock:
every function takes the logical time ``now_ms`` (epoch milliseconds) as an argument.
"""

__all__: list[str] = []
