"""Reference arithmetic for the report tests: plain Python, written apart from
the SQL that loyalty runs, so that each can check the other."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence


def quintiles(values: Sequence[int], higher_is_better: bool = True) -> list[int]:
    """A score of 1 to 5 for each value: its quintile among all the values, by mid-rank.

    With n values, `below` of them worse than v and `equal` of them equal to it
    (v included), v's mid-rank percentile is p = (below + equal / 2) / n, and its
    score is 1 + floor(5 p), in integers: 1 + 5 (2 below + equal) // (2 n). Equal
    values get equal scores; better values never get lower ones; distinct values
    fill the five scores within one of n / 5 each. Alone, or all equal, a value
    scores 3."""
    n = len(values)
    ordered = sorted(values)
    score_of: dict[int, int] = {}
    low = 0
    while low < n:  # each run of equal values, in ascending order
        v = ordered[low]
        high = bisect_right(ordered, v, low)
        below = low if higher_is_better else n - high
        score_of[v] = 1 + 5 * (2 * below + (high - low)) // (2 * n)
        low = high
    return [score_of[v] for v in values]
