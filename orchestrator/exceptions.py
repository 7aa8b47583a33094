"""The one exception tree of the orchestrator.

Every error the orchestrator raises on purpose derives from :class:`OrchestratorError`::

    OrchestratorError
     ├── ConfigError               bad setting in the environment or the config file
     ├── ContractError             a message does not match its contract (event, action, ...)
     │    └── InvalidEventError        not JSON / not a valid customer event (goes to the dead-letter topic)
     ├── JourneyError              journey language problems
     │    ├── JourneyValidationError   one or more problems in journey files (file, line, field)
     │    └── ConditionError           a CEL condition does not parse, compile or type-check
     ├── PolicyError               cross-channel policy problems
     │    └── PolicyValidationError    one or more problems in a policy file (file, line, field)
     ├── SegmentValidationError    one or more problems in segment files, or segments that read each
     │                             other in a cycle (file, line, field)
     ├── CampaignValidationError   one or more problems in campaign files, or a campaign deployment
     │                             refused (file, line, field)
     ├── TemplateValidationError   one or more problems in template files, or a template deployment
     │                             refused (file, line, field)
     ├── TemplateRenderError       a message cannot be rendered from its template (a missing variable,
     │                             a refusal of the sandbox, a limit): nothing of it is sent
     ├── ModelValidationError      one or more problems in a model file (file, line, field)
     ├── KafkaSetupError           the Kafka side is not as the orchestrator needs it
     │    ├── BrokerError              the local broker cannot be fetched, formatted or started
     │    ├── ToolMissingError         java or mvn is missing
     │    └── TopicLayoutError         topics are missing or disagree on partitions / compaction
     ├── DeliveryError             the broker did not acknowledge what a worker produced
     ├── StateLimitError           a customer's stored state would outgrow its row limit (message set aside)
     ├── SimulationError           the offline simulator cannot run its input
     └── PictureError              a journey's picture cannot be drawn (Graphviz's dot failed or timed out)
          └── GraphvizMissingError     Graphviz's dot program is not installed (package graphviz)

Each error carries a message that says what is wrong and where.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "CampaignValidationError",
    "ConditionError",
    "ConfigError",
    "ContractError",
    "DeliveryError",
    "GraphvizMissingError",
    "InvalidEventError",
    "JourneyError",
    "JourneyValidationError",
    "KafkaSetupError",
    "ModelValidationError",
    "OrchestratorError",
    "PictureError",
    "PolicyError",
    "PolicyValidationError",
    "SegmentValidationError",
    "SimulationError",
    "StateLimitError",
    "TemplateRenderError",
    "TemplateValidationError",
    "ToolMissingError",
    "TopicLayoutError",
]


class OrchestratorError(Exception):
    """Root of every error the orchestrator raises on purpose."""


class ConfigError(OrchestratorError):
    """A setting in the environment or in the config file is wrong."""


class ContractError(OrchestratorError):
    """A message does not match its contract."""


class InvalidEventError(ContractError):
    """A raw message is not valid JSON or not a valid customer event.

    ``reason`` is a short machine-readable code (``not_json``, ``invalid_event``),
    ``detail`` the human-readable explanation naming the offending fields.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class JourneyError(OrchestratorError):
    """A journey file or condition is wrong."""


class JourneyValidationError(JourneyError):
    """One or more problems found in journey files; ``problems`` lists them all."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems) if problems else "invalid journey")
        self.problems = problems


class ConditionError(JourneyError):
    """A CEL condition does not parse, compile or type-check."""


class PolicyError(OrchestratorError):
    """A cross-channel policy file or deployment is wrong."""


class PolicyValidationError(PolicyError):
    """One or more problems found in a policy file; ``problems`` lists them all (file:line: field: ...)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems) if problems else "invalid policy")
        self.problems = problems


class SegmentValidationError(OrchestratorError):
    """One or more problems found in segment files; ``problems`` lists them all (file:line: field: ...)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems) if problems else "invalid segment")
        self.problems = problems


class CampaignValidationError(OrchestratorError):
    """One or more problems found in campaign files; ``problems`` lists them all (file:line: field: ...)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems) if problems else "invalid campaign")
        self.problems = problems


class TemplateValidationError(OrchestratorError):
    """One or more problems found in template files; ``problems`` lists them all (file:line: field: ...)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems) if problems else "invalid template")
        self.problems = problems


class ModelValidationError(OrchestratorError):
    """One or more problems found in model files (``kind: model``); ``problems`` lists them all."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems) if problems else "invalid model")
        self.problems = problems


class TemplateRenderError(OrchestratorError):
    """A message cannot be rendered from its template, so none is made (never a half-rendered one).

    ``reason`` is a short code: ``missing_variable`` (``variable`` names it: ``first_name`` or
    ``profile.first_name``), ``refused`` (the sandbox refused something), ``over_limit``, ``empty`` (a
    part rendered to nothing), ``channel`` (the template is for another channel than the action's),
    ``no_template`` (no such template or version deployed) or ``error`` (any other failure of the
    template). ``part`` is the part being rendered (``subject``, ``html``, ``data.link`` ...)."""

    def __init__(
        self,
        detail: str,
        *,
        template_id: str,
        version: int | None,
        reason: str,
        part: str | None = None,
        variable: str | None = None,
    ) -> None:
        where = f"template {template_id}" + (f" v{version}" if version is not None else "")
        super().__init__(f"{where}: {part}: {detail}" if part else f"{where}: {detail}")
        self.detail = detail
        self.template_id = template_id
        self.version = version
        self.reason = reason
        self.part = part
        self.variable = variable


class KafkaSetupError(OrchestratorError):
    """The Kafka side is not as the orchestrator needs it."""


class BrokerError(KafkaSetupError):
    """The local broker cannot be fetched, formatted or started."""


class ToolMissingError(BrokerError):
    """A tool the local broker needs (java, mvn) is not installed."""


class TopicLayoutError(KafkaSetupError):
    """Topics are missing or disagree on partition count or cleanup policy."""


class SimulationError(OrchestratorError):
    """The offline simulator cannot run its input."""


class DeliveryError(OrchestratorError):
    """The broker did not acknowledge a message a worker produced (e.g. a table changelog record);
    the worker does not commit its input offsets and stops, so the input is read again."""


class StateLimitError(OrchestratorError):
    """A customer's stored record would outgrow the row limit even after trimming what may be trimmed;
    the message that would make it so is dead-lettered and the stored state stays as it was."""


class PictureError(OrchestratorError):
    """A journey's picture cannot be drawn: Graphviz's ``dot`` failed or took too long (its message)."""


class GraphvizMissingError(PictureError):
    """Graphviz's ``dot`` program is not installed (Debian package ``graphviz``); the DOT and mermaid
    texts of a picture need no program."""
