"""The JSON vocabulary (README, "JSON vocabulary"): one name per concept and one type per
name, across every command. One test runs every command with --json on a small ledger,
collects every key of every document, and fails on a second name for a known concept or
a second type for a name."""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from .conftest import EXAMPLE_RULES, Shop

# A name that must not appear, and the one name of its concept.
SECOND_NAMES = {
    "earned": "points_earned",
    "redeemed": "points_redeemed",
    "adjusted": "points_adjusted",
    "expired": "points_expired",
    "enrolled_at": "occurred_at",
    "id": "reward, rule or entry",
    "version": "rules_version",
    "qualifying": "qualifying_spend or qualifying_points",
    "to_next": "to_next_spend or to_next_points",
    "to_keep": "to_keep_spend or to_keep_points",
}
# How many customers are enrolled, as of a moment, is `members`, wherever it is given;
# `customers` counts the customers of a row (a rule's, a tier's, a segment's) or an import.
MEMBER_COUNTS = {"nightly", "tiers", "verify", "report tiers", "report summary"}

MONEY = {
    "amount",
    "purchase_amount",
    "refunded",
    "revenue",
    "net_revenue",
    "average_order_value",
    "point_value",
    "liability_value",
    "value",
    "lifetime_spend",
    "monetary",
    "qualifying_spend",
    "to_next_spend",
    "to_keep_spend",
}
POINTS = {
    "points",
    "balance",
    "available",
    "pending",
    "clawback",
    "shortfall",
    "expiring_30_days",
    "points_earned",
    "points_redeemed",
    "points_adjusted",
    "points_expired",
    "points_refunded",
    "points_outstanding",
    "expired_points",
    "birthday_points",
    "became_available",
    "debt",
    "never_expire",
    "qualifying_points",
    "to_next_points",
    "to_keep_points",
    "cost",
}
DATES = {
    "as_of",
    "from",
    "to",
    "date",
    "next_expiry",
    "birthday",
    "window_start",
    "tier_until",
    "until",
    "days_from",
    "days_to",
    "start",
    "end",
    "first_purchase",
    "last_purchase",
    "available_from",
    "available_to",
}
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")
DATE = re.compile(r"^\d{4}-\d\d-\d\d$")
MONEY_TEXT = re.compile(r"^-?\d+\.\d\d$")


