"""The points lifecycle: lots, expiry, pending points and refunds."""

from __future__ import annotations

from datetime import date

import pytest

from loyalty_cli import lots
from loyalty_cli.lots import Lot

from .conftest import Shop

# 1 point per 1.00; purchases are held 14 days; points expire at the end of the
# month 2 months after they were earned.
LIFECYCLE_RULES = """\
program: {name: Shop, timezone: Europe/London}
points:
  pending_days: 14
  expire_after_months: 2
  expire_at: end_of_month
  refund_shortfall: %s
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: bags, on: purchase, points_per_unit: 2, when: {category: bags}}
  - {id: review, on: review, points: 30}
  - {id: welcome, on: enroll, points: 0}
"""


@pytest.fixture
def life(shop: Shop) -> Shop:
    shop.write_rules(LIFECYCLE_RULES % "within_balance")
    shop.ok("enroll", "C1", "--at", "2026-01-01")
    return shop


# --- pure arithmetic -------------------------------------------------------------


@pytest.mark.parametrize(
    ("earned", "months", "at", "gone_on"),
    [
        # Square: earned 6 July 2020, 12 months, expire at the end of that month.
        (date(2020, 7, 6), 12, "end_of_month", date(2021, 8, 1)),
        # Voucherify: 31 January + 1 month clamps to 28 February, valid through it.
        (date(2026, 1, 31), 1, "same_day", date(2026, 3, 1)),
        (date(2028, 1, 31), 1, "same_day", date(2028, 3, 1)),  # 29 Feb, leap year
        (date(2026, 12, 15), 1, "end_of_month", date(2027, 2, 1)),
        (date(2026, 5, 20), None, "end_of_month", None),
    ],
)
def test_expiry_dates(earned: date, months: int | None, at: str, gone_on: date | None) -> None:
    assert lots.expires_on(earned, months, at) == gone_on


def test_spending_order_is_soonest_expiry_first_then_oldest_never_expiring_last() -> None:
    held = [
        Lot(1, date(2026, 1, 1), date(2026, 1, 1), None, 10),
        Lot(2, date(2026, 1, 2), date(2026, 1, 2), date(2026, 6, 1), 10),
        Lot(3, date(2026, 1, 3), date(2026, 1, 3), date(2026, 5, 1), 10),
        Lot(4, date(2026, 1, 4), date(2026, 1, 4), date(2026, 5, 1), 10),
    ]
    assert [lot.id for lot in lots.spending_order(held)] == [3, 4, 2, 1]
    assert lots.draw(lots.spending_order(held), 25) == [(3, 10), (4, 10), (2, 5)]


# --- expiry through the CLI ------------------------------------------------------


def test_points_expire_on_their_date_even_before_anything_is_written(life: Shop) -> None:
    life.ok("earn", "C1", "--amount", "40", "--at", "2026-01-10")  # expires 2026-04-01
    life.ok("earn", "C1", "--event", "review", "--at", "2026-02-10")  # expires 2026-05-01
    before = life.ok("balance", "C1", "--at", "2026-03-31T23:59")
    # Only the purchase lot (gone 1 April) expires within 30 days; the review's lasts to May.
    assert (before["balance"], before["expiring_30_days"], before["next_expiry"]) == (
        70,
        40,
        "2026-04-01",
    )
    assert before["expiring"] == [{"date": "2026-04-01", "points": 40}]
    after = life.ok("balance", "C1", "--at", "2026-04-01")
    assert (after["balance"], after["available"], after["points_expired"]) == (30, 30, 0)


def test_the_next_write_records_the_expiry_and_redemptions_use_the_soonest_expiring_first(
    life: Shop,
) -> None:
    life.ok("earn", "C1", "--amount", "40", "--at", "2026-01-10")  # 40, gone 2026-04-01
    life.ok("earn", "C1", "--event", "review", "--at", "2026-02-10")  # 30, gone 2026-05-01
    life.ok("redeem", "C1", "--points", "50", "--at", "2026-03-01")  # takes 40 + 10
    life.ok("earn", "C1", "--event", "review", "--at", "2026-04-15")  # 30, gone 2026-07-01
    history = life.ok("history", "C1", "--at", "2026-04-15")["entries"]
    expired = [e for e in history if e["kind"] == "expire"]
    # Only what was left of the review lot: the purchase lot was spent first.
    assert [(e["points"], e["occurred_at"]) for e in expired] == []
    doc = life.ok("earn", "C1", "--event", "review", "--at", "2026-05-02")
    assert doc["balance"] == 60
    history = life.ok("history", "C1")["entries"]
    expired = [e for e in history if e["kind"] == "expire"]
    assert [(e["points"], e["occurred_at"], e["reason"]) for e in expired] == [
        (-20, "2026-04-30T23:00:00Z", "earned 2026-02-10, expired 2026-05-01"),
    ]
    assert life.ok("balance", "C1", "--at", "2026-05-02")["points_expired"] == 20
    assert life.ok("verify")["ok"] is True


