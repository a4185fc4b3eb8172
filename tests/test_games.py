"""Games: stamp cards (every nth), milestones, badges; progress, explain, the
games report; the gaming attempts the issue lists; one read whatever the games;
a replay of the ledger gives the same progress and awards."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty_cli import importer
from loyalty_cli import operations as ops
from loyalty_cli.clock import shop_day, zone
from loyalty_cli.engine.requests import EarnRequest, EnrollRequest, RefundRequest
from loyalty_cli.games import play as games
from loyalty_cli.games.model import Fact, Facts, Item, Paid, Play, parse_rule
from loyalty_cli.rules import parse_rules
from loyalty_cli.store import Store, snapshots

from .conftest import Shop

GAMES = """\
program: {name: Games Shop, currency: USD, timezone: Europe/London}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: regulars, on: purchase, when: {badge: regular}, multiply: 2}
  - {id: welcome, on: enroll, points: 100}
  - {id: visit, on: visit, points: 0}
rewards:
  - {id: coffee, name: Free coffee, cost: 100}
badges:
  - {id: regular, name: Regular, description: Filled a coffee card}
  - {id: foodie, name: Foodie}
games:
  - id: coffee-card
    name: Coffee card
    stamps: 3
    per_day: 1
    min_amount: 2.00
    category: coffee
    give: {reward: coffee, points: 10, badge: regular}
  - id: fifth
    name: Every fifth purchase
    stamps: 5
    give: {points: 25}
  - id: meals
    name: Meals
    metric: units
    category: meals
    milestones: [5, {at: 10, give: {points: 500, badge: [foodie, regular]}}]
    give: {points: 50}
  - id: big-spender
    name: Big spender
    metric: spend
    milestones: [100.00]
    give: {points: 200}
