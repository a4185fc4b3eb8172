"""Compacting an account for a replay (account.compact): what it folds away is
what no decision dated on or after the floor can tell apart. Each fold is
checked against the arithmetic that reads it, for every day from the floor on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from loyalty_cli import account as accounts
from loyalty_cli import lots
from loyalty_cli.account import Account, Profile, Use
from loyalty_cli.clock import zone
from loyalty_cli.lots import Lot
from loyalty_cli.models import TierLevel, TierPolicy
from loyalty_cli.tiers import Qualifying, folded, oldest_needed, status

DAY0 = date(2026, 1, 1)
TZ = zone("Europe/London")

# Lots as an account holds them: in spending order, ids unique.
lot_specs = st.lists(
    st.tuples(
        st.integers(0, 40),  # earned, days after DAY0
        st.integers(0, 5),  # pending days
        st.sampled_from([None, 20, 45, 60]),  # expires, days after earning
        st.integers(1, 50),  # points
    ),
    max_size=12,
)


def make_lots(specs: list[tuple[int, int, int | None, int]]) -> tuple[Lot, ...]:
    made = []
    for n, (earned, pending, expires, points) in enumerate(specs, 1):
        on = DAY0 + timedelta(days=earned)
        gone = None if expires is None else on + timedelta(days=expires)
        made.append(Lot(n, on, on + timedelta(days=pending), gone, points))
    return tuple(lots.spending_order(made))


def spend(held: tuple[Lot, ...], today: date, points: int) -> tuple[Lot, ...]:
    taken = dict(lots.draw(lots.spendable(held, today), points))
    return tuple(
        lot._replace(remaining=lot.remaining - taken.get(lot.id, 0))
        for lot in held
        if lot.remaining > taken.get(lot.id, 0)
    )


@settings(max_examples=150, deadline=None)
@given(
    specs=lot_specs,
    floor=st.integers(0, 50),
    spends=st.lists(st.tuples(st.integers(0, 30), st.integers(1, 80)), max_size=4),
    keep=st.sets(st.integers(1, 12), max_size=3),
)
def test_merged_lots_hold_and_pay_the_same_on_every_day_from_the_floor(
    specs: list[tuple[int, int, int | None, int]],
    floor: int,
    spends: list[tuple[int, int]],
    keep: set[int],
) -> None:
    held = make_lots(specs)
    first = DAY0 + timedelta(days=floor)
    merged = lots.merged(held, first, frozenset(keep))
    assert sum(x.remaining for x in merged) == sum(x.remaining for x in held)
    assert {x.id for x in held if x.id in keep} <= {x.id for x in merged}
    # Spends on days from the floor on, in any order of days: after each, both
    # hold the same on every day from the floor on.
    for after, points in spends:
        day = first + timedelta(days=after)
        held, merged = spend(held, day, points), spend(merged, day, points)
        for n in range(0, 70, 3):
            today = first + timedelta(days=n)
            assert lots.split(merged, today) == lots.split(held, today)
            assert sum(x.remaining for x in lots.overdue(merged, today)) == sum(
                x.remaining for x in lots.overdue(held, today)
            )


def test_merged_lots_keep_apart_what_a_later_day_can_tell_apart() -> None:
    d = DAY0
    pending = Lot(2, d, d + timedelta(days=20), d + timedelta(days=90), 5)
    held = (
        Lot(1, d, d, d + timedelta(days=90), 10),
        pending,
        Lot(3, d, d + timedelta(days=20), d + timedelta(days=90), 7),  # same day as 2
        Lot(4, d, d, d + timedelta(days=120), 3),  # another expiry
        Lot(5, d, d, d + timedelta(days=120), 4),
        Lot(6, d, d, d + timedelta(days=120), 6),  # a refund to come draws on it
    )
    merged = lots.merged(held, d + timedelta(days=10), frozenset({6}))
    assert merged == (
        Lot(1, d, d, d + timedelta(days=90), 10),
        pending._replace(remaining=12),
        Lot(4, d, d, d + timedelta(days=120), 7),
        Lot(6, d, d, d + timedelta(days=120), 6),
    )
    # From day 20 on, lots 1 to 3 can no longer be told apart.
    assert lots.merged(held, d + timedelta(days=20), frozenset({6}))[0].remaining == 22


LEVELS = (
    TierLevel("bronze", "Bronze", Decimal(0)),
    TierLevel("silver", "Silver", Decimal(100)),
    TierLevel("gold", "Gold", Decimal(300)),
)


@settings(max_examples=150, deadline=None)
@given(
    amounts=st.lists(st.tuples(st.integers(0, 1500), st.integers(-80, 200)), max_size=25),
    floors=st.lists(st.integers(0, 1600), min_size=1, max_size=3),
    later=st.lists(st.tuples(st.integers(0, 400), st.integers(-80, 200)), max_size=6),
    window=st.sampled_from(["calendar_year", "rolling_12_months", "lifetime"]),
    downgrade=st.sampled_from(["keep_next_window", "reevaluate"]),
)
# Silver reached, then lowered by a refund: the year's peak still holds the tier.
@example([(10, 150), (20, -100)], [30], [], "calendar_year", "keep_next_window")
@example([(10, 150), (20, -100)], [30], [(5, 10)], "lifetime", "keep_next_window")
def test_folded_tier_inputs_give_every_later_day_the_same_tier(
    amounts: list[tuple[int, int]],
    floors: list[int],
    later: list[tuple[int, int]],
    window: str,
    downgrade: str,
) -> None:
    """Folded at one day after another, with amounts (refunds too) added on days
    from each floor on, as a replay adds them."""
    policy = TierPolicy("spend", window, downgrade, LEVELS)  # type: ignore[arg-type]
    held = tuple(sorted(Qualifying(DAY0 + timedelta(days=d), a) for d, a in amounts))
    kept = held
    for floor in sorted(floors):
        first = DAY0 + timedelta(days=floor)
        kept = folded(kept, oldest_needed({window}, first), first, window)
        assert len({q.day for q in kept}) == len(kept)
        for n in (0, 1, 30, 200, 364, 365, 366, 700, 800):
            today = first + timedelta(days=n)
            assert status(policy, kept, today) == status(policy, held, today)
        for d, a in later:
            added = Qualifying(first + timedelta(days=d), a)
            held = tuple(sorted((*held, added)))
            kept = tuple(sorted((*kept, added)))


@settings(max_examples=100, deadline=None)
@given(
    uses=st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 900), st.integers(0, 30)),
        max_size=20,
    ),
    floor=st.integers(0, 950),
)
def test_folded_uses_count_the_same_in_every_later_period(
    uses: list[tuple[str, int, int]], floor: int
) -> None:
    at0 = datetime(2025, 12, 29, 9, tzinfo=UTC)  # a Monday, days before a new year
    account = Account(
        Profile("C", at0),
        uses=tuple(Use(key, at0 + timedelta(hours=h * 7), p) for key, h, p in uses),
    )
    first = (at0 + timedelta(hours=floor * 7)).date()
    compacted = accounts.compact(account, first, frozenset(), set())
    assert len(compacted.uses) <= len(account.uses)
    for hours in (0, 5, 30, 200, 1000, 3000, 9000):
        at = datetime(first.year, first.month, first.day, tzinfo=UTC) + timedelta(hours=hours)
        for per in ("day", "week", "month", "year", "lifetime"):
            for key in ("a", "b"):
                assert accounts.usage(compacted, key, per, at, TZ) == accounts.usage(
                    account, key, per, at, TZ
                )


# Games of every kind (test_whatif.py replays a history under them too).
GAMES = """\
badges: [{id: regular, name: Regular}]
games:
  - {id: card, stamps: 3, per_day: 1, min_amount: 5, give: {points: 15, badge: regular}}
  - {id: plain, stamps: 4, give: {points: 5}}
  - {id: spender, milestones: [50, 200], metric: spend, give: {points: 30}}
  - {id: bagged, milestones: [3, 9], metric: units, category: bags, give: {points: 7}}
  - {id: weekly, streak: {period: week, at_least: 1, length: 3, forgive: 1}, give: {points: 25}}
  - {id: monthly, streak: {period: month, at_least: 2, length: 2}, give: {points: 40}}
  - id: spring
    challenge:
      from: 2026-02-01
      to: 2026-05-31
      goals: [{purchases: 4}, {spend: 100, category: bags}]
    give: {points: 60}
