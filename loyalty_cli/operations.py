"""The programme's write-side use cases: enroll, earn, redeem, adjust.

Each takes an open `Ledger`, the `Ruleset` where rules apply, a request and
`now` (the clock is read by the caller), runs the read-check-write inside one
`BEGIN IMMEDIATE` transaction, and returns a result whose `to_json()` is the
documented JSON shape. Retries are safe with an idempotency key (`txn`): the
same key with the same content reports the original result; with different
content it is a conflict.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from . import lots, membership
from .accounts import Holdings, customer_or_refuse, holdings
from .errors import BadArgument, Refused
from .evaluator import evaluate, limited_rules, period_bounds, shop_zone
from .ledger import (
    Customer,
    Entry,
    Ledger,
    LotTerms,
    NewEntry,
    NewOperation,
    Operation,
    canonical_request,
)
from .models import Activity, Award, AwardLine, CustomerState, Reward, Ruleset, RuleUsage
from .tiers import TierStatus
from .values import format_utc, from_cents, parse_utc, to_cents

# Events loyalty raises itself, never typed in with `earn --event`, and who raises them.
SYSTEM_EVENTS = {
    "enroll": "'loyalty enroll'",
    "referral": "'loyalty enroll --referred-by'",
    "birthday": "'loyalty nightly', on the birthday",
}


# --- requests and results ----------------------------------------------------


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

    def content(self) -> dict[str, object]:
        return {
            "customer_id": self.customer_id,
            "event": self.event,
            "amount": None if self.amount is None else str(self.amount),
            "category": self.category,
            "sku": self.sku,
            "quantity": self.quantity,
        }


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


def _line_json(line: AwardLine) -> dict[str, object]:
    out: dict[str, object] = {"rule": line.rule, "points": line.points, "detail": line.detail}
    if line.reward is not None:
        out["reward"] = line.reward
    return out


@dataclass(frozen=True)
class AwardResult:
    """The outcome of earn (and of the enroll and referral parts of enroll)."""

    customer_id: str
    event: str
    occurred_at: str
    amount: Decimal | None
    txn: str | None
    award: Award
    balance: int
    duplicate: bool = False
    dry_run: bool = False
    explain: bool = False

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "customer_id": self.customer_id,
            "event": self.event,
            "amount": None if self.amount is None else str(self.amount),
            "occurred_at": self.occurred_at,
            "txn": self.txn,
            "points": self.award.points,
            "balance": self.balance,
            "lines": [_line_json(line) for line in self.award.lines],
            "duplicate": self.duplicate,
            "dry_run": self.dry_run,
        }
        if self.explain:
            out["skipped"] = [{"rule": s.rule, "reason": s.reason} for s in self.award.skipped]
        return out


def _contact(customer: Customer) -> dict[str, object]:
    """The profile fields a customer's JSON shows, in their documented order."""
    return {
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "birthday": customer.birthday,
    }


@dataclass(frozen=True)
class EnrollResult:
    customer: Customer
    created: bool
    award: AwardResult
    referral: AwardResult | None

    def to_json(self) -> dict[str, object]:
        c = self.customer
        return {
            "customer_id": c.id,
            "created": self.created,
            **_contact(c),
            "referred_by": c.referred_by,
            "enrolled_at": c.enrolled_at,
            "points": self.award.award.points,
            "balance": self.award.balance,
            "lines": [_line_json(line) for line in self.award.award.lines],
            "referral": None if self.referral is None else self.referral.to_json(),
        }


@dataclass(frozen=True)
class PointsResult:
    """The outcome of a redemption or an adjustment."""

    kind: str  # redeem or adjust
    customer_id: str
    points: int  # signed: what this operation did to the balance
    balance: int
    occurred_at: str
    txn: str | None
    reward: str | None
    reason: str | None
    duplicate: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "customer_id": self.customer_id,
            "kind": self.kind,
            "points": self.points,
            "balance": self.balance,
            "reward": self.reward,
            "reason": self.reason,
            "occurred_at": self.occurred_at,
            "txn": self.txn,
            "duplicate": self.duplicate,
        }