"""


@pytest.fixture
def games_shop(shop: Shop) -> Shop:
    shop.rules.write_text(GAMES)
    shop.clock("2026-12-01")
    shop.ok("enroll", "ann", "--at", "2026-11-01T09:00")
    return shop


def buy(shop: Shop, amount: str, day: str, txn: str, *extra: str) -> dict[str, Any]:
    return shop.ok(
        "earn", "ann", "--amount", amount, "--at", f"2026-11-{day}T10:00", "--txn", txn, *extra
    )


def game_lines(doc: dict[str, Any]) -> list[tuple[str, int, str | None, str | None]]:
    return [
        (line["rule"], line["points"], line.get("reward"), line.get("badge"))
        for line in doc["lines"]
        if line["rule"].startswith("game:")
    ]


# --- stamp cards and every nth ---------------------------------------------------------


def test_a_card_completes_at_its_target_pays_once_and_a_new_card_starts(games_shop: Shop) -> None:
    shop = games_shop

    def card(*args: str) -> list[tuple[str, int, str | None, str | None]]:
        return [line for line in game_lines(buy(shop, *args)) if "coffee-card" in line[0]]

    assert card("3.00", "02", "A1", "--category", "coffee") == []
    # A second coffee the same day gives no stamp (per_day: 1); a cheap one none at all.
    assert card("3.00", "02", "A2", "--category", "coffee") == []
    assert card("1.50", "03", "A3", "--category", "coffee") == []
    assert card("3.00", "03", "A4", "--category", "tea") == []
    assert card("3.00", "03", "A5", "--category", "Coffee") == []
    assert card("3.00", "04", "A6", "--category", "coffee") == [
        ("game:coffee-card#1", 10, None, None),
        ("game:coffee-card#1", 0, "coffee", None),
        ("game:coffee-card#1", 0, None, "regular"),
    ]
    buy(shop, "3.00", "05", "A7", "--category", "coffee")
    progress = shop.ok("progress", "ann")
    card = next(g for g in progress["games"] if g["game"] == "coffee-card")
    assert card["progress"] == "1 of 3 stamps" and card["rounds_completed"] == 1
    # The badge is held now: it is not offered again.
    assert card["next_reward"] == "Free coffee and 10 points"
    assert [b["badge"] for b in progress["badges"]] == ["regular"]


def test_every_nth_pays_on_the_5th_and_the_10th(games_shop: Shop) -> None:
    shop = games_shop
    paid = []
    for n in range(1, 11):
        doc = buy(shop, "1.00", f"{n + 1:02d}", f"N{n}")
        paid += [(n, rule) for rule, *_ in game_lines(doc) if rule.startswith("game:fifth")]
    assert paid == [(5, "game:fifth#1"), (10, "game:fifth#2")]


def test_a_badge_is_a_condition_in_earning_rules_and_is_never_spendable(
    games_shop: Shop,
) -> None:
    shop = games_shop
    before = buy(shop, "4.00", "02", "B1", "--category", "coffee")
    assert before["points"] == 4
    for n, day in enumerate(("03", "04")):
        buy(shop, "3.00", day, f"B{n + 2}", "--category", "coffee")
    after = buy(shop, "4.00", "05", "B9")
    assert [line["rule"] for line in after["lines"]] == ["base", "regulars"]
    assert after["points"] == 8
    err = shop.fails(1, "redeem", "ann", "--reward", "regular", "--at", "2026-11-06T10:00")
    assert "regular" in err
    history = shop.ok("history", "ann")
    kinds = {e["kind"] for e in history["entries"]}
    assert "badge" in kinds


# --- milestones ------------------------------------------------------------------------


def test_a_milestone_pays_on_the_very_purchase_that_crosses_it_and_only_once(
    games_shop: Shop,
) -> None:
    shop = games_shop
    assert game_lines(buy(shop, "60.00", "02", "M1")) == []
    crossed = buy(shop, "40.00", "03", "M2")
    assert ("game:big-spender#1", 200, None, None) in game_lines(crossed)
    shop.ok("refund", "M2", "--at", "2026-11-04T10:00")
    again = buy(shop, "50.00", "05", "M3")
    assert not [line for line in game_lines(again) if "big-spender" in line[0]]
    # Units of a category: 6 meals cross 5; 4 more cross 10, which gives two badges.
    first = buy(shop, "9.00", "06", "M4", "--category", "meals", "--quantity", "6")
    assert game_lines(first) == [("game:meals#1", 50, None, None)]
    second = buy(shop, "6.00", "07", "M5", "--category", "meals", "--quantity", "4")
    assert game_lines(second) == [
        ("game:meals#2", 500, None, None),
        ("game:meals#2", 0, None, "foodie"),
        ("game:meals#2", 0, None, "regular"),
    ]
    meals = next(g for g in shop.ok("progress", "ann")["games"] if g["game"] == "meals")
    assert meals["progress"] == "every milestone reached (10 meals)"


# --- gaming attempts -------------------------------------------------------------------


def test_refunded_purchases_stop_counting(games_shop: Shop) -> None:
    """Nine purchases of 1.00, all refunded, then a tenth: no every-fifth bonus."""
    shop = games_shop
    for n in range(9):
        buy(shop, "1.00", f"{n + 2:02d}", f"R{n}")
        shop.ok("refund", f"R{n}", "--at", f"2026-11-{n + 2:02d}T11:00")
    tenth = buy(shop, "1.00", "12", "R9")
    assert game_lines(tenth) == []
    fifth = next(g for g in shop.ok("progress", "ann")["games"] if g["game"] == "fifth")
    assert fifth["progress"] == "1 of 5 stamps"


def test_a_refund_after_a_full_card_leaves_it_paid_and_the_next_card_in_arrears(
    games_shop: Shop,
) -> None:
    shop = games_shop
    for n, day in enumerate(("02", "03", "04")):
        buy(shop, "3.00", day, f"C{n}", "--category", "coffee")
    balance = shop.ok("balance", "ann")["balance"]
    refund = shop.ok("refund", "C2", "--at", "2026-11-05T10:00")
    # The purchase's own 3 points come back; the card's 10 points and its coffee stay.
    assert refund["clawback"] == 3
    assert shop.ok("balance", "ann")["balance"] == balance - 3
    card = next(g for g in shop.ok("progress", "ann")["games"] if g["game"] == "coffee-card")
    assert card["progress"] == "0 of 3 stamps (1 to make up for refunds)"
    assert card["reached"] == -1
    # The stamp made up, and three more: only then does the second card pay.
    rounds = []
    for n, day in enumerate(("06", "07", "08", "09")):
        doc = buy(shop, "3.00", day, f"D{n}", "--category", "coffee")
        rounds += [rule for rule, *_ in game_lines(doc) if "coffee-card" in rule]
    assert rounds == ["game:coffee-card#2"] * 2  # points and the coffee; the badge is held


def test_retries_and_re_imports_never_pay_twice_and_import_pays_as_earn_does(
    games_shop: Shop,
) -> None:
    shop = games_shop
    for n, day in enumerate(("02", "03", "04")):
        buy(shop, "3.00", day, f"E{n}", "--category", "coffee")
    retry = shop.ok(
        "earn", "ann", "--amount", "3.00", "--category", "coffee", "--txn", "E2",
        "--at", "2026-11-04T10:00",
    )  # fmt: skip
    assert retry["duplicate"] and len(game_lines(retry)) == 3
    sales = shop.dir / "sales.csv"
    sales.write_text(
        "txn_id,customer_id,amount,category,date\n"
        + "".join(f"I{n},bob,3.00,coffee,2026-11-{n + 2:02d}T10:00\n" for n in range(3))
    )
    shop.ok("import-csv", str(sales), "--enroll-unknown")
    shop.ok("import-csv", str(sales), "--enroll-unknown")
    ann = [e for e in shop.ok("history", "ann")["entries"] if str(e["rule"]).startswith("game:")]
    bob = [e for e in shop.ok("history", "bob")["entries"] if str(e["rule"]).startswith("game:")]
    shape = sorted((e["kind"], e["points"], e["rule"], e.get("reward")) for e in ann)
    assert shape == sorted((e["kind"], e["points"], e["rule"], e.get("reward")) for e in bob)
    assert len(ann) == 3


# --- receipts with lines ---------------------------------------------------------------


def receipt(shop: Shop, day: str, txn: str, *lines: str) -> dict[str, Any]:
    args = [x for line in lines for x in ("--line", line)]
    return shop.ok("earn", "ann", *args, "--at", f"2026-11-{day}T10:00", "--txn", txn)


def progress_of(shop: Shop, game: str) -> str:
    doc = shop.ok("progress", "ann")
    return str(next(g for g in doc["games"] if g["game"] == game)["progress"])


def test_a_card_stamps_a_receipt_with_a_line_it_counts_among_others(games_shop: Shop) -> None:
    shop = games_shop

    def card(*args: str) -> list[str]:
        return [rule for rule, *_ in game_lines(receipt(shop, *args)) if "coffee-card" in rule]

    assert card("02", "L1", "tea:4.00", "coffee:3.00") == []
    assert progress_of(shop, "coffee-card") == "1 of 3 stamps"
    # The minimum is on the coffee, not on the receipt: 1.50 of coffee gives none.
    assert card("03", "L2", "coffee:1.50", "pastry:5.00") == []
    assert card("03", "L3", "tea:3.00", "pastry:5.00") == []
    assert progress_of(shop, "coffee-card") == "1 of 3 stamps"
    assert card("04", "L4", "pastry:2.00", "Coffee/ESP-1:2x1.50") == []
    assert card("05", "L5", "coffee:2.50", "tea:1.00") == ["game:coffee-card#1"] * 3
    # A card's stamp is on the receipt: it counts once, whatever the coffee lines.
    assert card("06", "L6", "coffee:2.50", "coffee:2.50") == []
    assert progress_of(shop, "coffee-card") == "1 of 3 stamps"


def test_a_milestone_on_units_counts_a_products_lines_and_a_return_uncounts_them(
    games_shop: Shop,
) -> None:
    shop = games_shop

    def meals(*args: str) -> list[tuple[str, int, str | None, str | None]]:
        return [line for line in game_lines(receipt(shop, *args)) if "meals" in line[0]]

    assert meals("02", "U1", "meals:3x4.00", "tea:2.00") == []
    assert progress_of(shop, "meals") == "3 of 5 meals"
    # The very receipt whose meals lines cross 5 pays.
    assert meals("03", "U2", "coffee:3.00", "meals/M-1:1x4.00", "meals/M-2:1x5.00") == [
        ("game:meals#1", 50, None, None)
    ]
    assert progress_of(shop, "meals") == "5 of 10 meals"
    # Returning two meals of U1 uncounts them; the milestone paid stays paid.
    back = shop.ok("refund", "U1", "--line", "meals:2", "--at", "2026-11-03T12:00")
    assert back["items"][0]["quantity"] == 2
    assert progress_of(shop, "meals") == "3 of 10 meals"
    # Back to 5 does not pay again; the 10th meal pays the next milestone.
    assert meals("04", "U3", "meals:2x4.00", "tea:1.00") == []
    assert meals("05", "U4", "meals:5x4.00") == [
        ("game:meals#2", 500, None, None),
        ("game:meals#2", 0, None, "foodie"),
        ("game:meals#2", 0, None, "regular"),
    ]
    # A receipt whose coffee line was returned no longer has a stamp to give
    # (U2's coffee gave one too).
    receipt(shop, "06", "U5", "coffee:3.00", "tea:3.00")
    assert progress_of(shop, "coffee-card") == "2 of 3 stamps"
    shop.ok("refund", "U5", "--line", "coffee", "--at", "2026-11-06T12:00")
    assert progress_of(shop, "coffee-card") == "1 of 3 stamps"


def test_an_import_of_receipts_with_lines_pays_as_earn_does(games_shop: Shop) -> None:
    shop = games_shop
    rows = [
        ("K-1", "02", "coffee", 1, "3.00", ""),
        ("K-1", "02", "pastry", 1, "2.00", ""),
        ("K-2", "03", "tea", 1, "2.00", ""),
        ("K-2", "03", "meals", 4, "4.00", ""),
        ("K-3", "04", "meals", 2, "4.00", ""),
        ("K-3", "04", "coffee", 1, "2.50", ""),
        ("RT-1", "04", "meals", -2, "4.00", "K-3"),
        ("K-4", "05", "coffee", 1, "2.00", ""),
        ("K-4", "05", "tea", 1, "2.00", ""),
    ]
    sales = shop.dir / "sales.csv"
    sales.write_text(
        "txn_id,customer_id,date,category,quantity,unit_price,refund_of\n"
        + "".join(
            f"{t},bob,2026-11-{d}T{10 + n:02d}:00,{c},{q},{p},{r}\n"
            for n, (t, d, c, q, p, r) in enumerate(rows)
        )
    )
    doc = shop.ok("import-csv", str(sales), "--enroll-unknown")
    assert (doc["imported"], doc["rejected"]) == (9, 0)
    # The same receipts through earn and refund, for ann.
    receipt(shop, "02", "A1", "coffee:3.00", "pastry:2.00")
    receipt(shop, "03", "A2", "tea:2.00", "meals:4x4.00")
    receipt(shop, "04", "A3", "meals:2x4.00", "coffee:2.50")
    shop.ok("refund", "A3", "--line", "meals:2", "--at", "2026-11-04T18:00")
    receipt(shop, "05", "A4", "coffee:2.00", "tea:2.00")

    def games_of(customer: str) -> list[tuple[str, str, int]]:
        entries = shop.ok("history", customer)["entries"]
        return sorted(
            (e["kind"], e["rule"], e["points"])
            for e in entries
            if str(e["rule"]).startswith("game:")
        )

    assert games_of("bob") == games_of("ann")
    assert ("earn", "game:coffee-card#1", 10) in games_of("bob")  # K-4: the 3rd coffee day
    assert ("earn", "game:meals#1", 50) in games_of("bob")  # K-3: 4 + 2 meals
    for customer in ("ann", "bob"):
        doc = shop.ok("progress", customer)
        meals = next(g for g in doc["games"] if g["game"] == "meals")
        assert meals["progress"] == "4 of 10 meals", customer  # 2 of K-3's returned


def test_a_plays_facts_are_built_once_when_first_asked_for_and_plus_copies_nothing() -> None:
    day = datetime(2026, 11, 2, tzinfo=UTC).date()
    made: list[int] = []

    def read() -> tuple[Fact, ...]:
        made.append(1)
        return (Fact(1, day, "purchase", 300, 300), Fact(2, day, "purchase", 400, 400))

    facts = Facts(read=read)
    later = facts.plus(Fact(5, day, "purchase", 100, 100)).plus(Fact(6, day, "visit"))
    assert not later.built and not made and repr(later) == "Facts(<not built>)"
    assert [f.op for f in later] == [1, 2, 5, 6] and made == [1]
    assert [f.op for f in facts] == [1, 2] and len(later) == 4 and later[-1].event == "visit"
    assert made == [1]  # the read's facts are built once, for every play sharing them
    assert later == Facts([*facts, later[2], later[3]]) and later.built
    assert Facts() == () and not Facts() and Facts([later[0]]) != later


@pytest.mark.sqlite_only  # it counts reads with a trace on the ledger file
def test_an_import_whose_accounts_outgrow_what_it_keeps_pays_the_same_without_recounting(
    games_shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accounts that the import lets go between chunks (its budget) and reads
    again get their games' tallies back: the same awards as an import that
    keeps them all, and each game's history counted once per customer."""
    shop = games_shop
    rows = [
        f"T{n},c{n % 4},{3 + n % 3}.00,{('coffee', 'meals', 'tea')[n % 3]},"
        f"2026-11-{2 + n // 4:02d}T{10 + n % 4}:00\n"
        for n in range(48)
    ]
    sales = shop.dir / "sales.csv"
    sales.write_text("txn_id,customer_id,amount,category,date\n" + "".join(rows))
    roomy = shop.ok("import-csv", str(sales), "--enroll-unknown", "--db", str(shop.dir / "a.db"))
    counted: list[str] = []
    tally = games.tally

    def counting(game: games.Game, facts: tuple[Fact, ...], base: Any = None) -> Any:
        counted.append(game.id)
        return tally(game, facts, base)

    monkeypatch.setattr(games, "tally", counting)
    built: list[int] = []
    history = snapshots._facts

    def building(*args: Any) -> tuple[Fact, ...]:
        facts = history(*args)
        built.append(len(facts))
        return facts

    monkeypatch.setattr(snapshots, "_facts", building)
    monkeypatch.setattr(importer, "KEPT_BUDGET", 2)  # about one account at a time
    monkeypatch.setattr(importer, "CHUNK", 3)
    tight = shop.ok("import-csv", str(sales), "--enroll-unknown")
    assert tight["points"] == roomy["points"]
    # Four customers, four games that count purchases: no recount on a read again,
    # and no customer's history built to decide on the tallies kept.
    assert len(counted) <= 4 * 4, counted
    assert sum(built) == 0, built

    def game_lines_of(db: Path) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(db)) as conn:
            return conn.execute(
                "SELECT customer_id, rule, kind, points, reward FROM entries "
                "WHERE rule LIKE 'game:%' ORDER BY customer_id, rule, kind, reward"
            ).fetchall()

    assert game_lines_of(shop.db) == game_lines_of(shop.dir / "a.db")
    assert game_lines_of(shop.db)


