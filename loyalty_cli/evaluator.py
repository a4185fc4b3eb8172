"""The rule evaluator: a pure function from (rules, activity, customer state)
to an `Award`, with one line per rule that fired and, for explanations, why
each other rule did not.

Stacking, stated once (the README repeats it):
1. The rules for the activity's kind (`on`) are taken in order of `priority`,
   highest first; equal priorities keep their order in the file.
2. Every rule that matches fires, and point rules add up (they stack).
3. A rule with `stop: true` that fires ends the list: no later rule fires.
4. Multipliers apply after all point rules, to the base: the sum of the point
   lines. Each multiplier adds its own line of (multiply - 1) x base, so two
   2x campaigns give 3x, not 4x.
5. Every line is rounded on its own with the programme's rounding (floor by
   default), so the lines always add up to the total.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

from .clock import shop_day, zone
from .models import (
    Activity,
    All,
    Any_,
    Award,
    AwardLine,
    Compare,
    Condition,
    CustomerState,
    Not,
    Rounding,
    Rule,
    Ruleset,
    RuleUsage,
    Skip,
    TierLevel,
)

_NOON = datetime(2000, 1, 1, 12, tzinfo=UTC)  # a placeholder time for rebuilt details

_ROUNDING = {"floor": ROUND_FLOOR, "nearest": ROUND_HALF_UP, "ceil": ROUND_CEILING}
_WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_OP_WORDS = {
    "eq": "is",
    "ne": "is not",
    "in": "in",
    "not_in": "not in",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "between": "between",
}


def round_points(exact: Decimal, rounding: Rounding) -> int:
    return int(exact.to_integral_value(_ROUNDING[rounding]))


def shop_zone(ruleset: Ruleset) -> ZoneInfo:
    return zone(ruleset.program.timezone)


def rules_for(ruleset: Ruleset, event: str) -> tuple[Rule, ...]:
    """The rules for one kind of activity, in evaluation order."""
    return ruleset.rules_by_event.get(event, ())


def evaluate(
    ruleset: Ruleset, activity: Activity, state: CustomerState, *, explain: bool = True
) -> Award:
    """Apply the rules to one activity. Pure: no clock, no I/O. `explain`: also say
    why each other rule did not fire (words nobody reads during an import)."""
    tz = shop_zone(ruleset)
    rounding = ruleset.program.rounding
    facts = _facts(activity, state, tz)
    local_day = shop_day(activity.at, tz)
    lines: list[AwardLine] = []
    skipped: list[Skip] = []
    multipliers: list[Rule] = []
    stopped_by: str | None = None
    for rule in rules_for(ruleset, activity.event):
        if stopped_by is not None:
            if explain:
                skipped.append(Skip(rule.id, f"not reached: rule '{stopped_by}' has stop: true"))
            continue
        reason = _why_not(rule, activity, facts, local_day, state.usage.get(rule.id), explain)
        if reason is not None:
            if explain:
                skipped.append(Skip(rule.id, reason))
            continue
        if rule.is_multiplier:
            multipliers.append(rule)
        else:
            _add(lines, skipped, rule, *_base_line(rule, activity, ruleset, rounding), state)
        if rule.stop:
            stopped_by = rule.id
    base = sum(line.points for line in lines)
    for rule in multipliers:
        assert rule.multiply is not None
        points, detail = _multiplied(rule.multiply, base, rounding)
        _add(lines, skipped, rule, points, detail, state)
    tier = state.tier
    if tier is not None and tier.multiplier != 1 and activity.event == "purchase" and base:
        # The tier's multiplier is a line of its own, after the campaigns, on the same base.
        points, detail = _tier_line(tier, base, rounding)
        if points:
            lines.append(AwardLine(rule=f"tier:{tier.id}", points=points, detail=detail))
    return Award(
        points=sum(line.points for line in lines), lines=tuple(lines), skipped=tuple(skipped)
    )


def _multiplied(multiply: Decimal, base: int, rounding: Rounding) -> tuple[int, str]:
    exact = base * (multiply - 1)
    points = round_points(exact, rounding)
    detail = f"x{_num(multiply)} on {base} base points: +{_num(exact)}"
    return points, _rounded(detail, exact, points, rounding)


def _tier_line(tier: TierLevel, base: int, rounding: Rounding) -> tuple[int, str]:
    exact = base * (tier.multiplier - 1)
    points = round_points(exact, rounding)
    detail = f"{tier.name} tier x{_num(tier.multiplier)} on {base} base points: +{_num(exact)}"
    return points, _rounded(detail, exact, points, rounding)


def base_of(ruleset: Ruleset, lines: Iterable[tuple[str | None, int]]) -> int:
    """The base of an award, from its lines (rule, points): the sum of its point
    lines, which multipliers and the tier's multiplier multiply."""
    point_rules = {r.id for r in ruleset.rules if r.multiply is None}
    return sum(points for rule, points in lines if rule in point_rules)


