"""A bounded cache of one kind of identity-graph row over the rows a shell keeps (pure).

The identity graph keeps three maps: customer key -> node (``n:`` rows), identifier token -> owner
(``i:`` rows) and old key -> canonical key (``a:`` rows). In memory they are plain dicts (``orchestrator
simulate``, tests). Over a table (the streaming runtime: RocksDB) each is a :class:`PagedMap`: the
most recently used entries in memory, at most ``limit`` of them, the rest read back from the table when
asked for. Nothing is kept per customer beyond that bound (issue 27).

The contract with the shell: the rows :meth:`IdentityGraph.changes` returns are written to the table
before its next call. Entries changed since the last ``changes()`` are never dropped from the cache
(only :meth:`PagedMap.trim`, which ``changes()`` calls once it has given them, drops any), and until the
next call the graph reads the rows it gave before the table's: a reader in between (a look-up while the
shell is still writing) never sees an older value.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

__all__ = ["PagedMap", "RowReader"]

V = TypeVar("V")

RowReader = Callable[[str], Any]
"""The stored (decoded JSON) value of a row of the identity table, or None when there is none."""

_MISSING: Any = object()


class PagedMap(Generic[V]):
    """``key -> value`` over the table rows ``<prefix><key>``, with the dict methods the graph uses.

    ``decode`` turns a stored row into the value; ``count`` is how many keys have a value in the table
    (kept up to date by ``__setitem__`` and ``pop``: the graph's size without reading every row).
    Absent keys are cached too (as None), so a new customer costs one read, not one per identifier.
    """

    __slots__ = ("_cache", "_decode", "_limit", "_prefix", "_read", "count", "misses")

    def __init__(
        self, prefix: str, read: RowReader, decode: Callable[[Any], V], limit: int, count: int = 0
    ) -> None:
        if limit < 1:
            raise ValueError(f"a paged map needs room for at least one entry (limit={limit})")
        self._prefix = prefix
        self._read = read
        self._decode = decode
        self._limit = limit
        self._cache: OrderedDict[str, V | None] = OrderedDict()
        self.count = count
        self.misses = 0
        """Lookups the cache could not answer (each one read from the table)."""

    @overload
    def get(self, key: str) -> V | None: ...
    @overload
    def get(self, key: str, default: V) -> V: ...
    def get(self, key: str, default: V | None = None) -> V | None:
        cache = self._cache
        value = cache.get(key, _MISSING)
        if value is _MISSING:
            self.misses += 1
            stored = self._read(self._prefix + key)
            value = None if stored is None else self._decode(stored)
            cache[key] = value
        else:
            cache.move_to_end(key)
        return default if value is None else value

    def __getitem__(self, key: str) -> V:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __setitem__(self, key: str, value: V) -> None:
        if self.get(key) is None:
            self.count += 1
        self._cache[key] = value

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        value = self.get(key)
        if value is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        self._cache[key] = None
        self.count -= 1
        return value

    def __delitem__(self, key: str) -> None:
        self.pop(key)

    def __len__(self) -> int:
        return self.count

    def cached(self) -> int:
        """Entries in memory now (absent keys included)."""
        return len(self._cache)

    def trim(self) -> None:
        """Drop the least recently used entries beyond the limit (only once their rows are written)."""
        cache = self._cache
        while len(cache) > self._limit:
            cache.popitem(last=False)