# --- what people see -------------------------------------------------------------------


def test_explain_shows_the_games_a_purchase_moved(games_shop: Shop) -> None:
    doc = games_shop.ok(
        "earn", "ann", "--amount", "3.00", "--category", "coffee", "--explain",
        "--at", "2026-11-02T10:00",
    )  # fmt: skip
    assert doc["games"] == [
        {"game": "coffee-card", "progress": "1 of 3 stamps"},
        {"game": "fifth", "progress": "1 of 5 stamps"},
        {"game": "big-spender", "progress": "3.00 of 100.00 spent"},
    ]
    view = games_shop.run(
        "earn", "ann", "--amount", "1.00", "--explain", "--at", "2026-11-03T10:00", "--no-json"
    )
    assert view.exit_code == 0 and "Game moved" in view.output


def test_progress_says_what_is_within_reach(games_shop: Shop) -> None:
    shop = games_shop
    for n in range(4):
        buy(shop, "20.00", f"{n + 2:02d}", f"W{n}")
    doc = shop.ok("progress", "ann")
    fifth = next(g for g in doc["games"] if g["game"] == "fifth")
    assert fifth == {
        "game": "fifth",
        "name": "Every fifth purchase",
        "kind": "stamps",
        "progress": "4 of 5 stamps",
        "rounds_completed": 0,
        "reached": 4,
        "target": 5,
        "next_reward": "25 points",
        "within_reach": True,
    }
    spend = next(g for g in doc["games"] if g["game"] == "big-spender")
    assert spend["reached_spend"] == "80.00" and spend["target_spend"] == "100.00"
    assert doc["reach"] == [
        "Every fifth purchase: 1 stamp to go for 25 points",
        "Big spender: 20.00 to spend to go for 200 points",
    ]
    assert shop.run("progress", "ann", "--no-json").exit_code == 0
    assert "unknown customer" in shop.fails(1, "progress", "nobody")


