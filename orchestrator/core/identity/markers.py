"""Erased-identifier markers: a keyed hash (HMAC-SHA256) of each identifier of an erased customer.

An event carrying an identifier erased less than :data:`ERASED_TTL_MS` before it is dropped, so a late
event cannot bring the customer back. What is kept is not the identifier but
``HMAC-SHA256(key, kind NUL kind:value)`` (first 128 bits, hex): without the key nobody can test
whether a given email or phone number was erased. The key is a secret of the operator
(``Settings.erasure_key``) or, when none is set, one the runtime generated and keeps in its identities
table (docs/identity.md, "Erased-identifier markers"). The core only receives it: it reads no random
source and no clock.

- **Key versions.** Each marker records the id of the key that made it (:func:`key_id`, 32 bits of
  an HMAC of a constant: it tells keys apart and reveals nothing of the key). New markers are made with
  the *current* key; markers of *previous* keys given to the graph are still checked; markers of a key
  the graph was not given cannot be checked and are only counted (:meth:`ErasedMarkers.unrecognised`)
  until they expire.
- **Legacy markers** (rows ``x:<digest>`` of older versions: a plain SHA-256 of the identifier) cannot
  be migrated — the identifiers are unknown — so they are honoured as they are until they expire, and
  no new one is ever written.

Rows (for a key-value table with a compacted changelog): ``h:<digest>`` -> ``[erasure time, key id]``;
``x:<digest>`` -> erasure time (legacy, only ever deleted).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = [
    "ERASED_KEPT",
    "ERASED_TTL_MS",
    "KEYED_ROW",
    "LEGACY_ROW",
    "ErasedMarkers",
    "key_id",
    "keyed_digest",
    "legacy_digest",
]

ERASED_TTL_MS = 30 * 86_400_000
"""How long after an erasure an event with one of the erased identifiers is dropped (30 days)."""
ERASED_KEPT = 1_000_000
"""Erased-identifier markers kept at most (about 100 MB in memory at the worst; oldest dropped first)."""

KEYED_ROW = "h:"
LEGACY_ROW = "x:"


def key_id(key: bytes) -> str:
    """A short public id of ``key`` (which key made a marker); reveals nothing usable of the key."""
    return hmac.digest(key, b"orchestrator erasure key id", "sha256").hex()[:8]


def keyed_digest(key: bytes, kind: str, token: str) -> str:
    """The marker of identifier ``token`` (``kind:value``, or a customer_id) under ``key``."""
    return hmac.digest(key, f"{kind}\x00{token}".encode(), "sha256").hex()[:32]


def legacy_digest(kind: str, token: str) -> str:
    """The unsalted marker older versions wrote (read only: anyone can compute it)."""
    return hashlib.sha256(f"{kind}\x00{token}".encode()).hexdigest()[:32]


class ErasedMarkers:
    """The markers of one identity graph, keyed and legacy, with their erasure times."""

    __slots__ = ("_current", "_dirty", "_ids", "_keyed", "_keys", "_legacy")

    def __init__(self, key: bytes | None = None, previous: Iterable[bytes] = ()) -> None:
        self._current = key is not None
        keys = [] if key is None else [key]
        keys += [k for k in previous if k not in keys]
        self._keys: list[tuple[str, bytes]] = [(key_id(k), k) for k in keys]
        """(key id, key): the current key first (when there is one), then the previous ones."""
        self._ids = {kid for kid, _ in self._keys}
        self._keyed: dict[str, tuple[int, str]] = {}
        """digest -> (erasure time, key id), in insertion order (oldest first)."""
        self._legacy: dict[str, int] = {}
        """Unsalted digest of an older version -> erasure time; never added to."""
        self._dirty: set[str] = set()

    @property
    def current(self) -> str | None:
        """The id of the key new markers are made with; None: the graph cannot erase."""
        return self._keys[0][0] if self._current else None

    def __bool__(self) -> bool:
        return bool(self._keyed) or bool(self._legacy)

    def __len__(self) -> int:
        return len(self._keyed) + len(self._legacy)

    def legacy(self) -> int:
        return len(self._legacy)

    def unrecognised(self) -> int:
        """Keyed markers made with a key this graph was not given (they no longer match anything)."""
        return sum(1 for _, kid in self._keyed.values() if kid not in self._ids)

    def by_key(self) -> dict[str, int]:
        """Keyed markers per key id."""
        out: dict[str, int] = {}
        for _, kid in self._keyed.values():
            out[kid] = out.get(kid, 0) + 1
        return out

    def marked(self, kind: str, token: str, at_ms: int) -> bool:
        """Whether identifier ``token`` was erased less than :data:`ERASED_TTL_MS` before ``at_ms``."""
        keyed = self._keyed
        if keyed:
            for _, key in self._keys:
                hit = keyed.get(keyed_digest(key, kind, token))
                if hit is not None and at_ms < hit[0] + ERASED_TTL_MS:
                    return True
        if self._legacy:
            when = self._legacy.get(legacy_digest(kind, token))
            if when is not None and at_ms < when + ERASED_TTL_MS:
                return True
        return False

    def mark(self, kind: str, token: str, at_ms: int) -> None:
        if not self._current:
            raise ValueError(
                "erasing needs an erasure key: IdentityGraph(erasure_key=...) (markers are never unkeyed)"
            )
        kid, key = self._keys[0]
        digest = keyed_digest(key, kind, token)
        self._keyed.pop(digest, None)
        self._keyed[digest] = (at_ms, kid)
        self._dirty.add(KEYED_ROW + digest)

    def sweep(self, now_ms: int) -> None:
        """Drop markers older than :data:`ERASED_TTL_MS`, then the oldest beyond :data:`ERASED_KEPT`
        (legacy ones first: they are the oldest)."""
        horizon = now_ms - ERASED_TTL_MS
        for d in [d for d, (when, _) in self._keyed.items() if when < horizon]:
            del self._keyed[d]
            self._dirty.add(KEYED_ROW + d)
        for d in [d for d, when in self._legacy.items() if when < horizon]:
            del self._legacy[d]
            self._dirty.add(LEGACY_ROW + d)
        while len(self) > ERASED_KEPT:
            if self._legacy:
                d = min(self._legacy, key=self._legacy.__getitem__)
                del self._legacy[d]
                self._dirty.add(LEGACY_ROW + d)
            else:
                d = next(iter(self._keyed))
                del self._keyed[d]
                self._dirty.add(KEYED_ROW + d)

    # -- storage --------------------------------------------------------------------------------
    def changes(self) -> Iterator[tuple[str, Any]]:
        """Rows changed since the last call (None: delete), sorted."""
        for row in sorted(self._dirty):
            digest = row[2:]
            if row.startswith(KEYED_ROW):
                hit = self._keyed.get(digest)
                yield row, None if hit is None else [hit[0], hit[1]]
            else:
                yield row, self._legacy.get(digest)
        self._dirty.clear()

    def to_dict(self) -> dict[str, Any]:
        return {"h": {d: [t, kid] for d, (t, kid) in self._keyed.items()}, "x": dict(self._legacy)}

    def load(self, keyed: dict[str, Any], legacy: dict[str, Any]) -> None:
        """Markers as :meth:`to_dict` gave them; order follows erasure time (which goes first at
        :data:`ERASED_KEPT`)."""
        entries = sorted((int(v[0]), str(d), str(v[1])) for d, v in keyed.items())
        self._keyed = {d: (t, kid) for t, d, kid in entries}
        self._legacy = {str(d): int(t) for d, t in sorted(legacy.items(), key=lambda kv: int(kv[1]))}
        self._dirty.clear()

    @staticmethod
    def is_row(row: str) -> bool:
        return row.startswith((KEYED_ROW, LEGACY_ROW))