"""
GAMES_RULES = (
    """\
program: {name: G, timezone: Europe/London}
earn: [{id: base, on: purchase, points_per_unit: 1}]
"""
    + GAMES
)

game_facts = st.lists(
    st.tuples(
        st.integers(0, 400),  # day
        st.integers(100, 9000),  # cents
        st.sampled_from([None, "bags"]),
        st.integers(1, 3),  # quantity
    ),
    max_size=30,
)


@settings(max_examples=100, deadline=None)
@given(
    facts=game_facts,
    later=game_facts,
    cuts=st.lists(st.integers(0, 420), min_size=1, max_size=4),
    monthly=st.booleans(),
)
def test_folded_game_facts_count_stand_settle_and_decide_the_same_on_every_later_day(
    facts: list[tuple[int, int, str | None, int]],
    later: list[tuple[int, int, str | None, int]],
    cuts: list[int],
    monthly: bool,
) -> None:
    """games.play.fold keeps each game's tally of the facts before a day, any
    day (a week or a month streak's period may straddle it), and drops them:
    every measure, standing and nightly settlement from that day on is the
    same, and so is what later facts (none dated before it) pay."""
    from loyalty_cli.games import play as games
    from loyalty_cli.games.model import Fact, Facts, Play
    from loyalty_cli.rules import parse_rules

    text = GAMES_RULES if monthly else GAMES_RULES.replace("  - {id: monthly", "  # {id: monthly")
    book = parse_rules(text).games
    assert book is not None
    whole = Play(
        Facts(
            Fact(n, DAY0 + timedelta(days=d), "purchase", c, c, cat, None, q)
            for n, (d, c, cat, q) in enumerate(facts, 1)
        ),
        earned=17,
    )
    play = whole
    first = DAY0
    for cut in sorted(cuts):
        first = DAY0 + timedelta(days=cut)
        play = games.fold(book, play, first)
        for game in book.games:
            base = play.base.get(game.id)
            assert games.measure(game, play.facts, 17, base) == games.measure(game, whole.facts, 17)
            for n in (0, 6, 7, 31, 90):
                today = first + timedelta(days=n)
                assert games.standing(game, play, today) == games.standing(game, whole, today)
        end = first + timedelta(days=40)
        assert games.settled(book, play, first, end) == games.settled(book, whole, first, end)
    assert len(play.facts) <= len(whole.facts)
    # Later facts, none dated before the last cut: the same lines, the same totals.
    for n, (d, c, cat, q) in enumerate(later, len(facts) + 1):
        fact = Fact(n, first + timedelta(days=d // 4), "purchase", c, c, cat, None, q)
        paid, play = games.decide(book, play, fact, 17)
        expected, whole = games.decide(book, whole, fact, 17)
        assert paid == expected
        play = Play(play.facts, play.paid + _paid(paid, fact), 17, play.memo, play.base)
        whole = Play(whole.facts, whole.paid + _paid(expected, fact), 17, whole.memo)
    for game in book.games:
        assert games.standing(game, play, first + timedelta(days=120)) == games.standing(
            game, whole, first + timedelta(days=120)
        )


def _paid(lines: list[Any], fact: Any) -> tuple[Any, ...]:
    from loyalty_cli.games.model import Paid

    return tuple(
        Paid(x.game, x.round, "badge" if x.badge else "earn", x.points, x.badge, fact.day)
        for x in lines
    )