def test_progress_as_of_a_moment_is_the_progress_then(games_shop: Shop) -> None:
    shop = games_shop
    for n, day in enumerate(("02", "03", "04")):
        buy(shop, "3.00", day, f"P{n}", "--category", "coffee")
    shop.ok("refund", "P2", "--at", "2026-11-05T10:00")
    buy(shop, "3.00", "06", "P3", "--category", "meals", "--quantity", "4")

    def card(*args: str) -> dict[str, Any]:
        doc = shop.ok("progress", "ann", *args)
        return {
            "as_of": doc["as_of"],
            "badges": [b["badge"] for b in doc["badges"]],
            **{g["game"]: (g["progress"], g["rounds_completed"]) for g in doc["games"]},
        }

    # A bare date is the start of that day, as for every --as-of.
    assert card("--as-of", "2026-11-03")["coffee-card"] == ("1 of 3 stamps", 0)
    before = card("--as-of", "2026-11-03T23:00")
    assert before["as_of"] == "2026-11-03" and before["badges"] == []
    assert before["coffee-card"] == ("2 of 3 stamps", 0)
    assert before["meals"] == ("0 of 5 meals", 0)
    # The card completed on the 4th (10:00 shop time; included to the second).
    assert card("--as-of", "2026-11-04T09:59")["coffee-card"] == ("2 of 3 stamps", 0)
    full = card("--as-of", "2026-11-04T10:00")
    assert full["coffee-card"] == ("0 of 3 stamps", 1) and full["badges"] == ["regular"]
    # The refund of the 5th puts the next card in arrears from then on.
    assert card("--at", "2026-11-05T12:00")["coffee-card"] == (
        "0 of 3 stamps (1 to make up for refunds)",
        1,
    )
    now = card()
    assert now["meals"] == ("4 of 5 meals", 0)
    assert {k: v for k, v in now.items() if k != "as_of"} == {
        k: v for k, v in card("--as-of", "2026-11-30").items() if k != "as_of"
    }
    assert "is not" in shop.fails(2, "progress", "ann", "--as-of", "yesterday")


