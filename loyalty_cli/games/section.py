"""Reading the `games:` and `badges:` sections of the rules file.

The rules loader (rules.py) owns PyYAML and the reader that turns nodes into
values with file:line problems; this module only says what the sections hold,
through that reader, so every problem in them is reported like the rest of the
file's (every one at once, each at its line).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from functools import partial
from typing import Any, Protocol, TypeVar

from .model import METRICS, Badge, Challenge, Filter, Game, Games, Give, Goal, Step, Streak

T = TypeVar("T")

BADGE_KEYS = ("id", "name", "description")
GAME_KEYS = (
    "id",
    "name",
    "description",
    "stamps",
    "per_day",
    "milestones",
    "metric",
    "streak",
    "challenge",
    "on",
    "min_amount",
    "category",
    "sku",
    "give",
)
KINDS = ("stamps", "milestones", "streak", "challenge")
STREAK_KEYS = ("period", "at_least", "length", "forgive")
CHALLENGE_KEYS = ("from", "to", "tiers", "goals")
GOAL_KEYS = ("purchases", "spend", "units", "category", "sku")
GOAL_METRICS = ("purchases", "spend", "units")
MAX_LENGTH = 520  # ten years of weeks
MAX_GOALS = 20
GIVE_KEYS = ("points", "reward", "badge")
STEP_KEYS = ("at", "give")
MAX_GAMES = 100
MAX_BADGES = 1000
MAX_STEPS = 100
MAX_STAMPS = 1000  # a card of a thousand stamps is already no card
MAX_PER_DAY = 100
MAX_TOTAL = 10**12  # a milestone's threshold: purchases, units, points or money


class Reader(Protocol):
    """What the rules loader's reader offers (see rules._Reader)."""

    @property
    def Invalid(self) -> type[Exception]: ...

    def problem(self, node: Any, message: str) -> None: ...
    def fail(self, node: Any, message: str) -> Exception: ...
    def mapping(self, node: Any, known: tuple[str, ...], what: str) -> dict[str, Any]: ...
    def sequence(
        self, node: Any, what: str, limit: int = ..., fix: str = ..., noun: str = ...
    ) -> list[Any]: ...
    def optional(self, fields: dict[str, Any], key: str, read: Callable[[Any], T]) -> T | None: ...
    def required(
        self, fields: dict[str, Any], key: str, read: Callable[[Any], T], parent: Any, what: str
    ) -> T | None: ...
    def first_use(
        self, seen: dict[str, int], ident: str, what: str, where: Any, item: Any
    ) -> bool: ...
    def text(self, node: Any) -> str: ...
    def identifier(self, node: Any, what: str) -> str: ...
    def integer(self, node: Any, what: str, bound: Any) -> int: ...
    def decimal(self, node: Any, what: str, bound: Any) -> Decimal: ...
    def reward_ref(self, node: Any, rewards: Any) -> str: ...
    def is_mapping(self, node: Any) -> bool: ...
    def is_sequence(self, node: Any) -> bool: ...
    def line_of(self, node: Any) -> int: ...
    def bound(self, low: int, high: int, above_low: bool = False) -> Any: ...
    def day(self, node: Any, what: str) -> date: ...
    def tier_list(self, node: Any) -> frozenset[str]: ...


def read_badges(reader: Reader, node: Any) -> tuple[Badge, ...]:
    out: list[Badge] = []
    seen: dict[str, int] = {}
    for item in reader.sequence(node, "badges", MAX_BADGES, noun="badges"):
        try:
            f = reader.mapping(item, BADGE_KEYS, "a badge")
        except reader.Invalid:
            continue
        bid = reader.required(f, "id", lambda n: reader.identifier(n, "badge id"), item, "a badge")
        name = reader.required(f, "name", reader.text, item, f"badge '{bid}'")
        description = reader.optional(f, "description", reader.text)
        if bid is None or name is None:
            continue
        if reader.first_use(seen, bid, "badge", f["id"][1], item):
            out.append(Badge(bid, name, description))
    return tuple(out)


def read_games(reader: Reader, node: Any, rewards: Any, badges: tuple[Badge, ...]) -> Games:
    out: list[Game] = []
    seen: dict[str, int] = {}
    known = tuple(b.id for b in badges)
    for item in reader.sequence(
        node, "games", MAX_GAMES, "retire the games no longer played", "games"
    ):
        game = _game(reader, item, rewards, known)
        if game is not None and reader.first_use(seen, game.id, "game", item, item):
            out.append(game)
    return Games(tuple(out), badges)


