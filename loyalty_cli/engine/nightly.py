"""The nightly step's decisions for one customer: their birthday, and what time
alone changes (expiry, tier windows and grace periods, pending purchases
starting to count). nightly.py runs them for every customer."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from ..account import Account
from ..clock import day_start, shop_day, zone
from ..models import Ruleset
from ..tiers import TierStatus
from .book import Book, Outcome
from .lifecycle import expire_due
from .requests import EarnRequest
from .tiering import standing, tier_change

# Birthdays set or changed less than this long before they fall earn nothing
# that year (Smile's rule against setting one's birthday to today).
BIRTHDAY_NOTICE = timedelta(days=30)


def birthday_days(day: date) -> tuple[str, ...]:
    """The MM-DD birthdays celebrated on `day` (29 February on the 28th in other years)."""
    days: tuple[str, ...] = (day.strftime("%m-%d"),)
    if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
        days += ("02-29",)
    return days


def birthday(account: Account, ruleset: Ruleset, day: date) -> EarnRequest | None:
    """The birthday earn due on `day`, or None if the customer was not enrolled
    yet. Raises TooLate when the birthday was set too recently to count."""
    tz = zone(ruleset.program.timezone)
    profile = account.profile
    if shop_day(profile.enrolled_at, tz) > day:
        return None
    set_at = profile.birthday_set_at
    if set_at is not None and day - shop_day(set_at, tz) < BIRTHDAY_NOTICE:
        raise TooLate(profile.id)
    return EarnRequest(
        account.id, "birthday", txn=f"birthday:{account.id}:{day.year}", at=day_start(day, tz)
    )


def change_day(
    account: Account, ruleset: Ruleset, first: date, as_of: date
) -> tuple[date, TierStatus | None]:
    """The first day, from `first` on, since which the customer has stood at the
    tier they stand at on `as_of`, and their standing that day: when time alone
    moved them (a tier's hold ending, a window turning, a purchase starting to
    count), the day it happened, not the day a late nightly run noticed. A
    write on any of those days would have recorded the change itself, so the
    day is after them all."""
    day, now = as_of, standing(account, ruleset, as_of)
    while now is not None and day > first:
        before = standing(account, ruleset, day - timedelta(days=1))
        if before is None or before.level.id != now.level.id:
            break
        day, now = day - timedelta(days=1), before
    return day, now


class TooLate(Exception):
    """A birthday set or changed less than BIRTHDAY_NOTICE before it falls."""


def night(
    book: Book, account: Account, as_of: date, first: date | None = None
) -> tuple[int, str | None, str | None]:
    """Expire what is due and record a tier change, as of `as_of`: (points
    expired, tier recorded before, tier recorded after). `first`: the earliest
    day this run covers (a late run catches up from the day after the last);
    a tier change is dated on the day it happened within them."""
    ruleset = book.ruleset
    ids = book.ids()
    before = account.tier
    ops, account, expired = expire_due(account, ruleset, as_of, book.now, ids)
    day, current = change_day(account, ruleset, first or as_of, as_of)
    start = day_start(day, zone(ruleset.program.timezone))
    change, account, _ = tier_change(account, ruleset, start, f"nightly {as_of}", ids, current)
    if change is not None:
        ops.append(change)
    if ops:
        book.apply(Outcome(tuple(ops), (account,)))
    return expired, before, account.tier
