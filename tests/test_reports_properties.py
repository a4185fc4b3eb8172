"""Invariants of the pure report arithmetic: RFM quintiles, segments, buckets, CSV."""

from __future__ import annotations

import csv
import io
import itertools
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_cli.clock import day_number, stamp
from loyalty_cli.engine import awards
from loyalty_cli.engine.requests import EarnRequest, EnrollRequest
from loyalty_cli.exports import write_csv
from loyalty_cli.reports import SEGMENTS, Period, buckets, segment
from loyalty_cli.rules import parse_rules
from loyalty_cli.store import Store
from loyalty_cli.store import reports as sql

from .reference import quintiles

values = st.lists(st.integers(min_value=-1000, max_value=1000), min_size=1, max_size=200)


@given(values, st.booleans())
def test_quintiles_are_1_to_5_monotone_and_equal_for_ties(xs: list[int], higher: bool) -> None:
    scores = quintiles(xs, higher_is_better=higher)
    assert all(1 <= s <= 5 for s in scores)
    for a, sa in zip(xs, scores, strict=True):
        for b, sb in zip(xs, scores, strict=True):
            better = a > b if higher else a < b
            if a == b:
                assert sa == sb
            elif better:
                assert sa >= sb


@given(st.sets(st.integers(), min_size=1, max_size=300))
def test_distinct_values_fill_each_quintile_evenly(xs: set[int]) -> None:
    scores = quintiles(sorted(xs))
    n = len(xs)
    for score in range(1, 6):
        assert abs(scores.count(score) - n / 5) <= 1


def test_quintiles_of_one_value_or_all_equal_are_the_middle() -> None:
    assert quintiles([42]) == [3]
    assert quintiles([7, 7, 7], higher_is_better=False) == [3, 3, 3]
    assert quintiles([1, 2, 3, 4, 5]) == [1, 2, 3, 4, 5]
    assert quintiles([1, 2, 3, 4, 5], higher_is_better=False) == [5, 4, 3, 2, 1]


score = st.integers(min_value=1, max_value=5)


@given(score, score, score)
def test_every_score_falls_in_exactly_one_named_segment(r: int, f: int, m: int) -> None:
    assert segment(r, f, m) in SEGMENTS


def test_segment_rules_as_documented() -> None:
    assert segment(5, 5, 5) == "champions"
    assert segment(4, 4, 4) == "champions"
    assert segment(3, 5, 5) == "loyal"
    assert segment(5, 4, 1) == "loyal"
    assert segment(5, 1, 5) == "new"
    assert segment(4, 2, 3) == "potential_loyalists"
    assert segment(3, 2, 1) == "potential_loyalists"
    assert segment(1, 5, 4) == "cant_lose"
    assert segment(1, 4, 3) == "at_risk"
    assert segment(2, 3, 1) == "at_risk"
    assert segment(3, 1, 5) == "hibernating"
    assert segment(2, 2, 2) == "hibernating"
    assert segment(1, 2, 5) == "lost"


days = st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 12, 31))


@given(days, st.integers(min_value=0, max_value=800), st.sampled_from(["day", "week", "month"]))
def test_buckets_tile_the_period_exactly(first: date, length: int, by: str) -> None:
    last = first + timedelta(days=length)
    spans = buckets(first, last, by)
    assert spans[0][1] == first and spans[-1][2] == last
    for (_, _, end), (_, start, _) in itertools.pairwise(spans):
        assert end + timedelta(days=1) == start
    assert len({label for label, _, _ in spans}) == len(spans)


cells = st.one_of(st.text(max_size=20), st.integers(), st.none())


@given(st.lists(st.lists(cells, min_size=3, max_size=3), max_size=10))
def test_csv_round_trips_and_no_cell_starts_a_formula(rows: list[list[object]]) -> None:
    out = io.StringIO(newline="")
    write_csv(("a", "b", "c"), rows, out)
    back = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert back[0] == ["a", "b", "c"] and len(back) == len(rows) + 1
    for written, row in zip(back[1:], rows, strict=True):
        for cell, value in zip(written, row, strict=True):
            if isinstance(value, str):
                # A number written as text (-40.00, a refund's money) is left
                # alone, as the README says: a spreadsheet reads it as a number.
                number = re.fullmatch(r"[+-]?[0-9]+(?:\.[0-9]+)?", value, re.ASCII)
                assert number or not cell.startswith(("=", "+", "-", "@"))
                assert cell.removeprefix("'") == value or cell == value
            elif value is None:
                assert cell == ""
            else:
                assert cell == str(value)


