"""The rules loader: every problem in a file, each as file:line:col: message."""

from __future__ import annotations

import textwrap
from datetime import date
from decimal import Decimal

import pytest

from loyalty_cli.errors import RulesInvalid
from loyalty_cli.models import All, Any_, Cap, Compare, Not
from loyalty_cli.rules import parse_rules

HEAD = "program: {name: Shop, timezone: Europe/London}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(RulesInvalid) as caught:
        parse_rules(textwrap.dedent(text), "rules.yaml")
    return caught.value.lines()


# (name, YAML, the expected problems, exactly)
BAD_RULES: list[tuple[str, str, list[str]]] = [
    ("empty file", "", ["rules.yaml:1: file is empty"]),
    (
        "expiry of negative months",
        HEAD + "points: {expire_after_months: -3}\n",
        ["rules.yaml:2:31: expire_after_months must be at least 1, got -3"],
    ),
    (
        "expiry style without months",
        HEAD + "points: {expire_at: same_day}\n",
        ["rules.yaml:2:10: expire_at needs expire_after_months"],
    ),
    (
        "first tier above zero",
        HEAD
        + "tiers:\n  metric: spend\n  window: lifetime\n  levels:\n    - {id: silver, name: S, threshold: 10}\n",
        [
            "rules.yaml:6:40: the first tier, 'silver', is where everyone starts: its threshold must be 0"
        ],
    ),
    (
        "python object tag",
        HEAD + "earn: !!python/object:os.system {}\n",
        ["rules.yaml:2:7: YAML tag '!!python/object:os.system' is not allowed"],
    ),
    (
        "custom tag",
        HEAD + "earn:\n  - {id: a, on: review, points: !bonus 5}\n",
        ["rules.yaml:3:33: YAML tag '!bonus' is not allowed"],
    ),
    (
        "missing program",
        "earn: []\n",
        ["rules.yaml:1:1: missing 'program' section (add program: {name: ..., timezone: ...})"],
    ),
    (
        "unknown top-level key with suggestion",
        HEAD + "earnings: []\n",
        ["rules.yaml:2:1: unknown key 'earnings' in the rules file (did you mean 'earn'?)"],
    ),
    (
        "duplicate key",
        "program:\n  name: A\n  name: B\n  timezone: UTC\n",
        ["rules.yaml:3:3: duplicate key 'name' in program (first given at line 2)"],
    ),
    (
        "unknown time zone",
        "program: {name: Shop, timezone: Europe/Londn}\n",
        ["rules.yaml:1:33: unknown time zone 'Europe/Londn' (use an IANA name like Europe/London)"],
    ),
    (
        "bad rounding with suggestion",
        "program: {name: Shop, timezone: UTC, rounding: flor}\n",
        [
            "rules.yaml:1:48: rounding must be one of floor, nearest, ceil, got 'flor' (did you mean 'floor'?)"
        ],
    ),
    (
        "misspelt rule key",
        HEAD + "earn:\n  - {id: double, on: purchase, multiplyer: 2}\n",
        [
            "rules.yaml:3:5: rule 'double' needs exactly one of points, points_per_unit, multiply, reward or exclude",
            "rules.yaml:3:32: unknown key 'multiplyer' in an earn rule (did you mean 'multiply'?)",
        ],
    ),
    (
        "negative points",
        HEAD + "earn:\n  - {id: a, on: review, points: -5}\n",
        ["rules.yaml:3:33: points must not be negative, got -5"],
    ),
    (
        "points as text",
        HEAD + "earn:\n  - {id: a, on: review, points: '50'}\n",
        ["rules.yaml:3:33: points must be a whole number, got '50'"],
    ),
    (
        "window ends before it starts",
        HEAD
        + "earn:\n  - {id: a, on: purchase, multiply: 2, window: {from: 2026-11-30, to: 2026-11-27}}\n",
        ["rules.yaml:3:48: window ends (2026-11-27) before it starts (2026-11-30)"],
    ),
    (
        "unknown reward reference",
        HEAD
        + "earn:\n  - {id: a, on: birthday, reward: cofee}\n"
        + "rewards:\n  - {id: coffee, name: Coffee, cost: 100}\n",
        ["rules.yaml:3:35: unknown reward 'cofee' (did you mean 'coffee'?); rewards are: coffee"],
    ),
    (
        "two award keys",
        HEAD + "earn:\n  - {id: a, on: purchase, points: 5, multiply: 2}\n",
        [
            "rules.yaml:3:5: rule 'a' needs exactly one of points, points_per_unit, multiply, reward or exclude (it has points, multiply)"
        ],
    ),
    (
        "per-unit rate on an event",
        HEAD + "earn:\n  - {id: a, on: review, points_per_unit: 2}\n",
        [
            "rules.yaml:3:25: 'points_per_unit' only applies to purchase rules, and rule 'a' is on 'review'"
        ],
    ),
    (
        "purchase field in an event condition",
        HEAD + "earn:\n  - {id: a, on: review, points: 5, when: {amount: {gt: 5}}}\n",
        ["rules.yaml:3:43: 'amount' is only known on purchases, not on events"],
    ),
    (
        "unknown condition field",
        HEAD + "earn:\n  - {id: a, on: purchase, points: 5, when: {categroy: shoes}}\n",
        ["rules.yaml:3:45: unknown key 'categroy' in a condition (did you mean 'category'?)"],
    ),
    (
        "operator the field does not support",
        HEAD + "earn:\n  - {id: a, on: purchase, points: 5, when: {category: {gt: shoes}}}\n",
        [
            "rules.yaml:3:56: 'gt' does not apply to 'category', which is text (use eq, ne, in, not_in)"
        ],
    ),
    (
        "between upside down",
        HEAD + "earn:\n  - {id: a, on: purchase, points: 5, when: {amount: {between: [50, 10]}}}\n",
        ["rules.yaml:3:63: 'between' on 'amount' has high (10) below low (50)"],
    ),
    (
        "multiplier below one",
        HEAD + "earn:\n  - {id: a, on: purchase, multiply: 0.5}\n",
        [
            "rules.yaml:3:37: multiply must be at least 1, got 0.5 (for fewer points, use a lower "
            "points_per_unit with a higher priority and stop: true)"
        ],
    ),
    (
        "cap without a limit",
        HEAD + "earn:\n  - {id: a, on: review, points: 5, cap: {per: month}}\n",
        ["rules.yaml:3:41: cap needs 'count', 'points' or both"],
    ),
    (
        "cap with unknown period",
        HEAD + "earn:\n  - {id: a, on: review, points: 5, cap: {count: 1, per: fortnight}}\n",
        [
            "rules.yaml:3:57: cap 'per' must be one of day, week, month, year, lifetime, got 'fortnight'"
        ],
    ),
    (
        "duplicate rule id",
        HEAD + "earn:\n  - {id: a, on: review, points: 5}\n  - {id: a, on: review, points: 6}\n",
        ["rules.yaml:4:5: duplicate rule id 'a' (first at line 3)"],
    ),
    (
        "bad weekday",
        HEAD + "earn:\n  - {id: a, on: purchase, multiply: 2, weekdays: [tue, funday]}\n",
        ["rules.yaml:3:56: unknown weekday 'funday' (use mon, tue, ... sun)"],
    ),
    (
        "reward with zero cost",
        HEAD + "rewards:\n  - {id: coffee, name: Coffee, cost: 0}\n",
        ["rules.yaml:3:38: cost must be at least 1, got 0"],
    ),
    (
        "uppercase rule id",
        HEAD + "earn:\n  - {id: Base, on: purchase, points: 1}\n",
        [
            "rules.yaml:3:10: rule id 'Base' must be lowercase letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in BAD_RULES], ids=[c[0] for c in BAD_RULES]
)
def test_bad_rules_file_gives_located_messages(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_yaml_syntax_errors_point_at_the_place() -> None:
    # The wording is the YAML parser's (libyaml's when PyYAML has it); the place is ours.
    (problem,) = problems("program: {name: Shop\nearn: []\n")
    assert problem.startswith("rules.yaml:2:5: YAML syntax: ")
    assert "','" in problem


def test_every_problem_in_a_file_is_reported_in_one_pass_in_line_order() -> None:
    found = problems(
        HEAD
        + """\
earn:
  - {id: a, on: review, points: -1}
  - {id: b, on: purchase, points_per_unit: abc}
  - {id: c, on: purchase, multiply: 2, window: {from: 2026-12-01, to: 2026-01-01}}
"""
    )
    assert [line.split(":")[1] for line in found] == ["3", "4", "5"]


def test_yaml_1_1_surprises_do_not_apply() -> None:
    # `on` as a key stays the word "on"; `no` as a category is the text "no";
    # 0.1 is read exactly as a Decimal, never as a float.
    ruleset = parse_rules(
        HEAD + "earn:\n  - {id: a, on: purchase, points_per_unit: 0.1, when: {category: no}}\n"
    )
    (rule,) = ruleset.rules
    assert rule.on == "purchase"
    assert rule.points_per_unit == Decimal("0.1")
    assert rule.when == Compare("category", "eq", "no")


def test_full_rule_is_read_into_the_model() -> None:
    ruleset = parse_rules(
        """\
program: {name: Shop, currency: EUR, timezone: Europe/Paris, rounding: nearest}
earn:
  - id: combo
    on: purchase
    description: everything at once
    points: 10
    priority: 5
    stop: true
    min_amount: 20
    window: {from: 2026-11-27}
    weekdays: [fri, Saturday]
    cap: {count: 2, points: 30, per: week}
    budget: 1000
    when:
      all:
        - {category: [Shoes, bags]}
        - any: [{amount: {between: [20, 100]}}, {purchases: {gte: 3}}]
        - not: {referred: true}
  - {id: hello, on: signup, points: 5}
"""
    )
    assert ruleset.program.currency == "EUR"
    assert ruleset.program.rounding == "nearest"
    combo, hello = ruleset.rules
    assert (combo.points, combo.priority, combo.stop, combo.min_amount) == (10, 5, True, 20)
    assert (combo.window_from, combo.window_to) == (date(2026, 11, 27), None)
    assert combo.weekdays == frozenset({4, 5})
    assert combo.cap == Cap(per="week", count=2, points=30)
    assert combo.budget == 1000
    assert combo.when == All(
        (
            Compare("category", "in", frozenset({"shoes", "bags"})),
            Any_(
                (
                    Compare("amount", "between", (Decimal(20), Decimal(100))),
                    Compare("purchases", "gte", 3),
                )
            ),
            Not(Compare("referred", "eq", True)),
        )
    )
    assert hello.on == "enroll"  # signup is another name for enroll
    assert ruleset.events == frozenset({"enroll"})


def test_version_is_the_content_hash_of_the_text() -> None:
    a = parse_rules(HEAD)
    b = parse_rules(HEAD + "# a comment changes the version\n")
    assert a.version != b.version
    assert a.version == parse_rules(HEAD).version
    assert len(a.version) == 64