def _game(reader: Reader, node: Any, rewards: Any, badges: tuple[str, ...]) -> Game | None:
    try:
        f = reader.mapping(node, GAME_KEYS, "a game")
    except reader.Invalid:
        return None
    gid = reader.required(f, "id", lambda n: reader.identifier(n, "game id"), node, "a game")
    what = f"game '{gid}'" if gid else "a game"
    name = reader.optional(f, "name", reader.text)
    description = reader.optional(f, "description", reader.text)
    kinds = [k for k in KINDS if k in f]
    if len(kinds) != 1:
        reader.problem(
            node,
            f"{what} needs exactly one of stamps (a card of N stamps; every Nth purchase is a "
            "card of N), milestones (a list of lifetime totals), streak or challenge"
            + (f" (it has {', '.join(kinds)})" if kinds else ""),
        )
    on = reader.optional(f, "on", lambda n: reader.identifier(n, "'on'")) or "purchase"
    for key in ("min_amount", "category", "sku"):
        if key in f and on != "purchase":
            reader.problem(
                f[key][0], f"'{key}' only applies to games on purchases, and {what} is on '{on}'"
            )
    min_amount = reader.optional(
        f, "min_amount", lambda n: reader.decimal(n, "min_amount", reader.bound(0, 10**12, True))
    )
    categories = reader.optional(f, "category", lambda n: _words(reader, n, "category"))
    skus = reader.optional(f, "sku", lambda n: _words(reader, n, "sku"))
    give = reader.optional(f, "give", lambda n: _give(reader, n, rewards, badges, what))
    stamps = per_day = None
    steps: tuple[Step, ...] = ()
    metric = "purchases"
    kind = kinds[0] if len(kinds) == 1 else None
    if kind == "stamps":
        stamps = reader.optional(
            f, "stamps", lambda n: reader.integer(n, "stamps", reader.bound(1, MAX_STAMPS))
        )
        per_day = reader.optional(
            f, "per_day", lambda n: reader.integer(n, "per_day", reader.bound(1, MAX_PER_DAY))
        )
        for key in ("metric",):
            if key in f:
                reader.problem(f[key][0], f"'{key}' goes with milestones, not with stamps")
        if "give" not in f:
            reader.problem(node, f"{what} is missing required key 'give' (what a full card gives)")
    elif kind == "milestones":
        metric = (
            reader.optional(f, "metric", lambda n: _choice(reader, n, "metric", METRICS))
            or "purchases"
        )
        if "per_day" in f:
            reader.problem(f["per_day"][0], "'per_day' goes with stamps, not with milestones")
        if metric == "points":
            for key in ("on", "min_amount", "category", "sku"):
                if key in f:
                    reader.problem(
                        f[key][0],
                        f"'{key}' does not apply to milestones on points (points earned by "
                        "the rules, however earned)",
                    )
        steps = (
            reader.optional(
                f, "milestones", lambda n: _steps(reader, n, metric, give, rewards, badges, what)
            )
            or ()
        )
    streak = challenge = None
    if kind in ("streak", "challenge"):
        for key in ("metric", "per_day"):
            if key in f:
                reader.problem(f[key][0], f"'{key}' does not go with a {kind}")
        if "give" not in f:
            reader.problem(node, f"{what} is missing required key 'give'")
        if kind == "streak":
            streak = reader.optional(f, "streak", lambda n: _streak(reader, n, what))
        else:
            challenge = reader.optional(f, "challenge", lambda n: _challenge(reader, n, what))
        if (streak or challenge) is None or give is None:
            return None
    if gid is None or kind is None or (kind == "stamps" and (stamps is None or give is None)):
        return None
    if kind == "milestones" and not steps:
        return None
    flt = Filter(
        on=on,
        min_amount=None if min_amount is None else int(min_amount * 100),
        categories=categories,
        skus=skus,
    )
    return Game(
        id=gid,
        name=name or gid,
        kind=kind,  # type: ignore[arg-type]
        filter=flt,
        line=reader.line_of(node),
        give=give or Give(),
        description=description,
        stamps=stamps or 0,
        per_day=per_day,
        metric=metric,  # type: ignore[arg-type]
        steps=steps,
        streak=streak,
        challenge=challenge,
    )


def _choice(reader: Reader, node: Any, what: str, options: tuple[str, ...]) -> str:
    value = reader.text(node)
    if value not in options:
        raise reader.fail(node, f"{what} must be one of {', '.join(options)}, got '{value}'")
    return value


def _words(reader: Reader, node: Any, what: str) -> frozenset[str]:
    """A text or a list of texts, compared without case."""
    if reader.is_sequence(node):
        items = [reader.text(n).casefold() for n in reader.sequence(node, what)]
        if not items:
            raise reader.fail(node, f"'{what}' needs at least one value")
        return frozenset(items)
    return frozenset([reader.text(node).casefold()])


def _give(reader: Reader, node: Any, rewards: Any, badges: tuple[str, ...], what: str) -> Give:
    f = reader.mapping(node, GIVE_KEYS, f"what {what} gives")
    if not f:
        raise reader.fail(node, f"'give' in {what} needs points, reward or badge (or several)")
    points = reader.optional(
        f, "points", lambda n: reader.integer(n, "points", reader.bound(0, 10**9))
    )
    reward = reader.optional(f, "reward", lambda n: reader.reward_ref(n, rewards))
    chosen = reader.optional(f, "badge", lambda n: _badges(reader, n, badges))
    if len(f) != sum(x is not None for x in (points, reward, chosen)):
        raise reader.Invalid()
    return Give(points or 0, reward, chosen or ())


