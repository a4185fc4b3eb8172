"""Ledgers of schema 1 to 4, before the lean store: the migrations that built
them, and the checks their hash chains allowed. A ledger of schema 4 is upgraded
by schema.m005_lean only if these checks pass: the upgrade re-anchors the chain,
and the operation that records it names the old chains' heads.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence

ENTRY_KINDS = ("enroll", "earn", "redeem", "adjust", "gift", "expire", "refund", "tier")
APPEND_ONLY = ("entries", "operations", "rulesets", "lots", "draws", "refunds", "runs")
ENTRY_COLUMNS = (
    "id, op_id, customer_id, kind, points, amount_cents, occurred_at, recorded_at, "
    "rule, reward, reason, txn, ruleset, detail"
)
LOT_COLUMNS = "id, customer_id, earned_on, available_on, expires_on"
DRAW_COLUMNS = "id, entry_id, lot_id, points"
REFUND_COLUMNS = "id, purchase_op_id, amount_cents, clawback"
OPERATION_COLUMNS = (
    "id, txn, kind, customer_id, event, amount_cents, category, sku, quantity, reward, "
    "reason, occurred_at, recorded_at, ruleset, request, entry_count, points"
)
CHAINS = (
    ("operations", OPERATION_COLUMNS, "operation"),
    ("entries", ENTRY_COLUMNS, "entry"),
    ("lots", LOT_COLUMNS, "lot"),
    ("draws", DRAW_COLUMNS, "draw"),
    ("refunds", REFUND_COLUMNS, "refund"),
)
TRIGGERS = frozenset(
    [f"{t}_no_{a}" for t in APPEND_ONLY for a in ("update", "delete")]
    + ["customers_no_delete", "customers_keep_identity"]
)


def _canonical(row: Sequence[object]) -> bytes:
    """Length-prefixed fields, so no two different rows serialise alike."""
    parts = []
    for value in row:
        if value is None:
            parts.append("~")
        else:
            text = str(value)
            parts.append(f"{len(text)}:{text}")
    return "|".join(parts).encode("utf-8")


def chain_hash(previous: str, row: Sequence[object]) -> str:
    digest = hashlib.sha256(previous.encode("ascii"))
    digest.update(_canonical(row))
    return digest.hexdigest()


def m001_initial(conn: sqlite3.Connection) -> None:
    """The first ledger: customers, operations (the facts), entries (the points),
    the rules texts that produced them, and the triggers that keep them append-only."""
    # One statement per execute: executescript() would COMMIT and break the
    # migration's transaction.
    statements = [
        """
        CREATE TABLE rulesets (
            version TEXT PRIMARY KEY,          -- sha256 of the rules text
            source TEXT NOT NULL,              -- the path it was read from
            text TEXT NOT NULL,
            first_used_at TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE customers (
            id TEXT PRIMARY KEY,
            name TEXT, email TEXT, phone TEXT,
            birthday TEXT,
            referred_by TEXT REFERENCES customers(id),
            enrolled_at TEXT NOT NULL,
            recorded_at TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE operations (
            id INTEGER PRIMARY KEY,
            txn TEXT UNIQUE,                   -- idempotency key, when given
            kind TEXT NOT NULL,                -- enroll, purchase, event, redeem, adjust
            customer_id TEXT NOT NULL REFERENCES customers(id),
            event TEXT,
            amount_cents INTEGER,
            category TEXT, sku TEXT, quantity INTEGER,
            reward TEXT, reason TEXT,
            occurred_at TEXT NOT NULL,         -- business time, UTC
            recorded_at TEXT NOT NULL,
            ruleset TEXT REFERENCES rulesets(version),
            request TEXT NOT NULL,             -- canonical content, for key conflicts
            entry_count INTEGER NOT NULL,      -- how many entries it wrote, and their
            points INTEGER NOT NULL,           -- total: verify notices a missing entry
            hash TEXT NOT NULL
        )
        """,
        """
        CREATE INDEX operations_customer ON operations(customer_id, kind, amount_cents)
        """,
        """
        CREATE TABLE entries (
            id INTEGER PRIMARY KEY,
            op_id INTEGER NOT NULL REFERENCES operations(id),
            customer_id TEXT NOT NULL REFERENCES customers(id),
            kind TEXT NOT NULL,
            points INTEGER NOT NULL,
            amount_cents INTEGER,              -- the purchase amount this entry was computed from
            occurred_at TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            rule TEXT, reward TEXT, reason TEXT,
            txn TEXT,
            ruleset TEXT REFERENCES rulesets(version),
            detail TEXT,                       -- how the rule computed the points
            hash TEXT NOT NULL
        )
        """,
        """
        CREATE INDEX entries_balance ON entries(customer_id, kind, points)
        """,
        """
        CREATE INDEX entries_op ON entries(op_id)
        """,
        """
        CREATE INDEX entries_rule ON entries(rule, points)
        """,
        """
        CREATE TRIGGER customers_no_delete BEFORE DELETE ON customers
            BEGIN SELECT RAISE(ABORT, 'customers are never deleted'); END
        """,
        """
        CREATE TRIGGER customers_keep_identity BEFORE UPDATE OF id, enrolled_at, referred_by
        ON customers
            BEGIN SELECT RAISE(ABORT, 'a customer''s id, enrollment and referrer never change');
            END
        """,
    ]
    for statement in statements:
        conn.execute(statement)
    _append_only(conn, ("entries", "operations", "rulesets"))


def m002_lots(conn: sqlite3.Connection) -> None:
    """Points lots, for expiry, pending points and refunds: every credit becomes a
    lot with its own dates, every debit records which lots it drew on, and each
    refund records the purchase it reverses. All three are append-only and
    hash-chained like entries. The shop's time zone is kept with each rules text,
    so commands that read no rules (balance) still judge dates on the shop's day.

    Ledgers written before lots existed get a lot for every credit (earned on its
    UTC date, never expiring, spendable at once) and their debits drawn oldest
    lot first, which is what their balances already assumed."""
    statements = [
        "ALTER TABLE rulesets ADD COLUMN timezone TEXT",
        """
        CREATE TABLE lots (
            id INTEGER PRIMARY KEY REFERENCES entries(id),  -- the credit entry
            customer_id TEXT NOT NULL REFERENCES customers(id),
            earned_on TEXT NOT NULL,           -- shop-local dates, YYYY-MM-DD
            available_on TEXT NOT NULL,        -- pending before this date
            expires_on TEXT,                   -- gone on this date; NULL: never
            hash TEXT NOT NULL
        )
        """,
        "CREATE INDEX lots_customer ON lots(customer_id)",
        """
        CREATE TABLE draws (
            id INTEGER PRIMARY KEY,
            entry_id INTEGER NOT NULL REFERENCES entries(id),  -- the debit
            lot_id INTEGER NOT NULL REFERENCES lots(id),
            points INTEGER NOT NULL CHECK (points > 0),
            hash TEXT NOT NULL
        )
        """,
        "CREATE INDEX draws_lot ON draws(lot_id, points)",
        "CREATE INDEX draws_entry ON draws(entry_id)",
        """
        CREATE TABLE refunds (
            id INTEGER PRIMARY KEY REFERENCES operations(id),  -- the refund operation
            purchase_op_id INTEGER NOT NULL REFERENCES operations(id),
            amount_cents INTEGER NOT NULL,
            clawback INTEGER NOT NULL,         -- points it was due to take back
            hash TEXT NOT NULL
        )
        """,
        "CREATE INDEX refunds_purchase ON refunds(purchase_op_id)",
    ]
    for statement in statements:
        conn.execute(statement)
    _append_only(conn, ("lots", "draws", "refunds"))
    lots: list[tuple[object, ...]] = []
    draws: list[tuple[object, ...]] = []
    open_lots: dict[str, list[list[int]]] = {}  # customer -> [[lot id, remaining], ...]
    for entry_id, customer_id, points, occurred in conn.execute(
        "SELECT id, customer_id, points, occurred_at FROM entries ORDER BY id"
    ):
        held = open_lots.setdefault(customer_id, [])
        if points > 0:
            day = occurred[:10]
            lots.append((entry_id, customer_id, day, day, None))
            held.append([entry_id, points])
            continue
        owed = -points
        for lot in held:
            take = min(lot[1], owed)
            if take:
                draws.append((len(draws) + 1, entry_id, lot[0], take))
                lot[1] -= take
                owed -= take
    for table, columns, rows in (("lots", LOT_COLUMNS, lots), ("draws", DRAW_COLUMNS, draws)):
        previous = ""
        chained = []
        for row in rows:
            previous = chain_hash(previous, row)
            chained.append((*row, previous))
        marks = ", ".join("?" * (len(columns.split(",")) + 1))
        conn.executemany(f"INSERT INTO {table} ({columns}, hash) VALUES ({marks})", chained)


def _append_only(conn: sqlite3.Connection, tables: Sequence[str]) -> None:
    for table in tables:
        for action in ("UPDATE", "DELETE"):
            conn.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} are append-only: "
                "add a correcting entry instead'); END"
            )


def m003_runs(conn: sqlite3.Connection) -> None:
    """A record of each unattended run (the nightly step; later, imports), so the
    next run knows where the last one stopped and the owner can see what ran."""
    conn.execute(
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            command TEXT NOT NULL,             -- nightly, ...
            as_of TEXT,                        -- the shop-local day it ran for
            started_at TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            summary TEXT NOT NULL              -- the JSON it printed
        )
        """
    )
    _append_only(conn, ("runs",))


def m004_reports(conn: sqlite3.Connection) -> None:
    """Indexes for `loyalty report`, whose figures are SQL aggregates over a period.
    Without them a period's sums read every row of the entries table (3.5x the
    time of a bare GROUP BY over the balance index on 1M entries); with them they
    read only index pages, in time order within each kind:
    - entries (kind, occurred_at, points): points earned, redeemed... in a period;
    - operations (kind, occurred_at, amount_cents): purchases and revenue in a
      period and per day, week or month;
    - operations (customer_id, kind, occurred_at, amount_cents): per-customer
      purchase counts, spend and last purchase as of a day, already grouped by
      customer (active and repeat customers, RFM, the customers report);
    - lots (expires_on): the few lots past their expiry that no expire entry has
      emptied yet, which a liability leaves out as `balance` does."""
    for statement in (
        "CREATE INDEX entries_kind_time ON entries(kind, occurred_at, points)",
        "CREATE INDEX operations_kind_time ON operations(kind, occurred_at, amount_cents)",
        "CREATE INDEX operations_customer_time "
        "ON operations(customer_id, kind, occurred_at, amount_cents)",
        "CREATE INDEX lots_expiry ON lots(expires_on)",
    ):
        conn.execute(statement)


MIGRATIONS = (m001_initial, m002_lots, m003_runs, m004_reports)


def walk(conn: sqlite3.Connection, table: str, columns: str) -> tuple[int, int | None, str | None]:
    """(rows, id of the first row whose hash does not match, the newest hash)."""
    count, previous, first_bad = 0, "", None
    for row in conn.execute(f"SELECT {columns}, hash FROM {table} ORDER BY id"):
        count += 1
        if first_bad is None and chain_hash(previous, row[:-1]) != row[-1]:
            first_bad = row[0]
        previous = row[-1]
    return count, first_bad, previous or None


def audit(conn: sqlite3.Connection) -> tuple[list[str], dict[str, str | None]]:
    """(what schema 4's verify found wrong, in its words, empty when it was sound;
    the newest hash of each chain)."""
    found: list[str] = []
    heads: dict[str, str | None] = {}
    check = conn.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        found.append(f"SQLite integrity check failed: {check}")
    for table, columns, noun in CHAINS:
        _, bad, heads[table] = walk(conn, table, columns)
        if bad is not None:
            found.append(
                f"{noun} #{bad} does not match the hash chain: it, or the one before it, "
                "was changed, inserted or removed outside loyalty"
            )
    present = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    if missing := sorted(TRIGGERS - present):
        found.append(f"the append-only protection was removed: {', '.join(missing)} missing")
    for op_id, recorded, points, count, total in conn.execute(
        "SELECT o.id, o.entry_count, o.points, COUNT(e.id), COALESCE(SUM(e.points), 0) "
        "FROM operations o LEFT JOIN entries e ON e.op_id = o.id GROUP BY o.id "
        "HAVING o.entry_count != COUNT(e.id) OR o.points != COALESCE(SUM(e.points), 0) LIMIT 5"
    ):
        found.append(
            f"operation #{op_id} wrote {recorded} entries worth {points} points, but the "
            f"ledger holds {count} worth {total}: entries were removed or added"
        )
    for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
        found.append(f"{table} row {rowid} refers to a missing {parent} row")
    return found, heads
