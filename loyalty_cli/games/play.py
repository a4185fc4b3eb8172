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
from datetime import date, timedelta
from decimal import Decimal

from ..values import from_cents
from .model import Fact, Game, Games, Give, Goal, Paid, Play, line_rule


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
    walk: Walk | None = None  # a streak's periods as of `today`
    today: date | None = None

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
        rule = self.game.challenge
        if rule is not None and (self.today is None or not rule.start <= self.today <= rule.end):
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
    day), purchases, units, money spent, or points the rules earned; for a
    streak, its length times the streaks completed plus the current run; for a
    challenge, the goals' figures, each up to its target, added up."""
    if game.kind == "milestones" and game.metric == "points":
        return Decimal(earned)
    counted = [f for f in facts if counts(game, f)]
    if game.kind == "streak":
        walked = walk(game, counted, None)
        assert game.streak is not None
        return Decimal(walked.completed * game.streak.length + walked.run)
    if game.kind == "challenge":
        return sum((min(v, g.target) for v, g in _goals(game, counted)), Decimal(0))
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


@dataclass(frozen=True, slots=True)
class Walk:
    completed: int  # streaks completed
    run: int  # met periods in the current streak
    missed: int  # missed periods forgiven in it so far
    now: int  # counted purchases in the period of `today` (0 without one)


def period_start(game: Game, day: date) -> date:
    assert game.streak is not None
    if game.streak.period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next(game: Game, start: date) -> date:
    assert game.streak is not None
    if game.streak.period == "week":
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


def walk(game: Game, counted: list[Fact], today: date | None) -> Walk:
    """A streak game's periods in order, from the first with a counted purchase
    to the last (or to `today`'s, which is open: not missed while it lasts)."""
    rule = game.streak
    assert rule is not None
    per: dict[date, int] = {}
    for f in counted:
        start = period_start(game, f.day)
        per[start] = per.get(start, 0) + 1
    if not per:
        return Walk(0, 0, 0, 0)
    current = None if today is None else period_start(game, today)
    last = max(per) if current is None else max(max(per), current)
    completed = run = missed = 0
    p = min(per)
    while p <= last:
        if per.get(p, 0) >= rule.at_least:
            run += 1
            if run == rule.length:
                completed, run, missed = completed + 1, 0, 0
        elif p != current and run:
            missed += 1
            if missed > rule.forgive:
                run = missed = 0
        p = _next(game, p)
    return Walk(completed, run, missed, 0 if current is None else per.get(current, 0))


def _goals(game: Game, counted: list[Fact]) -> list[tuple[Decimal, Goal]]:
    """Each goal of a challenge with its figure over the purchases in its window."""
    rule = game.challenge
    assert rule is not None
    inside = [f for f in counted if rule.start <= f.day <= rule.end]
    out = []
    for goal in rule.goals:
        mine = [
            f
            for f in inside
            if (goal.categories is None or (f.category or "").casefold() in goal.categories)
            and (goal.skus is None or (f.sku or "").casefold() in goal.skus)
        ]
        if goal.metric == "purchases":
            value = Decimal(len(mine))
        elif goal.metric == "units":
            value = Decimal(sum(f.units for f in mine))
        else:
            value = from_cents(sum(f.cents for f in mine))
        out.append((value, goal))
    return out


def _rounds(paid: tuple[Paid, ...], game: str) -> set[int]:
    return {p.round for p in paid if p.game == game}


