"""Reading one past operation back, for `loyalty explain`: the operation, its
entries, the rules text it was decided under, and what its customer's account
held just before it (every figure counted over the operations before it)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from .dialect import Conn

_OP = (
    "SELECT o.id, o.kind, o.customer_id, o.occurred, lower(hex(r.version)), r.source, r.text, "
    "o.amount_cents, o.event, o.category, o.sku, o.quantity, o.reward, o.reason, o.clawback, "
    "p.txn, p.amount_cents, o.txn, o.tier, o.tier_from "
    "FROM operations o LEFT JOIN rulesets r ON r.id = o.ruleset "
    "LEFT JOIN operations p ON p.id = o.refund_of "
)


@dataclass(frozen=True)
class PastOperation:
    id: int
    kind: str
    customer_id: str | None
    occurred: int
    version: str | None
    source: str | None
    text: str | None
    amount_cents: int | None
    event: str | None
    category: str | None
    sku: str | None
    quantity: int | None
    reward: str | None
    reason: str | None
    clawback: int | None
    refund_of_txn: str | None
    refund_of_cents: int | None
    txn: str | None
    tier: str | None
    tier_from: str | None
    entries: tuple[tuple[Any, ...], ...] = ()  # (id, customer, kind, points, rule, reward,
    #                                             reason, detail)


def operation(conn: Conn, txn: str | None, entry: int | None) -> PastOperation | None:
    """The operation recorded under `txn`, or the one that wrote entry `entry`."""
    if txn is not None:
        row = conn.execute(_OP + "WHERE o.txn = ?", (txn,)).fetchone()
    else:
        row = conn.execute(
            _OP + "WHERE o.id = (SELECT min(id) FROM operations WHERE last_entry >= ?) "
            "AND EXISTS (SELECT 1 FROM entries WHERE id = ?)",
            (entry, entry),
        ).fetchone()
    if row is None:
        return None
    entries = conn.execute(
        "SELECT e.id, e.customer_id, e.kind, e.points, e.rule, e.reward, e.reason, e.detail "
        "FROM entries e WHERE e.id > COALESCE((SELECT p.last_entry FROM operations p "
        "WHERE p.id < ? ORDER BY p.id DESC LIMIT 1), 0) AND e.id <= (SELECT last_entry "
        "FROM operations WHERE id = ?) ORDER BY e.id",
        (row[0], row[0]),
    ).fetchall()
    names = [f.name for f in fields(PastOperation)][: len(row)]
    return PastOperation(**dict(zip(names, row, strict=True)), entries=tuple(map(tuple, entries)))


@dataclass(frozen=True)
class Before:
    """A customer's figures over the operations before one."""

    enrolled: int
    referred_by: str | None
    net: int
    purchases: int
    spend_cents: int
    uses: tuple[tuple[str, int, int], ...]  # (rule, occurred, points) of capped rules
    tier: str | None  # the last tier change recorded
    tier_day: int | None  # its occurred
    override: tuple[str, int | None, str] | None  # (tier, until day, reason)
    budgets: dict[str, int]  # budgeted rule -> points given by everyone before
    badges: tuple[str, ...] = ()  # the badges the games gave them before


def before(
    conn: Conn,
    customer_id: str,
    op_id: int,
    capped: Sequence[str],
    budgeted: Sequence[str],
) -> Before | None:
    found = conn.execute(
        "SELECT enrolled, referred_by FROM customers WHERE id = ?", (customer_id,)
    ).fetchone()
    if found is None:
        return None
    # The account's ids as of the operation: the customer and the duplicates
    # merged into it before then, whose history counted for it (caps included).
    ids = (
        "(customer_id = ?1 OR customer_id IN "
        "(SELECT duplicate FROM merges WHERE keep = ?1 AND op_id < ?2))"
    )
    net, purchases, bought, back = conn.execute(
        f"SELECT (SELECT COALESCE(SUM(points), 0) FROM entries WHERE {ids} "
        "AND op_id < ?2), "
        f"(SELECT count(*) FROM operations WHERE {ids} AND kind = 'purchase' "
        "AND id < ?2), "
        f"(SELECT COALESCE(SUM(amount_cents), 0) FROM operations WHERE {ids} "
        "AND kind = 'purchase' AND id < ?2), "
        f"(SELECT COALESCE(SUM(amount_cents), 0) FROM operations WHERE {ids} "
        "AND kind = 'refund' AND id < ?2)",
        (customer_id, op_id),
    ).fetchone()
    uses = conn.execute(
        f"SELECT rule, occurred, points FROM entries WHERE {ids} AND op_id < ?2 "
        "AND kind IN ('earn', 'enroll', 'gift') AND rule IN (SELECT value FROM json_each(?3)) "
        "ORDER BY id",
        (customer_id, op_id, json.dumps(list(capped))),
    ).fetchall()
    tier = conn.execute(
        "SELECT tier, occurred FROM operations WHERE customer_id = ? AND kind = 'tier' "
        "AND event = 'change' AND id < ? ORDER BY id DESC LIMIT 1",
        (customer_id, op_id),
    ).fetchone()
    floor = conn.execute(
        "SELECT tier, until, reason FROM operations WHERE customer_id = ? AND kind = 'tier' "
        "AND event = 'override' AND id < ? ORDER BY id DESC LIMIT 1",
        (customer_id, op_id),
    ).fetchone()
    badges = conn.execute(
        f"SELECT DISTINCT reward FROM entries WHERE {ids} AND op_id < ?2 "
        "AND kind = 'badge' AND reward IS NOT NULL ORDER BY reward",
        (customer_id, op_id),
    ).fetchall()
    budgets = {
        rule: int(
            conn.execute(
                "SELECT COALESCE(SUM(points), 0) FROM entries WHERE rule = ? AND op_id < ?",
                (rule, op_id),
            ).fetchone()[0]
        )
        for rule in budgeted
    }
    return Before(
        enrolled=int(found[0]),
        referred_by=found[1],
        net=int(net),
        purchases=int(purchases),
        spend_cents=int(bought) - int(back),
        uses=tuple((str(r), int(o), int(p)) for r, o, p in uses),
        tier=None if tier is None else str(tier[0]),
        tier_day=None if tier is None else int(tier[1]),
        override=None if floor is None else (str(floor[0]), floor[1], str(floor[2] or "")),
        budgets=budgets,
        badges=tuple(str(b) for (b,) in badges),
    )


def rules_versions(conn: Conn, prefix: str) -> list[tuple[str, str, str, int]]:
    """(version hex, source, text, first used) of the stored rules versions whose
    hash starts with `prefix` (lowercase hex)."""
    rows = conn.execute(
        "SELECT lower(hex(version)), source, text, first_used FROM rulesets "
        "WHERE lower(hex(version)) LIKE ? || '%' ORDER BY first_used, id LIMIT 50",
        (prefix,),
    )
    return [(str(v), str(s), str(t), int(f)) for v, s, t, f in rows]