@dataclass(frozen=True)
class RefundResult:
    customer_id: str
    refund_of: str
    amount: Decimal
    purchase_amount: Decimal
    refunded: Decimal  # all refunds of the purchase so far, this one included
    clawback: int  # points this refund was due to take back
    points: int  # what it took (negative); beyond the balance only with allow_negative
    shortfall: int  # due but not taken, because the balance was too small
    balance: int
    occurred_at: str
    txn: str | None
    duplicate: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "customer_id": self.customer_id,
            "refund_of": self.refund_of,
            "amount": str(self.amount),
            "purchase_amount": str(self.purchase_amount),
            "refunded": str(self.refunded),
            "clawback": self.clawback,
            "points": self.points,
            "shortfall": self.shortfall,
            "balance": self.balance,
            "occurred_at": self.occurred_at,
            "txn": self.txn,
            "duplicate": self.duplicate,
        }


@contextmanager
def _writing(ledger: Ledger, dry_run: bool = False) -> Iterator[None]:
    # A dry run reads without taking the write lock; it writes nothing anyway.
    with nullcontext() if dry_run else ledger.transaction():
        yield


def _earlier(
    ledger: Ledger, txn: str | None, content: dict[str, object], at: datetime | None
) -> Operation | None:
    """The operation already recorded under `txn`, if its content is the same;
    a conflict if it is not. A retry may leave out --at."""
    if txn is None:
        return None
    earlier = ledger.operation(txn)
    if earlier is None:
        return None
    if earlier.request != canonical_request(content) or (
        at is not None and format_utc(at) != earlier.occurred_at
    ):
        before = json.loads(earlier.request)
        shown = ", ".join(f"{k}={v}" for k, v in sorted(before.items()) if v is not None)
        raise Refused(
            f"txn {txn!r} was already used for a different operation ({shown}, "
            f"at {earlier.occurred_at}); use a new --txn"
        )
    return earlier


def already_recorded(ledger: Ledger, request: EarnRequest) -> bool:
    """Whether `earn` would find this request recorded before under its txn; a
    conflict if the txn was used for something else."""
    return _earlier(ledger, request.txn, request.content(), request.at) is not None


def _award_from_entries(entries: list[Entry]) -> Award:
    lines = tuple(AwardLine(e.rule or e.kind, e.points, e.detail or "", e.reward) for e in entries)
    return Award(points=sum(e.points for e in entries), lines=lines)


def _entries(
    award: Award, kind: str, terms: LotTerms, customer_id: str | None = None
) -> list[NewEntry]:
    """One entry per award line; each credit opens a lot on `terms`."""
    return [
        NewEntry(
            kind="gift" if line.reward is not None and line.points == 0 else kind,
            points=line.points,
            customer_id=customer_id,
            rule=line.rule,
            reward=line.reward,
            detail=line.detail,
            lot=terms if line.points > 0 else None,
        )
        for line in award.lines
    ]


def _today(ruleset: Ruleset, at: datetime) -> date:
    return at.astimezone(shop_zone(ruleset)).date()


def _terms(ruleset: Ruleset, at: datetime, *, purchase: bool) -> LotTerms:
    """The dates of points earned at `at`: purchase points wait out the return window."""
    policy = ruleset.points
    earned = _today(ruleset, at)
    held = timedelta(days=policy.pending_days if purchase else 0)
    expiry = lots.expires_on(earned, policy.expire_after_months, policy.expire_at)
    return LotTerms(earned, earned + held, expiry)


