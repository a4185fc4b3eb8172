"""`loyalty explain TXN`: why a past operation gave what it gave, under the
rules as they stood then.

The lines that fired are the ledger's own (it is the record); their arithmetic
is rebuilt from the rules version stamped on the operation, as `earn --explain`
shows it. The rules that did not fire are found by running the evaluator again
(the till's, in engine/awards.py) on the rules of then and on the customer's
account as it stood just before the operation, counted from the ledger: their
purchases, spend, balance, recorded tier, the usage their caps count and the
budgets everyone had used. Should that run disagree with the ledger (a rules
text the loader no longer accepts), the explanation says so.
"""

from __future__ import annotations

import difflib
from typing import Any

from .account import Account, Profile, Use
from .clock import from_day_number, from_stamp, shared, shop_day, zone
from .engine import awards
from .engine.book import Book
from .errors import BadArgument, Refused, RulesInvalid
from .evaluator import base_of, evaluate, line_detail
from .games.model import Paid, Play
from .lots import Lot
from .models import Activity, Ruleset, TierLevel
from .store import Store, pasts
from .values import format_utc, from_cents

_EARNING = ("purchase", "event", "enroll")


def parse_key(key: str) -> tuple[str | None, int | None]:
    """A txn, or `entry:N` (an entry id from `history`, for operations without a
    txn: an enrollment, an expiry, a tier change)."""
    if key.startswith("entry:"):
        number = key[6:]
        if not number.isdigit() or len(number) > 18 or int(number) < 1:
            raise BadArgument(
                f"'{key[:40]}' is not an entry: write entry:N with N an entry id from history",
                field="TXN",
            )
        return None, int(number)
    return key, None


def explain(store: Store, current: Ruleset | None, key: str, diff: bool) -> dict[str, Any]:
    from .rules import parse_rules

    txn, entry = parse_key(key)
    with store.snapshot():
        op = pasts.operation(store.conn, txn, entry)
        if op is None:
            what = f"transaction {txn!r}" if txn is not None else f"entry {entry}"
            raise Refused(
                f"unknown {what}: no operation in the ledger has it (see loyalty history ID)",
                code="unknown_txn",
                field="TXN",
            )
        then: Ruleset | None = None
        problem = None
        if op.text is not None:
            try:
                then = parse_rules(op.text, op.source or "rules.yaml")
            except RulesInvalid as error:
                problem = f"the rules text of then no longer loads ({error.message})"
        before = None
        if then is not None and op.customer_id is not None and op.kind in _EARNING:
            before = pasts.before(
                store.conn,
                op.customer_id,
                op.id,
                sorted(then.capped_rules),
                [r.id for r in then.rules if r.budget is not None],
            )
    tz = zone(then.program.timezone if then else current.program.timezone if current else "UTC")
    at = from_stamp(op.occurred)
    amount = None if op.amount_cents is None else from_cents(op.amount_cents)
    mine = [e for e in op.entries if e[1] == op.customer_id]
    base = 0 if then is None else base_of(then, [(e[4], e[3]) for e in mine])
    fired = []
    for _, customer, kind, points, rule, reward, reason, detail in op.entries:
        if detail is None and then is not None and rule is not None and kind != "tier":
            own = base if customer == op.customer_id else 0
            detail = line_detail(then, rule, points, amount if own else None, own)
        fired.append(
            {
                "rule": rule,
                "kind": kind,
                "customer_id": customer,
                "points": points,
                "reward": reward,
                "detail": detail or reason or "",
            }
        )
    if op.kind == "refund":
        fired = [dict(line, detail=_refund_detail(op, line["points"])) for line in fired]
    not_fired: list[dict[str, Any]] = []
    note = problem
    if before is not None and then is not None:
        not_fired, note = _not_fired(then, op, before, at, mine)
    doc: dict[str, Any] = {
        "txn": op.txn,
        "operation": op.kind,
        "customer_id": op.customer_id,
        "occurred_at": format_utc(at),
        "shop_day": shop_day(at, tz).isoformat(),
        "event": op.event,
        "amount": None if amount is None else str(amount),
        "category": op.category,
        "sku": op.sku,
        "quantity": op.quantity,
        "reward": op.reward,
        "refund_of": op.refund_of_txn,
        "rules_version": op.version,
        "file": op.source,
        "rules_current": None if current is None else op.version == current.version,
        "rules_text": op.text,
        "points": sum(e[3] for e in op.entries),
        "fired": fired,
        "not_fired": not_fired,
        "note": note,
        "diff": None,
    }
    if diff:
        doc["diff"] = _diff(op.text or "", op.version or "", op.source or "", current)
    return doc


