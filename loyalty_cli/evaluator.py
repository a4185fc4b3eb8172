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
from datetime import date, tzinfo
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
    ItemAward,
    Not,
    Rounding,
    Rule,
    Ruleset,
    RuleUsage,
    Skip,
    TierLevel,
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
    return zone(ruleset.program.timezone)


def rules_for(ruleset: Ruleset, event: str) -> tuple[Rule, ...]:
    """The rules for one kind of activity, in evaluation order."""
    return ruleset.rules_by_event.get(event, ())


def evaluate(
    ruleset: Ruleset, activity: Activity, state: CustomerState, *, explain: bool = True
) -> Award:
    """Apply the rules to one activity. Pure: no clock, no I/O. `explain`: also say
    why each other rule did not fire (words nobody reads during an import)."""
    if len(activity.lines) > 1:
        return _receipt(ruleset, activity, state, explain)
    tz = shop_zone(ruleset)
    rounding = ruleset.program.rounding
    facts = _facts(activity, state, tz)
    local_day = shop_day(activity.at, tz)
    rules = rules_for(ruleset, activity.event)
    excluded_by = _excluder(rules, activity.amount, facts, local_day, state)
    if excluded_by is not None:
        # A one-line purchase of an excluded line is a receipt of excluded lines only.
        why = f"not reached: the purchase is excluded by rule '{excluded_by}'"
        skipped = tuple(
            Skip(r.id, "excludes this purchase: it earns nothing", fired=True)
            if r.id == excluded_by
            else Skip(r.id, why)
            for r in rules
        )
        return Award(0, (), skipped if explain else ())
    spent: dict[str, int] = {}
    lines, skips, multipliers = _part(
        rules, activity.amount, activity.amount, facts, local_day, state, ruleset, spent, explain
    )
    _multiply(lines, skips, multipliers, state, rounding, spent, activity.event == "purchase")
    return Award(
        points=sum(line.points for line in lines), lines=tuple(lines), skipped=tuple(skips)
    )


def _excluder(
    rules: Iterable[Rule],
    basket: Decimal | None,
    facts: Mapping[str, object],
    local_day: date,
    state: CustomerState,
) -> str | None:
    """The first exclusion rule that matches a line, if any. Exclusions are judged
    before every other rule, whatever their priority."""
    for rule in rules:
        if (
            rule.exclude
            and _why_not(rule, basket, facts, local_day, state.usage.get(rule.id), explain=False)
            is None
        ):
            return rule.id
    return None