def test_the_games_report_counts_players_rounds_rewards_and_points(games_shop: Shop) -> None:
    shop = games_shop
    for n, day in enumerate(("02", "03", "04")):
        buy(shop, "3.00", day, f"G{n}", "--category", "coffee")
    shop.ok("enroll", "bob", "--at", "2026-11-01T09:00")
    doc = shop.ok("report", "games")
    card = next(g for g in doc["games"] if g["game"] == "coffee-card")
    assert card == {
        "game": "coffee-card",
        "name": "Coffee card",
        "kind": "stamps",
        "customers": 1,
        "rounds_completed": 1,
        "points": 10,
        "rewards_given": 1,
        "badges_given": 1,
    }
    later = shop.ok("report", "games", "--from", "2026-11-05")
    assert next(g for g in later["games"] if g["game"] == "coffee-card")["rounds_completed"] == 0
    csv = shop.run("report", "games", "--csv")
    assert csv.stdout.splitlines()[0].startswith("game,name,kind,customers")
    assert shop.run("report", "games", "--no-json").exit_code == 0


def test_the_rules_report_counts_a_games_rounds_under_the_game(games_shop: Shop) -> None:
    shop = games_shop
    shop.ok("enroll", "bob", "--at", "2026-11-01T09:00")
    for n in range(6):  # two cards for ann
        buy(shop, "3.00", f"{n + 2:02d}", f"A{n}", "--category", "coffee")
    for n in range(3):  # one for bob
        shop.ok(
            "earn", "bob", "--amount", "4.00", "--category", "coffee", "--txn", f"B{n}",
            "--at", f"2026-11-{n + 2:02d}T11:00",
        )  # fmt: skip
    doc = shop.ok("report", "rules", "--from", "2026-11-01", "--to", "2026-11-30")
    rows = {r["rule"]: r for r in doc["rules"]}
    assert not [rule for rule in rows if "#" in rule]
    # Three rounds, each its points line and its free coffee: three awards.
    card = rows["game:coffee-card"]
    assert (card["awards"], card["customers"], card["points"]) == (3, 2, 30)
    assert card["revenue"] == "10.00"  # the purchases that completed them: 3.00 + 3.00 + 4.00
    fifth = rows["game:fifth"]
    assert (fifth["awards"], fifth["customers"], fifth["points"]) == (1, 1, 25)
    assert rows["base"]["awards"] == 9
    assert doc["points"] == sum(r["points"] for r in doc["rules"])


def test_progress_and_the_report_need_games_in_the_rules(shop: Shop) -> None:
    shop.clock("2026-12-01")
    shop.ok("enroll", "ann", "--at", "2026-11-01T09:00")
    assert "has no games" in shop.fails(2, "progress", "ann")
    assert "has no games" in shop.fails(2, "report", "games")


# --- the rules file --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("games:\n  - {id: g, stamps: 3}\n", "game 'g' is missing required key 'give'"),
        (
            "games:\n  - {id: g, stamps: 3, milestones: [1], give: {points: 1}}\n",
            "game 'g' needs exactly one of stamps",
        ),
        ("games:\n  - {id: g, stamps: 0, give: {points: 1}}\n", "stamps must be at least 1"),
        (
            "games:\n  - {id: g, stamps: 3, give: {badge: gold}}\n",
            "unknown badge 'gold'; badges are: none (add a badges: section)",
        ),
        ("games:\n  - {id: g, stamps: 3, give: {reward: tea}}\n", "unknown reward 'tea'"),
        ("games:\n  - {id: g, stamps: 3, give: {}}\n", "'give' in game 'g' needs points"),
        (
            "games:\n  - {id: g, milestones: [5, 3], give: {points: 1}}\n",
            "milestones of game 'g' must go up: 3 is not above 5",
        ),
        (
            "games:\n  - {id: g, milestones: [5], metric: meals, give: {points: 1}}\n",
            "metric must be one of purchases, spend, points, units",
        ),
        (
            "games:\n  - {id: g, milestones: [5], per_day: 1, give: {points: 1}}\n",
            "'per_day' goes with stamps",
        ),
        (
            "games:\n  - {id: g, on: visit, stamps: 5, min_amount: 3, give: {points: 1}}\n",
            "'min_amount' only applies to games on purchases",
        ),
        (
            "games:\n  - {id: g, milestones: [5], metric: points, category: x, "
            "give: {points: 1}}\n",
            "'category' does not apply to milestones on points",
        ),
        ("games:\n  - {id: g, milestones: [5]}\n", "milestone 5 of game 'g' gives nothing"),
        (
            "games:\n  - {id: g, stamps: 2, give: {points: 1}, colour: red}\n",
            "unknown key 'colour' in a game",
        ),
        (
            "games:\n  - {id: g, stamps: 2, give: {points: 1}}\n"
            "  - {id: g, stamps: 3, give: {points: 1}}\n",
            "duplicate game id 'g'",
        ),
        ("badges:\n  - {id: b}\n", "badge 'b' is missing required key 'name'"),
    ],
)
def test_a_bad_games_section_is_refused_at_its_line(shop: Shop, section: str, message: str) -> None:
    shop.rules.write_text(
        "program: {name: S, timezone: Europe/London}\n"
        "rewards:\n  - {id: coffee, name: Coffee, cost: 10}\n" + section
    )
    err = shop.fails(78, "rules", "check")
    assert message in err, err
    assert "rules.yaml:" in err


def test_a_badge_condition_names_a_known_badge(shop: Shop) -> None:
    shop.rules.write_text(
        "program: {name: S, timezone: Europe/London}\n"
        "badges:\n  - {id: regular, name: Regular}\n"
        "earn:\n  - {id: r, on: purchase, when: {badge: regulr}, points: 1}\n"
    )
    err = shop.fails(78, "rules", "check")
    assert "rules.yaml:5:" in err and "unknown badge 'regulr' (did you mean 'regular'?)" in err


# --- statements, and a replay --------------------------------------------------------------

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@contextmanager
def counted(store: Store) -> Iterator[list[str]]:
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        yield statements
    finally:
        store.conn.set_trace_callback(None)


