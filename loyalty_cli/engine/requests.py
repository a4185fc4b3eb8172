"""What a use case is asked to do: one request per kind of write, as the command
line, the importer and the nightly step build them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from ..models import Line
from .consent import ConsentChange

# Events loyalty raises itself, never typed in with `earn --event`, and who raises them.
SYSTEM_EVENTS = {
    "enroll": "'loyalty enroll'",
    "referral": "'loyalty enroll --referred-by'",
    "birthday": "'loyalty nightly', on the birthday",
}


@dataclass(frozen=True)
class EnrollRequest:
    customer_id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    birthday: str | None = None
    referred_by: str | None = None
    at: datetime | None = None
    exist_ok: bool = False
    salt: bytes = b""  # random, from the caller: keys the profile digest
    # Marketing consent given or withdrawn at enrollment (engine.consent), and where.
    consent: tuple[ConsentChange, ...] = ()
    consent_source: str | None = None


@dataclass(frozen=True)
class EarnRequest:
    customer_id: str
    event: str  # "purchase" or an event name
    amount: Decimal | None = None
    category: str | None = None
    sku: str | None = None
    quantity: int | None = None
    txn: str | None = None
    at: datetime | None = None  # None: now, and a retry need not repeat it
    # A receipt of two or more lines (amount is then their total, and category,
    # sku and quantity are None); a one-line purchase uses the fields above.
    lines: tuple[Line, ...] = ()
    store: str | None = None  # the store or till of a purchase

    def content(self) -> dict[str, object]:
        out: dict[str, object] = {
            "customer_id": self.customer_id,
            "event": self.event,
            "amount": None if self.amount is None else str(self.amount),
            "category": self.category,
            "sku": self.sku,
            "quantity": self.quantity,
        }
        if self.store is not None:  # only then, as lines: older digests stay valid
            out["store"] = self.store
        if self.lines:  # only then: a one-line purchase keeps the digest it always had
            out["lines"] = [
                [line.sku, line.category, line.quantity, str(line.amount)] for line in self.lines
            ]
        return out


@dataclass(frozen=True)
class RedeemRequest:
    customer_id: str
    points: int | None = None
    reward: str | None = None
    reason: str | None = None
    txn: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class AdjustRequest:
    customer_id: str
    points: int
    reason: str
    txn: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class RefundRequest:
    refund_of: str  # the purchase's txn
    amount: Decimal | None = None  # None: whatever is left to refund
    reason: str | None = None
    txn: str | None = None  # the refund's own idempotency key
    at: datetime | None = None
    # Lines returned: (SKU, or category, or line number as text; units, None: all
    # that are left). Exclusive with amount.
    returns: tuple[tuple[str, int | None], ...] = ()

    def content(self) -> dict[str, object]:
        out: dict[str, object] = {
            "refund_of": self.refund_of,
            "amount": None if self.amount is None else str(self.amount),
        }
        if self.returns:
            out["returns"] = [list(r) for r in self.returns]
        return out


@dataclass(frozen=True)
class ProfileRequest:
    customer_id: str
    changes: dict[str, str | None]  # name, email, phone, birthday: the new values
    at: datetime | None = None
    consent: tuple[ConsentChange, ...] = ()
    consent_source: str | None = None


@dataclass(frozen=True)
class EraseRequest:
    customer_id: str
    reason: str  # kept in the ledger: it must not repeat what is erased
    at: datetime | None = None
    salt: bytes = b""  # random, from the caller: replaces the profile's salt


@dataclass(frozen=True)
class TierRequest:
    customer_id: str
    tier: str
    reason: str
    until: date | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class TransferRequest:
    from_customer: str
    to_customer: str
    points: int
    reason: str
    txn: str | None = None
    at: datetime | None = None

    def content(self) -> dict[str, object]:
        return {
            "customer_id": self.from_customer,
            "to": self.to_customer,
            "points": self.points,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class MergeRequest:
    keep: str  # the account that stays
    duplicate: str  # the account folded into it
    reason: str
    txn: str | None = None
    at: datetime | None = None

    def content(self) -> dict[str, object]:
        return {"customer_id": self.keep, "duplicate": self.duplicate, "reason": self.reason}