def expire_due(
    ledger: Ledger, ruleset: Ruleset, customer_id: str, today: date, now: datetime
) -> int:
    """Write `expire` entries for the customer's lots that are past their expiry
    and still hold points; one operation per expiry date, dated at the start of
    that day in the shop. Idempotent: an expired lot holds nothing afterwards.
    Never beyond the real date: a row dated in the future must not expire points
    early, for good. Returns the points expired."""
    today = min(today, _today(ruleset, now))
    due = lots.overdue(ledger.lots(customer_id), today)
    by_day: dict[date, list[lots.Lot]] = {}
    for lot in due:
        assert lot.expires_on is not None
        by_day.setdefault(lot.expires_on, []).append(lot)
    tz = shop_zone(ruleset)
    for day, expiring in sorted(by_day.items()):
        entries = [
            NewEntry(
                kind="expire",
                points=-lot.remaining,
                reason=f"earned {lot.earned_on}, expired {day}",
                draws=((lot.id, lot.remaining),),
            )
            for lot in expiring
        ]
        ledger.append(
            NewOperation(
                kind="expire",
                customer_id=customer_id,
                occurred_at=datetime.combine(day, time(), tz),
                ruleset=ruleset.version,
                request={"customer_id": customer_id, "lots": [lot.id for lot in expiring]},
            ),
            entries,
            now,
        )
    return sum(lot.remaining for lot in due)


def _state(
    ledger: Ledger,
    ruleset: Ruleset,
    customer: Customer,
    activity: Activity,
    standing: TierStatus | None = None,
) -> CustomerState:
    """What the evaluator may know about the customer before this activity (their
    tier `standing` on the day, if the caller has it already)."""
    today = _today(ruleset, activity.at)
    if standing is None:
        standing = membership.standing(ledger, ruleset, customer.id, today)
    purchases, spend = ledger.purchase_totals(customer.id)
    state = CustomerState(
        customer_id=customer.id,
        enrolled_at=parse_utc(customer.enrolled_at),
        balance=holdings(ledger, customer.id, today).balance,
        purchases=purchases,
        spend=from_cents(spend),
        referred_by=customer.referred_by,
        tier=None if standing is None else standing.level,
    )
    limited = limited_rules(ruleset, activity, state)
    if not limited:
        return state
    tz = shop_zone(ruleset)
    return replace(
        state,
        usage={
            rule.id: RuleUsage(
                *ledger.rule_usage(
                    customer.id, rule.id, *period_bounds(rule.cap.per, activity.at, tz)
                )
            )
            for rule in limited
            if rule.cap is not None
        },
        budget_used={
            rule.id: ledger.rule_total(rule.id) for rule in limited if rule.budget is not None
        },
    )


# --- use cases -----------------------------------------------------------------


