"""The ledger's tables, and the migrations that bring an older file to them.

What each table and index is for (the README's design notes repeat it):
- `operations`: the facts, one row per thing that happened (an enrollment, a
  purchase, an event, a redemption, an adjustment, a refund, an expiry, a tier
  change or floor, a profile change), with its idempotency key and a digest of
  its request, and the chain hash that covers it and everything it wrote.
- `entries`: one signed points row per award line or debit; a credit's row also
  holds its lot's dates (earned, spendable from, gone on), so a lot is an entry.
- `draws`: which lots each debit took its points from.
- `customers`: profiles (the one table whose contact fields change; a salted
  digest chained in operations proves each change), `rulesets`: each rules text
  once, `runs`: the unattended runs (imports, nightly), chained on their own.

Times are whole seconds since 1970 (UTC), days are days since 1970 in the shop:
small integers that compare and index cheaply. Every index serves a measured
query (tests/test_store.py shows each plan):
- operations_txn: idempotency keys (unique) and a retry's lookup;
- operations_customer: an account's purchases, refunds and tier operations, and
  the per-customer report figures;
- operations_time: purchases and refunds in a period (summary, activity);
- operations_refund: the refunds of a purchase;
- entries_customer: balances and points by kind, an account's lots, capped
  rules' usage and redemptions;
- entries_time: points by kind in a period (summary, activity, rules);
- entries_budget_RULE: a budgeted rule's lines, one small partial index per
  budgeted rule, made the first time rules with that budget write (budget_index);
- entries_lots: the lots (credit entries), by expiry date (overdue points,
  the liability, points released from pending);
- draws_lot: what is left in a lot.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ..clock import day_number, stamp
from ..errors import TamperDetected
from . import legacy
from .chain import DRAW_FIELDS, ENTRY_FIELDS, OP_FIELDS, op_hash, profile_digest, run_hash

APPLICATION_ID = 0x4C4F5931  # "LOY1"
APPEND_ONLY = ("operations", "entries", "draws", "rulesets", "runs")

TABLES = (
    """
    CREATE TABLE rulesets (
        id INTEGER PRIMARY KEY,
        version BLOB NOT NULL UNIQUE,      -- sha256 of the text
        source TEXT NOT NULL,              -- the path it was read from
        text TEXT NOT NULL,
        timezone TEXT NOT NULL,
        first_used INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE customers (
        id TEXT PRIMARY KEY,
        name TEXT, email TEXT, phone TEXT,
        birthday TEXT,                     -- YYYY-MM-DD
        referred_by TEXT REFERENCES customers(id),
        enrolled INTEGER NOT NULL,
        recorded INTEGER NOT NULL,
        birthday_set INTEGER,              -- when the birthday was set (recorded, if later)
        salt BLOB NOT NULL                 -- keys the profile digest chained in operations
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE operations (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        customer_id TEXT REFERENCES customers(id),  -- NULL only for a migration
        occurred INTEGER NOT NULL,         -- business time
        recorded INTEGER NOT NULL,
        ruleset INTEGER REFERENCES rulesets(id),
        last_entry INTEGER NOT NULL,       -- its entries are those after the previous
                                           -- operation's last_entry, up to this
        txn TEXT,                          -- idempotency key, when given
        content BLOB,                      -- digest of the request, for key conflicts
        amount_cents INTEGER,              -- a purchase's, or a refund's
        event TEXT, category TEXT, sku TEXT, quantity INTEGER,
        reward TEXT, reason TEXT,
        tier TEXT, tier_from TEXT, until INTEGER,   -- tier changes and floors
        refund_of INTEGER REFERENCES operations(id), clawback INTEGER,  -- refunds
        profile BLOB,                      -- enroll, profile: digest of the profile after
        hash BLOB NOT NULL
    )
    """,
    """
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        op_id INTEGER NOT NULL REFERENCES operations(id),
        customer_id TEXT NOT NULL REFERENCES customers(id),
        kind TEXT NOT NULL,
        points INTEGER NOT NULL,
        occurred INTEGER NOT NULL,         -- its operation's, for sums over a period
        rule TEXT, reward TEXT, reason TEXT,
        detail TEXT,                       -- kept only when the rules cannot rebuild it
        earned_on INTEGER, available_on INTEGER, expires_on INTEGER  -- a credit's lot
    )
    """,
    """
    CREATE TABLE draws (
        id INTEGER PRIMARY KEY,
        entry_id INTEGER NOT NULL REFERENCES entries(id),  -- the debit
        lot_id INTEGER NOT NULL REFERENCES entries(id),    -- the credit it takes from
        points INTEGER NOT NULL CHECK (points > 0)
    )
    """,
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        command TEXT NOT NULL,             -- import-started, import, nightly
        as_of TEXT,                        -- the shop-local day it ran for
        started INTEGER NOT NULL,
        finished INTEGER NOT NULL,
        summary TEXT NOT NULL,             -- the JSON it printed
        hash BLOB NOT NULL
    )
    """,
)
INDEXES = (
    "CREATE UNIQUE INDEX operations_txn ON operations(txn) WHERE txn IS NOT NULL",
    "CREATE INDEX operations_customer ON operations(customer_id, kind, occurred, amount_cents)",
    "CREATE INDEX operations_time ON operations(kind, occurred, amount_cents)",
    "CREATE INDEX operations_refund ON operations(refund_of) WHERE refund_of IS NOT NULL",
    "CREATE INDEX entries_customer ON entries(customer_id, kind, points)",
    "CREATE INDEX entries_time ON entries(kind, occurred, points)",
    "CREATE INDEX entries_lots ON entries(expires_on) WHERE earned_on IS NOT NULL",
    "CREATE INDEX draws_lot ON draws(lot_id, points)",
)