def test_a_purchase_that_moves_games_costs_the_statements_of_one_that_does_not(
    tmp_path: Path,
) -> None:
    ruleset = parse_rules(GAMES)
    counts = []
    with Store.open(tmp_path / "l.db") as store:
        ops.enroll(store, ruleset, EnrollRequest("C1", at=NOW - timedelta(days=30)), NOW)
        for n in range(2):
            request = EarnRequest(
                "C1", "purchase", amount=Decimal("3.00"), category="coffee", txn=f"S{n}",
                at=NOW - timedelta(days=10 - n),
            )  # fmt: skip
            ops.earn(store, ruleset, request, NOW)
        for txn, category in (("tea", "tea"), ("card", "coffee")):
            # A tea moves only every-fifth and spend; the coffee completes the card.
            with counted(store) as statements:
                request = EarnRequest(
                    "C1", "purchase", amount=Decimal("3.00"), category=category, txn=txn,
                    at=NOW - timedelta(days=5 if txn == "tea" else 4),
                )  # fmt: skip
                result = ops.earn(store, ruleset, request, NOW)
            counts.append(len(statements))
    assert [line.rule for line in result.award.lines if line.rule.startswith("game:")]
    plain = parse_rules(GAMES.split("badges:")[0].replace("  - {id: regulars", "  # "))
    with Store.open(tmp_path / "plain.db") as store:
        ops.enroll(store, plain, EnrollRequest("C1", at=NOW - timedelta(days=30)), NOW)
        with counted(store) as statements:
            request = EarnRequest("C1", "purchase", amount=Decimal("3.00"), txn="P")
            ops.earn(store, plain, request, NOW)
    assert max(counts) <= len(statements) + 2, (counts, len(statements))


PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
STEPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("buy"),
            st.sampled_from(["1.00", "3.00", "40.00"]),
            st.sampled_from(["coffee", "meals", None]),
            st.integers(1, 4),
            st.integers(0, 2),  # days later
        ),
        st.tuples(st.just("refund"), st.integers(0, 30), st.booleans()),
    ),
    min_size=1,
    max_size=18,
)


@PROPERTY
@given(steps=STEPS)
def test_a_replay_of_the_ledger_gives_the_same_progress_and_awards(steps: list[Any]) -> None:
    ruleset = parse_rules(GAMES)
    book = ruleset.games
    assert book is not None
    tz = zone("Europe/London")
    at = datetime(2026, 11, 1, 10, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "l.db") as store:
        ops.enroll(store, ruleset, EnrollRequest("C1", at=at), NOW)
        bought: list[str] = []
        for n, step in enumerate(steps):
            if step[0] == "buy":
                _, amount, category, quantity, later = step
                at += timedelta(days=later, minutes=1)
                request = EarnRequest(
                    "C1", "purchase", amount=Decimal(amount), category=category,
                    quantity=quantity, txn=f"T{n}", at=at,
                )  # fmt: skip
                ops.earn(store, ruleset, request, NOW)
                bought.append(f"T{n}")
            elif bought:
                txn = bought[step[1] % len(bought)]
                at += timedelta(minutes=1)
                amount = None if step[2] else Decimal("0.50")
                try:
                    ops.refund(store, ruleset, RefundRequest(txn, amount, txn=f"X{n}", at=at), NOW)
                except Exception as exc:  # fully refunded already, or more than is left
                    assert "refund" in str(exc)
        account = store.accounts(ruleset, ["C1"])["C1"]
        rows = store.conn.execute(
            "SELECT o.id, o.kind, o.occurred, o.amount_cents, o.category, o.quantity, "
            "o.refund_of FROM operations o WHERE o.customer_id = 'C1' ORDER BY o.id"
        ).fetchall()
        lines = store.conn.execute(
            "SELECT e.kind, e.rule, e.points, e.reward FROM entries e "
            "WHERE e.rule LIKE 'game:%' ORDER BY e.id"
        ).fetchall()
    # The replay: the ledger's operations in order, from an empty play.
    play = Play()
    replayed: list[tuple[str, str, int, str | None]] = []
    earned = 100  # the welcome
    for op_id, kind, occurred, cents, category, quantity, refund_of in rows:
        day = shop_day(datetime.fromtimestamp(occurred, UTC), tz)
        if kind == "purchase":
            earned += cents // 100
            fact = Fact(op_id, day, "purchase", cents, cents, category, None, quantity)
            new, play = games.decide(book, play, fact, earned)
            paid = tuple(
                Paid(x.game, x.round, "badge" if x.badge else "earn" if x.points else "gift",
                     x.points, x.badge or x.reward, day)
                for x in new
            )  # fmt: skip
            play = Play(play.facts, play.paid + paid, play.earned)
            replayed += [(p.kind, f"game:{p.game}#{p.round}", p.points, p.what) for p in paid]
        elif kind == "refund":
            play = play.refunded(refund_of, cents)
    assert replayed == [(k, r, p, w) for k, r, p, w in lines]
    assert account.play is not None
    for game in book.games:
        stored = games.standing(game, account.play)
        again = games.standing(game, play)
        assert games.words(stored) == games.words(again)
        assert stored.rounds == again.rounds
    assert {(p.game, p.round) for p in account.play.paid} == {parse_rule(r) for _, r, _, _ in lines}


# --- streaks, challenges and the nightly step ---------------------------------------------

STREAKS = """\
program: {name: Streak Shop, currency: USD, timezone: Europe/London}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
tiers:
  metric: spend
  window: lifetime
  downgrade: reevaluate
  levels:
    - {id: bronze, name: Bronze, threshold: 0}
    - {id: gold, name: Gold, threshold: 500}
games:
  - id: weekly
    name: Weekly regular
    streak: {period: week, at_least: 2, length: 3, forgive: 1}
    give: {points: 100}
  - id: monthly
    name: Monthly
    streak: {period: month, length: 2}
    give: {points: 40}
  - id: autumn
    name: Autumn challenge
    challenge:
      from: 2026-11-01
      to: 2026-11-30
      goals:
        - {purchases: 2, category: coffee}
        - {spend: 20}
    give: {points: 300}
  - id: gold-only
    name: Gold challenge
    challenge: {from: 2026-11-01, to: 2026-11-30, tiers: [gold], goals: [{purchases: 1}]}
    give: {points: 1000}
"""