def enroll(ledger: Ledger, ruleset: Ruleset, request: EnrollRequest, now: datetime) -> EnrollResult:
    """Enroll a customer; pay the enroll rules to them and the referral rules to
    their referrer (once per referred customer, since a customer enrolls once)."""
    at = request.at or now
    with ledger.transaction():
        existing = ledger.customer(request.customer_id)
        if existing is not None:
            if not request.exist_ok:
                raise Refused(
                    f"customer {request.customer_id!r} is already enrolled "
                    "(add --exist-ok to make enroll a no-op for existing customers)"
                )
            balance = holdings(ledger, existing.id, _today(ruleset, at)).balance
            award = AwardResult(
                existing.id, "enroll", existing.enrolled_at, None, None, Award(0, ()), balance
            )
            return EnrollResult(existing, created=False, award=award, referral=None)
        referrer: Customer | None = None
        if request.referred_by is not None:
            if request.referred_by == request.customer_id:
                raise Refused(f"customer {request.customer_id!r} cannot refer themselves")
            referrer = customer_or_refuse(ledger, request.referred_by, "referrer")
        customer = Customer(
            id=request.customer_id,
            enrolled_at=format_utc(at),
            name=request.name,
            email=request.email,
            phone=request.phone,
            birthday=request.birthday,
            referred_by=request.referred_by,
        )
        activity = Activity(customer.id, "enroll", at)
        welcome = evaluate(ruleset, activity, _state(ledger, ruleset, customer, activity))
        terms = _terms(ruleset, at, purchase=False)
        entries = _entries(welcome, "enroll", terms)
        referral_award: Award | None = None
        if referrer is not None:
            expire_due(ledger, ruleset, referrer.id, _today(ruleset, at), now)
            ref_activity = Activity(referrer.id, "referral", at, referred=customer.id)
            referral_award = evaluate(
                ruleset, ref_activity, _state(ledger, ruleset, referrer, ref_activity)
            )
            entries += _entries(referral_award, "earn", terms, customer_id=referrer.id)
        ledger.add_customer(customer, now)
        ledger.remember_ruleset(ruleset, now)
        ledger.append(
            NewOperation(
                kind="enroll",
                customer_id=customer.id,
                occurred_at=at,
                event="enroll",
                ruleset=ruleset.version,
                request={"customer_id": customer.id, "referred_by": request.referred_by},
            ),
            entries,
            now,
        )
        occurred = format_utc(at)
        today = _today(ruleset, at)
        membership.record_change(ledger, ruleset, customer.id, at, now, "enrolled")
        if referrer is not None:
            cause = f"referred {customer.id}"
            membership.record_change(ledger, ruleset, referrer.id, at, now, cause)
        result = AwardResult(
            customer.id,
            "enroll",
            occurred,
            None,
            None,
            welcome,
            holdings(ledger, customer.id, today).balance,
        )
        referral = None
        if referrer is not None and referral_award is not None:
            referral = AwardResult(
                referrer.id,
                "referral",
                occurred,
                None,
                None,
                referral_award,
                holdings(ledger, referrer.id, today).balance,
            )
        return EnrollResult(customer, created=True, award=result, referral=referral)


def check_event(ruleset: Ruleset, event: str) -> str:
    """An event typed at the CLI must be one the rules reward: a typo would
    otherwise record an action that silently earns nothing."""
    if event == "purchase":
        raise BadArgument("record a purchase with --amount, not --event purchase")
    if event in SYSTEM_EVENTS:
        raise BadArgument(f"'{event}' points are given by {SYSTEM_EVENTS[event]}")
    known = sorted(ruleset.events - set(SYSTEM_EVENTS))
    if event not in known:
        match = difflib.get_close_matches(event, known, n=1)
        hint = f" (did you mean '{match[0]}'?)" if match else ""
        raise BadArgument(
            f"no rule in {ruleset.source} rewards the event '{event}'{hint}; "
            f"events with rules: {', '.join(known) or 'none'}"
        )
    return event


