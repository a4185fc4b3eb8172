"""Tamper evidence: the append-only triggers refuse edits made with plain SQL,
and `loyalty verify` catches the edits made by someone who removes them, of
every kind of row: operations, entries, lots (a credit entry's dates), draws,
profiles, rules texts and runs.

The ledger built by `shop_with_history` has these rows (BASIC_RULES):

    op 1 enroll C1            entry 1  C1 welcome   +100
    op 2 earn C1 20.00        entry 2  C1 base       +20
    op 3 earn C1 30.00 shoes  entry 3  C1 base       +30
                              entry 4  C1 shoes      +60
    op 4 redeem C1 50         entry 5  C1 redeem     -50  (draw 1: 50 from lot 1)
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

from loyalty_cli.store.chain import op_hash
from loyalty_cli.store.schema import DRAW_FIELDS, ENTRY_FIELDS, OP_FIELDS

from .conftest import Shop

CHANGED = "was changed, inserted or removed outside loyalty"

# The ledger file's tampering: the PostgreSQL ledger's (a till role's edits, the
# triggers, per-till chains) is tests/test_postgres.py's.
BACKENDS = ("sqlite",)


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


@contextmanager
def behind_loyaltys_back(db: Path) -> Iterator[sqlite3.Connection]:
    """Drop the triggers, let the caller edit, and put the triggers back."""
    with raw(db) as conn:
        triggers = drop_triggers(conn)
        yield conn
        for sql in triggers.values():
            conn.execute(sql)


def rechain(conn: sqlite3.Connection) -> None:
    """Recompute every operation's hash, as a forger who knows the format would."""
    versions = {rid: bytes(v).hex() for rid, v in conn.execute("SELECT id, version FROM rulesets")}
    previous, after = b"", 0
    for row in conn.execute(f"SELECT {OP_FIELDS} FROM operations ORDER BY id").fetchall():
        last = row[6]
        entries = conn.execute(
            f"SELECT {ENTRY_FIELDS} FROM entries WHERE id > ? AND id <= ? ORDER BY id",
            (after, last),
        ).fetchall()
        draws = conn.execute(
            f"SELECT {DRAW_FIELDS} FROM draws WHERE entry_id > ? AND entry_id <= ? ORDER BY id",
            (after, last),
        ).fetchall()
        hashed = (*row[:5], None if row[5] is None else versions[row[5]], *row[6:])
        previous = op_hash(previous, hashed, entries, draws)
        conn.execute("UPDATE operations SET hash = ? WHERE id = ?", (previous, row[0]))
        after = last


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


def bad_operation(op_id: int, entries: str = "") -> str:
    named = f" (entries {entries})" if entries else ""
    return (
        f"operation #{op_id}{named} does not match the hash chain: it, one of its entries, "
        f"lots or draws, or the operation before it {CHANGED}"
    )


# --- a clean ledger ----------------------------------------------------------------


def test_a_clean_ledger_verifies_ok_and_counts_its_entries_operations_and_customers(
    shop_with_history: Shop,
) -> None:
    doc = shop_with_history.ok("verify")
    with raw(shop_with_history.db) as conn:
        head = bytes(
            conn.execute("SELECT hash FROM operations ORDER BY id DESC LIMIT 1").fetchone()[0]
        ).hex()
    assert doc == {
        "ok": True,
        "entry_count": 7,
        "operation_count": 5,
        "members": 2,
        "first_bad_entry": None,
        "entries_head": head,  # the newest entry is in the newest operation
        "operations_head": head,
        # a file's one chain
        "chains": [{"writer": None, "operation_count": 5, "head": head}],
        "problems": [],
    }


def test_an_empty_ledger_verifies_with_no_heads(shop: Shop) -> None:
    from loyalty_cli.store import Store

    Store.open(shop.db).close()
    doc = shop.ok("verify")
    assert (doc["ok"], doc["entry_count"], doc["entries_head"], doc["operations_head"]) == (
        True,
        0,
        None,
        None,
    )


