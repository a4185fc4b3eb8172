"""The migrations that bring an older ledger to the current schema, imported
only when a file needs one (everyday commands never pay for them).

MIGRATIONS[n] brings schema n to n + 1: schema 1 to 4 are in legacy.py; m005
moves a schema-4 ledger to the lean store, writing schema.py's tables and
indexes as they now are; m006 brings a file written at schema 5 to them (draws
carry their lot's expiry; `entries_lots` carries the lot's points)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..clock import day_number, stamp
from ..errors import TamperDetected
from . import legacy
from .chain import op_hash, profile_digest, run_hash
from .schema import (
    INDEXES,
    ITEMS_TABLE,
    SCHEMA_VERSION,
    TABLES,
    _triggers,
    insert_rows,
)

# An index's name, from its CREATE statement.
_INDEX_NAME = re.compile(r"INDEX (\w+)")


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
        op_rows.append((*op, previous, None))
        entry_rows += rows
        draw_rows += debits
    insert_rows(conn, op_rows, entry_rows, draw_rows)

    now = stamp(datetime.now(UTC))
    note = json.dumps({"from_schema": 4, "heads": heads}, sort_keys=True)
    op = (len(op_rows) + 1, "migrate", None, now, now, None, last_entry, None, None, None,
          None, None, None, None, None, note, None, None, None, None, None, None)  # fmt: skip
    previous = op_hash(previous, op, [], [])
    insert_rows(conn, [(*op, previous, None)], [], [])

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


def m006_draw_expiry(conn: sqlite3.Connection) -> None:
    """Each draw gets its lot's expiry day, and the indexes become schema.py's
    (`draws_expiry` on it, `entries_lots` with the lot's points), so the points
    left in expired lots are two index-only ranges (the summary's overdue
    points). Nothing hashed changes: the chain and its heads stay as they were.
    A file that m005 wrote already has the column."""
    columns = [row[1] for row in conn.execute("PRAGMA table_info(draws)")]
    if "expires_on" not in columns:
        conn.execute("ALTER TABLE draws ADD COLUMN expires_on INTEGER")
        # Draws are append-only; the copy is written once, here, with the
        # trigger lifted inside this transaction only.
        conn.execute("DROP TRIGGER draws_no_update")
        conn.execute(
            "UPDATE draws SET expires_on = (SELECT expires_on FROM entries WHERE id = draws.lot_id)"
        )
        (trigger,) = [t for t in _triggers() if " draws_no_update " in t]
        conn.execute(trigger)
    _indexes_as_schema(conn)


def _indexes_as_schema(conn: sqlite3.Connection) -> None:
    """Make the file's indexes schema.py's: those that differ are made again."""
    wanted = {name: sql for sql in INDEXES for name in _INDEX_NAME.findall(sql)[:1]}
    found = dict(
        conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND name NOT LIKE 'entries_budget_%'"
        ).fetchall()
    )
    for name, sql in found.items():
        if wanted.get(name) != sql:
            conn.execute(f'DROP INDEX "{name}"')
    for name, sql in wanted.items():
        if found.get(name) != sql:
            conn.execute(sql)


def m007_receipt_items(conn: sqlite3.Connection) -> None:
    """Receipts with lines: the `items` table holds the lines of a receipt of two
    or more lines and the lines a refund returned (issue 12), append-only like
    the rest, and a purchase may name its store or till (`operations.store`).
    Existing operations have neither and hash as before, so the chain and its
    heads stay as they were. A file that m005 wrote already has both."""
    conn.execute(ITEMS_TABLE.replace("CREATE TABLE items", "CREATE TABLE IF NOT EXISTS items"))
    columns = [row[1] for row in conn.execute("PRAGMA table_info(operations)")]
    if "store" not in columns:
        conn.execute("ALTER TABLE operations ADD COLUMN store TEXT")
    for trigger in _triggers():
        if " items_no_" in trigger:
            conn.execute(trigger.replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS"))


def m008_writer_chains(conn: sqlite3.Connection) -> None:
    """Operations name the hash chain they are on (`writer`): NULL for the one
    chain of a ledger file, a till's name on PostgreSQL, where each till chains
    its own operations (store/postgres.py), and for a ledger copied back from
    there. Nothing hashed changes. A file that m005 wrote already has it."""
    columns = [row[1] for row in conn.execute("PRAGMA table_info(operations)")]
    if "writer" not in columns:
        conn.execute("ALTER TABLE operations ADD COLUMN writer TEXT")


def m009_reaching(conn: sqlite3.Connection) -> None:
    """Reaching customers (issue 15). `customer erase` (the one sanctioned
    removal) replaces the customer's salt as it empties their personal fields,
    so the digests chained before it can no longer be tested against a guess:
    the identity trigger now allows exactly that. And two append-only tables
    record the notices given and the messages sent, so a cron job never repeats
    one. Nothing hashed changes. Written out here, not taken from schema.py, so
    that this step stays what it was when later schemas change."""
    conn.execute("DROP TRIGGER IF EXISTS customers_keep_identity")
    conn.execute(
        "CREATE TRIGGER customers_keep_identity BEFORE UPDATE OF id, enrolled, recorded, "
        "referred_by, salt ON customers WHEN NEW.id IS NOT OLD.id "
        "OR NEW.enrolled IS NOT OLD.enrolled OR NEW.recorded IS NOT OLD.recorded "
        "OR NEW.referred_by IS NOT OLD.referred_by OR (NEW.salt IS NOT OLD.salt AND NOT "
        "(NEW.name IS NULL AND NEW.email IS NULL AND NEW.phone IS NULL AND NEW.birthday IS NULL "
        "AND EXISTS (SELECT 1 FROM operations WHERE customer_id = NEW.id AND kind = 'erase'))) "
        "BEGIN SELECT RAISE(ABORT, 'a customer''s id, enrollment and referrer never change, "
        "nor their salt but in an erasure'); END"
    )
    names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    if "notices_given" not in names:  # m005 wrote them already (it takes schema.TABLES)
        conn.execute(
            "CREATE TABLE notices_given (key TEXT PRIMARY KEY, customer_id TEXT NOT NULL "
            "REFERENCES customers(id), kind TEXT NOT NULL, given INTEGER NOT NULL, "
            "how TEXT NOT NULL) WITHOUT ROWID"
        )
        conn.execute(
            "CREATE TABLE messages_sent (key TEXT PRIMARY KEY, customer_id TEXT NOT NULL "
            "REFERENCES customers(id), template TEXT NOT NULL, sent INTEGER NOT NULL, "
            "message_id TEXT NOT NULL) WITHOUT ROWID"
        )
    for table in ("notices_given", "messages_sent"):
        for action in ("UPDATE", "DELETE"):
            conn.execute(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} "
                f"ON {table} BEGIN SELECT RAISE(ABORT, '{table} are append-only: add a "
                "correcting entry instead'); END"
            )


def m010_merges(conn: sqlite3.Connection) -> None:
    """Merging a duplicate account into another (`loyalty merge`, issue 15): an
    append-only table that says which customer id now belongs to which account,
    so that every read grouping by customer sees one customer. Written out here,
    not taken from schema.py, so that this step stays what it was when later
    schemas change; a file m005 wrote at this schema has it already."""
    names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    if "merges" not in names:
        conn.execute(
            "CREATE TABLE merges (duplicate TEXT PRIMARY KEY REFERENCES customers(id), "
            "keep TEXT NOT NULL REFERENCES customers(id), "
            "op_id INTEGER NOT NULL REFERENCES operations(id), UNIQUE (keep, duplicate)) "
            "WITHOUT ROWID"
        )
    for action in ("UPDATE", "DELETE"):
        conn.execute(
            f"CREATE TRIGGER IF NOT EXISTS merges_no_{action.lower()} BEFORE {action} "
            "ON merges BEGIN SELECT RAISE(ABORT, 'merges are append-only: add a "
            "correcting entry instead'); END"
        )


def m011_game_rounds(conn: sqlite3.Connection) -> None:
    """A game's round pays a customer once, enforced by the ledger (issue 13):
    a unique index over the game lines (rule `game:ID#ROUND`) by customer, rule,
    kind and reward (a badge's id). Nothing hashed changes. A ledger that already
    holds a round paid twice is not upgraded: the lines are append-only, so it is
    named for the owner to look at rather than silently kept. Written out here,
    not taken from schema.py, so that this step stays what it was."""
    refuse_rounds_paid_twice(conn)
    conn.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS entries_game_rounds ON entries(customer_id, rule, "
        "kind, (COALESCE(reward, ''))) WHERE substr(rule, 1, 5) = 'game:'"
    )


def refuse_rounds_paid_twice(conn: Any) -> None:
    """Before the unique index over game rounds (m011, and PostgreSQL's upgrade):
    a ledger already paying a round twice is named, not upgraded."""
    twice = conn.execute(
        "SELECT customer_id, rule, kind, COALESCE(reward, ''), count(*) FROM entries "
        "WHERE substr(rule, 1, 5) = 'game:' GROUP BY 1, 2, 3, 4 HAVING count(*) > 1 LIMIT 1"
    ).fetchone()
    if twice is not None:
        customer, rule, kind, reward, count = twice
        what = f"{kind} {reward}" if reward else kind
        raise TamperDetected(
            [
                f"the ledger pays customer {customer} the game round {rule} ({what}) "
                f"{count} times, so it was not upgraded; restore it from a backup"
            ]
        )


def m012_item_rules(conn: sqlite3.Connection) -> None:
    """A receipt's lines keep their points by rule (`items.earned_by`), so that a
    retried earn reports the split by rule and by line that the first one did
    (issue 12). The lines written before have none and hash as before: the
    chain and its heads stay as they were. A file that m005 or m007 wrote (from
    the current schema) already has the column."""
    columns = [row[1] for row in conn.execute("PRAGMA table_info(items)")]
    if "earned_by" not in columns:
        conn.execute("ALTER TABLE items ADD COLUMN earned_by TEXT")


def m013_covered_purchases(conn: sqlite3.Connection) -> None:
    """`operations_customer` also covers a purchase's category, sku and quantity:
    the games read them with every account, and a table lookup per purchase of
    the customer's history was most of what they added to an account read
    (issue 13). About 5 bytes a purchase; nothing hashed changes."""
    _indexes_as_schema(conn)


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    *legacy.MIGRATIONS,
    m005_lean,
    m006_draw_expiry,
    m007_receipt_items,
    m008_writer_chains,
    m009_reaching,
    m010_merges,
    m011_game_rounds,
    m012_item_rules,
    m013_covered_purchases,
)
assert len(MIGRATIONS) == SCHEMA_VERSION
