"""The shared nouns of the programme, as frozen dataclasses: rules and their
conditions, rewards, activities, customer state and awards.

Points are `int`; money is `Decimal`. Floats never touch either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from typing import Literal

from .clock import Period
from .errors import Location
from .games.model import Games

# --- rules -----------------------------------------------------------------

Rounding = Literal["floor", "nearest", "ceil"]
ExpireAt = Literal["end_of_month", "same_day"]
Shortfall = Literal["within_balance", "allow_negative"]
TierMetric = Literal["spend", "points"]
TierWindow = Literal["calendar_year", "rolling_12_months", "lifetime"]
Downgrade = Literal["keep_next_window", "reevaluate"]
Scope = Literal["line", "receipt"]


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
    exclude: bool = False  # a line it matches earns nothing and leaves the basket
    # Where it is judged on a receipt of several lines: on each line (its amount,
    # category, sku, quantity) or once on the receipt (the basket after exclusions).
    scope: Scope = "receipt"

    @property
    def is_multiplier(self) -> bool:
        return self.multiply is not None


@dataclass(frozen=True)
class Reward:
    id: str
    name: str
    cost: int
    tiers: frozenset[str] | None = None  # only customers in these tiers may redeem it
    limit: Cap | None = None  # redemptions per customer per period (count only)
    available_from: date | None = None  # shop-local dates, inclusive
    available_to: date | None = None


@dataclass(frozen=True)
class Program:
    name: str
    currency: str
    timezone: str
    rounding: Rounding = "floor"
    point_value: Decimal | None = None  # what one point is worth, for the liability
    locale: str | None = None  # how people read figures and money: en_GB, de_DE...


@dataclass(frozen=True)
class PointsPolicy:
    """The points lifecycle: holding, expiry and what a refund may take back."""

    pending_days: int = 0  # purchase points are held this many days (the return window)
    expire_after_months: int | None = None  # None: points never expire
    expire_at: ExpireAt = "end_of_month"
    refund_shortfall: Shortfall = "within_balance"


@dataclass(frozen=True)
class TierLevel:
    id: str
    name: str
    threshold: Decimal  # the qualifying total that reaches it (money or points)
    multiplier: Decimal = Decimal(1)  # on purchase points, as its own award line
    perks: str | None = None


@dataclass(frozen=True)
class TierPolicy:
    metric: TierMetric
    window: TierWindow
    downgrade: Downgrade
    levels: tuple[TierLevel, ...]  # ascending thresholds, the first at 0

    def level(self, tier_id: str) -> TierLevel:
        return next(level for level in self.levels if level.id == tier_id)


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
    points: PointsPolicy = PointsPolicy()
    tiers: TierPolicy | None = None
    games: Games | None = None  # the games: and badges: sections
    cases: tuple[RuleCase, ...] = ()  # the file's `tests:` section (`loyalty rules test`)

    @cached_property
    def rules_by_event(self) -> dict[str, tuple[Rule, ...]]:
        """The rules for each kind of activity, in evaluation order: priority,
        highest first, then file order. Worked out once: an import asks per row."""
        by_event: dict[str, list[Rule]] = {}
        for rule in sorted(self.rules, key=lambda r: (-r.priority, r.order)):
            by_event.setdefault(rule.on, []).append(rule)
        return {event: tuple(rules) for event, rules in by_event.items()}

    @cached_property
    def limited_by_event(self) -> dict[str, tuple[Rule, ...]]:
        """Per kind of activity, its rules with a cap or a budget: the only ones
        whose usage a decision needs to count."""
        return {
            event: tuple(r for r in rules if r.cap is not None or r.budget is not None)
            for event, rules in self.rules_by_event.items()
        }

    @cached_property
    def capped_rules(self) -> frozenset[str]:
        """Rules with a per-customer cap: their award lines are an account's usage."""
        return frozenset(r.id for r in self.rules if r.cap is not None)

    @property
    def events(self) -> frozenset[str]:
        """Event names that at least one rule rewards or a game counts (purchase
        excluded)."""
        played = frozenset() if self.games is None else self.games.events
        return frozenset(r.on for r in self.rules if r.on != "purchase") | played


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
    # A receipt of two or more lines (then amount is their total and category,
    # sku and quantity are None). A one-line purchase keeps its line in the fields
    # above, and evaluates exactly as a purchase always has.
    lines: tuple[Line, ...] = ()
    store: str | None = None  # a purchase's store or till


