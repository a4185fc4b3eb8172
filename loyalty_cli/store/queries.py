"""Read-side questions the commands ask of the ledger: a customer's points as of
a time, their history, the shop's time zone, customers by birthday, the runs
table. Reports have their own module (reports.py here)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import NamedTuple

from ..clock import day_number, from_day_number, stamp
from ..lots import Lot
from .dialect import Conn
from .schema import NOT_MERGED, keeper

_FAR = 1 << 62  # after every stored time


class HistoryRow(NamedTuple):
    """One entry as `history` shows it, with what it needs from its operation."""

    id: int
    op_id: int
    occurred: int
    kind: str
    points: int
    rule: str | None
    reward: str | None
    reason: str | None
    detail: str | None
    amount_cents: int | None
    txn: str | None
    version: bytes | None  # the rules version of its operation
    customer_id: str
    store: str | None  # a purchase's store or till


# A customer's own id and those of the duplicates merged into them (?1: the id).
_MINE = "SELECT CAST(?1 AS TEXT) UNION ALL SELECT duplicate FROM merges WHERE keep = ?1"


def exists(conn: Conn, customer_id: str) -> str | None:
    """The customer's name, "" if they have none; None if they are not enrolled."""
    row = conn.execute("SELECT name FROM customers WHERE id = ?", (customer_id,)).fetchone()
    return None if row is None else (row[0] or "")


def points_by_kind(conn: Conn, customer_id: str, until: int | None) -> dict[str, int]:
    """Points by entry kind, of entries that occurred by `until` (None: all)."""
    rows = conn.execute(
        f"SELECT kind, SUM(points) FROM entries WHERE customer_id IN ({_MINE}) "
        "AND occurred <= ?2 GROUP BY kind",
        (customer_id, _FAR if until is None else until),
    )
    return {str(kind): int(total) for kind, total in rows}


def lots(conn: Conn, customer_id: str, until: int | None) -> list[Lot]:
    """The customer's lots as they stood at `until`, with what was left in each."""
    limit = _FAR if until is None else until
    rows = conn.execute(
        "SELECT e.id, e.earned_on, e.available_on, e.expires_on, e.points - "
        "COALESCE((SELECT SUM(d.points) FROM draws d JOIN entries de ON de.id = d.entry_id "
        "WHERE d.lot_id = e.id AND de.occurred <= ?1), 0) "
        # By customer: with the kinds listed and a time bound, SQLite would
        # otherwise take entries_time and read every credit up to `until` (0.24 s
        # a balance on a million entries, against 0.1 ms this way).
        "FROM entries e INDEXED BY entries_customer "
        f"WHERE e.customer_id IN ({_MINE.replace('?1', '?2')}) "
        "AND e.kind IN ('enroll', 'earn', 'adjust', 'transfer', 'merge') "
        "AND e.points > 0 AND e.occurred <= ?1 ORDER BY e.id",
        (limit, customer_id),
    )
    return [stored_lot(*row) for row in rows if row[4]]


def stored_lot(lot_id: int, earned: int, available: int, expires: int | None, left: int) -> Lot:
    """A lot from its credit entry's stored days and what is left in it."""
    return Lot(
        lot_id,
        from_day_number(earned),
        from_day_number(available),
        None if expires is None else from_day_number(expires),
        left,
    )


_HISTORY = (
    "SELECT e.id, e.op_id, e.occurred, e.kind, e.points, e.rule, e.reward, e.reason, e.detail, "
    "o.amount_cents, o.txn, (SELECT version FROM rulesets WHERE id = o.ruleset), e.customer_id, "
    "o.store "
    "FROM entries e JOIN operations o ON o.id = e.op_id "
)


def history(conn: Conn, customer_id: str, limit: int | None, until: int | None) -> list[HistoryRow]:
    rows = conn.execute(
        _HISTORY + f"WHERE e.customer_id IN ({_MINE}) AND e.occurred <= ?2 "
        "ORDER BY e.id DESC LIMIT ?3",
        (customer_id, _FAR if until is None else until, _FAR if limit is None else limit),
    )
    return [HistoryRow(*row) for row in rows]


