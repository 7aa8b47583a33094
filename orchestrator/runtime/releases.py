"""Campaign releases on the workers: which members to wake up, what was done, and the counts per campaign.

When a campaign's occurrence is released (:meth:`CampaignRegistry.releases`: its release window starts,
or a deployment takes effect within it), every member must be looked at, including customers with no
event or timer coming. Each worker does it for the customer partitions it owns (:func:`members_to_wake`):
it sends each member of the campaign's segment a wake-up on the timers topic, in the customer's
partition, at the pace the campaign allows (``pace``: sends a second over the cluster, each worker its
share of the partitions), and after the last one a **release marker** (key :data:`RELEASE_KEY`). The
customer's own agent does the rest, as for any timer: its logic looks at the customer as of the release
time (the release is one of the customer's timers in the core), so a wake-up read twice, or after the
customer's next event, changes nothing.

**Progress is durable**: the customer stage, reading a marker, records the release as done for its
partition in the partition's row ``releases:<partition>`` of the ``segment_sizes`` table (kept with the
customers, moved with the partition on a rebalance), in the same delivery as what the wake-ups before the
marker did. A worker killed in the middle of a release leaves it not done: the partition's next owner
releases it again from the start (the members woken already: nothing twice, action ids are
deterministic). The row keeps a *floor* (every release before it is done) and the done releases after it:
bounded by the releases in flight.

**Counts**: the customer stage adds up what each campaign did to the partition's customers (scheduled,
sent, ``unsent_<reason>``, held, late, left, entered, cancelled) in the partition's row
``campaigns:<partition>``, written with the customers. ``orchestrator campaigns`` sums the latest row of
every partition from the table's changelog (:func:`counts_from_changelog`), as ``orchestrator segments``
sums the sizes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka.partitioner import murmur2

from orchestrator.core.campaign import CampaignRegistry
from orchestrator.core.campaign.registry import Release
from orchestrator.runtime.outgoing import TableRows

if TYPE_CHECKING:
    from orchestrator.runtime.app import WorkerApp

__all__ = [
    "RELEASE_KEY",
    "REPORT_COUNTS",
    "CampaignCounts",
    "ReleaseProgress",
    "campaign_report",
    "campaigns_key",
    "counts_from_changelog",
    "members_to_wake",
    "release_due",
    "releases_key",
]

log = logging.getLogger("orchestrator.worker")

RELEASE_KEY = b"\x00release"
"""The key of a release marker on the timers topic (never a customer key: those are text)."""
CAMPAIGNS_KEY = "campaigns"
RELEASES_KEY = "releases"
SEG_FIELD = b'"seg":{'
CHUNK = 1000
"""Wake-ups sent (and acknowledged) at a time; the partition's ownership is checked between chunks."""


def releases_key(partition: int) -> str:
    """The key of a customer partition's release progress row."""
    return f"{RELEASES_KEY}:{partition}"


def campaigns_key(partition: int) -> str:
    """The key of a customer partition's campaign counts row."""
    return f"{CAMPAIGNS_KEY}:{partition}"


def members_to_wake(records: Iterable[tuple[str, bytes | None]], segment: str) -> Iterator[str]:
    """The customers among ``records`` (stored key, record bytes) that are members of ``segment``: their
    record's profile lists it (``"seg":{..."<segment>":...}``). A byte test, no decoding: a record naming
    the segment elsewhere as well is woken for nothing (harmless); a member never fails it."""
    needle = orjson.dumps(segment) + b":"
    for key, value in records:
        if value is not None and SEG_FIELD in value:
            seg = value[value.index(SEG_FIELD) :]
            if needle in seg:
                yield key


