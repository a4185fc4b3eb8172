"""The values every command parses at its edge: money, time and customer ids.

Money is `Decimal` from the moment it is parsed, stored as integer cents and
printed as a string. Times are aware datetimes, stored as UTC text to the
second. Kept apart from the dataclass-heavy models so that the quick commands
(balance, history) load only what they use.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation

from .errors import BadArgument

# The largest single amount we accept. A till never rings up a billion; a value
# that large is a typo or a unit mix-up (cents sent as units) and must not
# quietly mint points.
MAX_AMOUNT = Decimal("1000000000")
CENTS = Decimal("0.01")

CUSTOMER_ID_MAX = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- money -----------------------------------------------------------------


def parse_amount(text: str, *, what: str = "--amount", allow_zero: bool = False) -> Decimal:
    """Parse a money amount exactly; refuse anything a till would not print."""
    raw = text.strip()
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise BadArgument(
            f"{what} '{text}' is not a number (write it like 42.50, with a dot and no separators)"
        ) from None
    if not value.is_finite():
        raise BadArgument(f"{what} '{text}' is not a finite number (write it like 42.50)")
    if value < 0 or (value == 0 and not allow_zero):
        raise BadArgument(f"{what} '{text}' must be greater than zero")
    if value > MAX_AMOUNT:
        raise BadArgument(f"{what} '{text}' is larger than the maximum of {MAX_AMOUNT:,}")
    if value != value.quantize(CENTS):
        raise BadArgument(f"{what} '{text}' has more than two decimal places")
    return value.quantize(CENTS)


def to_cents(amount: Decimal) -> int:
    return int(amount.quantize(CENTS) * 100)


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENTS)


# --- time ------------------------------------------------------------------


def parse_at(text: str, shop_tz: tzinfo, *, what: str = "--at") -> datetime:
    """Parse an ISO 8601 date or time. A naive value is shop-local; a bare date
    means the start of that day in the shop. Returns an aware UTC datetime."""
    raw = text.strip()
    try:
        if len(raw) == 10:
            moment = datetime.combine(date.fromisoformat(raw), datetime.min.time())
        else:
            moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadArgument(
            f"{what} '{text}' is not an ISO 8601 time (write it like 2026-11-27T14:30 "
            "or 2026-11-27T14:30:00+01:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=shop_tz)
    return moment.astimezone(UTC).replace(microsecond=0)


def format_utc(moment: datetime) -> str:
    """The one stored form of a moment: UTC, to the second, sortable as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text)  # strptime would import _strptime: 1 ms


def parse_date(text: str, *, what: str = "--birthday") -> date:
    """A calendar date, YYYY-MM-DD."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadArgument(f"{what} '{text}' is not a date (write it like 1990-04-17)") from None


def check_customer_id(customer_id: str, *, what: str = "customer id") -> str:
    """Ids are stored exactly as given; we only refuse what cannot be typed back."""
    if not customer_id or customer_id != customer_id.strip():
        raise BadArgument(f"{what} '{customer_id}' is empty or has leading/trailing spaces")
    if _CONTROL.search(customer_id):
        raise BadArgument(f"{what} {customer_id!r} contains control characters")
    if len(customer_id) > CUSTOMER_ID_MAX:
        raise BadArgument(f"{what} is longer than {CUSTOMER_ID_MAX} characters")
    return customer_id
