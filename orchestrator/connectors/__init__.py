"""Connectors: what reads the action topics and talks to providers. The sandbox connector fakes providers."""

from orchestrator.connectors.ratelimit import ChannelLimiter, TokenBucket
from orchestrator.connectors.sandbox import SandboxConnector, SandboxScript, SeenIds, engagement_events

__all__ = [
    "ChannelLimiter",
    "SandboxConnector",
    "SandboxScript",
    "SeenIds",
    "TokenBucket",
    "engagement_events",
]