def _due(game: Game, total: Decimal) -> list[tuple[int, Give]]:
    """Every round the total reaches, with what it gives."""
    if game.kind == "stamps":
        return [(r, game.give) for r in range(1, int(total // game.stamps) + 1)]
    if game.kind == "streak":
        assert game.streak is not None
        return [(r, game.give) for r in range(1, int(total // game.streak.length) + 1)]
    if game.kind == "challenge":
        assert game.challenge is not None
        whole = sum((g.target for g in game.challenge.goals), Decimal(0))
        return [(1, game.give)] if total >= whole else []
    return [(i + 1, step.give) for i, step in enumerate(game.steps) if total >= step.at]


def standing(game: Game, play: Play, today: date | None = None) -> Standing:
    """Where the customer stands in `game` (for a streak or a challenge, as of
    `today`; None: as of their last purchase)."""
    total = measure(game, play.facts, play.earned)
    paid = _rounds(play.paid, game.id)
    if game.kind == "streak":
        assert game.streak is not None
        counted = [f for f in play.facts if counts(game, f)]
        w = walk(game, counted, today)
        length = Decimal(game.streak.length)
        return Standing(game, total, len(paid), Decimal(w.run), length, game.give, w, today)
    if game.kind == "challenge":
        assert game.challenge is not None
        counted = [f for f in play.facts if counts(game, f)]
        met = sum(v >= g.target for v, g in _goals(game, counted))
        goals = Decimal(len(game.challenge.goals))
        give = None if paid else game.give
        return Standing(game, total, len(paid), Decimal(met), goals, give, None, today)
    if game.kind == "stamps":
        card = Decimal(game.stamps)
        return Standing(game, total, len(paid), total - len(paid) * card, card, game.give)
    for i, step in enumerate(game.steps):
        if i + 1 not in paid:
            return Standing(game, total, len(paid), total, step.at, step.give)
    return Standing(game, total, len(paid), total, None, None)


def decide(
    games: Games, play: Play, fact: Fact | None, earned: int, tier: str | None = None
) -> tuple[list[Line], Play]:
    """The lines `fact` (None: no purchase or event, only points) pays, and the
    play after it and them. `earned` is the rules' points after it; `tier` the
    customer's tier (a challenge for some tiers pays only them). A round is paid
    on the fact that moves its game to it, once; a badge already held is not
    given again; a challenge pays only on a purchase inside its window."""
    facts = play.facts if fact is None else (*play.facts, fact)
    after = Play(facts, play.paid, earned)
    # What a fact that does not count for a game leaves: that game's total.
    after.memo.update(play.memo)
    if fact is not None:
        after.memo[""] = Decimal(max(_last_day(play), fact.day.toordinal()))
    lines: list[Line] = []
    held = set(play.badges)
    for game in games.games:
        if game.kind == "milestones" and game.metric == "points":
            before, total = Decimal(play.earned), Decimal(earned)
        elif fact is None or not counts(game, fact):
            continue
        else:
            before = _measured(game, play)
            total = after.memo[game.id] = _added(game, play, fact, before)
        rule = game.challenge
        # A challenge's goals stop at their targets: a purchase that counts may
        # still pay one reached while the customer was not in its tiers.
        if total == before and rule is None:
            continue
        if rule is not None and (
            fact is None
            or not rule.start <= fact.day <= rule.end
            or (rule.tiers is not None and tier not in rule.tiers)
        ):
            continue
        paid = _rounds(play.paid, game.id)
        for round_, give in _due(game, total):
            if round_ in paid:
                continue
            lines += _lines(games, game, round_, give, total, held)
    return lines, after


def _measured(game: Game, play: Play) -> Decimal:
    """measure(), remembered on the play (whose facts never change)."""
    known = play.memo.get(game.id)
    if known is None:
        known = play.memo[game.id] = measure(game, play.facts, play.earned)
    return known


def _last_day(play: Play) -> int:
    """The latest day of the play's facts (as an ordinal; 0 without any),
    remembered under the key "" (no game id is empty)."""
    known = play.memo.get("")
    if known is None:
        latest = max((f.day.toordinal() for f in play.facts), default=0)
        known = play.memo[""] = Decimal(latest)
    return int(known)


def _added(game: Game, play: Play, fact: Fact, before: Decimal) -> Decimal:
    """The game's total once `fact` (which counts for it) is added to `play`,
    whose total is `before`: worked out from the fact alone where the total is
    a plain sum, or when the fact is the latest and adds nothing (a stamp past
    the day's limit, a purchase in a streak's period already met); else counted
    again from every fact."""
    latest = _last_day(play) <= fact.day.toordinal()
    if game.kind == "milestones" or (game.kind == "stamps" and game.per_day is None):
        if game.kind == "stamps" or game.metric == "purchases":
            return before + 1
        if game.metric == "units":
            return before + fact.units
        return before + from_cents(fact.cents)
    if latest and game.kind in ("stamps", "streak"):
        # The facts on the fact's day (stamps) or in its period (a streak).
        if game.kind == "stamps":
            first, limit = fact.day, game.per_day
        else:
            assert game.streak is not None
            first, limit = period_start(game, fact.day), game.streak.at_least
        # Every fact, not only the last ones: a backdated fact may sit after them.
        already = sum(1 for f in play.facts if f.day >= first and counts(game, f))
        if limit is not None and already >= limit:
            return before
        if game.kind == "stamps":
            return before + 1
    if game.challenge is not None and not game.challenge.start <= fact.day <= game.challenge.end:
        return before
    return measure(game, (*play.facts, fact), play.earned)


def _lines(
    games: Games, game: Game, round_: int, give: Give, total: Decimal, held: set[str]
) -> list[Line]:
    rule = line_rule(game.id, round_)
    if game.kind == "stamps":
        why = f"{game.name}: card {round_} complete ({game.stamps} stamps)"
    elif game.streak is not None:
        run = game.streak
        why = f"{game.name}: streak {round_} complete ({run.length} {run.period}s in a row)"
    elif game.challenge is not None:
        why = f"{game.name}: challenge complete ({len(game.challenge.goals)} goals)"
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
    """Progress as a customer reads it: "7 of 9 stamps", "420 of 500 meals",
    "3-week streak (of 4), buy this week to keep it"."""
    game = s.game
    if game.kind == "streak":
        return _streak_words(s)
    if game.kind == "challenge":
        return _challenge_words(s)
    if game.kind == "stamps":
        if s.current < 0:
            return f"0 of {game.stamps} stamps ({int(-s.current)} to make up for refunds)"
        return f"{int(s.current)} of {game.stamps} stamps"
    if s.target is None:
        return f"every milestone reached ({_figure(game, s.total)})"
    if game.metric == "spend":
        return f"{s.current:,.2f} of {s.target:,.2f} spent"
    return f"{int(s.current):,} of {int(s.target):,} {game.noun}"


def _streak_words(s: Standing) -> str:
    rule, w = s.game.streak, s.walk
    assert rule is not None and w is not None
    unit = rule.period
    need = max(rule.at_least - w.now, 0)
    more = "buy" if rule.at_least == 1 else f"{need} more purchase{'s' if need > 1 else ''}"
    if w.run == 0:
        if w.now >= rule.at_least:
            return f"streak completed this {unit}; a new one starts next {unit}"
        return f"no streak yet: {more} this {unit} to start one (a {rule.length}-{unit} streak)"
    head = f"{w.run}-{unit} streak (of {rule.length})"
    if need == 0:
        return f"{head}, this {unit} done"
    spare = rule.forgive - w.missed
    if spare > 0:
        return f"{head}, {more} this {unit} to keep it going ({spare} missed {unit} forgiven)"
    return f"{head}, {more} this {unit} to keep it"


def _challenge_words(s: Standing) -> str:
    rule = s.game.challenge
    assert rule is not None and s.target is not None
    goals = f"{int(s.current)} of {int(s.target)} goals"
    if s.rounds:
        return f"completed ({goals})"
    if s.today is not None and s.today > rule.end:
        return f"closed on {rule.end}: {goals} reached"
    if s.today is not None and s.today < rule.start:
        return f"opens on {rule.start}"
    return f"{goals} reached, until {rule.end}"


def reach(s: Standing, prize: str) -> str:
    """What is within reach, in words: "2 stamps to go for Free coffee"."""
    left = s.left
    assert left is not None
    if s.game.kind in ("stamps", "streak", "challenge"):
        unit = {"stamps": "stamp", "challenge": "goal"}.get(s.game.kind)
        if unit is None:
            assert s.game.streak is not None
            unit = s.game.streak.period
        amount = f"{int(left)} {unit}{'' if left == 1 else 's'}"
    elif s.game.metric == "spend":
        amount = f"{left:,.2f} to spend"
    else:
        amount = f"{int(left):,} {s.game.noun}"
    return f"{s.game.name}: {amount} to go for {prize}"


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


def settled(
    games: Games, play: Play, first: date, last: date, tier: str | None = None
) -> tuple[int, int]:
    """What time alone settled over the days [first, last] (the nightly step's):
    (streaks broken: a period ended missed beyond what is forgiven, and the run
    went back to 0; challenges closed unfinished: their window ended with the
    customer taking part, in its tiers as of now, but short of the goals).
    Nothing is written for either:
    progress is worked out from the ledger, so a re-run counts the same."""
    broken = missed = 0
    for game in games.games:
        counted = [f for f in play.facts if counts(game, f)]
        if not counted:
            continue
        if game.streak is not None:
            day = period_start(game, first)
            if day < first:
                day = _next(game, day)
            while day <= last:
                if (
                    walk(game, counted, day - timedelta(days=1)).run
                    and not walk(game, counted, day).run
                ):
                    broken += 1
                day = _next(game, day)
        rule = game.challenge
        if rule is not None and first <= rule.end + timedelta(days=1) <= last:
            taking_part = measure(game, play.facts, play.earned) > 0 and (
                rule.tiers is None or tier in rule.tiers
            )
            if taking_part and not _rounds(play.paid, game.id):
                missed += 1
    return broken, missed
