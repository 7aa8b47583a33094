"""The run stage (pure): a model fitted from what happened, and the choices the engine makes with it.

- :mod:`.model`, :mod:`.loader`, :mod:`.registry`: ``kind: model`` files, deployed on the same timeline
  as journeys and the policy;
- :mod:`.timing`: a customer's own engagement by local hour of the week, decayed by event time;
- :mod:`.sendtime`: ``send_time: optimal``; :mod:`.channels`: ``channel: auto``; :mod:`.splits`:
  ``adaptive: true``;
- :mod:`.sampler`: the version-pinned draws (hash -> uniform -> Beta) that keep replay == live.

docs/optimization.md explains each with the math.

The modules are imported by name (``from orchestrator.core.learning.sendtime import ...``): the profile
imports :mod:`.timing`, so this package's ``__init__`` imports nothing (no cycle through the engine).
"""

__all__: list[str] = []
