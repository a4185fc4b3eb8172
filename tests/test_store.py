"""The ledger file itself: created at the current schema, older ones migrated on
open (schema 4, the release before the lean store, from a fixture it wrote),
append-only in the database, WAL for concurrent readers; a write's statements
counted; every query a snapshot or a report runs served by an index."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty_cli import operations as ops
from loyalty_cli.engine import awards
from loyalty_cli.engine.book import Book
from loyalty_cli.engine.requests import EarnRequest, EnrollRequest
from loyalty_cli.errors import InputMissing, Refused, TamperDetected
from loyalty_cli.games.model import Play, Tally
from loyalty_cli.rules import load_rules, parse_rules
from loyalty_cli.store import Store, snapshots
from loyalty_cli.store import kept as kept_module
from loyalty_cli.store.kept import Kept
from loyalty_cli.store.migrations import MIGRATIONS
from loyalty_cli.store.schema import APPLICATION_ID, OP_FIELDS, SCHEMA_VERSION, TRIGGERS

from .conftest import EXAMPLE_RULES, Shop

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ledger-v4.db"
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)

# The ledger file itself: its schema, pragmas, triggers and query plans.
BACKENDS = ("sqlite",)


def test_opening_a_new_path_creates_a_current_wal_ledger(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    triggers = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    assert triggers == TRIGGERS


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    Store.open(path).close()
    schema = sqlite3.connect(path).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    Store.open(path).close()
    assert (
        sqlite3.connect(path).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
        == schema
    )


def test_a_marked_but_empty_file_is_created_at_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.close()
    with Store.open(path) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_reading_a_missing_ledger_does_not_create_it(tmp_path: Path) -> None:
    with pytest.raises(InputMissing):
        Store.open(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


@pytest.mark.parametrize("table", ["entries", "operations", "rulesets", "draws"])
def test_raw_update_and_delete_are_refused_by_the_database(shop: Shop, table: str) -> None:
    shop.ok("enroll", "C1")
    shop.ok("earn", "C1", "--amount", "5")
    shop.ok("redeem", "C1", "--points", "5")
    conn = sqlite3.connect(shop.db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(f"UPDATE {table} SET id = id")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(f"DELETE FROM {table}")


def test_customers_cannot_be_deleted_or_renamed(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    conn = sqlite3.connect(shop.db)
    with pytest.raises(sqlite3.IntegrityError, match="never deleted"):
        conn.execute("DELETE FROM customers")
    with pytest.raises(sqlite3.IntegrityError, match="never change"):
        conn.execute("UPDATE customers SET id = 'C2'")


def test_the_ledgers_own_connection_refuses_insert_or_replace(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    with Store.open(shop.db) as store, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("INSERT OR REPLACE INTO entries SELECT * FROM entries WHERE id = 1")


def test_a_read_only_database_is_a_clear_error_not_a_traceback(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    with Store.open(shop.db) as store:
        # What a ledger file without write permission looks like to SQLite
        # (root, who runs CI here, cannot be refused by file modes).
        store.conn.close()
        store.connection.conn = sqlite3.connect(
            f"file:{shop.db}?mode=ro", uri=True, isolation_level=None
        )
        store.conn = store.connection.conn
        request = ops.AdjustRequest("C1", 5, "test")
        with pytest.raises(InputMissing, match="read-only"):
            ops.adjust(store, load_rules(shop.rules), request, NOW)


# --- the engine on a Book with no database --------------------------------------------

RULES = parse_rules(
    "program: {name: T, currency: USD, timezone: Europe/London}\n"
    "earn:\n"
    "  - {id: base, on: purchase, points_per_unit: 1}\n"
    "  - {id: welcome, on: enroll, points: 100, budget: 150}\n"
    "  - {id: big, on: purchase, points: 10, min_amount: 50, cap: {count: 1, per: week}}\n"
)


def test_decisions_run_on_an_in_memory_book_with_no_database() -> None:
    book = Book(RULES, NOW)
    awards.enroll(book, EnrollRequest("C1", at=NOW, salt=b"s"))
    first = awards.earn(book, EarnRequest("C1", "purchase", amount=Decimal("60"), txn="R1"))
    second = awards.earn(book, EarnRequest("C1", "purchase", amount=Decimal("60"), txn="R2"))
    again = awards.earn(book, EarnRequest("C1", "purchase", amount=Decimal("60"), txn="R1"))
    assert [line.rule for line in first.award.lines] == ["base", "big"]
    assert [line.rule for line in second.award.lines] == ["base"]  # capped: once a week
    assert again.duplicate and again.award.points == first.award.points
    assert (first.balance, second.balance) == (170, 230)
    assert [op.kind for op in book.take()] == ["enroll", "purchase", "purchase"]


def test_a_failed_row_leaves_the_book_as_it_was() -> None:
    """An import row that enrolls its customer and then fails must leave no
    enrollment, no ids used, and no budget spent behind."""
    book = Book(RULES, NOW)
    awards.enroll(book, EnrollRequest("C1", at=NOW, salt=b"s"))
    ids, used = (book.next_op, book.next_entry), book.budgets.used("welcome")
    with pytest.raises(Refused), book.row():
        awards.enroll(book, EnrollRequest("C2", at=NOW, salt=b"s"))
        awards.earn(book, EarnRequest("C9", "purchase", amount=Decimal("5")))  # unknown
    assert book.account("C2") is None
    assert (book.next_op, book.next_entry) == ids
    assert book.budgets.used("welcome") == used
    awards.enroll(book, EnrollRequest("C2", at=NOW, salt=b"s"))
    # The budget of 150 runs out on the second welcome, as it would have anyway.
    assert book.budgets.used("welcome") == 150


# --- statements a write sends ---------------------------------------------------------------


@contextmanager
def counted(store: Store) -> Iterator[list[str]]:
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        yield statements
    finally:
        store.conn.set_trace_callback(None)


def test_a_purchase_with_a_txn_runs_at_most_8_statements(tmp_path: Path) -> None:
    ruleset = load_rules(EXAMPLE_RULES)
    with Store.open(tmp_path / "l.db") as store:
        ops.enroll(store, ruleset, EnrollRequest("C1", at=NOW), NOW)
        for n in range(3):  # a customer with some history
            request = EarnRequest("C1", "purchase", amount=Decimal("12.50"), txn=f"R{n}")
            ops.earn(store, ruleset, request, NOW)
        with counted(store) as statements:
            request = EarnRequest(
                "C1", "purchase", amount=Decimal("120.00"), category="shoes", txn="R9"
            )
            ops.earn(store, ruleset, request, NOW)
    assert len(statements) <= 8, statements
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"


def test_enrolling_with_a_referrer_runs_at_most_12_statements(tmp_path: Path) -> None:
    ruleset = load_rules(EXAMPLE_RULES)
    with Store.open(tmp_path / "l.db") as store:
        ops.enroll(store, ruleset, EnrollRequest("ann", at=NOW), NOW)
        with counted(store) as statements:
            ops.enroll(store, ruleset, EnrollRequest("bob", referred_by="ann", at=NOW), NOW)
    assert len(statements) <= 12, statements


def test_an_import_chunk_reads_in_two_statements_whatever_its_size(shop: Shop) -> None:
    from loyalty_cli import importer

    shop.rules.write_text(EXAMPLE_RULES.read_text())
    sales = shop.dir / "sales.csv"
    sales.write_text(
        "txn_id,customer_id,amount,date\n"
        + "".join(f"R{n},C{n % 40},{n % 90 + 1}.00,2026-11-{n % 28 + 1:02d}\n" for n in range(400))
    )
    ruleset = load_rules(shop.rules)
    with Store.open(shop.db) as store, counted(store) as statements:
        source = importer.read_source(str(sales), "utf-8-sig")
        importer.import_sources(
            store, ruleset, [source], importer.Options(), NOW, enroll_unknown=True
        )
    selects = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    # One chunk (400 rows): its context and its accounts; the runs, twice (start, end).
    assert len(selects) <= 2 + 2, selects
    # Rows go in 64 at a time: per table, one statement per 64 rows and one more.
    with Store.open(shop.db) as store:
        rows = [
            store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("customers", "operations", "entries")
        ]
    assert len(inserts) <= 2 + 1 + sum(n // 64 + 1 for n in rows), inserts


def test_an_import_runs_the_garbage_collector_less_often_and_puts_it_back(shop: Shop) -> None:
    """An import raises the collector's thresholds while it runs (its objects
    are freed by reference counting; the collector's passes over what is alive
    were a sixth of its CPU) and leaves them as it found them, failed or not."""
    import gc

    from loyalty_cli import importer

    sales = shop.dir / "sales.csv"
    sales.write_text("txn_id,customer_id,amount,date\nR1,C1,5.00,2026-11-02\n")
    ruleset = load_rules(EXAMPLE_RULES)
    before = gc.get_threshold()
    seen: list[tuple[int, ...]] = []

    def run(on_row: Any) -> None:
        with Store.open(shop.db) as store:
            source = importer.read_source(str(sales), "utf-8-sig")
            importer.import_sources(
                store, ruleset, [source], importer.Options(), NOW, enroll_unknown=True,
                on_row=on_row,
            )  # fmt: skip

    run(lambda: seen.append(gc.get_threshold()))
    assert seen == [importer.COLLECT_EVERY] and importer.COLLECT_EVERY[0] > before[0]
    assert gc.get_threshold() == before

    def fails() -> None:
        raise KeyboardInterrupt  # the owner's Ctrl-C in the middle of a file

    with pytest.raises(KeyboardInterrupt):
        run(fails)
    assert gc.get_threshold() == before


# --- every query uses an index ----------------------------------------------------------------


# What a plan may scan row by row: the customers table (a report has a row for
# each), and the small tables a query makes for itself (CTEs, subqueries, lists).
_MAY_SCAN = (
    *("SCAN c", "SCAN ids", "SCAN asked", "SCAN p", "SCAN scored", "SCAN k", "SCAN newest"),
    "SCAN (subquery",
    "SCAN sqlite_master",  # the schema: is a budgeted rule's index there yet
    "SCAN b",  # the activity report's time buckets (a VALUES list)
)


def _full_scans(lines: list[str]) -> list[str]:
    """Plan lines that read a ledger table row by row without an index."""
    return [
        line
        for line in lines
        if line.startswith("SCAN")
        and "USING" not in line
        and "CONSTANT ROW" not in line
        and "json_each" not in line
        and not line.startswith(_MAY_SCAN)
    ]


def test_snapshot_and_report_queries_use_an_index(shop: Shop) -> None:
    from loyalty_cli.store import queries
    from loyalty_cli.store import reports as sql

    shop.rules.write_text(EXAMPLE_RULES.read_text())
    shop.ok("enroll", "C1")
    with Store.open(shop.db) as store:
        conn = store.conn
        traced: list[str] = []
        conn.set_trace_callback(traced.append)
        ruleset = load_rules(shop.rules)
        snapshots.load(conn, ruleset, NOW, ["C1"], ["R1"])
        queries.history(conn, "C1", 10, None)
        queries.lots(conn, "C1", None)
        queries.points_by_kind(conn, "C1", None)
        queries.points_released(conn, NOW.date(), NOW.date())
        sql.first_activity(conn)
        sql.members(conn, 0, 10**10, 10**10)
        sql.purchasers(conn, 0, 10**10)
        sql.refunds(conn, 0, 10**10)
        sql.points(conn, 0, 10**10)
        sql.overdue(conn, NOW.date())
        sql.overdue_by_customer(conn, NOW.date())
        list(sql.customers(conn, 10**10, NOW.date()))
        sql.rfm_counts(conn, 10**10, [(0, 0)])
        sql.activity(conn, [(0, 10**10)])
        sql.rules(conn, 0, 10**10)
        sql.categories(conn, 0, 10**10)
        queries.items_of(conn, [1, 2])
        queries.sales_of(conn, [("C1", "SKU-1", 10**10)])
        snapshots.standings(conn, ruleset, ["C1"], 10**10)
        snapshots.plays(conn, ruleset, ["C1"], 10**10)
        queries.enrolled_before(conn, 10**10)
        sql.tier_moves(conn, 0, 10**10)
        sql.lots(conn, 10**10, NOW.date())
        conn.set_trace_callback(None)
        checked = 0
        every: list[str] = []
        for statement in traced:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            lines = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement)]
            assert not _full_scans(lines), (statement, lines)
            every += lines
            checked += 1
        assert checked >= 18
        # A customer's lots by the customer, not by every credit of those kinds.
        lots = [t for t in traced if "'transfer', 'merge')" in t and "draws d" in t]
        assert lots
        for statement in lots:
            plan = " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement))
            assert "entries_customer" in plan, (statement, plan)
        # The games read each purchase's category, sku and quantity from the
        # customer index alone (schema 13), not from the table, purchase by purchase.
        details = [t for t in traced if "SELECT 'purchase', o.customer_id" in t and "o.sku" in t]
        assert details
        for statement in details:
            plan = " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement))
            assert "COVERING INDEX operations_customer" in plan, (statement, plan)
        # The budgeted rule of the example (happy-tuesday) is summed on its own index.
        assert any("entries_budget_happy-tuesday" in line for line in every), every


# --- schema 4, the release before: migrated in place, history intact -------------------------


def test_a_schema_4_ledger_is_upgraded_and_keeps_its_history(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    shutil.copy(FIXTURE, db)
    expected = json.loads((FIXTURE.with_suffix(".expected.json")).read_text())
    with Store.open(db) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        report = store.verify(NOW)
        assert report.ok, report.problems
        (note,) = store.conn.execute(
            "SELECT reason FROM operations WHERE kind = 'migrate'"
        ).fetchone()
    # The upgrade's own operation names the heads of the old chains.
    assert json.loads(note)["heads"] == expected["heads"]
    assert (report.entries, report.customers) == (expected["entries"], expected["customers"])
    shop = Shop(tmp_path)
    shutil.copy(FIXTURE.parent.parent.parent / "rules.example.yaml", shop.rules)
    shop.db = db
    for name, doc in expected["commands"].items():
        args = name.split()
        assert as_then(shop.ok(*args), name, expected) == in_todays_names(name, doc), name


def as_then(doc: dict[str, Any], command: str, expected: dict[str, Any]) -> dict[str, Any]:
    """Today's document less what was added since the previous release, checked on
    its own: report rules' points by category (issue 12) add up to what the
    purchase rules gave (the rules with revenue) and to the refunds in history."""
    if command.startswith("report rules"):
        doc = dict(doc)
        categories = doc.pop("categories")
        by_purchases = sum(r["points"] for r in doc["rules"] if r["revenue"] != "0.00")
        assert sum(c["points_earned"] for c in categories) == by_purchases
        refunds = sum(
            e["points"]
            for key, history in expected["commands"].items()
            if key.startswith("history")
            for e in history["entries"]
            if e["kind"] == "refund"
        )
        assert sum(c["points_refunded"] for c in categories) == refunds
        assert {c["category"] for c in categories} >= {"shoes", "bags"}
    return doc


def in_todays_names(command: str, doc: dict[str, Any]) -> dict[str, Any]:
    """What the previous release printed, with the JSON names CHANGELOG.md lists as
    changed since (issue 18) put as they are now."""
    doc = dict(doc)
    if command.startswith("balance"):
        for name in ("earned", "redeemed", "adjusted", "expired", "refunded"):
            doc[f"points_{name}"] = doc.pop(name)
        doc["points_transferred"] = 0  # issue 15: transfers between members
    elif command.startswith("history"):
        doc["timezone"] = "Europe/London"
        doc["receipts"] = []  # issue 12: no receipt of several lines before it
        doc["entries"] = [
            {"entry": e.pop("id"), **e, "store": None} for e in map(dict, doc["entries"])
        ]
    elif command.startswith("tier"):
        spend = doc["metric"] == "spend"
        for name in ("qualifying", "to_next", "to_keep"):
            value = doc.pop(name)
            doc[f"{name}_spend"] = value if spend else None
            doc[f"{name}_points"] = None if spend else value
    elif command.startswith("report customers"):
        doc["rows"] = doc.pop("customers")
    elif command.startswith("report tiers"):
        doc["members"] = doc.pop("customers")
        doc["movements"] = [
            {
                "from_tier": m["from"],
                "to_tier": m["to"],
                "changes": m["changes"],
                "customers": m["customers"],
            }
            for m in doc["movements"]
        ]
    elif command.startswith("report segments") and "members" in doc:
        doc["rows"] = doc.pop("members")
    return doc


def _indexes(conn: sqlite3.Connection) -> set[str]:
    return {
        sql
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND name NOT LIKE 'entries_budget_%'"
        )
    }


def test_a_schema_5_ledger_gets_its_draws_expiries_and_keeps_its_history(tmp_path: Path) -> None:
    """Schema 5 is schema 6 without the copy of each lot's expiry on its draws,
    its index, and the points in the lots index: made here from the upgraded
    fixture by taking those back, then upgraded again."""
    expected = json.loads((FIXTURE.with_suffix(".expected.json")).read_text())
    db = tmp_path / "v5.db"
    shutil.copy(FIXTURE, db)
    with Store.open(db) as store:
        current = _indexes(store.conn)
        draws = store.conn.execute("SELECT * FROM draws ORDER BY id").fetchall()
        heads = store.verify(NOW).operations_head
    assert any(draw[-1] is not None for draw in draws), "the fixture draws on expiring lots"
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("DROP INDEX draws_expiry")
        conn.execute("ALTER TABLE draws DROP COLUMN expires_on")
        conn.execute("DROP INDEX entries_lots")  # schema 5's, without the points
        conn.execute("CREATE INDEX entries_lots ON entries(expires_on) WHERE earned_on IS NOT NULL")
        conn.execute("PRAGMA user_version = 5")
    with Store.open(db) as store:
        conn = store.conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT * FROM draws ORDER BY id").fetchall() == draws
        assert _indexes(conn) == current
        report = store.verify(NOW)
        assert report.ok, report.problems
        assert report.operations_head == heads
        # the copy is written once, by the upgrade: draws stay append-only
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE draws SET expires_on = 0")
    shop = Shop(tmp_path)
    shutil.copy(FIXTURE.parent.parent.parent / "rules.example.yaml", shop.rules)
    shop.db = db
    for name, doc in expected["commands"].items():
        assert as_then(shop.ok(*name.split()), name, expected) == in_todays_names(name, doc), name


def test_a_schema_7_ledger_gets_the_writer_column_and_keeps_its_chain(tmp_path: Path) -> None:
    """Schema 7 is schema 8 without operations.writer (the hash chain an
    operation is on): made here from the upgraded fixture by dropping it."""
    db = tmp_path / "v6.db"
    shutil.copy(FIXTURE, db)
    with Store.open(db) as store:
        before = store.verify(NOW)
        operations = store.conn.execute(f"SELECT {OP_FIELDS}, hash FROM operations").fetchall()
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("ALTER TABLE operations DROP COLUMN writer")
        conn.execute("PRAGMA user_version = 7")
    with Store.open(db) as store:
        conn = store.conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute(f"SELECT {OP_FIELDS}, hash FROM operations").fetchall() == operations
        assert (
            conn.execute("SELECT count(*) FROM operations WHERE writer IS NOT NULL").fetchone()[0]
            == 0
        )
        report = store.verify(NOW)
        assert report.ok, report.problems
        assert report.operations_head == before.operations_head
        assert report.chains == {None: (len(operations), before.operations_head)}


def test_a_fresh_ledger_and_an_upgraded_one_have_the_same_indexes(tmp_path: Path) -> None:
    shutil.copy(FIXTURE, tmp_path / "old.db")
    with Store.open(tmp_path / "old.db") as old, Store.open(tmp_path / "new.db") as new:
        assert _indexes(old.conn) == _indexes(new.conn)


def test_a_schema_4_ledger_that_fails_verify_is_not_upgraded(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    shutil.copy(FIXTURE, db)
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("UPDATE entries SET points = 9999 WHERE id = 3")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(TamperDetected, match="fails verify, so it was not upgraded"):
        Store.open(db)
    assert db.read_bytes() == before
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == 4


def test_kept_accounts_are_bounded_by_what_they_hold_and_dropped_when_another_wrote() -> None:
    """An import keeps accounts between chunks up to a budget of lots, tier inputs
    and uses, the least recently used going first; a tip it did not write drops
    them all (another process wrote, so they may be stale)."""
    from loyalty_cli.account import Account, Profile
    from loyalty_cli.lots import Lot

    day = datetime(2026, 11, 2, tzinfo=UTC)

    def account(cid: str, lots: int) -> Account:
        held = tuple(Lot(n, day.date(), day.date(), None, 1) for n in range(lots))
        return Account(Profile(cid, day), lots=held, net=lots)

    kept = Kept(budget=10)
    tip = snapshots.Tip(7, b"h", 0, 0, None)
    assert not kept.valid(tip, "v1")  # nothing kept yet
    kept.keep(tip, "v1", {"A": account("A", 3), "B": account("B", 3)})  # 4 + 4
    assert kept.valid(tip, "v1") and list(kept.accounts) == ["A", "B"] and kept.held == 8
    kept.keep(tip, "v1", {"A": account("A", 4)})  # A again, bigger: now the most recent
    assert list(kept.accounts) == ["B", "A"] and kept.held == 9
    kept.keep(tip, "v1", {"C": account("C", 1)})  # 11 > 10: B, the least recent, goes
    assert list(kept.accounts) == ["A", "C"] and kept.held == 7
    assert not kept.valid(snapshots.Tip(8, b"x", 0, 0, None), "v1")  # someone else wrote
    assert not kept.accounts and kept.held == 0
    kept.keep(tip, "v1", {"A": account("A", 1)})
    assert not kept.valid(tip, "v2")  # other rules: decisions made under v1 do not carry


@given(
    memos=st.lists(
        st.dictionaries(
            st.sampled_from(["card", "meals", "weekly", "month-challenge"]),
            st.builds(
                Tally,
                st.integers(0, 2**40),
                st.integers(0, 800_000),
                st.integers(0, 50),
                st.integers(0, 9),
                st.integers(0, 60),
                st.integers(0, 3),
                st.lists(st.integers(0, 2**40), max_size=3).map(tuple),
            ),
            min_size=1,
        ),
        min_size=1,
        max_size=6,
    ),
    bound=st.integers(1, 8),
)
def test_kept_tallies_come_back_exactly_for_the_customers_kept_and_the_newest(
    memos: list[dict[str, Tally]], bound: int
) -> None:
    """An account let go leaves its games' tallies behind, packed, and gets
    them back, the same, when it is read again; past the bound on customers the
    older half goes (those then count their history again, so still exactly)."""
    from loyalty_cli.account import Account, Profile

    day = datetime(2026, 11, 2, tzinfo=UTC)
    tip = snapshots.Tip(7, b"h", 0, 0, None)
    kept = Kept(budget=0)  # every account goes at once
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kept_module, "TALLIES", bound)
        for n, memo in enumerate(memos):
            account = Account(Profile(f"c{n}", day), play=Play(memo=dict(memo)))
            kept.valid(tip, "v1")
            kept.keep(tip, "v1", {f"c{n}": account})
    assert not kept.accounts

    def read_again() -> dict[str, Account]:
        again = {f"c{n}": Account(Profile(f"c{n}", day), play=Play()) for n in range(len(memos))}
        kept.restore(again)
        return again

    again = read_again()
    back = {cid: account.play.memo for cid, account in again.items() if account.play.memo}  # type: ignore[union-attr]
    assert len(back) <= bound
    for n, memo in enumerate(memos):
        assert back.get(f"c{n}", memo) == memo
    # The newest customers' tallies stay, whatever the bound.
    assert back[f"c{len(memos) - 1}"] == memos[-1]
    # Given back once: the account holds them now.
    assert not any(account.play.memo for account in read_again().values())  # type: ignore[union-attr]
    # Another writer wrote: whatever was kept is dropped.
    kept.keep(tip, "v1", {"c0": Account(Profile("c0", day), play=Play(memo=dict(memos[0])))})
    assert not kept.valid(snapshots.Tip(8, b"x", 0, 0, None), "v1")
    assert not any(account.play.memo for account in read_again().values())  # type: ignore[union-attr]


def test_kept_tallies_stay_for_every_customer_under_the_bound_however_often_they_come_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A long import takes each customer's tallies and puts them back again and
    again, regulars far more often than an occasional customer: as long as no
    more customers than the bound are kept, none is dropped, however many times
    the others came and went in between (the bound counts customers)."""
    from loyalty_cli.account import Account, Profile

    monkeypatch.setattr(kept_module, "TALLIES", 3)
    day = datetime(2026, 11, 2, tzinfo=UTC)
    tip = snapshots.Tip(7, b"h", 0, 0, None)
    kept = Kept(budget=0)  # every account goes at once
    left: dict[str, Tally] = {}  # each customer's tally as it went
    visits = ["rare"] + ["regular", "other"] * 6 + ["rare", "other", "rare"]
    for n, cid in enumerate(visits):
        kept.valid(tip, "v1")
        account = Account(Profile(cid, day), play=Play())
        kept.restore({cid: account})
        assert account.play is not None
        assert account.play.memo == ({"card": left[cid]} if cid in left else {})
        account.play.memo["card"] = left[cid] = Tally(n)
        kept.keep(tip, "v1", {cid: account})
    assert kept.tallies.count == 3


