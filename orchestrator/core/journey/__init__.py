"""The journey language: models, YAML loader with line numbers, validator, registry of deployed versions."""

from orchestrator.core.journey.durations import format_duration, parse_duration
from orchestrator.core.journey.loader import DEFAULT_HISTORY_WINDOW_MS, load_journey_file, load_journey_text
from orchestrator.core.journey.model import (
    BranchStep,
    Condition,
    Entry,
    ExitRule,
    ExitStep,
    Goal,
    JourneyDefinition,
    ReEntry,
    SendStep,
    SplitBranch,
    SplitStep,
    Step,
    UpdateStep,
    WaitStep,
)
from orchestrator.core.journey.registry import Deployment, JourneyRegistry

__all__ = [
    "DEFAULT_HISTORY_WINDOW_MS",
    "BranchStep",
    "Condition",
    "Deployment",
    "Entry",
    "ExitRule",
    "ExitStep",
    "Goal",
    "JourneyDefinition",
    "JourneyRegistry",
    "ReEntry",
    "SendStep",
    "SplitBranch",
    "SplitStep",
    "Step",
    "UpdateStep",
    "WaitStep",
    "format_duration",
    "load_journey_file",
    "load_journey_text",
    "parse_duration",
]