def line_detail(
    ruleset: Ruleset, rule_id: str, points: int, amount: Decimal | None, base: int
) -> str | None:
    """How an award line was computed, rebuilt from the rules that made it: the
    ledger keeps the words only for a line a cap or a budget cut short. `base`
    is the sum of the activity's point lines (what multipliers multiply). None
    when the rules do not know the line."""
    rounding = ruleset.program.rounding
    if rule_id.startswith("tier:"):
        if ruleset.tiers is None:
            return None
        level = next((lv for lv in ruleset.tiers.levels if lv.id == rule_id[5:]), None)
        return None if level is None else _tier_line(level, base, rounding)[1]
    rule = next((r for r in ruleset.rules if r.id == rule_id), None)
    if rule is None:
        return None
    if rule.multiply is not None:
        return _multiplied(rule.multiply, base, rounding)[1]
    if rule.points_per_unit is not None and amount is None:
        return None
    return _base_line(rule, Activity("", "", _NOON, amount=amount), ruleset, rounding)[1]


def _add(
    lines: list[AwardLine],
    skipped: list[Skip],
    rule: Rule,
    points: int,
    detail: str,
    state: CustomerState,
) -> None:
    """Append a line after applying the rule's points cap and budget. A line they
    cut short is `trimmed`: its words cannot be rebuilt from the rules alone."""
    usage = state.usage.get(rule.id, RuleUsage())
    trimmed = False
    if rule.cap is not None and rule.cap.points is not None:
        room = rule.cap.points - usage.points
        if room <= 0:
            skipped.append(Skip(rule.id, f"cap reached: {rule.cap.points} points {_per(rule)}"))
            return
        if points > room:
            points, detail = room, f"{detail}; capped at {rule.cap.points} points {_per(rule)}"
            trimmed = True
    if rule.budget is not None:
        room = rule.budget - state.budget_used.get(rule.id, 0)
        if room <= 0:
            skipped.append(Skip(rule.id, f"budget of {rule.budget} points used up"))
            return
        if points > room:
            points, detail = room, f"{detail}; limited by the budget of {rule.budget} points"
            trimmed = True
    if points == 0 and rule.reward is None:
        how = "" if rule.points is not None else f" ({detail})"
        skipped.append(Skip(rule.id, f"gives 0 points{how}", fired=True))
        return
    lines.append(
        AwardLine(rule=rule.id, points=points, detail=detail, reward=rule.reward, trimmed=trimmed)
    )


def _base_line(
    rule: Rule, activity: Activity, ruleset: Ruleset, rounding: Rounding
) -> tuple[int, str]:
    if rule.reward is not None:
        return 0, f"reward '{rule.reward}' ({ruleset.rewards[rule.reward].name})"
    if rule.points is not None:
        return rule.points, f"{rule.points} points"
    assert rule.points_per_unit is not None and activity.amount is not None
    exact = activity.amount * rule.points_per_unit
    points = round_points(exact, rounding)
    detail = f"{activity.amount} x {_num(rule.points_per_unit)} per unit = {_num(exact)}"
    return points, _rounded(detail, exact, points, rounding)


def _rounded(detail: str, exact: Decimal, points: int, rounding: Rounding) -> str:
    return detail if exact == points else f"{detail}, {rounding} -> {points}"


_NO = "no"  # a rule that does not fire, when nobody asked why


