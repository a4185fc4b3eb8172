"""The ledger file itself: created and migrated on open, marked as ours,
append-only in the database, and WAL for concurrent readers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from loyalty_cli.ledger import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, TRIGGERS, Ledger

from .conftest import Shop


def test_opening_a_new_path_creates_a_migrated_wal_ledger(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    Ledger.open(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    triggers = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    assert triggers == TRIGGERS


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    Ledger.open(path).close()
    schema = sqlite3.connect(path).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    Ledger.open(path).close()
    assert (
        sqlite3.connect(path).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
        == schema
    )


def test_an_older_ledger_is_migrated_on_open(tmp_path: Path) -> None:
    # A ledger at schema 0 with our mark (created but never migrated) gets every migration.
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.close()
    with Ledger.open(path) as ledger:
        assert ledger.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_reading_a_missing_ledger_does_not_create_it(tmp_path: Path) -> None:
    from loyalty_cli.errors import InputMissing

    with pytest.raises(InputMissing):
        Ledger.open(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


@pytest.mark.parametrize("table", ["entries", "operations", "rulesets"])
def test_raw_update_and_delete_are_refused_by_the_database(shop: Shop, table: str) -> None:
    shop.ok("enroll", "C1")
    shop.ok("earn", "C1", "--amount", "5")
    conn = sqlite3.connect(shop.db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(f"UPDATE {table} SET rowid = rowid")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(f"DELETE FROM {table}")


def test_customers_cannot_be_deleted_or_renamed(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    conn = sqlite3.connect(shop.db)
    with pytest.raises(sqlite3.IntegrityError, match="never deleted"):
        conn.execute("DELETE FROM customers")
    with pytest.raises(sqlite3.IntegrityError, match="never change"):
        conn.execute("UPDATE customers SET id = 'C2'")


def test_the_ledgers_own_connection_refuses_insert_or_replace(tmp_path: Path, shop: Shop) -> None:
    shop.ok("enroll", "C1")
    with Ledger.open(shop.db) as ledger, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger.conn.execute("INSERT OR REPLACE INTO entries SELECT * FROM entries WHERE id = 1")


def test_a_read_only_database_is_a_clear_error_not_a_traceback(shop: Shop) -> None:
    from loyalty_cli.errors import InputMissing
    from loyalty_cli.operations import AdjustRequest, adjust
    from loyalty_cli.rules import load_rules
    from loyalty_cli.values import parse_utc

    shop.ok("enroll", "C1")
    with Ledger.open(shop.db) as ledger:
        # What a ledger file without write permission looks like to SQLite
        # (root, who runs CI here, cannot be refused by file modes).
        ledger.conn.close()
        ledger.conn = sqlite3.connect(f"file:{shop.db}?mode=ro", uri=True, isolation_level=None)
        request = AdjustRequest("C1", 5, "test")
        with pytest.raises(InputMissing, match="read-only"):
            adjust(ledger, load_rules(shop.rules), request, parse_utc("2026-11-22T10:00:00Z"))


def test_a_savepoint_rolled_back_leaves_no_remembered_read_behind(tmp_path: Path) -> None:
    """Inside a transaction the ledger remembers a rule's total and the rules text
    it stored; a row that fails after writing is rolled back to its savepoint, and
    what it added must be forgotten with it."""
    from datetime import UTC, datetime

    from loyalty_cli.ledger import NewEntry, NewOperation
    from loyalty_cli.rules import parse_rules

    ruleset = parse_rules(
        "program: {name: T, currency: USD, timezone: UTC}\n"
        "earn:\n  - {id: launch, on: purchase, points: 5}\n"
    )
    now = datetime(2026, 11, 20, 9, tzinfo=UTC)

    def award(ledger: Ledger, points: int) -> None:
        ledger.remember_ruleset(ruleset, now)
        ledger.append(
            NewOperation(kind="purchase", customer_id="C1", occurred_at=now, request={}),
            [NewEntry(kind="earn", points=points, rule="launch")],
            now,
        )

    with Ledger.open(tmp_path / "ledger.db") as ledger:
        with ledger.transaction():
            ledger.conn.execute(
                "INSERT INTO customers (id, enrolled_at, recorded_at) VALUES ('C1', ?, ?)",
                ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
            )
            with pytest.raises(RuntimeError), ledger.transaction():
                award(ledger, 7)  # the first row to store the rules text
                assert ledger.rule_total("launch") == 7
                raise RuntimeError("the row fails after writing")
            assert ledger.rule_total("launch") == 0
            award(ledger, 10)
            assert ledger.rule_total("launch") == 10
            award(ledger, 1)
            assert ledger.rule_total("launch") == 11
        stored = ledger.conn.execute("SELECT count(*) FROM rulesets").fetchone()[0]
        assert (ledger.rule_total("launch"), stored) == (11, 1)
