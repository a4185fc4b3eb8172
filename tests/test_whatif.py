"""What if: `simulate` (history replayed under other rules), `rules test` (the
rules file's own test cases), `explain` and `rules show` (past operations under
the rules of then)."""

from __future__ import annotations

import hashlib
import json
import tempfile
import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loyalty_cli import operations as ops
from loyalty_cli.errors import LoyaltyError
from loyalty_cli.models import Line
from loyalty_cli.nightly import run_nightly
from loyalty_cli.rules import parse_rules
from loyalty_cli.simulate import simulate
from loyalty_cli.store import Store

from .conftest import EXAMPLE_RULES, Shop
from .test_compact import GAMES

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ledger-v4.db"

# --- simulate: the same rules give no difference --------------------------------

PROGRAMME = """\
program: {name: P, timezone: Europe/London, point_value: 0.01}
points: {pending_days: 3, expire_after_months: 1, expire_at: same_day}
tiers:
  metric: spend
  window: calendar_year
  downgrade: reevaluate
  levels:
    - {id: bronze, name: Bronze, threshold: 0}
    - {id: silver, name: Silver, threshold: 100, multiplier: 1.5}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: bags, on: purchase, points_per_unit: 0.5, when: {category: bags}}
  - {id: big, on: purchase, min_amount: 50, points: 20, cap: {count: 1, per: week}}
  - {id: promo, on: purchase, weekdays: [tue], multiply: 2, budget: 300}
  - {id: review, on: review, points: 25, cap: {count: 1, per: month}}
  - {id: welcome, on: enroll, points: 30}
  - {id: referral, on: referral, points: 40}
rewards:
  - {id: coffee, name: Coffee, cost: 40, limit: {count: 1, per: day}}
"""
RULES = parse_rules(PROGRAMME)
START = datetime(2026, 1, 5, 10, tzinfo=UTC)

steps = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(0, 2), st.integers(1, 9000)),
        st.tuples(st.just("bags"), st.integers(0, 2), st.integers(1, 9000)),
        st.tuples(st.just("receipt"), st.integers(0, 2), st.integers(2, 9000)),
        st.tuples(st.just("return"), st.integers(0, 30), st.integers(1, 2)),
        st.tuples(st.just("review"), st.integers(0, 2), st.just(0)),
        st.tuples(st.just("redeem"), st.integers(0, 2), st.integers(1, 120)),
        st.tuples(st.just("coffee"), st.integers(0, 2), st.just(0)),
        st.tuples(st.just("refund"), st.integers(0, 30), st.integers(1, 100)),
        st.tuples(st.just("adjust"), st.integers(0, 2), st.integers(-50, 50)),
        st.tuples(st.just("tier"), st.integers(0, 2), st.integers(0, 40)),
        st.tuples(st.just("nightly"), st.just(0), st.just(0)),
        st.tuples(st.just("wait"), st.just(0), st.integers(1, 50)),
        st.tuples(st.just("late"), st.integers(0, 2), st.integers(1, 60)),
    ),
    min_size=1,
    max_size=25,
)


