"""The games' decisions, pure: what a customer's facts add up to in each game,
and what a new purchase or event pays.

A round is paid once. Its number is fixed by the total that reaches it (the
3rd card at 27 stamps of 9, the 2nd milestone at its threshold), so the same
facts always give the same rounds, whatever order decisions ran in, and a
replay of the ledger gives the rounds it holds. A refunded purchase stops
counting (in part, for a partial refund), but a round already paid stays paid
and is never paid again: the customer makes up what the refund took before the
next round pays (see the README, "Games").
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..values import from_cents
from .model import Fact, Game, Games, Give, Paid, Play, line_rule


@dataclass(frozen=True, slots=True)
class Line:
    """A line a round pays: points, a catalogue reward or a badge."""

    rule: str
    game: str
    round: int
    points: int = 0
    reward: str | None = None
    badge: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a customer stands in one game."""

    game: Game
    total: Decimal  # the game's measure: stamps, purchases, units, points, money
    rounds: int  # rounds paid
    current: Decimal  # stamps on the current card (negative: stamps owed); milestones: total
    target: Decimal | None  # the next card's or milestone's; None: every milestone reached
    give: Give | None  # what the next round gives

    @property
    def left(self) -> Decimal | None:
        if self.target is None:
            return None
        left: Decimal = self.target - self.current
        return left if left > 0 else Decimal(0)

    @property
    def within_reach(self) -> bool:
        """One more step (a stamp, a purchase, a unit) or a fifth of the way left."""
        left = self.left
        if left is None or self.target is None or left == 0:
            return False
        if self.game.kind == "stamps" or self.game.metric in ("purchases", "units"):
            return left <= 1 or left * 5 <= self.target
        return left * 5 <= self.target  # money and points: a fifth of the way


def counts(game: Game, fact: Fact) -> bool:
    """Whether the fact counts for the game (a purchase for what is left of it)."""
    f = game.filter
    if fact.event != f.on:
        return False
    if fact.event == "purchase":
        if fact.cents <= 0:
            return False
        if f.min_amount is not None and fact.cents < f.min_amount:
            return False
    if f.categories is not None and (fact.category or "").casefold() not in f.categories:
        return False
    return f.skus is None or (fact.sku or "").casefold() in f.skus


def measure(game: Game, facts: tuple[Fact, ...], earned: int) -> Decimal:
    """The game's lifetime total over `facts`: stamps (at most `per_day` a shop
    day), purchases, units, money spent, or points the rules earned."""
    if game.kind == "milestones" and game.metric == "points":
        return Decimal(earned)
    counted = [f for f in facts if counts(game, f)]
    if game.kind == "stamps":
        if game.per_day is None:
            return Decimal(len(counted))
        per_day: dict[object, int] = {}
        for f in counted:
            per_day[f.day] = per_day.get(f.day, 0) + 1
        return Decimal(sum(min(n, game.per_day) for n in per_day.values()))
    if game.metric == "purchases":
        return Decimal(len(counted))
    if game.metric == "units":
        return Decimal(sum(f.units for f in counted))
    return from_cents(sum(f.cents for f in counted))


def _rounds(paid: tuple[Paid, ...], game: str) -> set[int]:
    return {p.round for p in paid if p.game == game}


def _due(game: Game, total: Decimal) -> list[tuple[int, Give]]:
    """Every round the total reaches, with what it gives."""
    if game.kind == "stamps":
        return [(r, game.give) for r in range(1, int(total // game.stamps) + 1)]
    return [(i + 1, step.give) for i, step in enumerate(game.steps) if total >= step.at]


def standing(game: Game, play: Play) -> Standing:
    total = measure(game, play.facts, play.earned)
    paid = _rounds(play.paid, game.id)
    if game.kind == "stamps":
        card = Decimal(game.stamps)
        return Standing(game, total, len(paid), total - len(paid) * card, card, game.give)
    for i, step in enumerate(game.steps):
        if i + 1 not in paid:
            return Standing(game, total, len(paid), total, step.at, step.give)
    return Standing(game, total, len(paid), total, None, None)


def decide(games: Games, play: Play, fact: Fact | None, earned: int) -> tuple[list[Line], Play]:
    """The lines `fact` (None: no purchase or event, only points) pays, and the
    play after it and them. `earned` is the rules' points after it. A round is
    paid on the fact that moves its game to it, once; a badge already held is
    not given again."""
    facts = play.facts if fact is None else (*play.facts, fact)
    after = Play(facts, play.paid, earned)
    lines: list[Line] = []
    held = set(play.badges)
    for game in games.games:
        total = measure(game, facts, earned)
        if total == measure(game, play.facts, play.earned):
            continue
        paid = _rounds(play.paid, game.id)
        for round_, give in _due(game, total):
            if round_ in paid:
                continue
            lines += _lines(games, game, round_, give, total, held)
    return lines, after


def _lines(
    games: Games, game: Game, round_: int, give: Give, total: Decimal, held: set[str]
) -> list[Line]:
    rule = line_rule(game.id, round_)
    if game.kind == "stamps":
        why = f"{game.name}: card {round_} complete ({game.stamps} stamps)"
    else:
        why = (
            f"{game.name}: milestone {round_} reached ({_figure(game, game.steps[round_ - 1].at)})"
        )
    out: list[Line] = []
    if give.points:
        out.append(Line(rule, game.id, round_, points=give.points, detail=why))
    if give.reward is not None:
        out.append(Line(rule, game.id, round_, reward=give.reward, detail=why))
    for badge in give.badges:
        if badge in held:
            continue
        held.add(badge)
        known = games.badge(badge)
        name = badge if known is None else known.name
        out.append(Line(rule, game.id, round_, badge=badge, detail=f"{why}: badge {name}"))
    return out


def _figure(game: Game, value: Decimal) -> str:
    """A total in the game's words: 500 meals, 120.00 spent, 7 stamps."""
    if game.kind == "milestones" and game.metric == "spend":
        return f"{value:,.2f} spent"
    return f"{int(value):,} {game.noun}"


def words(s: Standing) -> str:
    """Progress as a customer reads it: "7 of 9 stamps", "420 of 500 meals"."""
    game = s.game
    if game.kind == "stamps":
        if s.current < 0:
            return f"0 of {game.stamps} stamps ({int(-s.current)} to make up for refunds)"
        return f"{int(s.current)} of {game.stamps} stamps"
    if s.target is None:
        return f"every milestone reached ({_figure(game, s.total)})"
    if game.metric == "spend":
        return f"{s.current:,.2f} of {s.target:,.2f} spent"
    return f"{int(s.current):,} of {int(s.target):,} {game.noun}"


def reach(s: Standing, games: Games) -> str:
    """What is within reach, in words: "2 stamps to go for Free coffee"."""
    left = s.left
    assert left is not None and s.give is not None
    if s.game.kind == "stamps":
        step = "stamp" if left == 1 else "stamps"
        amount = f"{int(left)} {step}"
    elif s.game.metric == "spend":
        amount = f"{left:,.2f} to spend"
    else:
        amount = f"{int(left):,} {s.game.noun}"
    return f"{s.game.name}: {amount} to go for {gives(s.give, games)}"


def gives(give: Give, games: Games, rewards: dict[str, str] | None = None) -> str:
    """What a round gives, in words."""
    parts = []
    if give.reward is not None:
        parts.append((rewards or {}).get(give.reward, give.reward))
    if give.points:
        parts.append(f"{give.points:,} points")
    for badge in give.badges:
        known = games.badge(badge)
        parts.append(f"the {badge if known is None else known.name} badge")
    return " and ".join(parts)