@pytest.fixture
def streak_shop(shop: Shop) -> Shop:
    shop.rules.write_text(STREAKS)
    shop.clock("2026-12-31")
    shop.ok("enroll", "ann", "--at", "2026-10-01T09:00")
    return shop


def rules_paid(doc: dict[str, Any]) -> list[str]:
    return [line["rule"] for line in doc["lines"] if line["rule"].startswith("game:")]


def test_a_streak_pays_after_its_run_forgives_a_missed_week_and_breaks_past_it(
    streak_shop: Shop,
) -> None:
    shop = streak_shop
    # 2 Nov is a Monday. Two purchases a week: weeks of 2 and 9 Nov, 16 Nov missed
    # (forgiven), 23 Nov completes the 3-week streak.
    paid = []
    for n, day in enumerate(("02", "03", "09", "10", "23", "24")):
        doc = buy(shop, "5.00", day, f"W{n}")
        paid.append([r for r in rules_paid(doc) if "weekly" in r])
    assert paid == [[], [], [], [], [], ["game:weekly#1"]]
    # One purchase a week is not enough, and two missed weeks break a streak.
    shop.clock("2026-12-09")
    buy_at = {"30": "2026-11-30", "01": "2026-12-01"}
    for n, day in enumerate(buy_at.values()):
        shop.ok("earn", "ann", "--amount", "5.00", "--at", f"{day}T10:00", "--txn", f"V{n}")
    weekly = next(g for g in shop.ok("progress", "ann")["games"] if g["game"] == "weekly")
    assert weekly["progress"] == (
        "1-week streak (of 3), 2 more purchases this week to keep it going (1 missed week forgiven)"
    )
    shop.clock("2026-12-22")
    weekly = next(g for g in shop.ok("progress", "ann")["games"] if g["game"] == "weekly")
    assert weekly["progress"].startswith("no streak yet: 2 more purchases this week")
    night = shop.ok("nightly", "--as-of", "2026-12-21")
    assert night["streaks_broken"] == 1
    # Idempotent: a re-run for the same day writes nothing and counts the same.
    assert shop.ok("nightly", "--as-of", "2026-12-21")["streaks_broken"] == 1
    monthly = next(g for g in shop.ok("progress", "ann")["games"] if g["game"] == "monthly")
    assert monthly["rounds_completed"] == 1  # November and December


def test_a_challenge_pays_inside_its_window_and_only_for_its_tiers(streak_shop: Shop) -> None:
    shop = streak_shop
    assert rules_paid(buy(shop, "30.00", "02", "C1", "--category", "tea")) == []
    done = buy(shop, "3.00", "03", "C2", "--category", "coffee")
    assert "game:autumn#1" not in rules_paid(done)
    done = buy(shop, "3.00", "04", "C3", "--category", "coffee")
    assert "game:autumn#1" in rules_paid(done)
    assert "game:gold-only#1" not in rules_paid(done)  # bronze
    gold = buy(shop, "600.00", "05", "C4")
    assert "game:gold-only#1" not in rules_paid(gold)  # the tier before the purchase
    assert "game:gold-only#1" in rules_paid(buy(shop, "1.00", "06", "C5"))
    progress = shop.ok("progress", "ann")["games"]
    autumn = next(g for g in progress if g["game"] == "autumn")
    assert autumn["progress"] == "completed (2 of 2 goals)"


def test_a_challenge_closes_unfinished_and_the_nightly_step_counts_it(streak_shop: Shop) -> None:
    shop = streak_shop
    shop.ok("enroll", "bob", "--at", "2026-10-01T09:00")
    shop.ok("earn", "bob", "--amount", "3.00", "--category", "coffee", "--at", "2026-11-03T10:00")
    late = shop.ok(
        "earn", "bob", "--amount", "30.00", "--category", "coffee", "--at", "2026-12-03T10:00"
    )
    assert "game:autumn#1" not in rules_paid(late)  # after the window
    autumn = next(g for g in shop.ok("progress", "bob")["games"] if g["game"] == "autumn")
    assert autumn["progress"] == "closed on 2026-11-30: 0 of 2 goals reached"
    assert shop.ok("nightly", "--as-of", "2026-12-01")["challenges_missed"] == 1
    assert shop.ok("nightly", "--as-of", "2026-12-02")["challenges_missed"] == 0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "  - {id: s, streak: {period: day, length: 3}, give: {points: 1}}\n",
            "period must be one of week, month",
        ),
        (
            "  - {id: s, streak: {period: week, length: 3, forgive: 3}, give: {points: 1}}\n",
            "forgive (3) must be less than length (3)",
        ),
        (
            "  - {id: s, streak: {period: week}, give: {points: 1}}\n",
            "missing required key 'length'",
        ),
        (
            "  - {id: c, challenge: {from: 2026-02-01, to: 2026-01-01, goals: [{purchases: 1}]},"
            " give: {points: 1}}\n",
            "ends (2026-01-01) before it starts",
        ),
        (
            "  - {id: c, challenge: {from: 2026-01-01, to: 2026-02-01, goals: [{visits: 1}]},"
            " give: {points: 1}}\n",
            "unknown key 'visits' in a goal",
        ),
        (
            "  - {id: c, challenge: {from: 2026-01-01, to: 2026-02-01, tiers: [vip],"
            " goals: [{purchases: 1}]}, give: {points: 1}}\n",
            "unknown tier 'vip'",
        ),
    ],
)
def test_a_bad_streak_or_challenge_is_refused_at_its_line(
    shop: Shop, section: str, message: str
) -> None:
    shop.rules.write_text("program: {name: S, timezone: Europe/London}\ngames:\n" + section)
    err = shop.fails(78, "rules", "check")
    assert message in err and "rules.yaml:3:" in err, err