def earn(
    ledger: Ledger,
    ruleset: Ruleset,
    request: EarnRequest,
    now: datetime,
    *,
    dry_run: bool = False,
    explain: bool = False,
) -> AwardResult:
    """Record a purchase or an event and award its points."""
    at = request.at or now
    occurred = format_utc(at)
    with _writing(ledger, dry_run):
        earlier = _earlier(ledger, request.txn, request.content(), request.at)
        if earlier is not None:
            entries = ledger.entries_of(earlier.id)
            return AwardResult(
                request.customer_id,
                request.event,
                earlier.occurred_at,
                request.amount,
                request.txn,
                _award_from_entries(entries),
                holdings(ledger, request.customer_id, _today(ruleset, now)).balance,
                duplicate=True,
                dry_run=dry_run,
            )
        customer = customer_or_refuse(ledger, request.customer_id)
        if not dry_run:
            expire_due(ledger, ruleset, customer.id, _today(ruleset, at), now)
        activity = Activity(
            customer_id=customer.id,
            event=request.event,
            at=at,
            amount=request.amount,
            category=request.category,
            sku=request.sku,
            quantity=request.quantity,
        )
        standing = membership.standing(ledger, ruleset, customer.id, _today(ruleset, at))
        state = _state(ledger, ruleset, customer, activity, standing)
        award = evaluate(ruleset, activity, state)
        # Exact, written or not: the new lots count from today (pending or not) and
        # expire months later, and a tier change carries no points.
        balance = state.balance + award.points
        if not dry_run:
            ledger.remember_ruleset(ruleset, now)
            ledger.append(
                NewOperation(
                    kind="purchase" if request.event == "purchase" else "event",
                    customer_id=customer.id,
                    occurred_at=at,
                    txn=request.txn,
                    event=request.event,
                    amount_cents=None if request.amount is None else to_cents(request.amount),
                    category=request.category,
                    sku=request.sku,
                    quantity=request.quantity,
                    ruleset=ruleset.version,
                    request=request.content(),
                ),
                _entries(award, "earn", _terms(ruleset, at, purchase=request.event == "purchase")),
                now,
            )
            cause = f"{request.event} {request.txn or ''}".strip()
            # A purchase counts toward tiers only once its return window is over, so
            # on its own day the tier is the one worked out before it: no need to
            # work it out again from the whole history.
            unchanged = request.event == "purchase" and ruleset.points.pending_days > 0
            membership.record_change(
                ledger, ruleset, customer.id, at, now, cause, standing if unchanged else None
            )
        return AwardResult(
            customer.id,
            request.event,
            occurred,
            request.amount,
            request.txn,
            award,
            balance,
            dry_run=dry_run,
            explain=explain,
        )


def redeem(ledger: Ledger, ruleset: Ruleset, request: RedeemRequest, now: datetime) -> PointsResult:
    """Spend points, or a reward's cost in points. Never below zero."""
    if (request.points is None) == (request.reward is None):
        raise BadArgument("give either --points N or --reward ID")
    cost, reason = request.points, request.reason
    guard = None
    if request.reward is not None:
        reward = ruleset.rewards.get(request.reward)
        if reward is None:
            known = sorted(ruleset.rewards)
            match = difflib.get_close_matches(request.reward, known, n=1)
            hint = f" (did you mean '{match[0]}'?)" if match else ""
            raise Refused(
                f"unknown reward '{request.reward}'{hint}; rewards: {', '.join(known) or 'none'}"
            )
        cost, reason = reward.cost, reason or reward.name
        chosen = reward

        def guard(at: datetime) -> None:
            refusal = reward_refusal(ledger, ruleset, chosen, request.customer_id, at)
            if refusal is not None:
                raise Refused(f"reward '{chosen.id}' is not available: {refusal}")

    assert cost is not None
    if cost <= 0:
        raise BadArgument(f"--points must be a positive whole number, got {cost}")
    op = NewOperation(
        kind="redeem",
        customer_id=request.customer_id,
        occurred_at=request.at or now,
        txn=request.txn,
        reward=request.reward,
        reason=reason,
        ruleset=ruleset.version,
        request={"customer_id": request.customer_id, "points": cost, "reward": request.reward},
    )
    return _spend(ledger, op, -cost, request.at, now, ruleset, guard)


def adjust(ledger: Ledger, ruleset: Ruleset, request: AdjustRequest, now: datetime) -> PointsResult:
    """A manual correction, always with a reason. It may not take the balance below zero."""
    if request.points == 0:
        raise BadArgument("adjust POINTS must not be zero")
    if not request.reason.strip():
        raise BadArgument("--reason must say why the points change (it is kept in the ledger)")
    op = NewOperation(
        kind="adjust",
        customer_id=request.customer_id,
        occurred_at=request.at or now,
        txn=request.txn,
        reason=request.reason,
        ruleset=ruleset.version,
        request={
            "customer_id": request.customer_id,
            "points": request.points,
            "reason": request.reason,
        },
    )
    return _spend(ledger, op, request.points, request.at, now, ruleset)