def test_verify_without_a_ledger_file_says_so_and_does_not_create_one(shop: Shop) -> None:
    error = shop.fails(66, "verify")
    assert "no ledger at" in error
    assert not shop.db.exists()


def test_verify_remembers_the_head_beside_the_ledger(shop_with_history: Shop) -> None:
    doc = shop_with_history.ok("verify")
    heads = Path(f"{shop_with_history.db}.heads").read_text().splitlines()
    assert json.loads(heads[-1])["hash"] == doc["operations_head"]
    assert json.loads(heads[-1])["operation"] == 5


# --- the triggers refuse plain SQL edits ----------------------------------------------


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("UPDATE entries SET points = 10000 WHERE id = 2", "entries are append-only"),
        ("DELETE FROM entries WHERE id = 5", "entries are append-only"),
        ("UPDATE operations SET amount_cents = 999900 WHERE id = 2", "operations are append-only"),
        ("DELETE FROM operations WHERE id = 4", "operations are append-only"),
        ("UPDATE draws SET points = 1", "draws are append-only"),
        ("UPDATE rulesets SET text = 'earn: []'", "rulesets are append-only"),
        ("DELETE FROM rulesets", "rulesets are append-only"),
        ("DELETE FROM draws", "draws are append-only"),
        ("DELETE FROM customers WHERE id = 'C2'", "customers are never deleted"),
        ("UPDATE customers SET referred_by = NULL WHERE id = 'C2'", "never change"),
        ("UPDATE customers SET salt = x'00' WHERE id = 'C2'", "never change"),
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


