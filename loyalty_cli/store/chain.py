"""The hash chain: each operation's hash covers the previous operation's hash,
the operation itself, and every entry, lot and draw it wrote, so one SHA-256 per
operation makes all of them tamper-evident. A customer's profile is covered by
a salted digest kept in each enroll and profile operation: the chain proves the
profile without holding its text, which a customer may ask to have erased.

Rows are serialised length-prefixed, field by field, so no two different rows
serialise alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

# The order of the fields each hash covers; verify reads them back in this order.
OP_FIELDS = (
    "id, kind, customer_id, occurred, recorded, ruleset, last_entry, txn, content, "
    "amount_cents, event, category, sku, quantity, reward, reason, tier, tier_from, until, "
    "refund_of, clawback, profile"
)
ENTRY_FIELDS = (
    "id, op_id, customer_id, kind, points, occurred, rule, reward, reason, detail, "
    "earned_on, available_on, expires_on"
)
DRAW_FIELDS = "id, entry_id, lot_id, points"
RUN_FIELDS = "id, command, as_of, started, finished, summary"
PROFILE_FIELDS = "id, name, email, phone, birthday, referred_by, enrolled, birthday_set"


def _field(value: object) -> str:
    if value is None:
        return "~"
    text = value.hex() if isinstance(value, bytes) else str(value)
    return f"{len(text)}:{text}"


def canonical(row: Iterable[object]) -> str:
    return "|".join(_field(value) for value in row)


def op_hash(
    previous: bytes,
    op: Sequence[object],
    entries: Sequence[Sequence[object]],
    draws: Sequence[Sequence[object]],
) -> bytes:
    """sha256(previous hash, the operation, its entries (each with its lot's
    dates) and its draws), counted so that a row cannot move between them.
    `op` holds OP_FIELDS with the rules version as its hex text."""
    text = "\n".join(
        [
            canonical(op),
            f"{len(entries)} entries",
            *(canonical(row) for row in entries),
            f"{len(draws)} draws",
            *(canonical(row) for row in draws),
        ]
    )
    return hashlib.sha256(previous + text.encode("utf-8")).digest()


def run_hash(previous: bytes, run: Sequence[object]) -> bytes:
    return hashlib.sha256(previous + canonical(run).encode("utf-8")).digest()


def profile_digest(salt: bytes, profile: Sequence[object]) -> bytes:
    """A salted digest of a customer's profile (PROFILE_FIELDS): it proves the
    profile, and says nothing of it without the salt."""
    return hashlib.sha256(salt + canonical(profile).encode("utf-8")).digest()


def version_of(text: str) -> bytes:
    """A rules text's version: the sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).digest()