CARD_RULES = """\
program: {name: Card Shop, currency: USD, timezone: UTC}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
rewards:
  - {id: coffee, name: Free coffee, cost: 100}
badges:
  - {id: regular, name: Regular}
games:
  - {id: card, stamps: 2, give: {points: 10, reward: coffee, badge: regular}}
"""


def _card_ledger(tmp_path: Path) -> tuple[Path, Any]:
    """A ledger whose customer completed a card (a points line, a reward line and
    a badge line for game:card#1)."""
    db = tmp_path / "games.db"
    ruleset = parse_rules(CARD_RULES)
    with Store.open(db) as store:
        ops.enroll(store, ruleset, EnrollRequest("C1", at=datetime(2026, 11, 1, tzinfo=UTC)), NOW)
        for n in range(2):
            request = EarnRequest(
                "C1", "purchase", amount=Decimal("3.00"), txn=f"T{n}",
                at=datetime(2026, 11, 2 + n, tzinfo=UTC),
            )  # fmt: skip
            ops.earn(store, ruleset, request, NOW)
    return db, ruleset


def _game_line(conn: sqlite3.Connection, kind: str) -> tuple[Any, ...]:
    row: tuple[Any, ...] = conn.execute(
        "SELECT * FROM entries WHERE rule = 'game:card#1' AND kind = ?", (kind,)
    ).fetchone()
    return row


