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

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from ..values import from_cents
from .model import Fact, Facts, Game, Games, Give, Goal, Paid, Play, Streak, Tally, line_rule


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


def portion(game: Game, fact: Fact) -> tuple[int, int] | None:
    """(cents, units) of the fact that counts for the game; None when it does not
    count: another event, nothing left of a purchase (refunded; on a receipt with
    lines, no line the filter names left), or less than the game's minimum (on
    what the filter lets through)."""
    f = game.filter
    if fact.event != f.on:
        return None
    part = fact.part(f.categories, f.skus)
    if part is None or fact.event != "purchase":
        return part
    if part[0] <= 0 or (f.min_amount is not None and part[0] < f.min_amount):
        return None
    return part


def counts(game: Game, fact: Fact) -> bool:
    """Whether the fact counts for the game (a purchase for what is left of it)."""
    return portion(game, fact) is not None


def measure(game: Game, facts: Iterable[Fact], earned: int, base: Tally | None = None) -> Decimal:
    """The game's lifetime total over `facts` (after what facts folded into
    `base` counted): stamps (at most `per_day` a shop day), purchases, units,
    money spent, or points the rules earned; for a streak, its length times the
    streaks completed plus the current run; for a challenge, the goals' figures,
    each up to its target, added up."""
    if game.on_points:
        return Decimal(earned)
    return total(game, tally(game, facts, base))


def tally(game: Game, facts: Iterable[Fact], base: Tally | None = None) -> Tally:
    """The game's tally over `facts`, from `base` (what folded facts counted;
    None: from nothing): the facts that count, in the order of their days (a
    backdated fact takes its place; a fold leaves none dated before `base`)."""
    counted = [(f, p) for f in facts if (p := portion(game, f)) is not None]
    counted.sort(key=lambda fp: fp[0].day)
    out = base
    if out is None:
        out = Tally(goals=(0,) * len(game.challenge.goals)) if game.challenge else Tally()
    for fact, part in counted:
        added = add(game, out, fact, part)
        assert added is not None  # in day order, nothing is backdated
        out = added
    return out


def add(game: Game, tally: Tally, fact: Fact, part: tuple[int, int]) -> Tally | None:
    """The tally once `fact`, which counts for the game with `part` (cents,
    units), is added; None when it cannot be added in a few steps (a fact dated
    before the latest day or period the tally holds: then count again)."""
    kind = game.kind
    if kind == "milestones":
        metric = game.metric
        step = 1 if metric == "purchases" else part[1] if metric == "units" else part[0]
        return Tally(tally.value + step)
    if kind == "stamps":
        if game.per_day is None:
            return Tally(tally.value + 1)
        day = fact.day.toordinal()
        if day == tally.day:
            return Tally(tally.value, day, tally.counted + 1)
        if day < tally.day:
            return None
        return Tally(tally.value + min(tally.counted, game.per_day), day, 1)
    if kind == "challenge":
        rule = game.challenge
        assert rule is not None
        if not rule.start <= fact.day <= rule.end:
            return tally
        goals = tuple(
            value + _figure_of(game, goal, fact, part)
            for value, goal in zip(tally.goals, rule.goals, strict=True)
        )
        return Tally(goals=goals)
    streak = game.streak
    assert streak is not None
    start = _period(streak, fact.day)
    if start == tally.day:
        return Tally(0, start, tally.counted + 1, tally.completed, tally.run, tally.missed)
    if start < tally.day:
        return None
    if tally.day == 0:
        return Tally(0, start, 1)
    completed, run, missed = _fold(streak, tally.completed, tally.run, tally.missed, tally.counted)
    # The periods with no counted purchase between the latest and this one.
    gap = date.fromordinal(tally.day)
    while run:
        gap = _next(game, gap)
        if gap.toordinal() >= start:
            break
        completed, run, missed = _fold(streak, completed, run, missed, 0)
    return Tally(0, start, 1, completed, run, missed)


def _period(streak: Streak, day: date) -> int:
    """period_start(), as an ordinal, in integer steps (a purchase's hot path):
    ordinal 1 is a Monday."""
    ordinal = day.toordinal()
    if streak.period == "week":
        return ordinal - (ordinal + 6) % 7
    return ordinal - day.day + 1


