"""Receipts with lines (issue 12): rules per line and per receipt, earn --line and
--lines, refunds per line, till exports with a row per line, and what history and
the reports show of them."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import tracemalloc
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from loyalty_cli import importer
from loyalty_cli.bloom import Bloom
from loyalty_cli.engine import awards, refunds
from loyalty_cli.engine.book import Book
from loyalty_cli.engine.requests import EarnRequest, EnrollRequest, RefundRequest
from loyalty_cli.errors import Refused
from loyalty_cli.evaluator import evaluate
from loyalty_cli.models import Activity, CustomerState, Line, RuleUsage, TierLevel
from loyalty_cli.rules import parse_rules
from loyalty_cli.store import Store
from loyalty_cli.store.schema import SCHEMA_VERSION

from .conftest import Shop

DATA = Path(__file__).resolve().parent / "data"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ledger-v4.db"
AT = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)  # a Thursday

RULES = """\
program: {name: T, timezone: UTC}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: no-gift-cards, on: purchase, when: {category: [gift-card, delivery]}, exclude: true}
  - {id: sku-x, on: purchase, when: {sku: SKU-X}, multiply: 3}
  - {id: shoes, on: purchase, when: {category: shoes}, points_per_unit: 0.5}
  - {id: big-basket, on: purchase, min_amount: 50, points: 25}
  - {id: first, on: purchase, when: {purchases: 0}, points: 7}
  - {id: three-items, on: purchase, when: {items: {gte: 3}}, points: 5}
"""


def rules(text: str = RULES) -> object:
    return parse_rules(text)


def state(**kw: object) -> CustomerState:
    return CustomerState(
        **{"customer_id": "C1", "enrolled_at": datetime(2026, 1, 1, tzinfo=UTC), **kw}
    )  # type: ignore[arg-type]


def receipt(*lines: Line) -> Activity:
    total = sum((line.amount for line in lines), Decimal("0.00"))
    return Activity("C1", "purchase", AT, amount=total, lines=lines)


def line(
    amount: str, quantity: int = 1, sku: str | None = None, category: str | None = None
) -> Line:
    return Line(Decimal(amount), quantity, sku, category)


def by_rule(award: object) -> dict[str, int]:
    return {a.rule: a.points for a in award.lines}  # type: ignore[attr-defined]


# --- rules per line and per receipt ------------------------------------------------


def test_a_rule_is_judged_per_line_when_it_earns_by_amount_or_tests_what_a_line_is() -> None:
    scopes = {r.id: (r.scope, r.exclude) for r in rules().rules}  # type: ignore[attr-defined]
    assert scopes == {
        "base": ("line", False),
        "no-gift-cards": ("line", True),
        "sku-x": ("line", False),
        "shoes": ("line", False),
        "big-basket": ("receipt", False),
        "first": ("receipt", False),
        "three-items": ("receipt", False),
    }
    told = parse_rules(
        "program: {name: T, timezone: UTC}\nearn:\n"
        "  - {id: per-line-bonus, on: purchase, per: line, points: 2}\n"
        "  - {id: shoes-receipt, on: purchase, per: receipt, when: {quantity: {gte: 2}}, points: 1}\n"
    )
    assert [r.scope for r in told.rules] == ["line", "receipt"]


def test_rules_check_shows_where_each_rule_is_judged(shop: Shop) -> None:
    shop.write_rules(RULES + "  - {id: welcome, on: enroll, points: 1}\n")
    doc = shop.ok("rules", "check")
    shown = {r["rule"]: (r["scope"], r["exclude"]) for r in doc["rules"]}
    assert shown["no-gift-cards"] == ("line", True)
    assert shown["big-basket"] == ("receipt", False)
    assert shown["welcome"] == (None, False)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{id: x, on: purchase, exclude: false}", "exclude can only be true"),
        (
            "{id: x, on: purchase, exclude: true, per: receipt}",
            "rule 'x' excludes lines, so it is judged per line",
        ),
        ("{id: x, on: purchase, points: 1, per: basket}", "per must be one of line, receipt"),
        ("{id: x, on: review, exclude: true}", "'exclude' only applies to purchase rules"),
        (
            "{id: x, on: purchase, points: 1, exclude: true}",
            "needs exactly one of points, points_per_unit, multiply, reward or exclude",
        ),
    ],
)
def test_bad_line_rules_are_refused_at_their_line(rule: str, message: str) -> None:
    from loyalty_cli.errors import RulesInvalid

    with pytest.raises(RulesInvalid) as caught:
        parse_rules(f"program: {{name: T, timezone: UTC}}\nearn:\n  - {rule}\n", "r.yaml")
    assert any(message in p.message for p in caught.value.problems), caught.value.problems
    assert all(p.location.line == 3 for p in caught.value.problems)


def test_each_line_earns_by_its_own_rules_rounded_on_its_own() -> None:
    award = evaluate(
        rules(),
        receipt(line("59.90", 1, category="shoes"), line("9.00", 2, sku="SKU-X")),
        state(purchases=3),
    )
    one, two = award.items
    # shoes: floor(59.90) + floor(59.90 x 0.5) = 59 + 29; SKU-X: 9 + 3x -> 9 + 18
    assert (one.points, two.points) == (59 + 29, 9 + 18)
    assert {a.rule: a.points for a in one.lines} == {"base": 59, "shoes": 29}
    assert {a.rule: a.points for a in two.lines} == {"base": 9, "sku-x": 18}
    # the basket (68.90) is over 50: one bonus for the receipt; three items: 5 more
    assert by_rule(award) == {
        "base": 68,
        "sku-x": 18,
        "shoes": 29,
        "big-basket": 25,
        "three-items": 5,
    }
    assert award.points == one.points + two.points + 25 + 5


def test_excluded_lines_earn_nothing_and_leave_the_basket() -> None:
    award = evaluate(
        rules(),
        receipt(
            line("30.00", category="toys"),
            line("40.00", category="gift-card"),
            line("5.00", category="delivery"),
        ),
        state(purchases=1),
    )
    assert [i.excluded_by for i in award.items] == [None, "no-gift-cards", "no-gift-cards"]
    assert [i.points for i in award.items] == [30, 0, 0]
    # 75.00 was paid, but the basket after exclusions is 30.00: no big-basket bonus
    assert by_rule(award) == {"base": 30}
    skipped = {s.rule: s.reason for s in award.skipped}
    assert skipped["big-basket"] == "amount 30.00 is below min_amount 50"
    assert skipped["no-gift-cards"] == "excludes line 2, 3"


def test_a_receipt_of_excluded_lines_only_earns_nothing_at_all() -> None:
    award = evaluate(
        rules(),
        receipt(line("60.00", category="gift-card"), line("5.00", category="delivery")),
        state(),
    )
    assert (award.points, award.lines) == (0, ())
    assert {s.rule: s.reason for s in award.skipped}["first"] == (
        "not reached: every line of the receipt is excluded"
    )
    one_line = evaluate(
        rules(), Activity("C1", "purchase", AT, amount=Decimal("60"), category="gift-card"), state()
    )
    assert one_line.points == 0


def test_the_receipts_bonuses_fire_once_however_many_lines() -> None:
    award = evaluate(rules(), receipt(*[line("1.00", category="pens")] * 4), state())
    assert by_rule(award) == {"base": 4, "first": 7, "three-items": 5}
    assert [i.points for i in award.items] == [1, 1, 1, 1]


def test_a_receipt_multiplier_multiplies_every_part_each_rounded_on_its_own() -> None:
    text = RULES + "  - {id: double, on: purchase, multiply: 1.5}\n"
    award = evaluate(
        rules(text), receipt(line("3.00", category="a"), line("5.00", category="b")), state()
    )
    # line 1: 3 + floor(1.5) = 4; line 2: 5 + floor(2.5) = 7; receipt: 7 + floor(3.5) = 10
    assert [i.points for i in award.items] == [4, 7]
    assert by_rule(award) == {"base": 8, "first": 7, "double": 1 + 2 + 3}
    assert award.points == 4 + 7 + 10


def test_a_points_cap_is_shared_by_the_lines_in_their_order() -> None:
    text = "program: {name: T, timezone: UTC}\nearn:\n  - {id: base, on: purchase, points_per_unit: 1, cap: {points: 50, per: day}}\n"
    used = state(usage={"base": RuleUsage(count=1, points=20)})
    award = evaluate(rules(text), receipt(line("25.00", sku="A"), line("25.00", sku="B")), used)
    assert [i.points for i in award.items] == [25, 5]
    assert by_rule(award) == {"base": 30}


def test_stop_ends_a_lines_rules_not_the_other_lines() -> None:
    text = """\