def _spend(
    ledger: Ledger,
    op: NewOperation,
    points: int,
    at: datetime | None,
    now: datetime,
    ruleset: Ruleset,
    guard: Callable[[datetime], None] | None = None,
) -> PointsResult:
    """Write one signed entry: a credit opens a lot; a debit draws on the
    spendable lots, soonest expiry first, after checking under the write lock
    that they cover it (and `guard`, for a reward's own conditions). `at` is
    the --at given, if any."""
    customer_id = op.customer_id
    today = _today(ruleset, op.occurred_at)

    def result(points: int, balance: int, occurred: str, duplicate: bool) -> PointsResult:
        return PointsResult(
            op.kind,
            customer_id,
            points,
            balance,
            occurred,
            op.txn,
            op.reward,
            op.reason,
            duplicate=duplicate,
        )

    with ledger.transaction():
        earlier = _earlier(ledger, op.txn, op.request, at)
        if earlier is not None:
            done = sum(e.points for e in ledger.entries_of(earlier.id))
            balance = holdings(ledger, customer_id, _today(ruleset, now)).balance
            return result(done, balance, earlier.occurred_at, True)
        customer_or_refuse(ledger, customer_id)
        if guard is not None:
            guard(op.occurred_at)
        expire_due(ledger, ruleset, customer_id, today, now)
        held = holdings(ledger, customer_id, today)
        if points > 0:
            entry = NewEntry(
                kind=op.kind,
                points=points,
                reason=op.reason,
                lot=_terms(ruleset, op.occurred_at, purchase=False),
            )
        else:
            if held.available + points < 0:
                raise Refused(_short(customer_id, held, -points))
            spendable = lots.spendable(ledger.lots(customer_id), today)
            entry = NewEntry(
                kind=op.kind,
                points=points,
                reward=op.reward,
                reason=op.reason,
                draws=tuple(lots.draw(spendable, -points)),
            )
        ledger.remember_ruleset(ruleset, now)
        ledger.append(op, [entry], now)
        return result(points, held.balance + points, format_utc(op.occurred_at), False)


def _short(customer_id: str, held: Holdings, needed: int) -> str:
    waiting = f" (and {held.pending} pending)" if held.pending else ""
    return (
        f"insufficient points: {customer_id!r} has {held.available}{waiting}, needs {needed} "
        f"(short by {needed - held.available})"
    )


