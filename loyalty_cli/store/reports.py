"""Read-only aggregates for `loyalty report` (loyalty_cli/reports.py shapes them).

Bounds are stored times (seconds since 1970, UTC): `start` inclusive, `end`
exclusive; `until` (exclusive) is the end of the as-of day, so "as of" means
the ledger as it stood then. Every query returns either a few numbers or one
row per customer, rule, tier or time bucket, never entries, and each is served
by an index (schema.py says which).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any, NamedTuple

from ..clock import day_number, from_day_number
from ..kinds import EntryKind
from .dialect import Conn
from .schema import NOT_MERGED, keeper

_KINDS = tuple(str(kind) for kind in EntryKind)


class CustomerFigures(NamedTuple):
    """One customer's row in the customers report, as of a day."""

    id: str
    name: str | None
    balance: int  # net of points in lots past their expiry, as `balance` shows
    earned: int  # enroll and earn entries
    redeemed: int
    purchases: int
    spend_cents: int  # purchases less refunds
    first_purchase: int | None  # occurred
    last_purchase: int | None
    tier: str | None  # the last tier entry's tier; None: no tier entry yet


def first_activity(conn: Conn) -> int | None:
    """The earliest business time of any entry, purchase or enrollment (an enrollment
    that earned nothing still opens the period); one index seek per kind."""
    parts = ["SELECT MIN(occurred) AS m FROM entries WHERE kind = ?" for _ in _KINDS]
    parts.append("SELECT MIN(occurred) AS m FROM operations WHERE kind = 'purchase'")
    parts.append("SELECT MIN(occurred) AS m FROM operations WHERE kind = 'enroll'")
    firsts = " UNION ALL ".join(parts)
    row = conn.execute(f"SELECT MIN(m) FROM ({firsts}) AS firsts", _KINDS).fetchone()
    return None if row[0] is None else int(row[0])


def members(conn: Conn, start: int, end: int, until: int) -> tuple[int, int]:
    """(customers enrolled by `until`, customers enrolled in [start, end))."""
    total, new = conn.execute(
        "SELECT COUNT(*) FILTER (WHERE enrolled < ?), "
        "COUNT(*) FILTER (WHERE enrolled >= ? AND enrolled < ?) "
        f"FROM customers WHERE {NOT_MERGED}",
        (until, start, end),
    ).fetchone()
    return int(total), int(new)


def purchasers(conn: Conn, start: int, end: int) -> tuple[int, int, int, int, int]:
    """In [start, end): (active customers: with a purchase, an event or a
    redemption; purchasing customers; customers with 2 or more purchases;
    purchases; their amount in cents). One pass over the index by customer
    (FILTER, not CASE: a tenth of this query's time on a million operations)."""
    row = conn.execute(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE n > 0), COUNT(*) FILTER (WHERE n > 1), "
        "SUM(n), SUM(cents) FROM "
        # a merged duplicate's figures count for its keeper: one customer
        "(SELECT SUM(n) AS n, SUM(cents) AS cents FROM (SELECT customer_id, "
        "COUNT(*) FILTER (WHERE kind = 'purchase') AS n, "
        "SUM(amount_cents) FILTER (WHERE kind = 'purchase') AS cents "
        "FROM operations INDEXED BY operations_customer "
        "WHERE kind IN ('event', 'purchase', 'redeem') "
        "AND occurred >= ? AND occurred < ? GROUP BY customer_id) AS per_customer "
        f"GROUP BY {keeper('customer_id')}) AS per_account",
        (start, end),
    ).fetchone()
    active, buyers, repeat, purchases, cents = (int(v or 0) for v in row)
    return active, buyers, repeat, purchases, cents


def refunds(conn: Conn, start: int, end: int) -> tuple[int, int]:
    """(refunds, cents refunded) with business time in [start, end)."""
    count, cents = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM operations "
        "WHERE kind = 'refund' AND occurred >= ? AND occurred < ?",
        (start, end),
    ).fetchone()
    return int(count), int(cents)