@dataclass
class ReleaseProgress:
    """The releases done per customer partition this worker owns (as last read or written)."""

    floor: dict[int, int] = field(default_factory=dict)
    """Per partition, a time before which every release is done."""
    done: dict[int, set[str]] = field(default_factory=dict)
    """Per partition, the keys of the releases done at or after its floor."""
    sent: dict[int, set[str]] = field(default_factory=dict)
    """Per partition, releases this worker sent wake-ups for and whose marker is on its way."""
    paced: dict[str, float] = field(default_factory=dict)
    """Per campaign, when (``time.monotonic``) this worker may send its next wake-ups (its pace)."""

    def known(self, partition: int) -> bool:
        return partition in self.floor

    def load(self, partition: int, row: Any) -> None:
        """The partition's row as stored (None: nothing released yet)."""
        kept = row if isinstance(row, dict) else {}
        self.floor[partition] = int(kept.get("floor", 0))
        self.done[partition] = {str(k) for k in kept.get("done", ())}
        self.sent.pop(partition, None)

    def pending(self, partition: int, registry: CampaignRegistry, until_ms: int) -> list[Release]:
        """The releases at or before ``until_ms`` not done (nor sent) for the partition, oldest first."""
        done = self.done.get(partition, set())
        sent = self.sent.get(partition, set())
        between = registry.releases_between(self.floor.get(partition, 0), until_ms)
        return [r for r in between if r.key not in done and r.key not in sent]

    def mark(self, partition: int, key: str, registry: CampaignRegistry) -> dict[str, Any]:
        """A marker of release ``key`` was read: it is done. The row to store (the floor moves past the
        done releases at its front)."""
        done = self.done.setdefault(partition, set())
        done.add(key)
        self.sent.get(partition, set()).discard(key)
        floor = self.floor.get(partition, 0)
        for r in registry.releases_between(floor, 2**63):
            if r.key not in done:  # (every release before its time is done; those at it are kept)
                floor = r.at_ms
                break
            floor = r.at_ms + 1
        self.floor[partition] = floor
        still = sorted(k for k in done if _at_of(k) >= floor)
        self.done[partition] = set(still)
        return {"floor": floor, "done": still}

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.floor.pop(p, None)
            self.done.pop(p, None)
            self.sent.pop(p, None)


def _at_of(key: str) -> int:
    return int(key.rsplit("@", 1)[1])


@dataclass
class CampaignCounts:
    """What each campaign did to the customers of the partitions this worker owns, as last read or
    written: per partition, campaign → outcome → count."""

    partitions: dict[int, dict[str, dict[str, int]]] = field(default_factory=dict)

    def known(self, partition: int) -> bool:
        return partition in self.partitions

    def load(self, partition: int, row: Any) -> None:
        kept = row if isinstance(row, dict) else {}
        self.partitions[partition] = {
            str(c): {str(k): int(n) for k, n in counts.items()}
            for c, counts in kept.items()
            if isinstance(counts, dict)
        }

    def apply(self, partition: int, events: Iterable[tuple[str, int, str]]) -> dict[str, dict[str, int]]:
        """Add the (campaign, occurrence, outcome) of a batch; the partition's new counts (the row)."""
        counts = self.partitions.setdefault(partition, {})
        for campaign, _, what in events:
            mine = counts.setdefault(campaign, {})
            mine[what] = mine.get(what, 0) + 1
        return counts

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.partitions.pop(p, None)

    def totals(self) -> dict[str, dict[str, int]]:
        return _sum(self.partitions.values())