def _again(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    """The same line once more, under a new id, as a wrong engine would write it."""
    top = conn.execute("SELECT max(id) FROM entries").fetchone()[0]
    marks = ", ".join("?" * len(row))
    conn.execute(f"INSERT INTO entries VALUES ({marks})", (top + 1, *row[1:]))


@pytest.mark.parametrize("kind", ["earn", "gift", "badge"])
def test_the_ledger_refuses_a_game_round_paid_twice(tmp_path: Path, kind: str) -> None:
    db, _ = _card_ledger(tmp_path)
    with Store.open(db) as store:
        row = _game_line(store.conn, kind)
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            _again(store.conn, row)
        # Another round, or another customer's same round, is a different award.
        assert store.conn.execute("SELECT count(*) FROM entries").fetchone()[0] > 0


def test_a_schema_10_ledger_gets_the_game_rounds_index_and_keeps_its_chain(
    tmp_path: Path,
) -> None:
    db, ruleset = _card_ledger(tmp_path)
    with Store.open(db) as store:
        before = store.verify(NOW)
        current = _indexes(store.conn)
        entries = store.conn.execute("SELECT * FROM entries ORDER BY id").fetchall()
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("DROP INDEX entries_game_rounds")
        conn.execute("PRAGMA user_version = 10")
    with Store.open(db) as store:
        conn = store.conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert _indexes(conn) == current
        assert conn.execute("SELECT * FROM entries ORDER BY id").fetchall() == entries
        report = store.verify(NOW)
        assert report.ok, report.problems
        assert report.operations_head == before.operations_head
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            _again(conn, _game_line(conn, "badge"))
        # And the engine goes on paying the next round, once.
        for n in (2, 3):
            request = EarnRequest(
                "C1", "purchase", amount=Decimal("3.00"), txn=f"T{n}",
                at=datetime(2026, 11, 2 + n, tzinfo=UTC),
            )  # fmt: skip
            ops.earn(store, ruleset, request, NOW)
        rules = [r for (r,) in conn.execute("SELECT rule FROM entries WHERE kind = 'earn'")]
        assert rules.count("game:card#2") == 1


def test_a_schema_10_ledger_paying_a_round_twice_is_not_upgraded(tmp_path: Path) -> None:
    db, _ = _card_ledger(tmp_path)
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("DROP INDEX entries_game_rounds")
        _again(conn, _game_line(conn, "gift"))
        conn.execute("PRAGMA user_version = 10")
    before = db.read_bytes()
    with pytest.raises(TamperDetected, match=r"game round game:card#1 .gift coffee. 2 times"):
        Store.open(db)
    assert db.read_bytes() == before
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == 10


def test_a_schema_12_ledger_gets_the_customer_index_that_covers_purchases(shop: Shop) -> None:
    """Schema 12 is schema 13 with `operations_customer` on four columns, not
    seven; m013 makes it again, and nothing hashed changes."""
    shop.rules.write_text(EXAMPLE_RULES.read_text())
    shop.ok("enroll", "C1")
    sale = ["earn", "C1", "--amount", "12.00", "--category", "coffee", "--txn", "S1"]
    first = shop.ok(*sale)
    head = shop.ok("verify")["operations_head"]
    old = (
        "CREATE INDEX operations_customer ON operations(customer_id, kind, occurred, amount_cents)"
    )
    with closing(sqlite3.connect(shop.db, isolation_level=None)) as conn:
        conn.execute("DROP INDEX operations_customer")
        conn.execute(old)
        conn.execute("PRAGMA user_version = 12")
    assert shop.ok(*sale)["points"] == first["points"]  # the retry opens the ledger: m013 runs
    with closing(sqlite3.connect(shop.db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        (sql,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'operations_customer'"
        ).fetchone()
    assert sql.endswith("amount_cents, category, sku, quantity)"), sql
    report = shop.ok("verify")
    assert (report["ok"], report["operations_head"]) == (True, head)


LINE_RULES = """\
program: {name: T, timezone: UTC}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: sku-x, on: purchase, when: {sku: SKU-X}, multiply: 3}
  - {id: first, on: purchase, when: {purchases: 0}, points: 7}
"""


def test_a_schema_11_ledgers_receipts_upgrade_keep_their_chain_and_new_ones_keep_their_split(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema 11 is schema 12 without items.earned_by (each line's points by
    rule, hashed when present): a receipt as schema 11 wrote it (no split,
    hashed without one), then the column dropped; m012_item_rules adds it."""
    shop.write_rules(LINE_RULES)
    shop.clock("2026-11-20")
    shop.ok("enroll", "C1", "--at", "2026-11-01")
    unsplit = awards.receipt_items
    monkeypatch.setattr(
        awards,
        "receipt_items",
        lambda award: tuple(replace(i, earned_by=None) for i in unsplit(award)),
    )
    old = ["--line", "shoes:59.90", "--line", "/SKU-X:2x4.50", "--txn", "OLD", "--at", "2026-11-19"]
    first = shop.ok("earn", "C1", *old)
    monkeypatch.undo()
    head = shop.ok("verify")["operations_head"]
    with closing(sqlite3.connect(shop.db, isolation_level=None)) as conn:
        conn.execute("ALTER TABLE items DROP COLUMN earned_by")
        conn.execute("PRAGMA user_version = 11")
    again = shop.ok("earn", "C1", *old)  # the retry opens the ledger: m012 runs
    with closing(sqlite3.connect(shop.db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT earned_by FROM items").fetchall() == [(None,), (None,)]
    report = shop.ok("verify")
    assert (report["ok"], report["operations_head"]) == (True, head)
    # written before the split was kept: each rule's total and each line's points
    assert (again["points"], [i["points"] for i in again["items"]]) == (first["points"], [59, 27])
    assert again["lines"][0]["detail"] == "over the receipt's 2 lines"
    # the old receipt's lines return as they did; new receipts keep their split
    back = shop.ok("refund", "OLD", "--line", "SKU-X:1", "--at", "2026-11-19T13:00")
    assert back["items"][0]["points"] == -13
    new = ["--line", "shoes:59.90", "--line", "/SKU-X:2x4.50", "--txn", "NEW", "--at", "2026-11-19"]
    made = shop.ok("earn", "C1", *new)
    assert shop.ok("earn", "C1", *new)["items"] == made["items"]
    assert made["items"][1]["lines"] != []
    assert shop.ok("verify")["ok"] is True