def points(conn: Conn, start: int | None, end: int) -> dict[str, int]:
    """Points by entry kind with business time in [start, end) (None: from the
    beginning). A range of the kind-and-time index per kind."""
    marks = ", ".join("?" for _ in _KINDS)
    rows = conn.execute(
        "SELECT kind, SUM(points) FROM entries "
        f"WHERE kind IN ({marks}) AND occurred >= ? AND occurred < ? GROUP BY kind",
        (*_KINDS, -(1 << 62) if start is None else start, end),
    )
    return {str(kind): int(total) for kind, total in rows}


def overdue(conn: Conn, as_of: date) -> int:
    """Points still held at the end of `as_of` in lots that expired on or before
    it. A ledger's sum less these is what all the customers' `balance` add up
    to: overdue points count for no one, whether or not the nightly step has
    written their expiry yet.

    Summed, not lot by lot: what those lots were given, less what was drawn
    from them (a lot never gives more than it holds), each one index range.
    Such a lot was earned before its expiry day, so before the end of `as_of`;
    and every draw from it is dated before then too: a lot is drawn from while
    it is live, or written off at the start of its expiry day. So neither the
    lots' times nor the debits need be read (a test holds this equal to the
    lot-by-lot sum, debits read)."""
    day = day_number(as_of)
    given, drawn = conn.execute(
        "SELECT (SELECT COALESCE(SUM(points), 0) FROM entries INDEXED BY entries_lots "
        "WHERE earned_on IS NOT NULL AND expires_on <= ?1), "
        "(SELECT COALESCE(SUM(points), 0) FROM draws INDEXED BY draws_expiry "
        "WHERE expires_on <= ?1)",
        (day,),
    ).fetchone()
    return int(given) - int(drawn)


def overdue_by_customer(conn: Conn, as_of: date) -> dict[str, int]:
    """`overdue`, per customer who has any: the same two ranges, each line
    attributed to its lot's customer."""
    day = day_number(as_of)
    late = {
        str(cid): int(given)
        for cid, given in conn.execute(
            "SELECT customer_id, SUM(points) FROM entries INDEXED BY entries_lots "
            "WHERE earned_on IS NOT NULL AND expires_on <= ? GROUP BY customer_id",
            (day,),
        )
    }
    for cid, drawn in conn.execute(
        "SELECT l.customer_id, SUM(d.points) FROM draws d INDEXED BY draws_expiry "
        "JOIN entries l ON l.id = d.lot_id WHERE d.expires_on <= ? GROUP BY l.customer_id",
        (day,),
    ):
        late[str(cid)] -= int(drawn)
    return {cid: left for cid, left in late.items() if left}


def customers(conn: Conn, until: int, as_of: date) -> Iterator[CustomerFigures]:
    """One row per customer enrolled before `until`, by id. Balance is net of
    overdue lots. A merged duplicate is no row of its own: its figures count for
    its keeper (read first: they are few), as one customer's."""
    late = overdue_by_customer(conn, as_of)
    folded: dict[str, list[Any]] = {}
    for row in conn.execute(
        _CUSTOMERS.format(
            "AND c.id IN (SELECT duplicate FROM merges)",
            ", (SELECT m.keep FROM merges m WHERE m.duplicate = c.id)",
        ),
        (until,),
    ):
        *figures, keep = row
        figures[2] -= late.get(figures[0], 0)
        held = folded.get(keep)
        folded[keep] = figures if held is None else _fold(held, figures)
    alone = "AND c.id NOT IN (SELECT duplicate FROM merges)"
    for row in conn.execute(_CUSTOMERS.format(alone, ""), (until,)):
        figures = list(row)
        figures[2] -= late.get(figures[0], 0)
        if figures[0] in folded:
            figures = _fold(figures, folded[figures[0]])
        yield CustomerFigures(*figures)


def _fold(keep: list[Any], duplicate: list[Any]) -> list[Any]:
    """A keeper's report figures with a merged duplicate's added (its id, name and
    tier stay the keeper's)."""
    cid, name, bal, earned, redeemed, buys, spend, first, last, tier = keep
    firsts = [d for d in (first, duplicate[7]) if d is not None]
    lasts = [d for d in (last, duplicate[8]) if d is not None]
    return [
        cid, name, bal + duplicate[2], earned + duplicate[3], redeemed + duplicate[4],
        buys + duplicate[5], spend + duplicate[6], min(firsts, default=None),
        max(lasts, default=None), tier,
    ]  # fmt: skip