def _refund_detail(op: pasts.PastOperation, taken: int) -> str:
    refunded = "" if op.amount_cents is None else f" of {from_cents(op.amount_cents)}"
    whole = "" if op.refund_of_cents is None else f" of a {from_cents(op.refund_of_cents)} purchase"
    text = (
        f"refund{refunded}{whole} ({op.refund_of_txn}): {op.clawback} "
        "points due back (the purchase's points x amount refunded / its amount, floor, "
        f"less what earlier refunds took back); {-taken} taken"
    )
    if op.clawback is not None and -taken < op.clawback:
        text += f", {op.clawback + taken} short (refund_shortfall)"
    return text


def _not_fired(
    then: Ruleset,
    op: pasts.PastOperation,
    before: pasts.Before,
    at: Any,
    mine: list[tuple[Any, ...]],
) -> tuple[list[dict[str, Any]], str | None]:
    """Why each rule on the activity did not fire, evaluated again as it stood."""
    assert op.customer_id is not None
    tz = zone(then.program.timezone)
    day = shop_day(at, tz)
    account = Account(
        profile=Profile(
            id=op.customer_id,
            enrolled_at=from_stamp(before.enrolled),
            referred_by=before.referred_by,
        ),
        # The balance as one lot: what the evaluator's `balance` reads.
        lots=(Lot(0, shared(day), shared(day), None, before.net),) if before.net > 0 else (),
        net=before.net,
        purchases=before.purchases,
        spend_cents=before.spend_cents,
        tier=before.tier,
        uses=tuple(Use(rule, from_stamp(o), p) for rule, o, p in before.uses),
        # The badges held are what an earning rule's `badge:` condition reads.
        play=Play(paid=tuple(Paid("", 0, "badge", 0, b, day) for b in before.badges)),
    )
    book = Book(ruleset=then, now=at)
    book.budgets.totals.update(before.budgets)
    event = op.event if op.kind != "purchase" else "purchase"
    activity = Activity(
        op.customer_id,
        event or op.kind,
        at,
        amount=None if op.amount_cents is None else from_cents(op.amount_cents),
        category=op.category,
        sku=op.sku,
        quantity=op.quantity,
    )
    tier = _tier(then, before, day)
    state = awards.customer_state(book, account, activity, tier)
    award = evaluate(then, activity, state, explain=True)
    out = [
        {"rule": s.rule, "reason": f"fired, but {s.reason}" if s.fired else s.reason}
        for s in award.skipped
    ]
    # A game's lines are the games' to explain (earn --explain, progress), not the rules'.
    recorded = sorted((e[4] or e[2], e[3]) for e in mine if not str(e[4]).startswith("game:"))
    again = sorted((line.rule, line.points) for line in award.lines)
    note = None
    if recorded != again:
        shown = ", ".join(f"{rule} {points:+}" for rule, points in again) or "nothing"
        note = (
            f"evaluated again on the account as counted from the ledger, these rules give "
            f"{shown}; the ledger's lines above are what was recorded"
        )
    return out, note


def _tier(then: Ruleset, before: pasts.Before, day: Any) -> TierLevel | None:
    """The tier recorded before the operation, raised to a manual floor in force."""
    policy = then.tiers
    if policy is None:
        return None
    levels = {level.id: level for level in policy.levels}
    level = levels.get(before.tier or "", policy.levels[0])
    if before.override is not None:
        floor_id, until, _ = before.override
        floor = levels.get(floor_id)
        still = until is None or from_day_number(until) >= day
        if floor is not None and still and floor.threshold > level.threshold:
            level = floor
    return level


def _diff(text: str, version: str, source: str, current: Ruleset | None) -> list[str]:
    if current is None:
        raise BadArgument("--diff compares with the current rules: give --rules FILE")
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(
            text.splitlines(),
            current.text.splitlines(),
            fromfile=f"{version[:12]} ({source})",
            tofile=f"{current.version[:12]} ({current.source})",
            lineterm="",
        )
    ]


def show_version(store: Store, version: str, current: Ruleset | None, diff: bool) -> dict[str, Any]:
    """A stored rules version by its hash (or a prefix of 4 or more of its hex digits)."""
    wanted = version.strip().lower()
    if not 4 <= len(wanted) <= 64 or any(c not in "0123456789abcdef" for c in wanted):
        raise BadArgument(
            f"'{version[:70]}' is not a rules version: give 4 to 64 hex digits of its hash "
            "(as explain and history --json show it)",
            field="VERSION",
        )
    with store.snapshot():
        found = pasts.rules_versions(store.conn, wanted)
    if not found:
        raise Refused(
            f"no rules version {wanted} in the ledger", code="unknown_version", field="VERSION"
        )
    if len(found) > 1:
        raise BadArgument(
            f"'{wanted}' matches {len(found)} rules versions "
            f"({', '.join(v[:12] for v, *_ in found[:5])}); give more digits",
            field="VERSION",
        )
    full, source, text, first = found[0]
    return {
        "rules_version": full,
        "file": source,
        "first_used_at": format_utc(from_stamp(first)),
        "current": None if current is None else current.version == full,
        "text": text,
        "diff": _diff(text, full, source, current) if diff else None,
    }
