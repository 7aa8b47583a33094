"""The identity graph: which canonical customer an event's identifiers belong to (pure).

Rules (docs/identity.md):

- **customer_id is authoritative.** An event with a ``customer_id`` resolves to it, always. Two
  different customer_ids never merge.
- **Weak identifiers** (email, phone, device_id, anonymous_id) attach to the customer they are first
  seen with and stay there: a device or household email later seen with another customer_id is not
  moved and does not fuse the two customers (an event of the second customer_id still resolves to it).
- An event without a customer_id resolves to the owner of its identifiers: the first known customer
  (one that has a customer_id) in identifier priority order, else the first anonymous one; when none
  is known, a new anonymous customer keyed ``kind:value`` by its first identifier (the foundation's
  rule, so single-identifier events resolve exactly as before).
- **Merges**: when an event links an anonymous customer to another customer (a sign-in carrying the
  visitor's anonymous_id, two anonymous ids seen together), the anonymous one is merged into the
  other: its identifiers move and a **forwarding alias** (old key -> canonical key) remains. Known
  customers are never merged away.
- **A customer key** (``customer_key``, alone: the receipts a connector reports for an action) names a
  customer without claiming any identifier: it resolves to the customer the key stands for now
  (:meth:`IdentityGraph.current`: itself, or the survivor it was merged into) and changes nothing —
  no customer made, no identifier attached, no key made known, no merge. A key the graph does not know
  resolves with ``unknown=True`` (never seen, or erased more than :data:`ERASED_TTL_MS` ago) or
  ``erased=True`` (erased recently): the event is dropped either way, so a receipt never brings an
  erased customer back.
- **Erasure**: :meth:`IdentityGraph.erase` forgets the customer's identifiers and aliases and keeps a
  marker per identifier (a keyed hash, HMAC-SHA256 with the graph's erasure key, not the identifier:
  :mod:`.markers`) for :data:`ERASED_TTL_MS` after the erasure, at most :data:`ERASED_KEPT` markers
  (oldest dropped first). An event carrying a marked identifier within that time resolves with
  ``erased=True`` and must be dropped. The key comes from the shell (the core reads no random source);
  a graph without one cannot erase. Unsalted markers of older versions are honoured until they expire.

Storage: :meth:`IdentityGraph.changes` gives the rows to keep in a key-value table (``n:`` a customer,
``i:`` an identifier's owner, ``a:`` an alias; ``h:``/``x:`` erased markers). :meth:`IdentityGraph.paged`
works over such a table with at most ``cache`` entries of each kind in memory (:mod:`.pages`): same
results as the graph held whole in memory.

Deterministic: the result depends only on the identifiers and times passed in, in order.
Bounded: at most :data:`MAX_IDENTIFIERS` identifiers per customer (more are not attached; the event
still resolves) and :data:`MAX_ALIASES` aliases per customer (the oldest is forgotten).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.contracts.events import CUSTOMER_KEY, IDENTIFIER_NAMES, IDENTIFIER_PRIORITY, Identifiers
from orchestrator.core.identity.markers import (
    ERASED_KEPT,
    ERASED_TTL_MS,
    KEYED_ROW,
    LEGACY_ROW,
    ErasedMarkers,
)
from orchestrator.core.identity.pages import PagedMap, RowReader

__all__ = [
    "ALIAS_ROW",
    "ERASED_KEPT",
    "ERASED_TTL_MS",
    "MAX_ALIASES",
    "MAX_IDENTIFIERS",
    "NODE_ROW",
    "OWNER_ROW",
    "Erasure",
    "IdentityGraph",
    "Merge",
    "Resolution",
    "claim_token",
    "identifier_token",
]

MAX_IDENTIFIERS = 64
"""Weak identifiers kept per customer; further ones are not attached (the event still resolves)."""
MAX_ALIASES = 64
"""Forwarding aliases kept per canonical customer (the oldest is forgotten first)."""
_WEAK = IDENTIFIER_PRIORITY[1:]
NODE_ROW = _NODE = "n:"
"""Row ``n:<customer key>`` -> ``[known, identifiers, aliases]``."""
OWNER_ROW = _OWNER = "i:"
"""Row ``i:<identifier token>`` -> the key of the customer who owns it."""
ALIAS_ROW = _ALIAS = "a:"
"""Row ``a:<old key>`` -> the canonical key it forwards to."""


def claim_token(kind: str, value: str) -> str:
    """The name of a claim (:meth:`IdentityGraph.claims`): ``kind:value`` normalised as the graph keeps
    it, a customer_id too (``customer_id:<id>``, never confused with a weak identifier's token)."""
    return f"customer_id:{value}" if kind == "customer_id" else identifier_token(kind, value)


def identifier_token(kind: str, value: str) -> str:
    """``kind:value`` with the value normalised (emails lower-cased, all stripped); a customer_id as is."""
    if kind == "customer_id":
        return value
    return f"{kind}:{value.strip().lower() if kind == 'email' else value.strip()}"


@dataclass(frozen=True, slots=True)
class Merge:
    """Customer ``from_key`` was merged into ``into_key`` (move its state, leave an alias)."""

    from_key: str
    into_key: str

    def to_dict(self) -> dict[str, str]:
        return {"from": self.from_key, "into": self.into_key}


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where an event goes: its canonical customer key, and the merges to apply first (in order)."""

    customer_key: str
    merges: tuple[Merge, ...] = ()
    erased: bool = False
    """True: an identifier of the event was erased recently; drop the event (``customer_key`` is a hint)."""
    unknown: bool = False
    """True: the event names a customer key (``customer_key``) the graph does not know — never seen, or
    erased long ago; drop the event (``customer_key`` is the key it named)."""


@dataclass(frozen=True, slots=True)
class Erasure:
    """What :meth:`IdentityGraph.erase` forgot: the customer and the aliases that forwarded to it."""

    customer_key: str
    aliases: tuple[str, ...]
    identifiers: int
    claims: tuple[str, ...] = ()
    """The customer's claim tokens (:func:`claim_token`) that no longer hold."""


@dataclass(slots=True)
class _Node:
    known: bool
    tokens: list[str] = field(default_factory=list)
    """Weak identifier tokens owned, in the order they were attached."""
    aliases: list[str] = field(default_factory=list)
    """Old keys forwarding here, oldest first."""


def _by_kind(rows: Iterable[tuple[str, Any]]) -> dict[str, dict[str, Any]]:
    """Stored rows as :meth:`IdentityGraph.from_dict` reads them: ``"n"`` customers, ``"h"`` keyed and
    ``"x"`` legacy markers, by the rest of their key (``None`` rows and other kinds left out)."""
    out: dict[str, dict[str, Any]] = {"n": {}, "h": {}, "x": {}}
    kinds = {_NODE: "n", KEYED_ROW: "h", LEGACY_ROW: "x"}
    for row, value in rows:
        kind = kinds.get(row[:2])
        if kind is not None and value is not None:
            out[kind][row[2:]] = value
    return out


def _node_of(row: Any) -> _Node:
    known, tokens, aliases = row
    return _Node(bool(known), list(tokens), list(aliases))


class IdentityGraph:
    """Identifier -> canonical customer, with aliases and erased markers; see the module docstring.

    ``erasure_key``: the secret of the erased-identifier markers (new markers are made with it);
    ``previous_keys``: older keys whose markers are still honoured until they expire. Without an
    ``erasure_key`` the graph resolves (and honours the markers it can check) but cannot erase.
    """

    def __init__(self, erasure_key: bytes | None = None, previous_keys: Iterable[bytes] = ()) -> None:
        self._nodes: dict[str, _Node] | PagedMap[_Node] = {}
        self._owner: dict[str, str] | PagedMap[str] = {}
        """Weak identifier token -> customer key."""
        self._alias: dict[str, str] | PagedMap[str] = {}
        """Old (merged) key -> canonical key."""
        self._erased = ErasedMarkers(erasure_key, previous_keys)
        """Markers of erased identifiers (keyed hashes) with their erasure times."""
        self._dirty: set[str] = set()
        """Row keys (see :meth:`changes`) changed since the last call of :meth:`changes`."""
        self._staged: dict[str, Any] = {}
        """Rows to give with the next :meth:`changes` that the table does not have yet (read first)."""
        self._given: dict[str, Any] = {}
        """What the last :meth:`changes` gave (a paged graph reads it before the table: a reader between
        that call and the shell's writes, such as a web look-up, sees the new rows)."""

    @classmethod
    def paged(
        cls,
        read: RowReader,
        customers: int,
        cache: int,
        marker_rows: Iterable[tuple[str, Any]] = (),
        erasure_key: bytes | None = None,
        previous_keys: Iterable[bytes] = (),
        staged: dict[str, Any] | None = None,
    ) -> IdentityGraph:
        """The graph over a table: ``read`` gives a stored row (:meth:`changes`' format), ``customers``
        is how many ``n:`` rows it has, ``cache`` the entries of each kind kept in memory.
        ``marker_rows``: the ``h:``/``x:`` rows (the markers are bounded and kept whole). ``staged``:
        rows the table lacks yet (an older table's owner and alias rows, :meth:`index_rows`), given
        with the next :meth:`changes`."""
        graph = cls(erasure_key, previous_keys)
        graph._staged = dict(staged or {})
        pending = graph._staged

        def stored(row: str) -> Any:
            recent = graph._given
            if row in recent:  # given by the last changes(): maybe not in the table yet
                return recent[row]
            value = pending.get(row)
            return read(row) if value is None else value

        graph._nodes = PagedMap(_NODE, stored, _node_of, cache, customers)
        graph._owner = PagedMap(_OWNER, stored, str, cache)
        graph._alias = PagedMap(_ALIAS, stored, str, cache)
        markers = _by_kind(marker_rows)
        graph._erased.load(markers["h"], markers["x"])
        return graph

    @staticmethod
    def index_rows(key: str, node_row: Any) -> dict[str, str]:
        """The owner and alias rows of a stored ``n:<key>`` row (what tables written before they
        existed lack)."""
        _, tokens, aliases = node_row
        return {**{_OWNER + t: key for t in tokens}, **{_ALIAS + a: key for a in aliases}}

    def index_all(self) -> None:
        """Give every owner and alias row with the next :meth:`changes` (a graph held whole, rebuilt
        from a table written before those rows were kept)."""
        owners, aliases = self._owner, self._alias
        if not isinstance(owners, dict) or not isinstance(aliases, dict):
            raise TypeError("a paged graph's owner and alias rows are staged by IdentityGraph.paged")
        self._dirty.update(_OWNER + t for t in owners)
        self._dirty.update(_ALIAS + a for a in aliases)

    def in_memory(self) -> int:
        """Entries held in memory: customers, identifiers and aliases (absent ones a paged graph
        remembers included)."""
        return sum(
            m.cached() if isinstance(m, PagedMap) else len(m) for m in (self._nodes, self._owner, self._alias)
        )

    def cache_misses(self) -> int:
        """Lookups read from the table (0 when the graph is held whole)."""
        return sum(m.misses for m in (self._nodes, self._owner, self._alias) if isinstance(m, PagedMap))

    # -- queries --------------------------------------------------------------------------------
    def forward(self, key: str) -> str:
        """The canonical key of ``key`` (itself unless it was merged away)."""
        return self._alias.get(key, key)

    def current(self, key: str) -> str | None:
        """The customer a canonical customer key stands for now: the key itself while it is a customer,
        the customer it was merged into when it was merged away (its alias; when the alias was forgotten
        past :data:`MAX_ALIASES`, the owner of the identifier an anonymous key is named after: it moved
        with the merge); None when the graph does not know it (never seen, or erased). Reads only: it
        never makes a customer (receipts, ``customer_key``). Unlike :meth:`lookup` a live customer comes
        before an alias of the same name (the fast path's claims name live customers)."""
        if key in self._nodes:
            return key
        into = self._alias.get(key)
        if into is not None:
            return into
        kind, sep, value = key.partition(":")
        if sep and kind in _WEAK:
            return self._owner.get(identifier_token(kind, value))
        return None

    def __contains__(self, key: str) -> bool:
        return key in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def identities(self, key: str) -> dict[str, list[str]]:
        """The weak identifiers attached to ``key``, by kind (plus its customer_id when known)."""
        node = self._nodes.get(self.forward(key))
        if node is None:
            return {}
        out: dict[str, list[str]] = {}
        if node.known:
            out["customer_id"] = [self.forward(key)]
        for token in node.tokens:
            kind, _, value = token.partition(":")
            out.setdefault(kind, []).append(value)
        return out

    def lookup(self, name: str) -> str | None:
        """The canonical key ``name`` stands for: a customer key, an old (merged) key or a ``kind:value``
        identifier (``email:Ann@x.io``); None when the graph does not know it."""
        if name in self._alias:
            return self._alias[name]
        if name in self._nodes:
            return name
        kind, sep, value = name.partition(":")
        if sep and kind in _WEAK:
            return self._owner.get(identifier_token(kind, value))
        return None

    def claims(self, identifiers: Sequence[tuple[str, str]], key: str) -> list[str]:
        """What an event with these identifiers, resolved to ``key``, lets claim (docs/runtime.md, the
        fast path): when ``key`` is a known customer, its customer_id and each of the identifiers it owns,
        as :func:`claim_token` names them. An event whose identifiers are all claimed by one known
        customer resolves to it and changes nothing here: known customers keep their identifiers (only
        an erasure takes them away). Nothing for an anonymous customer (its identifiers move when it
        signs in). Nothing for an event that names its customer by key (``customer_key``): it claims
        nothing."""
        if any(kind == CUSTOMER_KEY for kind, _ in identifiers):
            return []
        node = self._nodes.get(key)
        if node is None or not node.known:
            return []
        owners = self._owner
        out = [claim_token("customer_id", key)]
        for kind, value in identifiers:
            if kind != "customer_id":
                token = identifier_token(kind, value)
                if owners.get(token) == key:
                    out.append(token)
        return out

    def aliases(self, key: str) -> list[str]:
        node = self._nodes.get(self.forward(key))
        return list(node.aliases) if node else []

    def is_erased(self, kind: str, value: str, at_ms: int) -> bool:
        if not self._erased:  # nothing erased: skip the hashing (hot path of every event)
            return False
        return self._erased.marked(kind, identifier_token(kind, value), at_ms)

    @property
    def markers(self) -> ErasedMarkers:
        """The erased-identifier markers (counts by key, legacy and unrecognised ones)."""
        return self._erased

    # -- resolution -----------------------------------------------------------------------------
    def resolve(
        self, identifiers: Identifiers | tuple[tuple[str, str], ...] | Iterable[tuple[str, str]], at_ms: int
    ) -> Resolution:
        """The canonical customer of an event with these identifiers at event time ``at_ms``: a model,
        an :class:`~orchestrator.contracts.engine_event.Event`'s pairs (a tuple, in priority order) or
        any pairs. A ``customer_key`` (alone) is looked up, never added: :meth:`resolve_key`."""
        pairs: Sequence[tuple[str, str]]
        if isinstance(identifiers, Identifiers):
            pairs = identifiers.items()  # already in priority order
        elif type(identifiers) is tuple:
            pairs = identifiers  # an Event's: already in priority order
        else:
            pairs = sorted(identifiers, key=lambda kv: IDENTIFIER_NAMES.index(kv[0]))
        if pairs and pairs[-1][0] == CUSTOMER_KEY:  # (last in the order: a receipt's)
            if len(pairs) != 1:
                raise ValueError(f"{CUSTOMER_KEY} names the customer alone: no other identifier with it")
            return self.resolve_key(pairs[0][1], at_ms)
        cid = pairs[0][1] if pairs and pairs[0][0] == "customer_id" else None
        weak = [(k, identifier_token(k, v)) for k, v in pairs if k != "customer_id"]
        if cid is not None:
            node = self._nodes.get(cid)
            if not self._erased and node is not None and node.known:  # the common case, fast
                owners = self._owner
                if all(owners.get(t) == cid for _, t in weak):
                    return Resolution(cid)
            if self.is_erased("customer_id", cid, at_ms):
                return Resolution(cid, erased=True)
            live = [(k, t) for k, t in weak if not self._marked(k, t, at_ms)]
            return self._resolve_known(cid, [t for _, t in live])
        if not weak:
            raise ValueError("at least one identifier is required")
        if any(self._marked(k, t, at_ms) for k, t in weak):
            owner = self._owner.get(weak[0][1], weak[0][1])
            return Resolution(owner, erased=True)
        return self._resolve_anonymous([t for _, t in weak])

    def resolve_key(self, key: str, at_ms: int) -> Resolution:
        """Where an event naming its customer by canonical key (``customer_key``) goes: the customer the
        key stands for now (:meth:`current`), with no merge and nothing changed in the graph. A key it
        does not know: ``erased=True`` when the key's customer was erased less than
        :data:`ERASED_TTL_MS` before ``at_ms`` (its customer_id, or the identifier an anonymous key is
        named after, is marked), else ``unknown=True``; either way the event is dropped."""
        found = self.current(key)
        if found is not None:
            return Resolution(found)
        if self._erased:
            kind, sep, value = key.partition(":")
            weak = bool(sep) and kind in _WEAK and self._marked(kind, identifier_token(kind, value), at_ms)
            if weak or self.is_erased("customer_id", key, at_ms):
                return Resolution(key, erased=True)
        return Resolution(key, unknown=True)

    def _marked(self, kind: str, token: str, at_ms: int) -> bool:
        if not self._erased:
            return False
        return self._erased.marked(kind, token, at_ms)

    def _resolve_known(self, cid: str, tokens: list[str]) -> Resolution:
        node = self._nodes.get(cid)
        if node is None or not node.known:  # (an anonymous key spelled like a customer_id: never in practice)
            if node is None:
                node = self._nodes[cid] = _Node(known=True)
            node.known = True
            self._dirty.add(_NODE + cid)
        merges: list[Merge] = []
        for token in tokens:
            owner = self._owner.get(token)
            if owner is None:
                self._attach(cid, node, token)
            elif owner != cid and not self._nodes[owner].known:
                merges.append(self._merge(owner, cid))
        return Resolution(cid, tuple(merges))

    def _resolve_anonymous(self, tokens: list[str]) -> Resolution:
        owners = list(dict.fromkeys(o for t in tokens if (o := self._owner.get(t)) is not None))
        if not owners:
            key = tokens[0]
            node = self._nodes[key] = _Node(known=False)
            self._dirty.add(_NODE + key)
            for token in tokens:
                self._attach(key, node, token)
            return Resolution(key)
        known = [o for o in owners if self._nodes[o].known]
        key = known[0] if known else owners[0]
        merges = [self._merge(o, key) for o in owners if o != key and not self._nodes[o].known]
        node = self._nodes[key]
        for token in tokens:
            if token not in self._owner:
                self._attach(key, node, token)
        return Resolution(key, tuple(merges))

    def _attach(self, key: str, node: _Node, token: str) -> None:
        if len(node.tokens) < MAX_IDENTIFIERS:
            node.tokens.append(token)
            self._owner[token] = key
            self._dirty.add(_NODE + key)
            self._dirty.add(_OWNER + token)

    def _merge(self, from_key: str, into_key: str) -> Merge:
        gone = self._nodes.pop(from_key)
        into = self._nodes[into_key]
        dirty = self._dirty
        dirty.update((_NODE + from_key, _NODE + into_key))
        for token in gone.tokens:
            del self._owner[token]
            dirty.add(_OWNER + token)
            self._attach(into_key, into, token)
        for old in [*gone.aliases, from_key]:
            self._alias[old] = into_key
            dirty.add(_ALIAS + old)
            into.aliases.append(old)
        while len(into.aliases) > MAX_ALIASES:
            dropped = into.aliases.pop(0)
            self._alias.pop(dropped, None)
            dirty.add(_ALIAS + dropped)
        return Merge(from_key, into_key)

    # -- erasure --------------------------------------------------------------------------------
    def erase(self, key: str, at_ms: int) -> Erasure:
        """Forget ``key`` (and what forwards to it); mark its identifiers erased as of ``at_ms``."""
        if self._erased.current is None:
            raise ValueError("erasing needs an erasure key: IdentityGraph(erasure_key=...)")
        key = self.forward(key)
        node = self._nodes.pop(key, None)
        self._dirty.add(_NODE + key)
        marks = self._erased
        if node is None:
            marks.mark("customer_id", key, at_ms)
            marks.sweep(at_ms)
            return Erasure(key, (), 0)
        claims = [claim_token("customer_id", key)] if node.known else []
        if node.known:
            marks.mark("customer_id", key, at_ms)
            claims += node.tokens
        for token in node.tokens:
            self._owner.pop(token, None)
            self._dirty.add(_OWNER + token)
            marks.mark(token.partition(":")[0], token, at_ms)
        for old in node.aliases:
            self._alias.pop(old, None)
            self._dirty.add(_ALIAS + old)
        marks.sweep(at_ms)
        return Erasure(key, tuple(node.aliases), len(node.tokens) + int(node.known), tuple(claims))

    # -- storage --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible; :meth:`from_dict` reads it back (owners are rebuilt from the nodes).
        ``"h"``: keyed markers (digest -> [time, key id]); ``"x"``: legacy unsalted markers. No key.
        Only a graph held whole (not :meth:`paged`) has them all at hand."""
        if not isinstance(self._nodes, dict):
            raise TypeError("a paged identity graph has no whole dict: read its table's rows")
        return {
            "n": {k: [int(n.known), n.tokens, n.aliases] for k, n in self._nodes.items()},
            **self._erased.to_dict(),
        }

    def changes(self) -> dict[str, Any]:
        """Rows changed since the last call, for a key-value table with a compacted changelog.

        ``"n:<customer key>"`` -> ``[known, identifiers, aliases]``, ``"i:<identifier token>"`` -> its
        owner's key, ``"a:<old key>"`` -> the canonical key, ``"h:<digest>"`` -> ``[erasure time, key
        id]`` (a keyed marker) and ``"x:<digest>"`` (a legacy marker: only ever deleted); ``None`` means
        delete the row (a tombstone: erasure leaves no row naming the customer). :meth:`from_rows`
        rebuilds the graph from the stored rows, :meth:`paged` reads them as needed. Keys come sorted
        (deterministic). A paged graph's rows must be written before its next ``changes()``.
        """
        out: dict[str, Any] = dict(self._staged)
        self._staged.clear()
        nodes, owners, aliases = self._nodes, self._owner, self._alias
        for row in self._dirty:
            kind, name = row[:2], row[2:]
            if kind == _NODE:
                node = nodes.get(name)
                out[row] = None if node is None else [int(node.known), list(node.tokens), list(node.aliases)]
            else:
                out[row] = (owners if kind == _OWNER else aliases).get(name)
        self._dirty.clear()
        out.update(self._erased.changes())
        if isinstance(nodes, PagedMap):
            self._given = out
            for paged in (nodes, owners, aliases):
                if isinstance(paged, PagedMap):
                    paged.trim()
        return dict(sorted(out.items()))

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[tuple[str, Any]],
        erasure_key: bytes | None = None,
        previous_keys: Iterable[bytes] = (),
    ) -> IdentityGraph:
        """The graph whose rows (as :meth:`changes` gave them, ``None`` rows left out) are ``rows``.

        Marker order (which one is dropped first at :data:`ERASED_KEPT`) follows erasure time.
        """
        return cls.from_dict(_by_kind(rows), erasure_key, previous_keys)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], erasure_key: bytes | None = None, previous_keys: Iterable[bytes] = ()
    ) -> IdentityGraph:
        graph = cls(erasure_key, previous_keys)
        for key, (known, tokens, aliases) in data.get("n", {}).items():
            graph._nodes[key] = _Node(bool(known), list(tokens), list(aliases))
            for token in tokens:
                graph._owner[token] = key
            for old in aliases:
                graph._alias[old] = key
        graph._erased.load(data.get("h", {}), data.get("x", {}))
        return graph
