"""What decisions produce and what they look up: new operations with their
entries, lots and draws, and operations already recorded under a txn.

Plain frozen records. The store writes `NewOperation`s (and chains them); the
decisions read `Recorded`s for idempotent retries and refunds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime

from ..account import Profile
from ..kinds import EntryKind, OpKind
from ..lots import LotTerms
from ..values import from_cents


@dataclass(frozen=True, slots=True)
class NewEntry:
    id: int
    customer_id: str
    kind: EntryKind
    points: int
    rule: str | None = None
    reward: str | None = None
    reason: str | None = None
    detail: str | None = None  # kept only when the rules cannot rebuild it
    lot: LotTerms | None = None  # a credit: the lot it opens
    draws: tuple[tuple[int, int], ...] = ()  # a debit: (lot id, points) it takes


@dataclass(frozen=True, slots=True)
class NewItem:
    """A line of a receipt as stored (a receipt of two or more lines), or a line
    a refund returned: `number` is the line's number on the sale, `points` what it
    earned (a refund: what it took back, negative)."""

    number: int
    quantity: int
    amount_cents: int
    points: int
    sku: str | None = None
    category: str | None = None
    # A sold line of a receipt of several lines: its points by rule, or the rule
    # that excluded it, as JSON (see awards.receipt_items); None on a return.
    earned_by: str | None = None


@dataclass(frozen=True, slots=True)
class NewOperation:
    id: int
    kind: OpKind
    customer_id: str
    occurred_at: datetime
    ruleset: str  # the rules version (sha256 hex of the text) it was decided under
    entries: tuple[NewEntry, ...] = ()
    txn: str | None = None
    content: bytes | None = None  # digest of the request, for key conflicts
    event: str | None = None
    amount_cents: int | None = None
    category: str | None = None
    sku: str | None = None
    quantity: int | None = None
    reward: str | None = None
    reason: str | None = None
    tier: str | None = None  # tier ops: the tier it moved to, or the manual floor
    tier_from: str | None = None
    until: date | None = None  # a manual floor's last day
    refund_of: int | None = None  # refunds: the purchase's operation
    clawback: int | None = None  # refunds: the points it was due to take back
    profile: Profile | None = None  # enroll and profile: the profile after it
    items: tuple[NewItem, ...] = ()  # a receipt's lines, or the lines a refund returned
    store: str | None = None  # a purchase's store or till

    @property
    def points(self) -> int:
        return sum(e.points for e in self.entries)


@dataclass(frozen=True, slots=True)
class RecordedLine:
    id: int
    customer_id: str
    kind: str
    points: int
    rule: str | None
    reward: str | None
    detail: str | None  # as stored (None: rebuild it from the rules)


@dataclass(frozen=True, slots=True)
class RecordedItem:
    """A line of a recorded sale, with what its refunds have returned so far."""

    number: int
    quantity: int
    amount_cents: int
    points: int
    sku: str | None = None
    category: str | None = None
    returned_quantity: int = 0
    returned_cents: int = 0
    returned_points: int = 0  # positive: the points its returns were due to take back
    earned_by: str | None = None  # as NewItem's


@dataclass(frozen=True, slots=True)
class Recorded:
    """An operation already in the ledger (or decided earlier in this transaction),
    found by its txn: what a retry reports, and what a refund takes back."""

    id: int
    txn: str
    kind: str
    customer_id: str
    occurred_at: datetime
    content: bytes | None
    ruleset: str | None
    lines: tuple[RecordedLine, ...] = ()
    event: str | None = None
    amount_cents: int | None = None
    category: str | None = None
    sku: str | None = None
    quantity: int | None = None
    reward: str | None = None
    reason: str | None = None
    refund_of_txn: str | None = None  # refunds: the purchase's txn
    clawback: int | None = None  # refunds: points it was due to take back
    refunded_cents: int = 0  # purchases: refunded so far
    due_back: int = 0  # purchases: points their refunds were due to take back so far
    items: tuple[RecordedItem, ...] = ()  # a receipt of several lines: its lines
    store: str | None = None

    @property
    def points(self) -> int:
        return sum(line.points for line in self.lines)

    def shown(self) -> dict[str, object]:
        """Its content as a conflict message names it."""
        if self.kind in (OpKind.PURCHASE, OpKind.EVENT):
            return {
                "customer_id": self.customer_id,
                "event": self.event,
                "amount": _money(self.amount_cents),
                "category": self.category,
                "sku": self.sku,
                "quantity": self.quantity,
                "store": self.store,
            }
        if self.kind == OpKind.REFUND:
            return {"refund_of": self.refund_of_txn, "amount": _money(self.amount_cents)}
        if self.kind == OpKind.REDEEM:
            return {"customer_id": self.customer_id, "points": -self.points, "reward": self.reward}
        return {"customer_id": self.customer_id, "points": self.points, "reason": self.reason}


def _money(cents: int | None) -> str | None:
    return None if cents is None else str(from_cents(cents))


def content_digest(content: dict[str, object]) -> bytes:
    """A request's canonical content, digested: a retry with the same key must
    carry the same content. 8 bytes: a collision is a 2^-64 chance per retry."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).digest()[:8]
