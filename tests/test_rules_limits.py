"""The limits of a rules file (README, "Limits of a rules file"), through the CLI:
`loyalty rules check FILE --json`. A file over a limit exits 78 with a located
problem naming the limit; a file that cannot be read exits 66 with one line; a
value at a limit is accepted and one step past it is refused."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from loyalty_cli.cli import app
from loyalty_cli.errors import InputMissing, RulesInvalid
from loyalty_cli.rules import (
    MAX_AWARD,
    MAX_BYTES,
    MAX_DEPTH,
    MAX_VALUES,
    load_rules_if_present,
    parse_rules,
)

from .conftest import EXAMPLE_RULES, Shop, check_error_json, loyalty_command

HEAD = "program: {name: Shop, timezone: Europe/London}\n"
TIERS = HEAD + "tiers:\n  metric: spend\n  window: lifetime\n  levels:\n"


def check(shop: Shop, text: str) -> tuple[int, str, str]:
    """`rules check --json` on `text`: (exit code, stdout, stderr)."""
    shop.rules.write_text(text)
    result = shop.run("rules", "check", str(shop.rules), "--json")
    return result.exit_code, result.stdout, result.stderr


def accepted(shop: Shop, text: str) -> dict[str, object]:
    code, out, err = check(shop, text)
    assert code == 0, err[:2000]
    doc: dict[str, object] = json.loads(out)
    return doc


def refused(shop: Shop, text: str, code: int = 78) -> list[str]:
    """The error lines, without the `error: FILE:` prefix; asserts one clear line each."""
    shop.rules.write_text(text)
    message = shop.fails(code, "rules", "check", str(shop.rules), "--json")
    prefix = f"error: {shop.rules}:"
    assert all(line.startswith(prefix) for line in message.splitlines()), message[:2000]
    return [line.removeprefix(prefix) for line in message.splitlines()]


def where(template: str) -> str:
    """'LINE:COL' of the '@' placeholder in a template."""
    at = template.index("@")
    line = template.count("\n", 0, at) + 1
    col = at - (template.rfind("\n", 0, at) + 1) + 1
    return f"{line}:{col}"


# --- the catalogue: bad rules text -> exit code and located message -----------

BIG = "1" + "0" * 22  # 10^22, from the issue
HUGE = "1" + "0" * 100  # 10^100
BAD_TEXT: list[tuple[str, str, str]] = [
    # (name, rules text, "LINE:COL: start of the message")
    (
        "points of 10^22",
        HEAD + f"earn:\n  - {{id: a, on: review, points: {BIG}}}\n",
        f"3:33: points must be at most 1,000,000,000, got {BIG}",
    ),
    (
        "points of 5,000 digits, shown cut short",
        HEAD + "earn:\n  - {id: a, on: review, points: " + "9" * 5000 + "}\n",
        "3:33: points must be at most 1,000,000,000, got "
        "9999999999999999999999999999999999999999... (5,000 characters)",
    ),
    (
        "rate of 10^100",
        HEAD + f"earn:\n  - {{id: a, on: purchase, points_per_unit: {HUGE}}}\n",
        f"3:44: points_per_unit must be at most 1,000,000, got {HUGE[:40]}... (101 characters)",
    ),
    (
        "campaign multiplier of 10^100",
        HEAD + f"earn:\n  - {{id: a, on: purchase, multiply: {HUGE}}}\n",
        "3:37: multiply must be at most 100 (for a higher rate, raise points_per_unit instead)",
    ),
    (
        "tier multiplier of 10^100",
        TIERS
        + "    - {id: b, name: B, threshold: 0}\n"
        + f"    - {{id: s, name: S, threshold: 1, multiplier: {HUGE}}}\n",
        "7:50: multiplier must be at most 100, got",
    ),
    (
        "pending_days of 10^30",
        HEAD + "points: {pending_days: 1" + "0" * 30 + "}\n",
        "2:24: pending_days must be at most 365 (a return window of a year at most)",
    ),
    (
        "expire_after_months of 100000",
        HEAD + "points: {expire_after_months: 100000}\n",
        "2:31: expire_after_months must be at most 1,200 (100 years; leave expire_after_months "
        "out for points that never expire), got 100000",
    ),
    (
        "whole number with underscores",
        HEAD + "earn:\n  - {id: a, on: review, points: 1_000}\n",
        "3:33: points must be a plain whole number like 1000 (no '_', 0x, 0b, ':' or leading "
        "zero), got '1_000'",
    ),
    (
        "hexadecimal",
        HEAD + "earn:\n  - {id: a, on: review, points: 0x10}\n",
        "3:33: points must be a plain whole number like 1000",
    ),
    (
        "binary",
        HEAD + "rewards:\n  - {id: c, name: C, cost: 0b11}\n",
        "3:28: cost must be a plain whole number like 1000",
    ),
    (
        "leading zero (octal in YAML 1.1)",
        HEAD + "points: {pending_days: 010}\n",
        "2:24: pending_days must be a plain whole number like 1000",
    ),
    (
        "sexagesimal (1:30 is 90 in YAML 1.1)",
        HEAD + "earn:\n  - {id: a, on: review, points: 1:30}\n",
        "3:33: points must be a plain whole number like 1000",
    ),
    (
        "leading zero in a decimal",
        HEAD + "earn:\n  - {id: a, on: purchase, points_per_unit: 010}\n",
        "3:44: points_per_unit must be a plain number like 12.5",
    ),
    (
        "exponent in a whole number",
        HEAD + "earn:\n  - {id: a, on: review, points: 1e3}\n",
        "3:33: points must be written out without an exponent, like 1000, got '1e3'",
    ),
    (
        "exponent in a decimal (a YAML 1.1 float)",
        HEAD + "earn:\n  - {id: a, on: purchase, points_per_unit: 1.0e+100}\n",
        "3:44: points_per_unit must be written out without an exponent, like 1000 or 0.25",
    ),
    (
        "exponent in a decimal (text to YAML 1.1)",
        HEAD + "earn:\n  - {id: a, on: purchase, points_per_unit: 1e100}\n",
        "3:44: points_per_unit must be written out without an exponent",
    ),
    (
        "seven decimal places",
        HEAD + "earn:\n  - {id: a, on: purchase, points_per_unit: 0.1234567}\n",
        "3:44: points_per_unit has more than 6 decimal places, got 0.1234567",
    ),
    (
        "a date in year 1",
        HEAD + "earn:\n  - {id: a, on: purchase, multiply: 2, window: {from: 0001-01-01}}\n",
        "3:55: window 'from' must be between 1900-01-01 and 2999-12-31, got 0001-01-01",
    ),
    (
        "a reward offered until 9999",
        HEAD + "rewards:\n  - {id: c, name: C, cost: 1, window: {to: 9999-12-31}}\n",
        "3:44: window 'to' must be between 1900-01-01 and 2999-12-31, got 9999-12-31",
    ),
    (
        "text of 1,001 characters",
        HEAD + "earn:\n  - {id: a, on: review, points: 1, description: " + "x" * 1001 + "}\n",
        "3:49: text of 1,001 characters is longer than the 1,000 a value may have; shorten it",
    ),
    (
        "category of 1,001 characters",
        HEAD
        + "earn:\n  - {id: a, on: purchase, points: 1, when: {category: "
        + "x" * 1001
        + "}}\n",
        "3:55: text of 1,001 characters is longer than the 1,000",
    ),
    (
        "rule id of 65 characters",
        HEAD + "earn:\n  - {id: " + "a" * 65 + ", on: review, points: 1}\n",
        "3:10: rule id '" + "a" * 40 + "... (65 characters)' is longer than 64 characters",
    ),
    (
        "event name of 65 characters",
        HEAD + "earn:\n  - {id: a, on: " + "e" * 65 + ", points: 1}\n",
        "3:17: 'on' '" + "e" * 40 + "... (65 characters)' is longer than 64 characters",
    ),
    (
        "reward id of 65 characters",
        HEAD + "rewards:\n  - {id: " + "r" * 65 + ", name: C, cost: 1}\n",
        "3:10: reward id '" + "r" * 40 + "... (65 characters)' is longer than 64 characters",
    ),
    (
        "an anchor, even unused",
        "program: &p {name: Shop, timezone: Europe/London}\n",
        "1:10: YAML anchors and aliases (&a, *a) are not supported; write the values out",
    ),
    (
        "an alias of a scalar",
        HEAD
        + "earn:\n  - {id: a, on: review, points: &n 5}\n  - {id: b, on: review, points: *n}\n",
        "3:33: YAML anchors and aliases (&a, *a) are not supported; write the values out "
        "(2 in this file)",
    ),
    (
        "a list that contains itself",
        HEAD + "earn: &a [*a]\n",
        "2:7: YAML anchors and aliases (&a, *a) are not supported; write the values out "
        "(2 in this file)",
    ),
    (
        "a control character",
        "program: {name: Sh\x01op, timezone: Europe/London}\n",
        "1:19: character U+0001 is not allowed in a YAML file (control characters are not "
        "text); remove it",
    ),
    (
        "a NUL byte",
        HEAD + "earn: []\x00\n",
        "2:9: character U+0000 is not allowed in a YAML file",
    ),
    (
        "an in: list of 1,001 values",
        HEAD
        + "earn:\n  - {id: a, on: purchase, points: 1, when: {sku: {in: ["
        + ", ".join(f"s{i}" for i in range(1001))
        + "]}}}\n",
        "3:5946: 'in' on 'sku' has 1,001 items, more than the 1,000 allowed; test a category "
        "instead of listing every value",
    ),
    (
        "an any: list of 1,001 conditions",
        HEAD
        + "earn:\n  - {id: a, on: review, points: 1, when: {any: ["
        + ", ".join(["{purchases: 1}"] * 1001)
        + "]}}\n",
        "3:16049: any has 1,001 items, more than the 1,000 allowed",
    ),
    (
        "rules that add up past 10^15 points for one purchase",
        HEAD
        + "earn:\n"
        + "  - {id: big, on: purchase, points_per_unit: 1000000}\n"
        + "  - {id: double, on: purchase, multiply: 2}\n",
        f"4:5: the rules on 'purchase' up to this one could give a purchase of "
        f"1,000,000,000.00 up to 2,000,000,000,000,000 points, more than the {MAX_AWARD:,} "
        "one activity may earn; lower points, points_per_unit or multiply, or add a cap on "
        "points",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in BAD_TEXT], ids=[c[0] for c in BAD_TEXT]
)
def test_bad_rules_text_is_one_located_problem(shop: Shop, text: str, expected: str) -> None:
    problems = refused(shop, text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0][:500]


# --- each numeric bound at its edge ------------------------------------------

# (name, template with @ for the value, values accepted, [(value refused, message)])
EDGES: list[tuple[str, str, list[str], list[tuple[str, str]]]] = [
    (
        "points",
        HEAD + "earn:\n  - {id: a, on: review, points: @}\n",
        ["0", "1000000000"],
        [
            ("-1", "points must not be negative, got -1"),
            ("1000000001", "points must be at most 1,000,000,000, got 1000000001"),
        ],
    ),
    (
        "points_per_unit",
        HEAD + "earn:\n  - {id: a, on: purchase, points_per_unit: @}\n",
        ["0.000001", "1000000"],
        [
            ("0", "points_per_unit must be greater than zero, got 0"),
            ("1000000.000001", "points_per_unit must be at most 1,000,000, got 1000000.000001"),
        ],
    ),
    (
        "multiply",
        HEAD + "earn:\n  - {id: a, on: purchase, multiply: @}\n",
        ["1", "100"],
        [
            ("0.999999", "multiply must be at least 1, got 0.999999 (for fewer points"),
            ("100.000001", "multiply must be at most 100 (for a higher rate"),
        ],
    ),
    (
        "tier multiplier",
        TIERS
        + "    - {id: b, name: B, threshold: 0}\n"
        + "    - {id: s, name: S, threshold: 1, multiplier: @}\n",
        ["1", "100"],
        [
            ("0.999999", "multiplier must be at least 1, got 0.999999"),
            ("100.000001", "multiplier must be at most 100, got 100.000001"),
        ],
    ),
    (
        "reward cost",
        HEAD + "rewards:\n  - {id: c, name: C, cost: @}\n",
        ["1", "1000000000"],
        [
            ("0", "cost must be at least 1, got 0"),
            ("1000000001", "cost must be at most 1,000,000,000, got 1000000001"),
        ],
    ),
    (
        "reward limit count",
        HEAD + "rewards:\n  - {id: c, name: C, cost: 1, limit: {count: @, per: day}}\n",
        ["1", "1000000000"],
        [
            ("0", "limit count must be at least 1, got 0"),
            ("1000000001", "limit count must be at most 1,000,000,000"),
        ],
    ),
    (
        "cap count",
        HEAD + "earn:\n  - {id: a, on: review, points: 1, cap: {count: @, per: day}}\n",
        ["1", "1000000000"],
        [
            ("0", "cap count must be at least 1, got 0"),
            ("1000000001", "cap count must be at most 1,000,000,000"),
        ],
    ),
    (
        "cap points",
        HEAD + "earn:\n  - {id: a, on: review, points: 1, cap: {points: @, per: day}}\n",
        ["1", "1000000000"],
        [
            ("0", "cap points must be at least 1, got 0"),
            ("1000000001", "cap points must be at most 1,000,000,000"),
        ],
    ),
    (
        "budget",
        HEAD + "earn:\n  - {id: a, on: review, points: 1, budget: @}\n",
        ["1", "1000000000000"],
        [
            ("0", "budget must be at least 1, got 0"),
            ("1000000000001", "budget must be at most 1,000,000,000,000, got 1000000000001"),
        ],
    ),
    (
        "pending_days",
        HEAD + "points: {pending_days: @}\n",
        ["0", "365"],
        [
            ("-1", "pending_days must not be negative, got -1"),
            ("366", "pending_days must be at most 365 (a return window of a year at most)"),
        ],
    ),
    (
        "expire_after_months",
        HEAD + "points: {expire_after_months: @}\n",
        ["1", "1200"],
        [
            ("0", "expire_after_months must be at least 1, got 0"),
            ("1201", "expire_after_months must be at most 1,200 (100 years"),
        ],
    ),
    (
        "first tier threshold",
        TIERS + "    - {id: b, name: B, threshold: @}\n",
        ["0"],
        [("-0.000001", "threshold must not be negative, got -0.000001")],
    ),
    (
        "higher tier threshold",
        TIERS + "    - {id: b, name: B, threshold: 0}\n    - {id: s, name: S, threshold: @}\n",
        ["0.000001", "1000000000000"],
        [
            (
                "1000000000000.000001",
                "threshold must be at most 1,000,000,000,000, got 1000000000000.000001",
            )
        ],
    ),
    (
        "priority",
        HEAD + "earn:\n  - {id: a, on: review, points: 1, priority: @}\n",
        ["-1000000", "1000000"],
        [
            ("-1000001", "priority must be at least -1,000,000, got -1000001"),
            (
                "1000001",
                "priority must be at most 1,000,000 (only the order of priorities matters)",
            ),
        ],
    ),
    (
        "min_amount",
        HEAD + "earn:\n  - {id: a, on: purchase, points: 1, min_amount: @}\n",
        ["0.000001", "1000000000000"],
        [
            ("0", "min_amount must be greater than zero, got 0"),
            ("1000000000000.000001", "min_amount must be at most 1,000,000,000,000"),
        ],
    ),
    (
        "amount in a condition",
        HEAD + "earn:\n  - {id: a, on: purchase, points: 1, when: {amount: {gte: @}}}\n",
        ["0", "1000000000000"],
        [
            ("-0.01", "'amount' must not be negative, got -0.01"),
            ("1000000000000.01", "'amount' must be at most 1,000,000,000,000"),
        ],
    ),
    (
        "spend in a condition",
        HEAD + "earn:\n  - {id: a, on: review, points: 1, when: {spend: [@, 5]}}\n",
        ["0", "1000000000000"],
        [
            ("-1", "'spend' must not be negative, got -1"),
            ("1000000000000.000001", "'spend' must be at most 1,000,000,000,000"),
        ],
    ),
    (
        "balance in a condition",
        HEAD + "earn:\n  - {id: a, on: review, points: 1, when: {balance: {lt: @}}}\n",
        ["-1000000000000", "1000000000000"],
        [
            ("-1000000000001", "'balance' must be at least -1,000,000,000,000"),
            ("1000000000001", "'balance' must be at most 1,000,000,000,000"),
        ],
    ),
    (
        "point_value",
        "program: {name: Shop, timezone: Europe/London, point_value: @}\n",
        ["0.000001", "1000000"],
        [
            ("0", "point_value must be greater than zero, got 0"),
            ("1000000.000001", "point_value must be at most 1,000,000"),
        ],
    ),
    (
        "rule window from",
        HEAD + "earn:\n  - {id: a, on: purchase, multiply: 2, window: {from: @}}\n",
        ["1900-01-01", "2999-12-31"],
        [
            ("1899-12-31", "window 'from' must be between 1900-01-01 and 2999-12-31"),
            ("3000-01-01", "window 'from' must be between 1900-01-01 and 2999-12-31"),
        ],
    ),
    (
        "reward window to",
        HEAD + "rewards:\n  - {id: c, name: C, cost: 1, window: {to: @}}\n",
        ["1900-01-01", "2999-12-31"],
        [
            ("1899-12-31", "window 'to' must be between 1900-01-01 and 2999-12-31"),
            ("3000-01-01", "window 'to' must be between 1900-01-01 and 2999-12-31"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("template", "good", "bad"), [e[1:] for e in EDGES], ids=[e[0] for e in EDGES]
)
def test_each_number_is_accepted_at_its_limit_and_refused_one_step_past(
    shop: Shop, template: str, good: list[str], bad: list[tuple[str, str]]
) -> None:
    for value in good:
        accepted(shop, template.replace("@", value))
    for value, message in bad:
        problems = refused(shop, template.replace("@", value))
        assert problems == [f"{where(template)}: {message}"] or (
            len(problems) == 1 and problems[0].startswith(f"{where(template)}: {message}")
        ), problems


# --- counts, depth and size at their edges -----------------------------------


def rules_file(count: int) -> str:
    return (
        HEAD
        + "earn:\n"
        + "".join(f"  - {{id: r{i}, on: review, points: 1}}\n" for i in range(count))
    )


def test_a_thousand_rules_load_and_the_1001st_is_refused(shop: Shop) -> None:
    assert len(accepted(shop, rules_file(1000))["rules"]) == 1000  # type: ignore[arg-type]
    assert refused(shop, rules_file(1001)) == [
        "1003:5: earn has 1,001 rules, more than the 1,000 allowed; combine rules that differ "
        "only in a value into one with a condition such as sku: {in: [...]}"
    ]


def test_a_thousand_rewards_load_and_the_1001st_is_refused(shop: Shop) -> None:
    def rewards(count: int) -> str:
        return (
            HEAD
            + "rewards:\n"
            + "".join(f"  - {{id: w{i}, name: W, cost: 1}}\n" for i in range(count))
        )

    assert len(accepted(shop, rewards(1000))["rewards"]) == 1000  # type: ignore[arg-type]
    assert refused(shop, rewards(1001)) == [
        "1003:5: rewards has 1,001 rewards, more than the 1,000 allowed; remove the rewards "
        "no longer offered"
    ]


def test_fifty_tier_levels_load_and_the_51st_is_refused(shop: Shop) -> None:
    def tiers(count: int) -> str:
        return TIERS + "".join(
            f"    - {{id: t{i}, name: T, threshold: {i}}}\n" for i in range(count)
        )

    accepted(shop, tiers(50))
    assert refused(shop, tiers(51)) == [
        "56:7: levels has 51 tiers, more than the 50 allowed; a programme needs a handful of tiers"
    ]


def test_a_thousand_values_in_a_list_load_and_1001_are_refused(shop: Shop) -> None:
    def listing(count: int) -> str:
        skus = ", ".join(f"s{i}" for i in range(count))
        return (
            HEAD
            + f"earn:\n  - {{id: a, on: purchase, points: 1, when: {{sku: {{not_in: [{skus}]}}}}}}\n"
        )

    accepted(shop, listing(1000))
    too_many = listing(1001)
    col = too_many.splitlines()[2].index("s1000") + 1  # the 1,001st
    assert refused(shop, too_many) == [
        f"3:{col}: 'not_in' on 'sku' has 1,001 items, more than the 1,000 allowed; test a "
        "category instead of listing every value"
    ]


def test_text_of_1000_characters_and_ids_of_64_load_and_one_more_is_refused(
    shop: Shop,
) -> None:
    def text(ident: int, event: int, description: int) -> str:
        return HEAD + (
            f"earn:\n  - {{id: {'a' * ident}, on: {'e' * event}, points: 1, description: "
            + "x" * description
            + "}\n"
        )

    accepted(shop, text(64, 64, 1000))
    assert refused(shop, text(65, 64, 1000)) == [
        f"3:10: rule id '{'a' * 40}... (65 characters)' is longer than 64 characters; shorten it"
    ]
    assert refused(shop, text(64, 65, 1000)) == [
        f"3:80: 'on' '{'e' * 40}... (65 characters)' is longer than 64 characters; shorten it"
    ]
    assert refused(shop, text(64, 64, 1001)) == [
        "3:170: text of 1,001 characters is longer than the 1,000 a value may have; shorten it"
    ]


def nested(levels: int) -> str:
    """A valid file whose deepest collection is `levels` deep: the rules file (1),
    earn (2), a rule (3), its condition (4), then `not:` mappings."""
    condition = "{purchases: 1}"
    for _ in range(levels - 4):
        condition = "{not: " + condition + "}"
    return HEAD + "earn:\n  - {id: a, on: review, points: 1, when: " + condition + "}\n"


def test_nesting_of_32_levels_loads_and_33_is_refused_before_composing(shop: Shop) -> None:
    accepted(shop, nested(MAX_DEPTH))
    too_deep = nested(MAX_DEPTH + 1)
    col = too_deep.splitlines()[2].index("{purchases") + 1  # the 33rd level
    assert refused(shop, too_deep) == [
        f"3:{col}: nested more than 32 levels deep, the most a rules file may be; flatten it "
        "(a condition rarely needs more than three levels)"
    ]


def test_deep_nesting_is_refused_before_anything_recurses(shop: Shop) -> None:
    # 900 levels: walking the composed nodes would take 900 Python frames per walk.
    problems = refused(shop, HEAD + "earn: " + "[" * 900 + "]" * 900 + "\n")
    assert problems == [
        "2:38: nested more than 32 levels deep, the most a rules file may be; flatten it "
        "(a condition rarely needs more than three levels)"
    ]
    # 100,000 levels: libyaml stops at its own limit of 1,000 (the pure-Python parser
    # has none, and our scan stops it at 33); one located line either way.
    (problem,) = refused(shop, HEAD + "earn: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert problem.startswith("2:") and "nest" in problem, problem


def values_file(count: int) -> str:
    """`count` YAML values in all: the mapping, its key, the list and its items."""
    return "x: [" + ",".join(["a"] * (count - 3)) + "]\n"


def test_200000_values_are_composed_and_one_more_is_refused_before(shop: Shop) -> None:
    assert not any("values" in p for p in refused(shop, values_file(MAX_VALUES)))
    assert refused(shop, values_file(MAX_VALUES + 1)) == [
        f"1:{5 + 2 * (MAX_VALUES - 3)}: more than 200,000 values (keys, values and lists) in "
        "the file, the most a rules file may have; check that this is the right file"
    ]


def test_suggestions_stop_after_a_thousand_problems_so_a_junk_file_stays_fast(
    shop: Shop,
) -> None:
    junk = HEAD + "".join(f"earnx{i}: 1\n" for i in range(1500))
    problems = refused(shop, junk)
    assert len(problems) == 1500
    assert (
        problems[999] == "1001:1: unknown key 'earnx999' in the rules file (did you mean 'earn'?)"
    )
    assert problems[1000] == "1002:1: unknown key 'earnx1000' in the rules file"


def test_the_worst_award_may_reach_10_to_the_15_and_not_one_point_more(shop: Shop) -> None:
    at_limit = HEAD + "earn:\n  - {id: big, on: purchase, points_per_unit: 1000000}\n"
    accepted(shop, at_limit)
    over = at_limit + "  - {id: one-more, on: purchase, points: 1}\n"
    assert refused(shop, over) == [
        "4:5: the rules on 'purchase' up to this one could give a purchase of 1,000,000,000.00 "
        "up to 1,000,000,000,000,001 points, more than the 1,000,000,000,000,000 one activity "
        "may earn; lower points, points_per_unit or multiply, or add a cap on points"
    ]
    # A points cap or a budget is the most a rule's line can give.
    lower = HEAD + "earn:\n  - {id: big, on: purchase, points_per_unit: 999999}\n"
    double = "  - {id: double, on: purchase, multiply: 2"
    accepted(shop, lower + double + ", cap: {points: 1000000000, per: day}}\n")
    accepted(shop, lower + double + ", budget: 1000000000}\n")
    assert refused(shop, lower + double + ", budget: 1000000001}\n")[0].startswith(
        "4:5: the rules on 'purchase' up to this one could give a purchase of 1,000,000,000.00 "
        "up to 1,000,000,000,000,001 points"
    )
    # The best tier's multiplier counts on purchases.
    tier = (
        TIERS
        + "    - {id: b, name: B, threshold: 0}\n"
        + "    - {id: g, name: G, threshold: 1, multiplier: 1.5}\n"
        + "earn:\n  - {id: big, on: purchase, points_per_unit: 1000000}\n"
    )
    assert refused(shop, tier)[0].startswith(
        "9:5: the rules on 'purchase' up to this one could give a purchase of 1,000,000,000.00 "
        "up to 1,500,000,000,000,000 points"
    )


def test_event_rules_at_their_limits_are_refused_at_the_rule_that_goes_past() -> None:
    # 100 rules of 10^9 points give a base of 10^11; each x100 campaign adds 99 x base.
    # 101 campaigns reach exactly 10^15; the 102nd, on line 204, goes past.
    def rules(campaigns: int) -> str:
        return (
            HEAD
            + "earn:\n"
            + "".join(f"  - {{id: p{i}, on: review, points: 1000000000}}\n" for i in range(100))
            + "".join(f"  - {{id: m{i}, on: review, multiply: 100}}\n" for i in range(campaigns))
        )

    assert len(parse_rules(rules(101)).rules) == 201
    with pytest.raises(RulesInvalid) as caught:
        parse_rules(rules(150), "rules.yaml")
    assert caught.value.lines() == [
        "rules.yaml:204:5: the rules on 'review' up to this one could give one activity up to "
        f"{10**11 + 150 * 99 * 10**11:,} points, more than the 1,000,000,000,000,000 one "
        "activity may earn; lower points, points_per_unit or multiply, or add a cap on points"
    ]


# --- hostile files: fast, bounded, refused before they are composed ----------


def alias_bomb(levels: int) -> str:
    """The 'billion laughs': each level is a list of ten aliases of the one before."""
    lines = [HEAD.rstrip("\n"), "base: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append(f"earn: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_expands(shop: Shop) -> None:
    bomb = alias_bomb(9)  # 10^9 leaves if expanded (this test would never end); ~550 bytes
    assert len(bomb) < 600
    shop.rules.write_text(bomb)
    message = shop.fails(78, "rules", "check", str(shop.rules), "--json")
    assert message == (
        f"error: {shop.rules}:2:7: YAML anchors and aliases (&a, *a) are not supported; "
        "write the values out (90 in this file)"
    )


def test_dev_zero_is_refused_after_reading_one_mebibyte(shop: Shop) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    result = shop.run("rules", "check", "/dev/zero", "--json")
    assert result.exit_code == 78
    assert result.stderr == (
        "error: /dev/zero:1:1048577: the rules file is larger than 1 MiB (1,048,576 bytes), the "
        "most a rules file may be; check that this is the right file, or shorten descriptions "
        "and lists\n"
    )


def valid_mebibyte() -> str:
    """Close to 1 MiB of valid rules: 1,000 rules with long in: lists."""
    out = [HEAD, "earn:\n"]
    size = len(HEAD) + 6
    for i in range(1000):
        skus = ", ".join(f"sku-{i}-{j}" for j in range(80))
        rule = (
            f"  - id: rule-{i}\n    on: purchase\n    description: rule {i}, for some skus\n"
            f"    points_per_unit: 0.5\n    when: {{sku: {{in: [{skus}]}}, amount: {{gte: 10.50}}}}\n"
            "    cap: {count: 3, per: week}\n"
        )
        if size + len(rule) > MAX_BYTES:
            break
        out.append(rule)
        size += len(rule)
    return "".join(out)


def test_a_mebibyte_of_valid_rules_loads_and_one_byte_more_is_refused(shop: Shop) -> None:
    rules = valid_mebibyte()
    exact = rules + "#" + "x" * (MAX_BYTES - len(rules.encode()) - 2) + "\n"
    assert len(exact.encode()) == MAX_BYTES
    shop.rules.write_text(exact)
    doc = accepted(shop, exact)
    assert len(doc["rules"]) > 500  # type: ignore[arg-type]
    assert refused(shop, exact + "\n") == [
        f"{exact.count(chr(10)) + 1}:1: the rules file is larger than 1 MiB (1,048,576 bytes), "
        "the most a rules file may be; check that this is the right file, or shorten "
        "descriptions and lists"
    ]


# --- a rules file that cannot be read: one line, exit 66 ---------------------


def test_a_dangling_symlink_says_where_it_points(shop: Shop, tmp_path: Path) -> None:
    link = tmp_path / "linked.yaml"
    link.symlink_to(tmp_path / "gone.yaml")
    assert shop.fails(66, "rules", "check", str(link)) == (
        f"error: rules file {link} is a symbolic link to {tmp_path / 'gone.yaml'}, which does "
        "not exist; fix the link or pass --rules PATH"
    )


def test_a_path_through_a_file_is_one_line(shop: Shop, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    path = tmp_path / "plain" / "rules.yaml"
    assert shop.fails(66, "rules", "check", str(path)) == (
        f"error: rules file {path} cannot be read: a folder on its path is a file"
    )


def test_dev_null_is_nothing_to_read(shop: Shop) -> None:
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null here")
    assert "is not a regular file and gave nothing to read" in shop.fails(
        66, "rules", "check", "/dev/null"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_with_no_writer_is_refused_at_once_and_a_pipe_with_one_is_read(
    tmp_path: Path,
) -> None:
    # Real processes with a timeout: the old reader waited in open() for good.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOYALTY_DB": str(tmp_path / "x.db")}
    fifo = tmp_path / "rules.yaml"
    os.mkfifo(fifo)
    result = subprocess.run(
        [*loyalty_command(), "rules", "check", str(fifo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 66
    assert check_error_json(result.stdout, 66, result.stderr.splitlines())["file"] == str(fifo)
    assert result.stderr == (
        f"error: rules file {fifo} is not a regular file and gave nothing to read "
        "(a FIFO with no writer, or a device?)\n"
    )
    # `loyalty rules check <(git show HEAD:rules.yaml)` still works: a pipe with a writer.
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            [*loyalty_command(), "rules", "check", f"/dev/fd/{read_end}", "--json"],
            env=env,
            pass_fds=(read_end,),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(read_end)
        os.write(write_end, EXAMPLE_RULES.read_bytes())
        os.close(write_end)
        out, err = process.communicate(timeout=30)
    finally:
        for fd in (read_end, write_end):
            with contextlib.suppress(OSError):
                os.close(fd)
    assert process.returncode == 0, err
    assert json.loads(out)["program"] == "Corner Shop Rewards"


def test_the_default_rules_file_of_a_report_is_loaded_only_if_present(tmp_path: Path) -> None:
    assert load_rules_if_present(tmp_path / "none.yaml") is None
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "gone.yaml")
    assert load_rules_if_present(tmp_path / "dangling.yaml") is None
    (tmp_path / "plain").write_text("x")
    assert load_rules_if_present(tmp_path / "plain" / "rules.yaml") is None
    shutil.copy(EXAMPLE_RULES, tmp_path / "rules.yaml")
    ruleset = load_rules_if_present(tmp_path / "rules.yaml")
    assert ruleset is not None and ruleset.program.name == "Corner Shop Rewards"
    # Something there that cannot be read is an error, not "no rules".
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    for path, reason in [
        (tmp_path / "folder.yaml", "is a directory, not a file"),
        (tmp_path / ("n" * 300) / "rules.yaml", "cannot be read: File name too long"),
        (tmp_path / "loop.yaml", "cannot be read: Too many levels of symbolic links"),
    ]:
        with pytest.raises(InputMissing) as caught:
            load_rules_if_present(path)
        assert caught.value.lines() == [f"rules file {path} {reason}"]


def test_a_report_with_an_unreadable_default_rules_file_is_one_line(
    shop: Shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root no permission bits stop a read, but a name too long does the same:
    # the default rules path cannot even be looked at.
    shop.ok("enroll", "C1")
    config = tmp_path / ("c" * 300)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    result = shop.runner.invoke(
        app,
        ["report", "--json"],
        env={"LOYALTY_DB": str(shop.db), "LOYALTY_RULES": None},  # type: ignore[dict-item]
    )
    assert result.exit_code == 66
    check_error_json(result.stdout, 66, result.stderr.splitlines())
    assert result.stderr == (
        f"error: rules file {config / 'loyalty' / 'rules.yaml'} cannot be read: "
        "File name too long\n"
    )
