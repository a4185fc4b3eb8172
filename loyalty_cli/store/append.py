"""Appending what decisions decided: operations with their entries, lots and
draws, new customers and profile changes, chained, one executemany per table
for a whole batch (one operation at a till, a chunk of an import)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..account import Profile
from ..clock import day_number, stamp
from ..engine.records import NewOperation
from ..models import Ruleset
from .chain import op_hash, profile_digest
from .dialect import Conn
from .schema import insert_many, insert_rows
from .snapshots import Tip


def profile_fields(profile: Profile) -> tuple[object, ...]:
    """A profile as its digest covers it (chain.PROFILE_FIELDS)."""
    return (
        profile.id,
        profile.name,
        profile.email,
        profile.phone,
        profile.birthday,
        profile.referred_by,
        stamp(profile.enrolled_at),
        None if profile.birthday_set_at is None else stamp(profile.birthday_set_at),
    )


def ensure_ruleset(conn: Conn, ruleset: Ruleset, now: datetime, tip: Tip) -> int:
    """The rules text's id, storing it the first time it is used."""
    if tip.ruleset is None:
        (tip.ruleset,) = conn.execute(
            "INSERT INTO rulesets (version, source, text, timezone, first_used) "
            "VALUES (?, ?, ?, ?, ?) RETURNING id",
            (
                bytes.fromhex(ruleset.version),
                ruleset.source,
                ruleset.text,
                ruleset.program.timezone,
                stamp(now),
            ),
        ).fetchone()
    return tip.ruleset


def append(
    conn: Conn,
    ops: Sequence[NewOperation],
    ruleset: Ruleset,
    now: datetime,
    tip: Tip,
) -> None:
    """Write `ops` (decided on `tip`'s ids, in order), extending the chain."""
    if not ops:
        return
    ruleset_id = ensure_ruleset(conn, ruleset, now, tip)
    version = ruleset.version
    recorded = stamp(now)
    previous, last_entry, draw_id = tip.hash, tip.entry, tip.draw
    # Ids after the ones the decisions were made on move up to follow the tip
    # as it is now (the same on SQLite, which holds its one lock throughout).
    op_shift, entry_shift = tip.op - tip.base_op, tip.entry - tip.base_entry

    def op_id(old: int) -> int:
        return old + op_shift if old > tip.base_op else old

    def entry_id(old: int) -> int:
        return old + entry_shift if old > tip.base_entry else old

    op_rows: list[tuple[object, ...]] = []
    entry_rows: list[tuple[object, ...]] = []
    draw_rows: list[tuple[object, ...]] = []
    item_rows: list[tuple[object, ...]] = []
    new_customers: list[tuple[object, ...]] = []
    changed: list[tuple[object, ...]] = []
    erased: list[tuple[object, ...]] = []
    merges: list[tuple[object, ...]] = []
    for op in ops:
        assert op.ruleset == version, "a batch is decided under one rules version"
        # The chain finds an operation's entries as the ids after the previous
        # operation's last: decisions must number them in the order they append.
        new_id = op_id(op.id)
        assert new_id > tip.op, "operations out of order"
        assert all(entry_id(e.id) > last_entry for e in op.entries), "entries out of order"
        occurred = stamp(op.occurred_at)
        entries = []
        draws = []
        for e in op.entries:
            lot = e.lot
            entries.append(
                (
                    entry_id(e.id),
                    new_id,
                    e.customer_id,
                    str(e.kind),
                    e.points,
                    occurred,
                    e.rule,
                    e.reward,
                    e.reason,
                    e.detail,
                    None if lot is None else day_number(lot.earned_on),
                    None if lot is None else day_number(lot.available_on),
                    None if lot is None or lot.expires_on is None else day_number(lot.expires_on),
                )
            )
            for lot_id, points in e.draws:
                draw_id += 1
                draws.append((draw_id, entry_id(e.id), entry_id(lot_id), points))
        if op.entries:
            last_entry = entry_id(op.entries[-1].id)
        digest = None
        if op.profile is not None:
            fields = profile_fields(op.profile)
            digest = profile_digest(op.profile.salt, fields)
            cid, name, email, phone, birthday, referred_by, enrolled, birthday_set = fields
            if op.kind == "enroll":
                new_customers.append(
                    (cid, name, email, phone, birthday, referred_by, enrolled, recorded,
                     birthday_set, op.profile.salt)
                )  # fmt: skip
            elif op.kind == "erase":
                # The one change of a salt (the schema's trigger allows it only with
                # the personal fields emptied): the digests before it become untestable.
                erased.append((birthday_set, op.profile.salt, cid))
            else:
                changed.append((name, email, phone, birthday, birthday_set, cid))
        values = (
            new_id,
            str(op.kind),
            op.customer_id,
            occurred,
            recorded,
            ruleset_id,
            last_entry,
            op.txn,
            op.content,
            op.amount_cents,
            op.event,
            op.category,
            op.sku,
            op.quantity,
            op.reward,
            op.reason,
            op.tier,
            op.tier_from,
            None if op.until is None else day_number(op.until),
            None if op.refund_of is None else op_id(op.refund_of),
            op.clawback,
            digest,
        )
        items = [
            (new_id, i.number, i.sku, i.category, i.quantity, i.amount_cents, i.points, i.earned_by)
            for i in op.items
        ]
        hashed = (*values[:5], version, *values[6:])
        previous = op_hash(previous, hashed, entries, draws, items, op.store)
        op_rows.append((*values, previous, op.store, tip.writer))
        if op.kind == "merge":
            # Its first entry is the duplicate's (engine/merges.py): which id now
            # belongs to which account, for every read that groups by customer.
            merges.append((op.entries[0].customer_id, op.customer_id, new_id))
        entry_rows += entries
        draw_rows += draws
        item_rows += items
    insert_many(
        conn,
        "customers",
        "id, name, email, phone, birthday, referred_by, enrolled, recorded, birthday_set, salt",
        new_customers,
    )
    if changed:
        conn.executemany(
            "UPDATE customers SET name = ?, email = ?, phone = ?, birthday = ?, "
            "birthday_set = ? WHERE id = ?",
            changed,
        )
    insert_rows(conn, op_rows, entry_rows, draw_rows, item_rows)
    insert_many(conn, "merges", "duplicate, keep, op_id", merges)
    if erased:  # after the erase operations: the schema's trigger looks for them
        conn.executemany(
            "UPDATE customers SET name = NULL, email = NULL, phone = NULL, birthday = NULL, "
            "birthday_set = ?, salt = ? WHERE id = ?",
            erased,
        )
    tip.op, tip.hash, tip.entry, tip.draw = op_id(ops[-1].id), previous, last_entry, draw_id
    tip.base_op, tip.base_entry = tip.op, tip.entry
