"""Tamper evidence: the append-only triggers refuse edits made with plain SQL,
and `loyalty verify` catches the edits made by someone who removes them.

The ledger built by `shop_with_history` has these rows (BASIC_RULES):

    op 1 enroll C1            entry 1  C1 welcome   +100
    op 2 earn C1 20.00        entry 2  C1 base       +20
    op 3 earn C1 30.00 shoes  entry 3  C1 base       +30
                              entry 4  C1 shoes      +60
    op 4 redeem C1 50         entry 5  C1 redeem     -50
    op 5 enroll C2 (ref C1)   entry 6  C2 welcome   +100
                              entry 7  C1 referral  +500
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from .conftest import Shop

ENTRY_COLUMNS = (
    "id, op_id, customer_id, kind, points, amount_cents, occurred_at, recorded_at, "
    "rule, reward, reason, txn, ruleset, detail, hash"
)


@pytest.fixture
def shop_with_history(shop: Shop) -> Shop:
    shop.ok("enroll", "C1")
    shop.ok("earn", "C1", "--amount", "20")
    shop.ok("earn", "C1", "--amount", "30", "--category", "shoes")
    shop.ok("redeem", "C1", "--points", "50")
    shop.ok("enroll", "C2", "--referred-by", "C1")
    assert shop.ok("balance", "C1")["balance"] == 100 + 20 + 30 + 60 - 50 + 500
    return shop


@contextmanager
def raw(db: Path, *, recursive_triggers: bool = False) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection, as someone poking at the file would open it.
    SQLite's default is recursive_triggers OFF."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute(f"PRAGMA recursive_triggers = {'ON' if recursive_triggers else 'OFF'}")
        yield conn


def drop_triggers(conn: sqlite3.Connection) -> dict[str, str]:
    """Remove every trigger, returning their SQL so they can be put back."""
    triggers = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
    for name in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    return triggers


def verify_fails(shop: Shop) -> tuple[dict[str, Any], str]:
    """Run `verify --json` on a broken ledger: exit 1, the report on stdout,
    exactly one `error:` line on stderr. Returns (report, error line)."""
    result = shop.run("verify", "--json")
    assert result.exit_code == 1, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["problems"], doc
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return doc, lines[0]


def entry_points(shop: Shop, entry_id: int) -> int:
    with raw(shop.db) as conn:
        points: int = conn.execute(
            "SELECT points FROM entries WHERE id = ?", (entry_id,)
        ).fetchone()[0]
    return points


# --- a clean ledger ----------------------------------------------------------------


def test_a_clean_ledger_verifies_ok_and_counts_its_entries_operations_and_customers(
    shop_with_history: Shop,
) -> None:
    doc = shop_with_history.ok("verify")
    with raw(shop_with_history.db) as conn:
        heads = [
            conn.execute(f"SELECT hash FROM {table} ORDER BY id DESC LIMIT 1").fetchone()[0]
            for table in ("entries", "operations")
        ]
    assert doc == {
        "ok": True,
        "entries": 7,
        "operations": 5,
        "customers": 2,
        "first_bad_entry": None,
        "entries_head": heads[0],
        "operations_head": heads[1],
        "problems": [],
    }


def test_an_empty_ledger_verifies_with_no_heads(shop: Shop) -> None:
    from loyalty_cli.ledger import Ledger

    Ledger.open(shop.db).close()
    doc = shop.ok("verify")
    assert (doc["ok"], doc["entries"], doc["entries_head"], doc["operations_head"]) == (
        True,
        0,
        None,
        None,
    )


def test_verify_without_a_ledger_file_says_so_and_does_not_create_one(shop: Shop) -> None:
    error = shop.fails(66, "verify")
    assert "no ledger at" in error
    assert not shop.db.exists()


# --- the triggers refuse plain SQL edits ----------------------------------------------


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("UPDATE entries SET points = 10000 WHERE id = 2", "entries are append-only"),
        ("DELETE FROM entries WHERE id = 5", "entries are append-only"),
        ("UPDATE operations SET amount_cents = 999900 WHERE id = 2", "operations are append-only"),
        ("DELETE FROM operations WHERE id = 4", "operations are append-only"),
        ("UPDATE rulesets SET text = 'earn: []'", "rulesets are append-only"),
        ("DELETE FROM rulesets", "rulesets are append-only"),
        ("DELETE FROM customers WHERE id = 'C2'", "customers are never deleted"),
        ("UPDATE customers SET referred_by = NULL WHERE id = 'C2'", "never change"),
    ],
)
def test_plain_sql_updates_and_deletes_are_refused_by_the_append_only_triggers(
    shop_with_history: Shop, statement: str, message: str
) -> None:
    before = shop_with_history.ok("balance", "C1")
    with raw(shop_with_history.db) as conn, pytest.raises(sqlite3.IntegrityError, match=message):
        conn.execute(statement)
    assert shop_with_history.ok("balance", "C1") == before
    assert shop_with_history.ok("verify")["ok"] is True


def test_a_customers_contact_details_may_still_be_corrected(shop_with_history: Shop) -> None:
    # Only identity, enrollment time and referrer are frozen; the rest is not ledger data.
    with raw(shop_with_history.db) as conn:
        conn.execute("UPDATE customers SET email = 'ada@example.com' WHERE id = 'C1'")
    assert shop_with_history.ok("verify")["ok"] is True


def _replace_entry_points(conn: sqlite3.Connection, entry_id: int, points: int) -> None:
    """INSERT OR REPLACE a copy of an entry with other points (and its old hash)."""
    row = conn.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE id = ?", (entry_id,)).fetchone()
    columns = [c.strip() for c in ENTRY_COLUMNS.split(",")]
    changed = [
        points if name == "points" else value for name, value in zip(columns, row, strict=True)
    ]
    placeholders = ", ".join("?" for _ in columns)
    conn.execute(
        f"INSERT OR REPLACE INTO entries ({ENTRY_COLUMNS}) VALUES ({placeholders})", changed
    )


def test_insert_or_replace_reusing_an_entry_id_is_refused_when_recursive_triggers_are_on(
    shop_with_history: Shop,
) -> None:
    # REPLACE deletes the old row first; with recursive_triggers ON (as on every
    # connection the ledger opens) that delete fires entries_no_delete.
    with (
        raw(shop_with_history.db, recursive_triggers=True) as conn,
        pytest.raises(sqlite3.IntegrityError, match="entries are append-only"),
    ):
        _replace_entry_points(conn, 2, 20_000)
    assert entry_points(shop_with_history, 2) == 20
    assert shop_with_history.ok("verify")["ok"] is True


def test_insert_or_replace_with_recursive_triggers_off_slips_past_the_triggers_but_verify_catches_it(
    shop_with_history: Shop,
) -> None:
    # SQLite's default (OFF) does not fire DELETE triggers for REPLACE's implicit
    # delete, so a plain `sqlite3 ledger.db` session can rewrite a row in place.
    # The triggers cannot stop that; the hash chain shows it.
    with raw(shop_with_history.db, recursive_triggers=False) as conn:
        _replace_entry_points(conn, 2, 20_000)
    assert entry_points(shop_with_history, 2) == 20_000
    doc, error = verify_fails(shop_with_history)
    assert doc["first_bad_entry"] == 2
    assert doc["entries"] == 7
    assert error.startswith("error: entry #2 does not match the hash chain")


# --- tampering with the triggers removed -----------------------------------------------


def test_editing_an_entrys_points_after_dropping_the_triggers_fails_verify_naming_the_entry(
    shop_with_history: Shop,
) -> None:
    with raw(shop_with_history.db) as conn:
        drop_triggers(conn)
        conn.execute("UPDATE entries SET points = 5000 WHERE id = 3")
    assert shop_with_history.ok("balance", "C1")["balance"] == 660 - 30 + 5000
    doc, _error = verify_fails(shop_with_history)
    assert doc["first_bad_entry"] == 3
    assert any(p.startswith("entry #3 does not match the hash chain") for p in doc["problems"])
    (missing,) = [p for p in doc["problems"] if p.startswith("the append-only protection")]
    # 7 append-only tables x update/delete, and 2 on customers, named in one problem
    assert missing.count("_no_") + missing.count("keep_identity") == 16
    assert "entries_no_update" in missing
    # The operations chain is intact; the operation's recorded total no longer matches.
    assert not any("operation #" in p and "hash chain" in p for p in doc["problems"])
    assert any(p.startswith("operation #") and " wrote " in p for p in doc["problems"])


def test_the_verify_error_line_names_the_edited_entry_even_when_the_triggers_were_dropped(
    shop_with_history: Shop,
) -> None:
    with raw(shop_with_history.db) as conn:
        drop_triggers(conn)
        conn.execute("UPDATE entries SET points = 5000 WHERE id = 3")
    result = shop_with_history.run("verify", "--json")
    assert result.exit_code == 1, result.output
    assert "entry #3" in result.stderr, result.stderr


def test_editing_an_entry_and_restoring_the_triggers_is_still_caught_by_the_hash_chain(
    shop_with_history: Shop,
) -> None:
    with raw(shop_with_history.db) as conn:
        triggers = drop_triggers(conn)
        conn.execute("UPDATE entries SET points = 0 WHERE id = 5")  # undo the redemption
        for sql in triggers.values():
            conn.execute(sql)
    doc, error = verify_fails(shop_with_history)
    assert doc["first_bad_entry"] == 5
    assert doc["problems"] == [
        "entry #5 does not match the hash chain: it, or the one before it, was changed, "
        "inserted or removed outside loyalty",
        "operation #4 wrote 1 entries worth -50 points, but the ledger holds 1 worth 0: "
        "entries were removed or added",
    ]
    assert error == f"error: {doc['problems'][0]} (+1 more problem: loyalty verify --json)"


def test_deleting_an_entry_in_the_middle_is_detected_at_the_entry_that_follows_it(
    shop_with_history: Shop,
) -> None:
    with raw(shop_with_history.db) as conn:
        triggers = drop_triggers(conn)
        conn.execute("DELETE FROM entries WHERE id = 5")  # the redemption
        for sql in triggers.values():
            conn.execute(sql)
    doc, error = verify_fails(shop_with_history)
    assert doc["entries"] == 6
    assert doc["first_bad_entry"] == 6
    assert error.startswith("error: entry #6 does not match the hash chain")


def test_deleting_the_newest_entry_is_detected(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    shop.ok("earn", "C1", "--amount", "80")
    shop.ok("redeem", "C1", "--points", "150")
    with raw(shop.db) as conn:
        triggers = drop_triggers(conn)
        conn.execute("DELETE FROM entries WHERE id = (SELECT max(id) FROM entries)")
        for sql in triggers.values():
            conn.execute(sql)
    assert shop.ok("balance", "C1")["balance"] == 180  # the 150 points are back
    result = shop.run("verify", "--json")
    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["problems"]
    assert problems[0] == (
        "operation #3 wrote 1 entries worth -150 points, but the ledger holds 0 worth 0: "
        "entries were removed or added"
    )
    # The redemption's draws on the lots now point at an entry that is gone.
    assert "draws row 1 refers to a missing entries row" in problems


def test_editing_an_operation_row_is_detected_by_the_operations_chain(
    shop_with_history: Shop,
) -> None:
    with raw(shop_with_history.db) as conn:
        triggers = drop_triggers(conn)
        conn.execute("UPDATE operations SET amount_cents = 200000 WHERE id = 2")
        for sql in triggers.values():
            conn.execute(sql)
    doc, error = verify_fails(shop_with_history)
    assert doc["problems"] == [
        "operation #2 does not match the hash chain: it, or the one before it, was changed, "
        "inserted or removed outside loyalty"
    ]
    assert doc["first_bad_entry"] is None  # the entries themselves are intact
    assert doc["operations"] == 5
    assert error == f"error: {doc['problems'][0]}"


def test_dropping_the_triggers_alone_fails_verify_and_names_each_missing_trigger(
    shop_with_history: Shop,
) -> None:
    with raw(shop_with_history.db) as conn:
        conn.execute("DROP TRIGGER entries_no_delete")
    doc, error = verify_fails(shop_with_history)
    assert doc["problems"] == [
        "the append-only protection was removed: trigger entries_no_delete missing"
    ]
    assert doc["first_bad_entry"] is None
    assert error == f"error: {doc['problems'][0]}"
