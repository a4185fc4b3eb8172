"""`loyalty db copy SRC DEST`: a whole ledger moved between a file and a
PostgreSQL server (either way), every row with its id and hash unchanged.

The source is read in one snapshot; the destination is written in one
transaction, verified inside it (every check `verify` makes, and each chain's
head must be the source's), and committed only if it passes: a copy that
fails leaves the destination as it was. A destination file is made new and
removed again if the copy fails; a destination database must hold an empty
ledger (`loyalty db init`) or none yet (then it is created, as `db init` would).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadArgument
from . import verify as checks
from .dialect import Conn
from .schema import DRAW_COLUMNS, ENTRY_FIELDS, OP_FIELDS, RUN_FIELDS, insert_many

ITEM_COLUMNS = "op_id, number, sku, category, quantity, amount_cents, points, earned_by"

CUSTOMER_COLUMNS = (
    "id, name, email, phone, birthday, referred_by, enrolled, recorded, birthday_set, salt"
)
# In an order that every reference points backwards (customers are ordered by
# their referrers apart, see _customers).
TABLES = (
    ("rulesets", "id, version, source, text, timezone, first_used"),
    ("customers", CUSTOMER_COLUMNS),
    ("operations", f"{OP_FIELDS}, hash, store, writer"),
    ("items", ITEM_COLUMNS),
    ("entries", ENTRY_FIELDS),
    ("draws", DRAW_COLUMNS),
    ("merges", "op_id, duplicate, keep"),  # keyed by op_id, its first column
    ("runs", f"{RUN_FIELDS}, hash"),
)
_CHUNK = 5000  # rows read per statement: memory stays flat in the ledger's size


@dataclass
class CopyResult:
    source: str
    destination: str
    rows: dict[str, int] = field(default_factory=dict)
    report: checks.VerifyReport = field(default_factory=checks.VerifyReport)

    def to_json(self) -> dict[str, object]:
        verified = self.report.to_json()
        return {
            "ok": self.report.ok,
            "source": self.source,
            "destination": self.destination,
            "rows": self.rows,
            "operations_head": verified["operations_head"],
            "chains": verified["chains"],
            "problems": verified["problems"],
        }


def _chunks(conn: Conn, table: str, columns: str) -> Iterator[list[Any]]:
    """The table's rows in key order, a chunk at a time (keyset: after the last
    key; an item's key is its operation and its line number)."""
    last: Any = None
    key = "op_id, number" if table == "items" else "op_id" if table == "merges" else "id"
    after = "(op_id > ?1 OR (op_id = ?1 AND number > ?2))" if table == "items" else f"{key} > ?1"
    while True:
        if last is None:
            sql = f"SELECT {columns} FROM {table} ORDER BY {key} LIMIT {_CHUNK}"
            rows = conn.execute(sql).fetchall()
        else:
            sql = f"SELECT {columns} FROM {table} WHERE {after} ORDER BY {key} LIMIT {_CHUNK}"
            rows = conn.execute(sql, last).fetchall()
        if not rows:
            return
        yield [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]
        last = rows[-1][:2] if table == "items" else rows[-1][:1]


def _customers(conn: Conn) -> list[tuple[Any, ...]]:
    """Every customer, each after the customer who referred them (a database
    checks each reference as the row goes in)."""
    rows = {row[0]: row for chunk in _chunks(conn, "customers", CUSTOMER_COLUMNS) for row in chunk}
    done: dict[str, None] = {}

    def place(cid: str) -> None:
        chain = []
        while cid not in done and cid in rows:
            chain.append(cid)
            referrer = rows[cid][5]
            if referrer is None or referrer in chain:
                break
            cid = referrer
        for each in reversed(chain):
            done.setdefault(each, None)

    for cid in rows:
        place(cid)
    return [rows[cid] for cid in done]


def empty(conn: Conn) -> bool:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM operations) + (SELECT count(*) FROM customers) "
        "+ (SELECT count(*) FROM rulesets) + (SELECT count(*) FROM runs)"
    ).fetchone()
    return int(row[0]) == 0


def transfer(source: Conn, destination: Conn) -> dict[str, int]:
    """Every row of `source` into `destination`, ids and hashes as they are; the
    rows per table. Also a dry run's private file copy of a PostgreSQL ledger
    (Store.copy_to)."""
    rows: dict[str, int] = {}
    for table, columns in TABLES:
        count = 0
        chunks = [_customers(source)] if table == "customers" else _chunks(source, table, columns)
        for chunk in chunks:
            insert_many(destination, table, columns, chunk)
            count += len(chunk)
        rows[table] = count
    return rows


def copy(source: Conn, destination: Conn, result: CopyResult) -> None:
    """Every row of `source` into the empty `destination`, then verify it there
    (inside the caller's transactions: read one snapshot, write one transaction)."""
    if not empty(destination):
        raise BadArgument(
            f"db copy writes into an empty ledger only, and {result.destination} holds one; "
            "name a new file, or a database with no ledger (or a freshly initialised one)",
            field="DEST",
        )
    source_report = checks.VerifyReport()
    checks.chain(source, source_report)
    result.rows = transfer(source, destination)
    report = checks.verify(destination)
    if report.ok and report.chains != source_report.chains:
        report.problems.append(
            "the copy's hash chains do not end where the source's do: the source changed "
            "while it was read, or a row was not copied"
        )
    result.report = report


class _Failed(Exception):
    """The copy did not verify: roll the destination back."""


def run(source: str, destination: str, timeout: float) -> CopyResult:
    """Open both ledgers (a path, or a postgresql:// URL each), copy, verify, and
    commit only a copy that verifies (see the module's notes)."""
    import os
    from pathlib import Path

    from . import Store
    from .connection import Connection
    from .dialect import is_url

    def same(a: str, b: str) -> bool:
        if is_url(a) or is_url(b):
            return a == b
        return os.path.realpath(a) == os.path.realpath(b)

    if same(source, destination):
        raise BadArgument("db copy needs two different ledgers: SRC and DEST are the same")
    src = (
        Store.open_url(source, writer="copy", timeout=timeout)
        if is_url(source)
        else Store.open(Path(source), create=False, timeout=timeout)
    )
    created: Path | None = None
    try:
        if is_url(destination):
            from .postgres import init

            init(destination, [], timeout)  # creates the schema if there is none
            dest = Store.open_url(destination, writer="copy", timeout=timeout)
        else:
            path = Path(destination)
            if path.exists() or path.is_symlink():
                raise BadArgument(
                    f"db copy writes a new ledger file, and {destination} exists; name a new file",
                    field="DEST",
                )
            if not path.parent.is_dir():
                raise BadArgument(
                    f"db copy: folder {path.parent} does not exist; create it first", field="DEST"
                )
            dest = Store.open(path, create=True, timeout=timeout)
            created = path
        result = CopyResult(str(src.path), str(dest.path))
        try:
            # The destination's transaction holds its ledger-wide lock (Store.transaction).
            with src.snapshot(), dest.transaction():
                copy(src.conn, dest.conn, result)
                if not result.report.ok:
                    raise _Failed()
                if not isinstance(dest.connection, Connection):
                    dest.connection.after_copy()
            created = None  # it is the copy now: keep it
        except _Failed:
            pass
        finally:
            dest.close()
    finally:
        src.close()
        if created is not None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{created}{suffix}").unlink(missing_ok=True)
    return result
