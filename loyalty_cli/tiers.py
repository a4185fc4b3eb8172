"""Tiers, pure: from a customer's dated qualifying amounts to their tier, how
long they keep it, and what it takes to rise or to stay.

The qualifying metric is money spent or points earned (never the balance, so
spending points never drops a tier), counted from the day a purchase's return
window ends (pending points do not qualify) and lowered by refunds.

Downgrades, stated once (the README repeats it):
- `keep_next_window` (the default): a tier reached in a window is kept for the
  rest of that window and all of the next one. calendar_year: reached any day in
  2026, kept through 31 December 2027. rolling_12_months: kept for 12 months
  from the day the 12-month total last reached it. lifetime: kept for good.
- `reevaluate`: the tier always follows the current window's total, so it can
  fall at a window boundary (1 January for calendar_year).
A manual tier (`loyalty tier ID --set`) is a floor until its date: the customer
has at least that tier, or a higher one they qualify for.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import NamedTuple

from .lots import add_months
from .models import TierLevel, TierPolicy


class Qualifying(NamedTuple):
    """An amount that counts toward tiers from `day` on (negative for a refund), in
    the metric's unit times `scale` (see status): an account keeps cents as ints."""

    day: date
    amount: Decimal | int


def folded(
    amounts: tuple[Qualifying, ...],
    before: date | None,
    cut: date | None = None,
    window: str | None = None,
) -> tuple[Qualifying, ...]:
    """`amounts` (sorted by day) with those of one day added up, and those dated
    before `before` left out: a replay passes the day before which no window a
    later decision looks at can start (None: a lifetime window, where all count).
    With `cut` (no amount will be added before it, and no decision is dated
    before it) and a calendar_year or lifetime `window`, the amounts before
    `cut` of each year (or all of them) become two: their highest running total,
    on its day, and the rest, on their last day. A later day's window total, and
    the best tier reached on any day of a year (all a year's days keep a tier
    until the same day), come out the same."""
    out: list[Qualifying] = []
    for q in amounts:
        if before is not None and q.day < before:
            continue
        if out and out[-1].day == q.day:
            out[-1] = Qualifying(q.day, out[-1].amount + q.amount)
        else:
            out.append(q)
    if cut is not None and window in ("calendar_year", "lifetime"):
        out = _peaks(out, cut, window)
    return amounts if out == list(amounts) else tuple(out)


def _peaks(amounts: list[Qualifying], cut: date, window: str) -> list[Qualifying]:
    head = [q for q in amounts if q.day < cut]
    groups: dict[int, list[Qualifying]] = {}
    for q in head:
        groups.setdefault(q.day.year if window == "calendar_year" else 0, []).append(q)
    out: list[Qualifying] = []
    for group in groups.values():
        running: Decimal | int = 0
        peak, peak_day = group[0].amount, group[0].day
        for q in group:
            running += q.amount
            if running > peak:
                peak, peak_day = running, q.day
        out.append(Qualifying(peak_day, peak))
        if group[-1].day != peak_day:
            out.append(Qualifying(group[-1].day, running - peak))
    return out + [q for q in amounts if q.day >= cut]


def oldest_needed(windows: Iterable[str], floor: date) -> date | None:
    """The first day whose amounts a tier decision dated `floor` or later may
    still count, under any of `windows`: a rolling window looks back 12 months,
    and a tier reached up to 12 months before that may still be held (24 for a
    calendar year, from 1 January of the year before); a lifetime window needs
    them all (None)."""
    if "lifetime" in windows:
        return None
    return add_months(floor, -25)


class Override(NamedTuple):
    tier: str
    until: date | None
    reason: str


@dataclass(frozen=True)
class TierStatus:
    level: TierLevel
    value: Decimal  # the qualifying total in the current window
    window_start: date | None
    until: date | None  # last day the tier is held without qualifying again; None: open
    next_level: TierLevel | None
    to_next: Decimal | None  # more needed in this window to reach the next level
    to_keep: Decimal | None  # more needed in this window to hold the tier past `until`
    override: Override | None  # a manual floor in force