# The customers report's figures; {0}: which customers, {1}: more columns.
_CUSTOMERS = (
    "SELECT c.id, c.name, "
    "COALESCE(e.balance, 0), COALESCE(e.earned, 0), COALESCE(e.redeemed, 0), "
    "COALESCE(p.purchases, 0), COALESCE(p.spend, 0), p.first, p.last, t.tier{1} "
    "FROM customers c "
    "LEFT JOIN (SELECT customer_id, SUM(points) AS balance, "
    "SUM(CASE WHEN kind IN ('enroll', 'earn') THEN points ELSE 0 END) AS earned, "
    "-SUM(CASE WHEN kind = 'redeem' THEN points ELSE 0 END) AS redeemed "
    "FROM entries WHERE occurred < ?1 GROUP BY customer_id) e ON e.customer_id = c.id "
    "LEFT JOIN (SELECT customer_id, COUNT(*) FILTER (WHERE kind = 'purchase') AS purchases, "
    "SUM(CASE kind WHEN 'purchase' THEN amount_cents ELSE -amount_cents END) AS spend, "
    "MIN(CASE WHEN kind = 'purchase' THEN occurred END) AS first, "
    "MAX(CASE WHEN kind = 'purchase' THEN occurred END) AS last "
    "FROM operations INDEXED BY operations_customer "
    "WHERE kind IN ('purchase', 'refund') AND occurred < ?1 GROUP BY customer_id) p "
    "ON p.customer_id = c.id "
    "LEFT JOIN (SELECT e.customer_id, e.rule AS tier FROM entries e JOIN "
    "(SELECT MAX(id) AS id FROM entries WHERE kind = 'tier' AND occurred < ?1 "
    "GROUP BY customer_id) AS newest ON newest.id = e.id) t ON t.customer_id = c.id "
    "WHERE c.enrolled < ?1 {0} ORDER BY c.id"
)


_OFFSET_DAYS = 1_000_000


def local_shift(column: str, shifts: Sequence[tuple[int, int]]) -> tuple[str, list[object]]:
    """An SQL expression for the shop's UTC offset, in seconds, at the stored time
    in `column`, and its parameters. `shifts` are (stored time, seconds): the
    offset from that time on, ascending (`Period.utc_shifts`)."""
    cases = " ".join(f"WHEN {column} >= ? THEN ?" for _ in shifts[1:][::-1])
    params: list[object] = []
    for start, seconds in shifts[1:][::-1]:
        params += [start, seconds]
    params.append(shifts[0][1] if shifts else 0)
    return (f"CASE {cases} ELSE ? END" if cases else "?"), params