def test_expiry_is_written_once(life: Shop) -> None:
    life.ok("earn", "C1", "--amount", "40", "--at", "2026-01-10")
    for day in ("2026-06-01", "2026-06-02", "2026-07-01"):
        life.ok("earn", "C1", "--event", "review", "--at", day)
    kinds = [e["kind"] for e in life.ok("history", "C1")["entries"]]
    assert kinds.count("expire") == 1


# --- pending points --------------------------------------------------------------


def test_purchase_points_are_pending_through_the_return_window(life: Shop) -> None:
    life.ok("earn", "C1", "--amount", "80", "--at", "2026-03-01")
    life.ok("earn", "C1", "--event", "review", "--at", "2026-03-01")  # events are not held
    held = life.ok("balance", "C1", "--at", "2026-03-14")
    assert (held["available"], held["pending"], held["balance"]) == (30, 80, 110)
    message = life.fails(1, "redeem", "C1", "--points", "50", "--at", "2026-03-14")
    assert (
        message
        == "error: insufficient points: 'C1' has 30 (and 80 pending), needs 50 (short by 20)"
    )
    assert life.ok("balance", "C1", "--at", "2026-03-15")["available"] == 110
    life.ok("redeem", "C1", "--points", "50", "--at", "2026-03-15")


# --- refunds ---------------------------------------------------------------------


def test_partial_refunds_are_proportional_floored_and_add_up_to_what_was_earned(
    life: Shop,
) -> None:
    life.ok(
        "earn",
        "C1",
        "--amount",
        "99.00",
        "--category",
        "bags",
        "--txn",
        "R-1",
        "--at",
        "2026-03-01",
    )
    first = life.ok("refund", "R-1", "--amount", "10.00", "--at", "2026-03-20")
    # 297 points earned (99 base + 198 bags); 10/99 of it is 30.0 -> 30.
    assert (first["clawback"], first["points"], first["refunded"]) == (30, -30, "10.00")
    second = life.ok("refund", "R-1", "--amount", "33.33", "--at", "2026-03-21")
    # floor(297 x 43.33 / 99) = 129, less the 30 already taken.
    assert second["clawback"] == 99
    rest = life.ok("refund", "R-1", "--at", "2026-03-22")  # all that is left
    assert (rest["amount"], rest["refunded"]) == ("55.67", "99.00")
    assert first["clawback"] + second["clawback"] + rest["clawback"] == 297
    assert life.ok("balance", "C1", "--at", "2026-03-22")["balance"] == 0
    assert life.ok("balance", "C1", "--at", "2026-03-22")["points_refunded"] == 297
    assert life.ok("verify")["ok"] is True


def test_a_refund_inside_the_window_cancels_the_pending_points(life: Shop) -> None:
    life.ok("earn", "C1", "--event", "review", "--at", "2026-03-01")
    life.ok("earn", "C1", "--amount", "50", "--txn", "R-2", "--at", "2026-03-02")
    doc = life.ok("refund", "R-2", "--at", "2026-03-05")
    assert doc["points"] == -50
    held = life.ok("balance", "C1", "--at", "2026-03-05")
    assert (held["available"], held["pending"]) == (30, 0)  # the review points are untouched


def test_refund_uses_the_original_award_not_todays_rules(life: Shop) -> None:
    life.ok("earn", "C1", "--amount", "20", "--txn", "R-3", "--at", "2026-03-01")
    life.write_rules(
        (LIFECYCLE_RULES % "within_balance").replace("points_per_unit: 1}", "points_per_unit: 10}")
    )
    assert life.ok("refund", "R-3", "--at", "2026-03-02")["clawback"] == 20


def test_within_balance_takes_what_is_there_and_records_the_shortfall(life: Shop) -> None:
    life.ok("earn", "C1", "--amount", "100", "--txn", "R-4", "--at", "2026-01-01")
    life.ok("redeem", "C1", "--points", "80", "--at", "2026-02-01")
    doc = life.ok("refund", "R-4", "--at", "2026-02-02")
    assert (doc["clawback"], doc["points"], doc["shortfall"], doc["balance"]) == (100, -20, 80, 0)
    assert life.ok("verify")["ok"] is True