def _count(game: Game, tally: Tally) -> int:
    """The total of a game other than a challenge, in whole units: stamps,
    purchases, units, cents (spend) or a streak's periods (total() is it in
    the game's own unit)."""
    if game.kind == "stamps":
        if game.per_day is None:
            return tally.value
        return tally.value + min(tally.counted, game.per_day)
    if game.kind == "milestones":
        return tally.value
    streak = game.streak
    assert streak is not None
    if tally.day == 0:
        return 0
    completed, run, _ = _fold(streak, tally.completed, tally.run, tally.missed, tally.counted)
    return completed * streak.length + run


def _fold(rule: Streak, completed: int, run: int, missed: int, count: int) -> tuple[int, int, int]:
    """A streak's (completed, run, missed) after one more period that ended
    with `count` counted purchases (walk's step)."""
    if count >= rule.at_least:
        run += 1
        if run == rule.length:
            return completed + 1, 0, 0
        return completed, run, missed
    if run:
        missed += 1
        if missed > rule.forgive:
            return completed, 0, 0
    return completed, run, missed


def _figure_of(game: Game, goal: Goal, fact: Fact, part: tuple[int, int]) -> int:
    """What a fact that counts for a challenge adds to one of its goals: a
    purchase, units or cents of what the goal's own filter lets through."""
    if goal.categories is not None or goal.skus is not None:
        mine = _both(game, goal, fact)
        if mine is None:
            return 0
        part = mine
    if goal.metric == "purchases":
        return 1
    return part[1] if goal.metric == "units" else part[0]


def _both(game: Game, goal: Goal, fact: Fact) -> tuple[int, int] | None:
    """The part of a fact a goal's filter lets through. On a receipt with lines,
    the lines both the goal's and the game's filters name."""
    return fact.part(goal.categories, goal.skus, (game.filter.categories, game.filter.skus))


def total(game: Game, tally: Tally) -> Decimal:
    """The game's total (what measure() gives) from its tally."""
    rule = game.challenge
    if rule is None:
        count = _count(game, tally)
        if game.kind == "milestones" and game.metric == "spend":
            return from_cents(count)
        return Decimal(count)
    return sum(
        (min(_goal_value(g, v), g.target) for v, g in zip(tally.goals, rule.goals, strict=True)),
        Decimal(0),
    )


def _goal_value(goal: Goal, value: int) -> Decimal:
    return from_cents(value) if goal.metric == "spend" else Decimal(value)


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


def walk(game: Game, counted: list[Fact], today: date | None, base: Tally | None = None) -> Walk:
    """A streak game's periods in order, from the first with a counted purchase
    (or from where the periods folded into `base` left it: its latest period,
    with its count) to the last (or to `today`'s, which is open: not missed
    while it lasts)."""
    rule = game.streak
    assert rule is not None
    per: dict[date, int] = {}
    completed = run = missed = 0
    if base is not None and base.day:
        per[date.fromordinal(base.day)] = base.counted
        completed, run, missed = base.completed, base.run, base.missed
    for f in counted:
        start = period_start(game, f.day)
        per[start] = per.get(start, 0) + 1
    if not per:
        return Walk(0, 0, 0, 0)
    current = None if today is None else period_start(game, today)
    last = max(per) if current is None else max(max(per), current)
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


def _goals(
    game: Game, facts: Iterable[Fact], base: Tally | None = None
) -> list[tuple[Decimal, Goal]]:
    """Each goal of a challenge with its figure over the purchases in its window
    (and what folded facts gave it)."""
    rule = game.challenge
    assert rule is not None
    figures = tally(game, facts, base).goals
    return [(_goal_value(g, v), g) for v, g in zip(figures, rule.goals, strict=True)]


def _rounds(paid: tuple[Paid, ...], game: str) -> set[int]:
    return {p.round for p in paid if p.game == game}


def _reached(game: Game, count: int) -> int:
    """How many rounds a total (_count's, or points) reaches; decide pays those
    not paid yet."""
    if game.kind == "stamps":
        return count // game.stamps
    if game.kind == "streak":
        assert game.streak is not None
        return count // game.streak.length
    if game.metric == "spend":
        return sum(1 for step in game.steps if count >= step.at * 100)
    return sum(1 for step in game.steps if count >= step.at)


