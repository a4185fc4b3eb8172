"""Invariants of the pure report arithmetic: RFM quintiles, segments, buckets, CSV."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from loyalty_cli.reports import SEGMENTS, buckets, quintiles, segment, write_csv

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
                assert not cell.startswith(("=", "+", "-", "@"))
                assert cell.removeprefix("'") == value or cell == value
            elif value is None:
                assert cell == ""
            else:
                assert cell == str(value)