def _triggers() -> list[str]:
    out = [
        f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} are append-only: add a correcting entry instead'); END"
        for table in APPEND_ONLY
        for action in ("UPDATE", "DELETE")
    ]
    out += [
        "CREATE TRIGGER customers_no_delete BEFORE DELETE ON customers "
        "BEGIN SELECT RAISE(ABORT, 'customers are never deleted'); END",
        "CREATE TRIGGER customers_keep_identity BEFORE UPDATE OF id, enrolled, recorded, "
        "referred_by, salt ON customers "
        "BEGIN SELECT RAISE(ABORT, 'a customer''s id, enrollment and referrer never change'); "
        "END",
    ]
    return out


def budget_index(rule: str) -> tuple[str, str]:
    """(name, CREATE statement) of the partial index over a budgeted rule's lines:
    its total across everyone is read on every write that could pay it, and an
    index over every rule's lines would cost every write an index entry per line."""
    name = f"entries_budget_{rule}"
    return name, (f"CREATE INDEX IF NOT EXISTS \"{name}\" ON entries(points) WHERE rule = '{rule}'")


TRIGGERS = frozenset(
    [f"{t}_no_{a}" for t in APPEND_ONLY for a in ("update", "delete")]
    + ["customers_no_delete", "customers_keep_identity"]
)


def create(conn: sqlite3.Connection) -> None:
    """The current schema, in an empty file. One statement per execute:
    executescript() would COMMIT and break the caller's transaction."""
    for statement in (*TABLES, *INDEXES, *_triggers()):
        conn.execute(statement)


# --- m005: schema 4 to the lean store ---------------------------------------------


def _moment(text: str) -> int:
    """A schema-4 stored time ('2026-11-27T14:00:00Z'; years before 1000 were
    written unpadded, '1-01-01T...') as seconds since 1970."""
    date_part, _, rest = text.partition("-")
    padded = f"{int(date_part):04d}-{rest}"
    return stamp(datetime.fromisoformat(padded.removesuffix("Z")).replace(tzinfo=UTC))


def _day(text: str | None) -> int | None:
    if text is None:
        return None
    return day_number(datetime.fromisoformat(text).date())