def _badges(reader: Reader, node: Any, known: tuple[str, ...]) -> tuple[str, ...]:
    items = reader.sequence(node, "badge") if reader.is_sequence(node) else [node]
    out: list[str] = []
    for item in items:
        value = reader.text(item)
        if value not in known:
            raise reader.fail(
                item,
                f"unknown badge '{value}'; badges are: "
                + (", ".join(known) or "none (add a badges: section)"),
            )
        if value not in out:
            out.append(value)
    return tuple(out)


def _steps(
    reader: Reader,
    node: Any,
    metric: str,
    give: Give | None,
    rewards: Any,
    badges: tuple[str, ...],
    what: str,
) -> tuple[Step, ...]:
    """Milestones: a list of totals (each giving the game's `give`), or of
    {at: TOTAL, give: {...}}; in ascending order."""
    items = reader.sequence(node, "milestones", MAX_STEPS, noun="milestones")
    if not items:
        raise reader.fail(node, f"milestones of {what} must list at least one total")
    out: list[Step] = []
    for item in items:
        try:
            if reader.is_mapping(item):
                f = reader.mapping(item, STEP_KEYS, "a milestone")
                at = reader.required(
                    f, "at", lambda n: _total(reader, n, metric=metric), item, "a milestone"
                )
                own = reader.optional(f, "give", lambda n: _give(reader, n, rewards, badges, what))
                if at is None:
                    continue
            else:
                at, own = _total(reader, item, metric=metric), None
        except reader.Invalid:
            continue
        step_give = own or give
        if step_give is None:
            reader.problem(
                item, f"milestone {at} of {what} gives nothing: add give: to it or to the game"
            )
            continue
        if out and at <= out[-1].at:
            reader.problem(item, f"milestones of {what} must go up: {at} is not above {out[-1].at}")
            continue
        out.append(Step(at, step_give))
    return tuple(out)


def _total(reader: Reader, node: Any, *, metric: str) -> Decimal:
    if metric == "spend":
        value = reader.decimal(node, "a milestone", reader.bound(0, MAX_TOTAL, True))
        if value != value.quantize(Decimal("0.01")):
            raise reader.fail(node, f"a milestone on spend has at most 2 decimals, got {value}")
        return value.quantize(Decimal("0.01"))
    return Decimal(reader.integer(node, "a milestone", reader.bound(1, MAX_TOTAL)))


def _streak(reader: Reader, node: Any, what: str) -> Streak:
    f = reader.mapping(node, STREAK_KEYS, f"the streak of {what}")
    period = reader.required(
        f, "period", lambda n: _choice(reader, n, "period", ("week", "month")), node, "a streak"
    )
    at_least = reader.optional(
        f, "at_least", lambda n: reader.integer(n, "at_least", reader.bound(1, MAX_PER_DAY * 31))
    )
    length = reader.required(
        f, "length", lambda n: reader.integer(n, "length", reader.bound(1, MAX_LENGTH)), node,
        "a streak",
    )  # fmt: skip
    forgive = reader.optional(
        f, "forgive", lambda n: reader.integer(n, "forgive", reader.bound(0, MAX_LENGTH))
    )
    if period is None or length is None:
        raise reader.Invalid()
    if forgive is not None and forgive >= length:
        raise reader.fail(
            f["forgive"][1],
            f"forgive ({forgive}) must be less than length ({length}): a streak cannot be "
            "mostly missed periods",
        )
    return Streak(period, at_least or 1, length, forgive or 0)  # type: ignore[arg-type]


def _challenge(reader: Reader, node: Any, what: str) -> Challenge:
    f = reader.mapping(node, CHALLENGE_KEYS, f"the challenge of {what}")
    start = reader.required(f, "from", lambda n: reader.day(n, "from"), node, "a challenge")
    end = reader.required(f, "to", lambda n: reader.day(n, "to"), node, "a challenge")
    tiers = reader.optional(f, "tiers", reader.tier_list)
    goals = reader.required(f, "goals", lambda n: _goals(reader, n, what), node, "a challenge")
    if start is None or end is None or not goals:
        raise reader.Invalid()
    if end < start:
        raise reader.fail(f["to"][1], f"the challenge of {what} ends ({end}) before it starts")
    return Challenge(start, end, goals, tiers)


def _goals(reader: Reader, node: Any, what: str) -> tuple[Goal, ...]:
    items = reader.sequence(node, "goals", MAX_GOALS, noun="goals")
    if not items:
        raise reader.fail(node, f"the challenge of {what} needs at least one goal")
    out: list[Goal] = []
    for item in items:
        try:
            f = reader.mapping(item, GOAL_KEYS, "a goal")
        except reader.Invalid:
            continue
        metrics = [k for k in GOAL_METRICS if k in f]
        if len(metrics) != 1:
            reader.problem(item, "a goal needs exactly one of purchases, spend or units")
            continue
        metric = metrics[0]
        target = reader.optional(f, metric, partial(_total, reader, metric=metric))
        categories = reader.optional(f, "category", lambda n: _words(reader, n, "category"))
        skus = reader.optional(f, "sku", lambda n: _words(reader, n, "sku"))
        if target is not None:
            out.append(Goal(metric, target, categories, skus))  # type: ignore[arg-type]
    return tuple(out)
