"""`loyalty transfer`: points moved between members as their own operation, each
lot keeping its expiry; idempotent with --txn; refused where it would overdraw."""

from __future__ import annotations

import pytest

from .conftest import Shop

RULES = """\
program: {name: Test Shop, currency: GBP, timezone: Europe/London}
points: {expire_after_months: 2, expire_at: same_day, pending_days: 14}
tiers:
  metric: points
  window: lifetime
  downgrade: reevaluate
  levels:
    - {id: bronze, name: Bronze, threshold: 0}
    - {id: gold, name: Gold, threshold: 150}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: welcome, on: enroll, points: 100}
  - {id: review, on: review, points: 50}
"""


@pytest.fixture
def family(shop: Shop) -> Shop:
    shop.write_rules(RULES)
    shop.clock("2026-03-20")
    shop.ok("enroll", "mum", "--at", "2026-01-10")  # 100, gone 03-11... spent below
    shop.ok("enroll", "kid", "--at", "2026-02-01")  # 100, gone 04-02
    shop.ok("earn", "kid", "--event", "review", "--at", "2026-03-01")  # 50, gone 05-02
    shop.ok("earn", "kid", "--amount", "30", "--at", "2026-03-19")  # 30 pending to 04-02
    return shop


def test_points_move_with_their_own_expiry(family: Shop) -> None:
    doc = family.ok("transfer", "kid", "mum", "120", "--reason", "family pool", "--txn", "T1")
    assert (doc["points"], doc["from_balance"], doc["to_balance"]) == (120, 60, 120)
    # soonest expiry first, as a redemption draws them, each lot keeping its day
    assert doc["lots"] == [
        {"expires_on": "2026-04-02", "points": 100},
        {"expires_on": "2026-05-02", "points": 20},
    ]
    mum = family.ok("balance", "mum")
    assert (mum["balance"], mum["points_transferred"], mum["points_earned"]) == (120, 120, 100)
    kid = family.ok("balance", "kid")
    assert (kid["balance"], kid["pending"], kid["points_transferred"]) == (60, 30, -120)
    history = family.ok("history", "mum")["entries"]
    assert [(e["kind"], e["points"], e["reason"]) for e in history[:2]] == [
        ("transfer", 20, "family pool"),
        ("transfer", 100, "family pool"),
    ]
    assert family.ok("verify")["ok"]
    # the moved points expire for mum on the days they would have for kid
    family.clock("2026-04-05")
    family.ok("nightly")
    assert family.ok("balance", "mum")["balance"] == 20
    assert family.ok("balance", "mum")["points_expired"] == 200  # her own welcome too


def test_a_transfer_is_not_points_earned_nor_a_tier_input(family: Shop) -> None:
    before = family.ok("report", "summary")
    family.ok("transfer", "kid", "mum", "150", "--reason", "family pool")
    after = family.ok("report", "summary")
    for key in ("points_earned", "points_redeemed", "points_outstanding", "points_adjusted"):
        assert after[key] == before[key], key
    assert family.ok("tier", "mum")["tier"] == "bronze"  # 100 earned, 150 received
    assert family.ok("tier", "kid")["tier"] == "gold"  # 150 earned, given away


def test_a_retry_changes_nothing_and_other_content_is_a_conflict(family: Shop) -> None:
    first = family.ok("transfer", "kid", "mum", "50", "--reason", "pool", "--txn", "T1")
    again = family.ok("transfer", "kid", "mum", "50", "--reason", "pool", "--txn", "T1")
    assert again["duplicate"] is True and again["occurred_at"] == first["occurred_at"]
    assert family.ok("balance", "mum")["balance"] == 50  # her welcome is gone (03-11)
    error = family.fails(1, "transfer", "kid", "mum", "60", "--reason", "pool", "--txn", "T1")
    assert "txn 'T1' was already used for a different operation" in error


def test_an_overdraw_is_refused_and_nothing_moves(family: Shop) -> None:
    error = family.fails(1, "transfer", "kid", "mum", "151", "--reason", "pool")
    # the 30 purchase points are pending: they cannot move yet
    assert "insufficient points: 'kid' has 150 (and 30 pending), needs 151 (short by 1)" in error
    assert family.ok("balance", "kid")["balance"] == 180
    assert family.ok("balance", "mum")["points_transferred"] == 0


@pytest.mark.parametrize(
    ("code", "args", "message"),
    [
        (1, ["kid", "kid", "5"], "cannot transfer points to themselves"),
        (1, ["kid", "zed", "5"], "unknown customer 'zed'"),
        (1, ["zed", "kid", "5"], "unknown customer 'zed'"),
        (2, ["kid", "mum", "0"], "transfer POINTS must be a positive number"),
        (2, ["kid", "mum", "-5"], "transfer POINTS must be a positive number"),
        (2, ["kid", "mum", "5000000000"], "beyond the limit"),
    ],
)
def test_bad_transfers_are_refused(family: Shop, code: int, args: list[str], message: str) -> None:
    assert message in family.fails(code, "transfer", *args, "--reason", "pool")


def test_a_transfer_needs_a_reason(family: Shop) -> None:
    assert "transfer needs --reason" in family.fails(2, "transfer", "kid", "mum", "5")


def test_points_are_conserved_across_many_transfers(family: Shop) -> None:
    def total() -> int:
        return sum(family.ok("balance", c)["balance"] for c in ("mum", "kid"))

    start = total()
    for giver, taker, points in (("kid", "mum", 70), ("mum", "kid", 30), ("kid", "mum", 99)):
        family.ok("transfer", giver, taker, str(points), "--reason", "pool")
    assert total() == start
    assert family.ok("verify")["ok"]


def test_simulate_replays_a_transfer(family: Shop) -> None:
    """The same rules give no difference: the received points pay for a redemption
    in the replay as they did at the till."""
    family.ok("transfer", "kid", "mum", "120", "--reason", "pool", "--at", "2026-03-19T12:00")
    family.ok("redeem", "mum", "--points", "110", "--at", "2026-03-19T13:00")
    doc = family.ok("simulate")
    assert doc["refused_count"] == 0 and doc["customers_changed"] == 0
    assert doc["totals_difference"]["points_outstanding"] == 0