def window_start(window: str, day: date) -> date | None:
    if window == "calendar_year":
        return date(day.year, 1, 1)
    if window == "rolling_12_months":
        return add_months(day, -12) + timedelta(days=1)
    return None


class Totals:
    """Window totals of dated amounts, each in O(log n): sorted days and running sums,
    since a tier's grace period asks for the total on every day that could peak."""

    def __init__(self, amounts: Iterable[Qualifying], window: str) -> None:
        ordered = sorted(amounts)
        self.window = window
        self.days = [q.day for q in ordered]
        self.running: list[Decimal | int] = [0]
        for q in ordered:
            self.running.append(self.running[-1] + q.amount)

    def at(self, day: date) -> Decimal | int:
        """The qualifying total of the window that `day` ends."""
        start = window_start(self.window, day)
        low = 0 if start is None else bisect_left(self.days, start)
        return self.running[bisect_right(self.days, day)] - self.running[low]


def qualified(levels: Sequence[TierLevel], value: Decimal | int, scale: int = 1) -> TierLevel:
    reached = levels[0]
    for level in levels:
        if value >= level.threshold * scale:
            reached = level
    return reached


def _kept_until(policy: TierPolicy, day: date) -> date | None:
    """Under keep_next_window, the last day a tier reached on `day` is kept."""
    if policy.window == "calendar_year":
        return date(day.year + 1, 12, 31)
    if policy.window == "rolling_12_months":
        return add_months(day, 12) - timedelta(days=1)
    return None


def status(
    policy: TierPolicy,
    amounts: Sequence[Qualifying],
    today: date,
    override: Override | None = None,
    scale: int = 1,
) -> TierStatus:
    """The tier as of `today`. `amounts` are in the metric's unit times `scale`
    (an account counts spend in cents, scale 100: integer sums are cheaper)."""
    levels = policy.levels
    totals = Totals(amounts, policy.window)
    units = totals.at(today)
    value = Decimal(units) / scale if scale != 1 else Decimal(units)
    level = qualified(levels, units, scale)
    keep = policy.downgrade == "keep_next_window"
    until = _kept_until(policy, today) if keep else _boundary(policy, today)
    if keep:
        # The best tier reached on any day whose grace still covers today, and
        # the latest day that grace runs to.
        for day in sorted(d for d in _turning_points(policy, amounts) if d < today):
            kept = _kept_until(policy, day)
            if kept is not None and kept < today:
                continue
            reached = qualified(levels, totals.at(day), scale)
            if reached.threshold > level.threshold:
                level, until = reached, kept
            elif reached == level and kept is not None and until is not None and kept > until:
                until = kept
    floor = override if override and (override.until is None or override.until >= today) else None
    if floor is not None:
        manual = next(lv for lv in levels if lv.id == floor.tier)
        if manual.threshold > level.threshold:
            level, until = manual, floor.until
    base = level == levels[0]
    index = levels.index(level)
    following = levels[index + 1] if index + 1 < len(levels) else None
    return TierStatus(
        level=level,
        value=value,
        window_start=window_start(policy.window, today),
        until=None if base or policy.window == "lifetime" else until,
        next_level=following,
        to_next=None if following is None else max(Decimal(0), following.threshold - value),
        to_keep=None
        if base or policy.window == "lifetime"
        else max(Decimal(0), level.threshold - value),
        override=floor,
    )


def _turning_points(policy: TierPolicy, amounts: Sequence[Qualifying]) -> set[date]:
    """The days on which a window's total can peak: each day an amount starts to
    count and, in a rolling window, the last day it still counts."""
    days = {q.day for q in amounts}
    if policy.window == "rolling_12_months":
        days |= {add_months(q.day, 12) - timedelta(days=1) for q in amounts}
    return days


def _boundary(policy: TierPolicy, today: date) -> date | None:
    """The last day of the current window, when the tier is looked at again."""
    if policy.window == "calendar_year":
        return date(today.year, 12, 31)
    return None  # a rolling window moves every day