def standing(game: Game, play: Play, today: date | None = None) -> Standing:
    """Where the customer stands in `game` (for a streak or a challenge, as of
    `today`; None: as of their last purchase)."""
    base = play.base.get(game.id)
    total = measure(game, play.facts, play.earned, base)
    paid = _rounds(play.paid, game.id)
    if game.kind == "streak":
        assert game.streak is not None
        counted = [f for f in play.facts if counts(game, f)]
        w = walk(game, counted, today, base)
        length = Decimal(game.streak.length)
        return Standing(game, total, len(paid), Decimal(w.run), length, game.give, w, today)
    if game.kind == "challenge":
        assert game.challenge is not None
        met = sum(v >= g.target for v, g in _goals(game, play.facts, base))
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
    facts = play.facts if fact is None else play.facts.plus(fact)
    # What a fact that does not count for a game leaves: that game's tally.
    after = Play(facts, play.paid, earned, dict(play.memo), play.base)
    lines: list[Line] = []
    held: set[str] | None = None  # the badges held, once a round pays
    for game in games.games:
        rule = game.challenge
        if game.on_points:
            before, now = play.earned, earned
        elif fact is None:
            continue
        else:
            part = portion(game, fact)
            if part is None:
                continue
            known = _tallied(games, game, play, after.memo)
            added = add(game, known, fact, part)
            if added is None:  # a backdated fact: count again
                added = tally(game, facts, play.base.get(game.id))
            after.memo[game.id] = added
            if rule is None:
                before, now = _count(game, known), _count(game, added)
            else:
                goals = total(game, added)
        if rule is None:
            # A total that did not move pays nothing; nor one short of a round.
            if now == before:
                continue
            reached = _reached(game, now)
            if not reached:
                continue
        else:
            # A challenge's goals stop at their targets: a purchase that counts
            # may still pay one reached while the customer was not in its tiers.
            if (
                fact is None
                or not rule.start <= fact.day <= rule.end
                or (rule.tiers is not None and tier not in rule.tiers)
                or goals < sum((g.target for g in rule.goals), Decimal(0))
            ):
                continue
            reached = 1
        paid = _rounds(play.paid, game.id)
        for round_ in range(1, reached + 1):
            if round_ in paid:
                continue
            if held is None:
                held = set(play.badges)
            give = game.steps[round_ - 1].give if game.kind == "milestones" else game.give
            lines += _lines(games, game, round_, give, held)
    return lines, after


def _tallied(games: Games, game: Game, play: Play, after: dict[str, Tally]) -> Tally:
    """tally(), remembered on the play (whose facts never change) and on the
    play after it (`after`, its memo): every game's at once, so that the history
    is built once and a play read again with its tallies kept (store.kept.Kept)
    never needs it."""
    known = play.memo.get(game.id)
    if known is None:
        for other in games.games:
            if other.id not in play.memo and not other.on_points:
                play.memo[other.id] = tally(other, play.facts, play.base.get(other.id))
                after.setdefault(other.id, play.memo[other.id])
        known = play.memo[game.id]
    return known


def _lines(games: Games, game: Game, round_: int, give: Give, held: set[str]) -> list[Line]:
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
        # "an 8-week", "an 11-week", "an 18-week": as the number is said
        said = str(rule.length)
        article = "an" if said[0] == "8" or said in ("11", "18") else "a"
        return f"no streak yet: {more} this {unit} to start one ({article} {said}-{unit} streak)"
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
        base = play.base.get(game.id)
        if not counted and base is None:
            continue
        if game.streak is not None:
            day = period_start(game, first)
            if day < first:
                day = _next(game, day)
            while day <= last:
                if (
                    walk(game, counted, day - timedelta(days=1), base).run
                    and not walk(game, counted, day, base).run
                ):
                    broken += 1
                day = _next(game, day)
        rule = game.challenge
        if rule is not None and first <= rule.end + timedelta(days=1) <= last:
            taking_part = measure(game, play.facts, play.earned, base) > 0 and (
                rule.tiers is None or tier in rule.tiers
            )
            if taking_part and not _rounds(play.paid, game.id):
                missed += 1
    return broken, missed


def fold(games: Games, play: Play, before: date) -> Play:
    """The play with its facts dated before `before` folded into each game's
    base tally, for a replay that knows no fact still to come is dated
    earlier, and that no refund to come changes them (the caller's `before`):
    what they count can no longer change, so only their tally is kept. A fact
    to come in the base's latest day or streak period adds to it as it would
    to the facts themselves (add). Every tally, measure, walk, standing and
    settlement comes out the same (tests/test_compact.py)."""
    old = [f for f in play.facts if f.day < before]
    if not old:
        return play
    base = dict(play.base)
    for game in games.games:
        if game.on_points:
            continue
        if any(counts(game, f) for f in old):
            base[game.id] = tally(game, old, base.get(game.id))
    facts = Facts(f for f in play.facts if f.day >= before)
    return Play(facts, play.paid, play.earned, play.memo, base)