def refund(ledger: Ledger, ruleset: Ruleset, request: RefundRequest, now: datetime) -> RefundResult:
    """Take back the points of a purchase, in proportion to the amount refunded.

    The clawback is computed from the purchase's original award entries, never
    from today's rules: over all refunds of a purchase it is
    floor(points earned x amount refunded / purchase amount), so it never takes
    back more than was earned, and a full refund takes back exactly that. It draws
    first on the purchase's own lots (cancelling points still pending), then on
    the customer's other spendable points. If those fall short, `refund_shortfall`
    decides: `within_balance` takes what is there and records the shortfall;
    `allow_negative` takes it all, leaving a debt."""
    at = request.at or now
    today = _today(ruleset, at)
    content: dict[str, object] = {
        "refund_of": request.refund_of,
        "amount": None if request.amount is None else str(request.amount),
    }
    with ledger.transaction():
        earlier = _earlier(ledger, request.txn, content, request.at)
        purchase = ledger.operation(request.refund_of)
        if purchase is None:
            raise Refused(f"unknown transaction {request.refund_of!r}: no purchase has that txn")
        if purchase.kind != "purchase":
            if ledger.is_refund(purchase.id):
                raise Refused(f"{request.refund_of!r} is itself a refund; refund the purchase")
            raise Refused(f"{request.refund_of!r} is a {purchase.kind}, not a purchase")
        total_cents = ledger.purchase_amount(purchase.id)
        assert total_cents is not None
        customer_id = purchase.customer_id
        if earlier is not None:
            return _refund_result(ledger, ruleset, earlier, purchase, total_cents, now)
        refunded_cents, due_before = ledger.refunded(purchase.id)
        left = total_cents - refunded_cents
        if left <= 0:
            raise Refused(f"purchase {request.refund_of!r} is already fully refunded")
        cents = left if request.amount is None else to_cents(request.amount)
        if cents > left:
            raise Refused(
                f"refund of {from_cents(cents)} is more than the {from_cents(left)} left to "
                f"refund on {request.refund_of!r} (a purchase of {from_cents(total_cents)})"
            )
        own = {e.id: e.points for e in ledger.entries_of(purchase.id) if e.points > 0}
        earned = sum(own.values())
        due_after = earned * (refunded_cents + cents) // total_cents
        clawback = due_after - due_before
        expire_due(ledger, ruleset, customer_id, today, now)
        held = ledger.lots(customer_id)
        own_lots = [
            lot for lot in lots.spending_order(held) if lot.id in own and lots.is_live(lot, today)
        ]
        others = [lot for lot in lots.spendable(held, today) if lot.id not in own]
        # What the customer holds beyond any earlier debt is all a refund may take.
        room = max(0, holdings(ledger, customer_id, today).balance)
        draws = lots.draw(own_lots + others, min(clawback, room))
        taken = sum(points for _, points in draws)
        if ruleset.points.refund_shortfall == "allow_negative":
            taken = clawback
        shortfall = clawback - taken
        reason = f"refund of {from_cents(cents)} on {request.refund_of}" + (
            f"; {shortfall} points could not be taken back" if shortfall else ""
        )
        entries = []
        if taken:
            entries.append(
                NewEntry(kind="refund", points=-taken, reason=reason, draws=tuple(draws))
            )
        op_id = ledger.append(
            NewOperation(
                kind="refund",
                customer_id=customer_id,
                occurred_at=at,
                txn=request.txn,
                amount_cents=cents,
                reason=request.reason or reason,
                ruleset=ruleset.version,
                request=content,
            ),
            entries,
            now,
        )
        ledger.add_refund(op_id, purchase.id, cents, clawback)
        ledger.remember_ruleset(ruleset, now)
        membership.record_change(ledger, ruleset, customer_id, at, now, reason)
        return RefundResult(
            customer_id,
            request.refund_of,
            from_cents(cents),
            from_cents(total_cents),
            from_cents(refunded_cents + cents),
            clawback,
            -taken,
            shortfall,
            holdings(ledger, customer_id, today).balance,
            format_utc(at),
            request.txn,
        )


def _refund_result(
    ledger: Ledger,
    ruleset: Ruleset,
    earlier: Operation,
    purchase: Operation,
    total_cents: int,
    now: datetime,
) -> RefundResult:
    """A retried refund: report what the original did."""
    detail = ledger.refund(earlier.id)
    taken = sum(e.points for e in ledger.entries_of(earlier.id))
    refunded_cents, _ = ledger.refunded(purchase.id)
    return RefundResult(
        purchase.customer_id,
        purchase.txn or "",
        from_cents(detail.amount_cents),
        from_cents(total_cents),
        from_cents(refunded_cents),
        detail.clawback,
        taken,
        detail.clawback + taken,
        holdings(ledger, purchase.customer_id, _today(ruleset, now)).balance,
        earlier.occurred_at,
        earlier.txn,
        duplicate=True,
    )


