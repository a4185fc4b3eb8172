"""A customer's account, read side: balance and history. No rules, no writes.

Kept apart from the write-side use cases so that `balance` and `history`, the
commands a till calls most, load nothing they do not use.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import Refused
from .ledger import Customer, Entry, Ledger
from .values import from_cents


def customer_or_refuse(ledger: Ledger, customer_id: str, what: str = "customer") -> Customer:
    customer = ledger.customer(customer_id)
    if customer is None:
        raise Refused(f"unknown {what} {customer_id!r} (enroll them first: loyalty enroll ID)")
    return customer


@dataclass(frozen=True)
class BalanceResult:
    customer: Customer
    balance: int
    earned: int
    redeemed: int
    adjusted: int

    def to_json(self) -> dict[str, object]:
        return {
            "customer_id": self.customer.id,
            "name": self.customer.name,
            "balance": self.balance,
            "earned": self.earned,
            "redeemed": self.redeemed,
            "adjusted": self.adjusted,
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


# --- shared steps --------------------------------------------------------------


def balance(ledger: Ledger, customer_id: str) -> BalanceResult:
    customer = customer_or_refuse(ledger, customer_id)
    by_kind = ledger.points_by_kind(customer_id)
    return BalanceResult(
        customer=customer,
        balance=sum(by_kind.values()),
        earned=by_kind.get("enroll", 0) + by_kind.get("earn", 0),
        redeemed=-by_kind.get("redeem", 0),
        adjusted=by_kind.get("adjust", 0),
    )


def history(ledger: Ledger, customer_id: str, limit: int | None = None) -> HistoryResult:
    customer_or_refuse(ledger, customer_id)
    return HistoryResult(
        customer_id, ledger.balance(customer_id), ledger.history(customer_id, limit)
    )
