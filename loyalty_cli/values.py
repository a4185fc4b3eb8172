"""The values every command parses at its edge: money, points, time, ids and text.

Money is `Decimal` from the moment it is parsed, stored as integer cents and
printed as a string. Times are aware datetimes, stored as UTC text to the
second. Kept apart from the dataclass-heavy models so that the quick commands
(balance, history) load only what they use.

The ledger is append-only: what gets in can never be taken out. So every value
is bounded here, where it enters, and refused with a message that says how to
write it instead. The bounds (the README's "Limits" repeats them):
- dates and times from 1900-01-01 to 2999-12-31; a write dated more than a day
  after now is refused (a typo, or a till's clock gone wrong, would otherwise
  hold points in the future for good);
- money: plain decimals, 0 < amount <= 1,000,000,000, at most two decimals;
- points in one operation: at most 1,000,000,000 either way, so no sum of them
  can overflow SQLite's 64-bit integers;
- ids at most 200 characters, free text at most 1,000; both valid UTF-8 with no
  control characters.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal

from .errors import BadArgument

# The largest single amount we accept. A till never rings up a billion; a value
# that large is a typo or a unit mix-up (cents sent as units) and must not
# quietly mint points.
MAX_AMOUNT = Decimal("1000000000")
CENTS = Decimal("0.01")
MAX_POINTS = 1_000_000_000  # in one operation, credit or debit
MAX_QUANTITY = 1_000_000
MAX_ROWS = 1_000_000  # --limit, --top
EARLIEST = date(1900, 1, 1)
LATEST = date(2999, 12, 31)
# How far after now a write may be dated: tills and PCs disagree on the time by
# minutes, and a shop may book tomorrow morning's order tonight; a later date is
# a typo.
FUTURE_GRACE = timedelta(days=1)

CUSTOMER_ID_MAX = 200
TEXT_MAX = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # tabs and newlines allowed
# ASCII digits only: Decimal() also reads '1_000', '1e3' and Arabic-Indic digits.
_PLAIN_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)


# --- money -----------------------------------------------------------------


def parse_amount(text: str, *, what: str = "--amount", allow_zero: bool = False) -> Decimal:
    """Parse a money amount exactly; refuse anything a till would not print."""
    raw = text.strip()
    if len(raw) > 40 or not _PLAIN_DECIMAL.fullmatch(raw):
        if raw.lower() in ("nan", "inf", "infinity", "-inf", "+inf", "snan"):
            raise BadArgument(
                f"{what} '{text}' is not a finite number (write it like 42.50)", field=what
            )
        if raw.startswith("-") and _PLAIN_DECIMAL.fullmatch(raw[1:]):
            raise BadArgument(f"{what} '{text}' must be greater than zero", field=what)
        raise BadArgument(
            f"{what} {_shown(text)} is not a number (write it like 42.50, with a dot and "
            "no separators)",
            field=what,
        )
    value = Decimal(raw)
    if value == 0 and not allow_zero:
        raise BadArgument(f"{what} '{text}' must be greater than zero", field=what)
    if value > MAX_AMOUNT:
        raise BadArgument(
            f"{what} '{text}' is larger than the maximum of {MAX_AMOUNT:,}", field=what
        )
    if value != value.quantize(CENTS):
        raise BadArgument(f"{what} '{text}' has more than two decimal places", field=what)
    return value.quantize(CENTS)


def to_cents(amount: Decimal) -> int:
    return int(amount.quantize(CENTS) * 100)


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENTS)


def check_points(points: int, what: str) -> int:
    if abs(points) > MAX_POINTS:
        raise BadArgument(
            f"{what} {points} is beyond the limit of {MAX_POINTS:,} points for one operation",
            field=what,
        )
    return points


# --- time ------------------------------------------------------------------


def check_day(day: date, text: str, what: str) -> date:
    if not EARLIEST <= day <= LATEST:
        raise BadArgument(
            f"{what} '{text}' is out of range: dates run from {EARLIEST} to {LATEST}", field=what
        )
    return day


def parse_at(
    text: str, shop_tz: tzinfo, *, what: str = "--at", latest: datetime | None = None
) -> datetime:
    """Parse an ISO 8601 date or time. A naive value is shop-local; a bare date
    means the start of that day in the shop. Returns an aware UTC datetime.

    A local time the clocks skipped (spring forward) is refused; one they went
    through twice (fall back) is the first of the two. `latest`: the latest
    moment a write may be dated (now plus FUTURE_GRACE)."""
    raw = text.strip()
    try:
        if len(raw) == 10:
            moment = datetime.combine(date.fromisoformat(raw), datetime.min.time())
        else:
            moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadArgument(
            f"{what} {_shown(text)} is not an ISO 8601 time (write it like 2026-11-27T14:30 "
            "or 2026-11-27T14:30:00+01:00)",
            field=what,
        ) from None
    check_day(moment.date(), raw, what)
    if moment.tzinfo is None:
        local = moment.replace(tzinfo=shop_tz)
        if local.astimezone(UTC).astimezone(shop_tz).replace(tzinfo=None) != moment:
            raise BadArgument(
                f"{what} '{raw}' does not exist in the shop's time zone ({shop_tz}): the "
                "clocks went forward over it; give the time with its UTC offset",
                field=what,
            )
        moment = local
    at = moment.astimezone(UTC).replace(microsecond=0)
    if latest is not None and at > latest:
        raise BadArgument(
            f"{what} '{raw}' is in the future (after "
            f"{latest.astimezone(shop_tz).isoformat(timespec='seconds')}); "
            "record what happened, when it happened",
            field=what,
        )
    return at


def latest_write(now: datetime) -> datetime:
    """The latest business time a write made `now` may carry."""
    return now + FUTURE_GRACE


def format_utc(moment: datetime) -> str:
    """The one stored form of a moment: UTC, to the second, sortable as text
    (isoformat pads the year to four digits; strftime's %Y does not)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text)  # strptime would import _strptime: 1 ms


def parse_date(text: str, *, what: str = "--birthday", latest: date | None = None) -> date:
    """A calendar date, YYYY-MM-DD, within the bounds (and not after `latest`)."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        # The example fits the option: a birthday for --birthday, a day of now for
        # --as-of, --from, --to and --until; a time where a day is wanted is named.
        example = "1990-04-17" if what == "--birthday" else "2026-11-30"
        shape = " (a date only, without a time)" if "T" in text or ":" in text else ""
        raise BadArgument(
            f"{what} {_shown(text)} is not a date{shape} (write it like {example})",
            field=what,
        ) from None
    check_day(day, text.strip(), what)
    if latest is not None and day > latest:
        raise BadArgument(
            f"{what} '{text.strip()}' is in the future (today is {latest})", field=what
        )
    return day


# --- ids and text ------------------------------------------------------------


def check_text(value: str, what: str, limit: int = TEXT_MAX, *, lines: bool = False) -> str:
    """Text from a person or a till: bounded, printable, valid UTF-8. `lines`:
    free text (a name, a reason) may hold tabs and newlines; ids and codes not."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadArgument(f"{what} is not valid UTF-8 text", field=what) from None
    if (_CONTROL_BUT_LINES if lines else _CONTROL).search(value):
        raise BadArgument(f"{what} {value[:60]!r} contains control characters", field=what)
    if len(value) > limit:
        raise BadArgument(f"{what} is longer than {limit:,} characters", field=what)
    return value


def check_customer_id(customer_id: str, *, what: str = "customer id") -> str:
    """Ids are stored exactly as given; we only refuse what cannot be typed back."""
    check_text(customer_id, what, CUSTOMER_ID_MAX)
    if not customer_id or customer_id != customer_id.strip():
        raise BadArgument(
            f"{what} '{customer_id}' is empty or has leading/trailing spaces", field=what
        )
    return customer_id


def _shown(text: str) -> str:
    """A value quoted for an error message, cut short and made printable."""
    cut = text if len(text) <= 60 else text[:57] + "..."
    return repr(cut) if _CONTROL.search(cut) or not cut.isprintable() else f"'{cut}'"