def _sum(rows: Iterable[Mapping[str, Mapping[str, int]]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        for campaign, counts in row.items():
            mine = out.setdefault(campaign, {})
            for what, n in counts.items():
                mine[what] = mine.get(what, 0) + int(n)
    return out


def counts_from_changelog(
    records: Iterable[tuple[int, int, bytes | None, bytes | None]],
) -> dict[str, dict[str, int]]:
    """Cluster-wide counts from the ``segment_sizes`` changelog's records (partition, offset, key, value):
    the latest ``campaigns:<partition>`` row of each customer partition, summed."""
    latest: dict[int, Any] = {}
    prefix = f"{CAMPAIGNS_KEY}:".encode()
    for _, _, key, value in records:
        name = b"" if key is None else key.strip(b'"')
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            latest[int(name[len(prefix) :])] = None if value is None else orjson.loads(value)
    counts = CampaignCounts()
    for partition, row in latest.items():
        counts.load(partition, row)
    return counts.totals()


SUPPRESSED_PREFIX = "unsent_"
REPORT_COUNTS = ("audience", "scheduled", "sent", "suppressed",
                 "late", "left", "entered", "held", "cancelled")  # fmt: skip
"""The numbers of a :func:`campaign_report` row (``unsent`` has the suppressed by reason)."""


def campaign_report(
    registry: CampaignRegistry,
    counts: Mapping[str, Mapping[str, int]],
    sizes: Mapping[str, int],
    at_ms: int,
) -> list[dict[str, Any]]:
    """One row per campaign deployed (or counted): its version and status in effect at ``at_ms``, its
    segment, the audience estimate (the segment's members now; the campaign's condition may narrow it),
    and the counts: ``scheduled`` (members given their send time), ``sent``, ``suppressed`` (refused by
    the policy, all reasons; ``unsent`` has them by reason), ``held`` (quiet hours), ``late`` (skipped:
    past the delivery window), ``left`` (out of the audience at the send time), ``entered`` (a journey),
    ``cancelled``."""
    rows: list[dict[str, Any]] = []
    for cid in sorted({*registry.campaign_ids(), *counts}):
        d = registry.current(cid, at_ms)
        if d is None:
            deps = registry.deployments(cid)
            d = deps[-1].definition if deps else None
        mine = counts.get(cid, {})
        unsent = {
            k[len(SUPPRESSED_PREFIX) :]: n for k, n in sorted(mine.items()) if k.startswith(SUPPRESSED_PREFIX)
        }
        rows.append(
            {
                "campaign": cid,
                "version": d.version if d else None,
                "status": d.status if d else "not deployed",
                "name": d.name if d else "",
                "segment": d.segment if d else "",
                "audience": int(sizes.get(d.segment, 0)) if d else 0,
                "scheduled": mine.get("scheduled", 0),
                "sent": mine.get("sent", 0),
                "suppressed": sum(unsent.values()),
                "unsent": unsent,
                "held": mine.get("held", 0),
                "late": mine.get("late", 0),
                "left": mine.get("left", 0),
                "entered": mine.get("entered", 0),
                "cancelled": mine.get("cancelled", 0),
            }
        )
    return rows


def partition_of(key: str, partitions: int) -> int:
    """The customer partition of ``key`` (the producer's partitioner: murmur2, as every customer message)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


async def release_due(w: WorkerApp, owned: frozenset[int], still: Callable[[int], bool]) -> int:
    """Release, on the customer partitions this worker owns, the campaign releases their clock has
    passed: wake each member up (at the campaign's pace), then send the release marker. Returns the
    wake-ups sent. ``still(p)``: the partition is still this worker's and no rebalance is under way
    (checked between chunks; a release cut short is not done, and is released again from the start)."""
    registry = w.book.campaign_registry
    if not registry.releases():
        return 0
    pending: dict[Release, list[int]] = {}
    for p in sorted(owned):
        clock = w.clocks.get(p)
        if clock <= 0:
            continue
        if not w.releases.known(p):
            w.releases.load(p, TableRows(w.segment_sizes_table).read(releases_key(p)))
        for release in w.releases.pending(p, registry, clock - 1):
            pending.setdefault(release, []).append(p)
    woken = 0
    for release, partitions in sorted(pending.items()):
        woken += await _release(w, release, partitions, len(owned), still)
    return woken


async def _release(
    w: WorkerApp, release: Release, partitions: list[int], owned: int, still: Callable[[int], bool]
) -> int:
    """One release on ``partitions`` (of the ``owned`` ones): the stored customers are read once, on the
    event loop (~2 µs a customer: ``bench --only segments``), then each partition's members woken up."""
    settings = w.settings
    definition = w.book.campaign_registry.current(release.campaign, release.at_ms)
    members: dict[int, list[str]] = {p: [] for p in partitions}
    if definition is not None and definition.status == "active":
        for key in members_to_wake(w.customers.items(), release.segment):
            found = members.get(partition_of(key, settings.partitions))
            if found is not None:
                found.append(key)
    pace = None if definition is None else definition.pace_per_second
    # the pace: this worker's share of the cluster's wake-ups a second, over all its partitions
    rate = None if pace is None else pace * owned / settings.partitions
    step = CHUNK if rate is None else max(1, min(CHUNK, int(rate / 10)))  # (10 chunks a second)
    body = orjson.dumps({"due": release.at_ms, "now": release.at_ms})
    timers = settings.topics.timers
    woken = 0
    for p, keys in members.items():
        for first in range(0, len(keys), step):
            if not still(p):
                log.info("release %s of partition %d cut short (the partition moved): its next owner "
                         "releases it again", release.key, p)  # fmt: skip
                return woken
            if rate is not None:
                start = w.releases.paced.get(release.campaign, 0.0)
                wait = start - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                w.releases.paced[release.campaign] = max(start, time.monotonic()) + step / rate
            out = w.outgoing()
            chunk = keys[first : first + step]
            for key in chunk:
                await out.add(timers, p, key.encode(), body)
            await out.deliver()
            woken += len(chunk)
        if not still(p):
            return woken
        out = w.outgoing()
        await out.add(timers, p, RELEASE_KEY, orjson.dumps({"release": release.key}))
        await out.deliver()
        w.releases.sent.setdefault(p, set()).add(release.key)
        w.metrics.campaigns.released.labels(release.campaign).inc(len(keys))
        log.info("campaign %s occurrence %d released on partition %d: %d member(s) woken up",
                 release.campaign, release.occurrence, p, len(keys))  # fmt: skip
    return woken
