"""A receipt's own points (its bonuses), and what of them a return by line takes
back: the points of the receipt rules (scope `receipt`: a bonus per receipt, a
minimum basket, a number of items, a first purchase) and what the receipt's
multipliers and the tier added on them.

A return by line leaves a smaller receipt. Its receipt conditions that can
change by a return (a rule's `min_amount`, and the tests of its `when` on the
basket's `amount`, `items` or `quantity`) are judged again on the lines kept,
under the rules the purchase was made with: a rule the kept lines no longer
meet gives its points back, with its share of the multipliers' and the tier's.
What else a rule tested (a first purchase, a tier, a date) held when it fired
and a return does not change it. The last unit back takes back whatever is left."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from ..evaluator import matches, round_points
from ..games.model import is_game_line
from ..models import All, Any_, Compare, Condition, Not, Rule, Ruleset
from .records import Recorded, RecordedItem

# What a return changes on a receipt: the facts a receipt rule is judged on again.
SIZE_FIELDS = frozenset({"amount", "items", "quantity"})


@dataclass(frozen=True)
class Own:
    """A purchase's own points as awarded, and how to work out what it keeps."""

    total: int  # the receipt's own points (0: nothing to judge again)
    rules: tuple[tuple[Rule, int], ...] = ()  # its receipt rules that fired, with points
    excluders: tuple[Rule, ...] = ()  # the rules that exclude a line
    base: int = 0  # the base the multipliers below were worked on
    multipliers: tuple[Decimal, ...] = ()  # the receipt's multipliers, the tier's last
    rules_of: Ruleset | None = None

    def kept(self, lines: Sequence[RecordedItem]) -> int:
        """The own points the receipt keeps with what is left of `lines`."""
        left = [i for i in lines if i.quantity > i.returned_quantity]
        if not left:
            return 0
        if not self.rules:
            return self.total
        kept_lines = [i for i in left if not self._excluded(i)]
        basket = Decimal(sum(i.amount_cents - i.returned_cents for i in kept_lines)) / 100
        units = sum(i.quantity - i.returned_quantity for i in kept_lines)
        facts = {"amount": basket, "items": units, "quantity": units}
        failing = sum(points for rule, points in self.rules if not _still_met(rule, facts))
        if not failing:
            return self.total
        assert self.rules_of is not None
        rounding = self.rules_of.program.rounding
        shares = sum(
            round_points(self.base * (m - 1), rounding)
            - round_points((self.base - failing) * (m - 1), rounding)
            for m in self.multipliers
        )
        return max(0, self.total - failing - shares)

    def _excluded(self, item: RecordedItem) -> bool:
        # An excluded line earned nothing; one that earned nothing may be a cheap one.
        if item.points:
            return False
        facts = {
            "amount": Decimal(item.amount_cents) / 100,
            "category": item.category,
            "sku": item.sku,
            "quantity": item.quantity,
            "items": item.quantity,
        }
        return any(r.when is not None and matches(r.when, facts) for r in self.excluders)


def own_points(purchase: Recorded, rules: Ruleset | None, earned: int) -> Own:
    """The purchase's own points: on a receipt of several lines, what its lines
    did not earn; on a one-line purchase, what its receipt rules earned (the
    rest is its line's). Without the rules it was made with (a rules text no
    longer readable), its own points are only taken back with its last unit."""
    several = len([i for i in purchase.items if i.quantity > 0]) > 1
    lines_points = sum(i.points for i in purchase.items if i.quantity > 0)
    if rules is None:
        return Own(max(0, earned - lines_points) if several else 0)
    by_id = {rule.id: rule for rule in rules.rules}
    mine = [
        line
        for line in purchase.lines
        if line.customer_id == purchase.customer_id
        and line.points > 0
        and line.rule is not None
        and not is_game_line(line.rule)
    ]
    fired: list[tuple[Rule, int]] = []
    base = 0  # the part's base: on one line, every point rule's; on several, the receipt's
    multipliers: list[Decimal] = []
    tier: Decimal | None = None
    for line in mine:
        assert line.rule is not None
        rule = by_id.get(line.rule)
        if line.rule.startswith("tier:") and rules.tiers is not None:
            level = next((t for t in rules.tiers.levels if t.id == line.rule[5:]), None)
            tier = None if level is None else level.multiplier
        elif rule is None:
            continue
        elif rule.multiply is not None:
            if rule.scope == "receipt":
                multipliers.append(rule.multiply)
        elif rule.scope == "receipt":
            fired.append((rule, line.points))
            base += line.points
        elif not several:
            base += line.points
    if tier is not None:
        multipliers.append(tier)
    own_base = sum(points for _, points in fired)
    if several:
        total = max(0, earned - lines_points)
        base = own_base
    else:
        rounding = rules.program.rounding
        total = own_base + sum(
            round_points(base * (m - 1), rounding)
            - round_points((base - own_base) * (m - 1), rounding)
            for m in multipliers
        )
        total = min(total, earned)
    excluders = tuple(r for r in rules.rules if r.exclude)
    return Own(total, tuple(fired), excluders, base, tuple(multipliers), rules)


def _still_met(rule: Rule, facts: dict[str, object]) -> bool:
    """Whether the kept lines still meet what a return can change of the rule."""
    amount = facts["amount"]
    assert isinstance(amount, Decimal)
    if rule.min_amount is not None and amount < rule.min_amount:
        return False
    return all(matches(test, facts) for test in _size_tests(rule.when))


def _size_tests(condition: Condition | None) -> list[Condition]:
    """The parts of a condition, all of which must hold, that test only the
    basket's size (a condition joined by `and` at the top, or a single test)."""
    if condition is None:
        return []
    parts = condition.items if isinstance(condition, All) else (condition,)
    return [part for part in parts if _fields(part) and _fields(part) <= SIZE_FIELDS]


def _fields(condition: Condition) -> set[str]:
    if isinstance(condition, Compare):
        return {condition.field}
    if isinstance(condition, All | Any_):
        return {f for c in condition.items for f in _fields(c)}
    assert isinstance(condition, Not)
    return _fields(condition.item)
