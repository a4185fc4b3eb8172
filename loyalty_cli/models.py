"""The shared nouns of the domain, as frozen dataclasses, plus the parsing of
the two values every command takes at its edge: money and time.

Money is `Decimal` from the moment it is parsed, stored as integer cents, and
printed as a string. Points are `int`. Floats never touch either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Literal

from .errors import BadArgument, Location

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
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def parse_birthday(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadArgument(f"--birthday '{text}' is not a date (write it like 1990-04-17)") from None


def check_customer_id(customer_id: str, *, what: str = "customer id") -> str:
    """Ids are stored exactly as given; we only refuse what cannot be typed back."""
    if not customer_id or customer_id != customer_id.strip():
        raise BadArgument(f"{what} '{customer_id}' is empty or has leading/trailing spaces")
    if _CONTROL.search(customer_id):
        raise BadArgument(f"{what} {customer_id!r} contains control characters")
    if len(customer_id) > CUSTOMER_ID_MAX:
        raise BadArgument(f"{what} is longer than {CUSTOMER_ID_MAX} characters")
    return customer_id


# --- rules -----------------------------------------------------------------

Rounding = Literal["floor", "nearest", "ceil"]
Period = Literal["day", "week", "month", "year", "lifetime"]
FieldType = Literal["decimal", "int", "str", "bool"]


@dataclass(frozen=True)
class Compare:
    """`field op value`, e.g. amount gte 50, category in [shoes, bags]."""

    field: str
    op: str
    value: object


@dataclass(frozen=True)
class All:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Any_:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Compare | All | Any_ | Not


@dataclass(frozen=True)
class Cap:
    """At most `count` firings and/or `points` points per customer per period."""

    per: Period
    count: int | None = None
    points: int | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    on: str  # "purchase" or an event name
    order: int  # position in the file: the tie-break after priority
    location: Location
    points: int | None = None
    points_per_unit: Decimal | None = None
    multiply: Decimal | None = None
    reward: str | None = None
    when: Condition | None = None
    window_from: date | None = None
    window_to: date | None = None
    weekdays: frozenset[int] | None = None  # 0 = Monday
    min_amount: Decimal | None = None
    priority: int = 0
    stop: bool = False
    cap: Cap | None = None
    budget: int | None = None
    description: str | None = None

    @property
    def is_multiplier(self) -> bool:
        return self.multiply is not None


@dataclass(frozen=True)
class Reward:
    id: str
    name: str
    cost: int


@dataclass(frozen=True)
class Program:
    name: str
    currency: str
    timezone: str
    rounding: Rounding = "floor"


@dataclass(frozen=True)
class Ruleset:
    """A validated rules file. `version` is the sha256 of its text, which the
    ledger stores once and stamps on every entry the rules produce."""

    program: Program
    rules: tuple[Rule, ...]
    rewards: Mapping[str, Reward]
    source: str
    text: str
    version: str

    @property
    def events(self) -> frozenset[str]:
        """Event names that at least one rule rewards (purchase excluded)."""
        return frozenset(r.on for r in self.rules if r.on != "purchase")


# --- activity and awards ---------------------------------------------------


@dataclass(frozen=True)
class Activity:
    """What a customer did: a purchase or a named event, at a UTC moment."""

    customer_id: str
    event: str  # "purchase", "enroll", "referral", "review", ...
    at: datetime
    amount: Decimal | None = None
    category: str | None = None
    sku: str | None = None
    quantity: int | None = None
    referred: str | None = None  # on a referral: who was referred


@dataclass(frozen=True)
class RuleUsage:
    """How much a rule has already given, in the window its cap or budget counts."""

    count: int = 0
    points: int = 0


@dataclass(frozen=True)
class CustomerState:
    """What the evaluator may know about a customer before this activity."""

    customer_id: str
    enrolled_at: datetime
    balance: int = 0
    purchases: int = 0
    spend: Decimal = Decimal("0.00")
    referred_by: str | None = None
    usage: Mapping[str, RuleUsage] = field(default_factory=dict)  # cap window, per rule
    budget_used: Mapping[str, int] = field(default_factory=dict)  # all customers, per rule


@dataclass(frozen=True)
class AwardLine:
    rule: str
    points: int
    detail: str
    reward: str | None = None


@dataclass(frozen=True)
class Skip:
    rule: str
    reason: str


@dataclass(frozen=True)
class Award:
    """The evaluator's answer: total points, one line per rule that fired,
    and why each other rule for this kind of activity did not."""

    points: int
    lines: tuple[AwardLine, ...]
    skipped: tuple[Skip, ...] = ()


# --- the ledger's records --------------------------------------------------


@dataclass(frozen=True)
class Customer:
    id: str
    enrolled_at: str  # stored UTC form, see format_utc
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    birthday: str | None = None
    referred_by: str | None = None


@dataclass(frozen=True)
class Entry:
    """One immutable ledger row: a signed number of points for one customer."""

    id: int
    op_id: int
    customer_id: str
    kind: str  # enroll, earn, redeem, adjust, gift (later: expire, refund, tier)
    points: int
    amount_cents: int | None
    occurred_at: str
    recorded_at: str
    rule: str | None
    reward: str | None
    reason: str | None
    txn: str | None
    ruleset: str | None
    detail: str | None


@dataclass(frozen=True)
class Operation:
    """A recorded fact: an enrollment, a purchase, an event, a redemption or an
    adjustment. `request` is the canonical content that an idempotency key
    (`txn`) is compared against on a retry."""

    id: int
    txn: str | None
    kind: str
    customer_id: str
    occurred_at: str
    request: str