def m005_lean(conn: sqlite3.Connection) -> None:
    """The lean store: a third of the bytes per purchase. Times and days become
    integers, rules versions small ids, hashes 32-byte blobs; a lot's dates move
    into its credit entry, a refund's into its operation; columns that repeated
    their operation leave the entries; one hash per operation covers the
    operation with every entry, lot and draw it wrote; profiles and runs are
    chained too.

    Only a ledger that passes schema 4's own checks is converted (else nothing
    changes and the owner is told why). The chain is re-anchored: the
    conversion ends with a `migrate` operation naming each old chain's head, so
    heads noted before (from `verify --json`) still prove the history. Old award
    lines keep the words they were written with."""
    found, heads = legacy.audit(conn)
    if found:
        raise TamperDetected(
            [
                "the ledger fails verify, so it was not upgraded (nothing changed); "
                f"restore it from a backup: {found[0]}",
                *found[1:],
            ]
        )
    for table in ("operations", "entries", "lots", "draws", "refunds", "rulesets", "customers"):
        conn.execute(f"ALTER TABLE {table} RENAME TO v4_{table}")
    conn.execute("ALTER TABLE runs RENAME TO v4_runs")
    for name in [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")]:
        if not name.startswith("sqlite_"):
            conn.execute(f"DROP INDEX {name}")
    for statement in TABLES:
        conn.execute(statement)

    # rules texts: small ids in the order they were first used
    rulesets: dict[str, int] = {}
    for number, (version, source, text, first_used, tz) in enumerate(
        conn.execute(
            "SELECT version, source, text, first_used_at, timezone FROM v4_rulesets "
            "ORDER BY first_used_at, rowid"
        ).fetchall(),
        1,
    ):
        rulesets[version] = number
        conn.execute(
            "INSERT INTO rulesets (id, version, source, text, timezone, first_used) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (number, bytes.fromhex(version), source, text, tz or "UTC", _moment(first_used)),
        )
    versions = {number: bytes.fromhex(version).hex() for version, number in rulesets.items()}

    # customers: their birthday's set date as schema 4 judged it, counted from
    # when it was recorded if later; a new salt each
    birthday_set = {
        cid: _moment(max(occurred, recorded))
        for cid, occurred, recorded in conn.execute(
            "SELECT customer_id, occurred_at, recorded_at FROM v4_operations "
            "WHERE kind = 'profile' AND json_extract(request, '$.birthday') IS NOT NULL "
            "ORDER BY id"
        )
    }
    profiles: dict[str, tuple[bytes, tuple[Any, ...]]] = {}
    for cid, name, email, phone, birthday, referred_by, enrolled, recorded in conn.execute(
        "SELECT id, name, email, phone, birthday, referred_by, enrolled_at, recorded_at "
        "FROM v4_customers ORDER BY id"
    ).fetchall():
        salt = os.urandom(16)
        set_at = birthday_set.get(cid, max(_moment(enrolled), _moment(recorded)))
        conn.execute(
            "INSERT INTO customers (id, name, email, phone, birthday, referred_by, enrolled, "
            "recorded, birthday_set, salt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (cid, name, email, phone, birthday, referred_by, _moment(enrolled),
             _moment(recorded), set_at, salt),
        )  # fmt: skip
        fields = (cid, name, email, phone, birthday, referred_by, _moment(enrolled), set_at)
        profiles[cid] = (salt, fields)
    # The digest of each customer's profile goes on their latest enroll or
    # profile operation: the chain proves the profile as it stands.
    latest_profile_op = {
        cid: op_id
        for cid, op_id in conn.execute(
            "SELECT customer_id, MAX(id) FROM v4_operations "
            "WHERE kind IN ('enroll', 'profile') GROUP BY customer_id"
        )
    }

    refunds = {
        op_id: (purchase, clawback)
        for op_id, purchase, clawback in conn.execute(
            "SELECT id, purchase_op_id, clawback FROM v4_refunds"
        )
    }
    lots = {
        lot_id: (_day(earned), _day(available), _day(expires))
        for lot_id, earned, available, expires in conn.execute(
            "SELECT id, earned_on, available_on, expires_on FROM v4_lots"
        )
    }
    entries_of: dict[int, list[tuple[Any, ...]]] = {}
    for row in conn.execute(
        "SELECT e.id, e.op_id, e.customer_id, e.kind, e.points, e.rule, e.reward, e.reason, "
        "e.detail FROM v4_entries e ORDER BY e.id"
    ):
        entries_of.setdefault(row[1], []).append(row)
    draws_of: dict[int, list[tuple[int, int, int, int]]] = {}
    for draw in conn.execute("SELECT id, entry_id, lot_id, points FROM v4_draws ORDER BY id"):
        draws_of.setdefault(draw[1], []).append(draw)

    previous = b""
    last_entry = 0
    op_rows: list[tuple[object, ...]] = []
    entry_rows: list[tuple[object, ...]] = []
    draw_rows: list[tuple[object, ...]] = []
    select = f"SELECT {legacy.OPERATION_COLUMNS} FROM v4_operations ORDER BY id"
    for row in conn.execute(select):
        op_id, txn, kind, cid, event, amount, category, sku, quantity, reward, reason = row[:11]
        occurred_at, recorded_at, version, request = row[11:15]
        occurred, recorded = _moment(occurred_at), _moment(recorded_at)
        asked = json.loads(request)
        tier = tier_from = until = refund_of = clawback = None
        if kind == "tier":
            tier = asked.get("to") or asked.get("tier")
            tier_from = asked.get("from")
            until = _day(asked.get("until"))
        if kind == "refund":
            refund_of, clawback = refunds[op_id]
        if kind == "profile":
            # The values stay in the customers table only: the chain keeps digests.
            reason = ", ".join(sorted(k for k in asked if k != "customer_id"))
        content = None
        if txn is not None:
            content = hashlib.sha256(request.encode("utf-8")).digest()[:8]
        profile = None
        if latest_profile_op.get(cid) == op_id:
            salt, fields = profiles[cid]
            profile = profile_digest(salt, fields)
        mine = entries_of.get(op_id, [])
        rows = []
        debits = []
        for e_id, _op, e_cid, e_kind, points, rule, e_reward, e_reason, detail in mine:
            earned, available, expires = lots.get(e_id, (None, None, None))
            rows.append(
                (e_id, op_id, e_cid, e_kind, points, occurred, rule, e_reward, e_reason, detail,
                 earned, available, expires)
            )  # fmt: skip
            debits += draws_of.get(e_id, [])
        if rows:
            last_entry = int(rows[-1][0])
        ruleset = None if version is None else rulesets[version]
        op = (
            op_id, kind, cid, occurred, recorded, ruleset, last_entry, txn, content, amount,
            event, category, sku, quantity, reward, reason, tier, tier_from, until, refund_of,
            clawback, profile,
        )  # fmt: skip
        hashed = (*op[:5], None if ruleset is None else versions[ruleset], *op[6:])
        previous = op_hash(previous, hashed, rows, debits)
        op_rows.append((*op, previous))
        entry_rows += rows
        draw_rows += debits
    insert_rows(conn, op_rows, entry_rows, draw_rows)

    now = stamp(datetime.now(UTC))
    note = json.dumps({"from_schema": 4, "heads": heads}, sort_keys=True)
    op = (len(op_rows) + 1, "migrate", None, now, now, None, last_entry, None, None, None,
          None, None, None, None, None, note, None, None, None, None, None, None)  # fmt: skip
    previous = op_hash(previous, op, [], [])
    insert_rows(conn, [(*op, previous)], [], [])

    run_previous = b""
    for row in conn.execute(
        "SELECT id, command, as_of, started_at, finished_at, summary FROM v4_runs ORDER BY id"
    ).fetchall():
        run = (row[0], row[1], row[2], _moment(row[3]), _moment(row[4]), row[5])
        run_previous = run_hash(run_previous, run)
        conn.execute(
            "INSERT INTO runs (id, command, as_of, started, finished, summary, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*run, run_previous),
        )
    for table in ("runs", "refunds", "draws", "lots", "entries", "operations", "rulesets"):
        conn.execute(f"DROP TABLE v4_{table}")
    conn.execute("DROP TABLE v4_customers")
    for statement in (*INDEXES, *_triggers()):
        conn.execute(statement)


