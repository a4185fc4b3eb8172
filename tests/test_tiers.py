"""Tiers: qualifying by spend or points earned, windows, downgrade policies,
manual floors, the tier multiplier and the `tier` entries that record changes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_cli.models import TierLevel, TierPolicy
from loyalty_cli.tiers import Override, Qualifying, status

from .conftest import Shop

LEVELS = (
    TierLevel("bronze", "Bronze", Decimal(0)),
    TierLevel("silver", "Silver", Decimal(500), Decimal("1.25")),
    TierLevel("gold", "Gold", Decimal(1000), Decimal("1.5")),
)


def policy(window: str = "calendar_year", downgrade: str = "keep_next_window") -> TierPolicy:
    return TierPolicy("spend", window, downgrade, LEVELS)  # type: ignore[arg-type]


def spent(*items: tuple[str, int]) -> list[Qualifying]:
    return [Qualifying(date.fromisoformat(day), Decimal(amount)) for day, amount in items]


# --- pure ------------------------------------------------------------------------


def test_calendar_year_tier_is_kept_for_the_rest_of_the_year_and_all_of_the_next() -> None:
    history = spent(("2026-03-01", 600), ("2026-09-01", 500))
    assert status(policy(), history, date(2026, 2, 1)).level.id == "bronze"
    assert status(policy(), history, date(2026, 3, 1)).level.id == "silver"
    gold = status(policy(), history, date(2026, 9, 1))
    assert (gold.level.id, gold.until, gold.to_keep) == ("gold", date(2027, 12, 31), Decimal(0))
    next_year = status(policy(), history, date(2027, 6, 1))
    assert (next_year.level.id, next_year.value, next_year.until) == (
        "gold",
        Decimal(0),
        date(2027, 12, 31),
    )
    assert next_year.to_keep == Decimal(1000)  # spend 1,000 in 2027 to keep it through 2028
    assert status(policy(), history, date(2028, 1, 1)).level.id == "bronze"


def test_reevaluate_follows_the_current_window_and_can_drop_on_the_first_of_january() -> None:
    history = spent(("2026-03-01", 1200))
    assert status(policy(downgrade="reevaluate"), history, date(2026, 12, 31)).level.id == "gold"
    assert status(policy(downgrade="reevaluate"), history, date(2027, 1, 1)).level.id == "bronze"


def test_rolling_window_keeps_the_tier_twelve_months_from_the_day_last_reached() -> None:
    history = spent(("2026-03-15", 1000))
    rolling = policy(window="rolling_12_months")
    assert status(rolling, history, date(2027, 3, 14)).level.id == "gold"  # still in the window
    kept = status(rolling, history, date(2027, 3, 15))  # out of the window, kept by grace
    # The 12-month total last reached gold on 2027-03-14: kept for 12 months after it.
    assert (kept.level.id, kept.value, kept.until) == ("gold", Decimal(0), date(2028, 3, 13))
    assert status(rolling, history, date(2028, 3, 14)).level.id == "bronze"


def test_lifetime_never_downgrades_and_has_no_end_date() -> None:
    life = status(policy(window="lifetime"), spent(("2020-01-01", 700)), date(2030, 1, 1))
    assert (life.level.id, life.until, life.to_next) == ("silver", None, Decimal(300))


def test_a_manual_tier_is_a_floor_until_its_date() -> None:
    floor = Override("gold", date(2026, 6, 30), "opening VIP")
    held = status(policy(), spent(), date(2026, 6, 30), floor)
    assert (held.level.id, held.until, held.override) == ("gold", date(2026, 6, 30), floor)
    assert status(policy(), spent(), date(2026, 7, 1), floor).level.id == "bronze"
    # A floor never lowers a tier the customer earned.
    earned = status(
        policy(), spent(("2026-01-05", 1500)), date(2026, 2, 1), Override("silver", None, "x")
    )
    assert earned.level.id == "gold"


# --- through the CLI -------------------------------------------------------------

TIER_RULES = """\
program: {name: Shop, timezone: Europe/London}
points: {pending_days: %d}
tiers:
  metric: spend
  window: calendar_year
  levels:
    - {id: bronze, name: Bronze, threshold: 0}
    - {id: silver, name: Silver, threshold: 100, multiplier: 1.5, perks: Free coffee refills}
    - {id: gold, name: Gold, threshold: 300, multiplier: 2}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: gold-bonus, on: purchase, points: 7, when: {tier: gold}}
  - {id: welcome, on: enroll, points: 10}
