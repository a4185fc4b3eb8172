"""The hash chain: each operation's hash covers the previous operation's hash,
the operation itself, and every entry, lot and draw it wrote, so one SHA-256 per
operation makes all of them tamper-evident. A customer's profile is covered by
a salted digest kept in each enroll and profile operation: the chain proves the
profile without holding its text, which a customer may ask to have erased.

Rows are serialised as JSON arrays (ASCII, bytes as hex): unambiguous, and one
C call for an operation with all its rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence


def canonical(row: Sequence[object]) -> str:
    """A row as JSON (bytes as hex): one C call per row, and no two different
    rows of the same kind serialise alike."""
    return json.dumps(list(row), separators=(",", ":"), default=bytes.hex)


def op_hash(
    previous: bytes,
    op: Sequence[object],
    entries: Sequence[Sequence[object]],
    draws: Sequence[Sequence[object]],
    items: Sequence[Sequence[object]] = (),
    store: str | None = None,
) -> bytes:
    """sha256(previous hash, the operation, its entries (each with its lot's
    dates), its draws and its receipt lines (schema.ITEM_FIELDS)), as one JSON array, so that a row
    cannot move between them. `op` holds OP_FIELDS with the rules version as its
    hex text. A purchase's store, when given, comes last. An operation without
    receipt lines or a store hashes as it always has."""
    parts: list[object] = [op, entries, draws]
    if items or store is not None:
        # A line's split by rule (items.earned_by, schema 12) is hashed when it has
        # one: the lines written before it hash as they always have.
        parts.append([row if row[7:] != (None,) else row[:7] for row in map(tuple, items)])
    if store is not None:
        parts.append(store)
    text = json.dumps(parts, separators=(",", ":"), default=bytes.hex)
    return hashlib.sha256(previous + text.encode("ascii")).digest()


def run_hash(previous: bytes, run: Sequence[object]) -> bytes:
    return hashlib.sha256(previous + canonical(run).encode("ascii")).digest()


def profile_digest(salt: bytes, profile: Sequence[object]) -> bytes:
    """A salted digest of a customer's profile (PROFILE_FIELDS): it proves the
    profile, and says nothing of it without the salt."""
    return hashlib.sha256(salt + canonical(profile).encode("ascii")).digest()


def version_of(text: str) -> bytes:
    """A rules text's version: the sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).digest()
