"""Resolution: which canonical customer key an event belongs to (pure).

Rule (foundation): the customer_id when present, else the first identifier present in
:data:`~orchestrator.contracts.IDENTIFIER_PRIORITY` order (email, phone, device_id, anonymous_id),
prefixed by its kind so that an email and a device id can never collide: ``email:a@b.c``.
A customer_id is used as it is. docs/identity.md documents the rule.
"""

from __future__ import annotations

from orchestrator.contracts.events import Identifiers

__all__ = ["canonical_key"]


def canonical_key(identifiers: Identifiers) -> str:
    """The canonical customer key for the given identifiers."""
    if identifiers.customer_id:
        return identifiers.customer_id
    kind, value = identifiers.items()[0]
    return f"{kind}:{value.strip().lower() if kind == 'email' else value.strip()}"
