"""The games' shapes as the rules file gives them, and the facts an account
carries for them. Pure data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal, NamedTuple, overload

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
    def on_points(self) -> bool:
        """A milestone on points: it counts the rules' points earned (a play's
        `earned`), not its facts."""
        return self.kind == "milestones" and self.metric == "points"

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

    # Worked out once (a purchase's hot path asks for them).
    events: frozenset[str] = field(init=False, compare=False)  # the events some game counts
    details: bool = field(init=False, compare=False)  # a game needs category, sku or quantity
    by_points: bool = field(init=False, compare=False)  # a game counts the points earned

    def __post_init__(self) -> None:
        games = self.games
        events = frozenset(g.filter.on for g in games if g.filter.on != "purchase")
        details = any(
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
            for g in games
        )
        by_points = any(g.on_points for g in games)
        object.__setattr__(self, "events", events)
        object.__setattr__(self, "details", details)
        object.__setattr__(self, "by_points", by_points)

    def counted(self, points: int) -> int:
        """What `points` earned (or taken back) add to a play's `earned`: kept only
        for a milestone on points, as an account read sums them, else nothing."""
        return points if self.by_points else 0

    def badge(self, badge_id: str) -> Badge | None:
        return next((b for b in self.badges if b.id == badge_id), None)

    def game(self, game_id: str) -> Game | None:
        return next((g for g in self.games if g.id == game_id), None)


class Item(NamedTuple):
    """A line of a receipt of two or more lines, as games count it: what is left
    of it after the returns of that line. Category and SKU are casefolded."""

    number: int
    category: str | None
    sku: str | None
    quantity: int
    cents: int


class Fact(NamedTuple):
    """A purchase or a counted event, as games count it: `cents` is what is left
    of a purchase after its refunds (0 for an event). A receipt of two or more
    lines carries them in `lines` (then category, sku and quantity are None): a
    filter on a category or SKU counts the lines it names. A named tuple, like
    Item: an account read makes one per purchase of the customer's history."""

    op: int
    day: date  # shop-local
    event: str  # "purchase" or the event's name
    cents: int = 0
    total: int = 0  # what the purchase came to before refunds
    category: str | None = None
    sku: str | None = None
    quantity: int | None = None
    lines: tuple[Item, ...] = ()

    @property
    def units(self) -> int:
        """Units still counted: a purchase's quantity (1 when not given; a
        receipt's: its lines' units left), less the share of it refunded by
        amount, rounded down."""
        if self.lines:
            left = sum(line.cents for line in self.lines)
            units = sum(max(line.quantity, 0) for line in self.lines)
            return _share(units, self.cents, left)
        quantity = 1 if self.quantity is None else self.quantity
        if self.cents == self.total or self.event != "purchase" or self.total <= 0:
            return quantity
        return quantity * max(self.cents, 0) // self.total

    def part(
        self,
        categories: frozenset[str] | None,
        skus: frozenset[str] | None,
        also: tuple[frozenset[str] | None, frozenset[str] | None] = (None, None),
    ) -> tuple[int, int] | None:
        """(cents, units) of the fact that a category and SKU filter let
        through (casefolded sets; None: any), and `also` another one (a
        challenge goal's within its game's); None when they let nothing
        through. On a receipt with lines, the lines they name, less their
        returns (and their share of a refund by amount)."""
        if also[0] is None and also[1] is None:  # the common case, first
            if categories is None and skus is None:
                return self.cents, self.units
            if not self.lines:
                if categories is not None and (self.category or "").casefold() not in categories:
                    return None
                if skus is not None and (self.sku or "").casefold() not in skus:
                    return None
                return self.cents, self.units
        tests = [(c, k) for c, k in ((categories, skus), also) if c is not None or k is not None]
        if not tests:
            return self.cents, self.units
        if not self.lines:
            category, sku = (self.category or "").casefold(), (self.sku or "").casefold()
            for c, k in tests:
                if (c is not None and category not in c) or (k is not None and sku not in k):
                    return None
            return self.cents, self.units
        cents = units = 0
        hit = False
        for line in self.lines:
            if line.quantity <= 0:
                continue  # returned
            category, sku = line.category or "", line.sku or ""
            if any(
                (c is not None and category not in c) or (k is not None and sku not in k)
                for c, k in tests
            ):
                continue
            hit = True
            cents += line.cents
            units += line.quantity
        if not hit:
            return None
        left = sum(line.cents for line in self.lines)
        return _share(cents, self.cents, left), _share(units, self.cents, left)

    def returned(self, cents: int, lines: tuple[tuple[int, int, int], ...] = ()) -> Fact:
        """The fact after a refund of `cents`, which returned `lines` (number,
        units, cents) of it."""
        items = self.lines
        if lines and items:
            back: dict[int, tuple[int, int]] = {}
            for number, quantity, amount in lines:
                q, c = back.get(number, (0, 0))
                back[number] = (q + quantity, c + amount)
            items = tuple(
                Item(
                    x.number,
                    x.category,
                    x.sku,
                    x.quantity - back[x.number][0],
                    x.cents - back[x.number][1],
                )
                if x.number in back
                else x
                for x in items
            )
        return Fact(
            self.op,
            self.day,
            self.event,
            self.cents - cents,
            self.total,
            self.category,
            self.sku,
            self.quantity,
            items,
        )


