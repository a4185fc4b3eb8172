"""Reading the whole history back in the order it was written, for `loyalty
simulate`: every operation with what its request said and the entries it
wrote, and the nightly runs. Streamed (two cursors merged by operation id), so
memory stays flat however long the history."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import NamedTuple

from .dialect import Conn


class Entry(NamedTuple):
    customer_id: str
    kind: str
    points: int
    rule: str | None
    reward: str | None


class PastOp(NamedTuple):
    id: int
    kind: str
    customer_id: str | None
    occurred: int
    recorded: int
    version: str | None  # hex
    txn: str | None
    amount_cents: int | None
    event: str | None
    category: str | None
    sku: str | None
    quantity: int | None
    reward: str | None
    reason: str | None
    tier: str | None
    until: int | None
    refund_of_txn: str | None
    # enroll: the customer's profile (as it stands: contact details may have changed)
    referred_by: str | None
    birthday: str | None
    salt: bytes | None
    store: str | None
    entries: tuple[Entry, ...]
    # A receipt's lines (number, sku, category, quantity, amount_cents); a refund's:
    # the sold lines it returned (number, units).
    items: tuple[tuple[int, str | None, str | None, int, int], ...] = ()


_OPS = (
    "SELECT o.id, o.kind, o.customer_id, o.occurred, o.recorded, lower(hex(r.version)), o.txn, "
    "o.amount_cents, o.event, o.category, o.sku, o.quantity, o.reward, o.reason, o.tier, o.until, "
    "(SELECT p.txn FROM operations p WHERE p.id = o.refund_of), "
    "c.referred_by, c.birthday, c.salt, o.store, o.last_entry "
    "FROM operations o LEFT JOIN rulesets r ON r.id = o.ruleset "
    "LEFT JOIN customers c ON o.kind = 'enroll' AND c.id = o.customer_id "
    "ORDER BY o.id"
)


def operations(conn: Conn, until: int) -> Iterator[PastOp]:
    """Every operation dated up to `until` (seconds), in the order written."""
    ops = conn.execute(_OPS)
    entries = conn.execute(
        "SELECT id, customer_id, kind, points, rule, reward FROM entries ORDER BY id"
    )
    lines = conn.execute(
        "SELECT op_id, number, sku, category, quantity, amount_cents FROM items "
        "ORDER BY op_id, number"
    )
    pending = entries.fetchone()
    line = lines.fetchone()
    last = 0
    for row in ops:
        last_entry = row[-1]
        mine: list[Entry] = []
        # An operation's entries are the ids after the previous operation's last.
        while pending is not None and pending[0] <= last_entry:
            if pending[0] > last:
                mine.append(Entry(*pending[1:]))
            pending = entries.fetchone()
        last = max(last, last_entry)
        items = []
        while line is not None and line[0] <= row[0]:
            if line[0] == row[0]:
                number, sku, category, quantity, cents = line[1:]
                items.append((number, _word(sku), _word(category), quantity, cents))
            line = lines.fetchone()
        if row[3] <= until:
            op = PastOp._make((*row[:-1], tuple(mine), tuple(items)))
            # The games keep a purchase's category and sku for good (Play.facts):
            # one string per distinct word, not one per row.
            yield op._replace(event=_word(op.event), category=_word(op.category), sku=_word(op.sku))


def _word(text: str | None) -> str | None:
    return None if text is None else sys.intern(text)


def nightly_runs(conn: Conn) -> list[tuple[str, int, str | None]]:
    """(as_of, started, first day covered) of each nightly run, in order."""
    out = []
    for as_of, started, summary in conn.execute(
        "SELECT as_of, started, summary FROM runs WHERE command = 'nightly' ORDER BY id"
    ):
        try:
            first = json.loads(summary).get("days_from")
        except (ValueError, AttributeError):
            first = None
        out.append((str(as_of), int(started), first if isinstance(first, str) else None))
    return out


def refunded(conn: Conn, first: int, last: int) -> dict[str, int]:
    """Purchase txn -> how many refunds it has, for the purchases with ids from
    `first` to `last`: a replay keeps those purchases until their last refund,
    and no other, and asks a block of ids at a time (not the whole history)."""
    return {
        str(txn): int(n)
        for txn, n in conn.execute(
            "SELECT p.txn, count(*) FROM operations r JOIN operations p ON p.id = r.refund_of "
            # `|| ''`: not the index on kind (SQLite's unary + does not apply to
            # text on PostgreSQL); refund_of's is the one to use.
            "WHERE r.refund_of BETWEEN ? AND ? AND r.kind || '' = 'refund' GROUP BY p.txn",
            (first, last),
        )
    }


def earliest_ahead(conn: Conn, block: int) -> list[tuple[int, int]]:
    """(first id of a block of `block` operation ids, the earliest time, occurred
    or recorded, of any operation from that block on), in id order: no decision a
    replay makes from there on is dated earlier, so what it folds away before
    that time no later decision can need. One pass over the operations' rows."""
    blocks: dict[int, int] = {}  # block number -> its earliest time
    for op_id, when in conn.execute(
        "SELECT id, CASE WHEN occurred < recorded THEN occurred ELSE recorded END FROM operations"
    ):
        number = op_id // block
        blocks[number] = min(blocks.get(number, when), when)
    out: list[tuple[int, int]] = []
    lowest: int | None = None
    for number in sorted(blocks, reverse=True):
        lowest = blocks[number] if lowest is None else min(lowest, blocks[number])
        out.append((number * block, lowest))
    out.reverse()
    return out


def rules_texts(conn: Conn) -> dict[str, tuple[str, str]]:
    """Every stored rules version (hex) -> (source, text)."""
    return {
        str(v): (str(s), str(t))
        for v, s, t in conn.execute("SELECT lower(hex(version)), source, text FROM rulesets")
    }


def merged(conn: Conn) -> frozenset[str]:
    """Every customer a merge joined, as duplicate or as keeper (few)."""
    return frozenset(
        str(cid) for row in conn.execute("SELECT duplicate, keep FROM merges") for cid in row
    )
