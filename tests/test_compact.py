"""Compacting an account for a replay (account.compact): what it folds away is
what no decision dated on or after the floor can tell apart. Each fold is
checked against the arithmetic that reads it, for every day from the floor on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

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