def _share(value: int, left: int, lines: int) -> int:
    """`value` (of lines whose amounts add up to `lines`) cut to the share a
    refund by amount left of the receipt (`left`), rounded down."""
    if left >= lines:
        return value
    if lines <= 0 or left <= 0:
        return 0
    return value * left // lines


class Tally(NamedTuple):
    """A game's running figures over a play's facts (games.play), so that a new
    fact is added in a few steps instead of counting the history again.

    `value`: stamps of the days before `day` (with a daily limit), or the
    stamps, purchases, units or cents counted; a streak: periods before `day`
    folded into `completed`, `run` and `missed`. `day`: the ordinal of the
    latest shop day with a counted fact (stamps with a daily limit) or of the
    start of the latest period (a streak); `counted`: counted facts in it.
    `goals`: a challenge's figure per goal (purchases, units or cents).
    A named tuple: one is made for each purchase a game counts."""

    value: int = 0
    day: int = 0
    counted: int = 0
    completed: int = 0
    run: int = 0
    missed: int = 0
    goals: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Paid:
    """A game line already in the ledger: a round's points, reward or badge."""

    game: str
    round: int
    kind: str  # earn (points), gift (a catalogue reward) or badge
    points: int
    what: str | None  # the reward's or the badge's id
    day: date


class Facts(Sequence[Fact]):
    """A play's facts in the order they happened: those an account read found
    (built only when asked for: a purchase decided on a kept tally never needs
    them, and building one per purchase of the customer's history on every
    read was most of what games cost an import), then those decided since, one
    link each (`plus` copies nothing). Immutable."""

    __slots__ = ("_all", "_before", "_last", "_n", "_read")

    def __init__(
        self,
        facts: Iterable[Fact] = (),
        *,
        read: Callable[[], tuple[Fact, ...]] | None = None,
    ) -> None:
        self._read = read
        self._all: tuple[Fact, ...] | None = None if read is not None else tuple(facts)
        self._before: Facts | None = None
        self._last: Fact | None = None
        self._n = None if self._all is None else len(self._all)

    @property
    def length(self) -> int | None:
        """How many facts there are, when that is known without building them."""
        return self._n

    @property
    def built(self) -> bool:
        """Whether the facts are at hand without building any."""
        node: Facts | None = self
        while node is not None:
            if node._all is not None:
                return True
            node = node._before
        return False

    def plus(self, fact: Fact) -> Facts:
        """These facts and `fact` after them."""
        after = Facts.__new__(Facts)
        after._read = after._all = None
        after._before, after._last = self, fact
        after._n = None if self._n is None else self._n + 1
        return after

    def _facts(self) -> tuple[Fact, ...]:
        if self._all is None:
            later: list[Fact] = []
            node = self
            while node._all is None and node._before is not None:
                assert node._last is not None
                later.append(node._last)
                node = node._before
            if node._all is None:
                assert node._read is not None
                node._all, node._read = node._read(), None
                node._n = len(node._all)
            later.reverse()
            self._all = (*node._all, *later)
            # The links behind are no longer needed: let them go, so that
            # building every play of a long chain keeps one copy, not one each.
            self._before = self._last = None
            self._n = len(self._all)
        return self._all

    def __iter__(self) -> Iterator[Fact]:
        return iter(self._facts())

    def __len__(self) -> int:
        return len(self._facts())

    @overload
    def __getitem__(self, index: int) -> Fact: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Fact]: ...
    def __getitem__(self, index: int | slice) -> Fact | Sequence[Fact]:
        return self._facts()[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Facts | tuple):
            return self._facts() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._facts())

    def __repr__(self) -> str:
        return f"Facts({self._facts()!r})" if self.built else "Facts(<not built>)"


@dataclass(frozen=True, slots=True)
class Play:
    """What an account holds for the games: its facts in the order they happened,
    the game lines paid, and the points the rules (not the games) earned it, less
    refunds' clawbacks (for milestones on points)."""

    facts: Facts = field(default_factory=Facts)
    paid: tuple[Paid, ...] = ()
    earned: int = 0
    # Each game's tally over `facts` once worked out (games.play; the facts never
    # change, and points are not kept here), so an import row does not count a
    # customer's history again for every game: a new fact adds to it.
    memo: dict[str, Tally] = field(default_factory=dict, compare=False, repr=False)
    # By game id: the tally of the facts a replay folded away (games.play.fold;
    # nothing else folds). Every count starts from it.
    base: dict[str, Tally] = field(default_factory=dict)

    @property
    def badges(self) -> frozenset[str]:
        return frozenset(p.what for p in self.paid if p.kind == "badge" and p.what)

    def refunded(self, op: int, cents: int, lines: tuple[tuple[int, int, int], ...] = ()) -> Play:
        """After a refund of `cents` on the purchase `op`, returning `lines`
        (number, units, cents) of it: it counts for what is left."""
        facts = Facts(f.returned(cents, lines) if f.op == op else f for f in self.facts)
        return Play(facts, self.paid, self.earned, base=self.base)
