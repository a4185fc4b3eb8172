"""Issue 18's small items: each answer agrees with what happened."""

from __future__ import annotations

import json

import pytest

from .conftest import Shop

NO_WELCOME = """\
program: {name: T, currency: USD, timezone: Europe/London}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: big-spender, on: purchase, when: {amount: {gte: 100}}, points: 10}
rewards:
  - {id: coffee, name: Free coffee, cost: 5}
"""


def test_a_rule_that_fired_for_0_points_is_not_listed_as_not_firing(shop: Shop) -> None:
    shop.write_rules(NO_WELCOME)
    shop.ok("enroll", "C1", "--at", "2026-11-01")
    doc = shop.ok("earn", "C1", "--amount", "0.50", "--explain", "--dry-run")
    assert doc["points"] == 0
    assert [z["rule"] for z in doc["zero_points"]] == ["base"]
    assert [s["rule"] for s in doc["skipped"]] == ["big-spender"]
    table = shop.run("earn", "C1", "--amount", "0.50", "--explain", "--dry-run", "--no-json")
    fired, _, did_not = table.stdout.partition("Did not fire")
    assert "Fired for 0 points" in fired and "base" in fired
    assert "big-spender" in did_not and "base" not in did_not


@pytest.mark.sqlite_only
def test_the_summary_s_default_period_starts_at_an_enrollment_that_earned_nothing(
    shop: Shop,
) -> None:
    shop.write_rules(NO_WELCOME)
    shop.clock("2026-11-20")
    shop.ok("enroll", "C1", "--at", "2026-11-01T10:00")  # no welcome rule: no entry
    shop.ok("earn", "C1", "--amount", "12", "--at", "2026-11-05T10:00")
    doc = shop.ok("report")
    assert (doc["from"], doc["members"], doc["new_members"]) == ("2026-11-01", 1, 1)


@pytest.mark.sqlite_only
def test_an_earn_dated_before_the_enrollment_is_refused(shop: Shop) -> None:
    shop.clock("2026-11-20")
    shop.ok("enroll", "C1", "--at", "2026-11-10T09:00")
    result = shop.run("earn", "C1", "--amount", "5", "--at", "2026-11-09")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: an earn dated 2026-11-09T00:00:00+00:00 is before 'C1' enrolled "
        "(2026-11-10T09:00:00+00:00): date it (--at, or a CSV row's date) at or after the "
        "enrollment\n"
    )
    error = json.loads(result.stdout)["error"]
    assert (error["code"], error["field"]) == ("before_enrollment", "--at")
    assert shop.ok("balance", "C1")["balance"] == 100  # nothing written
    assert shop.ok("earn", "C1", "--amount", "5", "--at", "2026-11-10T09:00")["points"] == 5
    sales = shop.dir / "sales.csv"
    sales.write_text("txn_id,customer_id,amount,date\nS1,C1,7.00,2026-11-01\n")
    imported = shop.run("import-csv", str(sales))
    assert imported.exit_code == 65
    assert "is before 'C1' enrolled" in imported.stderr


def test_a_refund_that_could_take_nothing_back_still_has_its_line(shop: Shop) -> None:
    shop.write_rules(NO_WELCOME)
    shop.ok("enroll", "C1", "--at", "2026-11-01")
    shop.ok("earn", "C1", "--amount", "5", "--txn", "R1", "--at", "2026-11-02")
    shop.ok("redeem", "C1", "--reward", "coffee", "--at", "2026-11-03")  # all 5 spent
    refund = shop.ok("refund", "R1", "--at", "2026-11-04")
    assert (refund["clawback"], refund["points"], refund["shortfall"]) == (5, 0, 5)
    newest = shop.ok("history", "C1")["entries"][0]
    assert (newest["kind"], newest["points"]) == ("refund", 0)
    assert newest["reason"] == "refund of 5.00 on R1; 5 points could not be taken back"
    assert shop.ok("verify")["ok"] is True