def _replace_entry_points(conn: sqlite3.Connection, entry_id: int, points: int) -> None:
    """INSERT OR REPLACE a copy of an entry with other points."""
    row = conn.execute(f"SELECT {ENTRY_FIELDS} FROM entries WHERE id = ?", (entry_id,)).fetchone()
    columns = [c.strip() for c in ENTRY_FIELDS.split(",")]
    changed = [
        points if name == "points" else value for name, value in zip(columns, row, strict=True)
    ]
    placeholders = ", ".join("?" for _ in columns)
    conn.execute(
        f"INSERT OR REPLACE INTO entries ({ENTRY_FIELDS}) VALUES ({placeholders})", changed
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
    assert doc["entry_count"] == 7
    assert error == f"error: {bad_operation(2, '#2')}"


# --- tampering with the triggers removed -----------------------------------------------


def test_editing_an_entrys_points_after_dropping_the_triggers_fails_verify_naming_it(
    shop_with_history: Shop,
) -> None:
    with raw(shop_with_history.db) as conn:
        drop_triggers(conn)
        conn.execute("UPDATE entries SET points = 5000 WHERE id = 3")
    assert shop_with_history.ok("balance", "C1")["balance"] == 660 - 30 + 5000
    doc, error = verify_fails(shop_with_history)
    assert doc["first_bad_entry"] == 3
    assert doc["problems"][0] == bad_operation(3, "#3-#4")
    assert "entries #3-#4" in error
    (missing,) = [p for p in doc["problems"] if p.startswith("the append-only protection")]
    # 9 append-only tables x update/delete, and 2 on customers, named in one problem
    assert missing.count("_no_") + missing.count("keep_identity") == 20


def test_a_draw_whose_copy_of_its_lots_expiry_was_edited_fails_verify(
    shop_with_history: Shop,
) -> None:
    # The copy is not hashed (the lot's expiry is): verify holds the two equal.
    with behind_loyaltys_back(shop_with_history.db) as conn:
        (draw_id,) = conn.execute("SELECT MIN(id) FROM draws").fetchone()
        conn.execute("UPDATE draws SET expires_on = 1 WHERE id = ?", (draw_id,))
    doc, _ = verify_fails(shop_with_history)
    assert any(
        p.startswith(f"draw #{draw_id} does not carry the expiry day of its lot")
        for p in doc["problems"]
    ), doc["problems"]


def test_editing_an_entry_and_restoring_the_triggers_is_still_caught(
    shop_with_history: Shop,
) -> None:
    with behind_loyaltys_back(shop_with_history.db) as conn:
        conn.execute("UPDATE entries SET points = 0 WHERE id = 5")  # undo the redemption
    doc, error = verify_fails(shop_with_history)
    assert doc["first_bad_entry"] == 5
    assert doc["problems"] == [
        bad_operation(4, "#5"),
        "entry #5 takes 0 points but draws 50 from lots",
    ]
    assert error == f"error: {doc['problems'][0]} (+1 more problem: loyalty verify --json)"


def test_deleting_an_entry_in_the_middle_is_detected_at_its_operation(
    shop_with_history: Shop,
) -> None:
    with behind_loyaltys_back(shop_with_history.db) as conn:
        conn.execute("DELETE FROM entries WHERE id = 5")  # the redemption
    doc, _ = verify_fails(shop_with_history)
    assert doc["entry_count"] == 6
    assert doc["problems"][0] == bad_operation(4)
    assert "draws row 1 refers to a missing entries row" in doc["problems"]


def test_deleting_the_newest_entry_is_detected(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    shop.ok("earn", "C1", "--amount", "80")
    shop.ok("redeem", "C1", "--points", "150")
    with behind_loyaltys_back(shop.db) as conn:
        conn.execute("DELETE FROM entries WHERE id = (SELECT max(id) FROM entries)")
    assert shop.ok("balance", "C1")["balance"] == 180  # the 150 points are back
    doc, _ = verify_fails(shop)
    assert doc["problems"][0] == bad_operation(3)
    assert "draws row 1 refers to a missing entries row" in doc["problems"]


def test_editing_an_operation_row_is_detected_by_the_chain(shop_with_history: Shop) -> None:
    with behind_loyaltys_back(shop_with_history.db) as conn:
        conn.execute("UPDATE operations SET amount_cents = 200000 WHERE id = 2")
    doc, error = verify_fails(shop_with_history)
    assert doc["problems"] == [bad_operation(2, "#2")]
    assert doc["operation_count"] == 5
    assert error == f"error: {doc['problems'][0]}"


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE draws SET points = 40 WHERE id = 1",  # a debit takes less from its lot
        "UPDATE draws SET lot_id = 2 WHERE id = 1",  # ... or from another lot
        "UPDATE entries SET expires_on = 1 WHERE id = 2",  # a lot's expiry moved
        "UPDATE entries SET available_on = 99999 WHERE id = 6",  # a lot held back
        "UPDATE entries SET customer_id = 'C2' WHERE id = 7",  # points moved to another customer
        "UPDATE entries SET rule = 'base' WHERE id = 4",  # a line credited to another rule
        "UPDATE operations SET txn = 'R-9' WHERE id = 2",  # a receipt renamed
        "UPDATE operations SET ruleset = NULL WHERE id = 3",  # the rules version unstamped
    ],
)
def test_every_kind_of_row_is_covered_by_the_chain(shop_with_history: Shop, edit: str) -> None:
    with behind_loyaltys_back(shop_with_history.db) as conn:
        conn.execute(edit)
    doc, _ = verify_fails(shop_with_history)
    assert doc["problems"][0].startswith("operation #")
    assert "does not match the hash chain" in doc["problems"][0]


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


# --- profiles, rules texts and runs (issue 10, item 5) ----------------------------------


@pytest.mark.parametrize(
    ("edit", "customer"),
    [
        ("UPDATE customers SET birthday = '1990-12-01' WHERE id = 'C1'", "C1"),
        ("UPDATE customers SET email = 'eve@example.com' WHERE id = 'C2'", "C2"),
        ("UPDATE customers SET name = 'Mallory' WHERE id = 'C1'", "C1"),
        ("UPDATE customers SET referred_by = NULL WHERE id = 'C2'", "C2"),
        ("UPDATE customers SET birthday_set = 0 WHERE id = 'C1'", "C1"),
    ],
)
def test_a_profile_edited_behind_loyaltys_back_fails_verify(
    shop_with_history: Shop, edit: str, customer: str
) -> None:
    with behind_loyaltys_back(shop_with_history.db) as conn:
        conn.execute(edit)
    doc, _ = verify_fails(shop_with_history)
    assert doc["problems"] == [
        f"customer {customer!r}'s profile is not the one loyalty last recorded: it {CHANGED}"
    ]


