"""The nightly step: every time-based change, for every customer, as of a day.

- Birthdays: the `birthday` rules, once a year, on the birthday (29 February
  birthdays on 28 February in other years), unless the birthday was set or
  changed less than 30 days before it falls.
- Expiry: `expire` entries for points past their date.
- Tiers: a `tier` entry where the tier as of that day is not the one recorded
  (window boundaries and grace periods ending, pending purchases qualifying).
- Pending points become available by date alone; the summary counts them.

It is safe to run twice and to skip days: birthdays carry an idempotency key per
customer and year, expiry and tier changes are written only when due, and a run
catches up on the birthdays of the days since the last run (up to a year).
Each customer is handled in a transaction of its own, so a till is never kept
waiting for long.
"""

from __future__ import annotations

import calendar
import json
import time as clock
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta

from . import membership
from .errors import Refused
from .evaluator import rules_for, shop_zone
from .ledger import Ledger
from .models import Ruleset
from .operations import EarnRequest, earn, expire_due
from .values import parse_utc

# Birthdays set or changed less than this long before they fall earn nothing
# that year (Smile's rule against setting one's birthday to today).
BIRTHDAY_NOTICE = timedelta(days=30)
CATCH_UP = timedelta(days=366)


@dataclass
class NightlySummary:
    as_of: str
    days_from: str
    days_to: str
    customers: int = 0
    birthdays: int = 0
    birthday_points: int = 0
    birthdays_refused: int = 0  # set or changed too recently
    expired_customers: int = 0
    expired_points: int = 0
    tier_upgrades: int = 0
    tier_downgrades: int = 0
    became_available: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _birthday_days(day: date) -> tuple[str, ...]:
    """The MM-DD birthdays celebrated on `day`."""
    days: tuple[str, ...] = (day.strftime("%m-%d"),)
    if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
        days += ("02-29",)
    return days


def run_nightly(ledger: Ledger, ruleset: Ruleset, as_of: date, now: datetime) -> NightlySummary:
    started = clock.monotonic()
    tz = shop_zone(ruleset)
    last = ledger.last_run("nightly")
    first = as_of
    if last is not None and date.fromisoformat(last) < as_of:
        first = max(date.fromisoformat(last) + timedelta(days=1), as_of - CATCH_UP)
    summary = NightlySummary(as_of.isoformat(), first.isoformat(), as_of.isoformat())
    if any(True for _ in rules_for(ruleset, "birthday")):
        day = first
        while day <= as_of:
            _birthdays(ledger, ruleset, day, now, summary)
            day += timedelta(days=1)
    start_of_day = datetime.combine(as_of, time(), tz)
    for customer_id in ledger.customer_ids():
        summary.customers += 1
        with ledger.transaction():
            expired = expire_due(ledger, ruleset, customer_id, as_of, now)
            before = ledger.last_tier(customer_id)
            membership.record_change(
                ledger, ruleset, customer_id, start_of_day, now, f"nightly {as_of}"
            )
            after = ledger.last_tier(customer_id)
        if expired:
            summary.expired_customers += 1
            summary.expired_points += expired
        if after != before and ruleset.tiers is not None:
            rank = [level.id for level in ruleset.tiers.levels]
            was = rank.index(before) if before else 0
            if after is not None and rank.index(after) > was:
                summary.tier_upgrades += 1
            else:
                summary.tier_downgrades += 1
    summary.became_available = ledger.points_released(first, as_of)
    summary.seconds = round(clock.monotonic() - started, 3)
    with ledger.transaction():
        ledger.add_run(
            "nightly", as_of.isoformat(), now, now, json.dumps(summary.to_json(), sort_keys=True)
        )
    return summary


def _birthdays(
    ledger: Ledger, ruleset: Ruleset, day: date, now: datetime, summary: NightlySummary
) -> None:
    tz = shop_zone(ruleset)
    at = datetime.combine(day, time(), tz)
    for customer in ledger.birthdays_on(_birthday_days(day)):
        if parse_utc(customer.enrolled_at).astimezone(tz).date() > day:
            continue
        set_at = ledger.birthday_set_at(customer.id)
        if set_at is not None and day - parse_utc(set_at).astimezone(tz).date() < BIRTHDAY_NOTICE:
            summary.birthdays_refused += 1
            continue
        request = EarnRequest(
            customer.id, "birthday", txn=f"birthday:{customer.id}:{day.year}", at=at
        )
        try:
            result = earn(ledger, ruleset, request, now)
        except Refused:  # the key was used with other content: already handled
            continue
        if not result.duplicate:
            summary.birthdays += 1
            summary.birthday_points += result.award.points
