"""The run stage's shell: fitting a model from what happened, a synthetic history with known truth, and
the evaluation of the choices a model makes (``orchestrator fit``, ``orchestrator evaluate``).

- :mod:`.history`: recorded events, actions and decisions, read from JSONL files or the Kafka topics;
- :mod:`.fit`: the history -> an :class:`~orchestrator.core.learning.model.EngagementModel`;
- :mod:`.synthetic`: customers with true preferences and the history they would make;
- :mod:`.evaluate`: fit on the first part of a history, score the choices on the rest.

The pure choices themselves live in :mod:`orchestrator.core.learning`; docs/optimization-fit.md says how
to use the commands.
"""

__all__: list[str] = []