program: {name: T, timezone: UTC}
earn:
  - {id: flat, on: purchase, priority: 10, when: {category: books}, points_per_unit: 2, stop: true}
  - {id: base, on: purchase, points_per_unit: 1}
"""
    award = evaluate(
        rules(text),
        receipt(line("10.00", category="books"), line("10.00", category="pens")),
        state(),
    )
    assert [{a.rule: a.points for a in i.lines} for i in award.items] == [
        {"flat": 20},
        {"base": 10},
    ]


def test_the_tier_multiplier_applies_to_each_line() -> None:
    gold = TierLevel("gold", "Gold", Decimal(0), Decimal("1.5"))
    award = evaluate(
        rules(),
        receipt(line("3.00", sku="A"), line("3.00", sku="B")),
        state(tier=gold, purchases=1),
    )
    assert [i.points for i in award.items] == [3 + 1, 3 + 1]
    assert by_rule(award)["tier:gold"] == 2


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=50_000),  # cents
            st.integers(min_value=1, max_value=5),
            st.sampled_from([None, "SKU-X", "A1"]),
            st.sampled_from([None, "shoes", "gift-card", "food"]),
        ).filter(lambda t: t[2] or t[3]),
        min_size=2,
        max_size=8,
    ),
    st.sampled_from(["floor", "nearest", "ceil"]),
    st.integers(min_value=0, max_value=3),
)
def test_a_receipts_points_are_its_lines_points_plus_its_own(
    lines: list[tuple[int, int, str | None, str | None]], rounding: str, purchases: int
) -> None:
    """Per-line rounding, stated as a property: a receipt's points are the sum of
    its lines' points and of its own part; with line rules only, each line earns
    what it earns as a one-line purchase."""
    text = RULES.replace("timezone: UTC}", f"timezone: UTC, rounding: {rounding}}}")
    text += "  - {id: campaign, on: purchase, multiply: 1.25}\n"
    ruleset = rules(text)
    items = tuple(Line(Decimal(c) / 100, q, sku, cat) for c, q, sku, cat in lines)
    award = evaluate(ruleset, receipt(*items), state(purchases=purchases))
    receipt_rules = {"big-basket", "first", "three-items"}
    lines_total = sum(i.points for i in award.items)
    assert award.points == sum(a.points for a in award.lines)
    assert award.points >= lines_total
    line_only = rules(
        "\n".join(t for t in text.splitlines() if not any(r in t for r in receipt_rules)) + "\n"
    )
    alone = [
        evaluate(
            line_only,
            Activity(
                "C1",
                "purchase",
                AT,
                amount=i.amount,
                quantity=i.quantity,
                sku=i.sku,
                category=i.category,
            ),
            state(purchases=purchases),
        ).points
        for i in items
    ]
    whole = evaluate(line_only, receipt(*items), state(purchases=purchases))
    assert [i.points for i in whole.items] == alone
    assert whole.points == sum(alone)
    # the receipt rules add the same part however the lines are ordered
    flipped = evaluate(ruleset, receipt(*reversed(items)), state(purchases=purchases))
    assert flipped.points - sum(i.points for i in flipped.items) == award.points - lines_total


# --- the command line ------------------------------------------------------------


@pytest.fixture
def till(shop: Shop) -> Shop:
    shop.write_rules(RULES + "  - {id: welcome, on: enroll, points: 0}\n")
    shop.clock("2026-11-20")
    shop.ok("enroll", "C1", "--at", "2026-11-01")
    return shop


def test_earn_with_lines_shows_each_line_and_its_rules(till: Shop) -> None:
    doc = till.ok(
        "earn",
        "C1",
        "--line",
        "shoes:59.90",
        "--line",
        "/SKU-X:2x4.50",
        "--line",
        "gift-card:20",
        "--txn",
        "R1",
        "--at",
        "2026-11-19",
    )
    # lines 88 + 27; the receipt: big-basket 25, first 7, three-items 5 (3 units kept)
    assert (doc["amount"], doc["points"]) == ("88.90", (59 + 29) + (9 + 18) + 25 + 7 + 5)
    assert [
        (
            i["number"],
            i["sku"],
            i["category"],
            i["quantity"],
            i["amount"],
            i["points"],
            i["excluded_by"],
        )
        for i in doc["items"]
    ] == [
        (1, None, "shoes", 1, "59.90", 88, None),
        (2, "SKU-X", None, 2, "9.00", 27, None),
        (3, None, "gift-card", 1, "20.00", 0, "no-gift-cards"),
    ]
    assert doc["items"][1]["lines"] == [
        {"rule": "base", "points": 9, "detail": "9.00 x 1 per unit = 9"},
        {"rule": "sku-x", "points": 18, "detail": "x3 on 9 base points: +18"},
    ]
    assert "skipped" not in doc["items"][0]
    again = till.ok(
        "earn",
        "C1",
        "--line",
        "shoes:59.90",
        "--line",
        "/SKU-X:2x4.50",
        "--line",
        "gift-card:20",
        "--txn",
        "R1",
    )
    assert (again["duplicate"], again["points"]) == (True, doc["points"])
    # the retry tells the split by rule and by line that the first earn told
    assert (again["lines"], again["items"]) == (doc["lines"], doc["items"])
    assert till.ok("balance", "C1")["balance"] == doc["points"]
    other = till.fails(1, "earn", "C1", "--line", "shoes:59.90", "--txn", "R1")
    assert "txn 'R1' was already used for a different operation" in other


@pytest.mark.parametrize(
    "extra", ["", "  - {id: nope, on: purchase, when: {sku: NONE}, exclude: true}\n"]
)
def test_a_retried_receipt_reports_the_split_of_the_first_earn(shop: Shop, extra: str) -> None:
    # a receipt-wide campaign doubles every part, a capped rule is cut short on
    # the second line, the tier adds its line: the retry (under rules changed
    # since) tells each line's points by rule and each rule's words as the first did
    shop.write_rules(
        RULES
        + "  - {id: welcome, on: enroll, points: 0}\n"
        + "  - {id: double, on: purchase, multiply: 2}\n"
        + "  - {id: pens, on: purchase, when: {category: pens}, points: 4, "
        + "cap: {points: 6, per: day}}\n"
        + "tiers:\n  metric: spend\n  window: calendar_year\n  levels:\n"
        + "    - {id: base, name: Base, threshold: 0, multiplier: 1.5}\n"
    )
    shop.clock("2026-11-20")
    shop.ok("enroll", "C1", "--at", "2026-11-01")
    receipt = ["--line", "pens:1.50", "--line", "pens:2.50", "--line", "/SKU-X:2x4.50"]
    receipt += ["--line", "gift-card:20", "--txn", "R1", "--at", "2026-11-19"]
    doc = shop.ok("earn", "C1", *receipt)
    assert [i["points"] for i in doc["items"]][:2] != [0, 0]
    shop.write_rules(RULES + "  - {id: welcome, on: enroll, points: 0}\n" + extra)
    again = shop.ok("earn", "C1", *receipt)
    assert again["duplicate"] is True
    assert (again["points"], again["lines"], again["items"]) == (
        doc["points"],
        doc["lines"],
        doc["items"],
    )


def test_dry_run_and_explain_work_per_line_and_write_nothing(till: Shop) -> None:
    doc = till.ok(
        "earn", "C1", "--line", "pens:5", "--line", "gift-card:20", "--dry-run", "--explain"
    )
    assert doc["dry_run"] is True
    assert doc["items"][0]["skipped"] == [
        {"rule": "sku-x", "reason": "condition not met: sku is sku-x"},
        {"rule": "shoes", "reason": "condition not met: category is shoes"},
    ]
    assert {s["rule"] for s in doc["zero_points"]} == {"no-gift-cards"}
    assert till.ok("balance", "C1")["balance"] == 0


def test_a_one_line_receipt_earns_and_stores_what_an_amount_purchase_does(till: Shop) -> None:
    by_line = till.ok(
        "earn", "C1", "--line", "shoes/S1:3x20.00", "--txn", "A", "--at", "2026-11-19"
    )
    by_amount = till.ok(
        "earn",
        "C1",
        "--amount",
        "60.00",
        "--category",
        "shoes",
        "--sku",
        "S1",
        "--quantity",
        "3",
        "--txn",
        "B",
        "--at",
        "2026-11-19",
    )
    assert "items" not in by_line
    assert by_line["lines"][:2] == by_amount["lines"][:2]
    with till.store() as store:
        conn = store.conn
        assert tuple(conn.execute("SELECT COUNT(*) FROM items").fetchone()) == (0,)
        rows = conn.execute(
            "SELECT amount_cents, category, sku, quantity FROM operations WHERE txn IN ('A', 'B')"
        ).fetchall()
    assert rows == [(6000, "shoes", "S1", 3)] * 2


def test_lines_come_as_json_lines_from_a_file_or_stdin(till: Shop) -> None:
    path = till.dir / "receipt.jsonl"
    path.write_text(
        '{"sku": "SKU-X", "quantity": 2, "unit_price": "4.50"}\n\n'
        '{"category": "shoes", "amount": 59.90, "discount": "10.00"}\n'
    )
    doc = till.ok("earn", "C1", "--lines", str(path), "--dry-run")
    assert [(i["amount"], i["points"]) for i in doc["items"]] == [("9.00", 27), ("49.90", 49 + 24)]
    piped = till.runner.invoke(
        __import__("loyalty_cli.cli", fromlist=["app"]).app,
        ["earn", "C1", "--lines", "-", "--dry-run", "--json"],
        input=path.read_text(),
        env={"LOYALTY_DB": till.url or str(till.db), "LOYALTY_RULES": str(till.rules)},
    )
    assert piped.exit_code == 0, piped.output
    assert json.loads(piped.stdout)["points"] == doc["points"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--line", "shoes"], 2, "is not CATEGORY[/SKU]:[QTYx]PRICE[-DISCOUNT]"),
        (["--line", ":5"], 2, "names neither a category nor a SKU"),
        (["--line", "shoes:0x5"], 2, "quantity 0 must be 1 to 1,000,000"),
        (["--line", "shoes:2x5-11"], 2, "discount 11.00 is more than the line's 10.00"),
        (["--line", "shoes:abc"], 2, "price 'abc' is not a number"),
        (["--line", "a:1", "--amount", "5"], 2, "got --amount and --line"),
        (["--line", "a:1", "--category", "b"], 2, "put them in each --line instead"),
        (["--lines", "missing.jsonl"], 66, "--lines missing.jsonl: cannot read it"),
        (["--line", "a:0", "--line", "b:0"], 2, "the receipt's lines come to 0.00"),
    ],
)
def test_bad_lines_are_one_clear_line_and_change_nothing(
    till: Shop, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int, message: str
) -> None:
    monkeypatch.chdir(till.dir)
    error = till.fails(code, "earn", "C1", *args)
    assert message in error, error
    assert till.ok("balance", "C1")["balance"] == 0


def test_every_bad_json_line_is_named_by_file_and_line(till: Shop) -> None:
    path = till.dir / "bad.jsonl"
    path.write_text(
        '{"sku": "A", "amount": "1"}\nnot json\n{"sku": "B", "price": 2}\n{"sku": "C", "quantity": 2, "unit_price": "1", "amount": "3"}\n'
    )
    error = till.fails(65, "earn", "C1", "--lines", str(path))
    assert f"{path}:2: not JSON" in error
    assert f"{path}:3: unknown key 'price'" in error
    assert f"{path}:4: amount 3.00 is not quantity 2 x unit price 1.00" in error


# --- refunds per line ------------------------------------------------------------


def test_a_return_takes_back_exactly_what_its_units_earned(till: Shop) -> None:
    sale = till.ok(
        "earn",
        "C1",
        "--line",
        "shoes:59.90",
        "--line",
        "/SKU-X:3x3.00",
        "--txn",
        "R1",
        "--at",
        "2026-11-19",
    )
    # line 2: 9 base + 18 (3x) = 27 points for 3 units
    assert [i["points"] for i in sale["items"]] == [88, 27]
    first = till.ok("refund", "R1", "--line", "SKU-X:1", "--txn", "F1", "--at", "2026-11-19T13:00")
    assert (first["amount"], first["points"], first["items"]) == (
        "3.00",
        -9,
        [
            {
                "number": 2,
                "sku": "SKU-X",
                "category": None,
                "quantity": 1,
                "amount": "3.00",
                "points": -9,
            }
        ],
    )
    assert till.ok("refund", "R1", "--line", "SKU-X:1", "--txn", "F1")["duplicate"] is True
    rest = till.ok("refund", "R1", "--line", "sku-x", "--at", "2026-11-19T13:00")
    # the shoes alone are one item: three-items' 5 go back with the SKU-X
    assert (rest["amount"], rest["points"], rest["clawback"]) == ("6.00", -23, 23)
    assert "every unit of 'SKU-X'" in till.fails(
        1, "refund", "R1", "--line", "SKU-X", "--at", "2026-11-19T13:00"
    )
    # the last line back takes back the receipt's own points too (big-basket, first)
    last = till.ok("refund", "R1", "--line", "#1", "--at", "2026-11-19T13:00")
    assert (last["points"], last["refunded"]) == (-(88 + 25 + 7), "68.90")
    assert till.ok("balance", "C1")["balance"] == 0
    assert till.ok("verify")["ok"] is True
    categories = till.ok("report", "rules", "--to", "2026-11-19")["categories"]
    assert [(c["category"], c["points"]) for c in categories] == [("shoes", 0), (None, 0)]


def test_a_one_line_purchase_is_returned_by_unit_and_its_last_unit_takes_the_rest(
    till: Shop,
) -> None:
    till.ok(
        "earn",
        "C1",
        "--amount",
        "10.00",
        "--sku",
        "A1",
        "--quantity",
        "3",
        "--txn",
        "P",
        "--at",
        "2026-11-19",
    )
    assert "has no line with SKU or category 'nope'" in till.fails(
        1, "refund", "P", "--line", "nope"
    )
    # its line earned 10 (base), the receipt its own 12 (first 7, three-items 5): the
    # first unit back takes floor(10 / 3) and, two items left, three-items' 5; the
    # second 6 - 3; the last the rest of the line (4) and of the receipt (first's 7)
    taken = [
        till.ok("refund", "P", "--line", "A1:1", "--at", "2026-11-19T13:00")["points"]
        for _ in range(3)
    ]
    assert taken == [-3 - 5, -3, -4 - 7]


def test_a_return_judges_the_receipt_by_the_rules_it_was_made_with(till: Shop) -> None:
    for txn in ("R1", "R2"):  # 3 x 1 base, first 7 (R1 only), three-items 5
        till.ok(
            "earn", "C1", "--line", "a:1", "--line", "b:2x1", "--txn", txn, "--at", "2026-11-19"
        )
    # three-items is gone from today's rules: R1 and R2 still earned it, and lose it
    # when they fall short of it, by the command or by an import
    till.write_rules(RULES.replace("  - {id: three-items", "  # - {id: three-items"))
    back = till.ok("refund", "R1", "--line", "a", "--at", "2026-11-19T13:00")
    assert (back["clawback"], back["items"][0]["points"]) == (1 + 5, -1)
    path = till.dir / "returns.csv"
    path.write_text(
        "txn_id,customer_id,date,sku,category,quantity,unit_price,refund_of\n"
        "RT-2,C1,2026-11-19T13:00,,b,-1,1.00,R2\n"
    )
    till.ok("import-csv", str(path))
    assert till.ok("balance", "C1")["balance"] == (3 + 7 + 5) + (3 + 5) - 6 - (1 + 5)


def test_free_lines_kept_after_the_money_is_back_still_return_what_is_left(
    till: Shop,
) -> None:
    # a 5 base; two free items make three (three-items 5); first 7: 17 points
    till.ok(
        "earn", "C1", "--line", "a:5", "--line", "free:2x0", "--txn", "R", "--at", "2026-11-19"
    )  # fmt: skip
    at = ("--at", "2026-11-19T13:00")
    paid = till.ok("refund", "R", "--line", "a", *at)
    # all the money back; the two free items kept: a's 5 and three-items' 5 go back
    assert (paid["refunded"], paid["clawback"]) == ("5.00", 5 + 5)
    rest = till.ok("refund", "R", *at)  # the rest: first's 7, for 0.00
    assert (rest["amount"], rest["clawback"]) == ("0.00", 7)
    assert till.ok("balance", "C1")["balance"] == 0
    assert "already fully refunded" in till.fails(1, "refund", "R", *at)


def test_refunds_by_amount_and_by_line_mix_on_one_receipt(till: Shop) -> None:
    # a 5 + b 5 base, and the receipt's own first 7: 17 points for 10.00
    till.ok("earn", "C1", "--line", "a:5", "--line", "b:5", "--txn", "R", "--at", "2026-11-19")
    at = ("--at", "2026-11-19T13:00")
    steps = [
        ("--amount", "2.00"),  # floor(17 x 2 / 10)
        ("--line", "a"),  # line a's 5 (first still holds: b is kept)
        ("--amount", "1.00"),  # of the 9 left on 3.00: floor(9 x 1 / 3)
        (),  # the rest: 2.00 and the 6 left
    ]
    done = [till.ok("refund", "R", *step, *at) for step in steps]
    assert [(d["amount"], d["clawback"]) for d in done] == [
        ("2.00", 3),
        ("5.00", 5),
        ("1.00", 3),
        ("2.00", 6),
    ]
    assert done[-1]["refunded"] == "10.00"
    assert till.ok("balance", "C1")["balance"] == 0
    assert "already fully refunded" in till.fails(1, "refund", "R", "--line", "b", *at)


_KINDS = (("a", None), ("shoes", None), (None, "SKU-X"), ("gift-card", None))
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("amount"), st.integers(1, 100)),  # percent of what is left
        st.tuples(st.just("line"), st.integers(0, 3), st.integers(1, 4)),  # line, units
    ),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(
    sold=st.lists(
        st.tuples(st.sampled_from(_KINDS), st.integers(1, 4), st.integers(0, 4000)),
        min_size=1,
        max_size=4,
    ),
    steps=_steps,
    rest=st.booleans(),
)
# The paid line back first, three free lines kept (still three items): the rest
# takes back first's 7 and three-items' 5 for 0.00.
@example(sold=[(("a", None), 1, 0)] * 3 + [(("a", None), 1, 1)], steps=[("line", 3, 1)], rest=True)
def test_refunds_by_amount_and_by_line_never_take_back_more_than_was_earned_or_sold(
    sold: list[tuple[tuple[str | None, str | None], int, int]],
    steps: list[tuple[object, ...]],
    rest: bool,
) -> None:
    ruleset = rules(RULES + "  - {id: welcome, on: enroll, points: 0}\n")
    lines = tuple(
        Line(Decimal(cents) / 100 * quantity, quantity, sku, category)
        for (category, sku), quantity, cents in sold
    )
    assume(sum(line.amount for line in lines) > 0)
    book = Book(ruleset, AT)  # type: ignore[arg-type]
    awards.enroll(book, EnrollRequest("C1", at=AT, salt=b"s"))
    total = sum((line.amount for line in lines), Decimal("0.00"))
    earned = awards.earn(
        book, EarnRequest("C1", "purchase", amount=total, txn="R", at=AT, lines=lines)
    ).award.points
    clawbacks, refunded, back = [], Decimal(0), defaultdict(int)
    for step in [*steps, *([("rest",)] if rest else [])]:
        left = total - refunded
        if step[0] == "amount":
            amount = max(Decimal("0.01"), (left * int(step[1]) / 100).quantize(Decimal("0.01")))
            request = RefundRequest("R", amount=min(amount, left), at=AT)
        elif step[0] == "line":
            number = int(step[1]) % len(lines) + 1
            request = RefundRequest("R", at=AT, returns=((f"#{number}", int(step[2])),))
        else:
            request = RefundRequest("R", at=AT)
        try:
            done = refunds.refund(book, request)
        except Refused:
            continue  # nothing left to refund, or more units than are left
        assert done.clawback >= 0
        clawbacks.append(done.clawback)
        refunded = done.refunded
        for item in done.items:
            back[item.number] += item.quantity
    assert sum(clawbacks) <= earned
    assert refunded <= total
    assert all(back[n] <= line.quantity for n, line in enumerate(lines, 1))
    if rest:  # the rest refunded: exactly all that was earned, and all the money
        assert (sum(clawbacks), refunded) == (earned, total)


# --- importing a till's line-level export ------------------------------------------

ONLINE_RULES = """\
program: {name: Online, timezone: Europe/London, currency: GBP}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: no-postage, on: purchase, when: {sku: POST}, exclude: true}
  - {id: clocks, on: purchase, when: {sku: ["22728", "22727"]}, multiply: 2}
  - {id: big-basket, on: purchase, min_amount: 100, points: 10}