def build_history(db: Path, plan: list[tuple[str, int, int]]) -> datetime:
    """A ledger written through the use cases, as the till and cron would."""
    store = Store.open(db)
    at = START
    people = ["C0", "C1", "C2"]
    ops.enroll(store, RULES, ops.EnrollRequest("C0", at=at), at)
    ops.enroll(store, RULES, ops.EnrollRequest("C1", referred_by="C0", at=at), at)
    ops.enroll(store, RULES, ops.EnrollRequest("C2", birthday="1990-02-01", at=at), at)
    bought: list[str] = []
    for n, (kind, who, number) in enumerate(plan):
        at += timedelta(hours=7)
        cid = people[who % 3]
        try:
            if kind in ("buy", "bags"):
                request = ops.EarnRequest(
                    cid,
                    "purchase",
                    amount=Decimal(number) / 100,
                    category="bags" if kind == "bags" else None,
                    txn=f"R{n}",
                    at=at,
                )
                ops.earn(store, RULES, request, at)
                bought.append(f"R{n}")
            elif kind == "late":  # a purchase entered `number` days after it was made
                then = at - timedelta(days=number)
                request = ops.EarnRequest(cid, "purchase", amount=Decimal(number), at=then)
                ops.earn(store, RULES, request, at)
            elif kind == "receipt":  # two lines, one of bags, two units each
                first, second = Decimal(number) / 100, Decimal(number % 777 + 1) / 100
                lines = (Line(first, 2, "S1", "bags"), Line(second, 2, "S2", None))
                request = ops.EarnRequest(
                    cid, "purchase", amount=first + second, lines=lines, txn=f"R{n}", at=at
                )
                ops.earn(store, RULES, request, at)
                bought.append(f"R{n}")
            elif kind == "return" and bought:
                txn = bought[who % len(bought)]
                request = ops.RefundRequest(txn, None, at=at, returns=((f"#{number}", 1),))
                ops.refund(store, RULES, request, at)
            elif kind == "review":
                ops.earn(store, RULES, ops.EarnRequest(cid, "review", txn=f"V{n}", at=at), at)
            elif kind == "redeem":
                ops.redeem(store, RULES, ops.RedeemRequest(cid, points=number, at=at), at)
            elif kind == "coffee":
                ops.redeem(store, RULES, ops.RedeemRequest(cid, reward="coffee", at=at), at)
            elif kind == "refund" and bought:
                txn = bought[who % len(bought)]
                ops.refund(store, RULES, ops.RefundRequest(txn, Decimal(number) / 100, at=at), at)
            elif kind == "adjust" and number:
                ops.adjust(store, RULES, ops.AdjustRequest(cid, number, "fix", at=at), at)
            elif kind == "tier":
                until = None if number == 0 else (at + timedelta(days=number)).date()
                ops.set_tier(store, RULES, ops.TierRequest(cid, "silver", "VIP", until, at=at), at)
            elif kind == "nightly":
                run_nightly(store, RULES, at.date(), at)
            elif kind == "wait":
                at += timedelta(days=number)
        except LoyaltyError:
            pass  # refused at the till too: nothing was written
    store.close()
    return at


def no_difference(doc: dict[str, Any]) -> None:
    assert doc["totals_actual"] == doc["totals_simulated"], doc["totals_difference"]
    for row in doc["rules_points"] + doc["rewards"] + doc["tier_changes"]["by_tier"]:
        assert row["difference"] == 0, row
    assert doc["customers_changed"] == 0, doc["gainers"] + doc["losers"]
    assert doc["tier_changes"]["customers_changed"] == 0, doc["tier_changes"]["moved"]
    assert doc["refused_count"] == 0, doc["refused"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps)
