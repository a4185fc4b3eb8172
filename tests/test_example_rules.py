"""rules.example.yaml is valid, documents every key, and drives the demo."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loyalty_cli.games.section import (
    BADGE_KEYS,
    CHALLENGE_KEYS,
    GAME_KEYS,
    GIVE_KEYS,
    GOAL_KEYS,
    STEP_KEYS,
    STREAK_KEYS,
)
from loyalty_cli.rules import (
    CAP_KEYS,
    FIELDS,
    LEVEL_KEYS,
    LIMIT_KEYS,
    POINTS_KEYS,
    PROGRAM_KEYS,
    REWARD_KEYS,
    RULE_KEYS,
    TIER_KEYS,
    TOP_KEYS,
    load_rules,
)

from .conftest import EXAMPLE_RULES, Shop


def test_example_rules_are_valid_and_use_every_kind_of_rule() -> None:
    ruleset = load_rules(EXAMPLE_RULES)
    kinds = {r.on for r in ruleset.rules}
    assert {"purchase", "enroll", "referral", "review", "birthday"} <= kinds
    assert any(r.multiply for r in ruleset.rules)
    assert any(r.cap for r in ruleset.rules)
    assert any(r.budget for r in ruleset.rules)
    assert any(r.stop for r in ruleset.rules)
    assert any(r.reward for r in ruleset.rules)
    assert any(r.window_from for r in ruleset.rules)
    assert any(r.weekdays for r in ruleset.rules)


def test_example_rules_document_every_key_and_field() -> None:
    text = EXAMPLE_RULES.read_text()
    for key in (
        *TOP_KEYS,
        *PROGRAM_KEYS,
        *POINTS_KEYS,
        *TIER_KEYS,
        *LEVEL_KEYS,
        *RULE_KEYS,
        *REWARD_KEYS,
        *LIMIT_KEYS,
        *CAP_KEYS,
        *FIELDS,
        *BADGE_KEYS,
        *GAME_KEYS,
        *GIVE_KEYS,
        *STEP_KEYS,
        *STREAK_KEYS,
        *CHALLENGE_KEYS,
        *GOAL_KEYS,
    ):
        if key == "description" and "description" in text:
            continue
        assert re.search(rf"\b{re.escape(key)}\b", text), f"rules.example.yaml never mentions {key}"


def test_demo_builds_a_ledger_from_the_example_rules(shop: Shop) -> None:
    doc = shop.ok("demo", "--db", str(shop.dir / "demo.db"))
    steps = {s["command"]: s["result"] for s in doc["steps"]}
    # Black Friday doubles alan's 120.00 bag purchase: 120 base + 120 bags + 25 big
    # basket + 50 first purchase = 315, doubled to 630.
    bags = steps["loyalty earn alan --amount 120.00 --category bags --txn R-1003"]
    assert bags["points"] == 630
    assert {line["rule"] for line in bags["lines"]} >= {"black-friday", "big-basket"}
    gift_card = steps["loyalty earn ada --amount 35.00 --category gift-card --txn R-1004 --explain"]
    assert gift_card["points"] == 0
    retry = next(s["result"] for s in doc["steps"] if "a retry" in s["command"])
    assert retry["duplicate"] is True
    balances = {
        s["result"]["customer_id"]: s["result"]["balance"]
        for s in doc["steps"]
        if s["command"].startswith("loyalty balance")
    }
    assert all(b >= 0 for b in balances.values()) and len(balances) == 4
    # The lifecycle: a refund inside the return window, an expiry, a tier upgrade.
    back = steps["loyalty refund R-1003 --amount 40.00 --txn RF-1003"]
    assert back["points"] == -(630 * 40 // 120)
    night = steps["loyalty nightly --as-of 2026-12-13"]
    assert (night["expired_points"], night["tier_upgrades"]) == (100, 1)
    assert steps["loyalty tier grace --at 2026-12-13"]["tier"] == "silver"
    assert balances["linus"] == 0
    # The demo ends with the summary report, whose liability is those balances.
    assert doc["steps"][-1]["command"] == "loyalty report --as-of 2026-12-13"
    report = doc["steps"][-1]["result"]
    assert report["points_outstanding"] == sum(balances.values())
    assert (report["members"], report["points_expired"]) == (4, 100)
    assert shop.ok("verify", "--db", str(shop.dir / "demo.db"))["ok"] is True
    # A coffee card completes, with its badge; the badge's holder then earns more.
    card = steps["loyalty earn ada --amount 3.00 --category coffee --txn C-005 --explain"]
    assert [
        (line["rule"], line.get("reward"), line.get("badge")) for line in card["lines"][1:]
    ] == [
        ("game:coffee-card#1", "coffee", None),
        ("game:coffee-card#1", None, "regular"),
    ]
    progress = steps["loyalty progress ada"]
    assert [b["badge"] for b in progress["badges"]] == ["regular"]
    kinds = {g["kind"] for g in progress["games"]}
    assert {"stamps", "milestones", "streak"} <= kinds


def test_example_rules_ship_a_stamp_card_a_milestone_a_streak_and_a_badge() -> None:
    games = load_rules(EXAMPLE_RULES).games
    assert games is not None and games.badges
    assert {g.kind for g in games.games} >= {"stamps", "milestones", "streak"}


@pytest.mark.sqlite_only  # the demo builds its own file
def test_demo_never_overwrites_a_file_it_did_not_make(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    message = shop.fails(2, "demo", "--db", str(shop.db))
    assert "will not overwrite" in message
    assert shop.ok("balance", "C1")["balance"] == 100


def test_explain_on_the_demo_agrees_with_what_was_recorded(shop: Shop) -> None:
    """Ada holds the coffee card's badge when she buys shoes (R-1001), so the
    badge holders' rule fired; and the purchase that filled her card (C-005)
    carries the card's lines. Explained again, neither disagrees with the ledger."""
    demo = str(shop.dir / "demo.db")
    shop.ok("demo", "--db", demo)
    rules = str(Path(__file__).resolve().parent.parent / "rules.example.yaml")
    shoes = shop.ok("explain", "R-1001", "--db", demo, "--rules", rules)
    assert "regulars-earn-more" in [line["rule"] for line in shoes["fired"]]
    assert "regulars-earn-more" not in [line["rule"] for line in shoes["not_fired"]]
    assert shoes["note"] is None
    card = shop.ok("explain", "C-005", "--db", demo, "--rules", rules)
    assert any(line["rule"].startswith("game:coffee-card#") for line in card["fired"])
    assert card["note"] is None