def test_a_profile_changed_through_loyalty_verifies(shop_with_history: Shop) -> None:
    shop_with_history.ok("update", "C1", "--email", "ada@example.com", "--birthday", "1990-12-01")
    assert shop_with_history.ok("verify")["ok"] is True


def test_a_customer_added_behind_loyaltys_back_fails_verify(shop_with_history: Shop) -> None:
    with raw(shop_with_history.db) as conn:
        conn.execute(
            "INSERT INTO customers (id, enrolled, recorded, salt) VALUES ('M1', 0, 0, x'00')"
        )
    doc, _ = verify_fails(shop_with_history)
    assert doc["problems"] == [
        f"customer 'M1' has no enrollment in the chain: the customer {CHANGED}"
    ]


def test_an_edited_rules_text_fails_verify(shop_with_history: Shop) -> None:
    with behind_loyaltys_back(shop_with_history.db) as conn:
        conn.execute(
            "UPDATE rulesets SET text = replace(text, 'points_per_unit: 2', 'points_per_unit: 9')"
        )
    doc, _ = verify_fails(shop_with_history)
    assert doc["problems"][0].startswith("rules text #1 is not the text its version")


def test_an_edited_run_fails_verify(shop_with_history: Shop) -> None:
    shop_with_history.ok("nightly")
    with behind_loyaltys_back(shop_with_history.db) as conn:
        conn.execute("UPDATE runs SET as_of = '2099-01-01'")
    doc, _ = verify_fails(shop_with_history)
    assert doc["problems"][0].startswith("run #1 does not match the runs' hash chain")


# --- what only a remembered head can show --------------------------------------------------


def test_a_forged_operation_with_every_hash_recomputed_is_caught_by_the_remembered_head(
    shop_with_history: Shop,
) -> None:
    shop_with_history.ok("verify")  # remembers operation #5's hash
    with behind_loyaltys_back(shop_with_history.db) as conn:
        # Give C1 an extra 1,000 points in operation #2's entry, and rewrite every
        # hash from there on so that the chain itself is consistent again.
        conn.execute("UPDATE entries SET points = 1020 WHERE id = 2")
        rechain(conn)
    doc, _ = verify_fails(shop_with_history)
    assert doc["problems"] == [
        doc["problems"][0]  # the one problem: the remembered head no longer matches
    ]
    assert doc["problems"][0].startswith("operation #5, verified on ")
    assert (
        "is not the same: the newest rows were cut off or the chain rewritten"
        in (doc["problems"][0])
    )


def test_the_newest_operation_cut_off_is_caught_by_the_remembered_head(
    shop_with_history: Shop,
) -> None:
    shop_with_history.ok("verify")
    with behind_loyaltys_back(shop_with_history.db) as conn:
        conn.execute("DELETE FROM entries WHERE op_id = 5")
        conn.execute("DELETE FROM operations WHERE id = 5")
        conn.execute("DELETE FROM customers WHERE id = 'C2'")
    doc, _ = verify_fails(shop_with_history)
    assert doc["problems"][0].startswith("operation #5, verified on ")
    assert " is gone:" in doc["problems"][0]


def test_without_a_remembered_head_a_cut_off_tail_is_not_detected(shop_with_history: Shop) -> None:
    """The limit, stated as a test: what verify cannot prove on its own."""
    with behind_loyaltys_back(shop_with_history.db) as conn:
        conn.execute("DELETE FROM entries WHERE op_id = 5")
        conn.execute("DELETE FROM operations WHERE id = 5")
        conn.execute("DELETE FROM customers WHERE id = 'C2'")
    assert shop_with_history.ok("verify")["ok"] is True