def _why_not(
    rule: Rule,
    activity: Activity,
    facts: Mapping[str, object],
    local_day: date,
    usage: RuleUsage | None,
    explain: bool = True,
) -> str | None:
    """None if the rule fires; else why not (in words only when `explain`)."""
    if rule.window_from is not None and local_day < rule.window_from:
        return f"window starts {rule.window_from}" if explain else _NO
    if rule.window_to is not None and local_day > rule.window_to:
        return f"window ended {rule.window_to}" if explain else _NO
    if rule.weekdays is not None and local_day.weekday() not in rule.weekdays:
        if not explain:
            return _NO
        days = ", ".join(_WEEKDAY_NAMES[d] for d in sorted(rule.weekdays))
        return f"only on {days}; {local_day} is a {_WEEKDAY_NAMES[local_day.weekday()]}"
    if rule.min_amount is not None and (activity.amount or 0) < rule.min_amount:
        if not explain:
            return _NO
        return f"amount {activity.amount} is below min_amount {_num(rule.min_amount)}"
    if rule.when is not None and not matches(rule.when, facts):
        return f"condition not met: {describe(rule.when)}" if explain else _NO
    cap = rule.cap
    if cap is not None and cap.count is not None and usage and usage.count >= cap.count:
        if not explain:
            return _NO
        return f"cap reached: {cap.count} time{'s' if cap.count != 1 else ''} {_per(rule)}"
    return None


def _per(rule: Rule) -> str:
    assert rule.cap is not None
    return "in total" if rule.cap.per == "lifetime" else f"per {rule.cap.per}"


def _facts(activity: Activity, state: CustomerState, tz: tzinfo) -> dict[str, object]:
    """The values conditions may test, by field name (see rules.FIELDS)."""
    enrolled = shop_day(state.enrolled_at, tz)
    return {
        "amount": activity.amount,
        "category": activity.category,
        "sku": activity.sku,
        "quantity": activity.quantity,
        "customer_id": activity.customer_id,
        "purchases": state.purchases,
        "spend": state.spend,
        "balance": state.balance,
        "enrolled_days": (shop_day(activity.at, tz) - enrolled).days,
        "referred": state.referred_by is not None,
        "tier": None if state.tier is None else state.tier.id,
        "badge": state.badges,
    }


def matches(condition: Condition, facts: Mapping[str, object]) -> bool:
    """Evaluate declarative condition data. A test on a missing value is false,
    except `ne` and `not_in`, which are true. Text compares without case."""
    if isinstance(condition, All):
        return all(matches(c, facts) for c in condition.items)
    if isinstance(condition, Any_):
        return any(matches(c, facts) for c in condition.items)
    if isinstance(condition, Not):
        return not matches(condition.item, facts)
    return _compare(condition, facts.get(condition.field))


def _compare(test: Compare, value: Any) -> bool:
    op, target = test.op, test.value
    if value is None:
        return op in ("ne", "not_in")
    if isinstance(value, frozenset):  # the badges held: a test on any one of them
        wanted = target if isinstance(target, frozenset) else frozenset([target])
        return bool(value & wanted) == (op in ("eq", "in"))
    if isinstance(value, str):
        value = value.casefold()  # the rules loader casefolds the text it compares with
    if op in ("in", "not_in"):
        return (value in cast(frozenset[Any], target)) == (op == "in")
    if op == "between":
        low, high = cast(tuple[Any, Any], target)
        return bool(low <= value <= high)
    return bool(_COMPARISONS[op](value, target))


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def describe(condition: Condition) -> str:
    """A condition in words, for explanations."""
    if isinstance(condition, All):
        return " and ".join(describe(c) for c in condition.items)
    if isinstance(condition, Any_):
        return "(" + " or ".join(describe(c) for c in condition.items) + ")"
    if isinstance(condition, Not):
        return f"not ({describe(condition.item)})"
    value = condition.value
    if isinstance(value, frozenset):
        shown = "[" + ", ".join(sorted(str(v) for v in value)) + "]"
    elif isinstance(value, tuple):
        shown = f"{value[0]} and {value[1]}"
    else:
        shown = str(value).lower() if isinstance(value, bool) else str(value)
    return f"{condition.field} {_OP_WORDS[condition.op]} {shown}"


def _num(value: Decimal) -> str:
    """A Decimal without trailing zeros or exponent: 2, 1.5, 63.75."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