"""


@pytest.fixture
def tiered(shop: Shop) -> Shop:
    shop.write_rules(TIER_RULES % 0)
    shop.ok("enroll", "C1", "--at", "2026-01-02")
    return shop


def tier_entries(shop: Shop) -> list[tuple[str, str]]:
    history = shop.ok("history", "C1")["entries"]
    return [(e["rule"], e["occurred_at"][:10]) for e in reversed(history) if e["kind"] == "tier"]


def test_crossing_a_threshold_writes_a_tier_entry_and_the_multiplier_shows_as_a_line(
    tiered: Shop,
) -> None:
    tiered.ok("earn", "C1", "--amount", "60", "--at", "2026-02-01")
    tiered.ok("earn", "C1", "--amount", "60", "--at", "2026-02-02")  # 120: silver
    assert tier_entries(tiered) == [("silver", "2026-02-02")]
    doc = tiered.ok("earn", "C1", "--amount", "20", "--at", "2026-02-03")
    assert doc["lines"] == [
        {"rule": "base", "points": 20, "detail": "20.00 x 1 per unit = 20"},
        {"rule": "tier:silver", "points": 10, "detail": "Silver tier x1.5 on 20 base points: +10"},
    ]
    status = tiered.ok("tier", "C1", "--at", "2026-02-03")
    assert status == {
        "customer_id": "C1",
        "as_of": "2026-02-03",
        "tier": "silver",
        "name": "Silver",
        "multiplier": "1.5",
        "perks": "Free coffee refills",
        "metric": "spend",
        "window": "calendar_year",
        "downgrade": "keep_next_window",
        "window_start": "2026-01-01",
        "qualifying_spend": "140.00",
        "qualifying_points": None,
        "next_tier": "gold",
        "to_next_spend": "160.00",
        "to_next_points": None,
        "tier_until": "2027-12-31",
        "to_keep_spend": "0.00",
        "to_keep_points": None,
        "override": None,
        "changed": False,
    }


def test_tier_only_rules_fire_for_that_tier(tiered: Shop) -> None:
    tiered.ok("earn", "C1", "--amount", "300", "--at", "2026-02-01")  # gold from here on
    doc = tiered.ok("earn", "C1", "--amount", "10", "--at", "2026-02-02")
    assert [line["rule"] for line in doc["lines"]] == ["base", "gold-bonus", "tier:gold"]


def test_a_refund_lowers_the_qualifying_spend_and_the_tier(tiered: Shop) -> None:
    tiered.ok("earn", "C1", "--amount", "150", "--txn", "R-1", "--at", "2026-02-01")
    assert tiered.ok("tier", "C1", "--at", "2026-02-01")["tier"] == "silver"
    tiered.ok("refund", "R-1", "--amount", "100", "--at", "2026-02-05")
    assert tiered.ok("tier", "C1", "--at", "2026-02-05")["tier"] == "bronze"
    assert tier_entries(tiered) == [("silver", "2026-02-01"), ("bronze", "2026-02-05")]


def test_tier_changes_are_recorded_in_date_order_when_purchases_arrive_out_of_it(
    tiered: Shop,
) -> None:
    """A backlog imported out of date order: a purchase dated before the last
    recorded change decides no change (as of its own day the customer was not yet
    silver, but recording 'down to Bronze on the 2nd' after 'up to Silver on the
    10th' would be a history that never happened). The next purchase dated after
    it decides with everything counted, in the ledger as in a fresh read."""
    tiered.ok("earn", "C1", "--amount", "120", "--at", "2026-02-10")  # silver
    doc = tiered.ok("earn", "C1", "--amount", "20", "--at", "2026-02-02")
    assert tier_entries(tiered) == [("silver", "2026-02-10")]
    assert [line["rule"] for line in doc["lines"]] == ["base"]  # as of the 2nd: bronze
    tiered.ok("earn", "C1", "--amount", "200", "--at", "2026-02-01")  # 340 by the 10th
    tiered.ok("earn", "C1", "--amount", "1", "--at", "2026-02-11")
    assert tier_entries(tiered) == [("silver", "2026-02-10"), ("gold", "2026-02-11")]


def test_spending_points_never_drops_a_tier(tiered: Shop) -> None:
    tiered.ok("earn", "C1", "--amount", "150", "--at", "2026-02-01")
    tiered.ok("redeem", "C1", "--points", "160", "--at", "2026-02-02")
    assert tiered.ok("tier", "C1", "--at", "2026-02-02")["tier"] == "silver"


def test_pending_purchases_do_not_qualify_until_the_window_ends(shop: Shop) -> None:
    shop.write_rules(TIER_RULES % 14)
    shop.ok("enroll", "C1", "--at", "2026-01-02")
    shop.ok("earn", "C1", "--amount", "150", "--at", "2026-02-01")
    assert shop.ok("tier", "C1", "--at", "2026-02-14")["tier"] == "bronze"
    assert shop.ok("tier", "C1", "--at", "2026-02-15")["tier"] == "silver"


def test_manual_tier_is_recorded_with_its_reason_and_ends_on_its_date(tiered: Shop) -> None:
    doc = tiered.ok(
        "tier",
        "C1",
        "--set",
        "gold",
        "--reason",
        "opening VIP",
        "--until",
        "2026-03-31",
        "--at",
        "2026-03-01",
    )
    assert (doc["tier"], doc["tier_until"], doc["changed"]) == ("gold", "2026-03-31", True)
    assert doc["override"] == {"tier": "gold", "until": "2026-03-31", "reason": "opening VIP"}
    assert tiered.ok("tier", "C1", "--at", "2026-04-01")["tier"] == "bronze"
    assert tier_entries(tiered) == [("gold", "2026-03-01")]


def test_tier_distribution(tiered: Shop) -> None:
    tiered.ok("enroll", "C2", "--at", "2026-01-02")
    tiered.ok("enroll", "C3", "--at", "2026-01-02")
    tiered.ok("earn", "C2", "--amount", "120", "--at", "2026-02-01")
    tiered.ok("earn", "C3", "--amount", "400", "--at", "2026-02-01")
    assert tiered.ok("tier", "--at", "2026-02-02") == {
        "as_of": "2026-02-02",
        "tiers": [
            {"tier": "bronze", "name": "Bronze", "customers": 1},
            {"tier": "silver", "name": "Silver", "customers": 1},
            {"tier": "gold", "name": "Gold", "customers": 1},
        ],
        "members": 3,
    }


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["tier", "C1", "--set", "platinum", "--reason", "x"], 2, "unknown tier 'platinum'"),
        (["tier", "C1", "--set", "gold"], 2, "--set needs --reason"),
        (["tier", "C9"], 1, "unknown customer 'C9'"),
        (["tier", "--set", "gold", "--reason", "x"], 2, "--set needs a CUSTOMER_ID"),
    ],
)
def test_bad_tier_commands(tiered: Shop, args: list[str], code: int, fragment: str) -> None:
    assert fragment in tiered.fails(code, *args)


def test_thresholds_that_do_not_ascend_are_caught_in_the_rules_file(shop: Shop) -> None:
    shop.write_rules(TIER_RULES.replace("threshold: 300", "threshold: 50") % 0)
    message = shop.fails(78, "rules", "check")
    assert "tier thresholds must ascend: 'gold' (50) is not above 'silver' (100)" in message
    assert f"{shop.rules}:9:" in message


@settings(max_examples=80, deadline=None)
@given(
    amounts=st.lists(
        st.tuples(st.dates(date(2024, 1, 1), date(2027, 12, 31)), st.integers(-500, 2000)),
        max_size=30,
    ),
    day=st.dates(date(2024, 1, 1), date(2028, 6, 30)),
    window=st.sampled_from(["calendar_year", "rolling_12_months", "lifetime"]),
)
def test_window_totals_equal_the_plain_sum(
    amounts: list[tuple[date, int]], day: date, window: str
) -> None:
    from loyalty_cli.tiers import Totals, window_start

    dated = [Qualifying(d, Decimal(a)) for d, a in amounts]
    start = window_start(window, day)
    plain = sum(
        (q.amount for q in dated if q.day <= day and (start is None or q.day >= start)),
        Decimal(0),
    )
    assert Totals(dated, window).at(day) == plain


@pytest.mark.sqlite_only
def test_tier_and_the_reports_agree_between_a_change_and_the_nightly_run(tiered: Shop) -> None:
    """Time alone (a manual floor running out) moves C2 down on 1 April; until
    nightly records it, `tier`, `report tiers` and `report customers` all show
    the tier as of the moment, not the last one recorded."""
    tiered.ok("enroll", "C2", "--at", "2026-01-02")
    tiered.ok("enroll", "C3", "--at", "2026-01-02")
    tiered.ok("earn", "C1", "--amount", "350", "--at", "2026-02-01")
    tiered.ok("earn", "C3", "--amount", "120", "--at", "2026-02-01")
    reason = ["--reason", "opening VIP", "--until", "2026-03-31", "--at", "2026-03-01"]
    tiered.ok("tier", "C2", "--set", "gold", *reason)

    def everywhere(day: str) -> dict[str, str]:
        counts = {t["tier"]: t["customers"] for t in tiered.ok("tier", "--as-of", day)["tiers"]}
        report = tiered.ok("report", "tiers", "--as-of", day)
        assert counts == {t["tier"]: t["customers"] for t in report["tiers"]}, day
        rows = tiered.ok("report", "customers", "--as-of", day)["rows"]
        alone = [
            tiered.ok("tier", r["customer_id"], "--as-of", f"{day}T23:59")["tier"] for r in rows
        ]
        assert alone == [r["tier"] for r in rows], day
        return {r["customer_id"]: tier for r, tier in zip(rows, alone, strict=True)}

    assert everywhere("2026-03-31") == {"C1": "gold", "C2": "gold", "C3": "silver"}
    # The floor has ended; nothing recorded it yet.
    assert everywhere("2026-04-02") == {"C1": "gold", "C2": "bronze", "C3": "silver"}
    tiered.ok("nightly", "--as-of", "2026-04-02")
    assert everywhere("2026-04-02") == {"C1": "gold", "C2": "bronze", "C3": "silver"}
    moves = tiered.ok("report", "tiers", "--from", "2026-04-01", "--to", "2026-04-02")
    assert moves["movements"] == [
        {"from_tier": "gold", "to_tier": "bronze", "changes": 1, "customers": 1}
    ]
