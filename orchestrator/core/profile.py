"""The per-customer profile and how events change it (pure).

The profile is a plain dataclass, serialised to JSON-compatible dicts for the state stores.
Logical time is epoch milliseconds passed in by the caller; the wall clock is never read here.

What the profile keeps:

- identities seen, attributes (``profile.updated``), time zone;
- **addresses** per channel: ``email`` (from the email identifier or ``profile.updated`` email),
  ``sms`` (phone identifier or ``phone``), ``push`` (``profile.updated`` ``push_token``);
- **consent** per channel and category (``consent.changed``: ``channel``, ``category``, ``granted``);
- **subscription choices**: per subscription group (``subscription.changed``: ``group``,
  ``subscribed``) the customer's explicit choice and its time; the latest choice by event time wins
  (at equal times: unsubscribed), at most :data:`SUBSCRIPTIONS_KEPT` groups. Whether a customer is in
  a group also depends on consent and the group's default: :mod:`orchestrator.core.policy.subscriptions`;
- a bounded **event history** (newest last) for CEL's ``seen``/``count``: events within
  ``history_window_ms`` of the newest one, at most ``history_max`` of them;
- an **engagement summary** from the receipts of messages — sends, deliveries, opens, clicks, bounces
  and failures (``email.delivered``, ``sms.clicked``, ``sms.failed``, ``push.delivered``, ...: every
  type of :data:`~orchestrator.contracts.events.ENGAGEMENT_TYPES`): per event type its count and latest
  time, and per campaign the latest time of
  each engagement type (the :data:`CAMPAIGNS_KEPT` most recently engaged campaigns). Conditions read it
  as ``profile.engagement.email.opened`` / ``profile.engagement.email.last_opened_ms``; the policy's
  engagement suppression reads it too. It is not bounded by the event history's size. Also:

  - **sliding windows**: per engagement type, counts per UTC day for the last :data:`ACTIVITY_DAYS`
    days; conditions read ``profile.engagement.email.opened_7d`` (also ``_1d``, ``_30d``): the days
    ending with the day of the customer's latest event (``last_seen_ms``);
  - **hour of week** per channel: opens and clicks counted by UTC hour of the week (0 = Monday
    00:00-01:00 UTC, 167 = Sunday 23:00) for the run stage's send-time choice; conditions read
    ``profile.engagement.email.hour_of_week[h]`` (a list of 168 counts);
  - **timing** per channel: opens and clicks by *local* hour of the week, decayed by event time (half
    every four weeks): what ``send_time: optimal`` reads (:mod:`orchestrator.core.learning.timing`);
  - per campaign ``profile.engagement.campaigns.<campaign>.last_opened_ms`` (``last_clicked_ms``, ...).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any

from orchestrator.contracts.engine_event import Event
from orchestrator.contracts.events import CUSTOMER_KEY, ENGAGEMENT_TYPES, CustomerEvent
from orchestrator.core.cel.history import HISTORY_ROW_FIELDS
from orchestrator.core.learning.timing import record_engagement

__all__ = [
    "ACTIVITY_DAYS",
    "CAMPAIGNS_KEPT",
    "CONSENT_DEFAULTS",
    "DEFAULT_HISTORY_MAX",
    "DEFAULT_HISTORY_WINDOW_MS",
    "DEFAULT_TIMEZONE",
    "HISTORY_FIELDS",
    "SUBSCRIPTIONS_KEPT",
    "WINDOWS_DAYS",
    "Profile",
    "apply_event",
    "hour_of_week",
    "remember_subscription",
    "update_attributes",
]

DEFAULT_TIMEZONE = "UTC"
"""Time zone assumed when a profile has none (profile.updated with properties.timezone sets it)."""
DEFAULT_HISTORY_WINDOW_MS = 30 * 86_400_000
DEFAULT_HISTORY_MAX = 200
CONSENT_DEFAULTS = {"marketing": False, "transactional": True}
"""Consent assumed when a customer never said: no marketing, yes to transactional messages."""
_CHANNELS = ("email", "sms", "push")
_ADDRESS_FIELDS = {"email": "email", "phone": "sms", "push_token": "push"}
HISTORY_FIELDS = HISTORY_ROW_FIELDS
"""The fields of a history row, in order (what seen()/count() read from ``history_rows``)."""
CAMPAIGNS_KEPT = 50
ACTIVITY_DAYS = 30
"""Days of per-day engagement counts kept (the longest sliding window)."""
WINDOWS_DAYS = (1, 7, 30)
"""Sliding windows conditions can read: ``opened_1d``, ``opened_7d``, ``opened_30d``."""
_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
"""Campaigns whose engagement is remembered per customer (the most recently engaged ones)."""
SUBSCRIPTIONS_KEPT = 50
"""Subscription groups whose explicit choice a profile keeps (the oldest choice is let go first)."""
_GROUP_ID = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
"""A subscription group id (the policy loader's rule: a name of at most 64 characters)."""


@dataclass(slots=True)
class Profile:
    """What the orchestrator knows about one customer."""

    customer_key: str
    identities: dict[str, list[str]] = field(default_factory=dict)
    """Identifiers seen, by kind (customer_id, email, phone, device_id, anonymous_id)."""
    attributes: dict[str, Any] = field(default_factory=dict)
    timezone: str = DEFAULT_TIMEZONE
    first_seen_ms: int | None = None
    last_seen_ms: int | None = None
    counts_by_type: dict[str, int] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    """Where to reach the customer, by channel (email, sms, push)."""
    consent: dict[str, dict[str, bool]] = field(default_factory=dict)
    """Explicit consent by channel, then category (marketing, transactional)."""
    history_rows: list[list[Any]] = field(default_factory=list)
    """Recent events, oldest first, each ``[type, at_ms, campaign, action_id, journey, channel]``
    (:data:`HISTORY_FIELDS`): the stored form; :attr:`history` is what conditions read."""
    engagement: dict[str, list[int]] = field(default_factory=dict)
    """Engagement event type (``email.opened``) -> [count, latest time in ms]."""
    campaign_engagement: dict[str, dict[str, int]] = field(default_factory=dict)
    """Campaign -> engagement event type -> latest time in ms (bounded to CAMPAIGNS_KEPT campaigns)."""
    activity: dict[str, dict[str, int]] = field(default_factory=dict)
    """Engagement event type -> UTC day number (epoch days, as text) -> count; ACTIVITY_DAYS days kept."""
    hours: dict[str, dict[str, int]] = field(default_factory=dict)
    """Channel -> hour of week (0..167, as text) -> opens and clicks."""
    timezone_known: bool = False
    """The customer's zone was given (``profile.updated`` ``timezone``); else ``timezone`` is only the
    default, and a journey's ``default_timezone`` applies. Stored only for an explicit UTC (any other
    zone is known by being there)."""
    segments: dict[str, int] = field(default_factory=dict)
    """Segment id -> since when (ms) the customer is a member (:mod:`orchestrator.core.segment`); bounded
    by the segments deployed (:data:`~orchestrator.core.segment.registry.MAX_SEGMENTS`)."""
    subscriptions: dict[str, list[Any]] = field(default_factory=dict)
    """Subscription group id -> ``[subscribed, time of the choice in ms]``: the customer's explicit
    choices (``subscription.changed``), at most :data:`SUBSCRIPTIONS_KEPT`."""
    timing: dict[str, list[Any]] = field(default_factory=dict)
    """Channel -> ``[reference time ms, {local hour of week: decayed opens and clicks}]``: what
    ``send_time: optimal`` reads (:mod:`orchestrator.core.learning.timing`); at most 168 per channel."""
    _history: list[dict[str, Any]] | None = field(default=None, init=False, repr=False, compare=False)
    _engagement: tuple[int, dict[str, dict[str, Any]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def history(self) -> list[dict[str, Any]]:
        """Recent events, oldest first, as records with named fields (what CEL's ``history`` and
        seen()/count() read); made from :attr:`history_rows` when first asked for after a change."""
        view = self._history
        if view is None:
            view = self._history = [dict(zip(HISTORY_FIELDS, row, strict=True)) for row in self.history_rows]
        return view

    def set_history_rows(self, rows: list[list[Any]]) -> None:
        self.history_rows = rows
        self._history = None

    def engaged_since(self, event_types: frozenset[str], since_ms: int, campaign: str | None = None) -> bool:
        """Did one of ``event_types`` happen at or after ``since_ms`` (for ``campaign`` when given)?"""
        if campaign is not None:
            latest = self.campaign_engagement.get(campaign, {})
            return any(latest.get(t, since_ms - 1) >= since_ms for t in event_types)
        return any(self.engagement.get(t, (0, since_ms - 1))[1] >= since_ms for t in event_types)

    def engagement_changed(self) -> None:
        """The engagement facts changed: :meth:`engagement_view` is made again when next asked for."""
        self._engagement = None

    def engagement_view(self) -> dict[str, dict[str, Any]]:
        """``{"email": {"opened": 3, "last_opened_ms": ..., "opened_7d": 1, "hour_of_week": [...]}, ...,
        "campaigns": {"welcome": {"last_opened_ms": ...}}}`` (every channel). Kept until the engagement
        facts or the day of the latest event change (read-only: conditions share it)."""
        today = (self.last_seen_ms or 0) // _DAY_MS
        kept = self._engagement
        if kept is not None and kept[0] == today:
            return kept[1]
        view = self._engagement_view(today)
        self._engagement = (today, view)
        return view

    def _engagement_view(self, today: int) -> dict[str, dict[str, Any]]:
        view: dict[str, dict[str, Any]] = {ch: {} for ch in _CHANNELS}
        for event_type, (count, last) in self.engagement.items():
            channel, _, kind = event_type.partition(".")
            if channel in view:
                view[channel][kind] = count
                view[channel][f"last_{kind}_ms"] = last
                days = self.activity.get(event_type, {})
                for window in WINDOWS_DAYS:
                    view[channel][f"{kind}_{window}d"] = sum(
                        n for d, n in days.items() if today - window < int(d) <= today
                    )
        for channel in _CHANNELS:
            counts = [0] * 168
            for how, n in self.hours.get(channel, {}).items():
                counts[int(how)] = n
            view[channel]["hour_of_week"] = counts
        view["campaigns"] = {
            c: {f"last_{t.partition('.')[2]}_ms": at for t, at in facts.items()}
            for c, facts in self.campaign_engagement.items()
        }
        return view

    def has_consent(self, channel: str, category: str) -> bool:
        return self.consent.get(channel, {}).get(category, CONSENT_DEFAULTS.get(category, False))

    def subscription_choice(self, group: str) -> bool | None:
        """The customer's explicit choice for ``group`` (True: subscribed), None when they never said."""
        choice = self.subscriptions.get(group)
        return None if choice is None else bool(choice[0])

    def cel_view(self, engagement: bool = True) -> dict[str, Any]:
        """The ``profile`` variable of conditions: attributes at the top, then the reserved fields.
        ``engagement=False``: without ``engagement`` (the costliest field), for a condition that reads
        other fields only. ``subscriptions`` (membership of the policy's groups) is added by the engine's
        :class:`~orchestrator.core.engine.run.Run`: it depends on the policy in force."""
        view = dict(self.attributes)
        view["attributes"] = self.attributes
        view["key"] = self.customer_key
        view["timezone"] = self.timezone
        view["email"] = self.addresses.get("email", "")
        view["phone"] = self.addresses.get("sms", "")
        view["push_token"] = self.addresses.get("push", "")
        view["addresses"] = self.addresses
        consent = self.consent
        view["consent"] = {
            ch: {
                "marketing": consent.get(ch, {}).get("marketing", False),
                "transactional": consent.get(ch, {}).get("transactional", True),
            }
            for ch in _CHANNELS
        }  # (has_consent for CONSENT_DEFAULTS, inline: made for every condition that reads profile)
        view["counts"] = self.counts_by_type
        if engagement:
            view["engagement"] = self.engagement_view()
        view["segments"] = self.segments  # (the same dict: a segment checked after another sees it)
        view["first_seen_ms"] = self.first_seen_ms or 0
        view["last_seen_ms"] = self.last_seen_ms or 0
        return view

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_key": self.customer_key,
            "identities": self.identities,
            "attributes": self.attributes,
            "timezone": self.timezone,
            "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms,
            "counts_by_type": self.counts_by_type,
            "addresses": self.addresses,
            "consent": self.consent,
            "history": self.history_rows,
            **({"engagement": self.engagement} if self.engagement else {}),
            **({"campaign_engagement": self.campaign_engagement} if self.campaign_engagement else {}),
            **({"activity": self.activity} if self.activity else {}),
            **({"hours": self.hours} if self.hours else {}),
            **({"timezone_known": True} if self.timezone_known and self.timezone == DEFAULT_TIMEZONE else {}),
            **({"seg": self.segments} if self.segments else {}),
            **({"subscriptions": self.subscriptions} if self.subscriptions else {}),
            **({"timing": self.timing} if self.timing else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], copy: bool = True) -> Profile:
        """``copy=False``: ``data`` is the caller's to give away; its containers are not copied."""
        if not copy:
            get = data.get
            return cls(
                data["customer_key"],
                get("identities") or {},
                get("attributes") or {},
                get("timezone", DEFAULT_TIMEZONE),
                get("first_seen_ms"),
                get("last_seen_ms"),
                get("counts_by_type") or {},
                get("addresses") or {},
                get("consent") or {},
                get("history") or [],
                get("engagement") or {},
                get("campaign_engagement") or {},
                get("activity") or {},
                get("hours") or {},
                bool(get("timezone_known")) or get("timezone", DEFAULT_TIMEZONE) != DEFAULT_TIMEZONE,
                get("seg") or {},
                get("subscriptions") or {},
                get("timing") or {},
            )
        return cls(
            customer_key=data["customer_key"],
            identities={k: list(v) for k, v in data.get("identities", {}).items()},
            attributes=dict(data.get("attributes", {})),
            timezone=data.get("timezone", DEFAULT_TIMEZONE),
            first_seen_ms=data.get("first_seen_ms"),
            last_seen_ms=data.get("last_seen_ms"),
            counts_by_type=dict(data.get("counts_by_type", {})),
            addresses=dict(data.get("addresses", {})),
            consent={k: dict(v) for k, v in data.get("consent", {}).items()},
            history_rows=[list(row) for row in data.get("history", [])],
            engagement={k: list(v) for k, v in data.get("engagement", {}).items()},
            campaign_engagement={k: dict(v) for k, v in data.get("campaign_engagement", {}).items()},
            activity={k: dict(v) for k, v in data.get("activity", {}).items()},
            hours={k: dict(v) for k, v in data.get("hours", {}).items()},
            timezone_known=bool(data.get("timezone_known"))
            or data.get("timezone", DEFAULT_TIMEZONE) != DEFAULT_TIMEZONE,
            segments=dict(data.get("seg", {})),
            subscriptions={k: list(v) for k, v in data.get("subscriptions", {}).items()},
            timing={k: [v[0], dict(v[1])] for k, v in data.get("timing", {}).items()},
        )


def apply_event(
    profile: Profile,
    event: Event | CustomerEvent,
    *,
    history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS,
    history_max: int = DEFAULT_HISTORY_MAX,
    at_ms: int | None = None,
) -> Profile:
    """Fold one event into the profile (in place, returned for chaining).

    ``at_ms`` is the event's time when the caller already computed it.
    """
    if type(event) is not Event:
        event = Event.of(event)  # type: ignore[arg-type]
    for kind, value in event.identifiers:
        if kind == CUSTOMER_KEY:  # (a receipt naming its customer: no identity of the customer)
            continue
        seen = profile.identities.setdefault(kind, [])
        if value not in seen:
            seen.append(value)
        if kind == "email" and "email" not in profile.addresses:
            profile.addresses["email"] = value
        elif kind == "phone" and "sms" not in profile.addresses:
            profile.addresses["sms"] = value
    at = event.occurred_ms if at_ms is None else at_ms
    if profile.first_seen_ms is None or at < profile.first_seen_ms:
        profile.first_seen_ms = at
    if profile.last_seen_ms is None or at > profile.last_seen_ms:
        profile.last_seen_ms = at
    profile.counts_by_type[event.type] = profile.counts_by_type.get(event.type, 0) + 1
    if event.type == "profile.updated":
        update_attributes(profile, event.properties)
    elif event.type == "consent.changed":
        _update_consent(profile, event.properties)
    elif event.type == "subscription.changed":
        _update_subscription(profile, event.properties, at)
    elif event.type in ENGAGEMENT_TYPES:
        _update_engagement(profile, event.type, event.campaign, at)
        _count_activity(profile, event.type, at)
    _remember(profile, event, at, history_window_ms, history_max)
    return profile


def update_attributes(profile: Profile, properties: dict[str, Any]) -> None:
    """What a ``profile.updated`` event's properties do to the profile (its ``attributes``, or the
    properties themselves): ``timezone``, the addresses (``email``, ``phone``, ``push_token``), and any
    other attribute set (removed when null)."""
    attrs = properties.get("attributes", properties)
    if not isinstance(attrs, dict):
        return
    for key, value in attrs.items():
        if key == "timezone" and isinstance(value, str):
            profile.timezone = value
            profile.timezone_known = True
        elif key in _ADDRESS_FIELDS:
            channel = _ADDRESS_FIELDS[key]
            if isinstance(value, str) and value.strip():
                profile.addresses[channel] = value.strip()
            elif value is None:
                profile.addresses.pop(channel, None)
        elif value is None:
            profile.attributes.pop(key, None)
        else:
            profile.attributes[key] = value


def _update_engagement(profile: Profile, event_type: str, campaign: str | None, at: int) -> None:
    profile.engagement_changed()
    count, last = profile.engagement.get(event_type, (0, at))
    profile.engagement[event_type] = [count + 1, max(last, at)]
    if not campaign:
        return
    facts = profile.campaign_engagement.get(campaign)
    if facts is None:
        facts = profile.campaign_engagement[campaign] = {}
        if len(profile.campaign_engagement) > CAMPAIGNS_KEPT:
            oldest = min(
                profile.campaign_engagement,
                key=lambda c: max(profile.campaign_engagement[c].values(), default=at),
            )
            del profile.campaign_engagement[oldest]
    facts[event_type] = max(facts.get(event_type, at), at)


def hour_of_week(at_ms: int) -> int:
    """0 for Monday 00:00-01:00 UTC ... 167 for Sunday 23:00-24:00 UTC (epoch day 0 is a Thursday)."""
    return (at_ms // _HOUR_MS + 72) % 168


def _count_activity(profile: Profile, event_type: str, at: int) -> None:
    channel, _, kind = event_type.partition(".")
    if kind in ("opened", "clicked"):
        hours = profile.hours.setdefault(channel, {})
        how = str(hour_of_week(at))
        hours[how] = hours.get(how, 0) + 1
        record_engagement(profile.timing, channel, at, profile.timezone)
    days = profile.activity.setdefault(event_type, {})
    day = at // _DAY_MS
    newest = max((int(d) for d in days), default=day)
    if day <= newest - ACTIVITY_DAYS:
        return
    days[str(day)] = days.get(str(day), 0) + 1
    if day > newest:
        for d in [d for d in days if int(d) <= day - ACTIVITY_DAYS]:
            del days[d]


def _update_consent(profile: Profile, properties: dict[str, Any]) -> None:
    """``{"channel": "sms"|"all", "category": "marketing"|"transactional"|"all", "granted": bool}``.

    ``status: granted|revoked`` is accepted instead of ``granted``; category defaults to marketing.
    """
    granted = properties.get("granted")
    if granted is None:
        status = str(properties.get("status", "")).lower()
        granted = {"granted": True, "opted_in": True, "revoked": False, "opted_out": False}.get(status)
    if not isinstance(granted, bool):
        return
    channel = str(properties.get("channel", "all"))
    category = str(properties.get("category", "marketing"))
    channels = _CHANNELS if channel == "all" else (channel,) if channel in _CHANNELS else ()
    categories = tuple(CONSENT_DEFAULTS) if category == "all" else (category,)
    for ch in channels:
        for cat in categories:
            if cat in CONSENT_DEFAULTS:
                profile.consent.setdefault(ch, {})[cat] = granted


def _update_subscription(profile: Profile, properties: dict[str, Any], at: int) -> None:
    """``{"group": "<id>", "subscribed": bool}``; ``status: subscribed|unsubscribed`` is accepted instead
    of ``subscribed``. Anything else (no group, a group that is not an id) changes nothing."""
    group = properties.get("group")
    if not isinstance(group, str) or not _GROUP_ID.match(group):
        return
    subscribed = properties.get("subscribed")
    if subscribed is None:
        status = str(properties.get("status", "")).lower()
        subscribed = {"subscribed": True, "opted_in": True, "unsubscribed": False, "opted_out": False}.get(
            status
        )
    if isinstance(subscribed, bool):
        remember_subscription(profile.subscriptions, group, subscribed, at)


def remember_subscription(choices: dict[str, list[Any]], group: str, subscribed: bool, at_ms: int) -> None:
    """Keep the choice ``subscribed`` for ``group`` made at ``at_ms`` unless a later one is known (at the
    same time, unsubscribed wins: the order events arrive in does not matter); past
    :data:`SUBSCRIPTIONS_KEPT` groups the oldest choice is let go."""
    kept = choices.get(group)
    if kept is not None and (kept[1] > at_ms or (kept[1] == at_ms and not kept[0])):
        return
    choices[group] = [subscribed, at_ms]
    if len(choices) > SUBSCRIPTIONS_KEPT:
        del choices[min(choices, key=lambda g: (choices[g][1], g))]


def _remember(profile: Profile, event: Event, at: int, window_ms: int, max_items: int) -> None:
    kind = event.type
    channel = kind.partition(".")[0]
    row = [
        kind,
        at,
        event.campaign or "",
        event.action_id or "",
        event.journey or "",
        channel if channel in _CHANNELS else "",
    ]
    rows = profile.history_rows
    if not rows or rows[-1][1] <= at:
        rows.append(row)
    else:
        bisect.insort_right(rows, row, key=lambda r: int(r[1]))
    horizon = rows[-1][1] - window_ms
    drop = 0
    while drop < len(rows) and rows[drop][1] < horizon:
        drop += 1
    drop = max(drop, len(rows) - max_items)
    if drop:
        del rows[:drop]
    profile._history = None
