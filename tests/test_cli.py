"""The commands through the CLI: the JSON shapes scripts rely on, idempotency,
dry runs and explanations."""

from __future__ import annotations

import json
import sqlite3

import pytest

from .conftest import Shop


def test_earn_json_shape(shop: Shop) -> None:
    shop.ok("enroll", "C1", "--at", "2026-01-01")
    doc = shop.ok(
        "earn",
        "C1",
        "--amount",
        "42.50",
        "--category",
        "shoes",
        "--txn",
        "R-1",
        "--at",
        "2026-11-19T10:00",
    )
    assert doc == {
        "customer_id": "C1",
        "event": "purchase",
        "amount": "42.50",
        "occurred_at": "2026-11-19T10:00:00Z",
        "txn": "R-1",
        "points": 127,
        "balance": 227,
        "lines": [
            {"rule": "base", "points": 42, "detail": "42.50 x 1 per unit = 42.5, floor -> 42"},
            {"rule": "shoes", "points": 85, "detail": "42.50 x 2 per unit = 85"},
        ],
        "duplicate": False,
        "dry_run": False,
    }


def test_same_txn_same_content_reports_the_original_award_and_writes_nothing(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    first = shop.ok("earn", "C1", "--amount", "10", "--txn", "R-1")
    again = shop.ok("earn", "C1", "--amount", "10.00", "--txn", "R-1")
    assert again["duplicate"] is True
    assert (again["points"], again["lines"], again["balance"]) == (
        first["points"],
        first["lines"],
        first["balance"],
    )
    assert again["occurred_at"] == first["occurred_at"]
    assert len(shop.ok("history", "C1")["entries"]) == 2  # welcome + base


def test_txn_with_different_time_is_a_conflict(shop: Shop) -> None:
    shop.ok("enroll", "C1", "--at", "2026-01-01")
    shop.ok("earn", "C1", "--amount", "10", "--txn", "R-1", "--at", "2026-11-19T10:00")
    shop.ok("earn", "C1", "--amount", "10", "--txn", "R-1", "--at", "2026-11-19T10:00")
    message = shop.fails(1, "earn", "C1", "--amount", "10", "--txn", "R-1", "--at", "2026-11-20")
    assert "already used" in message


def test_redeem_and_adjust_are_idempotent_with_a_txn(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    first = shop.ok("redeem", "C1", "--reward", "coffee", "--txn", "V-1")
    assert first == {
        "customer_id": "C1",
        "kind": "redeem",
        "points": -100,
        "balance": 0,
        "reward": "coffee",
        "reason": "Free coffee",
        "occurred_at": first["occurred_at"],
        "txn": "V-1",
        "duplicate": False,
    }
    assert shop.ok("redeem", "C1", "--reward", "coffee", "--txn", "V-1")["duplicate"] is True
    shop.ok("adjust", "C1", "30", "--reason", "goodwill", "--txn", "A-1")
    again = shop.ok("adjust", "C1", "30", "--reason", "goodwill", "--txn", "A-1")
    assert (again["duplicate"], again["balance"]) == (True, 30)


def test_dry_run_explains_and_writes_nothing(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    doc = shop.ok("earn", "C1", "--amount", "20", "--dry-run", "--explain")
    assert (doc["dry_run"], doc["points"], doc["balance"]) == (True, 20, 120)
    assert doc["skipped"] == [
        {"rule": "shoes", "reason": "condition not met: category in [bags, shoes]"}
    ]
    assert shop.ok("balance", "C1")["balance"] == 100


def test_event_caps_apply_per_calendar_month(shop: Shop) -> None:
    shop.ok("enroll", "C1", "--at", "2026-01-01")
    assert shop.ok("earn", "C1", "--event", "review", "--at", "2026-11-02")["points"] == 50
    again = shop.ok("earn", "C1", "--event", "review", "--at", "2026-11-30T23:00", "--explain")
    assert (again["points"], again["skipped"]) == (
        0,
        [{"rule": "review", "reason": "cap reached: 1 time per month"}],
    )
    assert shop.ok("earn", "C1", "--event", "review", "--at", "2026-12-01")["points"] == 50


def test_enroll_with_referral_pays_the_referrer_once(shop: Shop) -> None:
    shop.ok("enroll", "ann", "--name", "Ann", "--email", "ann@example.com")
    doc = shop.ok(
        "enroll",
        "bob",
        "--referred-by",
        "ann",
        "--birthday",
        "1990-04-17",
        "--at",
        "2026-11-19T09:00",
    )
    assert doc == {
        "customer_id": "bob",
        "created": True,
        "name": None,
        "email": None,
        "phone": None,
        "birthday": "1990-04-17",
        "referred_by": "ann",
        "occurred_at": "2026-11-19T09:00:00Z",
        "points": 100,
        "balance": 100,
        "lines": [{"rule": "welcome", "points": 100, "detail": "100 points"}],
        "referral": {
            "customer_id": "ann",
            "event": "referral",
            "amount": None,
            "occurred_at": "2026-11-19T09:00:00Z",
            "txn": None,
            "points": 500,
            "balance": 600,
            "lines": [{"rule": "referral", "points": 500, "detail": "500 points"}],
            "duplicate": False,
            "dry_run": False,
        },
        "consent_changes": [],
    }
    # Enrolling bob again with --exist-ok changes nothing and pays nobody twice.
    again = shop.ok("enroll", "bob", "--referred-by", "ann", "--exist-ok")
    assert (again["created"], again["points"], again["referral"]) == (False, 0, None)
    assert shop.ok("balance", "ann")["balance"] == 600


def test_balance_json_shape(shop: Shop) -> None:
    shop.ok("enroll", "C1", "--name", "Ada")
    shop.ok("earn", "C1", "--amount", "50")
    shop.ok("redeem", "C1", "--points", "30")
    shop.ok("adjust", "C1", "-5", "--reason", "typo")
    assert shop.ok("balance", "C1") == {
        "customer_id": "C1",
        "name": "Ada",
        "balance": 115,
        "available": 115,
        "pending": 0,
        "expiring_30_days": 0,
        "next_expiry": None,
        "expiring": [],
        "points_earned": 150,
        "points_redeemed": 30,
        "points_adjusted": -5,
        "points_expired": 0,
        "points_refunded": 0,
        "points_transferred": 0,
    }


def test_history_is_newest_first_with_rule_and_reason(shop: Shop) -> None:
    shop.ok("enroll", "C1", "--at", "2026-11-01")
    shop.ok("earn", "C1", "--amount", "12", "--at", "2026-11-02", "--txn", "R-9")
    shop.ok("adjust", "C1", "3", "--reason", "till was down", "--at", "2026-11-03")
    doc = shop.ok("history", "C1")
    assert doc["balance"] == 115
    assert [(e["kind"], e["points"], e["rule"], e["reason"]) for e in doc["entries"]] == [
        ("adjust", 3, None, "till was down"),
        ("earn", 12, "base", None),
        ("enroll", 100, "welcome", None),
    ]
    earn = doc["entries"][1]
    assert (earn["amount"], earn["txn"], earn["occurred_at"]) == (
        "12.00",
        "R-9",
        "2026-11-02T00:00:00Z",
    )
    assert len(earn["rules_version"]) == 64
    assert len(shop.ok("history", "C1", "--limit", "1")["entries"]) == 1


@pytest.mark.sqlite_only
def test_every_entry_is_stamped_with_its_rules_text_kept_once(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    shop.ok("earn", "C1", "--amount", "5")
    shop.write_rules(shop.rules.read_text() + "# edited\n")
    shop.ok("earn", "C1", "--amount", "5")
    conn = sqlite3.connect(shop.db)
    versions = conn.execute("SELECT version, text FROM rulesets").fetchall()
    stamped = {
        v
        for (v,) in conn.execute(
            "SELECT DISTINCT r.version FROM operations o JOIN rulesets r ON r.id = o.ruleset"
        )
    }
    assert len(versions) == 2
    assert stamped == {v for v, _ in versions}
    assert any(text.endswith("# edited\n") for _, text in versions)


@pytest.mark.sqlite_only
def test_awkward_customer_ids_are_stored_exactly(shop: Shop) -> None:
    for cid in ["O'Brien; DROP TABLE entries;--", 'say "hi"', "Zoë-北京-🎉", "a%_*"]:
        doc = shop.ok("enroll", cid)
        assert doc["customer_id"] == cid
        assert shop.ok("earn", cid, "--amount", "1")["customer_id"] == cid
        assert shop.ok("balance", cid)["balance"] == 101
    conn = sqlite3.connect(shop.db)
    assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 4
    assert shop.ok("verify")["ok"] is True


def test_naive_at_is_shop_local_and_offsets_are_respected(shop: Shop) -> None:
    shop.ok("enroll", "C1", "--at", "2026-01-01")
    summer = shop.ok("earn", "C1", "--amount", "1", "--at", "2026-07-01T10:00")
    assert summer["occurred_at"] == "2026-07-01T09:00:00Z"  # London is UTC+1 in July
    offset = shop.ok("earn", "C1", "--amount", "1", "--at", "2026-07-01T10:00:00-04:00")
    assert offset["occurred_at"] == "2026-07-01T14:00:00Z"


def test_output_is_json_when_piped_and_a_table_on_request(shop: Shop) -> None:
    shop.ok("enroll", "C1", "--name", "Ada")
    piped = shop.run("balance", "C1")  # CliRunner's stdout is not a terminal
    assert json.loads(piped.stdout)["balance"] == 100
    table = shop.run("balance", "C1", "--no-json", env={"NO_COLOR": "1"})
    assert table.exit_code == 0, table.output
    assert "Ada" in table.stdout and "100" in table.stdout
    assert "\x1b[" not in table.stdout
    for args in (
        ["earn", "C1", "--amount", "3", "--explain"],
        ["history", "C1"],
        ["verify"],
        ["rules", "check"],
        ["redeem", "C1", "--points", "1"],
    ):
        result = shop.run(*args, "--no-json")
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() and not result.stdout.lstrip().startswith("{")


@pytest.mark.sqlite_only
def test_rules_check_summarises_the_file(shop: Shop) -> None:
    doc = shop.ok("rules", "check", str(shop.rules))
    assert (doc["program"], doc["timezone"], doc["rounding"]) == (
        "Test Shop",
        "Europe/London",
        "floor",
    )
    assert [r["rule"] for r in doc["rules"]] == ["base", "shoes", "welcome", "referral", "review"]
    assert doc["rewards"] == [{"reward": "coffee", "name": "Free coffee", "cost": 100}]


@pytest.mark.sqlite_only
def test_version_flag(shop: Shop) -> None:
    result = shop.run("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("loyalty ")


@pytest.mark.sqlite_only
def test_help_lists_the_exit_codes(shop: Shop) -> None:
    for args in ([], ["earn"], ["redeem"]):
        result = shop.run(*args, "--help")
        assert "75 database busy" in " ".join(result.stdout.split())
