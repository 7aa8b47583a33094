"""Message contracts: pydantic models, exported as JSON Schema files in schemas/."""

from orchestrator.contracts.actions import CHANNELS, Category, Channel, ChannelAction, make_action_id
from orchestrator.contracts.decision import DECISION_KINDS, DECISION_REASONS, Decision, DecisionKind
from orchestrator.contracts.events import (
    CUSTOMER_KEY,
    ENGAGEMENT_TYPES,
    IDENTIFIER_PRIORITY,
    KNOWN_EVENT_TYPES,
    CustomerEvent,
    Identifiers,
    parse_event,
)
from orchestrator.contracts.records import DeadLetter, JourneyDeployment, ResolvedEvent

__all__ = [
    "CHANNELS",
    "CUSTOMER_KEY",
    "DECISION_KINDS",
    "DECISION_REASONS",
    "ENGAGEMENT_TYPES",
    "IDENTIFIER_PRIORITY",
    "KNOWN_EVENT_TYPES",
    "Category",
    "Channel",
    "ChannelAction",
    "CustomerEvent",
    "DeadLetter",
    "Decision",
    "DecisionKind",
    "Identifiers",
    "JourneyDeployment",
    "ResolvedEvent",
    "make_action_id",
    "parse_event",
]