def reward_refusal(
    ledger: Ledger, ruleset: Ruleset, reward: Reward, customer_id: str, at: datetime
) -> str | None:
    """Why the customer may not redeem `reward` at `at` (points aside), or None."""
    today = _today(ruleset, at)
    if reward.available_from is not None and today < reward.available_from:
        return f"it is offered from {reward.available_from}"
    if reward.available_to is not None and today > reward.available_to:
        return f"it was offered until {reward.available_to}"
    if reward.tiers is not None:
        standing = membership.standing(ledger, ruleset, customer_id, today)
        tier = None if standing is None else standing.level.id
        if tier not in reward.tiers:
            return f"it is for {', '.join(sorted(reward.tiers))} members; {customer_id!r} is {tier}"
    if reward.limit is not None and reward.limit.count is not None:
        start, end = period_bounds(reward.limit.per, at, shop_zone(ruleset))
        used = ledger.redemptions(customer_id, reward.id, start, end)
        if used >= reward.limit.count:
            per = "in total" if reward.limit.per == "lifetime" else f"per {reward.limit.per}"
            return f"the limit is {reward.limit.count} {per}, and {customer_id!r} has had {used}"
    return None


@dataclass(frozen=True)
class RewardsResult:
    """The catalogue, and for a customer what each reward would take now."""

    rewards: list[Reward]
    customer_id: str | None = None
    available: int | None = None
    refusals: dict[str, str | None] | None = None

    def to_json(self) -> dict[str, object]:
        rows: list[dict[str, object]] = []
        for reward in self.rewards:
            row: dict[str, object] = {
                "id": reward.id,
                "name": reward.name,
                "cost": reward.cost,
                "tiers": None if reward.tiers is None else sorted(reward.tiers),
                "limit": None
                if reward.limit is None
                else {"count": reward.limit.count, "per": reward.limit.per},
                "available_from": None
                if reward.available_from is None
                else reward.available_from.isoformat(),
                "available_to": None
                if reward.available_to is None
                else reward.available_to.isoformat(),
            }
            if self.refusals is not None and self.available is not None:
                refusal = self.refusals[reward.id]
                if refusal is None and reward.cost > self.available:
                    refusal = f"needs {reward.cost - self.available} more points"
                row["can_redeem"] = refusal is None
                row["why_not"] = refusal
            rows.append(row)
        return {"customer_id": self.customer_id, "available": self.available, "rewards": rows}


def rewards_for(
    ledger: Ledger | None, ruleset: Ruleset, customer_id: str | None, at: datetime
) -> RewardsResult:
    """The rewards catalogue; with a customer, which they can redeem now and why not."""
    catalogue = list(ruleset.rewards.values())
    if ledger is None or customer_id is None:
        return RewardsResult(catalogue)
    customer_or_refuse(ledger, customer_id)
    held = holdings(ledger, customer_id, _today(ruleset, at))
    refusals = {r.id: reward_refusal(ledger, ruleset, r, customer_id, at) for r in catalogue}
    return RewardsResult(catalogue, customer_id, held.available, refusals)


@dataclass(frozen=True)
class ProfileResult:
    customer: Customer
    changed: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "customer_id": self.customer.id,
            **_contact(self.customer),
            "changed": list(self.changed),
        }


def update_profile(
    ledger: Ledger,
    ruleset: Ruleset,
    customer_id: str,
    changes: dict[str, str | None],
    at: datetime | None,
    now: datetime,
) -> ProfileResult:
    """Change a customer's contact details or birthday. The change is kept as a
    `profile` operation, which is also how a birthday's "set on" date is known
    (birthday points need 30 days' notice)."""
    if not changes:
        raise BadArgument("give at least one of --name, --email, --phone, --birthday")
    with ledger.transaction():
        customer = customer_or_refuse(ledger, customer_id)
        changed = {k: v for k, v in changes.items() if getattr(customer, k) != v}
        if changed:
            ledger.update_customer(customer_id, changed)
            ledger.remember_ruleset(ruleset, now)
            ledger.append(
                NewOperation(
                    kind="profile",
                    customer_id=customer_id,
                    occurred_at=at or now,
                    ruleset=ruleset.version,
                    request={"customer_id": customer_id, **changed},
                ),
                [],
                now,
            )
        updated = ledger.customer(customer_id)
        assert updated is not None
        return ProfileResult(updated, tuple(sorted(changed)))