def insert_rows(
    conn: sqlite3.Connection,
    ops: Sequence[Sequence[object]],
    entries: Sequence[Sequence[object]],
    draws: Sequence[Sequence[object]],
) -> None:
    """Operations (OP_FIELDS, hash), entries (ENTRY_FIELDS) and draws (DRAW_FIELDS),
    each table in as few statements as SQLite's limit on parameters allows: a
    purchase's lines go in one statement, not one per line (on a network every
    statement is a round trip)."""
    for table, fields, rows in (
        ("operations", f"{OP_FIELDS}, hash", ops),
        ("entries", ENTRY_FIELDS, entries),
        ("draws", DRAW_FIELDS, draws),
    ):
        insert_many(conn, table, fields, rows)


# Rows per INSERT statement in a batch: one prepared statement serves every full
# batch (a statement of thousands of rows would be prepared, and cached, anew).
_BATCH = 64


def insert_many(
    conn: sqlite3.Connection, table: str, fields: str, rows: Sequence[Sequence[object]]
) -> None:
    """INSERT rows in multi-row statements: full batches of _BATCH rows through
    one prepared statement, and the rest (a till's few lines) in one more."""
    if not rows:
        return
    width = fields.count(",") + 1
    row_marks = "(" + ", ".join("?" * width) + ")"
    full = len(rows) - len(rows) % _BATCH
    if full:
        marks = ", ".join([row_marks] * _BATCH)
        conn.executemany(
            f"INSERT INTO {table} ({fields}) VALUES {marks}",
            (
                [value for row in rows[start : start + _BATCH] for value in row]
                for start in range(0, full, _BATCH)
            ),
        )
    if full < len(rows):
        marks = ", ".join([row_marks] * (len(rows) - full))
        conn.execute(
            f"INSERT INTO {table} ({fields}) VALUES {marks}",
            [value for row in rows[full:] for value in row],
        )


# Numbered migrations: MIGRATIONS[n] brings schema n to n + 1. An empty file is
# created at the current schema directly.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (*legacy.MIGRATIONS, m005_lean)
SCHEMA_VERSION = len(MIGRATIONS)
