"""What a provider raises when it did not take a message, and what the connector runtime does with it.

A provider's ``send`` returns when the provider **accepted** the message; otherwise it raises one of:

- :class:`TransientError` — refused *for now* (an SMTP 4xx, an HTTP 429/503): retried with backoff,
  at most ``connector_max_attempts`` times, then dead-lettered ``retries_exhausted``;
- :class:`ProviderUnavailable` (a :class:`TransientError`) — the provider could not be reached or would not
  let us in (connection refused, TLS or login failed, SMTP 421): nothing is wrong with *this* message, so
  the attempts of the action are not counted; the partition waits (backoff up to
  ``connector_backoff_max_s``) until the provider is back, and no message is dead-lettered for an outage;
- :class:`PermanentError` — refused for good (an SMTP 5xx, an HTTP 4xx): dead-lettered ``rejected`` at once
  (``unregistered`` for a push token the device no longer has);
- :class:`UnknownOutcome` — the message may have been accepted (the connection dropped after the message
  went out, before the answer): dead-lettered ``unconfirmed``, never sent again automatically — a second
  email is worse than one an operator looks at.

A message that cannot be rendered raises :class:`RenderError` from the provider's ``render``:
dead-lettered ``render_failed``, never sent half-rendered. Any other exception of ``send`` counts as an
unknown outcome (the provider's code failed somewhere between the mark and the answer).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["PermanentError", "ProviderUnavailable", "RenderError", "TransientError", "UnknownOutcome"]


class TransientError(Exception):
    """The provider refused the message for now; ``retry_after`` (seconds) when it said when to retry."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(TransientError):
    """The provider could not be reached or refused us (not the message): wait, without using up attempts."""


class PermanentError(Exception):
    """The provider refused the message for good; the message says why (the provider's own words).
    ``reason`` is the dead letter's: ``rejected``, or ``unregistered`` when the address is gone for good
    (a push token the app no longer has: the profile should drop it)."""

    def __init__(self, message: str, *, reason: Literal["rejected", "unregistered"] = "rejected") -> None:
        super().__init__(message)
        self.reason: Literal["rejected", "unregistered"] = reason


class UnknownOutcome(Exception):
    """The provider may have accepted the message: it is not sent again."""


class RenderError(Exception):
    """The action's message could not be made (template, personalization, an invalid address)."""
