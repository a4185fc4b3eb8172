"""A customer's account, read side: what they hold, and their history. No rules
are needed (the shop's time zone is kept with the rules that wrote), and no
writes.

Kept apart from the write-side use cases so that `balance` and `history`, the
commands a till calls most, load nothing they do not use: the rules and the
evaluator are loaded only to explain an award line in `history`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from . import lots
from .clock import iso, shop_day, stamp, zone
from .errors import LoyaltyError, unknown_customer
from .lots import Holdings
from .store import Store, queries
from .store.queries import HistoryRow
from .values import from_cents


def shop_today(store: Store, now: datetime) -> date:
    """Today in the shop, by the time zone of the rules that last wrote to the ledger."""
    name = queries.shop_timezone(store.conn)
    return shop_day(now, zone(name) if name else UTC)


def holdings(store: Store, customer_id: str, today: date, until: int | None) -> Holdings:
    """What the customer held on `today`, from the ledger as it stood at `until`."""
    held = queries.lots(store.conn, customer_id, until)
    net = sum(queries.points_by_kind(store.conn, customer_id, until).values())
    split = lots.split(held, today)
    # Points taken without a lot to take them from (a refund allowed to go
    # negative) are a debt against what is available.
    debt = sum(lot.remaining for lot in held) - net
    return Holdings(split.available - debt, split.pending, split.expiring)


@dataclass(frozen=True)
class BalanceResult:
    customer_id: str
    name: str | None
    held: Holdings
    earned: int
    redeemed: int
    adjusted: int
    expired: int
    refunded: int
    transferred: int = 0  # received less given (transfer)

    @property
    def balance(self) -> int:
        return self.held.balance

    def to_json(self) -> dict[str, object]:
        held = self.held
        return {
            "customer_id": self.customer_id,
            "name": self.name,
            "balance": held.balance,
            "available": held.available,
            "pending": held.pending,
            "expiring_30_days": sum(points for _, points in held.expiring),
            "next_expiry": held.expiring[0][0].isoformat() if held.expiring else None,
            "expiring": [{"date": day.isoformat(), "points": n} for day, n in held.expiring],
            "points_earned": self.earned,
            "points_redeemed": self.redeemed,
            "points_adjusted": self.adjusted,
            "points_expired": self.expired,
            "points_refunded": self.refunded,
            "points_transferred": self.transferred,
        }


def balance(
    store: Store, customer_id: str, now: datetime, as_of: datetime | None = None
) -> BalanceResult:
    """The customer's points now, or as the ledger stood `as_of` (entries after it
    left out, expiry and pending judged on that day)."""
    with store.snapshot():
        name = queries.exists(store.conn, customer_id)
        if name is None:
            raise unknown_customer(customer_id)
        until = None if as_of is None else stamp(as_of)
        by_kind = queries.points_by_kind(store.conn, customer_id, until)
        held = queries.lots(store.conn, customer_id, until)
        today = shop_today(store, as_of or now)
    split = lots.split(held, today)
    debt = sum(lot.remaining for lot in held) - sum(by_kind.values())
    return BalanceResult(
        customer_id=customer_id,
        name=name or None,
        held=Holdings(split.available - debt, split.pending, split.expiring),
        earned=by_kind.get("enroll", 0) + by_kind.get("earn", 0),
        redeemed=-by_kind.get("redeem", 0),
        adjusted=by_kind.get("adjust", 0),
        expired=-by_kind.get("expire", 0),
        refunded=-by_kind.get("refund", 0),
        transferred=by_kind.get("transfer", 0),
    )


def entry_json(row: HistoryRow, detail: str | None) -> dict[str, object]:
    return {
        "entry": row.id,
        "occurred_at": iso(row.occurred),
        "kind": row.kind,
        "points": row.points,
        "rule": row.rule,
        "reward": row.reward,
        "reason": row.reason,
        "detail": detail,
        "amount": None if row.amount_cents is None else str(from_cents(row.amount_cents)),
        "txn": row.txn,
        "store": row.store,
        "rules_version": None if row.version is None else bytes(row.version).hex(),
    }


@dataclass(frozen=True)
class HistoryResult:
    customer_id: str
    balance: int
    entries: list[dict[str, object]]
    timezone: str
    receipts: list[dict[str, object]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "customer_id": self.customer_id,
            "timezone": self.timezone,
            "balance": self.balance,
            "entries": self.entries,
            "receipts": self.receipts,
        }


def history(
    store: Store,
    customer_id: str,
    now: datetime,
    limit: int | None = None,
    as_of: datetime | None = None,
) -> HistoryResult:
    until = None if as_of is None else stamp(as_of)
    with store.snapshot():
        if queries.exists(store.conn, customer_id) is None:
            raise unknown_customer(customer_id)
        held = holdings(store, customer_id, shop_today(store, as_of or now), until)
        rows = queries.history(store.conn, customer_id, limit, until)
        items = queries.items_of(store.conn, [row.op_id for row in rows])
        details = explain(store, rows, items)
        timezone = queries.shop_timezone(store.conn) or "UTC"
    return HistoryResult(
        customer_id,
        held.balance,
        [entry_json(row, details[row.id]) for row in rows],
        timezone,
        _receipts(rows, items),
    )


def _receipts(
    rows: list[HistoryRow], items: dict[int, list[queries.ItemRow]]
) -> list[dict[str, object]]:
    """The receipt lines of the operations shown (a receipt of several lines, or
    what a refund by line returned), newest first like the entries."""
    out: list[dict[str, object]] = []
    seen: set[int] = set()
    for row in rows:
        if row.op_id in seen or row.op_id not in items:
            continue
        seen.add(row.op_id)
        out.append(
            {
                "txn": row.txn,
                "occurred_at": iso(row.occurred),
                "kind": "refund" if row.kind == "refund" else "purchase",
                "items": [
                    {
                        "number": i.number,
                        "sku": i.sku,
                        "category": i.category,
                        "quantity": i.quantity,
                        "amount": str(from_cents(i.amount_cents)),
                        "points": i.points,
                    }
                    for i in items[row.op_id]
                ],
            }
        )
    return out


def explain(
    store: Store, rows: list[HistoryRow], items: dict[int, list[queries.ItemRow]] | None = None
) -> dict[int, str | None]:
    """Each entry's detail: as stored, or rebuilt from the rules that made it (the
    ledger keeps the words only of lines a cap or a budget cut short). A rule's
    entry on a receipt of several lines sums its lines: its words say so."""
    out: dict[int, str | None] = {row.id: row.detail for row in rows}
    items = items or {}
    for row in rows:
        if row.detail is None and row.kind == "earn" and row.op_id in items:
            out[row.id] = f"over the receipt's {len(items[row.op_id])} lines"
    missing = [
        r
        for r in rows
        if r.detail is None and r.rule is not None and r.kind != "tier" and r.op_id not in items
    ]
    if not missing:
        return out
    from .evaluator import base_of, line_detail
    from .models import Ruleset
    from .rules import parse_rules

    versions = {bytes(r.version).hex() for r in missing if r.version is not None}
    parsed: dict[str, Ruleset | None] = {}
    for version, (source, text) in queries.rules_texts(store.conn, sorted(versions)).items():
        try:
            parsed[version] = parse_rules(text, source)
        except LoyaltyError:  # a text no longer valid under today's checks: no words
            parsed[version] = None
    # A multiplier's words need the sum of its operation's point lines: read the
    # whole of each operation concerned, whatever the page cut off.
    siblings: dict[int, list[HistoryRow]] = {}
    for row in queries.entries_of(store.conn, sorted({r.op_id for r in missing})):
        siblings.setdefault(row.op_id, []).append(row)
    for row in missing:
        rules = None if row.version is None else parsed.get(bytes(row.version).hex())
        if rules is None or row.rule is None:
            continue
        mine = [
            (s.rule, s.points)
            for s in siblings.get(row.op_id, [])
            if s.customer_id == row.customer_id
        ]
        amount = None if row.amount_cents is None else from_cents(row.amount_cents)
        out[row.id] = line_detail(rules, row.rule, row.points, amount, base_of(rules, mine))
    return out