def test_simulating_the_rules_that_wrote_the_history_changes_nothing(
    plan: list[tuple[str, int, int]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "l.db"
        end = build_history(db, plan)
        with Store.open(db, read_only=True) as store:
            result = simulate(store, RULES, None, end.date() + timedelta(days=400))
            no_difference(result.to_json())
            # And from a day inside the history: the start is the ledger's own state.
            middle = (START + (end - START) / 2).date()
            no_difference(simulate(store, RULES, middle, end.date()).to_json())


OTHER = parse_rules(
    PROGRAMME.replace(
        "expire_after_months: 1, expire_at: same_day",
        "expire_after_months: 2, expire_at: end_of_month",
    )
    .replace("window: calendar_year", "window: rolling_12_months")
    .replace("downgrade: reevaluate", "downgrade: keep_next_window")
    .replace("per: month}", "per: lifetime}")
    .replace("limit: {count: 1, per: day}", "limit: {count: 2, per: week}"),
    "other.yaml",
)


# Games of every kind, for the replay to fold the facts they count (the history
# was written without them: a replay under these rules pays their rounds).
GAMED = parse_rules(PROGRAMME + GAMES, "gamed.yaml")


# Ten weeks of purchases by three customers: the games' facts fold many times.
WEEKS = [("buy", n % 3, 1000 + n) if n % 4 else ("wait", 0, 3) for n in range(40)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps, which=st.sampled_from(["rules", "other", "games"]))
@example(plan=WEEKS, which="games")
def test_compacting_the_accounts_changes_nothing_in_a_replay(
    plan: list[tuple[str, int, int]], which: str
) -> None:
    """What the replay folds away to keep its memory flat (lots no decision can tell
    apart, old tier inputs and uses, the games' facts) never changes a result,
    under the rules that wrote the history or others, from the beginning or from
    a day inside it. Looking ahead one operation at a time, it folds as far as it
    ever can."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "l.db"
        end = build_history(db, plan)
        rules = {"rules": RULES, "other": OTHER, "games": GAMED}[which]
        middle = (START + (end - START) / 2).date()
        with Store.open(db, read_only=True) as store:
            for first in (None, middle):
                whole = simulate(store, rules, first, end.date(), compact_from=None)
                compacted = simulate(store, rules, first, end.date(), compact_from=1, block=1)
                assert compacted.to_json() == whole.to_json()
                assert compacted.table()[0] == whole.table()[0]
                assert list(compacted.table()[1]) == list(whole.table()[1])


# --- simulate from the command line -------------------------------------------------

SHOP_RULES = """\
program: {name: S, timezone: Europe/London, point_value: 0.01}
tiers:
  metric: spend
  window: lifetime
  downgrade: reevaluate
  levels:
    - {id: bronze, name: Bronze, threshold: 0}
    - {id: gold, name: Gold, threshold: 100}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: shoes, on: purchase, when: {category: shoes}, points_per_unit: 1}
  - {id: welcome, on: enroll, points: 10}
rewards:
  - {id: tote, name: Tote, cost: 100}
"""


def history(shop: Shop) -> None:
    shop.write_rules(SHOP_RULES)
    shop.clock("2026-03-01")
    shop.ok("enroll", "A", "--at", "2026-01-02T10:00")
    shop.ok("enroll", "B", "--at", "2026-01-02T10:00")
    shop.ok("earn", "A", "--amount", "60", "--category", "shoes", "--txn", "R1",
            "--at", "2026-01-10T10:00")  # fmt: skip
    shop.ok("earn", "B", "--amount", "80", "--txn", "R2", "--at", "2026-01-11T10:00")
    shop.ok("redeem", "A", "--reward", "tote", "--at", "2026-01-20T10:00")
    shop.ok("earn", "B", "--amount", "30", "--txn", "R3", "--at", "2026-02-03T10:00")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.sqlite_only  # the ledger file's bytes
def test_simulate_compares_and_leaves_the_ledger_byte_for_byte(shop: Shop) -> None:
    history(shop)
    new = shop.dir / "new.yaml"
    new.write_text(SHOP_RULES.replace("when: {category: shoes}, points_per_unit: 1",
                                      "when: {category: shoes}, points_per_unit: 0.5")
                   .replace("threshold: 100}", "threshold: 50}").replace("cost: 100", "cost: 110"))  # fmt: skip
    before = digest(shop.db)
    doc = shop.ok("simulate", "--rules", str(new), "--to", "2026-02-28")
    # Read-only: the file is as it was, and SQLite's WAL beside it holds nothing
    # (a read-only connection may leave the empty -wal and -shm it read through).
    assert digest(shop.db) == before
    wal = shop.dir / "ledger.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    assert doc["operations"] == 7 and doc["members"] == 2  # B's move to gold too
    totals = {
        side: doc[f"totals_{side}"] for side in ("actual", "simulated", "difference")
    }  # fmt: skip
    # A's shoes earn 30 instead of 60; welcome and base unchanged.
    assert totals["actual"]["points_earned"] == 20 + 60 + 60 + 80 + 30
    assert totals["simulated"]["points_earned"] == 20 + 60 + 30 + 80 + 30
    assert totals["difference"]["points_earned"] == -30
    shoes = next(r for r in doc["rules_points"] if r["rule"] == "shoes")
    assert shoes == {"rule": "shoes", "actual": 60, "simulated": 30, "difference": -30}
    # The tote now costs 110 and A holds 100: reported, not dropped.
    assert doc["refused_count"] == 1
    refused = doc["refused"][0]
    assert refused["customer_id"] == "A" and refused["operation"] == "redeem tote"
    assert "insufficient points" in refused["reason"]
    assert doc["rewards"] == [{"reward": "tote", "actual": 1, "simulated": 0, "difference": -1}]
    # A keeps the 100 points the refused tote would have taken; B unchanged.
    assert doc["gainers"] == [
        {"customer_id": "A", "actual": 30, "simulated": 100, "difference": 70}
    ]
    assert doc["losers"] == []
    assert [totals[side]["liability_value"] for side in ("actual", "simulated", "difference")] == [
        "1.50", "2.20", "0.70"
    ]  # fmt: skip
    assert totals["difference"]["points_outstanding"] == 70
    # Gold at 50 spent: A moves up on the 10th (not at all before), B on the 11th.
    tiers = doc["tier_changes"]
    assert tiers["would_end_higher"] == 1  # B reached gold at 100 anyway, later
    changed = {c["customer_id"]: c for c in tiers["moved"]}
    assert (changed["A"]["actual_tier"], changed["A"]["simulated_tier"]) == ("bronze", "gold")
    assert changed["A"]["simulated_changes"] == [{"day": "2026-01-10", "tier": "gold"}]
    assert changed["B"]["first_differs"] == "2026-01-11"
    csv = shop.run("simulate", "--rules", str(new), "--to", "2026-02-28", "--csv")
    assert csv.exit_code == 0, csv.output
    assert csv.stdout.splitlines() == [
        "customer_id,actual_balance,simulated_balance,difference,actual_tier,simulated_tier",
        "A,30,100,70,bronze,gold",
        "B,120,120,0,gold,gold",
    ]
    table = shop.run("simulate", "--rules", str(new), "--to", "2026-02-28", "--no-json")
    assert table.exit_code == 0, table.output
    assert "Points per rule" in table.stdout and "insufficient points" in table.stdout
    assert digest(shop.db) == before


def narrow(text: str) -> list[str]:
    """The lines of a view wider than 80 columns, except one unbreakable word (a
    path, a hash) on a line of its own, and a diff's headers (as `diff -u` writes
    them, with the files' paths)."""
    return [
        line
        for line in text.splitlines()
        if len(line.rstrip()) > 80 and " " in line.strip() and not line.startswith(("--- ", "+++ "))
    ]


def test_the_views_of_people_fit_80_columns(shop: Shop) -> None:
    history(shop)
    new = shop.dir / "a-rules-file-with-a-rather-long-name-for-what-it-changes.yaml"
    new.write_text(SHOP_RULES.replace("cost: 100", "cost: 200"))
    views = [
        shop.run("simulate", "--rules", str(new), "--to", "2026-02-28", "--no-json"),
        shop.run("explain", "R1", "--no-json"),
        shop.run("explain", "R1", "--diff", "--rules", str(new), "--no-json"),
        shop.run("rules", "show", shop.ok("explain", "R1")["rules_version"], "--no-json"),
    ]
    shop.write_rules(
        SHOP_RULES
        + "tests:\n  - name: shoes are meant to earn three times over on a long receipt\n"
        "    at: 2026-05-05T12:00\n    purchase: {lines: [shoes:20.00, hats:1.00]}\n"
        "    expect: {base: 21, shoes: 40}\n"
    )
    views.append(shop.run("rules", "test", "--no-json"))
    assert [v.exit_code for v in views] == [0, 0, 0, 0, 1], views[-1].output
    assert "insufficient points" in views[0].stdout
    assert "rule 'shoes' expected +40, got +20" in " ".join(views[-1].stdout.split())
    for view in views:
        assert narrow(view.stdout) == [], view.stdout


def test_simulate_from_a_day_keeps_what_came_before(shop: Shop) -> None:
    history(shop)
    new = shop.dir / "new.yaml"
    new.write_text(SHOP_RULES.replace("{id: base, on: purchase, points_per_unit: 1}",
                                      "{id: base, on: purchase, points_per_unit: 2}"))  # fmt: skip
    doc = shop.ok("simulate", "--rules", str(new), "--from", "2026-02-01", "--to", "2026-02-28")
    assert doc["operations"] == 2  # R3, and the move to gold it brought
    base = next(r for r in doc["rules_points"] if r["rule"] == "base")
    assert base == {"rule": "base", "actual": 30, "simulated": 60, "difference": 30}
    assert doc["gainers"][0]["customer_id"] == "B"


def test_simulate_refuses_bad_periods_and_outputs(shop: Shop) -> None:
    history(shop)
    assert "is after --to" in shop.fails(
        2, "simulate", "--from", "2026-02-02", "--to", "2026-02-01"
    )
    assert "two outputs" in shop.fails(2, "simulate", "--csv", "--json")
    shop.fails(66, "simulate", "--db", str(shop.dir / "none.db"))


# --- rules test ------------------------------------------------------------------


def test_the_example_rules_ship_cases_that_pass(example_shop: Shop) -> None:
    doc = example_shop.ok("rules", "test", str(EXAMPLE_RULES))
    assert doc["tests"] >= 8 and doc["tests_failed"] == 0
    assert {c["activity"] for c in doc["cases"]} >= {"purchase", "review", "refund"}


def test_a_broken_rule_is_caught_and_named(example_shop: Shop) -> None:
    text = EXAMPLE_RULES.read_text()
    broken = text.replace(
        "    description: 1 point per 1.00 spent\n    points_per_unit: 1",
        "    description: 1 point per 1.00 spent\n    points_per_unit: 1.1",
    )
    assert broken != text
    example_shop.rules.write_text(broken)
    result = example_shop.run("rules", "test", "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["tests_failed"] >= 1
    case = next(c for c in doc["cases"] if not c["passed"])
    wrong = next(r for r in case["rules"] if not r["passed"])
    assert wrong["rule"] == "base"
    assert (wrong["expected"], wrong["points"]) == (42, 46)  # 42.50 x 1.1 = 46.75, floor
    assert "42.50 x 1.1 per unit" in wrong["detail"]
    line = result.stderr.strip()
    assert line.startswith("error: ") and "rule 'base' gave 46, expected 42" in line
    assert f"{example_shop.rules}:" in line
    table = example_shop.run("rules", "test", "--no-json")
    assert table.exit_code == 1
    words = " ".join(table.stdout.split())  # prose wraps at 80 columns
    assert "FAIL" in words and "rule 'base' expected +42, got +46" in words


RECEIPT_CASE = "  - name: a receipt earns line by line, and its basket counts as a whole\n"


@pytest.mark.parametrize(
    ("edit", "rule", "expected", "actual"),
    [
        # A till exclusion meant for delivery lines, written for books by mistake:
        # the books line earns nothing and leaves the basket (84.90: no big-basket).
        (
            "earn:\n",
            "base",
            79,
            59,
        ),
        # The shoes bonus judged once on the receipt, which has no category.
        (
            "    when: {category: {in: [shoes, bags]}}\n",
            "shoes-and-bags",
            59,
            0,
        ),
    ],
)
def test_a_broken_line_rule_is_caught_by_the_receipt_case(
    example_shop: Shop, edit: str, rule: str, expected: int, actual: int
) -> None:
    text = EXAMPLE_RULES.read_text()
    assert RECEIPT_CASE in text
    if rule == "base":
        broken = text.replace(
            edit,
            edit + "  - {id: no-books, on: purchase, when: {category: books}, exclude: true}\n",
        )
    else:
        broken = text.replace(edit, edit + "    per: receipt\n")
    assert broken != text
    example_shop.rules.write_text(broken)
    result = example_shop.run("rules", "test", "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    name = RECEIPT_CASE.split("name: ")[1].strip()
    (case,) = [c for c in doc["cases"] if c["name"] == name]
    assert not case["passed"]
    wrong = {r["rule"]: (r["expected"], r["points"]) for r in case["rules"] if not r["passed"]}
    assert wrong[rule] == (expected, actual)
    assert f"{doc['tests_failed']} of {doc['tests']} rule tests failed" in result.stderr


CASES = """\
program: {name: T, timezone: Europe/London}
tiers:
  metric: spend
  window: lifetime
  downgrade: reevaluate
  levels: [{id: bronze, name: Bronze, threshold: 0}, {id: gold, name: Gold, threshold: 100, multiplier: 2}]
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: review, on: review, points: 5, cap: {count: 1, per: month}}
tests:
"""


def test_rule_cases_cover_tiers_caps_events_and_totals(shop: Shop) -> None:
    shop.write_rules(CASES + textwrap.indent(textwrap.dedent("""\
        - name: gold doubles
          at: 2026-05-05T12:00
          customer: {tier: gold}
          purchase: {amount: 10}
          expect: {base: 10, "tier:gold": 10}
          total: 20
        - name: a second review in a month
          at: 2026-05-05
          customer: {used: {review: 1}}
          event: review
          expect: {review: 0}
        - name: the first review
          at: 2026-05-05
          event: review
          expect: {review: 5}
        """), "  "))  # fmt: skip
    doc = shop.ok("rules", "test")
    assert [c["passed"] for c in doc["cases"]] == [True, True, True]
    assert doc["cases"][0]["total"] == 20


def test_bad_cases_are_refused_at_their_line(shop: Shop) -> None:
    shop.write_rules(CASES + textwrap.indent(textwrap.dedent("""\
        - name: typo
          at: 2026-05-05T12:00
          purchase: {amount: 10}
          expect: {bsae: 10}
        - name: no activity
          at: 2026-05-05T12:00
          expect: {base: 1}
        - name: unknown tier
          at: yesterday
          customer: {tier: platinum}
          purchase: {amount: 1.234}
          expect: {base: 1}
        - name: nothing bought
          at: 2026-05-05T12:00
          purchase: {amount: 0}
          expect: {}
        """), "  "))  # fmt: skip
    result = shop.run("rules", "test")
    assert result.exit_code == 78, result.output
    errors = result.stderr
    assert f"{shop.rules}:14:14: expect names 'bsae', which is not a rule on 'purchase'" in errors
    assert "(did you mean 'base'?)" in errors
    assert f"{shop.rules}:15:5: test 'no activity' needs exactly one of purchase" in errors
    assert "at must be a date and time like 2026-11-24T12:00, got 'yesterday'" in errors
    assert "unknown tier 'platinum'" in errors
    assert "amount has more than 2 decimal places" in errors
    assert "amount must be greater than zero, got 0" in errors


def test_a_receipt_case_runs_its_lines_as_earn_does(shop: Shop) -> None:
    shop.write_rules(CASES.replace("tests:", "  - {id: bags, on: purchase, when: {category: bags}, points_per_unit: 1}\n  - {id: big, on: purchase, min_amount: 20, points: 7}\ntests:") + textwrap.indent(textwrap.dedent("""\
        - name: two lines
          at: 2026-05-05T12:00
          purchase: {lines: ["bags/B-1:2x4.75", "food:12.30-0.50"]}
          expect: {base: 20, bags: 9, big: 7}
        - name: one line is a purchase of it
          at: 2026-05-05T12:00
          purchase: {lines: ["bags:3x1.50"], amount: 4.50}
          expect: {base: 4, bags: 4}
        - name: a refund of half a receipt
          at: 2026-05-05T12:00
          refund: {amount: 10.65, of: {lines: ["bags:9.50", "food:11.80"]}}
          expect: {refund: -18}
        """), "  "))  # fmt: skip
    doc = shop.ok("rules", "test")
    assert [c["passed"] for c in doc["cases"]] == [True, True, True], doc
    detail = {r["rule"]: r["detail"] for r in doc["cases"][0]["rules"]}
    assert detail["base"].startswith("line 1: 9.50 x 1 per unit")
    assert "line 2: 11.80" in detail["base"]
    assert detail["big"].startswith("receipt")


def test_bad_receipt_lines_are_refused_at_their_line(shop: Shop) -> None:
    shop.write_rules(CASES + textwrap.indent(textwrap.dedent("""\
        - name: bad lines
          at: 2026-05-05T12:00
          purchase:
            lines:
              - shoes59
              - "food:2x"
              - "food:1.00"
          expect: {}
        - name: both ways
          at: 2026-05-05T12:00
          purchase: {lines: ["food:1.00", "food:2.00"], amount: 4, category: food}
          expect: {}
        - name: no lines
          at: 2026-05-05T12:00
          purchase: {lines: []}
          expect: {}
        - name: nothing to earn on
          at: 2026-05-05T12:00
          purchase: {lines: ["food:0.00"]}
          expect: {}
        """), "  "))  # fmt: skip
    result = shop.run("rules", "test")
    assert result.exit_code == 78, result.output
    errors = result.stderr
    assert f"{shop.rules}:15:11: line 'shoes59' is not CATEGORY[/SKU]:[QTYx]PRICE" in errors
    assert f"{shop.rules}:16:11: line 'food:2x': price '2x' is not a number" in errors
    assert f"{shop.rules}:21:62: category goes in each line when a purchase has lines" in errors
    assert f"{shop.rules}:21:59: amount 4.00 is not the lines' total 3.00; leave it out" in errors
    assert "a test's purchase needs at least one line" in errors
    assert "the lines come to 0.00" in errors


# --- explain and rules show --------------------------------------------------------


def test_explain_a_purchase_under_the_rules_of_then(shop: Shop) -> None:
    history(shop)
    old = shop.rules.read_text()
    doc = shop.ok("explain", "R1")
    assert doc["operation"] == "purchase" and doc["customer_id"] == "A"
    assert doc["rules_text"] == old and doc["rules_current"] is True
    assert doc["points"] == 120
    assert [(f["rule"], f["points"], f["detail"]) for f in doc["fired"]] == [
        ("base", 60, "60.00 x 1 per unit = 60"),
        ("shoes", 60, "60.00 x 1 per unit = 60"),
    ]
    assert doc["note"] is None
    why = {s["rule"]: s["reason"] for s in doc["not_fired"]}
    assert why == {}
    # B's purchase: the shoes rule did not fire, and says why.
    doc = shop.ok("explain", "R2")
    assert {s["rule"]: s["reason"] for s in doc["not_fired"]} == {
        "shoes": "condition not met: category is shoes"
    }
    # The rules change: explain still answers as the rules stood then.
    shop.write_rules(SHOP_RULES.replace("points_per_unit: 1}", "points_per_unit: 3}", 1))
    doc = shop.ok("explain", "R1", "--diff")
    assert doc["rules_current"] is False and doc["rules_text"] == old
    assert doc["fired"][0]["detail"] == "60.00 x 1 per unit = 60"
    assert "-  - {id: base, on: purchase, points_per_unit: 1}" in doc["diff"]
    assert "+  - {id: base, on: purchase, points_per_unit: 3}" in doc["diff"]
    view = shop.run("explain", "R2", "--no-json")
    assert view.exit_code == 0 and "condition not met: category is shoes" in view.stdout
    # rules show: the stored text, by a prefix of its version.
    shown = shop.ok("rules", "show", doc["rules_version"][:8])
    assert shown["text"] == old and shown["rules_version"] == doc["rules_version"]
    printed = shop.run("rules", "show", doc["rules_version"][:8], "--no-json")
    assert printed.exit_code == 0 and "points_per_unit: 1}" in printed.stdout


def test_explain_other_operations_and_unknown_keys(shop: Shop) -> None:
    history(shop)
    shop.ok("refund", "R2", "--amount", "40", "--txn", "RF2", "--at", "2026-02-10T10:00")
    doc = shop.ok("explain", "RF2")
    assert doc["operation"] == "refund" and doc["points"] == -40
    assert "40 points due back" in doc["fired"][0]["detail"]
    enrolled = shop.ok("history", "A")
    first = min(e["entry"] for e in enrolled["entries"])
    doc = shop.ok("explain", f"entry:{first}")
    assert doc["operation"] == "enroll" and doc["fired"][0]["rule"] == "welcome"
    assert "unknown transaction 'nope'" in shop.fails(1, "explain", "nope")
    assert "not an entry" in shop.fails(2, "explain", "entry:x")
    assert "no rules version" in shop.fails(1, "rules", "show", "ffff0000")
    assert "not a rules version" in shop.fails(2, "rules", "show", "xyz")


def test_rules_show_asks_for_more_digits_when_a_prefix_is_ambiguous(shop: Shop) -> None:
    seen: dict[str, str] = {}
    n = 0
    while True:  # two texts whose versions share their first 4 hex digits
        text = f"# variant {n}\n{SHOP_RULES}"
        prefix = hashlib.sha256(text.encode()).hexdigest()[:4]
        if prefix in seen:
            break
        seen[prefix] = text
        n += 1
    for i, variant in enumerate((seen[prefix], text)):
        shop.write_rules(variant)
        shop.ok("enroll", f"C{i}")
    message = shop.fails(2, "rules", "show", prefix)
    assert f"'{prefix}' matches 2 rules versions" in message and "give more digits" in message


def test_an_old_ledger_keeps_its_rules_texts_for_explain(tmp_path: Path, shop: Shop) -> None:
    """Every schema stored each rules version's text, so explain and rules show work on
    an upgraded schema-4 ledger; a command that only reads does not upgrade one."""
    old = tmp_path / "old.db"
    old.write_bytes(FIXTURE.read_bytes())
    before = digest(old)
    message = shop.fails(66, "explain", "R-0", "--db", str(old))
    assert "schema 4 and this command only reads" in message and digest(old) == before
    shop.ok("verify", "--db", str(old))  # upgrades it
    doc = shop.ok("explain", "R-0", "--db", str(old))
    assert doc["operation"] == "purchase" and doc["rules_text"]
    assert doc["fired"] and all(line["detail"] for line in doc["fired"])
    shown = shop.ok("rules", "show", doc["rules_version"], "--db", str(old))
    assert shown["text"] == doc["rules_text"]
