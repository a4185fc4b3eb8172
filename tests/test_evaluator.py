"""The evaluator is a pure function: rules + activity + customer state -> award."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from loyalty_cli.clock import period_bounds
from loyalty_cli.evaluator import evaluate, matches, round_points
from loyalty_cli.models import Activity, Compare, CustomerState, RuleUsage
from loyalty_cli.rules import parse_rules

LONDON = ZoneInfo("Europe/London")
# Thursday 2026-11-19, midday in London.
THURSDAY = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)


def rules(earn: str, rounding: str = "floor", tz: str = "Europe/London") -> object:
    return parse_rules(
        f"program: {{name: T, timezone: {tz}, rounding: {rounding}}}\nearn:\n{earn}"
        "rewards:\n  - {id: coffee, name: Free coffee, cost: 100}\n"
    )


def state(**kw: object) -> CustomerState:
    base: dict[str, object] = {
        "customer_id": "C1",
        "enrolled_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return CustomerState(**{**base, **kw})  # type: ignore[arg-type]


def buy(amount: str, at: datetime = THURSDAY, **kw: object) -> Activity:
    return Activity("C1", "purchase", at, amount=Decimal(amount), **kw)  # type: ignore[arg-type]


def award_of(
    ruleset: object, activity: Activity, st: CustomerState | None = None
) -> dict[str, int]:
    award = evaluate(ruleset, activity, st or state())  # type: ignore[arg-type]
    assert award.points == sum(line.points for line in award.lines)
    return {line.rule: line.points for line in award.lines}


def test_point_rules_stack_and_multipliers_add_their_extra_to_the_base() -> None:
    rs = rules(
        "  - {id: base, on: purchase, points_per_unit: 1}\n"
        "  - {id: shoes, on: purchase, points_per_unit: 2, when: {category: shoes}}\n"
        "  - {id: double, on: purchase, multiply: 2}\n"
        "  - {id: half-again, on: purchase, multiply: 1.5}\n"
    )
    assert award_of(rs, buy("10.00", category="Shoes")) == {
        "base": 10,
        "shoes": 20,
        "double": 30,  # (2 - 1) x 30
        "half-again": 15,  # (1.5 - 1) x 30: multipliers add, they do not compound
    }


def test_priority_orders_rules_and_stop_ends_the_list() -> None:
    rs = rules(
        "  - {id: base, on: purchase, points_per_unit: 1}\n"
        "  - {id: gift-cards, on: purchase, points: 0, priority: 10, stop: true,"
        " when: {category: gift-card}}\n"
        "  - {id: vip-rate, on: purchase, points_per_unit: 3, priority: 5, stop: true,"
        " when: {spend: {gte: 1000}}}\n"
        "  - {id: campaign, on: purchase, multiply: 2}\n"
    )
    assert award_of(rs, buy("20.00", category="gift-card")) == {}
    assert award_of(rs, buy("20.00"), state(spend=Decimal("1500"))) == {"vip-rate": 60}
    assert award_of(rs, buy("20.00")) == {"base": 20, "campaign": 20}
    skipped = evaluate(rs, buy("20.00", category="gift-card"), state()).skipped  # type: ignore[arg-type]
    assert [s.rule for s in skipped] == ["gift-cards", "vip-rate", "base", "campaign"]
    assert skipped[1].reason == "not reached: rule 'gift-cards' has stop: true"


def test_equal_priorities_keep_file_order() -> None:
    rs = rules(
        "  - {id: second, on: purchase, points: 1, stop: true}\n"
        "  - {id: first, on: purchase, points: 2}\n"
    )
    assert award_of(rs, buy("5.00")) == {"second": 1}


@pytest.mark.parametrize(
    ("rounding", "amount", "expected"),
    [
        ("floor", "10.99", 10),
        ("nearest", "10.49", 10),
        ("nearest", "10.50", 11),
        ("ceil", "10.01", 11),
        ("floor", "0.99", None),  # rounds to nothing: no line at all
    ],
)
def test_rounding_policy(rounding: str, amount: str, expected: int | None) -> None:
    rs = rules("  - {id: base, on: purchase, points_per_unit: 1}\n", rounding=rounding)
    assert award_of(rs, buy(amount)) == ({} if expected is None else {"base": expected})


def test_rate_per_ten_units_like_square() -> None:
    rs = rules("  - {id: base, on: purchase, points_per_unit: 0.1}\n")
    assert award_of(rs, buy("105.00")) == {"base": 10}


def test_round_points_never_uses_floats() -> None:
    assert round_points(Decimal("268.28000000000003"), "floor") == 268
    assert round_points(Decimal("-0.5"), "floor") == -1


def test_min_amount_and_explanations() -> None:
    rs = rules("  - {id: big, on: purchase, points: 25, min_amount: 100}\n")
    assert award_of(rs, buy("100.00")) == {"big": 25}
    award = evaluate(rs, buy("99.99"), state())  # type: ignore[arg-type]
    assert award.points == 0
    assert award.skipped[0].reason == "amount 99.99 is below min_amount 100"


def test_window_is_inclusive_and_judged_on_the_shops_local_date() -> None:
    rs = rules(
        "  - {id: bf, on: purchase, points: 7, window: {from: 2026-11-27, to: 2026-11-30}}\n",
        tz="America/New_York",
    )
    # 03:00 UTC on the 27th is still the 26th in New York: outside the window.
    assert award_of(rs, buy("5.00", datetime(2026, 11, 27, 3, 0, tzinfo=UTC))) == {}
    assert award_of(rs, buy("5.00", datetime(2026, 11, 27, 5, 0, tzinfo=UTC))) == {"bf": 7}
    # 04:00 UTC on 1 December is still 30 November in New York: inside.
    assert award_of(rs, buy("5.00", datetime(2026, 12, 1, 4, 0, tzinfo=UTC))) == {"bf": 7}
    assert award_of(rs, buy("5.00", datetime(2026, 12, 1, 6, 0, tzinfo=UTC))) == {}


def test_weekdays() -> None:
    rs = rules("  - {id: thu, on: purchase, points: 3, weekdays: [thu]}\n")
    assert award_of(rs, buy("5.00")) == {"thu": 3}
    friday = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    award = evaluate(rs, buy("5.00", friday), state())  # type: ignore[arg-type]
    assert award.skipped[0].reason == "only on thu; 2026-11-20 is a fri"


def test_count_cap_and_points_cap_use_the_usage_in_the_window() -> None:
    rs = rules(
        "  - {id: review, on: review, points: 50, cap: {count: 1, per: month}}\n"
        "  - {id: per-unit, on: purchase, points_per_unit: 1, cap: {points: 100, per: day}}\n"
    )
    review = Activity("C1", "review", THURSDAY)
    assert award_of(rs, review) == {"review": 50}
    assert award_of(rs, review, state(usage={"review": RuleUsage(1, 50)})) == {}
    # 90 already given today: only 10 more fit under the 100-point cap.
    award = evaluate(rs, buy("40.00"), state(usage={"per-unit": RuleUsage(3, 90)}))  # type: ignore[arg-type]
    assert [(line.rule, line.points) for line in award.lines] == [("per-unit", 10)]
    assert award.lines[0].detail.endswith("capped at 100 points per day")


def test_budget_limits_a_rule_across_all_customers() -> None:
    rs = rules("  - {id: launch, on: purchase, points: 50, budget: 120}\n")
    assert award_of(rs, buy("5.00"), state(budget_used={"launch": 100})) == {"launch": 20}
    assert award_of(rs, buy("5.00"), state(budget_used={"launch": 120})) == {}


def test_reward_rules_give_a_zero_point_line_naming_the_reward() -> None:
    rs = rules("  - {id: bday, on: birthday, reward: coffee}\n")
    award = evaluate(rs, Activity("C1", "birthday", THURSDAY), state())  # type: ignore[arg-type]
    assert [(line.rule, line.points, line.reward) for line in award.lines] == [
        ("bday", 0, "coffee")
    ]


def test_customer_fields_in_conditions() -> None:
    rs = rules(
        "  - {id: first, on: purchase, points: 50, when: {purchases: 0}}\n"
        "  - {id: loyal, on: purchase, points: 5, when: {enrolled_days: {gte: 365}}}\n"
        "  - {id: friend, on: purchase, points: 1, when: {referred: true}}\n"
    )
    assert award_of(rs, buy("5.00")) == {"first": 50}
    veteran = state(purchases=3, enrolled_at=datetime(2025, 11, 19, tzinfo=UTC), referred_by="C0")
    assert award_of(rs, buy("5.00"), veteran) == {"loyal": 5, "friend": 1}


@pytest.mark.parametrize(
    ("test", "value", "expected"),
    [
        (Compare("category", "eq", "shoes"), "SHOES", True),
        (Compare("category", "ne", "shoes"), None, True),
        (Compare("category", "eq", "shoes"), None, False),
        (Compare("category", "not_in", frozenset({"gift-card"})), None, True),
        (Compare("category", "in", frozenset({"shoes", "bags"})), "Bags", True),
        (Compare("amount", "between", (Decimal(10), Decimal(20))), Decimal(20), True),
        (Compare("amount", "between", (Decimal(10), Decimal(20))), Decimal("20.01"), False),
        (Compare("amount", "gt", Decimal(10)), Decimal(10), False),
        (Compare("amount", "gte", Decimal(10)), Decimal(10), True),
        (Compare("amount", "lt", Decimal(10)), None, False),
    ],
)
def test_comparisons(test: Compare, value: object, expected: bool) -> None:
    assert matches(test, {test.field: value}) is expected


def test_period_bounds_follow_the_shop_calendar() -> None:
    tz = ZoneInfo("Europe/London")
    start, end = period_bounds("week", THURSDAY, tz)
    assert (start.date(), end.date()) == (
        date(2026, 11, 16),
        date(2026, 11, 23),
    )  # Monday to Monday
    start, end = period_bounds("month", datetime(2026, 12, 31, 23, 30, tzinfo=UTC), tz)
    assert (start.date(), end.date()) == (date(2026, 12, 1), date(2027, 1, 1))
    start, end = period_bounds("year", THURSDAY, tz)
    assert (start.date(), end.date()) == (date(2026, 1, 1), date(2027, 1, 1))
    # Summer time: a London day starts at 23:00 UTC the evening before.
    start, _ = period_bounds("day", datetime(2026, 7, 1, 12, tzinfo=UTC), tz)
    assert start.astimezone(UTC) == datetime(2026, 6, 30, 23, 0, tzinfo=UTC)
    assert period_bounds("lifetime", THURSDAY, tz) == (None, None)