@dataclass(frozen=True)
class Line:
    """One line of a receipt: what was sold, how many, and for how much after
    its discount (`amount`, which is what earns)."""

    amount: Decimal
    quantity: int = 1
    sku: str | None = None
    category: str | None = None


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
    tier: TierLevel | None = None
    usage: Mapping[str, RuleUsage] = field(default_factory=dict)  # cap window, per rule
    budget_used: Mapping[str, int] = field(default_factory=dict)  # all customers, per rule
    badges: frozenset[str] = frozenset()  # the badges the customer holds


@dataclass(frozen=True)
class AwardLine:
    rule: str
    points: int
    detail: str
    reward: str | None = None
    trimmed: bool = False  # a cap or a budget cut it short: its detail must be kept
    badge: str | None = None  # a game's line that gives a badge (kept as a `badge` entry)


@dataclass(frozen=True)
class Skip:
    """A rule that gave no line: it did not fire, or (`fired`) it fired for 0 points."""

    rule: str
    reason: str
    fired: bool = False


@dataclass(frozen=True)
class Award:
    """The evaluator's answer: total points, one line per rule that fired,
    and why each other rule for this kind of activity did not."""

    points: int
    lines: tuple[AwardLine, ...]
    skipped: tuple[Skip, ...] = ()
    # A receipt of several lines: what each line earned, by rule. `lines` above
    # holds one line per rule, summed over the receipt's lines and its own part.
    items: tuple[ItemAward, ...] = ()
    # With --explain: each game the activity moved, (game id, progress in words after it).
    games: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ItemAward:
    """What one receipt line earned: its points by rule (multipliers and the tier
    applied to this line's own base), or the rule that excluded it."""

    number: int  # 1-based, in the receipt's order
    line: Line
    points: int
    lines: tuple[AwardLine, ...] = ()
    skipped: tuple[Skip, ...] = ()
    excluded_by: str | None = None


# --- rule tests ------------------------------------------------------------


@dataclass(frozen=True)
class RuleCase:
    """One case of a rules file's `tests:` section: a customer as they stand, one
    activity, and the points each rule is expected to give for it (`loyalty rules
    test`). A refund case's activity is the purchase it refunds, then the refund."""

    name: str
    location: Location
    at: datetime  # when the activity happens (UTC)
    event: str  # "purchase", "refund", or an event name
    expect: Mapping[str, int]  # rule id (or tier:ID, or "refund") -> points
    expect_location: Location
    amount: Decimal | None = None  # a purchase's (a refund: the purchase's)
    category: str | None = None
    sku: str | None = None
    quantity: int | None = None
    lines: tuple[Line, ...] = ()  # a receipt of two or more lines (amount: their total)
    refund: Decimal | None = None  # a refund: the amount refunded (None: all of it)
    tier: str | None = None  # the customer's tier before it (a floor, as set by hand)
    enrolled: datetime | None = None  # None: a year before `at`
    purchases: int = 0  # earlier purchases
    spend: Decimal = Decimal("0.00")  # what they came to, net of refunds
    balance: int = 0  # points held before it
    referred: bool = False
    used: Mapping[str, RuleUsage] = field(default_factory=dict)  # caps: used in the period
    budget_used: Mapping[str, int] = field(default_factory=dict)  # budgets: given so far
    total: int | None = None  # the expected total, when given
