"""Time as the shop sees it: its local day, calendar periods, and the stored forms.

The clock itself is read once, by the command line (`cli.now`); everything
here is arithmetic on the moments it is given. A moment is an aware datetime;
it is stored as whole seconds since 1970 (UTC), and a shop-local day as days
since 1970, so the ledger compares and indexes small integers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["day", "week", "month", "year", "lifetime"]
_EPOCH_DAY = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def stored_day(seconds: int, tz: tzinfo) -> date:
    """shop_day of a stored time, worked out once per quarter of an hour: a
    zone's offset is a whole number of quarters, so a quarter lies in one day,
    and an account read turns thousands of stored times into days."""
    return _quarter_day(seconds // 900, tz)


@lru_cache(maxsize=1 << 15)
def _quarter_day(quarter: int, tz: tzinfo) -> date:
    return shared(shop_day(from_stamp(quarter * 900), tz))


def shop_time(moment: datetime, tz: tzinfo) -> str:
    """A moment as a person in the shop reads it: local, with its UTC offset, in the
    form --at takes back (2026-11-27T14:30:00+00:00)."""
    return moment.astimezone(tz).isoformat(timespec="seconds")


def shop_day(moment: datetime, tz: tzinfo) -> date:
    """The one definition of "the day something happened": its date in the shop."""
    return moment.astimezone(tz).date()


def day_start(day: date, tz: tzinfo) -> datetime:
    """00:00 of a shop-local day, as an aware moment."""
    return datetime.combine(day, time(), tz)


def period_bounds(per: Period, at: datetime, tz: tzinfo) -> tuple[datetime | None, datetime | None]:
    """The calendar period containing `at`, judged on the shop's local date, as
    aware [start, end) bounds; (None, None) for lifetime. Weeks start on Monday."""
    if per == "lifetime":
        return (None, None)
    local = shop_day(at, tz)
    start: date
    end: date
    if per == "day":
        start, end = local, local + timedelta(days=1)
    elif per == "week":
        start = local - timedelta(days=local.weekday())
        end = start + timedelta(days=7)
    elif per == "month":
        start = local.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        start, end = (
            local.replace(month=1, day=1),
            local.replace(year=local.year + 1, month=1, day=1),
        )
    return (day_start(start, tz), day_start(end, tz))


# --- stored forms -------------------------------------------------------------------


def stamp(moment: datetime) -> int:
    """A moment as stored: whole seconds since 1970-01-01T00:00Z."""
    return int(moment.timestamp())


def from_stamp(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def iso(seconds: int) -> str:
    """A stored moment as printed in JSON: UTC, to the second."""
    return from_stamp(seconds).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def day_number(day: date) -> int:
    """A shop-local day as stored: days since 1970-01-01."""
    return day.toordinal() - _EPOCH_DAY


@lru_cache(maxsize=4096)
def from_day_number(number: int) -> date:
    # Cached: a ledger's lots share few days, and snapshots read many lots.
    return date.fromordinal(number + _EPOCH_DAY)


def shared(day: date) -> date:
    """The one `date` object for this day. An import keeps thousands of accounts,
    each with a few dates per lot; lots share few days, so sharing the objects
    keeps memory flat as the file grows."""
    return from_day_number(day.toordinal() - _EPOCH_DAY)
