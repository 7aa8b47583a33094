"""seen()/count() over the stored history rows (``history_rows``) give what they give over records, and
``next_change_ms`` finds when the oldest counted event leaves its window (hypothesis: any rows)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.cel import compile_condition
from orchestrator.core.cel.history import HISTORY_ROW_FIELDS

CONDITIONS = [
    'seen("a", duration("1h"))',
    'count("a", duration("2h")) >= 2',
    'count("b", duration("30m"), {"campaign": "x"})',
    'seen("a", duration("1h"), {"nope": "x"})',
]
rows_strategy = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 20_000_000), st.sampled_from(["", "x"])),
    max_size=30,
).map(lambda items: sorted(([t, at, c, "", "", ""] for t, at, c in items), key=lambda r: r[1]))


def _naive_next_change(
    rows: list[list[object]], wanted: str, window: int, now: int, campaign: str | None
) -> int | None:
    found = []
    for row in rows:
        at = int(row[1])  # type: ignore[call-overload]
        if row[0] != wanted or (campaign is not None and row[2] != campaign) or at < now - window:
            continue
        found.append(at if at > now else at + window + 1)
    return min(found, default=None)


@settings(max_examples=300)
@given(rows=rows_strategy, now=st.integers(0, 20_000_000))
def test_rows_and_records_agree(rows: list[list[object]], now: int) -> None:
    records = [dict(zip(HISTORY_ROW_FIELDS, row, strict=True)) for row in rows]
    for source in CONDITIONS:
        c = compile_condition(source)
        by_rows = {"history_rows": rows, "now_ms": now}
        by_records = {"history": records, "now_ms": now}
        assert c.evaluate(by_rows) == c.evaluate(by_records), source
        assert c.next_change_ms(by_rows) == c.next_change_ms(by_records), source
    assert compile_condition(CONDITIONS[0]).next_change_ms({"history_rows": rows, "now_ms": now}) == (
        _naive_next_change(rows, "a", 3_600_000, now, None)
    )
    assert compile_condition(CONDITIONS[2]).next_change_ms({"history_rows": rows, "now_ms": now}) == (
        _naive_next_change(rows, "b", 1_800_000, now, "x")
    )