def test_allow_negative_takes_it_all_and_leaves_a_debt(shop: Shop) -> None:
    shop.write_rules(LIFECYCLE_RULES % "allow_negative")
    shop.ok("enroll", "C1", "--at", "2026-01-01")
    shop.ok("earn", "C1", "--amount", "100", "--txn", "R-5", "--at", "2026-01-01")
    shop.ok("redeem", "C1", "--points", "80", "--at", "2026-02-01")
    doc = shop.ok("refund", "R-5", "--at", "2026-02-02")
    assert (doc["points"], doc["shortfall"], doc["balance"]) == (-100, 0, -80)
    shop.ok("earn", "C1", "--event", "review", "--at", "2026-02-03")
    held = shop.ok("balance", "C1", "--at", "2026-02-03")
    assert (held["balance"], held["available"]) == (-50, -50)  # the debt comes first
    shop.fails(1, "redeem", "C1", "--points", "1", "--at", "2026-02-03")
    assert shop.ok("verify")["ok"] is True


def test_refund_is_idempotent_with_its_own_key(life: Shop) -> None:
    life.ok("earn", "C1", "--amount", "30", "--txn", "R-6", "--at", "2026-03-01")
    first = life.ok("refund", "R-6", "--amount", "10", "--txn", "RF-6", "--at", "2026-03-02")
    again = life.ok("refund", "R-6", "--amount", "10", "--txn", "RF-6")
    assert again["duplicate"] is True
    assert (again["points"], again["refunded"], again["occurred_at"]) == (
        first["points"],
        first["refunded"],
        first["occurred_at"],
    )
    assert again["balance"] == first["balance"]  # as the original left it, not today's
    message = life.fails(1, "refund", "R-6", "--amount", "11", "--txn", "RF-6")
    assert "already used" in message


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["refund", "NOPE"], "unknown transaction 'NOPE'"),
        (["refund", "R-7", "--amount", "30.01"], "more than the 30.00 left to refund"),
        (["refund", "RF-7"], "'RF-7' is itself a refund"),
        (["refund", "A-7"], "'A-7' is a adjust, not a purchase"),
        (["refund", "R-7", "--amount", "0"], "must be greater than zero"),
    ],
)
def test_bad_refunds_are_refused_and_change_nothing(
    life: Shop, args: list[str], fragment: str
) -> None:
    life.ok("earn", "C1", "--amount", "40", "--txn", "R-7", "--at", "2026-03-01")
    life.ok("refund", "R-7", "--amount", "10", "--txn", "RF-7", "--at", "2026-03-02")
    life.ok("adjust", "C1", "5", "--reason", "goodwill", "--txn", "A-7")
    before = life.ok("history", "C1")
    code = 2 if "greater than zero" in fragment else 1
    assert fragment in life.fails(code, *args)
    assert life.ok("history", "C1") == before


def test_a_fully_refunded_purchase_cannot_be_refunded_again(life: Shop) -> None:
    life.ok("earn", "C1", "--amount", "40", "--txn", "R-8", "--at", "2026-03-01")
    life.ok("refund", "R-8", "--at", "2026-03-02")
    assert "already fully refunded" in life.fails(1, "refund", "R-8")


def test_a_row_dated_in_the_future_never_expires_points_early(life: Shop) -> None:
    life.clock("2026-06-01")
    life.ok("earn", "C1", "--amount", "50", "--at", "2026-01-05")  # expires 2026-04-01
    # A till's clock a few hours fast is accepted (up to a day ahead) ...
    life.ok("earn", "C1", "--event", "review", "--at", "2026-06-02T08:00")
    # ... but a bad clock years ahead is refused: it would date points for good.
    assert "is in the future" in life.fails(
        2, "earn", "C1", "--event", "review", "--at", "2099-03-01"
    )
    expired = [e for e in life.ok("history", "C1")["entries"] if e["kind"] == "expire"]
    # Only what is due by the real date: nothing later than today is written off.
    assert [(e["points"], e["occurred_at"][:10]) for e in expired] == [(-50, "2026-03-31")]
    assert life.ok("balance", "C1")["balance"] == 30


def test_nightly_refuses_a_day_in_the_future(life: Shop) -> None:
    assert "is in the future" in life.fails(2, "nightly", "--as-of", "2099-01-01")


def test_balance_and_history_at_a_past_time_leave_out_what_came_later(life: Shop) -> None:
    life.ok("earn", "C1", "--event", "review", "--at", "2026-03-01")
    life.ok("redeem", "C1", "--points", "20", "--at", "2026-03-05")
    then = life.ok("balance", "C1", "--at", "2026-03-02")
    assert (then["balance"], then["points_redeemed"]) == (30, 0)
    assert life.ok("balance", "C1", "--at", "2026-03-06")["balance"] == 10
    assert [e["kind"] for e in life.ok("history", "C1", "--at", "2026-03-02")["entries"]] == [
        "earn"
    ]
