"""The rewards catalogue: cost, tier restriction, per-customer limits, availability dates."""

from __future__ import annotations

import pytest

from .conftest import Shop

REWARD_RULES = """\
program: {name: Shop, timezone: Europe/London}
tiers:
  metric: spend
  window: lifetime
  levels:
    - {id: bronze, name: Bronze, threshold: 0}
    - {id: gold, name: Gold, threshold: 500}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: welcome, on: enroll, points: 100}
rewards:
  - {id: coffee, name: Free coffee, cost: 50, limit: {count: 1, per: week}}
  - {id: lounge, name: Gold lounge pass, cost: 100, tiers: [gold]}
  - {id: xmas, name: Christmas hamper, cost: 80, window: {from: 2026-12-01, to: 2026-12-24}}
"""


@pytest.fixture
def catalogue(shop: Shop) -> Shop:
    shop.write_rules(REWARD_RULES)
    shop.ok("enroll", "C1", "--at", "2026-11-01")
    return shop


def test_a_limited_reward_is_refused_past_its_limit_for_the_period(catalogue: Shop) -> None:
    catalogue.ok("redeem", "C1", "--reward", "coffee", "--at", "2026-11-16T10:00")  # a Monday
    message = catalogue.fails(1, "redeem", "C1", "--reward", "coffee", "--at", "2026-11-22T18:00")
    assert message == (
        "error: reward 'coffee' is not available: the limit is 1 per week, and 'C1' has had 1"
    )
    catalogue.ok("redeem", "C1", "--reward", "coffee", "--at", "2026-11-23T10:00")  # next week


def test_a_tier_reward_needs_the_tier(catalogue: Shop) -> None:
    message = catalogue.fails(1, "redeem", "C1", "--reward", "lounge", "--at", "2026-11-02")
    assert "it is for gold members; 'C1' is bronze" in message
    catalogue.ok("earn", "C1", "--amount", "500", "--at", "2026-11-02")
    catalogue.ok("redeem", "C1", "--reward", "lounge", "--at", "2026-11-03")


def test_a_seasonal_reward_is_only_offered_in_its_window(catalogue: Shop) -> None:
    catalogue.clock("2027-01-01")
    assert "offered from 2026-12-01" in catalogue.fails(
        1, "redeem", "C1", "--reward", "xmas", "--at", "2026-11-30"
    )
    catalogue.ok("redeem", "C1", "--reward", "xmas", "--at", "2026-12-01")
    assert "offered until 2026-12-24" in catalogue.fails(
        1, "redeem", "C1", "--reward", "xmas", "--at", "2026-12-25"
    )


def test_rewards_listing_shows_what_a_customer_can_redeem_now(catalogue: Shop) -> None:
    doc = catalogue.ok("rewards", "C1", "--at", "2026-12-02")
    assert doc["available"] == 100
    now = {r["reward"]: (r["can_redeem"], r["why_not"]) for r in doc["rewards"]}
    assert now == {
        "coffee": (True, None),
        "lounge": (False, "it is for gold members; 'C1' is bronze"),
        "xmas": (True, None),
    }
    catalogue.ok("redeem", "C1", "--reward", "xmas", "--at", "2026-12-02")
    after = {
        r["reward"]: r["why_not"]
        for r in catalogue.ok("rewards", "C1", "--at", "2026-12-02")["rewards"]
    }
    assert after["coffee"] == "needs 30 more points"


def test_catalogue_without_a_customer(catalogue: Shop) -> None:
    doc = catalogue.ok("rewards")
    assert doc["customer_id"] is None
    assert doc["rewards"][0] == {
        "reward": "coffee",
        "name": "Free coffee",
        "cost": 50,
        "tiers": None,
        "limit": {"count": 1, "per": "week"},
        "available_from": None,
        "available_to": None,
    }


def test_unknown_tier_in_a_reward_is_caught_in_the_rules_file(shop: Shop) -> None:
    shop.write_rules(REWARD_RULES.replace("tiers: [gold]", "tiers: [golden]"))
    message = shop.fails(78, "rules", "check")
    assert "unknown tier 'golden' (did you mean 'gold'?); tiers are: bronze, gold" in message
