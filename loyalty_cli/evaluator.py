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
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

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
    Period,
    Rounding,
    Rule,
    Ruleset,
    RuleUsage,
    Skip,
)

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
    return ZoneInfo(ruleset.program.timezone)


def rules_for(ruleset: Ruleset, event: str) -> tuple[Rule, ...]:
    """The rules for one kind of activity, in evaluation order."""
    return ruleset.rules_by_event.get(event, ())


def period_bounds(per: Period, at: datetime, tz: tzinfo) -> tuple[datetime | None, datetime | None]:
    """The calendar period containing `at`, judged on the shop's local date, as
    aware [start, end) bounds; (None, None) for lifetime. Weeks start on Monday."""
    if per == "lifetime":
        return (None, None)
    local = at.astimezone(tz).date()
    start: date
    end: date
    if per == "day":
        start, end = local, local + timedelta(days=1)
    elif per == "week":
        start = local - timedelta(days=local.weekday())
        end = start + timedelta(days=7)
    elif per == "month":
        start = local.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        start, end = (
            local.replace(month=1, day=1),
            local.replace(year=local.year + 1, month=1, day=1),
        )
    return (datetime.combine(start, time(), tz), datetime.combine(end, time(), tz))


def limited_rules(ruleset: Ruleset, activity: Activity, state: CustomerState) -> tuple[Rule, ...]:
    """The capped or budgeted rules whose other conditions this activity meets:
    the only ones whose usage `evaluate` reads, so the only ones worth counting.
    `state` needs no usage or budget figures yet: no other condition reads them."""
    tz = shop_zone(ruleset)
    facts = _facts(activity, state, tz)
    local_day = activity.at.astimezone(tz).date()
    return tuple(
        rule
        for rule in rules_for(ruleset, activity.event)
        if (rule.cap is not None or rule.budget is not None)
        and _why_not(rule, activity, facts, local_day, None) is None
    )


def evaluate(ruleset: Ruleset, activity: Activity, state: CustomerState) -> Award:
    """Apply the rules to one activity. Pure: no clock, no I/O."""
    tz = shop_zone(ruleset)
    rounding = ruleset.program.rounding
    facts = _facts(activity, state, tz)
    local_day = activity.at.astimezone(tz).date()
    lines: list[AwardLine] = []
    skipped: list[Skip] = []
    multipliers: list[Rule] = []
    stopped_by: str | None = None
    for rule in rules_for(ruleset, activity.event):
        if stopped_by is not None:
            skipped.append(Skip(rule.id, f"not reached: rule '{stopped_by}' has stop: true"))
            continue
        reason = _why_not(rule, activity, facts, local_day, state.usage.get(rule.id))
        if reason is not None:
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
        exact = base * (rule.multiply - 1)
        points = round_points(exact, rounding)
        detail = f"x{_num(rule.multiply)} on {base} base points: +{_num(exact)}"
        _add(lines, skipped, rule, points, _rounded(detail, exact, points, rounding), state)
    tier = state.tier
    if tier is not None and tier.multiplier != 1 and activity.event == "purchase" and base:
        # The tier's multiplier is a line of its own, after the campaigns, on the same base.
        exact = base * (tier.multiplier - 1)
        points = round_points(exact, rounding)
        detail = f"{tier.name} tier x{_num(tier.multiplier)} on {base} base points: +{_num(exact)}"
        if points:
            lines.append(
                AwardLine(
                    rule=f"tier:{tier.id}",
                    points=points,
                    detail=_rounded(detail, exact, points, rounding),
                )
            )
    return Award(
        points=sum(line.points for line in lines), lines=tuple(lines), skipped=tuple(skipped)
    )


def _add(
    lines: list[AwardLine],
    skipped: list[Skip],
    rule: Rule,
    points: int,
    detail: str,
    state: CustomerState,
) -> None:
    """Append a line after applying the rule's points cap and budget."""
    usage = state.usage.get(rule.id, RuleUsage())
    if rule.cap is not None and rule.cap.points is not None:
        room = rule.cap.points - usage.points
        if room <= 0:
            skipped.append(Skip(rule.id, f"cap reached: {rule.cap.points} points {_per(rule)}"))
            return
        if points > room:
            points, detail = room, f"{detail}; capped at {rule.cap.points} points {_per(rule)}"
    if rule.budget is not None:
        room = rule.budget - state.budget_used.get(rule.id, 0)
        if room <= 0:
            skipped.append(Skip(rule.id, f"budget of {rule.budget} points used up"))
            return
        if points > room:
            points, detail = room, f"{detail}; limited by the budget of {rule.budget} points"
    if points == 0 and rule.reward is None:
        how = "" if rule.points is not None else f" ({detail})"
        skipped.append(Skip(rule.id, f"fired, but gives 0 points{how}"))
        return
    lines.append(AwardLine(rule=rule.id, points=points, detail=detail, reward=rule.reward))


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


def _why_not(
    rule: Rule,
    activity: Activity,
    facts: Mapping[str, object],
    local_day: date,
    usage: RuleUsage | None,
) -> str | None:
    if rule.window_from is not None and local_day < rule.window_from:
        return f"window starts {rule.window_from}"
    if rule.window_to is not None and local_day > rule.window_to:
        return f"window ended {rule.window_to}"
    if rule.weekdays is not None and local_day.weekday() not in rule.weekdays:
        days = ", ".join(_WEEKDAY_NAMES[d] for d in sorted(rule.weekdays))
        return f"only on {days}; {local_day} is a {_WEEKDAY_NAMES[local_day.weekday()]}"
    if rule.min_amount is not None and (activity.amount or 0) < rule.min_amount:
        return f"amount {activity.amount} is below min_amount {_num(rule.min_amount)}"
    if rule.when is not None and not matches(rule.when, facts):
        return f"condition not met: {describe(rule.when)}"
    cap = rule.cap
    if cap is not None and cap.count is not None and usage and usage.count >= cap.count:
        return f"cap reached: {cap.count} time{'s' if cap.count != 1 else ''} {_per(rule)}"
    return None


def _per(rule: Rule) -> str:
    assert rule.cap is not None
    return "in total" if rule.cap.per == "lifetime" else f"per {rule.cap.per}"


def _facts(activity: Activity, state: CustomerState, tz: tzinfo) -> dict[str, object]:
    """The values conditions may test, by field name (see rules.FIELDS)."""
    enrolled = state.enrolled_at.astimezone(tz).date()
    return {
        "amount": activity.amount,
        "category": activity.category,
        "sku": activity.sku,
        "quantity": activity.quantity,
        "customer_id": activity.customer_id,
        "purchases": state.purchases,
        "spend": state.spend,
        "balance": state.balance,
        "enrolled_days": (activity.at.astimezone(tz).date() - enrolled).days,
        "referred": state.referred_by is not None,
        "tier": None if state.tier is None else state.tier.id,
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