def _rfm_scored(until: int, shifts: Sequence[tuple[int, int]]) -> tuple[str, list[object]]:
    """A `WITH` clause ending in `scored(customer_id, day, n, spend, r, f, m)`: one
    row per customer with a purchase before `until`, their last purchase's
    shop-local day, their purchases and net spend (less refunds) in cents, and
    their recency, frequency and monetary scores, 1 to 5.

    A score is the quintile of the customer's mid-rank among all the purchasing
    customers: with n of them, `below` worse and `equal` alike (the customer
    included), 1 + 5 (2 below + equal) // (2 n). Equal values score alike; alone,
    or all equal, a customer scores 3. SQLite's window functions do the ranking,
    so memory does not grow with the number of customers.

    `shifts` are (stored time, seconds): the shop's UTC offset from that time on,
    ascending; they turn the stored time into the shop's local day."""
    shift, zone = local_shift("last", shifts)
    sql = (
        # Purchases and refunds apart: plain MAX/COUNT/SUM over the purchases
        # run twice as fast as CASE expressions over both, and refunds are few.
        "WITH p0 AS (SELECT customer_id, MAX(occurred) AS last, COUNT(*) AS n, "
        "SUM(amount_cents) AS spend FROM operations INDEXED BY operations_customer "
        "WHERE kind = 'purchase' AND occurred < ? GROUP BY customer_id), "
        # A merged duplicate's purchases count for its keeper (one lookup per customer).
        f"p AS (SELECT {keeper('customer_id')} AS customer_id, MAX(last) AS last, "
        f"SUM(n) AS n, SUM(spend) AS spend FROM p0 GROUP BY {keeper('customer_id')}), "
        "back AS (SELECT customer_id, SUM(cents) AS cents FROM (SELECT "
        f"{keeper('customer_id')} AS customer_id, amount_cents AS cents FROM operations "
        "WHERE kind = 'refund' AND occurred < ?) AS r GROUP BY customer_id), "
        # The local day as days since 1970, floored (the offset keeps the
        # division's operand positive: both SQLs truncate towards zero).
        f"d AS (SELECT p.customer_id, (last + ({shift}) + {_OFFSET_DAYS * 86400}) / 86400 "
        f"- {_OFFSET_DAYS} AS day, n, "
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
    return sql, [until, until, *zone]


def rfm_counts(
    conn: Conn, until: int, shifts: Sequence[tuple[int, int]]
) -> list[tuple[int, int, int, int]]:
    """Customers per (r, f, m) score: at most 125 rows, whatever the ledger."""
    sql, params = _rfm_scored(until, shifts)
    rows = conn.execute(sql + "SELECT r, f, m, COUNT(*) FROM scored GROUP BY r, f, m", params)
    return [(int(r), int(f), int(m), int(n)) for r, f, m, n in rows]


def rfm_members(
    conn: Conn, until: int, shifts: Sequence[tuple[int, int]], scores: Sequence[int]
) -> Iterator[tuple[str, str | None, int, int, int, int, int, int]]:
    """The customers whose scores, as r * 100 + f * 10 + m, are among `scores`:
    (id, name, last purchase's local day number, purchases, net spend in cents, r, f, m),
    best total score first, then by id."""
    sql, params = _rfm_scored(until, shifts)
    yield from conn.execute(
        sql + "SELECT s.customer_id, c.name, s.day, s.n, s.spend, s.r, s.f, s.m "
        "FROM scored s JOIN customers c ON c.id = s.customer_id "
        f"WHERE s.r * 100 + s.f * 10 + s.m IN ({', '.join('?' * len(scores)) or 'NULL'}) "
        "ORDER BY s.r + s.f + s.m DESC, s.customer_id",
        [*params, *scores],
    )


def activity(
    conn: Conn, bounds: Sequence[tuple[int, int]]
) -> tuple[dict[int, tuple[int, int]], dict[tuple[int, str], int]]:
    """Per time bucket i, given as [start, end) pairs: {i: (purchases, cents)} and
    {(i, kind): points}. Each bucket is a range seek on the kind-and-time indexes."""
    # The buckets as a VALUES list: SQL both SQLite and PostgreSQL read alike.
    buckets = [v for i, (lo, hi) in enumerate(bounds) for v in (i, lo, hi)]
    spans = "WITH b(i, lo, hi) AS (VALUES " + ", ".join(["(?, ?, ?)"] * len(bounds)) + ") "
    if not bounds:
        return {}, {}
    sales = {
        int(i): (int(count), int(cents))
        for i, count, cents in conn.execute(
            spans + "SELECT b.i, COUNT(*), COALESCE(SUM(o.amount_cents), 0) FROM b "
            "JOIN operations o ON o.kind = 'purchase' "
            "AND o.occurred >= b.lo AND o.occurred < b.hi GROUP BY b.i",
            buckets,
        )
    }
    by_kind = {
        (int(i), str(kind)): int(total)
        for i, kind, total in conn.execute(
            spans + "SELECT b.i, k.kind, SUM(e.points) FROM b "
            "CROSS JOIN (SELECT 'enroll' AS kind UNION ALL SELECT 'earn' "
            "UNION ALL SELECT 'redeem' UNION ALL SELECT 'expire') k "
            "JOIN entries e ON e.kind = k.kind "
            "AND e.occurred >= b.lo AND e.occurred < b.hi GROUP BY b.i, k.kind",
            buckets,
        )
    }
    return sales, by_kind


def rules(conn: Conn, start: int, end: int) -> list[tuple[str, int, int, int, int]]:
    """Per rule, over its award entries (earn, enroll, gift) in [start, end):
    (rule, awards, customers reached, points, cents of the purchases it fired on).
    A merged duplicate's awards reach the customer who kept it: one customer.
    A game's lines (rule `game:ID#ROUND`) count under `game:ID`: each round paid
    is one award (its points and its reward lines together) on one purchase."""
    award = (
        "FROM entries e JOIN operations o ON o.id = e.op_id "
        "WHERE e.kind IN ('earn', 'enroll', 'gift') AND e.occurred >= ?1 AND e.occurred < ?2 "
    )
    found = [
        (str(r), int(a), int(c), int(p), int(m))
        for r, a, c, p, m in conn.execute(
            f"SELECT e.rule, COUNT(*), COUNT(DISTINCT {keeper('e.customer_id')}), SUM(e.points), "
            f"COALESCE(SUM(o.amount_cents), 0) {award} AND e.rule IS NOT NULL "
            "AND substr(e.rule, 1, 5) != 'game:' GROUP BY e.rule",
            (start, end),
        )
    ]
    # The rounds folded per game here, not in SQL: cutting `#ROUND` off needs
    # instr() on SQLite and strpos() on PostgreSQL. A round is one row.
    games: dict[str, tuple[int, set[str], int, int]] = {}
    for rule, cid, points, cents in conn.execute(
        f"SELECT e.rule, {keeper('e.customer_id')}, SUM(e.points), "
        f"COALESCE(MAX(o.amount_cents), 0) {award} AND substr(e.rule, 1, 5) = 'game:' "
        "GROUP BY e.op_id, e.rule, e.customer_id",
        (start, end),
    ):
        game, hash_, _ = str(rule).partition("#")
        if not hash_:
            continue
        n, who, total, spent = games.get(game, (0, set(), 0, 0))
        who.add(str(cid))
        games[game] = (n + 1, who, total + int(points), spent + int(cents))
    found += [(g, n, len(who), p, m) for g, (n, who, p, m) in games.items()]
    return sorted(found, key=lambda row: (-row[3], row[0]))


def categories(conn: Conn, start: int, end: int) -> list[tuple[str | None, int, int]]:
    """Purchase points by category in [start, end): (category, earned, taken
    back by refunds). A one-line purchase counts under its category; a receipt
    of several lines under each line's, and its own points (a bonus per
    receipt) under None, with purchases that name no category. A refund by line
    counts under the lines it returned (the points they were due to take back),
    and the receipt's own points its last line took back under None; a refund by
    amount under its purchase's category."""
    one_line = conn.execute(
        "SELECT o.category, SUM(e.points) FROM entries e INDEXED BY entries_time "
        "JOIN operations o ON o.id = e.op_id WHERE e.kind = 'earn' AND e.occurred >= ?1 "
        "AND e.occurred < ?2 AND o.kind = 'purchase' AND e.customer_id = o.customer_id "
        "GROUP BY o.category",
        (start, end),
    ).fetchall()
    lines = conn.execute(
        "SELECT i.category, SUM(i.points) FROM operations o INDEXED BY operations_time "
        "JOIN items i ON i.op_id = o.id WHERE o.kind = 'purchase' AND o.occurred >= ?1 "
        "AND o.occurred < ?2 GROUP BY i.category",
        (start, end),
    ).fetchall()
    by_line = conn.execute(
        "SELECT i.category, SUM(i.points) FROM operations o INDEXED BY operations_time "
        "JOIN items i ON i.op_id = o.id WHERE o.kind = 'refund' AND o.occurred >= ?1 "
        "AND o.occurred < ?2 GROUP BY i.category",
        (start, end),
    ).fetchall()
    by_amount = conn.execute(
        "SELECT p.category, SUM(e.points) FROM entries e INDEXED BY entries_time "
        "JOIN operations r ON r.id = e.op_id JOIN operations p ON p.id = r.refund_of "
        "WHERE e.kind = 'refund' AND e.occurred >= ?1 AND e.occurred < ?2 "
        "AND NOT EXISTS (SELECT 1 FROM items i WHERE i.op_id = r.id) GROUP BY p.category",
        (start, end),
    ).fetchall()
    # The receipt's own points that the return of its last line took back.
    (own_back,) = conn.execute(
        "SELECT COALESCE(SUM(r.clawback + (SELECT SUM(i.points) FROM items i "
        "WHERE i.op_id = r.id)), 0) FROM operations r INDEXED BY operations_time "
        "WHERE r.kind = 'refund' AND r.occurred >= ?1 AND r.occurred < ?2 "
        "AND EXISTS (SELECT 1 FROM items i WHERE i.op_id = r.id)",
        (start, end),
    ).fetchone()
    earned: dict[str | None, int] = {}
    back: dict[str | None, int] = {}
    if own_back:
        back[None] = -int(own_back)
    # A receipt of several lines has no category of its own: its earn entries
    # sum under None above; its lines move their points to their categories.
    for category, points in one_line:
        earned[category] = earned.get(category, 0) + int(points)
    for category, points in lines:
        earned[None] = earned.get(None, 0) - int(points)
        earned[category] = earned.get(category, 0) + int(points)
    for category, points in [*by_line, *by_amount]:
        back[category] = back.get(category, 0) + int(points)
    names = sorted(set(earned) | set(back), key=lambda c: (c is None, c or ""))
    return [
        (c, earned.get(c, 0), back.get(c, 0)) for c in names if earned.get(c, 0) or back.get(c, 0)
    ]


def tier_moves(conn: Conn, start: int, end: int) -> list[tuple[str, str, int, int]]:
    """Tier changes in [start, end): (from, to, changes, customers)."""
    rows = conn.execute(
        "SELECT tier_from, tier, COUNT(*), COUNT(DISTINCT customer_id) FROM operations "
        "WHERE kind = 'tier' AND event = 'change' AND occurred >= ? AND occurred < ? "
        "GROUP BY 1, 2 ORDER BY 1, 2",
        (start, end),
    )
    return [(str(a), str(b), int(n), int(c)) for a, b, n, c in rows]


def lots(conn: Conn, until: int, as_of: date) -> list[tuple[str, str | None, bool, int]]:
    """What the lots held at the end of `as_of`, by (earn month, the month of the
    last day they can be spent or None, pending then, points). Lots past their
    expiry are left out: they are gone, written off or not."""
    day = day_number(as_of)
    # By day in SQL, by month here (a few rows per day the shop has traded):
    # months from day numbers are spelt differently by SQLite and PostgreSQL.
    rows = conn.execute(
        "SELECT e.earned_on, e.expires_on, CASE WHEN e.available_on > ?1 THEN 1 ELSE 0 END, "
        "SUM(e.points - COALESCE(d.drawn, 0)) FROM entries e "
        "LEFT JOIN (SELECT dr.lot_id, SUM(dr.points) AS drawn FROM draws dr "
        "JOIN entries de ON de.id = dr.entry_id WHERE de.occurred < ?2 "
        "GROUP BY dr.lot_id) d ON d.lot_id = e.id "
        "WHERE e.earned_on IS NOT NULL AND e.occurred < ?2 "
        "AND (e.expires_on IS NULL OR e.expires_on > ?1) GROUP BY 1, 2, 3",
        (day, until),
    )
    months: dict[tuple[str, str | None, bool], int] = {}
    for earned, expires, pending, points in rows:
        key = (
            _month(int(earned)),
            None if expires is None else _month(int(expires) - 1),
            bool(pending),
        )
        months[key] = months.get(key, 0) + int(points)
    return [
        (m, x, p, n)
        for (m, x, p), n in sorted(months.items(), key=lambda k: (k[0][0], k[0][1] or "", k[0][2]))
        if n != 0
    ]


def _month(day: int) -> str:
    """'YYYY-MM' of a day number (days since 1970-01-01)."""
    moment = from_day_number(day)
    return f"{moment.year:04d}-{moment.month:02d}"
