"""A customer's account, read side: what they hold, and their history. No rules, no writes.

Kept apart from the write-side use cases so that `balance` and `history`, the
commands a till calls most, load nothing they do not use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from . import lots
from .errors import Refused
from .ledger import Customer, Entry, Ledger
from .values import format_utc, from_cents


def customer_or_refuse(ledger: Ledger, customer_id: str, what: str = "customer") -> Customer:
    customer = ledger.customer(customer_id)
    if customer is None:
        raise Refused(f"unknown {what} {customer_id!r} (enroll them first: loyalty enroll ID)")
    return customer


def shop_today(ledger: Ledger, now: datetime) -> date:
    """Today in the shop, by the time zone of the rules that last wrote to the ledger."""
    name = ledger.shop_timezone()
    return now.astimezone(ZoneInfo(name) if name else UTC).date()


class Holdings(NamedTuple):
    """A customer's points on a given day, from their lots. Points past their
    expiry never count, whether or not an expiry entry was written for them yet."""

    available: int  # spendable now; negative only when a refund left a debt
    pending: int  # held for the return window
    expiring: tuple[tuple[date, int], ...]  # available points gone within 30 days, by date

    @property
    def balance(self) -> int:
        return self.available + self.pending


def holdings(ledger: Ledger, customer_id: str, today: date, until: str | None = None) -> Holdings:
    held = ledger.lots(customer_id, until)
    split = lots.split(held, today)
    # Points taken without a lot to take them from (a refund allowed to go
    # negative) are a debt against what is available.
    debt = sum(lot.remaining for lot in held) - ledger.balance(customer_id, until)
    return Holdings(split.available - debt, split.pending, split.expiring)


@dataclass(frozen=True)
class BalanceResult:
    customer: Customer
    held: Holdings
    earned: int
    redeemed: int
    adjusted: int
    expired: int
    refunded: int

    @property
    def balance(self) -> int:
        return self.held.balance

    def to_json(self) -> dict[str, object]:
        held = self.held
        return {
            "customer_id": self.customer.id,
            "name": self.customer.name,
            "balance": held.balance,
            "available": held.available,
            "pending": held.pending,
            "expiring_30_days": sum(points for _, points in held.expiring),
            "next_expiry": held.expiring[0][0].isoformat() if held.expiring else None,
            "expiring": [{"date": day.isoformat(), "points": n} for day, n in held.expiring],
            "earned": self.earned,
            "redeemed": self.redeemed,
            "adjusted": self.adjusted,
            "expired": self.expired,
            "refunded": self.refunded,
        }


def entry_json(entry: Entry) -> dict[str, object]:
    return {
        "id": entry.id,
        "occurred_at": entry.occurred_at,
        "kind": entry.kind,
        "points": entry.points,
        "rule": entry.rule,
        "reward": entry.reward,
        "reason": entry.reason,
        "detail": entry.detail,
        "amount": None if entry.amount_cents is None else str(from_cents(entry.amount_cents)),
        "txn": entry.txn,
        "rules_version": entry.ruleset,
    }


@dataclass(frozen=True)
class HistoryResult:
    customer_id: str
    balance: int
    entries: list[Entry]

    def to_json(self) -> dict[str, object]:
        return {
            "customer_id": self.customer_id,
            "balance": self.balance,
            "entries": [entry_json(e) for e in self.entries],
        }


def balance(
    ledger: Ledger, customer_id: str, now: datetime, as_of: datetime | None = None
) -> BalanceResult:
    """The customer's points now, or as the ledger stood `as_of` (entries after it
    left out, expiry and pending judged on that day)."""
    customer = customer_or_refuse(ledger, customer_id)
    until = None if as_of is None else format_utc(as_of)
    by_kind = ledger.points_by_kind(customer_id, until)
    return BalanceResult(
        customer=customer,
        held=holdings(ledger, customer_id, shop_today(ledger, as_of or now), until),
        earned=by_kind.get("enroll", 0) + by_kind.get("earn", 0),
        redeemed=-by_kind.get("redeem", 0),
        adjusted=by_kind.get("adjust", 0),
        expired=-by_kind.get("expire", 0),
        refunded=-by_kind.get("refund", 0),
    )


def history(
    ledger: Ledger,
    customer_id: str,
    now: datetime,
    limit: int | None = None,
    as_of: datetime | None = None,
) -> HistoryResult:
    customer_or_refuse(ledger, customer_id)
    until = None if as_of is None else format_utc(as_of)
    held = holdings(ledger, customer_id, shop_today(ledger, as_of or now), until)
    return HistoryResult(customer_id, held.balance, ledger.history(customer_id, limit, until))
