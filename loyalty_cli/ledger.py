"""The points ledger: an append-only SQLite file. The only module that touches sqlite3.

- Rows in `entries`, `operations` and `rulesets` are never updated or deleted;
  triggers refuse it, and `PRAGMA recursive_triggers` is on for every connection
  so that `INSERT OR REPLACE` cannot delete a row behind the triggers' backs.
- Every write runs inside `BEGIN IMMEDIATE`, so a read-check-write such as a
  redemption holds the write lock from its first read: two redemptions racing
  on one balance are serialised, never both approved.
- Entries and operations are each hash-chained row by row:
  hash = sha256(previous hash + canonical row). `verify` recomputes the chains.
- A balance is `SUM(points)` over the covering index (customer_id, kind, points):
  it reads only that customer's index entries, whatever the ledger's size.
- The schema evolves through numbered migrations, tracked in `PRAGMA user_version`
  and applied when the ledger opens. `PRAGMA application_id` marks the file as ours.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeVar, cast

from .errors import Busy, InputMissing
from .lots import Lot
from .values import format_utc

if TYPE_CHECKING:
    from .models import Ruleset

T = TypeVar("T")
# What a write to a customer leaves as it was, unless it is a tier operation.
_KEPT = ("customer", "last_tier", "tier_override")

APPLICATION_ID = 0x4C4F5931  # "LOY1"
DEFAULT_TIMEOUT = 5.0

ENTRY_KINDS = ("enroll", "earn", "redeem", "adjust", "gift", "expire", "refund", "tier")
APPEND_ONLY = ("entries", "operations", "rulesets", "lots", "draws", "refunds", "runs")

_ENTRY_COLUMNS = (
    "id, op_id, customer_id, kind, points, amount_cents, occurred_at, recorded_at, "
    "rule, reward, reason, txn, ruleset, detail"
)
_LOT_COLUMNS = "id, customer_id, earned_on, available_on, expires_on"
_DRAW_COLUMNS = "id, entry_id, lot_id, points"
_REFUND_COLUMNS = "id, purchase_op_id, amount_cents, clawback"
_OPERATION_COLUMNS = (
    "id, txn, kind, customer_id, event, amount_cents, category, sku, quantity, reward, "
    "reason, occurred_at, recorded_at, ruleset, request, entry_count, points"
)


# --- migrations --------------------------------------------------------------


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
    for table, columns, rows in (("lots", _LOT_COLUMNS, lots), ("draws", _DRAW_COLUMNS, draws)):
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


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    m001_initial,
    m002_lots,
    m003_runs,
    m004_reports,
)
# Chained tables besides operations and entries, walked by verify.
_SIDE_CHAINS = (
    ("lots", _LOT_COLUMNS, "lot"),
    ("draws", _DRAW_COLUMNS, "draw"),
    ("refunds", _REFUND_COLUMNS, "refund"),
)
SCHEMA_VERSION = len(MIGRATIONS)
TRIGGERS = frozenset(
    [f"{t}_no_{a}" for t in APPEND_ONLY for a in ("update", "delete")]
    + ["customers_no_delete", "customers_keep_identity"]
)


# --- rows ----------------------------------------------------------------------
# Rows are NamedTuples: they come straight from `SELECT` (`Entry(*row)`), and
# they are much cheaper to define than dataclasses, which matters at start-up.


class Customer(NamedTuple):
    id: str
    enrolled_at: str  # UTC, as format_utc writes it
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    birthday: str | None = None
    referred_by: str | None = None


class Entry(NamedTuple):
    """One immutable ledger row: a signed number of points for one customer."""

    id: int
    op_id: int
    customer_id: str
    kind: str  # enroll, earn, redeem, adjust, gift
    points: int
    amount_cents: int | None
    occurred_at: str
    recorded_at: str
    rule: str | None
    reward: str | None
    reason: str | None
    txn: str | None
    ruleset: str | None
    detail: str | None


class Operation(NamedTuple):
    """A recorded fact: an enrollment, a purchase, an event, a redemption or an
    adjustment. `request` is the canonical content that an idempotency key
    (`txn`) is compared against on a retry."""

    id: int
    txn: str | None
    kind: str
    customer_id: str
    occurred_at: str
    request: str


class Refund(NamedTuple):
    id: int  # the refund operation
    purchase_op_id: int
    amount_cents: int
    clawback: int  # points it was due to take back


class CustomerFigures(NamedTuple):
    """One customer's row in the customers report, as of a day."""

    id: str
    name: str | None
    balance: int  # net of points in lots past their expiry, as `balance` shows
    earned: int  # enroll and earn entries
    redeemed: int
    purchases: int
    spend_cents: int  # purchases less refunds
    first_purchase: str | None  # occurred_at
    last_purchase: str | None
    tier: str | None  # the last tier entry's tier; None: no tier entry yet


def _until(column: str, until: str | None) -> str:
    return "" if until is None else f" AND {column} <= ?"


def _bound(until: str | None) -> tuple[str, ...]:
    return () if until is None else (until,)


# --- hashing -------------------------------------------------------------------


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
    import hashlib  # here, not at the top: reads (balance, history) never hash

    digest = hashlib.sha256(previous.encode("ascii"))
    digest.update(_canonical(row))
    return digest.hexdigest()


# --- records being written -----------------------------------------------------


class NewOperation(NamedTuple):
    kind: str
    customer_id: str
    occurred_at: datetime
    request: dict[str, object]
    txn: str | None = None
    event: str | None = None
    amount_cents: int | None = None
    category: str | None = None
    sku: str | None = None
    quantity: int | None = None
    reward: str | None = None
    reason: str | None = None
    ruleset: str | None = None


class LotTerms(NamedTuple):
    """The dates of a credit's lot (see lots.py)."""

    earned_on: date
    available_on: date
    expires_on: date | None


class NewEntry(NamedTuple):
    kind: str
    points: int
    customer_id: str | None = None  # when not the operation's customer (a referrer)
    rule: str | None = None
    reward: str | None = None
    reason: str | None = None
    detail: str | None = None
    lot: LotTerms | None = None  # a credit: the lot it opens
    draws: tuple[tuple[int, int], ...] = ()  # a debit: (lot id, points) it takes


@dataclass
class VerifyReport:
    entries: int = 0
    operations: int = 0
    customers: int = 0
    first_bad_entry: int | None = None
    # The newest hash of each chain. Kept somewhere else (a daily mail from cron),
    # they let you notice later that the newest rows were cut off.
    entries_head: str | None = None
    operations_head: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "operations": self.operations,
            "customers": self.customers,
            "first_bad_entry": self.first_bad_entry,
            "entries_head": self.entries_head,
            "operations_head": self.operations_head,
            "problems": self.problems,
        }


def canonical_request(request: dict[str, object]) -> str:
    return json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- the ledger ----------------------------------------------------------------


class _CannotOpen(Exception):
    """SQLite could not open the file read-write where it lies (a read-only folder)."""


