"""Read-only aggregates for `loyalty report clv` (loyalty_cli/lifetime.py shapes them).

The words mean what they mean in the other reports (store/reports.py): a
purchase is a `purchase` operation, and spend is what purchases came to less
what was refunded on them. The models count purchase days: a customer's
purchases on one shop-local day are one purchase. Bounds are stored times, as
in store/reports.py: `until` and `cut` exclusive (the end of a day).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .dialect import Conn
from .reports import local_shift, rfm_members
from .schema import keeper

# Days since 1970 from a stored time: an offset keeps the division's operand
# positive (SQLite truncates towards zero), so times before 1970 floor too.
_OFFSET_DAYS = 1_000_000


class Buyer(NamedTuple):
    """A customer with a purchase before `cut`, as of then (days are days since 1970)."""

    id: str
    name: str | None
    tier: str | None  # the last tier entry's tier before `cut`; None: none yet
    days: int  # purchase days
    first: int
    last: int
    spend_cents: int  # purchases less what was refunded on them, before `cut`
    first_day_cents: int  # the same, of the first purchase day alone
    later_days: int  # purchase days from `cut` to `until`
    rfm: tuple[int, int, int]  # the segments report's scores, as of `cut`


def _purchase_days(shifts: Sequence[tuple[int, int]]) -> tuple[str, list[object]]:
    """CTEs ending in `pd(cid, day, cents)`: each customer's purchase days with
    their spend. Parameters: `cut` (refunds count if recorded before it), the
    returned ones, then `until` (purchases before it)."""
    shift, zone = local_shift("o.occurred", shifts)
    sql = (
        "returned AS (SELECT refund_of, SUM(amount_cents) AS cents FROM operations "
        "WHERE kind = 'refund' AND occurred < ? GROUP BY refund_of), "
        f"pd0 AS (SELECT o.customer_id AS cid, "
        f"(o.occurred + ({shift}) + {_OFFSET_DAYS * 86400}) / 86400 - {_OFFSET_DAYS} AS day, "
        "SUM(o.amount_cents - COALESCE(returned.cents, 0)) AS cents "
        "FROM operations o INDEXED BY operations_customer "
        "LEFT JOIN returned ON returned.refund_of = o.id "
        "WHERE o.kind = 'purchase' AND o.occurred < ? GROUP BY 1, 2), "
        # A merged duplicate's purchase days are its keeper's: one customer.
        f"pd AS (SELECT {keeper('cid')} AS cid, day, SUM(cents) AS cents FROM pd0 "
        f"GROUP BY 1, 2) "
    )
    return sql, zone


def buyers(
    conn: Conn,
    until: int,
    cut: int,
    cut_day: int,
    shifts: Sequence[tuple[int, int]],
) -> list[Buyer]:
    """One row per customer with a purchase on or before `cut_day` (whose end is
    `cut`), by id. `until` >= `cut` bounds the later days. Two statements: the
    figures, and the segments report's own scores, matched here (a join of the
    two in SQL scans the unindexed window query once per customer)."""
    days, day_params = _purchase_days(shifts)
    rows = conn.execute(
        "WITH " + days + ", "
        "agg AS (SELECT * FROM (SELECT cid, COUNT(*) FILTER (WHERE day <= ?) AS n, "
        "MIN(day) AS first, MAX(CASE WHEN day <= ? THEN day END) AS last, "
        "SUM(CASE WHEN day <= ? THEN cents ELSE 0 END) AS cents, "
        "COUNT(*) FILTER (WHERE day > ?) AS later "
        "FROM pd GROUP BY cid) AS per_customer WHERE n > 0), "
        # pd holds a row per customer and day: the first day's is the one at MIN(day).
        "opening AS (SELECT pd.cid, pd.cents FROM pd JOIN (SELECT cid, MIN(day) AS day "
        "FROM pd GROUP BY cid) AS f ON f.cid = pd.cid AND f.day = pd.day), "
        "tiers AS (SELECT t.customer_id, t.rule AS tier FROM entries t JOIN "
        "(SELECT MAX(id) AS id FROM entries WHERE kind = 'tier' AND occurred < ? "
        "GROUP BY customer_id) AS newest ON newest.id = t.id) "
        "SELECT agg.cid, c.name, tiers.tier, agg.n, agg.first, agg.last, agg.cents, "
        "opening.cents, agg.later FROM agg "
        "JOIN customers c ON c.id = agg.cid JOIN opening ON opening.cid = agg.cid "
        "LEFT JOIN tiers ON tiers.customer_id = agg.cid ORDER BY agg.cid",
        [cut, *day_params, until, cut_day, cut_day, cut_day, cut_day, cut],
    ).fetchall()
    every = [r * 100 + f * 10 + m for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)]
    scores = {
        str(cid): (int(r), int(f), int(m))
        for cid, _, _, _, _, r, f, m in rfm_members(conn, cut, shifts, every)
    }
    return [
        Buyer(
            str(cid),
            name,
            tier,
            int(n),
            int(first),
            int(last),
            int(cents),
            int(opening),
            int(later),
            scores[str(cid)],
        )
        for cid, name, tier, n, first, last, cents, opening, later in rows
    ]


def later_days(
    conn: Conn,
    until: int,
    cut: int,
    cut_day: int,
    shifts: Sequence[tuple[int, int]],
) -> dict[int, int]:
    """{day: purchase days on it} after `cut_day`, before `until`, of the
    customers with a purchase on or before `cut_day`."""
    days, params = _purchase_days(shifts)
    rows = conn.execute(
        "WITH " + days + ", cohort AS (SELECT cid FROM pd GROUP BY cid HAVING MIN(day) <= ?) "
        "SELECT day, COUNT(*) FROM pd WHERE day > ? AND cid IN (SELECT cid FROM cohort) "
        "GROUP BY day",
        [cut, *params, until, cut_day, cut_day],
    )
    return {int(day): int(n) for day, n in rows}
