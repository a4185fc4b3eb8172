"""`loyalty merge KEEP DUPLICATE`: a duplicate account folded into another. Its
lots move with their own dates, its history counts for the keeper (tiers,
segments, reports), the duplicate can no longer be used, a refund of its
purchase takes back from the keeper; idempotent with --txn; refused with a
reason where it cannot be done."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty_cli.store.schema import SCHEMA_VERSION

from .conftest import Shop

RULES = """\
program: {name: Test Shop, currency: GBP, timezone: Europe/London}
points: {expire_after_months: 2, expire_at: same_day, pending_days: 14}
tiers:
  metric: spend
  window: lifetime
  downgrade: reevaluate
  levels:
    - {id: bronze, name: Bronze, threshold: 0}
    - {id: gold, name: Gold, threshold: 100}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: welcome, on: enroll, points: 100}
  - {id: review, on: review, points: 50}
"""


@pytest.fixture
def twins(shop: Shop) -> Shop:
    """Ann enrolled twice: `ann` at the till in January, `ann2` online in February."""
    shop.write_rules(RULES)
    shop.clock("2026-03-20")
    shop.ok("enroll", "ann", "--at", "2026-01-10", "--email", "ann@example.com")  # 100, gone 03-11
    shop.ok("earn", "ann", "--amount", "60", "--at", "2026-03-01", "--txn", "P1")  # gone 05-02
    shop.ok("enroll", "ann2", "--at", "2026-02-01")  # 100, gone 04-02
    shop.ok("earn", "ann2", "--event", "review", "--at", "2026-03-02")  # 50, gone 05-03
    shop.ok("earn", "ann2", "--amount", "50", "--at", "2026-03-19", "--txn", "P2")  # pending
    return shop


def test_lots_move_with_their_own_dates_and_the_history_counts_for_the_keeper(twins: Shop) -> None:
    keep, dup = twins.ok("balance", "ann"), twins.ok("balance", "ann2")
    assert (keep["balance"], dup["balance"], dup["pending"]) == (60, 200, 50)
    assert twins.ok("tier", "ann")["tier"] == "bronze"  # 60.00 spent; ann2 50.00
    doc = twins.ok("merge", "ann", "ann2", "--reason", "same person", "--txn", "M1")
    assert (doc["keep_customer"], doc["duplicate_customer"], doc["points"]) == ("ann", "ann2", 200)
    # ann2's purchase counts toward tiers once its return window ends (04-02)
    assert (doc["balance"], doc["tier"], doc["duplicate"]) == (260, "bronze", False)
    # each lot keeps its own expiry and pending days: nothing is reset
    assert doc["lots"] == [
        {"expires_on": "2026-04-02", "available_on": "2026-02-01", "points": 100},
        {"expires_on": "2026-05-03", "available_on": "2026-03-02", "points": 50},
        {"expires_on": "2026-05-20", "available_on": "2026-04-02", "points": 50},
    ]
    after = twins.ok("balance", "ann")
    assert (after["balance"], after["available"], after["pending"]) == (260, 210, 50)
    expiring = twins.ok("statement", "ann", "--format", "json")["expiring"]
    assert [(e["date"], e["points"]) for e in expiring] == [
        ("2026-04-02", 100), ("2026-05-02", 60), ("2026-05-03", 50), ("2026-05-20", 50)
    ]  # fmt: skip
    assert twins.ok("balance", "ann2")["balance"] == 0
    # the history shows the merge and the duplicate's past
    entries = twins.ok("history", "ann")["entries"]
    kinds = [(e["kind"], e["points"]) for e in entries]
    assert ("merge", -200) in kinds and ("merge", 100) in kinds  # both sides
    assert any(e["txn"] == "P2" for e in entries)  # ann2's purchase is in ann's past
    assert twins.ok("verify")["ok"]
    # the moved points expire for ann on the days they would have for ann2
    twins.clock("2026-04-05")
    twins.ok("nightly")
    held = twins.ok("balance", "ann")
    assert (held["balance"], held["pending"]) == (160, 0)  # 100 gone on 04-02, 50 now spendable
    # and the keeper's tier counts both histories: 60.00 + ann2's 50.00
    tier = twins.ok("tier", "ann")
    assert (tier["tier"], tier["qualifying_spend"]) == ("gold", "110.00")
    assert twins.ok("verify")["ok"]


def test_the_duplicate_can_no_longer_be_used(twins: Shop) -> None:
    twins.ok("merge", "ann", "ann2", "--reason", "same person")
    for args in (
        ("earn", "ann2", "--amount", "5"),
        ("redeem", "ann2", "--points", "10"),
        ("adjust", "ann2", "5", "--reason", "x"),
        ("transfer", "ann2", "ann", "5", "--reason", "x"),
        ("transfer", "ann", "ann2", "5", "--reason", "x"),
        ("update", "ann2", "--name", "Ann"),
        ("tier", "ann2", "--set", "gold", "--reason", "x"),
    ):
        error = twins.fails(1, *args)
        assert error == "error: customer 'ann2' was merged into 'ann': use 'ann'", args
    shown = twins.ok("customer", "show", "ann2")
    assert shown["merged_into"]["customer_id"] == "ann"
    assert shown["merged_into"]["reason"] == "same person"
    assert shown["tier"] is None
    keeper = twins.ok("customer", "show", "ann")
    assert [m["customer_id"] for m in keeper["merged"]] == ["ann2"]
    assert keeper["merged_into"] is None
    printed = twins.run("customer", "show", "ann2", "--no-json").stdout
    assert "Merged into ann on" in printed
    exported = twins.ok("customer", "export", "ann")
    assert exported["merged"][0]["customer_id"] == "ann2"
    # erasing the duplicate's personal data is still its right
    assert twins.ok("customer", "erase", "ann2", "--reason", "asked")["customer_id"] == "ann2"
    assert twins.ok("verify")["ok"]


def test_a_refund_of_the_duplicates_purchase_claws_back_from_the_keeper(twins: Shop) -> None:
    twins.ok("merge", "ann", "ann2", "--reason", "same person")
    doc = twins.ok("refund", "P2", "--amount", "20")
    # its own (moved, still pending) lot is taken first
    assert (doc["customer_id"], doc["points"], doc["shortfall"]) == ("ann", -20, 0)
    held = twins.ok("balance", "ann")
    assert (held["balance"], held["available"], held["pending"]) == (240, 210, 30)
    twins.clock("2026-04-05")
    assert twins.ok("tier", "ann")["qualifying_spend"] == "90.00"
    assert twins.ok("verify")["ok"]


def test_reports_count_one_customer(twins: Shop) -> None:
    before = twins.ok("report", "summary")
    twins.ok("merge", "ann", "ann2", "--reason", "same person")
    after = twins.ok("report", "summary")
    assert after["members"] == before["members"] - 1
    assert after["points_outstanding"] == before["points_outstanding"]
    rows = twins.ok("report", "customers")["rows"]
    assert [r["customer_id"] for r in rows] == ["ann"]
    figures = (rows[0]["purchases"], rows[0]["lifetime_spend"], rows[0]["balance"])
    assert figures == (2, "110.00", 260)
    assert rows[0]["points_earned"] == 360  # both welcomes, the review, both purchases
    segments = twins.ok("report", "segments")
    assert sum(s["customers"] for s in segments["segments"]) == 1
    listed = twins.ok("customer", "list", "--transactional")
    assert [r["customer_id"] for r in listed["rows"]] == ["ann"]
    assert listed["rows"][0]["last_purchase"] == "2026-03-19"
    assert twins.ok("tier")["members"] == 1
    assert twins.ok("verify")["members"] == 1
    assert twins.ok("report", "segments")["customers"] == 1
    notices = twins.ok("notices", "--within", "30")["rows"]
    assert {n["customer_id"] for n in notices} <= {"ann"}
    # Both welcomes and both purchases reached one customer.
    by_rule = {r["rule"]: r for r in twins.ok("report", "rules")["rules"]}
    assert (by_rule["welcome"]["awards"], by_rule["welcome"]["customers"]) == (2, 1)
    assert (by_rule["base"]["awards"], by_rule["base"]["customers"]) == (2, 1)


def test_a_retry_changes_nothing_and_other_content_is_a_conflict(twins: Shop) -> None:
    first = twins.ok("merge", "ann", "ann2", "--reason", "same person", "--txn", "M1")
    again = twins.ok("merge", "ann", "ann2", "--reason", "same person", "--txn", "M1")
    assert again["duplicate"] is True and again["occurred_at"] == first["occurred_at"]
    assert again["points"] == 200
    assert (again["balance"], again["tier"]) == (first["balance"], first["tier"]) == (260, "bronze")
    assert twins.ok("balance", "ann")["balance"] == 260
    error = twins.fails(1, "merge", "ann", "ann2", "--reason", "other", "--txn", "M1")
    assert "txn 'M1' was already used for a different operation" in error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ann", "ann"), "customer 'ann' cannot be merged into themselves: name the duplicate"),
        (("ann", "nobody"), "unknown customer 'nobody' (enroll them first: loyalty enroll ID)"),
        (("nobody", "ann"), "unknown customer 'nobody' (enroll them first: loyalty enroll ID)"),
    ],
)
def test_refused_with_a_reason(twins: Shop, args: tuple[str, str], message: str) -> None:
    assert twins.fails(1, "merge", *args, "--reason", "x") == f"error: {message}"


def test_refused_when_either_side_is_merged_away_or_the_duplicate_keeps_others(
    twins: Shop,
) -> None:
    twins.clock("2026-03-21")
    twins.ok("enroll", "ann3", "--at", "2026-03-20")
    twins.ok("enroll", "bob", "--at", "2026-03-20")
    twins.ok("merge", "ann", "ann2", "--reason", "same person")
    assert twins.fails(1, "merge", "bob", "ann2", "--reason", "x") == (
        "error: customer 'ann2' was merged into 'ann' already; merge into 'ann' instead"
    )
    assert twins.fails(1, "merge", "ann2", "ann3", "--reason", "x") == (
        "error: customer 'ann2' was merged into 'ann' already; merge into 'ann' instead"
    )
    assert twins.fails(1, "merge", "bob", "ann", "--reason", "x") == (
        "error: 1 other account was merged into 'ann': it keeps them; "
        "merge 'bob' into 'ann' instead"
    )
    twins.ok("merge", "ann", "ann3", "--reason", "third card")  # a keeper may keep more
    assert len(twins.ok("customer", "show", "ann")["merged"]) == 2
    assert twins.fails(2, "merge", "ann", "bob").startswith("error: merge needs --reason")
    assert twins.ok("verify")["ok"]


def test_refused_into_an_erased_keeper(twins: Shop) -> None:
    twins.ok("customer", "erase", "ann", "--reason", "asked to be forgotten")
    assert twins.fails(1, "merge", "ann", "ann2", "--reason", "x") == (
        "error: customer 'ann' was erased (they asked to be forgotten): nothing may be "
        "added to them; merge 'ann' into 'ann2' instead"
    )
    twins.ok("merge", "ann2", "ann", "--reason", "same person")  # the other way round


def test_a_duplicate_that_owes_points_is_refused(shop: Shop) -> None:
    shop.write_rules(
        RULES.replace("pending_days: 14}", "pending_days: 0, refund_shortfall: allow_negative}")
    )
    shop.clock("2026-03-20")
    shop.ok("enroll", "ann", "--at", "2026-03-01")
    shop.ok("enroll", "ann2", "--at", "2026-03-01")
    shop.ok("earn", "ann2", "--amount", "80", "--at", "2026-03-02", "--txn", "P9")
    shop.ok("redeem", "ann2", "--points", "170", "--at", "2026-03-03")
    shop.ok("refund", "P9", "--at", "2026-03-04")  # takes back 80 of the 10 held: owes 70
    assert shop.ok("balance", "ann2")["balance"] == -70
    error = shop.fails(1, "merge", "ann", "ann2", "--reason", "same person")
    assert error == (
        "error: 'ann2' owes 70 points (a refund took back more than it held): a merge moves "
        "points, not a debt, which would overdraw 'ann'; merge 'ann' into 'ann2' instead, so "
        "that the account owing keeps its debt"
    )
    doc = shop.ok("merge", "ann2", "ann", "--reason", "same person")
    assert (doc["points"], doc["balance"]) == (100, 30)
    assert shop.ok("verify")["ok"]


def test_verify_catches_an_edited_merges_table(twins: Shop) -> None:
    twins.ok("enroll", "bob", "--at", "2026-03-10")
    twins.ok("merge", "ann", "ann2", "--reason", "same person")
    twins.tamper("INSERT INTO merges (duplicate, keep, op_id) VALUES ('bob', 'ann', 1)")
    result = twins.run("verify", "--json")
    assert result.exit_code == 1
    assert "merge of 'bob' into 'ann' is not what operation #1 recorded" in result.stdout


# --- the property: a merge moves every point, each on its own dates ------------------------

START = date(2026, 1, 5)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    keep_buys=st.lists(st.tuples(st.integers(0, 60), st.integers(1, 90)), max_size=3),
    dup_buys=st.lists(st.tuples(st.integers(0, 60), st.integers(1, 90)), max_size=3),
    spent=st.integers(0, 150),
)
def test_balance_after_is_the_sum_and_expiry_dates_are_unchanged(
    tmp_path_factory: pytest.TempPathFactory,
    keep_buys: list[tuple[int, int]],
    dup_buys: list[tuple[int, int]],
    spent: int,
) -> None:
    shop = Shop(tmp_path_factory.mktemp("merge"))
    shop.write_rules(RULES)
    shop.clock("2026-03-20")
    shop.ok("enroll", "K", "--at", "2026-01-02")
    shop.ok("enroll", "D", "--at", "2026-01-03")
    for who, buys in (("K", keep_buys), ("D", dup_buys)):
        for day, amount in buys:
            at = (START + timedelta(days=day)).isoformat()
            shop.ok("earn", who, "--amount", str(amount), "--at", at)
    available = shop.ok("balance", "D")["available"]
    if 0 < spent <= available:
        shop.ok("redeem", "D", "--points", str(spent))
    keep, dup = (shop.ok("statement", who, "--format", "json") for who in ("K", "D"))
    shop.ok("merge", "K", "D", "--reason", "same person")
    after = shop.ok("statement", "K", "--format", "json")
    assert after["balance"] == keep["balance"] + dup["balance"]
    assert after["pending"] == keep["pending"] + dup["pending"]
    assert shop.ok("balance", "K")["balance"] == after["balance"]
    if after["available"] > 0:  # the write path sees them too: all of it can be spent
        spent_all = shop.ok("redeem", "K", "--points", str(after["available"]))
        assert spent_all["balance"] == after["pending"]
    # every expiry day holds what the two held on it: no point's date changed
    days: dict[str, int] = {}
    for doc in (keep, dup):
        for each in doc["expiring"]:
            days[each["date"]] = days.get(each["date"], 0) + each["points"]
    assert {e["date"]: e["points"] for e in after["expiring"]} == days
    lots = shop.ok("customer", "export", "K")
    assert lots["merged"][0]["customer_id"] == "D"
    assert shop.ok("verify")["ok"]


@pytest.mark.sqlite_only  # the schema's versions are a file's (db init upgrades a server)
def test_a_schema_9_ledger_is_upgraded_in_place_and_can_merge(twins: Shop) -> None:
    """Schema 9 is schema 10 without the merges table: made here by dropping it."""
    with closing(sqlite3.connect(twins.db, isolation_level=None)) as conn:
        for action in ("update", "delete"):
            conn.execute(f"DROP TRIGGER merges_no_{action}")
        conn.execute("DROP TABLE merges")
        conn.execute("PRAGMA user_version = 9")
    assert twins.ok("verify")["ok"]  # opening it ran m010_merges: the table and its triggers
    with closing(sqlite3.connect(twins.db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    twins.ok("merge", "ann", "ann2", "--reason", "same person")
    assert twins.ok("balance", "ann")["balance"] == 260
    assert twins.ok("verify")["ok"]
    with closing(sqlite3.connect(twins.db)) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute("DELETE FROM merges")


@pytest.mark.sqlite_only  # it copies the ledger file (db copy)
def test_statement_import_copy_and_simulate_see_one_account(twins: Shop) -> None:
    twins.ok("merge", "ann", "ann2", "--reason", "same person", "--txn", "M1")
    doc = twins.ok("statement", "ann", "--format", "json")
    joined = [a for a in doc["recent_activity"] if a["kind"] == "merge"]
    assert [(a["description"], a["points"]) for a in joined] == [
        ("Points from your other account joined", 200)
    ]
    assert twins.fails(1, "statement", "ann2") == (
        "error: customer 'ann2' was merged into 'ann': use 'ann'"
    )
    # a till's file still naming the duplicate: its row is rejected, saying where to go
    (twins.dir / "sales.csv").write_text(
        "customer_id,amount,date,txn\nann2,5.00,2026-03-20,S1\nann,5.00,2026-03-20,S2\n"
    )
    result = twins.run("import-csv", str(twins.dir / "sales.csv"), "--json")
    assert result.exit_code == 65, result.output
    assert "customer 'ann2' was merged into 'ann'" in result.stderr
    assert twins.ok("balance", "ann")["balance"] == 265
    # a copy of the ledger keeps the merge, and verifies
    copied = twins.ok("db", "copy", str(twins.db), str(twins.dir / "copy.db"))
    assert copied["ok"] and copied["rows"]["merges"] == 1
    # a replay decides the merge again: nothing differs, nothing is refused
    replayed = twins.ok("simulate", "--rules", str(twins.rules))
    assert replayed["refused"] == [] and replayed["customers_changed"] == 0, replayed
    # and counts one customer, in one tier
    assert replayed["members"] == 1
    by_tier = {t["tier"]: t["actual"] for t in replayed["tier_changes"]["by_tier"]}
    assert sum(by_tier.values()) == 1, by_tier


def test_explain_judges_a_cap_on_the_merged_account_as_the_award_did(twins: Shop) -> None:
    """ann2's review counted for ann after the merge: ann's own review that month
    is over the cap, and explain says so (it judged ann's own past alone)."""
    twins.write_rules(RULES.replace("points: 50}", "points: 50, cap: {count: 1, per: month}}"))
    twins.ok("merge", "ann", "ann2", "--reason", "same person")
    doc = twins.ok("earn", "ann", "--event", "review", "--at", "2026-03-20T10:00", "--txn", "E1")
    assert doc["points"] == 0
    why = {s["rule"]: s["reason"] for s in twins.ok("explain", "E1")["not_fired"]}
    assert "review" in why and "cap" in why["review"], why