def test_a_card_can_count_visits_an_event_no_earn_rule_needs_to_reward(shop: Shop) -> None:
    shop.rules.write_text(
        "program: {name: S, timezone: Europe/London}\n"
        "games:\n  - {id: visits, name: Visits, on: visit, stamps: 2, give: {points: 5}}\n"
    )
    shop.clock("2026-12-01")
    shop.ok("enroll", "ann", "--at", "2026-11-01T09:00")
    first = shop.ok("earn", "ann", "--event", "visit", "--at", "2026-11-02T10:00")
    second = shop.ok("earn", "ann", "--event", "visit", "--at", "2026-11-03T10:00")
    assert (first["points"], second["points"]) == (0, 5)
    assert "no rule" in shop.fails(2, "earn", "ann", "--event", "vist")


# --- a game's tally, added to one fact at a time ------------------------------------------

TALLIED = parse_rules(
    STREAKS.replace(
        "games:\n",
        GAMES[GAMES.index("rewards:") : GAMES.index("games:\n")]
        + "games:\n"
        + GAMES.split("games:\n")[1],
    )
)
ITEMS = st.lists(
    st.tuples(st.sampled_from(["coffee", "meals", "tea"]), st.integers(1, 3), st.integers(0, 400)),
    max_size=3,
)
FACTS = st.lists(
    st.tuples(st.integers(0, 70), st.sampled_from(["coffee", "meals", None]), st.integers(0, 900),
              st.integers(1, 3), ITEMS),
    max_size=25,
)  # fmt: skip


def _reference(game: games.Game, facts: tuple[Fact, ...]) -> Decimal:
    """A game's total counted plainly, period by period and day by day."""
    counted = [f for f in facts if games.counts(game, f)]
    if game.kind == "streak":
        walked = games.walk(game, counted, None)
        assert game.streak is not None
        return Decimal(walked.completed * game.streak.length + walked.run)
    if game.kind == "stamps":
        per_day: dict[object, int] = {}
        for f in counted:
            per_day[f.day] = per_day.get(f.day, 0) + 1
        limit = game.per_day or 10**9
        return Decimal(sum(min(n, limit) for n in per_day.values()))
    if game.kind == "challenge":
        assert game.challenge is not None
        out = Decimal(0)
        for goal in game.challenge.goals:
            inside = [f for f in counted if game.challenge.start <= f.day <= game.challenge.end]
            parts = [p for f in inside if (p := f.part(goal.categories, goal.skus)) is not None]
            value: Decimal = Decimal(len(parts))
            if goal.metric == "units":
                value = Decimal(sum(p[1] for p in parts))
            elif goal.metric == "spend":
                value = Decimal(sum(p[0] for p in parts)) / 100
            out += min(value, goal.target)
        return out
    parts = [games.portion(game, f) for f in counted]
    if game.metric == "purchases":
        return Decimal(len(parts))
    if game.metric == "units":
        return Decimal(sum(p[1] for p in parts if p))
    return Decimal(sum(p[0] for p in parts if p)) / 100


@settings(max_examples=60, deadline=None)
@given(facts=FACTS)
def test_a_games_tally_added_to_fact_by_fact_is_its_total_counted_afresh(
    facts: list[Any],
) -> None:
    """Facts in any order (some backdated), some receipts with lines: what decide
    keeps adding to is what counting every fact again gives."""
    book = TALLIED.games
    assert book is not None and len(book.games) == 8
    play = Play()
    first = datetime(2026, 10, 20).date()
    for n, (later, category, cents, quantity, items) in enumerate(facts):
        lines = tuple(
            Item(i + 1, c, None, q, a) for i, (c, q, a) in enumerate(items) if len(items) > 1
        )
        total = sum(line.cents for line in lines) if lines else cents
        fact = Fact(
            n + 1, first + timedelta(days=later), "purchase", total, total,
            None if lines else category, None, None if lines else quantity, lines,
        )  # fmt: skip
        _, play = games.decide(book, play, fact, 0)
    for game in book.games:
        if game.kind == "milestones" and game.metric == "points":
            continue
        kept = play.memo.get(game.id)
        counted = any(games.counts(game, f) for f in play.facts)
        assert kept is not None or not counted, game.id  # every game's, once one counts
        assert games.measure(game, play.facts, 0) == _reference(game, play.facts), game.id
        if kept is not None:
            assert games.total(game, kept) == _reference(game, play.facts), game.id


def test_an_account_a_writer_kept_equals_a_fresh_read_of_it(tmp_path: Path) -> None:
    """An import keeps accounts between its chunks: what its decisions left must be
    what a read gives, the games' play included (the points earned are counted
    only for a milestone on points, which the example's games do not have)."""
    from loyalty_cli.engine import awards

    from .conftest import EXAMPLE_RULES

    ruleset = parse_rules(EXAMPLE_RULES.read_text())
    assert ruleset.games is not None and not ruleset.games.by_points
    at = datetime(2026, 10, 1, 9, tzinfo=UTC)
    with Store.open(tmp_path / "l.db") as store:
        with store.writing(ruleset, NOW, ["C1"]) as book:
            awards.enroll(book, EnrollRequest("C1", at=at))
            for n in range(6):
                request = EarnRequest(
                    "C1", "purchase", amount=Decimal("12.50"), category="coffee",
                    txn=f"T{n}", at=at + timedelta(days=n, hours=1),
                )  # fmt: skip
                awards.earn(book, request)
            kept = book.account("C1")
        read = store.accounts(ruleset, ["C1"])["C1"]
    assert kept is not None and kept.play is not None and kept.play.paid
    assert read is not None and read.play is not None

    def alike(play: Play) -> Play:  # a round's lines in either order
        return Play(play.facts, tuple(sorted(play.paid, key=repr)), play.earned)

    assert kept.with_(play=alike(kept.play)) == read.with_(play=alike(read.play))


def test_a_streak_not_started_names_its_length_as_it_is_said(example_shop: Shop) -> None:
    example_shop.ok("enroll", "C1")
    weekly = next(
        g for g in example_shop.ok("progress", "C1")["games"] if g["game"] == "weekly-regular"
    )
    assert weekly["progress"].endswith("to start one (an 8-week streak)"), weekly
