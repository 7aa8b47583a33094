"""The timer index: due wake-ups in (due, customer) order, and a bounded one that reads the rest from
the wake-up table when those in memory run out, with the same results as one that holds them all."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.runtime.timers import TimerIndex

P = 3


def test_due_wakeups_come_in_due_order_and_leave_the_index() -> None:
    index = TimerIndex()
    index.set(P, "b", 20)
    index.set(P, "a", 10)
    index.set(P, "c", 30)
    index.set(P, "c", 15)  # moved earlier: the old entry is stale
    assert index.next_due(P) == 10
    assert index.pop_due(P, 20) == [("a", 10), ("c", 15), ("b", 20)]
    assert index.pending(P) == 0
    assert index.pop_due(P, 99) == []


def test_a_bounded_index_keeps_its_limit_and_reads_the_table_for_the_rest() -> None:
    table = {f"c{n:04d}": 1_000 + n for n in range(1_000)}
    index = TimerIndex(limit=50, scan=lambda p: table.items())
    index.load(P, table.items())
    assert index.in_memory() == 50
    assert index.pending(P) == 1_000
    assert index.next_due(P) == 1_000
    fired: list[tuple[str, int]] = []
    now = 1_000
    while len(fired) < 1_000:
        taken = index.pop_due(P, now, limit=30)
        for customer, _ in taken:
            del table[customer]  # processed: no further wake-up
            index.set(P, customer, None, previous_ms=None)
        fired += taken
        assert index.in_memory() <= 100
        now += 7
    assert fired == sorted(((c, d) for c, d in {f"c{n:04d}": 1_000 + n for n in range(1_000)}.items()),
                           key=lambda cd: (cd[1], cd[0]))  # fmt: skip
    assert index.scans >= 1_000 // 50 - 1
    assert index.pending(P) == 0


def test_a_thousand_customers_due_at_the_same_instant_stay_bounded() -> None:
    table = {f"c{n:04d}": 5_000 for n in range(1_000)}
    index = TimerIndex(limit=10, scan=lambda p: table.items())
    index.load(P, table.items())
    assert index.in_memory() == 10
    taken = index.pop_due(P, 5_000, limit=10_000)
    assert [c for c, _ in taken] == sorted(table)


_steps = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.integers(0, 30), st.none() | st.integers(0, 200)),
        st.tuples(st.just("pop"), st.integers(0, 220), st.integers(1, 12)),
        st.tuples(st.just("process"), st.none() | st.integers(1, 50), st.just(0)),
        st.tuples(st.just("retry"), st.integers(0, 60), st.just(0)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(_steps, st.integers(1, 6))
def test_a_bounded_index_fires_what_an_unbounded_one_fires(
    steps: list[tuple[str, object, object]], limit: int
) -> None:
    table: dict[str, int] = {}
    whole = TimerIndex()
    bounded = TimerIndex(limit=limit, scan=lambda p: list(table.items()))
    bounded.load(P, [])
    in_flight: list[tuple[str, int]] = []
    for op, a, b in steps:
        if op == "set":
            customer, due = f"c{a}", b
            assert due is None or isinstance(due, int)
            previous = table.get(customer)
            if due is None:
                table.pop(customer, None)
            else:
                table[customer] = due
            whole.set(P, customer, due)
            bounded.set(P, customer, due, previous_ms=previous)
        elif op == "pop":
            assert isinstance(a, int)
            assert isinstance(b, int)
            taken = bounded.pop_due(P, a, limit=b)
            assert taken == whole.pop_due(P, a, limit=b)
            in_flight += taken
        elif op == "retry":  # processing failed: again later, in memory only (the table keeps the old)
            assert isinstance(a, int)
            for customer, due in in_flight:
                if customer in table:
                    whole.set(P, customer, due + a)
                    bounded.set(P, customer, due + a, previous_ms=table[customer], pin=True)
            in_flight = []
        else:  # the popped customers are processed: a later wake-up, or none
            for customer, due in in_flight:
                nxt = None if a is None else due + int(str(a))
                previous = table.get(customer)
                if nxt is None:
                    table.pop(customer, None)
                else:
                    table[customer] = nxt
                whole.set(P, customer, nxt)
                bounded.set(P, customer, nxt, previous_ms=previous)
            in_flight = []
        assert bounded.pending(P) == whole.pending(P)
        assert bounded.in_memory() <= 2 * limit + 1 + len(bounded._parts[P].pinned), "retries are pinned"
    assert bounded.pop_due(P, 10_000, limit=10_000) == whole.pop_due(P, 10_000, limit=10_000)


def test_loading_several_partitions_in_one_read_keeps_each_bounded_and_complete() -> None:
    rng = __import__("random").Random(5)
    table = {f"c{n:04d}": (n % 3, rng.randrange(10_000)) for n in range(3_000)}

    def scan(p: int) -> list[tuple[str, int]]:
        return [(c, d) for c, (q, d) in table.items() if q == p]

    index = TimerIndex(limit=20, scan=scan)
    index.load_all([0, 2], ((q, c, d) for c, (q, d) in table.items()))
    assert index.partitions() == [0, 2]
    assert index.pending(0) == 1_000
    assert index.in_memory() == 40
    fired = index.pop_due(0, 10_000, limit=100_000)
    assert fired == sorted(scan(0), key=lambda cd: (cd[1], cd[0]))


def test_customers_taken_in_one_large_take_are_all_remembered_until_they_come_back() -> None:
    """Found by the property test above: a take of more than 4 x limit wake-ups forgot the first ones it
    took, so their return counted their old table rows as pending beyond the horizon (the count of
    pending wake-ups, not the wake-ups, went wrong)."""
    table: dict[str, int] = {}
    whole = TimerIndex()
    bounded = TimerIndex(limit=1, scan=lambda p: list(table.items()))
    bounded.load(P, [])
    for customer, due in (("c0", 0), ("c1", 1), ("c2", 1), ("c3", 0), ("c4", 0)):
        previous = table.get(customer)
        table[customer] = due
        whole.set(P, customer, due)
        bounded.set(P, customer, due, previous_ms=previous)
    taken = bounded.pop_due(P, 1, limit=5)
    assert taken == whole.pop_due(P, 1, limit=5)
    for customer, due in taken:
        previous = table[customer]
        table[customer] = due + 1
        whole.set(P, customer, due + 1)
        bounded.set(P, customer, due + 1, previous_ms=previous)
        assert bounded.pending(P) == whole.pending(P)
