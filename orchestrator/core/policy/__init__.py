"""The cross-channel policy: consent, subscription groups, frequency caps, quiet hours, fallback,
engagement suppression.

A policy file (``kind: policy``, docs/policy.md) is loaded like a journey (problems with file, line and
field), deployed with a time from which it takes effect (:class:`PolicyRegistry`), and applied by
:class:`~orchestrator.core.customer.CustomerLogic` to every send of every journey
(:mod:`~orchestrator.core.policy.gate`). Per-channel send-rate limits are read from the same file but
enforced by the connectors (:mod:`orchestrator.connectors.ratelimit`).
"""

from orchestrator.core.policy.gate import PolicyGate, Verdict, evaluate, redirected_action_id
from orchestrator.core.policy.loader import (
    POLICY_KIND,
    is_policy_file,
    is_policy_text,
    load_policy_file,
    load_policy_text,
)
from orchestrator.core.policy.model import (
    EngagementRule,
    FrequencyCap,
    Policy,
    QuietHours,
    RateLimit,
    SubscriptionGroup,
)
from orchestrator.core.policy.registry import EARLIEST_MS, PolicyDeployment, PolicyRegistry

__all__ = [
    "EARLIEST_MS",
    "POLICY_KIND",
    "EngagementRule",
    "FrequencyCap",
    "Policy",
    "PolicyDeployment",
    "PolicyGate",
    "PolicyRegistry",
    "QuietHours",
    "RateLimit",
    "SubscriptionGroup",
    "Verdict",
    "evaluate",
    "is_policy_file",
    "is_policy_text",
    "load_policy_file",
    "load_policy_text",
    "redirected_action_id",
]