# --- the SQL scoring against the reference ---------------------------------------

LONDON = ZoneInfo("Europe/London")
NO_RULES = parse_rules("program: {name: RFM, timezone: Europe/London}\n")
# Seconds in 2024 around which times cluster: the two summer-time changes and a
# few local midnights, where a stored UTC time and the shop's day disagree.
EDGES = [
    int(datetime(2024, 3, 31, 1, tzinfo=UTC).timestamp()),
    int(datetime(2024, 10, 27, 1, tzinfo=UTC).timestamp()),
    int(datetime(2024, 7, 1, tzinfo=LONDON).timestamp()),
    int(datetime(2024, 12, 31, tzinfo=LONDON).timestamp()),
]
moment = st.one_of(
    st.builds(lambda edge, d: edge + d, st.sampled_from(EDGES), st.integers(-7200, 7200)),
    st.integers(
        int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()),
        int(datetime(2024, 12, 31, 22, tzinfo=UTC).timestamp()),
    ),
)
purchase = st.tuples(moment, st.integers(1, 50_000))  # (UTC seconds, cents)
customers = st.lists(st.lists(purchase, min_size=1, max_size=4), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None)
@given(customers)
def test_sql_rfm_scores_and_local_days_equal_the_reference(
    tmp_path_factory: pytest.TempPathFactory, bought: list[list[tuple[int, int]]]
) -> None:
    as_of = date(2024, 12, 31)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    path = tmp_path_factory.mktemp("rfm") / "ledger.db"
    joined = datetime(2024, 1, 1, tzinfo=UTC)
    with Store.open(path) as store, store.writing(NO_RULES, now) as book:
        for n, purchases in enumerate(bought):
            cid = f"C{n:02d}"
            awards.enroll(book, EnrollRequest(cid, at=joined, salt=b"s"))
            for seconds, cents in purchases:
                at = datetime.fromtimestamp(seconds, UTC)
                amount = Decimal(cents) / 100
                awards.earn(book, EarnRequest(cid, "purchase", amount=amount, at=at))
    span = Period(date(2024, 1, 1), as_of, as_of, "Europe/London")
    with Store.open(path) as store:
        shifts = span.utc_shifts(date(2024, 1, 1))
        every_score = [
            r * 100 + f * 10 + m for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)
        ]
        found = {
            cid: (day, count, cents, (r, f, m))
            for cid, _, day, count, cents, r, f, m in sql.rfm_members(
                store.conn, span.until, shifts, every_score
            )
        }
    ids = [f"C{n:02d}" for n in range(len(bought))]
    last = [
        max(datetime.fromtimestamp(s, UTC).astimezone(LONDON).date() for s, _ in p) for p in bought
    ]
    spend = [sum(c for _, c in p) for p in bought]
    r = quintiles([(as_of - day).days for day in last], higher_is_better=False)
    f = quintiles([len(p) for p in bought])
    m = quintiles(spend)
    expected = {
        cid: (day_number(last[i]), len(bought[i]), spend[i], (r[i], f[i], m[i]))
        for i, cid in enumerate(ids)
    }
    assert found == expected


def test_utc_shifts_are_the_shops_summer_time_changes_to_the_second() -> None:
    span = Period(date(2024, 1, 1), date(2024, 12, 31), date(2024, 12, 31), "Europe/London")
    assert span.utc_shifts(date(2024, 1, 1)) == [
        (stamp(datetime(2024, 1, 1, tzinfo=UTC)), 0),
        (stamp(datetime(2024, 3, 31, 1, tzinfo=UTC)), 3600),
        (stamp(datetime(2024, 10, 27, 1, tzinfo=UTC)), 0),
    ]
    tokyo = Period(date(2024, 1, 1), date(2024, 12, 31), date(2024, 12, 31), "Asia/Tokyo")
    assert tokyo.utc_shifts(date(2024, 6, 1)) == [
        (stamp(datetime(2024, 5, 31, 15, tzinfo=UTC)), 32400)
    ]
