"""Reading what decisions need, in two statements whatever the history:

1. the context: the chain's tip and the next ids, the rules version's id, the
   budgeted rules' totals, and every operation recorded under the txns asked
   for (with its lines, and a purchase's refunds so far);
2. the accounts of every customer asked for (and the customers of those
   operations): profile, lots with what is left in each, net points, purchases
   with their refunds, tier operations, and the usage caps and reward limits
   count.

Each statement is a UNION ALL of parts of one width, told apart by a tag in the
first column, over ids passed as one JSON array: an import chunk of 500 rows
reads all it needs in two round trips, as a till's earn does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime, tzinfo
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

from ..account import Account, Budgets, Profile, Use, counts_from
from ..clock import from_day_number, from_stamp, stored_day, zone
from ..engine.book import Book
from ..engine.records import Recorded, RecordedItem, RecordedLine
from ..games.model import Fact, Facts, Item, Paid, Play, parse_rule
from ..lots import Lot, spending_key
from ..models import Ruleset
from ..tiers import Override, Qualifying
from .chain import version_of
from .dialect import Conn
from .queries import stored_lot
from .schema import budget_index

if TYPE_CHECKING:
    from .kept import Kept

_WIDTH = 20


def _part(tag: str, columns: Sequence[str], rest: str) -> str:
    """SELECT 'tag', columns..., padded with NULLs to the common width."""
    padding = ["NULL"] * (_WIDTH - 1 - len(columns))
    return f"SELECT '{tag}', {', '.join([*columns, *padding])} {rest}"


_CONTEXT = " UNION ALL ".join(
    [
        _part(
            "tip",
            [
                "(SELECT max(id) FROM operations)",
                # The head of this writer's chain (NULL: the file's one chain).
                "(SELECT hash FROM operations WHERE id = "
                "(SELECT max(id) FROM operations WHERE writer IS ?5))",
                "(SELECT max(id) FROM entries)",
                "(SELECT max(id) FROM draws)",
                "(SELECT id FROM rulesets WHERE version = ?2)",
                "(SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                "AND name IN (SELECT value FROM json_each(?3)))",
            ],
            "",
        ),
        _part(
            "op",
            [
                "o.id",
                "o.txn",
                "o.kind",
                "o.customer_id",
                "o.occurred",
                "o.content",
                "(SELECT version FROM rulesets WHERE id = o.ruleset)",
                "o.amount_cents",
                "o.event",
                "o.category",
                "o.sku",
                "o.quantity",
                "o.reward",
                "o.reason",
                "o.clawback",
                "(SELECT p.txn FROM operations p WHERE p.id = o.refund_of)",
                "(SELECT SUM(r.amount_cents) FROM operations r WHERE r.refund_of = o.id)",
                "(SELECT SUM(r.clawback) FROM operations r WHERE r.refund_of = o.id)",
                "o.store",
            ],
            "FROM operations o WHERE o.txn IN (SELECT value FROM json_each(?1))",
        ),
        # An operation's entries are the ids after the previous operation's last.
        _part(
            "line",
            [
                "o.id",
                "e.id",
                "e.customer_id",
                "e.kind",
                "e.points",
                "e.rule",
                "e.reward",
                "e.detail",
            ],
            "FROM operations o JOIN entries e ON e.id > COALESCE((SELECT p.last_entry "
            "FROM operations p WHERE p.id < o.id ORDER BY p.id DESC LIMIT 1), 0) "
            "AND e.id <= o.last_entry WHERE o.txn IN (SELECT value FROM json_each(?4))",
        ),
        # The recorded operations' customers that were merged since: a refund of a
        # duplicate's purchase takes back from the account that holds its points.
        _part(
            "merged",
            ["m.duplicate", "m.keep", "m.op_id"],
            "FROM merges m WHERE m.duplicate IN (SELECT o.customer_id FROM operations o "
            "WHERE o.txn IN (SELECT value FROM json_each(?1)))",
        ),
        # A receipt's lines, and what its refunds returned of each.
        _part(
            "item",
            [
                "o.id",
                "i.number",
                "i.quantity",
                "i.amount_cents",
                "i.points",
                "i.sku",
                "i.category",
                "i.earned_by",
            ],
            "FROM operations o JOIN items i ON i.op_id = o.id "
            "WHERE o.txn IN (SELECT value FROM json_each(?4))",
        ),
        _part(
            "returned",
            ["o.id", "i.number", "SUM(i.quantity)", "SUM(i.amount_cents)", "SUM(i.points)"],
            "FROM operations o JOIN operations r ON r.refund_of = o.id "
            "JOIN items i ON i.op_id = r.id "
            "WHERE o.txn IN (SELECT value FROM json_each(?4)) GROUP BY o.id, i.number",
        ),
    ]
)


@lru_cache(maxsize=8)
def _context(budgeted: tuple[str, ...]) -> str:
    """The context statement for rules with these budgeted rules: each rule's
    total is summed over its own partial index (schema.budget_index), which
    SQLite uses only when the rule is written into the query as it is in the
    index (rule ids are [a-z0-9_.-]: nothing to escape)."""
    parts = [
        _part(
            "budget",
            [f"'{rule}'", f"(SELECT COALESCE(SUM(points), 0) FROM entries WHERE rule = '{rule}')"],
            "",
        )
        for rule in budgeted
        if _RULE_ID.fullmatch(rule)
    ]
    return " UNION ALL ".join([_CONTEXT, *parts])


_RULE_ID = re.compile(r"[a-z0-9][a-z0-9_.-]*")


@lru_cache(maxsize=16)
def _accounts_statement(details: bool, events: bool, points: bool, games: bool) -> str:
    """The accounts statement. With games (`games`), the usage part also reads the
    game lines paid (the same scan of the customer's entries), and as the games
    need: each purchase's category, sku and quantity (`details`: a filter on
    them, or units), the events games count (`events`, ?3), and the points the
    rules earned (`points`: milestones on points); all in the one statement, so
    a purchase that moves games costs no extra read. Each part is there only
    when some game needs it: the purchase columns cost a table lookup a purchase
    (the customer index covers the rest)."""
    purchase = list(_PURCHASE_COLUMNS)
    extra: list[str] = []
    if details:
        purchase += ["o.category", "o.sku", "o.quantity"]
        # A receipt's lines, and what returns by line took of each: a filter
        # on a category or SKU counts the lines it names.
        extra.append(
            _part(
                "sold",
                [
                    "o.customer_id",
                    "o.id",
                    "i.number",
                    "i.category",
                    "i.sku",
                    "i.quantity",
                    "i.amount_cents",
                ],
                "FROM ids CROSS JOIN operations o INDEXED BY operations_customer "
                "ON o.customer_id = ids.id AND o.kind = 'purchase' "
                "JOIN items i ON i.op_id = o.id",
            )
        )
        extra.append(
            _part(
                "back",
                ["o.customer_id", "o.refund_of", "i.number", "i.quantity", "i.amount_cents"],
                "FROM ids CROSS JOIN operations o INDEXED BY operations_customer "
                "ON o.customer_id = ids.id AND o.kind = 'refund' JOIN items i ON i.op_id = o.id",
            )
        )
    if events:
        extra.append(
            _part(
                "event",
                ["o.customer_id", "o.id", "o.occurred", "o.event"],
                "FROM ids CROSS JOIN operations o INDEXED BY operations_customer "
                "ON o.customer_id = ids.id AND o.kind = 'event' "
                "WHERE o.event IN (SELECT value FROM json_each(?3))",
            )
        )
    if points:
        extra.append(
            _part(
                "earned",
                ["e.customer_id", "SUM(e.points)"],
                "FROM ids CROSS JOIN entries e INDEXED BY entries_customer "
                "ON e.customer_id = ids.id AND e.kind IN ('earn', 'enroll') "
                "WHERE e.rule IS NULL OR e.rule NOT LIKE 'game:%' GROUP BY e.customer_id",
            )
        )
    use = _USE_WHERE + (
        " OR (e.kind IN ('earn', 'gift', 'badge') AND e.rule LIKE 'game:%')" if games else ""
    )
    return _IDS + " UNION ALL ".join(
        [
            _ALIAS,
            *_ACCOUNT_PARTS[:3],
            _part("purchase", purchase, _PURCHASES),
            *_ACCOUNT_PARTS[3:],
            _part("use", list(_USE_COLUMNS), _USE_FROM + use),
            *extra,
        ]
    )


# The customers asked for, and the duplicates merged into them (the merges
# table): an account is read with every id that belongs to it.
_IDS = (
    "WITH asked(id) AS (SELECT value FROM json_each(?1)), ids(id) AS (SELECT id FROM asked "
    "UNION SELECT m.duplicate FROM merges m WHERE m.keep IN (SELECT id FROM asked)) "
)
# First, so `build` folds a duplicate's rows into its keeper's as they come: each
# merged duplicate among the ids, its keeper, and whether it was asked for itself.
_ALIAS = _part(
    "alias",
    ["m.duplicate", "m.keep", "CASE WHEN m.duplicate IN (SELECT id FROM asked) THEN 1 ELSE 0 END"],
    "FROM ids JOIN merges m ON m.duplicate = ids.id",
)

_PURCHASE_COLUMNS = ("o.customer_id", "o.id", "o.occurred", "o.amount_cents")
_PURCHASES = (
    "FROM ids CROSS JOIN operations o INDEXED BY operations_customer "
    "ON o.customer_id = ids.id AND o.kind = 'purchase'"
)

_ACCOUNT_PARTS = (
    _part(
        "customer",
        [
            "c.id",
            "c.name",
            "c.email",
            "c.phone",
            "c.birthday",
            "c.referred_by",
            "c.enrolled",
            "c.birthday_set",
            "c.salt",
        ],
        "FROM customers c JOIN ids ON c.id = ids.id",
    ),
    _part(
        "net",
        ["e.customer_id", "SUM(e.points)"],
        "FROM ids CROSS JOIN entries e INDEXED BY entries_customer "
        "ON e.customer_id = ids.id GROUP BY e.customer_id",
    ),
    # Credits are the lots: what each still holds is its points less its draws.
    _part(
        "lot",
        [
            "e.customer_id",
            "e.id",
            "e.kind",
            "e.points - COALESCE((SELECT SUM(d.points) FROM draws d WHERE d.lot_id = e.id), 0)",
            "e.points",
            "e.earned_on",
            "e.available_on",
            "e.expires_on",
        ],
        "FROM ids CROSS JOIN entries e INDEXED BY entries_customer ON e.customer_id = ids.id "
        "WHERE e.kind IN ('enroll', 'earn', 'adjust', 'transfer', 'merge') AND e.points > 0",
    ),
    _part(
        "refund",
        ["o.customer_id", "o.id", "o.refund_of", "o.amount_cents"],
        "FROM ids CROSS JOIN operations o INDEXED BY operations_customer "
        "ON o.customer_id = ids.id AND o.kind = 'refund'",
    ),
    _part(
        "taken",
        ["e.customer_id", "e.op_id", "e.points"],
        "FROM ids CROSS JOIN entries e INDEXED BY entries_customer "
        "ON e.customer_id = ids.id AND e.kind = 'refund'",
    ),
    _part(
        "tier",
        ["o.customer_id", "o.id", "o.event", "o.tier", "o.until", "o.reason", "o.occurred"],
        "FROM ids CROSS JOIN operations o INDEXED BY operations_customer "
        "ON o.customer_id = ids.id AND o.kind = 'tier'",
    ),
)
_USE_COLUMNS = ("e.customer_id", "e.kind", "e.rule", "e.reward", "e.occurred", "e.points")
_USE_FROM = (
    "FROM ids CROSS JOIN entries e INDEXED BY entries_customer ON e.customer_id = ids.id WHERE "
)
_USE_WHERE = (
    "(e.kind IN ('earn', 'enroll', 'gift') AND e.rule IN "
    "(SELECT value FROM json_each(?2))) OR (e.kind = 'redeem' AND e.reward IS NOT NULL)"
)
_ACCOUNTS = _accounts_statement(False, False, False, False)


@lru_cache(maxsize=2)
def _standings(by_points: bool) -> str:
    """The accounts statement cut to a tier's inputs (profile, purchases, refunds,
    tier operations, and under a points metric the points earned and taken back),
    as the ledger stood before ?2: `build` makes accounts of it like any other,
    so a report's tiers are worked out as `tier` and the write path work them
    out. Lots come with nothing left in them, since no standing reads a balance:
    that skips the draws, most of the cost of reading an account."""
    parts = [
        _ACCOUNT_PARTS[0],  # the customer, as every account has it
        _part(
            "purchase",
            list(_PURCHASE_COLUMNS),
            _PURCHASES + " AND o.occurred < ?2",
        ),
        _part(
            "refund",
            ["o.customer_id", "o.id", "o.refund_of", "o.amount_cents"],
            "FROM ids CROSS JOIN operations o INDEXED BY operations_customer "
            "ON o.customer_id = ids.id AND o.kind = 'refund' AND o.occurred < ?2",
        ),
        _part(
            "tier",
            ["o.customer_id", "o.id", "o.event", "o.tier", "o.until", "o.reason", "o.occurred"],
            "FROM ids CROSS JOIN operations o INDEXED BY operations_customer "
            "ON o.customer_id = ids.id AND o.kind = 'tier' AND o.occurred < ?2",
        ),
    ]
    if by_points:
        parts += [
            _part(
                "lot",
                [
                    *("e.customer_id", "e.id", "e.kind", "0", "e.points"),
                    *("e.earned_on", "e.available_on", "e.expires_on"),
                ],
                "FROM ids CROSS JOIN entries e INDEXED BY entries_customer "
                "ON e.customer_id = ids.id WHERE e.kind IN ('enroll', 'earn') "
                "AND e.points > 0 AND e.occurred < ?2",
            ),
            _part(
                "taken",
                ["e.customer_id", "e.op_id", "e.points"],
                "FROM ids CROSS JOIN entries e INDEXED BY entries_customer "
                "ON e.customer_id = ids.id AND e.kind = 'refund' AND e.occurred < ?2",
            ),
        ]
    return _IDS + " UNION ALL ".join([_ALIAS, *parts])


def standings(
    conn: Conn, ruleset: Ruleset, customers: Iterable[str], until: int
) -> dict[str, Account]:
    """The accounts of `customers` as far as their tier goes, from what was
    recorded before `until` (a stored time)."""
    ids = list(customers)
    if not ids:
        return {}
    by_points = ruleset.tiers is not None and ruleset.tiers.metric == "points"
    return build(conn.execute(_standings(by_points), (json.dumps(ids), until)), ruleset)


@lru_cache(maxsize=8)
def _plays_statement(details: bool, events: bool, points: bool) -> str:
    """What the games count of an account (its purchases, refunds, counted
    events, game lines and, for milestones on points, the rules' points), as
    the ledger stood at ?2 (a stored time, included): `build` makes accounts
    of it whose play is as it was then (`progress --as-of`). The accounts
    statement's parts, each cut at ?2; no lots, tiers or uses."""
    customers = "FROM ids CROSS JOIN operations o INDEXED BY operations_customer "
    purchase = list(_PURCHASE_COLUMNS)
    if details:
        purchase += ["o.category", "o.sku", "o.quantity"]
    parts = [
        _ACCOUNT_PARTS[0],
        _part("purchase", purchase, _PURCHASES + " AND o.occurred <= ?2"),
        _part(
            "refund",
            ["o.customer_id", "o.id", "o.refund_of", "o.amount_cents"],
            customers + "ON o.customer_id = ids.id AND o.kind = 'refund' AND o.occurred <= ?2",
        ),
        _part(
            "taken",
            ["e.customer_id", "e.op_id", "e.points"],
            "FROM ids CROSS JOIN entries e INDEXED BY entries_customer "
            "ON e.customer_id = ids.id AND e.kind = 'refund' AND e.occurred <= ?2",
        ),
        _part(
            "use",
            list(_USE_COLUMNS),
            _USE_FROM + "e.kind IN ('earn', 'gift', 'badge') AND e.rule LIKE 'game:%' "
            "AND e.occurred <= ?2",
        ),
    ]
    if details:
        parts += [
            _part(
                "sold",
                ["o.customer_id", "o.id", "i.number", "i.category", "i.sku", "i.quantity",
                 "i.amount_cents"],
                customers + "ON o.customer_id = ids.id AND o.kind = 'purchase' "
                "AND o.occurred <= ?2 JOIN items i ON i.op_id = o.id",
            ),
            _part(
                "back",
                ["o.customer_id", "o.refund_of", "i.number", "i.quantity", "i.amount_cents"],
                customers + "ON o.customer_id = ids.id AND o.kind = 'refund' "
                "AND o.occurred <= ?2 JOIN items i ON i.op_id = o.id",
            ),
        ]  # fmt: skip
    if events:
        parts.append(
            _part(
                "event",
                ["o.customer_id", "o.id", "o.occurred", "o.event"],
                customers + "ON o.customer_id = ids.id AND o.kind = 'event' "
                "AND o.occurred <= ?2 WHERE o.event IN (SELECT value FROM json_each(?3))",
            )
        )
    if points:
        parts.append(
            _part(
                "earned",
                ["e.customer_id", "SUM(e.points)"],
                "FROM ids CROSS JOIN entries e INDEXED BY entries_customer "
                "ON e.customer_id = ids.id AND e.kind IN ('earn', 'enroll') "
                "WHERE e.occurred <= ?2 AND (e.rule IS NULL OR e.rule NOT LIKE 'game:%') "
                "GROUP BY e.customer_id",
            )
        )
    return "WITH ids(id) AS (SELECT value FROM json_each(?1)) " + " UNION ALL ".join(parts)


def plays(conn: Conn, ruleset: Ruleset, customers: Iterable[str], until: int) -> dict[str, Account]:
    """The accounts of `customers` as far as their games go, from what was
    recorded by `until` (a stored time): their play as it stood then."""
    ids = list(customers)
    games = ruleset.games
    if not ids or games is None:
        return {}
    statement = _plays_statement(games.details, bool(games.events), games.by_points)
    params: tuple[object, ...] = (json.dumps(ids), until)
    if games.events:
        params += (json.dumps(sorted(games.events)),)
    return build(conn.execute(statement, params), ruleset)


class Tip:
    """The chain's tip and the next ids, held while a write transaction lasts.

    Decisions number what they write after the ids read here (`base_op`,
    `base_entry`). On PostgreSQL writers on other customers may append in the
    meantime: the tip is read again under the append lock just before writing
    (postgres.PgConnection.claim), and append.py moves the new rows' ids up by
    the difference, so each batch's ids stay contiguous."""

    def __init__(
        self,
        op: int,
        hash_: bytes,
        entry: int,
        draw: int,
        ruleset: int | None,
        writer: str | None = None,
    ) -> None:
        self.op = op
        self.hash = hash_
        self.entry = entry
        self.draw = draw
        self.ruleset = ruleset
        self.writer = writer
        self.base_op = op
        self.base_entry = entry


Customers = Iterable[str] | Callable[[dict[str, Recorded]], Iterable[str]]


def load(
    conn: Conn,
    ruleset: Ruleset,
    now: datetime,
    customers: Customers,
    txns: Iterable[str],
    lines_for: Iterable[str] | None = None,
    kept: Kept | None = None,
    write: bool = True,
    writer: str | None = None,
    lock: Callable[[list[str]], None] | None = None,
) -> tuple[Book, Tip]:
    """A Book holding the operations recorded under `txns` (with their lines when
    their txn is in `lines_for`; all of them by default), the budgets, and the
    accounts of `customers` and of those operations' customers. `customers` may
    be a function of the recorded operations: an import reads the accounts of
    the rows that are not already recorded, and no others."""
    wanted = list(dict.fromkeys(txns))
    detailed = wanted if lines_for is None else list(dict.fromkeys(lines_for))
    locked: list[str] = []
    if lock is not None and not callable(customers):
        # Row locks on the customers this write touches, in id order, before
        # anything about them is read (PostgreSQL; see postgres.py).
        customers = list(dict.fromkeys(customers))
        lock(customers)
        locked = customers
    budgeted = tuple(r.id for r in ruleset.rules if r.budget is not None)
    indexes = [budget_index(rule)[0] for rule in budgeted]
    rows = conn.execute(
        _context(budgeted),
        (
            json.dumps(wanted),
            version_of(ruleset.text),
            json.dumps(indexes),
            json.dumps(detailed),
            writer,
        ),
    ).fetchall()
    indexed = len(indexes)
    tip = Tip(0, b"", 0, 0, None)
    ops: dict[int, list[Any]] = {}
    lines: dict[int, list[RecordedLine]] = {}
    items: dict[int, dict[int, RecordedItem]] = {}
    returned: list[tuple[Any, ...]] = []
    merged: dict[str, tuple[str, int]] = {}  # duplicate -> (keeper, the merge's op)
    budgets = Budgets({rule: 0 for rule in budgeted})
    for row in rows:
        tag = row[0]
        if tag == "tip":
            tip = Tip(row[1] or 0, row[2] or b"", row[3] or 0, row[4] or 0, row[5], writer)
            indexed = row[6]
        elif tag == "op":
            ops[row[1]] = list(row[1:20])
        elif tag == "line":
            lines.setdefault(row[1], []).append(RecordedLine(*row[2:9]))
        elif tag == "item":
            items.setdefault(row[1], {})[row[2]] = RecordedItem(
                row[2], row[3], row[4], row[5], row[6], row[7], earned_by=row[8]
            )
        elif tag == "returned":
            returned.append(row[1:6])
        elif tag == "merged":
            merged[row[1]] = (str(row[2]), int(row[3]))
        else:
            budgets.totals[row[1]] = int(row[2])
    if indexed < len(indexes) and write:
        # The first write under rules with a new budget indexes that rule's lines.
        for rule in budgeted:
            conn.execute(budget_index(rule)[1])
    for op_id, number, quantity, cents, points in returned:
        sold = items.get(op_id, {}).get(number)
        if sold is None:  # a one-line purchase returned by line: its line is number 1
            sold = items.setdefault(op_id, {})[number] = RecordedItem(number, 0, 0, 0)
        items[op_id][number] = replace(
            sold,
            returned_quantity=int(quantity),
            returned_cents=int(cents),
            returned_points=-int(points),
        )
    recorded: dict[str, Recorded] = {}
    for op_id, values in ops.items():
        found = _recorded(op_id, values, tuple(lines.get(op_id, ())))
        if op_id in items:
            found = replace(found, items=tuple(v for _, v in sorted(items[op_id].items())))
        if found.customer_id in merged:
            found = _moved(conn, found, *merged[found.customer_id])
        recorded[found.txn] = found
    people = dict.fromkeys(customers(recorded) if callable(customers) else customers)
    for found in recorded.values():
        if lines_for is None or found.txn in detailed:
            people[found.customer_id] = None
    if lock is not None and not set(people) <= set(locked):
        # Customers known only from what was recorded (a refund's purchaser):
        # lock them too, then read everything again under the locks.
        return load(conn, ruleset, now, list(people), wanted, lines_for, kept, write, writer, lock)
    known: dict[str, Account] = {}
    if kept is not None and kept.valid(tip, ruleset.version):
        known = {cid: kept.accounts[cid] for cid in people if cid in kept.accounts}
    fresh = accounts(conn, ruleset, [cid for cid in people if cid not in known])
    if kept is not None:
        kept.restore(fresh)
    known.update(fresh)
    book = Book(
        ruleset=ruleset,
        now=now,
        accounts=known,
        recorded=dict(recorded),
        budgets=budgets,
        next_op=tip.op + 1,
        next_entry=tip.entry + 1,
    )
    return book, tip


def _moved(conn: Conn, found: Recorded, keeper: str, merge_op: int) -> Recorded:
    """A duplicate's recorded operation as its keeper's: its customer the keeper,
    and each of its lots the lot the merge moved it to (the merge's draws on the
    duplicate and its credits to the keeper pair up in order), so that a refund
    of it cancels its own points first, pending ones included. One more
    statement, only for an operation of a merged duplicate."""
    duplicate = found.customer_id
    drawn = [
        lot_id
        for (lot_id,) in conn.execute(
            "SELECT d.lot_id FROM draws d JOIN entries e ON e.id = d.entry_id "
            "WHERE e.op_id = ?1 AND e.customer_id = ?2 "
            "UNION ALL SELECT -e.id FROM entries e WHERE e.op_id = ?1 AND e.customer_id = ?3 "
            "AND e.points > 0",
            (merge_op, duplicate, keeper),
        )
    ]
    old = sorted(x for x in drawn if x > 0)  # draws are written in lot order with ids
    new = sorted(-x for x in drawn if x < 0)
    moved = dict(zip(old, new, strict=False))
    lines = tuple(
        replace(line, id=moved.get(line.id, line.id), customer_id=keeper)
        if line.customer_id == duplicate
        else line
        for line in found.lines
    )
    return replace(found, customer_id=keeper, lines=lines)


def _recorded(op_id: int, values: list[Any], lines: tuple[RecordedLine, ...]) -> Recorded:
    (
        _id, txn, kind, cid, occurred, content, version, amount, event, category, sku,
        quantity, reward, reason, clawback, refund_of_txn, refunded, due, store,
    ) = values  # fmt: skip
    return Recorded(
        id=op_id,
        txn=str(txn),
        kind=str(kind),
        customer_id=str(cid),
        occurred_at=from_stamp(int(occurred)),
        content=content,
        ruleset=None if version is None else bytes(version).hex(),
        lines=lines,
        event=event,
        amount_cents=amount,
        category=category,
        sku=sku,
        quantity=quantity,
        reward=reward,
        reason=reason,
        refund_of_txn=refund_of_txn,
        clawback=clawback,
        refunded_cents=int(refunded or 0),
        due_back=int(due or 0),
        store=store,
    )


def accounts(conn: Conn, ruleset: Ruleset | None, customers: Iterable[str]) -> dict[str, Account]:
    """The accounts of `customers` that exist, in one statement."""
    ids = list(customers)
    if not ids:
        return {}
    capped = sorted(ruleset.capped_rules) if ruleset is not None else []
    games = None if ruleset is None else ruleset.games
    # Built as the rows come: a chunk's accounts can be tens of thousands of rows,
    # and holding them all at once would be most of an import's memory.
    if games is not None:
        statement = _accounts_statement(games.details, bool(games.events), games.by_points, True)
        params: tuple[str, ...] = (json.dumps(ids), json.dumps(capped))
        if games.events:
            params += (json.dumps(sorted(games.events)),)
        return build(conn.execute(statement, params), ruleset)
    return build(conn.execute(_ACCOUNTS, (json.dumps(ids), json.dumps(capped))), ruleset)


def build(rows: Iterable[Sequence[Any]], ruleset: Ruleset | None) -> dict[str, Account]:
    """Accounts from the rows of the accounts statement. Their tier inputs are
    worked out here, once, in the metric of `ruleset`'s tiers."""
    policy = None if ruleset is None else ruleset.tiers
    by_points = policy is not None and policy.metric == "points"
    by_spend = policy is not None and policy.metric == "spend"
    pending = 0 if ruleset is None else ruleset.points.pending_days
    tz = zone(ruleset.program.timezone if ruleset is not None else "UTC")
    profiles: dict[str, Profile] = {}
    net: dict[str, int] = {}
    held: dict[str, list[Lot]] = {}
    qualifying: dict[str, list[Qualifying]] = {}
    # A customer's purchases as read: (op, occurred, cents, and with games'
    # details category, sku, quantity). Not the rows themselves: a kept account
    # holds these until its games' facts are built, and a row is 20 columns wide.
    bought: dict[str, list[tuple[Any, ...]]] = {}
    refunds: dict[int, tuple[str, int, int]] = {}  # refund op -> (customer, purchase op, cents)
    taken: dict[int, int] = {}  # refund op -> points it took
    tiers: dict[str, list[tuple[int, str, str | None, int | None, str | None, int]]] = {}
    uses: dict[str, list[Use]] = {}
    games = None if ruleset is None else ruleset.games
    played: dict[str, list[Fact]] = {}  # counted events, then (below) purchases
    paid: dict[str, list[Paid]] = {}
    rules_points: dict[str, int] = {}
    alias: dict[str, str] = {}  # a merged duplicate -> the account that keeps it
    asked: set[str] = set()  # duplicates asked for themselves: their (empty) account
    # Per customer, purchase op -> its lines (two or more), and -> lines returned.
    sold: dict[str, dict[int, list[Item]]] = {}
    by_line: dict[str, dict[int, list[tuple[int, int, int]]]] = {}
    for row in rows:
        tag, cid = row[0], row[1]
        if tag == "alias":
            alias[cid] = row[2]
            if row[3]:
                asked.add(cid)
            continue
        if cid in alias and tag != "customer":
            if tag == "tier":
                continue  # the keeper's tier is its own, decided on both histories
            cid = alias[cid]  # the duplicate's history counts for its keeper
        if tag == "customer":
            if cid in alias and cid not in asked:
                continue
            profiles[cid] = Profile(
                id=cid,
                name=row[2],
                email=row[3],
                phone=row[4],
                birthday=row[5],
                referred_by=row[6],
                enrolled_at=from_stamp(row[7]),
                birthday_set_at=None if row[8] is None else from_stamp(row[8]),
                salt=row[9],
                merged_into=alias.get(cid),
            )
        elif tag == "net":  # added up: a merged duplicate's row comes too
            net[cid] = net.get(cid, 0) + row[2]
        elif tag == "lot":
            _, _, lot_id, kind, left, points, earned, available, expires = row[:9]
            if by_points and kind in ("earn", "enroll"):
                qualifying.setdefault(cid, []).append(
                    Qualifying(from_day_number(available), points)
                )
            if left:
                held.setdefault(cid, []).append(
                    stored_lot(lot_id, earned, available, expires, left)
                )
        elif tag == "purchase":
            bought.setdefault(cid, []).append(tuple(row[2:8]))
        elif tag == "sold":
            sold.setdefault(cid, {}).setdefault(row[2], []).append(
                Item(
                    row[3],
                    None if row[4] is None else str(row[4]).casefold(),
                    None if row[5] is None else str(row[5]).casefold(),
                    row[6],
                    row[7],
                )
            )
        elif tag == "back":
            by_line.setdefault(cid, {}).setdefault(row[2], []).append((row[3], row[4], row[5]))
        elif tag == "event":
            played.setdefault(cid, []).append(Fact(row[2], stored_day(row[3], tz), str(row[4])))
        elif tag == "earned":
            rules_points[cid] = rules_points.get(cid, 0) + int(row[2])
        elif tag == "refund":
            refunds[row[2]] = (cid, row[3], row[4])
        elif tag == "taken":
            taken[row[2]] = taken.get(row[2], 0) + row[3]
        elif tag == "tier":
            tiers.setdefault(cid, []).append(tuple(row[2:8]))
        else:
            found = None if games is None else parse_rule(row[3])
            if found is not None:  # a game's line: kind, rule, reward, occurred, points
                paid.setdefault(cid, []).append(
                    Paid(
                        found[0], found[1], str(row[2]), int(row[6]), row[4], stored_day(row[5], tz)
                    )
                )
                continue
            key = f"reward:{row[4]}" if row[2] == "redeem" else str(row[3])
            uses.setdefault(cid, []).append(Use(key, from_stamp(row[5]), row[6]))
    refunded: dict[str, dict[int, list[int]]] = {}  # customer -> purchase op -> [cents, points]
    for refund_op, (cid, purchase, cents) in refunds.items():
        sums = refunded.setdefault(cid, {}).setdefault(purchase, [0, 0])
        sums[0] += cents
        sums[1] += taken.get(refund_op, 0)
    none: dict[Any, Any] = {}

    out: dict[str, Account] = {}
    for cid, profile in profiles.items():
        tier: str | None = None
        tier_day: date | None = None
        override: Override | None = None
        for _, event, level, until, reason, occurred in sorted(tiers.get(cid, [])):
            if event == "change":
                tier, tier_day = level, stored_day(occurred, tz)
            elif event == "override" and level is not None:
                floor = None if until is None else from_day_number(until)
                override = Override(level, floor, reason or "")
        purchases = bought.get(cid, [])
        spend = 0
        amounts = qualifying.get(cid, [])
        returns = refunded.get(cid, none)
        clawed_back = 0  # points refunds took back (negative)
        for bought_one in purchases:
            op_id, occurred, cents = bought_one[0], bought_one[1], bought_one[2]
            back, points_back = returns.get(op_id, (0, 0))
            clawed_back += points_back
            spend += cents - back
            if by_spend or (by_points and points_back):
                # A purchase counts from the end of its return window; its
                # refunds count against it on the same day.
                day = counts_from(stored_day(occurred, tz), pending)
                if by_spend:
                    amounts.append(Qualifying(day, cents - back))
                else:
                    amounts.append(Qualifying(day, points_back))
        out[cid] = Account(
            profile=profile,
            lots=tuple(sorted(held.get(cid, []), key=spending_key)),
            net=net.get(cid, 0),
            purchases=len(purchases),
            spend_cents=spend,
            qualifying=tuple(sorted(amounts)),
            tier=tier,
            tier_day=tier_day,
            override=override,
            uses=tuple(uses.get(cid, ())),
            play=None
            if games is None
            else Play(
                Facts(
                    read=partial(
                        _facts,
                        played.get(cid, ()),
                        purchases,
                        returns,
                        sold.get(cid, none),
                        by_line.get(cid, none),
                        tz,
                    )
                ),
                tuple(sorted(paid.get(cid, ()), key=lambda p: (p.game, p.round))),
                # The rules' points are net of refunds' clawbacks (refund lines
                # are negative; they never take back a game's points).
                rules_points.get(cid, 0) + clawed_back,
            ),
        )
    return out


def _facts(
    events: Iterable[Fact],
    purchases: list[tuple[Any, ...]],
    refunded: dict[int, list[int]],
    sold: dict[int, list[Item]],
    by_line: dict[int, list[tuple[int, int, int]]],
    tz: tzinfo,
) -> tuple[Fact, ...]:
    """What the games count of one account, from its rows as `build` read
    them: its counted events and its purchases (what is left of each after
    refunds, and of a receipt's lines after returns by line) in the order
    they happened. Built only when a game needs the history (Facts)."""
    facts = list(events)
    for op_id, occurred, cents, category, sku, quantity in purchases:
        back = refunded.get(op_id)
        lines = sold.get(op_id)
        items = () if lines is None else tuple(sorted(lines, key=lambda x: x.number))
        fact = Fact(
            op_id,
            stored_day(occurred, tz),
            "purchase",
            cents - (back[0] if back else 0),
            cents,
            category,
            sku,
            quantity,
            items,
        )
        if items and op_id in by_line:
            fact = fact.returned(0, tuple(by_line[op_id]))
        facts.append(fact)
    facts.sort(key=lambda f: f.op)
    return tuple(facts)