class Ledger:
    def __init__(
        self, conn: sqlite3.Connection, path: Path, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.conn = conn
        self.path = path
        self.timeout = timeout
        self.read_only = False  # opened immutable: its folder cannot be written
        self._depth = 0  # transactions open, counting savepoints
        # Remembered while one write transaction holds the lock, so nobody else can
        # change them under us: each chained table's last (id, hash), and reads a
        # row of an import repeats, by (what, customer). Dropped at commit and at
        # any rollback, so they never outlive what they describe.
        self._tips: dict[str, tuple[int, str]] = {}
        self._memo: dict[str, dict[str, object]] = {}  # customer -> what -> value
        self._operations: dict[str, Operation | None] = {}  # by txn
        self._rule_totals: dict[str, int] = {}  # kept up to date by append
        self._rulesets: set[str] = set()  # versions known to be stored

    # opening ----------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, create: bool = True, timeout: float = DEFAULT_TIMEOUT) -> Ledger:
        """Open (and if need be create or migrate) the ledger at `path`.

        Every refusal happens before anything is written, so a file that is
        not ours, or is newer than us, is left exactly as it was."""
        if path.is_symlink() and not path.exists():
            raise InputMissing(
                f"database {path} is a link to {os.readlink(path)}, which does not exist; "
                "pass the ledger's real path with --db"
            )
        exists = path.exists()
        if path.is_dir():
            raise InputMissing(f"database {path} is a directory; pass a file path with --db")
        if not exists:
            if not create:
                raise InputMissing(
                    f"no ledger at {path} yet (enroll a customer first, or pass --db PATH)"
                )
            if not path.parent.is_dir():
                raise InputMissing(
                    f"cannot create database {path}: directory {path.parent} does not exist"
                )
            if not os.access(path.parent, os.W_OK):
                raise InputMissing(
                    f"cannot create database {path}: no write permission in {path.parent}"
                )
        elif not os.access(path, os.R_OK):
            raise InputMissing(f"cannot read database {path}: permission denied")
        writable = not exists or os.access(path, os.W_OK)
        try:
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise InputMissing(f"cannot open database {path}: {exc}") from None
        ledger = cls(conn, path, timeout)
        try:
            try:
                ledger._prepare(writable)
            except _CannotOpen:
                # A WAL ledger in a folder we may not write to: SQLite cannot make
                # its shared-memory file there. Nobody can write to it there either,
                # so reading the file as it stands is exact (unless a crash left
                # writes in its -wal file, which only a writable folder can apply).
                conn.close()
                conn = ledger._open_immutable()
                ledger.conn = conn
                ledger.read_only = True
                ledger._prepare(writable=False)
        except BaseException:
            conn.close()
            raise
        return ledger

    def _open_immutable(self) -> sqlite3.Connection:
        wal = Path(f"{self.path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise InputMissing(
                f"cannot open database {self.path}: its folder is read-only and {wal} holds "
                "writes not yet in the file; open it once where its folder is writable"
            )
        from urllib.parse import quote

        uri = f"file:{quote(str(self.path.resolve()))}?immutable=1"
        try:
            return sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise InputMissing(f"cannot open database {self.path}: {exc}") from None

    def _prepare(self, writable: bool) -> None:
        path = self.path
        try:
            # One statement, so one snapshot: another process may be creating this
            # very file, and must not be caught half-way (tables but no mark yet).
            # fetchall() runs the statement to its end, releasing the read lock at once.
            ((app_id, version, tables),) = self.conn.execute(
                "SELECT (SELECT application_id FROM pragma_application_id),"
                " (SELECT user_version FROM pragma_user_version),"
                " (SELECT count(*) FROM sqlite_master)"
            ).fetchall()
        except sqlite3.Error as exc:
            name = getattr(exc, "sqlite_errorname", "")
            if name.startswith("SQLITE_CANTOPEN") and not self.read_only:
                raise _CannotOpen() from None
            if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
                raise self._busy() from None
            if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
                raise InputMissing(
                    f"{path} is not a loyalty ledger (not an SQLite database, or a damaged one)"
                ) from None
            raise InputMissing(f"cannot read database {path}: {exc}") from None
        empty = app_id == 0 and tables == 0
        if app_id != APPLICATION_ID and not (empty and version == 0):
            raise InputMissing(
                f"{path} is not a loyalty ledger (an SQLite file with other contents); "
                "pass another --db"
            )
        if version > SCHEMA_VERSION:
            raise InputMissing(
                f"{path} has ledger schema {version}, newer than this loyalty knows "
                f"({SCHEMA_VERSION}); upgrade loyalty to use it"
            )
        self.conn.execute("PRAGMA recursive_triggers = ON")
        if version == SCHEMA_VERSION:
            return
        if not writable or self.read_only:
            raise InputMissing(f"database {path} needs upgrading but is not writable")
        with self._translate_busy():
            if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self.conn.execute("PRAGMA journal_mode = WAL")
            with self.transaction():
                # Another process may have migrated while we waited for the lock.
                current = self.conn.execute("PRAGMA user_version").fetchone()[0]
                for migration in MIGRATIONS[current:]:
                    migration(self.conn)
                self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # transactions -----------------------------------------------------------

    def _busy(self) -> Busy:
        return Busy(
            f"database {self.path} is busy: another loyalty command held it too long; "
            "try again in a moment"
        )

    @contextmanager
    def _translate_busy(self) -> Iterator[None]:
        """SQLite's failures, as errors a user can act on, told apart by SQLite's
        own error name (the message text is not an interface)."""
        try:
            yield
        except sqlite3.Error as exc:
            name = getattr(exc, "sqlite_errorname", "") or ""
            if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
                raise self._busy() from None
            if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
                raise InputMissing(
                    f"cannot write to database {self.path}: it is read-only (check its "
                    "permissions, and those of its folder); nothing was written"
                ) from None
            if name == "SQLITE_FULL":
                raise InputMissing(
                    f"cannot write to database {self.path}: the disk is full; free some "
                    "space and run the command again (this command wrote nothing)"
                ) from None
            if name.startswith("SQLITE_IOERR"):
                raise InputMissing(
                    f"cannot write to database {self.path}: {exc} (the disk may be full or "
                    "failing); this command wrote nothing"
                ) from None
            if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
                raise InputMissing(
                    f"database {self.path} is damaged ({exc}); restore it from a backup"
                ) from None
            raise

    def _begin_immediate(self) -> None:
        """Take the write lock, polling every 2 ms up to the busy timeout.

        SQLite's own busy handler backs off to 100 ms sleeps, so a till waiting
        behind an import (which commits a chunk, pauses briefly and goes on)
        would keep missing the gaps and give up. Polling often catches them."""
        if self.read_only:
            raise InputMissing(
                f"cannot write to database {self.path}: its folder is read-only (check the "
                "permissions of the folder and the file); nothing was written"
            )
        deadline = time.monotonic() + self.timeout
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    name = getattr(exc, "sqlite_errorname", "")
                    busy = name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
                    if not busy or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.002)
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction that holds the write lock from its first statement.

        Inside another one it is a savepoint: an import commits rows in chunks,
        and a row that fails rolls back alone, through the very same use cases.
        SQLite rolls a whole transaction back by itself on some failures (a full
        disk, an I/O error): then there is nothing left to roll back, and the
        original error is the one to report."""
        if self._depth:
            name = f"row{self._depth}"
            self.conn.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute(f"ROLLBACK TO {name}")
                self._forget()
                raise
            finally:
                self._depth -= 1
                if self.conn.in_transaction:
                    self.conn.execute(f"RELEASE {name}")
            return
        with self._translate_busy():
            self._begin_immediate()
            self._depth = 1
            try:
                yield
                self.conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            finally:
                self._depth = 0
                self._forget()

    def _rollback(self) -> None:
        """Roll back what is still open, keeping the error that got us here."""
        if self.conn.in_transaction:
            with suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")

    def _forget(self) -> None:
        self._tips.clear()
        self._memo.clear()
        self._operations.clear()
        self._rule_totals.clear()
        self._rulesets.clear()

    def _remembered(self, what: str, customer_id: str, read: Callable[[], T]) -> T:
        """`read()`, remembered until this customer is written to, while in a
        transaction; outside one, other writers may change it at any time."""
        if not self._depth:
            return read()
        known = self._memo.setdefault(customer_id, {})
        if what not in known:
            known[what] = read()
        return cast(T, known[what])

    # reads ------------------------------------------------------------------

    def customer(self, customer_id: str) -> Customer | None:
        def read() -> Customer | None:
            row = self.conn.execute(
                "SELECT id, enrolled_at, name, email, phone, birthday, referred_by "
                "FROM customers WHERE id = ?",
                (customer_id,),
            ).fetchone()
            return Customer(*row) if row else None

        return self._remembered("customer", customer_id, read)

    # `until` (a stored UTC time) reads the ledger as it stood then: only entries
    # that had occurred by that time. None, the common case, reads it all and keeps
    # a balance on the covering index alone.

    def balance(self, customer_id: str, until: str | None = None) -> int:
        def read() -> int:
            row = self.conn.execute(
                "SELECT COALESCE(SUM(points), 0) FROM entries WHERE customer_id = ?"
                + _until("occurred_at", until),
                (customer_id, *_bound(until)),
            ).fetchone()
            return int(row[0])

        if until is not None:
            return read()
        return self._remembered("balance", customer_id, read)

    def points_by_kind(self, customer_id: str, until: str | None = None) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT kind, SUM(points) FROM entries WHERE customer_id = ?"
            + _until("occurred_at", until)
            + " GROUP BY kind",
            (customer_id, *_bound(until)),
        )
        return {kind: int(total) for kind, total in rows}

    def purchase_totals(self, customer_id: str) -> tuple[int, int]:
        """(number of purchases, total spend in cents) so far."""

        def read() -> tuple[int, int]:
            count, cents = self.conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM operations "
                "WHERE customer_id = ? AND kind = 'purchase'",
                (customer_id,),
            ).fetchone()
            return int(count), int(cents)

        return self._remembered("purchase_totals", customer_id, read)

    def rule_usage(
        self, customer_id: str, rule: str, start: datetime | None, end: datetime | None
    ) -> tuple[int, int]:
        """(lines, points) a rule gave a customer with business time in [start, end)."""
        count, points = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(points), 0) FROM entries "
            # `+rule`: keeps SQLite on the customer's index. Left to itself it picks
            # entries_rule and reads every entry the rule ever made (27 ms on 1M rows).
            "WHERE customer_id = ? AND +rule = ? AND occurred_at >= ? AND occurred_at < ?",
            (
                customer_id,
                rule,
                format_utc(start) if start else "",
                format_utc(end) if end else "~",  # "~" sorts after every timestamp
            ),
        ).fetchone()
        return int(count), int(points)

    def redemptions(
        self, customer_id: str, reward: str, start: datetime | None, end: datetime | None
    ) -> int:
        """How many times the customer redeemed a reward with business time in [start, end)."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM entries WHERE customer_id = ? AND kind = 'redeem' "
            "AND reward = ? AND occurred_at >= ? AND occurred_at < ?",
            (
                customer_id,
                reward,
                format_utc(start) if start else "",
                format_utc(end) if end else "~",
            ),
        ).fetchone()
        return int(row[0])

    def rule_total(self, rule: str) -> int:
        """Points a rule has given to everyone, ever: what its budget counts."""
        if rule in self._rule_totals:
            return self._rule_totals[rule]
        row = self.conn.execute(
            "SELECT COALESCE(SUM(points), 0) FROM entries WHERE rule = ?", (rule,)
        ).fetchone()
        if self._depth:
            # Every customer's rows count, so no customer's write invalidates it:
            # append adds each new entry's points instead.
            self._rule_totals[rule] = int(row[0])
        return int(row[0])

    def lots(self, customer_id: str, until: str | None = None) -> list[Lot]:
        """The customer's lots with what remains in each."""

        def read() -> list[Lot]:
            rows = self.conn.execute(
                "SELECT l.id, l.earned_on, l.available_on, l.expires_on, "
                "e.points - COALESCE((SELECT SUM(d.points) FROM draws d "
                "JOIN entries de ON de.id = d.entry_id WHERE d.lot_id = l.id"
                + _until("de.occurred_at", until)
                + "), 0) FROM lots l JOIN entries e ON e.id = l.id WHERE l.customer_id = ?"
                + _until("e.occurred_at", until)
                + " ORDER BY l.id",
                (*_bound(until), customer_id, *_bound(until)),
            )
            return [
                Lot(
                    lot_id,
                    date.fromisoformat(earned),
                    date.fromisoformat(available),
                    None if expires is None else date.fromisoformat(expires),
                    remaining,
                )
                for lot_id, earned, available, expires, remaining in rows
            ]

        if until is not None:
            return read()
        return self._remembered("lots", customer_id, read)

    def shop_timezone(self) -> str | None:
        """The time zone of the rules that wrote last: how `balance`, which reads no
        rules, knows which day it is in the shop."""
        row = self.conn.execute(
            "SELECT timezone FROM rulesets WHERE timezone IS NOT NULL "
            "ORDER BY first_used_at DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return None if row is None else str(row[0])

    def refunded(self, purchase_op_id: int) -> tuple[int, int]:
        """(cents refunded, points due back) over all refunds of a purchase so far."""
        cents, points = self.conn.execute(
            "SELECT COALESCE(SUM(amount_cents), 0), COALESCE(SUM(clawback), 0) FROM refunds "
            "WHERE purchase_op_id = ?",
            (purchase_op_id,),
        ).fetchone()
        return int(cents), int(points)

    def refund(self, op_id: int) -> Refund:
        row = self.conn.execute(
            f"SELECT {_REFUND_COLUMNS} FROM refunds WHERE id = ?", (op_id,)
        ).fetchone()
        return Refund(*row)

    def is_refund(self, op_id: int) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM refunds WHERE id = ?", (op_id,)).fetchone() is not None
        )

    def purchase_amount(self, op_id: int) -> int | None:
        row = self.conn.execute(
            "SELECT amount_cents FROM operations WHERE id = ? AND kind = 'purchase'", (op_id,)
        ).fetchone()
        return None if row is None else int(row[0])

    def spend_history(self, customer_id: str) -> list[tuple[str, int]]:
        """(purchase's occurred_at, cents) of the customer's purchases, and of their
        refunds as negative cents dated at the purchase refunded: a refund undoes
        the purchase's part in a tier, as if it had never qualified."""

        def read() -> list[tuple[str, int]]:
            rows = self.conn.execute(
                "SELECT occurred_at, amount_cents FROM operations "
                "WHERE customer_id = ? AND kind = 'purchase' "
                "UNION ALL SELECT p.occurred_at, -r.amount_cents FROM refunds r "
                "JOIN operations p ON p.id = r.purchase_op_id WHERE p.customer_id = ?",
                (customer_id, customer_id),
            )
            return [(str(at), int(cents)) for at, cents in rows]

        return self._remembered("spend_history", customer_id, read)

    def points_history(self, customer_id: str) -> list[tuple[str, int]]:
        """Points earned by rules, by the local date their lot became available
        (YYYY-MM-DD), and points refunds took back, by the refunded purchase's
        occurred_at (a UTC time), as in spend_history."""

        def read() -> list[tuple[str, int]]:
            rows = self.conn.execute(
                "SELECT l.available_on, e.points FROM entries e JOIN lots l ON l.id = e.id "
                "WHERE e.customer_id = ? AND e.kind IN ('earn', 'enroll') "
                "UNION ALL SELECT p.occurred_at, e.points FROM entries e "
                "JOIN refunds r ON r.id = e.op_id JOIN operations p ON p.id = r.purchase_op_id "
                "WHERE e.customer_id = ? AND e.kind = 'refund'",
                (customer_id, customer_id),
            )
            return [(str(day), int(points)) for day, points in rows]

        return self._remembered("points_history", customer_id, read)

    def last_tier(self, customer_id: str) -> str | None:
        def read() -> str | None:
            row = self.conn.execute(
                "SELECT rule FROM entries WHERE customer_id = ? AND kind = 'tier' "
                "ORDER BY id DESC LIMIT 1",
                (customer_id,),
            ).fetchone()
            return None if row is None else str(row[0])

        return self._remembered("last_tier", customer_id, read)

    def tier_override(self, customer_id: str) -> dict[str, str | None] | None:
        """The latest manual tier set for the customer: {"tier", "until", "reason"}."""

        def read() -> dict[str, str | None] | None:
            row = self.conn.execute(
                "SELECT request FROM operations WHERE customer_id = ? AND kind = 'tier' "
                "AND event = 'override' ORDER BY id DESC LIMIT 1",
                (customer_id,),
            ).fetchone()
            if row is None:
                return None
            request: dict[str, str | None] = json.loads(row[0])
            return request

        return self._remembered("tier_override", customer_id, read)

    def customer_ids(self) -> list[str]:
        return [str(cid) for (cid,) in self.conn.execute("SELECT id FROM customers ORDER BY id")]

    def operation(self, txn: str) -> Operation | None:
        if txn in self._operations:
            return self._operations[txn]
        row = self.conn.execute(
            "SELECT id, txn, kind, customer_id, occurred_at, request FROM operations WHERE txn = ?",
            (txn,),
        ).fetchone()
        found = Operation(*row) if row else None
        if self._depth:  # remembered, like a customer's reads, until written or rolled back
            self._operations[txn] = found
        return found

    def entries_of(self, op_id: int) -> list[Entry]:
        rows = self.conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE op_id = ? ORDER BY id", (op_id,)
        )
        return [Entry(*row) for row in rows]

    def history(
        self, customer_id: str, limit: int | None = None, until: str | None = None
    ) -> list[Entry]:
        rows = self.conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE customer_id = ?"
            + _until("occurred_at", until)
            + " ORDER BY id DESC LIMIT ?",
            (customer_id, *_bound(until), -1 if limit is None else limit),
        )
        return [Entry(*row) for row in rows]

    # writes (inside `transaction()`) ----------------------------------------

    def remember_ruleset(self, ruleset: Ruleset, at: datetime) -> None:
        """Keep each distinct rules text once, so any entry can be re-explained."""
        if ruleset.version in self._rulesets:
            return
        self.conn.execute(
            "INSERT INTO rulesets (version, source, text, first_used_at, timezone) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (version) DO NOTHING",
            (
                ruleset.version,
                ruleset.source,
                ruleset.text,
                format_utc(at),
                ruleset.program.timezone,
            ),
        )
        if self._depth:
            self._rulesets.add(ruleset.version)

    def add_customer(self, customer: Customer, recorded_at: datetime) -> None:
        self._memo.pop(customer.id, None)
        self.conn.execute(
            "INSERT INTO customers (id, name, email, phone, birthday, referred_by, "
            "enrolled_at, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                customer.id,
                customer.name,
                customer.email,
                customer.phone,
                customer.birthday,
                customer.referred_by,
                customer.enrolled_at,
                format_utc(recorded_at),
            ),
        )

    def update_customer(self, customer_id: str, changes: dict[str, str | None]) -> None:
        """Change profile fields (name, email, phone, birthday). The change itself is
        recorded as a `profile` operation by the caller, so history keeps it."""
        assert set(changes) <= {"name", "email", "phone", "birthday"}
        self._memo.pop(customer_id, None)
        assignments = ", ".join(f"{name} = ?" for name in changes)
        self.conn.execute(
            f"UPDATE customers SET {assignments} WHERE id = ?", (*changes.values(), customer_id)
        )

    def birthday_set_at(self, customer_id: str) -> str | None:
        """When the birthday was last set: its last profile change, else enrollment.
        A change dated in the past (`--at`) counts from when it was recorded, if
        that is later: backdating must not get round the notice a birthday needs."""
        row = self.conn.execute(
            "SELECT MAX(occurred_at, recorded_at) FROM operations WHERE customer_id = ? "
            "AND kind = 'profile' AND json_extract(request, '$.birthday') IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            (customer_id,),
        ).fetchone()
        if row is not None:
            return str(row[0])
        row = self.conn.execute(
            "SELECT MAX(enrolled_at, recorded_at) FROM customers WHERE id = ?", (customer_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def birthdays_on(self, month_day: tuple[str, ...]) -> list[Customer]:
        """Customers whose birthday falls on one of these MM-DD days."""
        marks = ", ".join("?" for _ in month_day)
        rows = self.conn.execute(
            "SELECT id, enrolled_at, name, email, phone, birthday, referred_by FROM customers "
            f"WHERE substr(birthday, 6, 5) IN ({marks}) ORDER BY id",
            month_day,
        )
        return [Customer(*row) for row in rows]

    def points_released(self, first: date, last: date) -> int:
        """Points that stopped being pending on a day in [first, last]."""
        row = self.conn.execute(
            "SELECT COALESCE(SUM(e.points), 0) FROM lots l JOIN entries e ON e.id = l.id "
            "WHERE l.available_on > l.earned_on AND l.available_on BETWEEN ? AND ?",
            (first.isoformat(), last.isoformat()),
        ).fetchone()
        return int(row[0])

    def copy_to(self, path: Path) -> Ledger:
        """A private copy of the ledger, for a dry run that must see its own writes."""
        target = sqlite3.connect(path, isolation_level=None)
        with self._translate_busy():
            self.conn.backup(target)
        copy = Ledger(target, path)
        copy.conn.execute("PRAGMA recursive_triggers = ON")
        return copy

    def last_run(self, command: str) -> str | None:
        row = self.conn.execute(
            "SELECT as_of FROM runs WHERE command = ? ORDER BY as_of DESC, id DESC LIMIT 1",
            (command,),
        ).fetchone()
        return None if row is None else str(row[0])

    def add_run(
        self,
        command: str,
        as_of: str | None,
        started_at: datetime,
        finished_at: datetime,
        summary: str,
    ) -> None:
        self.conn.execute(
            "INSERT INTO runs (command, as_of, started_at, finished_at, summary) "
            "VALUES (?, ?, ?, ?, ?)",
            (command, as_of, format_utc(started_at), format_utc(finished_at), summary),
        )

    def _tip(self, table: str) -> tuple[int, str]:
        tip = self._tips.get(table)
        if tip is None:
            row = self.conn.execute(
                f"SELECT id, hash FROM {table} ORDER BY id DESC LIMIT 1"
            ).fetchone()
            tip = (row[0], row[1]) if row else (0, "")
            if self._depth:
                self._tips[table] = tip
        return tip

    def append(
        self,
        op: NewOperation,
        entries: Sequence[NewEntry],
        recorded_at: datetime,
    ) -> int:
        """Write one operation and its entries, extending both hash chains."""
        recorded = format_utc(recorded_at)
        occurred = format_utc(op.occurred_at)
        op_id, previous = self._tip("operations")
        op_id += 1
        op_row = (
            op_id,
            op.txn,
            op.kind,
            op.customer_id,
            op.event,
            op.amount_cents,
            op.category,
            op.sku,
            op.quantity,
            op.reward,
            op.reason,
            occurred,
            recorded,
            op.ruleset,
            canonical_request(op.request),
            len(entries),
            sum(entry.points for entry in entries),
        )
        op_hash = chain_hash(previous, op_row)
        self.conn.execute(
            f"INSERT INTO operations ({_OPERATION_COLUMNS}, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*op_row, op_hash),
        )
        self._moved("operations", op_id, op_hash)
        if op.txn is not None:
            self._operations.pop(op.txn, None)
        self._touched(op.customer_id, tier=op.kind == "tier")
        entry_id, previous = self._tip("entries")
        rows = []
        lots: list[tuple[object, ...]] = []
        draws: list[tuple[int, int, int]] = []
        for entry in entries:
            entry_id += 1
            row = (
                entry_id,
                op_id,
                entry.customer_id or op.customer_id,
                entry.kind,
                entry.points,
                op.amount_cents,
                occurred,
                recorded,
                entry.rule,
                entry.reward,
                entry.reason,
                op.txn,
                op.ruleset,
                entry.detail,
            )
            previous = chain_hash(previous, row)
            rows.append((*row, previous))
            if entry.rule in self._rule_totals:
                self._rule_totals[entry.rule] += entry.points
            if entry.lot is not None:
                terms = entry.lot
                lots.append(
                    (
                        entry_id,
                        row[2],
                        terms.earned_on.isoformat(),
                        terms.available_on.isoformat(),
                        None if terms.expires_on is None else terms.expires_on.isoformat(),
                    )
                )
            draws.extend((entry_id, lot_id, points) for lot_id, points in entry.draws)
        self.conn.executemany(
            f"INSERT INTO entries ({_ENTRY_COLUMNS}, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        if rows:
            self._moved("entries", entry_id, previous)
        for entry in entries:
            if entry.customer_id is not None:
                self._touched(entry.customer_id, tier=entry.kind == "tier")
        self._insert_chained("lots", _LOT_COLUMNS, lots)
        draw_id, _ = self._tip("draws")
        self._insert_chained(
            "draws", _DRAW_COLUMNS, [(draw_id + n, *d) for n, d in enumerate(draws, 1)]
        )
        return op_id

    def add_refund(self, op_id: int, purchase_op_id: int, amount_cents: int, clawback: int) -> None:
        self._memo.clear()  # the purchase's tier history changes; refunds are rare
        self._insert_chained(
            "refunds", _REFUND_COLUMNS, [(op_id, purchase_op_id, amount_cents, clawback)]
        )

    def _insert_chained(self, table: str, columns: str, rows: Sequence[tuple[object, ...]]) -> None:
        """Insert rows (each starting with its id, ascending) extending the table's chain."""
        if not rows:
            return
        _, previous = self._tip(table)
        chained = []
        for row in rows:
            previous = chain_hash(previous, row)
            chained.append((*row, previous))
        marks = ", ".join("?" * (len(rows[0]) + 1))
        self.conn.executemany(f"INSERT INTO {table} ({columns}, hash) VALUES ({marks})", chained)
        last = rows[-1][0]
        assert isinstance(last, int)
        self._moved(table, last, previous)

    def _moved(self, table: str, last_id: int, last_hash: str) -> None:
        if self._depth:
            self._tips[table] = (last_id, last_hash)

    def _touched(self, customer_id: str, *, tier: bool) -> None:
        """Forget what was remembered of a customer who was just written to. Only
        a tier operation changes their recorded tier and manual override."""
        known = self._memo.pop(customer_id, None)
        if known and not tier:
            self._memo[customer_id] = {k: v for k, v in known.items() if k in _KEPT}

    # --- reports ---
    # Read-only aggregates for `loyalty report` (reports.py shapes them). Bounds are
    # stored UTC times, compared as text so the m004 indexes serve them: `start`
    # inclusive, `end` exclusive; `until` (exclusive) is the end of the as-of day,
    # so "as of" means the ledger as it stood then. Every query returns either a
    # few numbers or one row per customer, rule, tier or time bucket, never entries.

    def report_first_activity(self) -> str | None:
        """The earliest business time of any entry or purchase (one index seek per kind)."""
        parts = ["SELECT MIN(occurred_at) AS m FROM entries WHERE kind = ?" for _ in ENTRY_KINDS]
        parts.append("SELECT MIN(occurred_at) AS m FROM operations WHERE kind = 'purchase'")
        row = self.conn.execute(
            f"SELECT MIN(m) FROM ({' UNION ALL '.join(parts)})", ENTRY_KINDS
        ).fetchone()
        return None if row[0] is None else str(row[0])

    def report_members(self, start: str, end: str, until: str) -> tuple[int, int]:
        """(customers enrolled by `until`, customers enrolled in [start, end))."""
        total, new = self.conn.execute(
            "SELECT COALESCE(SUM(enrolled_at < ?), 0), "
            "COALESCE(SUM(enrolled_at >= ? AND enrolled_at < ?), 0) FROM customers",
            (until, start, end),
        ).fetchone()
        return int(total), int(new)

    @contextmanager
    def report_snapshot(self) -> Iterator[None]:
        """One read transaction, so every query of a report sees the same ledger even
        while a till writes (WAL: the writer is not held up)."""
        with self._translate_busy():
            self.conn.execute("BEGIN")
            try:
                yield
            finally:
                self.conn.execute("COMMIT")

    def report_purchasers(self, start: str, end: str) -> tuple[int, int, int, int, int]:
        """In [start, end): (active customers: with a purchase, an event or a
        redemption; purchasing customers; customers with 2 or more purchases;
        purchases; their amount in cents). One pass over the index by customer."""
        row = self.conn.execute(
            "SELECT COUNT(*), SUM(n > 0), SUM(n > 1), SUM(n), SUM(cents) FROM "
            "(SELECT SUM(kind = 'purchase') AS n, "
            "SUM(CASE WHEN kind = 'purchase' THEN amount_cents ELSE 0 END) AS cents "
            "FROM operations INDEXED BY operations_customer_time "
            "WHERE kind IN ('event', 'purchase', 'redeem') "
            "AND occurred_at >= ? AND occurred_at < ? GROUP BY customer_id)",
            (start, end),
        ).fetchone()
        active, buyers, repeat, purchases, cents = (int(v or 0) for v in row)
        return active, buyers, repeat, purchases, cents

    def report_refunds(self, start: str, end: str) -> tuple[int, int]:
        """(refunds, cents refunded) with business time in [start, end)."""
        count, cents = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM operations "
            "WHERE kind = 'refund' AND occurred_at >= ? AND occurred_at < ?",
            (start, end),
        ).fetchone()
        return int(count), int(cents)

    def report_points(self, start: str, end: str) -> dict[str, int]:
        """Points by entry kind with business time in [start, end) ("" for `start`:
        from the beginning). A range of the kind-and-time index per kind."""
        marks = ", ".join("?" for _ in ENTRY_KINDS)
        rows = self.conn.execute(
            "SELECT kind, SUM(points) FROM entries "
            f"WHERE kind IN ({marks}) AND occurred_at >= ? AND occurred_at < ? GROUP BY kind",
            (*ENTRY_KINDS, start, end),
        )
        return {str(kind): int(points) for kind, points in rows}

    def report_overdue(self, until: str, as_of: date) -> int:
        """Points still held at `until` in lots that expired on or before `as_of`. A
        ledger's sum less these is what all the customers' `balance` add up to:
        overdue points count for no one, whether or not the nightly step has
        written their expiry yet."""
        return sum(left for _, left in self._report_overdue(until, as_of))

    def _report_overdue(self, until: str, as_of: date) -> list[tuple[str, int]]:
        """(customer, points) left in lots that expired on or before `as_of`."""
        rows = self.conn.execute(
            "SELECT l.customer_id, e.points - COALESCE((SELECT SUM(d.points) FROM draws d "
            "JOIN entries de ON de.id = d.entry_id WHERE d.lot_id = l.id "
            "AND de.occurred_at < ?), 0) AS remaining "
            "FROM lots l JOIN entries e ON e.id = l.id "
            "WHERE l.expires_on <= ? AND e.occurred_at < ?",
            (until, as_of.isoformat(), until),
        )
        return [(str(cid), int(left)) for cid, left in rows if left > 0]

    def report_customers(self, until: str, as_of: date) -> Iterator[CustomerFigures]:
        """One row per customer enrolled before `until`, by id: (id, name, enrolled_at,
        balance, earned, redeemed, purchases, net spend in cents, first purchase,
        last purchase, last recorded tier). Balance is net of overdue lots."""
        overdue: dict[str, int] = {}
        for cid, left in self._report_overdue(until, as_of):
            overdue[cid] = overdue.get(cid, 0) + left
        rows = self.conn.execute(
            "SELECT c.id, c.name, c.enrolled_at, "
            "COALESCE(e.balance, 0), COALESCE(e.earned, 0), COALESCE(e.redeemed, 0), "
            "COALESCE(p.purchases, 0), COALESCE(p.spend, 0), p.first, p.last, t.tier "
            "FROM customers c "
            "LEFT JOIN (SELECT customer_id, SUM(points) AS balance, "
            "SUM(CASE WHEN kind IN ('enroll', 'earn') THEN points ELSE 0 END) AS earned, "
            "-SUM(CASE WHEN kind = 'redeem' THEN points ELSE 0 END) AS redeemed "
            "FROM entries WHERE occurred_at < ? GROUP BY customer_id) e ON e.customer_id = c.id "
            "LEFT JOIN (SELECT customer_id, SUM(kind = 'purchase') AS purchases, "
            "SUM(CASE kind WHEN 'purchase' THEN amount_cents ELSE -amount_cents END) AS spend, "
            "MIN(CASE WHEN kind = 'purchase' THEN occurred_at END) AS first, "
            "MAX(CASE WHEN kind = 'purchase' THEN occurred_at END) AS last "
            "FROM operations INDEXED BY operations_customer_time "
            "WHERE kind IN ('purchase', 'refund') AND occurred_at < ? GROUP BY customer_id) p "
            "ON p.customer_id = c.id "
            "LEFT JOIN (SELECT customer_id, rule AS tier, MAX(id) FROM entries "
            "WHERE kind = 'tier' AND occurred_at < ? GROUP BY customer_id) t "
            "ON t.customer_id = c.id "
            "WHERE c.enrolled_at < ? ORDER BY c.id",
            (until, until, until, until),
        )
        for cid, name, _, bal, earned, redeemed, buys, spend, first, last, tier in rows:
            yield CustomerFigures(
                cid,
                name,
                bal - overdue.get(cid, 0),
                earned,
                redeemed,
                buys,
                spend,
                first,
                last,
                tier,
            )

    def _rfm_scored(
        self, until: str, shifts: Sequence[tuple[str, int]]
    ) -> tuple[str, list[object]]:
        """A `WITH` clause ending in `scored(customer_id, day, n, spend, r, f, m)`: one
        row per customer with a purchase before `until`, their last purchase's
        shop-local day, their purchases and net spend (less refunds) in cents, and
        their recency, frequency and monetary scores, 1 to 5.

        A score is the quintile of the customer's mid-rank among all the purchasing
        customers: with n of them, `below` worse and `equal` alike (the customer
        included), 1 + 5 (2 below + equal) // (2 n). Equal values score alike; alone,
        or all equal, a customer scores 3. SQLite's window functions do the ranking,
        so memory does not grow with the number of customers.

        `shifts` are (UTC time, seconds): the shop's UTC offset from that time on,
        ascending; they turn the stored UTC time into the shop's local day."""
        cases = " ".join("WHEN last >= ? THEN ?" for _ in shifts[1:][::-1])
        zone: list[object] = []
        for start, seconds in shifts[1:][::-1]:
            zone += [start, f"{seconds:+d} seconds"]
        first = f"{shifts[0][1]:+d} seconds" if shifts else "+0 seconds"
        shift = f"CASE {cases} ELSE ? END" if cases else "?"
        sql = (
            # Purchases and refunds apart: plain MAX/COUNT/SUM over the purchases
            # run twice as fast as CASE expressions over both, and refunds are few.
            "WITH p AS (SELECT customer_id, MAX(occurred_at) AS last, COUNT(*) AS n, "
            "SUM(amount_cents) AS spend FROM operations INDEXED BY operations_customer_time "
            "WHERE kind = 'purchase' AND occurred_at < ? GROUP BY customer_id), "
            "back AS (SELECT customer_id, SUM(amount_cents) AS cents FROM operations "
            "WHERE kind = 'refund' AND occurred_at < ? GROUP BY customer_id), "
            f"d AS (SELECT p.customer_id, date(last, {shift}) AS day, n, "
            "spend - COALESCE(back.cents, 0) AS spend "
            "FROM p LEFT JOIN back ON back.customer_id = p.customer_id), "
            # 2 below + equal = (RANK() - 1) + COUNT(*): with ORDER BY, a window's
            # frame runs to the current row's last peer, so COUNT(*) is below + equal.
            # One sort per measure serves both.
            "scored AS (SELECT customer_id, day, n, spend, "
            "1 + 5 * (RANK() OVER byday - 1 + COUNT(*) OVER byday) / (2 * COUNT(*) OVER ()) AS r, "
            "1 + 5 * (RANK() OVER byn - 1 + COUNT(*) OVER byn) / (2 * COUNT(*) OVER ()) AS f, "
            "1 + 5 * (RANK() OVER byspend - 1 + COUNT(*) OVER byspend) / (2 * COUNT(*) OVER ()) "
            "AS m FROM d WINDOW byday AS (ORDER BY day), byn AS (ORDER BY n), "
            "byspend AS (ORDER BY spend)) "
        )
        return sql, [until, until, *zone, first]

    def report_rfm_counts(
        self, until: str, shifts: Sequence[tuple[str, int]]
    ) -> list[tuple[int, int, int, int]]:
        """Customers per (r, f, m) score: at most 125 rows, whatever the ledger."""
        sql, params = self._rfm_scored(until, shifts)
        rows = self.conn.execute(
            sql + "SELECT r, f, m, COUNT(*) FROM scored GROUP BY r, f, m", params
        )
        return [(int(r), int(f), int(m), int(n)) for r, f, m, n in rows]

    def report_rfm_members(
        self, until: str, shifts: Sequence[tuple[str, int]], scores: Sequence[int]
    ) -> Iterator[tuple[str, str | None, str, int, int, int, int, int]]:
        """The customers whose scores, as r * 100 + f * 10 + m, are among `scores`:
        (id, name, last purchase's local day, purchases, net spend in cents, r, f, m),
        best total score first, then by id."""
        sql, params = self._rfm_scored(until, shifts)
        yield from self.conn.execute(
            sql + "SELECT s.customer_id, c.name, s.day, s.n, s.spend, s.r, s.f, s.m "
            "FROM scored s JOIN customers c ON c.id = s.customer_id "
            "WHERE s.r * 100 + s.f * 10 + s.m IN (SELECT value FROM json_each(?)) "
            "ORDER BY s.r + s.f + s.m DESC, s.customer_id",
            [*params, json.dumps(list(scores))],
        )

    def report_activity(
        self, bounds: Sequence[tuple[str, str]]
    ) -> tuple[dict[int, tuple[int, int]], dict[tuple[int, str], int]]:
        """Per time bucket i, given as [start, end) pairs: {i: (purchases, cents)} and
        {(i, kind): points}. Each bucket is a range seek on the kind-and-time indexes."""
        buckets = json.dumps(list(bounds))
        spans = (
            "WITH b(i, lo, hi) AS (SELECT key, json_extract(value, '$[0]'), "
            "json_extract(value, '$[1]') FROM json_each(?)) "
        )
        sales = {
            int(i): (int(count), int(cents))
            for i, count, cents in self.conn.execute(
                spans + "SELECT b.i, COUNT(*), COALESCE(SUM(o.amount_cents), 0) FROM b "
                "JOIN operations o ON o.kind = 'purchase' "
                "AND o.occurred_at >= b.lo AND o.occurred_at < b.hi GROUP BY b.i",
                (buckets,),
            )
        }
        points = {
            (int(i), str(kind)): int(total)
            for i, kind, total in self.conn.execute(
                spans + "SELECT b.i, k.kind, SUM(e.points) FROM b "
                "CROSS JOIN (SELECT 'enroll' AS kind UNION ALL SELECT 'earn' "
                "UNION ALL SELECT 'redeem' UNION ALL SELECT 'expire') k "
                "JOIN entries e ON e.kind = k.kind "
                "AND e.occurred_at >= b.lo AND e.occurred_at < b.hi GROUP BY b.i, k.kind",
                (buckets,),
            )
        }
        return sales, points

    def report_rules(self, start: str, end: str) -> list[tuple[str, int, int, int, int]]:
        """Per rule, over its award entries (earn, enroll, gift) in [start, end):
        (rule, awards, customers reached, points, cents of the purchases it fired on)."""
        rows = self.conn.execute(
            "SELECT rule, COUNT(*), COUNT(DISTINCT customer_id), SUM(points), "
            "COALESCE(SUM(amount_cents), 0) FROM entries "
            "WHERE kind IN ('earn', 'enroll', 'gift') AND occurred_at >= ? AND occurred_at < ? "
            "AND rule IS NOT NULL GROUP BY rule ORDER BY SUM(points) DESC, rule",
            (start, end),
        )
        return [(str(r), int(a), int(c), int(p), int(m)) for r, a, c, p, m in rows]

    def report_tier_counts(self, until: str) -> dict[str | None, int]:
        """Customers enrolled before `until` by the tier their last tier entry before
        then recorded; None counts those without one (still in the first tier)."""
        rows = self.conn.execute(
            "SELECT t.tier, COUNT(*) FROM customers c LEFT JOIN "
            "(SELECT customer_id, rule AS tier, MAX(id) FROM entries "
            "WHERE kind = 'tier' AND occurred_at < ? GROUP BY customer_id) t "
            "ON t.customer_id = c.id WHERE c.enrolled_at < ? GROUP BY t.tier",
            (until, until),
        )
        return {None if tier is None else str(tier): int(count) for tier, count in rows}

    def report_tier_moves(self, start: str, end: str) -> list[tuple[str, str, int, int]]:
        """Tier changes in [start, end): (from, to, changes, customers)."""
        rows = self.conn.execute(
            "SELECT json_extract(request, '$.from'), json_extract(request, '$.to'), "
            "COUNT(*), COUNT(DISTINCT customer_id) FROM operations "
            "WHERE kind = 'tier' AND event = 'change' AND occurred_at >= ? AND occurred_at < ? "
            "GROUP BY 1, 2 ORDER BY 1, 2",
            (start, end),
        )
        return [(str(a), str(b), int(n), int(c)) for a, b, n, c in rows]

    def report_lots(self, until: str, as_of: date) -> list[tuple[str, str | None, bool, int]]:
        """What the lots held at the end of `as_of`, by (earn month, the month of the
        last day they can be spent or None, pending then, points). Lots past their
        expiry are left out: they are gone, written off or not."""
        day = as_of.isoformat()
        rows = self.conn.execute(
            "SELECT substr(l.earned_on, 1, 7), "
            "substr(date(l.expires_on, '-1 day'), 1, 7), l.available_on > ?, "
            "SUM(e.points - COALESCE(d.drawn, 0)) FROM lots l JOIN entries e ON e.id = l.id "
            "LEFT JOIN (SELECT dr.lot_id, SUM(dr.points) AS drawn FROM draws dr "
            "JOIN entries de ON de.id = dr.entry_id WHERE de.occurred_at < ? "
            "GROUP BY dr.lot_id) d ON d.lot_id = l.id "
            "WHERE e.occurred_at < ? AND (l.expires_on IS NULL OR l.expires_on > ?) "
            "GROUP BY 1, 2, 3 HAVING SUM(e.points - COALESCE(d.drawn, 0)) != 0 ORDER BY 1, 2, 3",
            (day, until, until, day),
        )
        return [(str(m), None if x is None else str(x), bool(p), int(n)) for m, x, p, n in rows]

    # verification -----------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Recompute both hash chains and check the ledger's invariants."""
        report = VerifyReport()
        conn = self.conn
        report.customers = conn.execute("SELECT count(*) FROM customers").fetchone()[0]
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            report.problems.append(f"SQLite integrity check failed: {check}")
        report.operations, bad_op, report.operations_head = self._walk_chain(
            "operations", _OPERATION_COLUMNS
        )
        report.entries, bad_entry, report.entries_head = self._walk_chain("entries", _ENTRY_COLUMNS)
        if bad_entry is not None:
            report.first_bad_entry = bad_entry
            report.problems.append(
                f"entry #{bad_entry} does not match the hash chain: it, or the one before it, "
                "was changed, inserted or removed outside loyalty"
            )
        if bad_op is not None:
            report.problems.append(
                f"operation #{bad_op} does not match the hash chain: it, or the one before it, "
                "was changed, inserted or removed outside loyalty"
            )
        for table, columns, noun in _SIDE_CHAINS:
            _, bad, _ = self._walk_chain(table, columns)
            if bad is not None:
                report.problems.append(
                    f"{noun} #{bad} does not match the hash chain: it, or the one before it, "
                    "was changed, inserted or removed outside loyalty"
                )
        present = {
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")
        }
        if missing := sorted(TRIGGERS - present):
            report.problems.append(
                f"the append-only protection was removed: trigger{'s' if len(missing) > 1 else ''}"
                f" {', '.join(missing)} missing"
            )
        for op_id, recorded, points, found, found_points in conn.execute(
            "SELECT o.id, o.entry_count, o.points, COUNT(e.id), COALESCE(SUM(e.points), 0) "
            "FROM operations o LEFT JOIN entries e ON e.op_id = o.id GROUP BY o.id "
            "HAVING o.entry_count != COUNT(e.id) OR o.points != COALESCE(SUM(e.points), 0) "
            "LIMIT 5"
        ):
            report.problems.append(
                f"operation #{op_id} wrote {recorded} entries worth {points} points, but the "
                f"ledger holds {found} worth {found_points}: entries were removed or added"
            )
        for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
            report.problems.append(f"{table} row {rowid} refers to a missing {parent} row")
        placeholders = ", ".join("?" for _ in ENTRY_KINDS)
        for entry_id, kind in conn.execute(
            f"SELECT id, kind FROM entries WHERE kind NOT IN ({placeholders}) LIMIT 5",
            ENTRY_KINDS,
        ):
            report.problems.append(f"entry #{entry_id} has unknown kind '{kind}'")
        # The lots must account for every point: each credit opens a lot, no lot
        # gives more than it holds, and every debit but a refund's is fully drawn
        # from lots. So a balance can only go negative through a refund the rules
        # allowed to (refund_shortfall: allow_negative).
        for (entry_id,) in conn.execute(
            "SELECT e.id FROM entries e LEFT JOIN lots l ON l.id = e.id "
            "WHERE e.points > 0 AND l.id IS NULL LIMIT 5"
        ):
            report.problems.append(f"entry #{entry_id} is a credit without a lot")
        for lot_id, drawn, held in conn.execute(
            "SELECT d.lot_id, SUM(d.points), e.points FROM draws d JOIN entries e "
            "ON e.id = d.lot_id GROUP BY d.lot_id HAVING SUM(d.points) > e.points LIMIT 5"
        ):
            report.problems.append(f"lot #{lot_id} gave {drawn} points but held only {held}")
        for entry_id, points, drawn in conn.execute(
            "SELECT e.id, e.points, COALESCE((SELECT SUM(d.points) FROM draws d "
            "WHERE d.entry_id = e.id), 0) AS drawn FROM entries e "
            "WHERE e.points < 0 "
            "AND (drawn > -e.points OR (e.kind != 'refund' AND drawn != -e.points)) LIMIT 5"
        ):
            report.problems.append(
                f"entry #{entry_id} takes {-points} points but draws {drawn} from lots"
            )
        return report

    def _walk_chain(self, table: str, columns: str) -> tuple[int, int | None, str | None]:
        """(rows, id of the first row whose hash does not match, the newest hash)."""
        count, previous, first_bad = 0, "", None
        for row in self.conn.execute(f"SELECT {columns}, hash FROM {table} ORDER BY id"):
            count += 1
            expected = chain_hash(previous, row[:-1])
            if first_bad is None and expected != row[-1]:
                first_bad = row[0]
            # Follow the stored hashes, so one bad row is reported once, not
            # as a cascade through every row after it.
            previous = row[-1]
        return count, first_bad, previous or None
