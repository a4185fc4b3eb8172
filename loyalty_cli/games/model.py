"""The games' shapes as the rules file gives them, and the facts an account
carries for them. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

Metric = Literal["purchases", "spend", "points", "units"]
METRICS: tuple[Metric, ...] = ("purchases", "spend", "points", "units")

# The rule of a game's line: "game:" + game id + "#" + round. A line's round
# makes it unique per customer, game and round.
PREFIX = "game:"


def line_rule(game: str, round_: int) -> str:
    return f"{PREFIX}{game}#{round_}"


def is_game_line(rule: str | None) -> bool:
    return rule is not None and rule.startswith(PREFIX)


def parse_rule(rule: str | None) -> tuple[str, int] | None:
    """(game id, round) of a game line's rule; None for any other rule."""
    if rule is None or not rule.startswith(PREFIX) or "#" not in rule:
        return None
    game, _, number = rule[len(PREFIX) :].rpartition("#")
    if not number.isdigit():
        return None
    return game, int(number)


@dataclass(frozen=True, slots=True)
class Give:
    """What completing a round gives: points, a catalogue reward at no cost,
    badges; any of them, at least one."""

    points: int = 0
    reward: str | None = None
    badges: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Badge:
    id: str
    name: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Filter:
    """Which purchases (or events) count. Text compares without case."""

    on: str = "purchase"  # "purchase" or an event name (a visit)
    min_amount: int | None = None  # cents, on what is left of the purchase after refunds
    categories: frozenset[str] | None = None  # casefolded
    skus: frozenset[str] | None = None  # casefolded


@dataclass(frozen=True, slots=True)
class Step:
    """A milestone: a lifetime total to reach, and what reaching it gives."""

    at: Decimal  # in the metric's unit: purchases, units, points, or money
    give: Give


@dataclass(frozen=True, slots=True)
class Streak:
    """At least `at_least` counted purchases in each of `length` consecutive
    calendar weeks (from Monday) or months, shop-local; up to `forgive` missed
    periods inside one streak do not break it (they do not count toward it)."""

    period: Literal["week", "month"]
    at_least: int
    length: int
    forgive: int = 0


@dataclass(frozen=True, slots=True)
class Goal:
    """One goal of a challenge: a count of purchases or units, or money spent,
    over the purchases its own filter lets through (and the game's)."""

    metric: Metric  # purchases, spend or units
    target: Decimal
    categories: frozenset[str] | None = None
    skus: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Challenge:
    """Goals to reach inside a fixed window of shop days (both included), for
    everyone or for customers in `tiers` (their tier at the purchase)."""

    start: date
    end: date
    goals: tuple[Goal, ...]
    tiers: frozenset[str] | None = None


Kind = Literal["stamps", "milestones", "streak", "challenge"]


@dataclass(frozen=True, slots=True)
class Game:
    id: str
    name: str
    kind: Kind
    filter: Filter
    line: int  # where the file gives it, for messages
    give: Give = Give()
    description: str | None = None
    # stamps: a card of `stamps` (every nth: a card of n), then a new card
    stamps: int = 0
    per_day: int | None = None  # stamps one shop day can give
    # milestones: thresholds on a lifetime total, each paid once
    metric: Metric = "purchases"
    steps: tuple[Step, ...] = ()
    streak: Streak | None = None
    challenge: Challenge | None = None

    @property
    def noun(self) -> str:
        """What the game counts, in words."""
        if self.kind in ("stamps", "streak", "challenge"):
            return "stamps"
        if self.metric == "units":
            cats = sorted(self.filter.categories or self.filter.skus or ())
            return cats[0] if len(cats) == 1 else "units"
        return {"purchases": "purchases", "spend": "spent", "points": "points"}[self.metric]


@dataclass(frozen=True, slots=True)
class Games:
    """The `games:` and `badges:` sections."""

    games: tuple[Game, ...] = ()
    badges: tuple[Badge, ...] = ()

    @property
    def events(self) -> frozenset[str]:
        """The events (not purchases) some game counts."""
        return frozenset(g.filter.on for g in self.games if g.filter.on != "purchase")

    @property
    def details(self) -> bool:
        """Whether a game needs a purchase's category, sku or quantity."""
        return any(
            g.filter.categories is not None
            or g.filter.skus is not None
            or (g.kind == "milestones" and g.metric == "units")
            or (
                g.challenge is not None
                and any(
                    x.categories is not None or x.skus is not None or x.metric == "units"
                    for x in g.challenge.goals
                )
            )
            for g in self.games
        )

    @property
    def by_points(self) -> bool:
        """Whether a game counts points earned (a lifetime total the snapshot sums)."""
        return any(g.kind == "milestones" and g.metric == "points" for g in self.games)

    def badge(self, badge_id: str) -> Badge | None:
        return next((b for b in self.badges if b.id == badge_id), None)

    def game(self, game_id: str) -> Game | None:
        return next((g for g in self.games if g.id == game_id), None)


@dataclass(frozen=True, slots=True)
class Fact:
    """A purchase or a counted event, as games count it: `cents` is what is left
    of a purchase after its refunds (0 for an event)."""

    op: int
    day: date  # shop-local
    event: str  # "purchase" or the event's name
    cents: int = 0
    total: int = 0  # what the purchase came to before refunds
    category: str | None = None
    sku: str | None = None
    quantity: int | None = None

    @property
    def units(self) -> int:
        """Units still counted: a purchase's quantity (1 when not given), less the
        refunded share of it, rounded down."""
        quantity = 1 if self.quantity is None else self.quantity
        if self.event != "purchase" or self.total <= 0:
            return quantity
        return quantity * max(self.cents, 0) // self.total


@dataclass(frozen=True, slots=True)
class Paid:
    """A game line already in the ledger: a round's points, reward or badge."""

    game: str
    round: int
    kind: str  # earn (points), gift (a catalogue reward) or badge
    points: int
    what: str | None  # the reward's or the badge's id
    day: date


@dataclass(frozen=True, slots=True)
class Play:
    """What an account holds for the games: its facts in the order they happened,
    the game lines paid, and the points the rules (not the games) earned it, less
    refunds' clawbacks (for milestones on points)."""

    facts: tuple[Fact, ...] = ()
    paid: tuple[Paid, ...] = ()
    earned: int = 0
    # Each game's total over `facts` once worked out (games.play; the facts never
    # change, and points are not kept here), so an import row does not count a
    # customer's history again for every game.
    memo: dict[str, Decimal] = field(default_factory=dict, compare=False, repr=False)

    @property
    def badges(self) -> frozenset[str]:
        return frozenset(p.what for p in self.paid if p.kind == "badge" and p.what)

    def refunded(self, op: int, cents: int) -> Play:
        """After a refund of `cents` on the purchase `op`: it counts for what is left."""
        facts = tuple(
            Fact(f.op, f.day, f.event, f.cents - cents, f.total, f.category, f.sku, f.quantity)
            if f.op == op
            else f
            for f in self.facts
        )
        return Play(facts, self.paid, self.earned)