def walk(doc: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every key in a document, nested ones included."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield path, key, value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(doc, list):
        for item in doc:
            yield from walk(item, f"{path}[]")


def documents(shop: Shop, *, as_json: bool = True) -> dict[str, dict[str, Any]]:
    """Every command's JSON on a small ledger, by command. With as_json False, every
    command draws its view for people instead (--no-json), which must succeed."""
    docs: dict[str, dict[str, Any]] = {}

    def take(name: str, *args: str) -> None:
        if as_json:
            docs[name] = shop.ok(*args)
            return
        result = shop.run(*args, "--no-json")
        assert result.exit_code == 0 and result.exception is None, (name, result.output)
        assert "Traceback" not in result.output, (name, result.output)
        docs[name] = {}

    take("rules check", "rules", "check")
    take("enroll", "enroll", "ann", "--at", "2026-11-01T10:00")
    take("enroll referred", "enroll", "bob", "--referred-by", "ann", "--at", "2026-11-01T11:00")
    take(
        "earn",
        "earn", "ann", "--amount", "120.00", "--category", "shoes", "--txn", "R1",
        "--at", "2026-11-02T10:00", "--explain",
    )  # fmt: skip
    take("earn again", "earn", "ann", "--amount", "120.00", "--category", "shoes", "--txn", "R1")
    take("earn event", "earn", "bob", "--event", "review", "--at", "2026-11-03T10:00")
    take("redeem", "redeem", "ann", "--reward", "coffee", "--at", "2026-11-04T10:00")
    take("adjust", "adjust", "bob", "-5", "--reason", "typo", "--at", "2026-11-04T11:00")
    take("refund", "refund", "R1", "--amount", "20.00", "--at", "2026-11-05T10:00")
    take(
        "earn lines",
        "earn", "ann", "--line", "shoes/S1:2x30.00", "--line", "bags:15.00", "--txn", "R2",
        "--at", "2026-11-05T11:00", "--explain",
    )  # fmt: skip
    take("refund line", "refund", "R2", "--line", "S1:1", "--at", "2026-11-05T12:00")
    take("update", "update", "ann", "--email", "ann@example.com")
    take(
        "update consent",
        "update", "ann", "--consent", "email", "--withdraw", "sms", "--consent-source", "till",
    )  # fmt: skip
    take("customer show", "customer", "show", "ann")
    take("customer export", "customer", "export", "ann")
    take("balance", "balance", "ann")
    take("history", "history", "ann")
    take("tier", "tier", "ann")
    take("tiers", "tier")
    take("rewards", "rewards", "ann")
    take("rewards catalogue", "rewards")
    take("nightly", "nightly")
    sales = shop.dir / "sales.csv"
    sales.write_text("txn_id,customer_id,amount,date\nS1,cat,10.00,2026-11-06T10:00\n")
    take("import-csv", "import-csv", str(sales), "--enroll-unknown")
    lines = shop.dir / "lines.csv"
    lines.write_text(
        "txn_id,customer_id,date,sku,quantity,unit_price\n"
        "S2,cat,2026-11-06T11:00,A,2,3.00\nS2,cat,2026-11-06T11:00,B,1,4.00\n"
        "S3,,2026-11-06T11:00,A,1,3.00\n"
    )
    take("import-csv lines", "import-csv", str(lines))
    take("verify", "verify")
    for report in ("summary", "customers", "activity", "rules", "tiers", "liability"):
        take(f"report {report}", "report", report)
    take("report segments", "report", "segments", "--segment", "new")
    take("report clv", "report", "clv")
    take("report games", "report", "games")
    take("progress", "progress", "ann")
    take("rules test", "rules", "test")
    take("explain", "explain", "R1")
    take("simulate", "simulate")
    version = shop.ok("explain", "R1")["rules_version"]
    take("rules show", "rules", "show", version[:12])
    take("customer list", "customer", "list", "--transactional")
    take("notices", "notices", "--within", "60")
    take("statement", "statement", "ann")
    take("transfer", "transfer", "ann", "bob", "10", "--reason", "pool", "--at", "2026-11-06T10:00")
    take("merge", "merge", "ann", "cat", "--reason", "same person", "--at", "2026-11-07T10:00")
    take("customer show merged", "customer", "show", "cat")
    take("customer erase", "customer", "erase", "bob", "--reason", "request 1")
    take("customer show erased", "customer", "show", "bob")
    return docs


def test_one_name_per_concept_and_one_type_per_name(example_shop: Shop) -> None:
    shop = example_shop
    shutil.copy(EXAMPLE_RULES, shop.rules)
    shop.clock("2026-11-20")
    docs = documents(shop)
    problems: list[str] = []
    types: dict[str, dict[str, str]] = defaultdict(dict)
    for command, doc in docs.items():
        for path, key, value in walk(doc):
            where = f"{command}: {path}.{key}"
            if key in SECOND_NAMES:
                problems.append(f"{where}: a second name; the vocabulary says {SECOND_NAMES[key]}")
            if value is None:
                continue
            kind = type(value).__name__
            types[key].setdefault(kind, where)
            if key in MONEY and not (isinstance(value, str) and MONEY_TEXT.match(value)):
                problems.append(f"{where}: money {value!r} is not a string like '42.50'")
            if key in POINTS and (type(value) is not int):
                problems.append(f"{where}: points {value!r} are not an integer")
            if key.endswith("_at") and not (isinstance(value, str) and TIME.match(value)):
                problems.append(f"{where}: time {value!r} is not ISO 8601 with an offset")
            if key in DATES and not (isinstance(value, str) and DATE.match(value)):
                problems.append(f"{where}: date {value!r} is not YYYY-MM-DD")
        if command in MEMBER_COUNTS:
            if "customers" in doc and not isinstance(doc["customers"], list):
                problems.append(f"{command}: counts its members as 'customers', not 'members'")
            if not isinstance(doc.get("members"), int):
                problems.append(f"{command}: no 'members' count")
    for key, kinds in types.items():
        if len(kinds) > 1:
            problems.append(f"'{key}' has {len(kinds)} types: {kinds}")
    assert not problems, "\n".join(problems)


def test_every_command_draws_its_view_for_people_from_the_same_document(
    example_shop: Shop,
) -> None:
    """The views read the documents --json prints: a renamed key must not break one."""
    shop = example_shop
    shutil.copy(EXAMPLE_RULES, shop.rules)
    shop.clock("2026-11-20")
    assert len(documents(shop, as_json=False)) == 47


def test_an_import_counts_the_welcome_points_it_paid(shop: Shop) -> None:
    shop.clock("2026-11-20")
    sales = shop.dir / "sales.csv"
    sales.write_text("txn_id,customer_id,amount,date\nS1,new,63.00,2026-11-06T10:00\n")
    summary = shop.ok("import-csv", str(sales), "--enroll-unknown")
    assert summary["points"] == 63 + 100  # the purchase and the welcome rule
    assert shop.ok("balance", "new")["balance"] == summary["points"]


def test_a_retry_reports_the_balance_the_original_left(shop: Shop) -> None:
    shop.clock("2026-11-20")
    shop.ok("enroll", "C1", "--at", "2026-11-01T10:00")  # 100
    first = shop.ok("earn", "C1", "--amount", "10", "--txn", "R1", "--at", "2026-11-02T10:00")
    spent = shop.ok("redeem", "C1", "--points", "50", "--txn", "V1", "--at", "2026-11-03T10:00")
    shop.ok("earn", "C1", "--amount", "7", "--at", "2026-11-04T10:00")
    assert (first["balance"], spent["balance"]) == (110, 60)
    again = shop.ok("earn", "C1", "--amount", "10", "--txn", "R1")
    assert (again["duplicate"], again["balance"], again["points"]) == (True, 110, 10)
    assert shop.ok("redeem", "C1", "--points", "50", "--txn", "V1")["balance"] == 60
    assert shop.ok("earn", "C1", "--amount", "10", "--txn", "R1", "--dry-run")["balance"] == 110
    assert shop.ok("balance", "C1")["balance"] == 67  # today's is still today's
