"""Resolution: which canonical customer key an event belongs to (pure).

Rule (foundation): the customer_id when present, else the first identifier present in
:data:`~orchestrator.contracts.IDENTIFIER_PRIORITY` order (email, phone, device_id, anonymous_id),
prefixed by its kind so that an email and a device id can never collide: ``email:a@b.c``.
A customer_id is used as it is, and so is a ``customer_key`` (a receipt naming its customer by the
key: the key as the action carried it). docs/identity.md documents the rule.
"""

from __future__ import annotations

from orchestrator.contracts.events import CUSTOMER_KEY, Identifiers

__all__ = ["canonical_key"]


def canonical_key(identifiers: Identifiers | tuple[tuple[str, str], ...]) -> str:
    """The canonical customer key for the given identifiers (a model, or pairs in priority order)."""
    pairs = identifiers.items() if isinstance(identifiers, Identifiers) else identifiers
    kind, value = pairs[0]
    if kind == "customer_id" or kind == CUSTOMER_KEY:
        return value
    return f"{kind}:{value.strip().lower() if kind == 'email' else value.strip()}"