def entries_of(conn: Conn, op_ids: Sequence[int]) -> list[HistoryRow]:
    """Every entry of these operations (each operation's entries are the ids after
    the previous operation's last_entry)."""
    rows = conn.execute(
        _HISTORY + "JOIN (SELECT CAST(value AS INTEGER) AS id FROM json_each(?)) w ON w.id = o.id "
        "WHERE e.id > COALESCE((SELECT p.last_entry FROM operations p WHERE p.id < o.id "
        "ORDER BY p.id DESC LIMIT 1), 0) AND e.id <= o.last_entry ORDER BY e.id",
        (json.dumps(list(op_ids)),),
    )
    return [HistoryRow(*row) for row in rows]


def rules_texts(conn: Conn, versions: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(source, text) of each rules version asked for (as hex)."""
    rows = conn.execute(
        "SELECT lower(hex(version)), source, text FROM rulesets "
        "WHERE lower(hex(version)) IN (SELECT value FROM json_each(?))",
        (json.dumps(list(versions)),),
    )
    return {str(v): (str(s), str(t)) for v, s, t in rows}


def shop_timezone(conn: Conn) -> str | None:
    """The time zone of the rules that wrote last: how `balance`, which reads no
    rules, knows which day it is in the shop."""
    row = conn.execute(
        "SELECT timezone FROM rulesets ORDER BY first_used DESC, id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else str(row[0])


def customer_ids(conn: Conn) -> list[str]:
    """Every customer, a merged duplicate aside (it is part of its keeper's account)."""
    rows = conn.execute(f"SELECT id FROM customers WHERE {NOT_MERGED} ORDER BY id")
    return [str(cid) for (cid,) in rows]


def merged_into(conn: Conn, customer_id: str) -> tuple[str, int, str] | None:
    """(keeper, when, why) of a merged duplicate; None for any other id."""
    row = conn.execute(
        "SELECT m.keep, o.occurred, o.reason FROM merges m JOIN operations o ON o.id = m.op_id "
        "WHERE m.duplicate = ?",
        (customer_id,),
    ).fetchone()
    return None if row is None else (str(row[0]), int(row[1]), str(row[2] or ""))


def duplicates_of(conn: Conn, customer_id: str) -> list[tuple[str, int, str]]:
    """(duplicate, when, why) of each account merged into this one, oldest first."""
    rows = conn.execute(
        "SELECT m.duplicate, o.occurred, o.reason FROM merges m JOIN operations o "
        "ON o.id = m.op_id WHERE m.keep = ? ORDER BY m.op_id",
        (customer_id,),
    )
    return [(str(d), int(at), str(why or "")) for d, at, why in rows]


def enrolled_before(conn: Conn, until: int) -> list[str]:
    """Customers enrolled before `until` (a stored time), by id."""
    rows = conn.execute(
        f"SELECT id FROM customers WHERE enrolled < ? AND {NOT_MERGED} ORDER BY id", (until,)
    )
    return [str(cid) for (cid,) in rows]


def birthdays_on(conn: Conn, month_days: Sequence[str]) -> list[str]:
    """Customers whose birthday falls on one of these MM-DD days."""
    marks = ", ".join("?" for _ in month_days)
    rows = conn.execute(
        f"SELECT id FROM customers WHERE substr(birthday, 6, 5) IN ({marks}) AND {NOT_MERGED} "
        "ORDER BY id",
        tuple(month_days),
    )
    return [str(cid) for (cid,) in rows]


def points_released(conn: Conn, first: date, last: date) -> int:
    """Points that stopped being pending on a day in [first, last]."""
    row = conn.execute(
        "SELECT COALESCE(SUM(points), 0) FROM entries INDEXED BY entries_lots "
        "WHERE earned_on IS NOT NULL AND available_on > earned_on AND available_on BETWEEN ? AND ?",
        (day_number(first), day_number(last)),
    ).fetchone()
    return int(row[0])


def last_run(conn: Conn, command: str) -> str | None:
    row = conn.execute(
        "SELECT as_of FROM runs WHERE command = ? ORDER BY as_of DESC, id DESC LIMIT 1",
        (command,),
    ).fetchone()
    return None if row is None else str(row[0])


def add_run(
    conn: Conn,
    command: str,
    as_of: str | None,
    started_at: datetime,
    finished_at: datetime,
    summary: str,
) -> None:
    """Record an unattended run, extending the runs' own chain."""
    from .chain import run_hash  # hashing: not for the reads most commands are

    last = conn.execute("SELECT id, hash FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    run_id, previous = (1, b"") if last is None else (last[0] + 1, last[1])
    run = (run_id, command, as_of, stamp(started_at), stamp(finished_at), summary)
    conn.execute(
        "INSERT INTO runs (id, command, as_of, started, finished, summary, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (*run, run_hash(previous, run)),
    )


class ProfileEvent(NamedTuple):
    """A profile, consent or erasure operation, as a customer's record shows it."""

    id: int
    kind: str  # enroll, profile, consent, erase
    occurred: int
    recorded: int
    event: str | None  # consent: given or withdrawn
    category: str | None  # consent: the channel
    reason: str | None  # profile: the fields changed; consent: its source; erase: why


def profile_events(conn: Conn, customer_id: str, kinds: Sequence[str]) -> list[ProfileEvent]:
    """The customer's operations of these kinds, oldest first (operations_customer)."""
    marks = ", ".join("?" for _ in kinds)
    rows = conn.execute(
        "SELECT id, kind, occurred, recorded, event, category, reason FROM operations "
        f"WHERE customer_id = ? AND kind IN ({marks}) ORDER BY id",
        (customer_id, *kinds),
    )
    return [ProfileEvent(*row) for row in rows]


def consent_by_customer(conn: Conn, channel: str) -> dict[str, tuple[str, int]]:
    """Each customer's latest consent change on `channel`: (given|withdrawn, occurred)."""
    rows = conn.execute(
        "SELECT customer_id, event, occurred FROM operations WHERE id IN (SELECT MAX(id) "
        "FROM operations WHERE kind = 'consent' AND category = ? GROUP BY customer_id)",
        (channel,),
    )
    return {str(cid): (str(event), int(at)) for cid, event, at in rows}


def erased(conn: Conn, customer_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """(when, why) each of these customers was erased, for those who were."""
    rows = conn.execute(
        "SELECT customer_id, occurred, reason FROM operations WHERE kind = 'erase' "
        "AND customer_id IN (SELECT value FROM json_each(?))",
        (json.dumps(list(customer_ids)),),
    )
    return {str(cid): (int(at), str(reason)) for cid, at, reason in rows}


def last_purchases(conn: Conn) -> dict[str, int]:
    """Each customer's latest purchase time (operations_customer)."""
    rows = conn.execute(
        f"SELECT {keeper('customer_id')}, MAX(occurred) FROM operations "
        f"WHERE kind = 'purchase' GROUP BY {keeper('customer_id')}"
    )
    return {str(cid): int(at) for cid, at in rows}


def tier_changes_since(conn: Conn, since: int) -> list[tuple[int, str, str, str, int]]:
    """Tier changes (not floors set by hand) from `since` on: (operation, customer,
    tier, from tier, occurred), oldest first (operations_time)."""
    rows = conn.execute(
        "SELECT id, customer_id, tier, tier_from, occurred FROM operations "
        "WHERE kind = 'tier' AND occurred >= ? AND event = 'change' ORDER BY id",
        (since,),
    )
    return [(int(i), str(c), str(t), str(f), int(o)) for i, c, t, f, o in rows]


def given_notices(conn: Conn, keys: Sequence[str]) -> dict[str, int]:
    """When each of these notices was given, for those that were."""
    rows = conn.execute(
        "SELECT key, given FROM notices_given WHERE key IN (SELECT value FROM json_each(?))",
        (json.dumps(list(keys)),),
    )
    return {str(key): int(at) for key, at in rows}


def mark_given(conn: Conn, rows: Sequence[tuple[object, ...]]) -> None:
    """(key, customer, kind, given, how) rows, none of them given before."""
    from .schema import insert_many

    insert_many(conn, "notices_given", "key, customer_id, kind, given, how", rows)


def messages_sent(conn: Conn, keys: Sequence[str]) -> set[str]:
    """Which of these messages were sent before."""
    rows = conn.execute(
        "SELECT key FROM messages_sent WHERE key IN (SELECT value FROM json_each(?))",
        (json.dumps(list(keys)),),
    )
    return {str(key) for (key,) in rows}


def record_sent(
    conn: Conn,
    message: tuple[object, ...],
    notice: tuple[object, ...] | None,
) -> None:
    """A sent message (key, customer, template, sent, Message-ID) and, when it gave
    a notice not given before, that notice (key, customer, kind, given, how)."""
    conn.execute(
        "INSERT INTO messages_sent (key, customer_id, template, sent, message_id) "
        "VALUES (?, ?, ?, ?, ?)",
        message,
    )
    if notice is not None:
        conn.execute(
            "INSERT INTO notices_given (key, customer_id, kind, given, how) "
            "SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM notices_given WHERE key = ?)",
            (*notice, notice[0]),
        )


def sales_of(
    conn: Conn, wanted: Sequence[tuple[str, str, int]]
) -> dict[tuple[str, str], list[str]]:
    """For each (customer, SKU or category, until: seconds), the txns of that
    customer's purchases up to `until` that sold it, newest first: where a
    cancellation with no link to its sale returns its items. Through the
    customer index, then each purchase's lines by their key."""
    out: dict[tuple[str, str], list[str]] = {}
    for customer_id, what, until in wanted:
        rows = conn.execute(
            "SELECT o.txn FROM operations o INDEXED BY operations_customer "
            "WHERE o.customer_id = ?1 AND o.kind = 'purchase' AND o.occurred <= ?3 "
            # lower() on both sides: ASCII case folded alike by SQLite and PostgreSQL
            # (a C-locale server), where COLLATE NOCASE is SQLite's alone.
            "AND o.txn IS NOT NULL AND (lower(o.sku) = lower(?2) OR lower(o.category) = "
            "lower(?2) OR EXISTS (SELECT 1 FROM items i WHERE i.op_id = o.id AND "
            "(lower(i.sku) = lower(?2) OR lower(i.category) = lower(?2)))) "
            "ORDER BY o.occurred DESC, o.id DESC LIMIT 50",
            (customer_id, what, until),
        ).fetchall()
        out[(customer_id, what.casefold())] = [str(txn) for (txn,) in rows]
    return out


class ItemRow(NamedTuple):
    op_id: int
    number: int
    sku: str | None
    category: str | None
    quantity: int
    amount_cents: int
    points: int


def items_of(conn: Conn, op_ids: Sequence[int]) -> dict[int, list[ItemRow]]:
    """The receipt lines of these operations (a receipt's lines, or what a refund
    returned), by operation, in line order: one primary-key range each."""
    rows = conn.execute(
        "SELECT i.op_id, i.number, i.sku, i.category, i.quantity, i.amount_cents, i.points "
        "FROM (SELECT CAST(value AS INTEGER) AS id FROM json_each(?)) w "
        "JOIN items i ON i.op_id = w.id "
        "ORDER BY i.op_id, i.number",
        (json.dumps(sorted(set(op_ids))),),
    )
    out: dict[int, list[ItemRow]] = {}
    for row in rows:
        out.setdefault(row[0], []).append(ItemRow(*row))
    return out
