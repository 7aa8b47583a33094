"""Who is in a subscription group: one rule, for the policy's gate and for conditions alike.

A customer is in group G (of channel C) when they have consent on C for the send's category
(marketing unless said) **and** either subscribed to G explicitly or, never having chosen, G's default
is ``opt_out``. Channel consent comes first: an opt-out group's default applies only among customers
with consent on C; an explicit unsubscribe always wins. The choices are the profile's
(``subscription.changed``, :attr:`~orchestrator.core.profile.Profile.subscriptions`), the groups the
policy's (``subscription_groups``, docs/policy.md).
"""

from __future__ import annotations

from orchestrator.core.policy.model import Policy, SubscriptionGroup
from orchestrator.core.profile import Profile

__all__ = ["is_subscribed", "subscriptions_view"]


def is_subscribed(profile: Profile, group: SubscriptionGroup, category: str = "marketing") -> bool:
    """Is the customer in ``group`` for a send of ``category``?"""
    if not profile.has_consent(group.channel, category):
        return False
    choice = profile.subscription_choice(group.id)
    return group.default == "opt_out" if choice is None else choice


def subscriptions_view(profile: Profile, policy: Policy | None) -> dict[str, bool]:
    """``profile.subscriptions`` of conditions: for every group ``policy`` defines, whether the customer
    is in it (marketing); for groups it does not define, the customer's explicit choices as given."""
    view = {group: bool(choice[0]) for group, choice in profile.subscriptions.items()}
    if policy is not None:
        for gid, group in policy.subscription_groups.items():
            view[gid] = is_subscribed(profile, group)
    return view
