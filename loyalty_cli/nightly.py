"""The nightly step: every time-based change, for every customer, as of a day.

- Birthdays: the `birthday` rules, once a year, on the birthday (29 February
  birthdays on 28 February in other years), unless the birthday was set or
  changed less than 30 days before it falls.
- Expiry: `expire` entries for points past their date.
- Tiers: a `tier` entry where the tier as of that day is not the one recorded
  (window boundaries and grace periods ending, pending purchases qualifying).
- Pending points become available by date alone; the summary counts them.
- Games: streaks that broke and challenges that closed unfinished over the days
  it covers are counted (nothing is written: progress is worked out from the
  ledger, so there is nothing to settle twice).

It is safe to run twice and to skip days: birthdays carry an idempotency key per
customer and year, expiry and tier changes are written only when due, and a run
catches up on the birthdays of the days since the last run (up to a year).
Customers are read and written a few hundred at a time, each batch in one
transaction, so a till is never kept waiting for long.
"""

from __future__ import annotations

import json
import time as clock
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

from .engine import awards
from .engine.nightly import TooLate, birthday, birthday_days, night
from .errors import Refused
from .evaluator import rules_for
from .games.play import settled
from .models import Ruleset
from .store import Store, queries

CATCH_UP = timedelta(days=366)
BATCH = 500  # customers per transaction


@dataclass
class NightlySummary:
    as_of: str
    days_from: str
    days_to: str
    members: int = 0  # the customers it went through: every one enrolled
    birthdays: int = 0
    birthday_points: int = 0
    birthdays_refused: int = 0  # set or changed too recently
    expired_customers: int = 0
    expired_points: int = 0
    tier_upgrades: int = 0
    tier_downgrades: int = 0
    became_available: int = 0
    streaks_broken: int = 0  # games: a streak's period ended missed (see games.play.settled)
    challenges_missed: int = 0  # games: a challenge closed with a customer short of it
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def run_nightly(store: Store, ruleset: Ruleset, as_of: date, now: datetime) -> NightlySummary:
    started = clock.monotonic()
    conn = store.conn
    last = queries.last_run(conn, "nightly")
    first = as_of
    if last is not None and date.fromisoformat(last) < as_of:
        first = max(date.fromisoformat(last) + timedelta(days=1), as_of - CATCH_UP)
    summary = NightlySummary(as_of.isoformat(), first.isoformat(), as_of.isoformat())
    celebrations: dict[str, list[date]] = {}
    if rules_for(ruleset, "birthday"):
        day = first
        while day <= as_of:
            for cid in queries.birthdays_on(conn, birthday_days(day)):
                celebrations.setdefault(cid, []).append(day)
            day += timedelta(days=1)
    ranks = [] if ruleset.tiers is None else [level.id for level in ruleset.tiers.levels]
    everyone = queries.customer_ids(conn)
    for start in range(0, len(everyone), BATCH):
        batch = everyone[start : start + BATCH]
        txns = [f"birthday:{cid}:{day.year}" for cid in batch for day in celebrations.get(cid, [])]
        with store.writing(ruleset, now, batch, txns) as book:
            for cid in batch:
                for day in celebrations.get(cid, []):
                    _birthday(book, cid, day, summary)
                account = book.account(cid)
                assert account is not None
                expired, before, after = night(book, account, as_of, first)
                summary.members += 1
                account = book.account(cid)
                if ruleset.games is not None and account is not None and account.play:
                    tier = account.tier or (ranks[0] if ranks else None)
                    broken, missed = settled(ruleset.games, account.play, first, as_of, tier)
                    summary.streaks_broken += broken
                    summary.challenges_missed += missed
                if expired:
                    summary.expired_customers += 1
                    summary.expired_points += expired
                if after != before and ranks:
                    was = ranks.index(before) if before else 0
                    if after is not None and ranks.index(after) > was:
                        summary.tier_upgrades += 1
                    else:
                        summary.tier_downgrades += 1
    summary.became_available = queries.points_released(conn, first, as_of)
    summary.seconds = round(clock.monotonic() - started, 3)
    with store.transaction():
        queries.add_run(
            conn,
            "nightly",
            as_of.isoformat(),
            now,
            now,
            json.dumps(summary.to_json(), sort_keys=True),
        )
    return summary


def _birthday(book: object, cid: str, day: date, summary: NightlySummary) -> None:
    from .engine.book import Book

    assert isinstance(book, Book)
    account = book.account(cid)
    assert account is not None
    try:
        request = birthday(account, book.ruleset, day)
    except TooLate:
        summary.birthdays_refused += 1
        return
    if request is None:
        return
    try:
        result = awards.earn(book, request)
    except Refused:  # the key was used with other content: already handled
        return
    if not result.duplicate:
        summary.birthdays += 1
        summary.birthday_points += result.award.points