"""
ONLINE_MAP = [
    "--map",
    "txn_id=InvoiceNo",
    "--map",
    "sku=StockCode",
    "--map",
    "quantity=Quantity",
    "--map",
    "date=InvoiceDate",
    "--map",
    "unit_price=UnitPrice",
    "--map",
    "customer_id=CustomerID",
    "--date-format",
    "%m/%d/%Y %H:%M",
    "--cancel-prefix",
    "C",
    "--enroll-unknown",
]


def expected_online_points(path: Path) -> dict[str, int]:
    """The points of the export worked out here, without loyalty: per invoice,
    floor(quantity x unit price) per line, postage excluded, the clocks doubled,
    and the invoice's own 10 for a basket of 100 or more. A cancellation takes
    back, from the newest earlier invoice of the customer that sold the item,
    floor(the line's points x units back / units sold) over the line's returns,
    the 10 too once the lines kept (postage aside) come to less than 100, and
    the rest once every unit is back."""
    rows = list(csv.DictReader(path.open()))
    invoices: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        if row["CustomerID"]:
            invoices[row["InvoiceNo"]].append(row)

    def when(inv: str) -> datetime:
        return datetime.strptime(invoices[inv][0]["InvoiceDate"], "%m/%d/%Y %H:%M")

    @dataclass
    class Sold:
        invoice: str
        code: str
        units: int
        price: Decimal
        points: int
        back_units: int = 0
        back_points: int = 0

    points: dict[str, int] = defaultdict(int)
    lines_of: dict[str, list[Sold]] = {}
    own: dict[str, int] = {}  # an invoice's own points not yet taken back
    for inv in sorted((i for i in invoices if not i.startswith("C")), key=when):
        sold = []
        for r in invoices[inv]:
            base = int(
                (Decimal(r["Quantity"]) * Decimal(r["UnitPrice"])).to_integral_value(ROUND_FLOOR)
            )
            earned = 0 if r["StockCode"] == "POST" else base
            earned *= 2 if r["StockCode"] in ("22728", "22727") else 1
            sold.append(
                Sold(inv, r["StockCode"], int(r["Quantity"]), Decimal(r["UnitPrice"]), earned)
            )
        basket = sum(s.units * s.price for s in sold if s.code != "POST")
        own[inv] = 10 if basket >= 100 else 0
        lines_of[inv] = sold
        points[invoices[inv][0]["CustomerID"]] += sum(s.points for s in sold) + own[inv]
    for inv in (i for i in invoices if i.startswith("C")):
        touched = set()
        for r in invoices[inv]:
            customer, units = r["CustomerID"], -int(r["Quantity"])
            sales = [
                s
                for sale, lines in lines_of.items()
                if invoices[sale][0]["CustomerID"] == customer
                for s in lines
                if s.code == r["StockCode"]
            ]
            for s in sorted(sales, key=lambda s: when(s.invoice), reverse=True):
                take = min(units, s.units - s.back_units)
                if take:
                    due = s.points * (s.back_units + take) // s.units
                    points[customer] -= due - s.back_points
                    s.back_units, s.back_points = s.back_units + take, due
                    units -= take
                    touched.add(s.invoice)
        for sale in touched:
            lines = lines_of[sale]
            kept = sum((s.units - s.back_units) * s.price for s in lines if s.code != "POST")
            if all(s.back_units == s.units for s in lines) or kept < 100:
                points[invoices[sale][0]["CustomerID"]] -= own[sale]
                own[sale] = 0
    return dict(points)


def test_an_online_retailers_invoice_lines_import_as_receipts(shop: Shop) -> None:
    shop.write_rules(ONLINE_RULES)
    path = DATA / "online_retail.csv"
    doc = shop.ok("import-csv", str(path), *ONLINE_MAP)
    assert doc["rejected"] == 0, doc
    # 17 rows: 2 guest rows skipped; 9 receipts (7 invoices, 2 cancellations)
    assert (doc["rows_read"], doc["imported"], doc["rows_skipped"], doc["receipt_count"]) == (
        17,
        15,
        2,
        9,
    )
    expected = expected_online_points(path)
    assert expected == {"17850": 62, "13047": 71, "12583": 370, "13748": 195}
    assert {c: shop.ok("balance", c)["balance"] for c in expected} == expected
    again = shop.ok("import-csv", str(path), *ONLINE_MAP)
    assert (again["imported"], again["duplicates"], again["rows_skipped"]) == (0, 15, 2)
    history = shop.ok("history", "13748")
    assert [
        (r["txn"], r["kind"], [(i["sku"], i["quantity"], i["points"]) for i in r["items"]])
        for r in history["receipts"]
    ] == [
        ("C536391/536372", "refund", [("21980", 24, -6)]),
        ("C536391", "refund", [("22086", 12, -30)]),  # the line's 204 x 12 / 80
        ("536372", "purchase", [("21980", 24, 6), ("22632", 6, 11)]),
    ]
    assert shop.ok("verify")["ok"] is True


def test_a_receipt_spread_over_chunks_and_files_is_one_decision(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "CHUNK", 2)
    monkeypatch.setattr(importer, "WAITING", 1)  # K-2 and K-3 go ahead of the open K-1
    shop.write_rules(RULES + "  - {id: welcome, on: enroll, points: 0}\n")
    header = "txn_id,customer_id,date,sku,category,quantity,unit_price\n"
    one = shop.dir / "a.csv"
    one.write_text(
        header + "K-1,C1,2026-11-19T10:00,S1,shoes,1,59.90\nK-2,C1,2026-11-19T11:00,,pens,1,1.00\n"
    )
    two = shop.dir / "b.csv"
    two.write_text(
        header + "K-3,C1,2026-11-19T12:00,,pens,1,1.00\nK-1,C1,2026-11-19T10:00,SKU-X,,2,4.50\n"
    )
    shop.ok("enroll", "C1", "--at", "2026-11-01")
    doc = shop.ok("import-csv", str(one), str(two))
    assert (doc["imported"], doc["receipt_count"], doc["rejected"]) == (4, 3, 0)
    # K-1 as typed: 88 + 27 + big-basket 25 + three-items 5; K-2 and K-3 1 each, and
    # whichever is decided first the first-purchase 7
    assert shop.ok("balance", "C1")["balance"] == 88 + 27 + 25 + 5 + 1 + 1 + 7
    with shop.store() as store:
        lines = store.conn.execute(
            "SELECT o.txn, i.number, i.points FROM items i JOIN operations o ON o.id = i.op_id "
            "ORDER BY o.id, i.number"
        ).fetchall()
    assert lines == [("K-1", 1, 88), ("K-1", 2, 27)]


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_a_cancellation_before_its_sale_in_an_earlier_chunk_waits_for_it(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # online_retail.csv lists C536391 (10:24) before the rows of the sale it
    # returns, 536372 (9:01): in chunks of 1, 2 or 5 rows they are chunks apart.
    monkeypatch.setattr(importer, "CHUNK", chunk)
    shop.write_rules(ONLINE_RULES)
    path = DATA / "online_retail.csv"
    doc = shop.ok("import-csv", str(path), *ONLINE_MAP)
    assert (doc["rows_read"], doc["imported"], doc["rejected"], doc["receipt_count"]) == (
        17,
        15,
        0,
        9,
    )
    expected = expected_online_points(path)
    assert {c: shop.ok("balance", c)["balance"] for c in expected} == expected
    again = shop.ok("import-csv", str(path), *ONLINE_MAP)
    assert (again["imported"], again["duplicates"], again["rejected"]) == (0, 15, 0)
    assert shop.ok("verify")["ok"] is True


def test_returns_in_an_earlier_file_than_their_sales_find_them(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "CHUNK", 1)
    shop.write_rules(RULES + "  - {id: welcome, on: enroll, points: 0}\n")
    header = "txn_id,customer_id,date,sku,quantity,unit_price,refund_of\n"
    returns = shop.dir / "returns.csv"
    returns.write_text(
        header
        + "CK-1,C1,2026-11-19T12:00,S1,-1,10.00,\n"  # no link: the newest sale of S1
        + "R-9,C1,2026-11-19T12:00,S2,-1,5.00,K-1\n"  # linked to K-1
        + "CK-2,C1,2026-11-19T12:00,S9,-1,1.00,\n"  # no sale of S9 anywhere
    )
    sales = shop.dir / "sales.csv"
    sales.write_text(
        header
        + "K-1,C1,2026-11-19T10:00,S1,2,10.00,\nK-1,C1,2026-11-19T10:00,S2,1,5.00,\n"
        + "K-2,C1,2026-11-19T13:00,S1,1,10.00,\n"  # after the return: not its sale
    )
    result = shop.run(
        "import-csv", str(returns), str(sales), "--enroll-unknown", "--cancel-prefix", "C",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 65, result.output
    doc = json.loads(result.stdout)
    assert (doc["rows_read"], doc["imported"], doc["rejected"]) == (6, 5, 1)
    assert f"rejected: {returns}:4: cancellation 'CK-2' returns 1 x 'S9'" in result.stderr
    # K-1: 25 base + 7 first + 5 three-items; K-2: 10. CK-1 takes back one of K-1's two
    # S1 (10 of 20) and, two items left, three-items' 5; R-9 its S2 (5).
    history = shop.ok("history", "C1")
    assert [(r["txn"], [(i["sku"], i["points"]) for i in r["items"]]) for r in history["receipts"]][
        :2
    ] == [("R-9", [("S2", -5)]), ("CK-1", [("S1", -10)])]
    refunds = [(e["txn"], e["points"]) for e in history["entries"] if e["kind"] == "refund"]
    assert sorted(refunds) == [("CK-1", -15), ("R-9", -5)]
    assert shop.ok("balance", "C1")["balance"] == 25 + 7 + 5 + 10 - 15 - 5


def test_a_receipts_rows_are_rejected_naming_each_ones_file(shop: Shop) -> None:
    shop.write_rules(RULES + "  - {id: welcome, on: enroll, points: 0}\n")
    header = "txn_id,customer_id,date,category,quantity,unit_price\n"
    one, two = shop.dir / "a.csv", shop.dir / "b.csv"
    one.write_text(header + "K-1,C1,2026-11-19,shoes,1,10.00\n")
    two.write_text(header + "K-2,C1,2026-11-19,pens,1,1.00\nK-1,C1,2026-11-19,shoes,-1,abc\n")
    result = shop.run("import-csv", str(one), str(two), "--enroll-unknown", "--json")
    assert result.exit_code == 65
    rejected = [line for line in result.stderr.splitlines() if line.startswith("rejected:")]
    assert rejected[0].startswith(f"rejected: {one}:2: its receipt is rejected whole: line 3")
    assert rejected[1].startswith(f"rejected: {two}:3: unit_price 'abc' is not a number")


def test_a_receipt_with_a_bad_row_is_rejected_whole_and_guests_can_be_refused(shop: Shop) -> None:
    shop.write_rules(RULES + "  - {id: welcome, on: enroll, points: 0}\n")
    path = shop.dir / "s.csv"
    path.write_text(
        "txn_id,customer_id,date,category,quantity,unit_price\n"
        "K-1,C1,2026-11-19,shoes,1,10.00\nK-1,C1,2026-11-19,shoes,x,10.00\n"
        "K-2,,2026-11-19,pens,1,1.00\n"
    )
    result = shop.run("import-csv", str(path), "--enroll-unknown", "--json")
    assert result.exit_code == 65
    doc = json.loads(result.stdout)
    assert (doc["rejected"], doc["rows_skipped"], doc["imported"]) == (2, 1, 0)
    assert (
        f"rejected: {path}:2: its receipt is rejected whole: line 3 of it is bad (quantity 'x' is not a whole number)"
        in result.stderr
    )
    words = shop.run("import-csv", str(path), "--enroll-unknown", "--no-json")
    assert "2 rejected, 1 skipped (no customer);" in words.stderr, words.stderr
    strict = shop.run("import-csv", str(path), "--enroll-unknown", "--reject-guests", "--json")
    assert json.loads(strict.stdout)["rejected"] == 3
    assert f"{path}:4: customer_id is empty" in strict.stderr


# --- downstream ------------------------------------------------------------------


def test_report_rules_gives_points_by_category(till: Shop) -> None:
    till.ok(
        "earn",
        "C1",
        "--line",
        "shoes:59.90",
        "--line",
        "food/SKU-X:2x4.50",
        "--line",
        "gift-card:21",
        "--txn",
        "R1",
        "--at",
        "2026-11-19",
    )
    till.ok(
        "earn", "C1", "--amount", "10", "--category", "food", "--txn", "R2", "--at", "2026-11-19"
    )
    till.ok("refund", "R1", "--line", "SKU-X:1", "--at", "2026-11-19T13:00")
    till.ok("refund", "R2", "--amount", "5", "--at", "2026-11-19T13:00")
    doc = till.ok("report", "rules", "--to", "2026-11-19")
    assert doc["categories"] == [
        # food: line 27 + R2's 10; back: 27 x 1/2 -> 13, and half of R2's 10
        {"category": "food", "points_earned": 37, "points_refunded": -13 - 5, "points": 19},
        {"category": "shoes", "points_earned": 88, "points_refunded": 0, "points": 88},
        # R1's own part: big-basket 25 + first 7 + three-items 5, which went back
        # with the SKU-X (two items kept: the gift card is excluded)
        {"category": None, "points_earned": 37, "points_refunded": -5, "points": 32},
    ]
    assert doc["points"] == 37 + 88 + 37
    activity = till.ok("report", "activity", "--to", "2026-11-19")
    assert activity["totals"]["purchases"] == 2  # receipts, not their 4 lines


# --- the store ----------------------------------------------------------------------


def test_a_schema_6_ledger_gets_the_items_table_and_the_store_column_and_keeps_its_chain(
    tmp_path: Path,
) -> None:
    db = tmp_path / "v6.db"
    shutil.copy(FIXTURE, db)
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    with Store.open(db) as store:
        head = store.verify(now).operations_head
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("DROP TRIGGER items_no_update")
        conn.execute("DROP TRIGGER items_no_delete")
        conn.execute("DROP TABLE items")
        conn.execute("ALTER TABLE operations DROP COLUMN store")
        conn.execute("PRAGMA user_version = 6")
    with Store.open(db) as store:
        conn = store.conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        report = store.verify(now)
        assert report.ok, report.problems
        assert report.operations_head == head
        columns = [row[1] for row in conn.execute("PRAGMA table_info(operations)")]
        assert columns[-1] == "store"
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("INSERT INTO items VALUES (1, 1, NULL, 'x', 1, 1, 1, NULL)")
        for change in ("UPDATE items SET points = 2", "DELETE FROM items"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(change)


def test_editing_a_receipts_line_fails_verify(till: Shop) -> None:
    till.ok("earn", "C1", "--line", "a:5", "--line", "b:5", "--txn", "R", "--at", "2026-11-19")
    till.tamper("UPDATE items SET points = 500 WHERE number = 2", triggers=("items_no_update",))
    result = till.run("verify", "--json")
    assert result.exit_code == 1
    assert "does not match the hash chain" in json.loads(result.stdout)["problems"][0]


def test_a_return_row_with_refund_of_returns_those_units_from_that_receipt(shop: Shop) -> None:
    shop.write_rules(RULES + "  - {id: welcome, on: enroll, points: 0}\n")
    path = shop.dir / "s.csv"
    path.write_text(
        "txn_id,customer_id,date,sku,quantity,unit_price,refund_of\n"
        "K-1,C1,2026-11-19T10:00,A,3,2.00,\n"
        "K-1,C1,2026-11-19T10:00,B,1,5.00,\n"
        "RT-1,C1,2026-11-19T11:00,A,-2,2.00,K-1\n"
    )
    doc = shop.ok("import-csv", str(path), "--enroll-unknown")
    assert (doc["imported"], doc["receipt_count"], doc["rejected"]) == (3, 2, 0)
    # K-1: line A 6 points for 3 units, line B 5, the receipt's first 7 and three-items 5
    history = shop.ok("history", "C1")
    assert history["receipts"][0]["items"] == [
        {"number": 1, "sku": "A", "category": None, "quantity": 2, "amount": "4.00", "points": -4}
    ]
    # two items kept (an A and the B): three-items' 5 go back with the two A
    assert shop.ok("balance", "C1")["balance"] == 6 + 5 + 7 + 5 - 4 - 5
    again = shop.ok("import-csv", str(path), "--enroll-unknown")
    assert (again["imported"], again["duplicates"]) == (0, 3)


def test_a_csv_line_earns_on_quantity_times_unit_price_less_its_discount(shop: Shop) -> None:
    shop.write_rules(RULES + "  - {id: welcome, on: enroll, points: 0}\n")
    path = shop.dir / "s.csv"
    path.write_text(
        "txn_id,customer_id,date,category,quantity,unit_price,discount,amount\n"
        "K-1,C1,2026-11-19,pens,4,5.00,2.50,\n"
        "K-1,C1,2026-11-19,pens,1,10.00,,10.00\n"
        "K-2,C1,2026-11-19,pens,1,10.00,1.00,10.00\n"
        "K-3,C1,2026-11-19,pens,1,10.00,11.00,\n"
    )
    result = shop.run("import-csv", str(path), "--enroll-unknown", "--json")
    doc = json.loads(result.stdout)
    assert (doc["imported"], doc["rejected"]) == (2, 2)
    assert (
        "amount 10.00 is not quantity 1 x unit_price 10.00 less discount 1.00 (9.00)"
        in result.stderr
    )
    assert "discount 11.00 is more than quantity x unit_price (10.00)" in result.stderr
    history = shop.ok("history", "C1")
    assert [i["amount"] for i in history["receipts"][0]["items"]] == ["17.50", "10.00"]


def test_a_purchase_names_its_store_which_rules_may_test_and_the_chain_covers(
    shop: Shop,
) -> None:
    shop.write_rules(
        RULES
        + "  - {id: welcome, on: enroll, points: 0}\n"
        + "  - {id: downtown, on: purchase, when: {store: downtown}, points: 3}\n"
    )
    shop.clock("2026-11-20")
    shop.ok("enroll", "C1", "--at", "2026-11-01")
    doc = shop.ok("earn", "C1", "--line", "a:5", "--line", "b:5", "--store", "Downtown", "--txn", "R", "--at", "2026-11-19")  # fmt: skip
    assert (doc["store"], {a["rule"]: a["points"] for a in doc["lines"]}["downtown"]) == ("Downtown", 3)  # fmt: skip
    plain = shop.ok("earn", "C1", "--amount", "5", "--txn", "P", "--at", "2026-11-19")
    assert "store" not in plain and "downtown" not in {a["rule"] for a in plain["lines"]}
    assert shop.ok("earn", "C1", "--line", "a:5", "--line", "b:5", "--store", "Downtown", "--txn", "R")["duplicate"]  # fmt: skip
    other = shop.fails(1, "earn", "C1", "--line", "a:5", "--line", "b:5", "--store", "Uptown", "--txn", "R")  # fmt: skip
    assert "store=Downtown" in other
    stores = {e["txn"]: e["store"] for e in shop.ok("history", "C1")["entries"]}
    assert stores == {"R": "Downtown", "P": None}
    path = shop.dir / "s.csv"
    path.write_text("txn_id,customer_id,date,amount,till\nT1,C1,2026-11-19,4.00,uptown\n")
    shop.ok("import-csv", str(path))
    assert {e["txn"]: e["store"] for e in shop.ok("history", "C1")["entries"]}["T1"] == "uptown"
    assert shop.ok("verify")["ok"] is True
    shop.tamper(
        "UPDATE operations SET store = 'Elsewhere' WHERE txn = 'R'",
        triggers=("operations_no_update",),
    )
    assert shop.run("verify", "--json").exit_code == 1


def test_a_return_of_several_rows_must_name_one_receipt_and_its_lines(shop: Shop) -> None:
    shop.write_rules(RULES + "  - {id: welcome, on: enroll, points: 0}\n")
    path = shop.dir / "s.csv"
    path.write_text(
        "txn_id,customer_id,date,sku,quantity,amount,refund_of\n"
        "K-1,C1,2026-11-19T10:00,A,1,2.00,\n"
        "K-2,C1,2026-11-19T10:00,A,1,2.00,\n"
        "RT-1,C1,2026-11-19T11:00,A,-1,2.00,K-1\n"
        "RT-1,C1,2026-11-19T11:00,A,-1,2.00,K-2\n"
        "RT-2,C1,2026-11-19T11:00,,,1.00,K-1\n"
        "RT-2,C1,2026-11-19T11:00,,,1.00,K-1\n"
    )
    result = shop.run("import-csv", str(path), "--enroll-unknown", "--json")
    assert json.loads(result.stdout)["rejected"] == 4
    assert "the rows of return 'RT-1' name different receipts in refund_of" in result.stderr
    assert "return 'RT-2' has several rows: each needs a quantity" in result.stderr


@given(st.lists(st.text(max_size=6), max_size=300), st.integers(0, 400))
def test_a_bloom_filter_never_says_no_to_what_it_was_given(items: list[str], room: int) -> None:
    """Whatever its size, the filter that finds a receipt's repeated txns never
    misses one (a false "maybe" only costs the exact count pass a look)."""
    seen = Bloom(room)
    for n, item in enumerate(items):
        again = seen.add(item)
        if item in items[:n]:
            assert again


@given(
    receipts=st.lists(st.integers(1, 4), min_size=1, max_size=40),
    order=st.randoms(use_true_random=False),
    files=st.integers(1, 3),
)
def test_the_count_pass_counts_each_receipts_rows_across_files(
    tmp_path_factory: pytest.TempPathFactory, receipts: list[int], order: Any, files: int
) -> None:
    rows = [f"R{n}" for n, lines in enumerate(receipts) for _ in range(lines)]
    order.shuffle(rows)
    scratch = tmp_path_factory.mktemp("count")
    sources = []
    for k in range(files):
        path = scratch / f"{k}.csv"
        body = "".join(f"{t},C1,1.00,2026-11-19\n" for t in rows[k::files])
        path.write_text("txn_id,customer_id,amount,date\n" + body)
        sources.append(importer.read_source(str(path), "utf-8"))
    expected = {f"R{n}": lines for n, lines in enumerate(receipts) if lines > 1}
    assert importer._receipt_sizes(sources, importer.Options()) == expected


def test_the_count_pass_holds_the_receipts_of_several_rows_not_every_txn(
    tmp_path: Path,
) -> None:
    """A one-line export of 100,000 receipts: the pass that finds receipts of
    several rows peaks at the filter (two bytes a row), where a dict of every
    txn took about 11 MB."""
    path = tmp_path / "sales.csv"
    with path.open("w") as out:
        out.write("txn_id,customer_id,amount,date\n")
        out.writelines(f"R{n:08d},C{n % 5000},1.00,2026-11-19\n" for n in range(100_000))
        out.write("R00000007,C7,2.00,2026-11-19\n")  # one receipt of two rows
    source = importer.read_source(str(path), "utf-8")
    tracemalloc.start()
    try:
        sizes = importer._receipt_sizes([source], importer.Options())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sizes == {"R00000007": 2}
    assert peak < 1_000_000, peak
