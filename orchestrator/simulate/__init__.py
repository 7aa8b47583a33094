"""The offline simulator: "what would these journeys have done with last week's events?"."""

from orchestrator.core.funnel import Funnel, JourneyFunnel
from orchestrator.simulate.runner import (
    EARLIEST_MS,
    InvalidLine,
    SimulationResult,
    Simulator,
    load_campaigns,
    load_registry,
    load_segments,
    read_lines,
    simulate_file,
)

__all__ = [
    "EARLIEST_MS",
    "Funnel",
    "InvalidLine",
    "JourneyFunnel",
    "SimulationResult",
    "Simulator",
    "load_campaigns",
    "load_registry",
    "load_segments",
    "read_lines",
    "simulate_file",
]