def _part(
    rules: Iterable[Rule],
    amount: Decimal | None,
    basket: Decimal | None,
    facts: Mapping[str, object],
    local_day: date,
    state: CustomerState,
    ruleset: Ruleset,
    spent: dict[str, int],
    explain: bool,
    fixed: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> tuple[list[AwardLine], list[Skip], list[Rule]]:
    """Run the point rules of one part (a line, or a receipt as a whole): their
    lines, why the others did not fire, and the multipliers that fired. `amount`
    is what points_per_unit multiplies; `basket` what min_amount tests. `fixed`:
    each rule's reasons that are the same on every line (see _fixed), worked out
    once per receipt."""
    lines: list[AwardLine] = []
    skipped: list[Skip] = []
    multipliers: list[Rule] = []
    stopped_by: str | None = None
    rounding = ruleset.program.rounding
    for rule in rules:
        if rule.exclude:
            continue
        if stopped_by is not None:
            if explain:
                skipped.append(Skip(rule.id, f"not reached: rule '{stopped_by}' has stop: true"))
            continue
        if fixed is None:
            reason = _why_not(rule, basket, facts, local_day, state.usage.get(rule.id), explain)
        else:
            reason, after = fixed[rule.id]
            if reason is None:
                if rule.when is not None and not matches(rule.when, facts):
                    reason = f"condition not met: {describe(rule.when)}" if explain else _NO
                else:
                    reason = after
        if reason is not None:
            if explain:
                skipped.append(Skip(rule.id, reason))
            continue
        if rule.is_multiplier:
            multipliers.append(rule)
        else:
            _add(lines, skipped, rule, *_base_line(rule, amount, ruleset, rounding), state, spent)
        if rule.stop:
            stopped_by = rule.id
    return lines, skipped, multipliers


def _multiply(
    lines: list[AwardLine],
    skipped: list[Skip],
    multipliers: Iterable[Rule],
    state: CustomerState,
    rounding: Rounding,
    spent: dict[str, int],
    purchase: bool,
) -> None:
    """Add a part's multiplier lines and its tier line, each on the part's base
    (the sum of its point lines), each rounded on its own."""
    base = sum(line.points for line in lines)
    for rule in multipliers:
        assert rule.multiply is not None
        points, detail = _multiplied(rule.multiply, base, rounding)
        _add(lines, skipped, rule, points, detail, state, spent)
    tier = state.tier
    if tier is not None and tier.multiplier != 1 and purchase and base:
        # The tier's multiplier is a line of its own, after the campaigns, on the same base.
        points, detail = _tier_line(tier, base, rounding)
        if points:
            lines.append(AwardLine(rule=f"tier:{tier.id}", points=points, detail=detail))


def _receipt(ruleset: Ruleset, activity: Activity, state: CustomerState, explain: bool) -> Award:
    """A receipt of several lines. Each line is a part of its own, where the
    line rules (scope `line`) run on its amount, category, sku and quantity; the
    receipt is one more part, where the receipt rules run once on the basket
    (the lines not excluded). The receipt's multipliers apply to every part, a
    line's own multipliers to that line; each part's lines are rounded on their
    own, so a receipt's points are the sum of its lines' points and its own."""
    tz = shop_zone(ruleset)
    rounding = ruleset.program.rounding
    local_day = shop_day(activity.at, tz)
    rules = rules_for(ruleset, activity.event)
    common = _facts(activity, state, tz)
    basket_rules = [r for r in rules if r.scope == "receipt"]
    line_rules = [r for r in rules if r.scope == "line"]
    line_facts: list[dict[str, object]] = []
    excluded: list[str | None] = []
    for line in activity.lines:
        facts = {
            **common,
            "amount": line.amount,
            "category": line.category,
            "sku": line.sku,
            "quantity": line.quantity,
            "items": line.quantity,
        }
        line_facts.append(facts)
        excluded.append(_excluder(line_rules, activity.amount, facts, local_day, state))
    kept = [line for line, by in zip(activity.lines, excluded, strict=True) if by is None]
    basket = sum((line.amount for line in kept), Decimal("0.00"))
    count = sum(line.quantity for line in kept)
    if not kept:
        why = "not reached: every line of the receipt is excluded"
        items = tuple(
            ItemAward(n, line, 0, excluded_by=by)
            for n, (line, by) in enumerate(zip(activity.lines, excluded, strict=True), 1)
        )
        unreached = tuple(Skip(r.id, why) for r in rules if not r.exclude) if explain else ()
        return Award(0, (), unreached, items)
    receipt_facts = {
        **common,
        "amount": basket,
        "quantity": count,
        "items": count,
        "category": None,
        "sku": None,
    }
    spent: dict[str, int] = {}
    own, own_skipped, receipt_multipliers = _part(
        basket_rules, basket, basket, receipt_facts, local_day, state, ruleset, spent, explain
    )
    order = {rule.id: n for n, rule in enumerate(rules)}
    purchase = activity.event == "purchase"
    fixed = {
        rule.id: _fixed(rule, basket, local_day, state.usage.get(rule.id), explain)
        for rule in line_rules
        if not rule.exclude
    }
    items_out: list[ItemAward] = []
    for n, (line, facts, by) in enumerate(
        zip(activity.lines, line_facts, excluded, strict=True), 1
    ):
        if by is not None:
            items_out.append(ItemAward(n, line, 0, excluded_by=by))
            continue
        lines, skipped, multipliers = _part(
            line_rules, line.amount, basket, facts, local_day, state, ruleset, spent, explain,
            fixed,
        )  # fmt: skip
        both = (
            sorted([*multipliers, *receipt_multipliers], key=lambda r: order[r.id])
            if multipliers and receipt_multipliers
            else multipliers or receipt_multipliers
        )
        _multiply(lines, skipped, both, state, rounding, spent, purchase)
        points = sum(item.points for item in lines)
        items_out.append(ItemAward(n, line, points, tuple(lines), tuple(skipped)))
    _multiply(own, own_skipped, receipt_multipliers, state, rounding, spent, purchase)
    totals: dict[str, list[tuple[str, AwardLine]]] = {}
    for part, name in [*((i.lines, f"line {i.number}") for i in items_out), (own, "receipt")]:
        for award_line in part:
            totals.setdefault(award_line.rule, []).append((name, award_line))
    ranked = sorted(
        totals.items(),
        key=lambda kv: (kv[0].startswith("tier:"), order.get(kv[0], len(order))),
    )
    summed = tuple(
        AwardLine(
            rule=rule,
            points=sum(p.points for _, p in parts),
            detail="; ".join(f"{name}: {p.detail}" for name, p in parts),
            reward=parts[0][1].reward,
            trimmed=any(p.trimmed for _, p in parts),
        )
        for rule, parts in ranked
    )
    fired = set(totals)
    skipped_out = list(own_skipped)
    if explain:
        for rule in line_rules:
            if rule.exclude:
                hits = [i.number for i in items_out if i.excluded_by == rule.id]
                if hits:
                    lines_word = ", ".join(str(h) for h in hits)
                    skipped_out.append(Skip(rule.id, f"excludes line {lines_word}", fired=True))
                else:
                    skipped_out.append(Skip(rule.id, "matches no line"))
            elif rule.id not in fired:
                zero = any(s.rule == rule.id and s.fired for i in items_out for s in i.skipped)
                skipped_out.append(
                    Skip(rule.id, "gives 0 points on every line it fires on", fired=True)
                    if zero
                    else Skip(rule.id, "fires on no line (see each line's reasons)")
                )
    return Award(
        points=sum(line.points for line in summed),
        lines=summed,
        skipped=tuple(skipped_out),
        items=tuple(items_out),
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
    return _base_line(rule, amount, ruleset, rounding)[1]


def _add(
    lines: list[AwardLine],
    skipped: list[Skip],
    rule: Rule,
    points: int,
    detail: str,
    state: CustomerState,
    spent: dict[str, int],
) -> None:
    """Append a line after applying the rule's points cap and budget. A line they
    cut short is `trimmed`: its words cannot be rebuilt from the rules alone.
    `spent`: what each rule gave in the other parts of this receipt so far."""
    usage = state.usage.get(rule.id, RuleUsage())
    trimmed = False
    before = spent.get(rule.id, 0)
    if rule.cap is not None and rule.cap.points is not None:
        room = rule.cap.points - usage.points - before
        if room <= 0:
            skipped.append(Skip(rule.id, f"cap reached: {rule.cap.points} points {_per(rule)}"))
            return
        if points > room:
            points, detail = room, f"{detail}; capped at {rule.cap.points} points {_per(rule)}"
            trimmed = True
    if rule.budget is not None:
        room = rule.budget - state.budget_used.get(rule.id, 0) - before
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
    spent[rule.id] = before + points
    lines.append(
        AwardLine(rule=rule.id, points=points, detail=detail, reward=rule.reward, trimmed=trimmed)
    )


def _base_line(
    rule: Rule, amount: Decimal | None, ruleset: Ruleset, rounding: Rounding
) -> tuple[int, str]:
    if rule.reward is not None:
        return 0, f"reward '{rule.reward}' ({ruleset.rewards[rule.reward].name})"
    if rule.points is not None:
        return rule.points, f"{rule.points} points"
    assert rule.points_per_unit is not None and amount is not None
    exact = amount * rule.points_per_unit
    points = round_points(exact, rounding)
    detail = f"{amount} x {_num(rule.points_per_unit)} per unit = {_num(exact)}"
    return points, _rounded(detail, exact, points, rounding)


def _rounded(detail: str, exact: Decimal, points: int, rounding: Rounding) -> str:
    return detail if exact == points else f"{detail}, {rounding} -> {points}"


_NO = "no"  # a rule that does not fire, when nobody asked why


def _why_not(
    rule: Rule,
    basket: Decimal | None,
    facts: Mapping[str, object],
    local_day: date,
    usage: RuleUsage | None,
    explain: bool = True,
) -> str | None:
    """None if the rule fires; else why not (in words only when `explain`)."""
    before, after = _fixed(rule, basket, local_day, usage, explain)
    if before is not None:
        return before
    if rule.when is not None and not matches(rule.when, facts):
        return f"condition not met: {describe(rule.when)}" if explain else _NO
    return after


def _fixed(
    rule: Rule, basket: Decimal | None, local_day: date, usage: RuleUsage | None, explain: bool
) -> tuple[str | None, str | None]:
    """Why a rule does not fire for what is the same on every line of a receipt
    (its window, weekdays, the basket, its count cap): the reasons before its
    condition and after it, in the order they are told."""
    if rule.window_from is not None and local_day < rule.window_from:
        return (f"window starts {rule.window_from}" if explain else _NO), None
    if rule.window_to is not None and local_day > rule.window_to:
        return (f"window ended {rule.window_to}" if explain else _NO), None
    if rule.weekdays is not None and local_day.weekday() not in rule.weekdays:
        if not explain:
            return _NO, None
        days = ", ".join(_WEEKDAY_NAMES[d] for d in sorted(rule.weekdays))
        return f"only on {days}; {local_day} is a {_WEEKDAY_NAMES[local_day.weekday()]}", None
    if rule.min_amount is not None and (basket or 0) < rule.min_amount:
        if not explain:
            return _NO, None
        return f"amount {basket} is below min_amount {_num(rule.min_amount)}", None
    cap = rule.cap
    if cap is not None and cap.count is not None and usage and usage.count >= cap.count:
        if not explain:
            return None, _NO
        return None, f"cap reached: {cap.count} time{'s' if cap.count != 1 else ''} {_per(rule)}"
    return None, None


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
        "items": activity.quantity or 1,
        "store": activity.store,
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
