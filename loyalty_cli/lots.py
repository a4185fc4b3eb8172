"""Points lots: pure arithmetic for expiry, pending points and spending order.

Every credit (points earned, a positive adjustment) is a lot with the local
date it was earned, the date it becomes spendable (`available_on`, later than
`earned_on` while the purchase's return window runs) and the date it expires
(`expires_on`, the first local date on which it is gone; None = never). Every
debit (a redemption, an expiry, a refund's clawback, a negative adjustment)
draws on lots, and the draws are recorded, so a lot's remainder is its points
less its draws.

Spending order: soonest expiry first, lots that never expire last, ties to the
oldest earned (Voucherify, ERPNext, Odoo 19).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date, timedelta
from functools import lru_cache
from typing import NamedTuple


class LotTerms(NamedTuple):
    """The dates of a new credit's lot."""

    earned_on: date
    available_on: date
    expires_on: date | None


class Lot(NamedTuple):
    id: int  # the credit entry's id
    earned_on: date
    available_on: date
    expires_on: date | None
    remaining: int


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to that month's end (31 Jan + 1 = 28 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@lru_cache(maxsize=1024)  # an import asks for the same few days again and again
def expires_on(earned_on: date, months: int | None, at: str) -> date | None:
    """The first local date on which points earned on `earned_on` are gone.

    `end_of_month`: valid through the end of the month `months` later (Square:
    earned 6 July 2020, 12 months, gone on 1 August 2021).
    `same_day`: valid through the same day `months` later, clamped to month end
    (earned 31 January, 1 month: valid through 28 February, gone on 1 March).
    """
    if months is None:
        return None
    due = add_months(earned_on, months)
    if at == "end_of_month":
        return add_months(due.replace(day=1), 1)
    return due + timedelta(days=1)


def spending_key(lot: Lot) -> tuple[bool, date | None, int]:
    """Soonest expiry first, lots that never expire last, ties to the oldest."""
    return (lot.expires_on is None, lot.expires_on, lot.id)


def spending_order(lots: Iterable[Lot]) -> list[Lot]:
    return sorted(lots, key=spending_key)


def is_live(lot: Lot, today: date) -> bool:
    return lot.remaining > 0 and (lot.expires_on is None or lot.expires_on > today)


def spendable(lots: Iterable[Lot], today: date) -> list[Lot]:
    """Lots that can pay for something today, in spending order."""
    return spending_order(lot for lot in lots if is_live(lot, today) and lot.available_on <= today)


def draw(lots: Iterable[Lot], points: int) -> list[tuple[int, int]]:
    """Take `points` from `lots` in the order given: [(lot id, points taken)].
    Takes less if the lots hold less; the caller decides what a shortfall means."""
    taken: list[tuple[int, int]] = []
    for lot in lots:
        if points <= 0:
            break
        take = min(lot.remaining, points)
        if take > 0:
            taken.append((lot.id, take))
            points -= take
    return taken


def merged(held: tuple[Lot, ...], floor: date, keep: frozenset[int]) -> tuple[Lot, ...]:
    """`held` (in spending order) with each run of neighbours that no decision can
    tell apart made one lot: lots with the same expiry that become spendable on
    the same day, or that are all spendable by `floor` when no decision is ever
    dated before `floor` (a replay knows that). Drawing on such a run takes from
    it in order, so one lot holding its points draws the same; lots in `keep` (a
    refund to come draws on them by id) stay as they are. The merged lot keeps
    the first one's id and dates."""
    out: list[Lot] = []
    for lot in held:
        if out and lot.id not in keep:
            last = out[-1]
            if (
                last.expires_on == lot.expires_on
                and last.id not in keep
                and (
                    last.available_on == lot.available_on
                    or (last.available_on <= floor and lot.available_on <= floor)
                )
            ):
                out[-1] = last._replace(remaining=last.remaining + lot.remaining)
                continue
        out.append(lot)
    return held if len(out) == len(held) else tuple(out)


def overdue(lots: Iterable[Lot], today: date) -> list[Lot]:
    """Lots past their expiry that still hold points: what an expiry run writes off."""
    return [
        lot
        for lot in spending_order(lots)
        if lot.remaining > 0 and lot.expires_on is not None and lot.expires_on <= today
    ]


class Holdings(NamedTuple):
    """A customer's points on a given day, from their lots."""

    available: int  # spendable now; negative only when a refund left a debt
    pending: int  # held for the return window
    expiring: tuple[tuple[date, int], ...]  # available points gone within 30 days, by date

    @property
    def balance(self) -> int:
        return self.available + self.pending


class Split(NamedTuple):
    available: int
    pending: int
    expiring: tuple[tuple[date, int], ...]  # available points gone within the horizon, by date


def split(lots: Iterable[Lot], today: date, horizon: int = 30) -> Split:
    """Available and pending points as of `today`, ignoring points already past
    their expiry even when no expiry has been written for them yet."""
    available = pending = 0
    expiring: dict[date, int] = {}
    limit = today + timedelta(days=horizon)
    for lot in lots:
        if not is_live(lot, today):
            continue
        if lot.available_on > today:
            pending += lot.remaining
            continue
        available += lot.remaining
        if lot.expires_on is not None and lot.expires_on <= limit:
            expiring[lot.expires_on] = expiring.get(lot.expires_on, 0) + lot.remaining
    return Split(available, pending, tuple(sorted(expiring.items())))
