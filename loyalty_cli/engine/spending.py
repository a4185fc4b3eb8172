"""Spending and correcting points as decisions: redemptions (of points or of a
reward), manual adjustments, and which rewards a customer may redeem."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from .. import account as accounts
from .. import lots
from ..account import Account, Use
from ..clock import zone
from ..errors import BadArgument, Refused, did_you_mean
from ..kinds import EntryKind, OpKind
from ..lots import Holdings
from ..models import Reward, Ruleset
from ..values import format_utc
from .awards import earlier, refuse_unknown
from .book import Book, Outcome
from .lifecycle import add_lots, expire_due, lot_terms, take_from_lots, today_of
from .records import NewEntry, NewOperation, content_digest
from .requests import AdjustRequest, RedeemRequest
from .results import PointsResult, RewardsResult
from .tiering import standing


def reward_refusal(account: Account, ruleset: Ruleset, reward: Reward, at: datetime) -> str | None:
    """Why the customer may not redeem `reward` at `at` (points aside), or None."""
    today = today_of(ruleset, at)
    if reward.available_from is not None and today < reward.available_from:
        return f"it is offered from {reward.available_from}"
    if reward.available_to is not None and today > reward.available_to:
        return f"it was offered until {reward.available_to}"
    if reward.tiers is not None:
        current = standing(account, ruleset, today)
        tier = None if current is None else current.level.id
        if tier not in reward.tiers:
            return f"it is for {', '.join(sorted(reward.tiers))} members; {account.id!r} is {tier}"
    if reward.limit is not None and reward.limit.count is not None:
        used, _ = accounts.usage(
            account, f"reward:{reward.id}", reward.limit.per, at, zone(ruleset.program.timezone)
        )
        if used >= reward.limit.count:
            per = "in total" if reward.limit.per == "lifetime" else f"per {reward.limit.per}"
            return f"the limit is {reward.limit.count} {per}, and {account.id!r} has had {used}"
    return None


def rewards_for(account: Account | None, ruleset: Ruleset, at: datetime) -> RewardsResult:
    """The rewards catalogue; with a customer, which they can redeem now and why not."""
    catalogue = list(ruleset.rewards.values())
    if account is None:
        return RewardsResult(catalogue)
    held = accounts.holdings(account, today_of(ruleset, at))
    refusals = {r.id: reward_refusal(account, ruleset, r, at) for r in catalogue}
    return RewardsResult(catalogue, account.id, held.available, refusals)


def redeem(book: Book, request: RedeemRequest) -> PointsResult:
    """Spend points, or a reward's cost in points. Never below zero."""
    if (request.points is None) == (request.reward is None):
        raise BadArgument("give either --points N or --reward ID")
    ruleset = book.ruleset
    cost, reason = request.points, request.reason
    guard = None
    if request.reward is not None:
        reward = ruleset.rewards.get(request.reward)
        if reward is None:
            known = sorted(ruleset.rewards)
            hint = did_you_mean(request.reward, known)
            raise Refused(
                f"unknown reward '{request.reward}'{hint}; rewards: {', '.join(known) or 'none'}",
                code="unknown_reward",
                field="--reward",
            )
        cost, reason = reward.cost, reason or reward.name
        chosen = reward

        def guard(account: Account, at: datetime) -> None:
            refusal = reward_refusal(account, ruleset, chosen, at)
            if refusal is not None:
                raise Refused(
                    f"reward '{chosen.id}' is not available: {refusal}",
                    code="reward_unavailable",
                    field="--reward",
                )

    assert cost is not None
    if cost <= 0:
        raise BadArgument(f"--points must be a positive whole number, got {cost}")
    content: dict[str, object] = {
        "customer_id": request.customer_id,
        "points": cost,
        "reward": request.reward,
    }
    return _spend(
        book,
        OpKind.REDEEM,
        request.customer_id,
        -cost,
        content,
        request.txn,
        request.at,
        reward=request.reward,
        reason=reason,
        guard=guard,
    )


def adjust(book: Book, request: AdjustRequest) -> PointsResult:
    """A manual correction, always with a reason. It may not take the balance below zero."""
    if request.points == 0:
        raise BadArgument("adjust POINTS must not be zero")
    if not request.reason.strip():
        raise BadArgument("--reason must say why the points change (it is kept in the ledger)")
    content: dict[str, object] = {
        "customer_id": request.customer_id,
        "points": request.points,
        "reason": request.reason,
    }
    return _spend(
        book,
        OpKind.ADJUST,
        request.customer_id,
        request.points,
        content,
        request.txn,
        request.at,
        reason=request.reason,
    )


def _spend(
    book: Book,
    kind: OpKind,
    customer_id: str,
    points: int,
    content: dict[str, object],
    txn: str | None,
    at_given: datetime | None,
    *,
    reward: str | None = None,
    reason: str | None = None,
    guard: Callable[[Account, datetime], None] | None = None,
) -> PointsResult:
    """One signed entry: a credit opens a lot; a debit draws on the spendable lots,
    soonest expiry first, after checking that they cover it (and `guard`, for a
    reward's own conditions). `at_given` is the --at given, if any."""
    ruleset, now = book.ruleset, book.now
    at = at_given or now
    found = earlier(book, txn, content, at_given)
    if found is not None:
        account = book.account(customer_id)
        now_held = 0 if account is None else accounts.balance(account, today_of(ruleset, now))
        return PointsResult(
            kind,
            customer_id,
            found.points,
            now_held,
            format_utc(found.occurred_at),
            txn,
            reward,
            reason,
            duplicate=True,
        )
    account = book.account(customer_id)
    if account is None:
        raise refuse_unknown(customer_id)
    if guard is not None:
        guard(account, at)
    today = today_of(ruleset, at)
    ids = book.ids()
    ops, account, _ = expire_due(account, ruleset, today, now, ids)
    held = accounts.holdings(account, today)
    if points > 0:
        entry = NewEntry(
            id=ids.entry(),
            customer_id=customer_id,
            kind=EntryKind(kind),
            points=points,
            reason=reason,
            lot=lot_terms(ruleset, at, purchase=False),
        )
    else:
        if held.available + points < 0:
            raise short(customer_id, held, -points, kind)
        entry = NewEntry(
            id=ids.entry(),
            customer_id=customer_id,
            kind=EntryKind(kind),
            points=points,
            reward=reward,
            reason=reason,
            draws=tuple(lots.draw(lots.spendable(account.lots, today), -points)),
        )
    op = NewOperation(
        id=ids.op(),
        kind=kind,
        customer_id=customer_id,
        occurred_at=at,
        ruleset=ruleset.version,
        entries=(entry,),
        txn=txn,
        content=None if txn is None else content_digest(content),
        reward=reward,
        reason=reason,
    )
    ops.append(op)
    uses = (Use(f"reward:{reward}", at, points),) if reward is not None else ()
    account = account.with_(
        lots=take_from_lots(add_lots(account, op.entries), entry.draws),
        net=account.net + points,
        uses=account.uses + uses,
    )
    book.apply(Outcome(tuple(ops), (account,), keyed=(op,) if txn else ()))
    return PointsResult(
        kind, customer_id, points, held.balance + points, format_utc(at), txn, reward, reason
    )


def short(customer_id: str, held: Holdings, needed: int, kind: str) -> Refused:
    """The refusal of a spend the balance cannot cover, with the figures a script
    needs to offer something smaller: what is held, what was needed, the gap."""
    waiting = f" (and {held.pending} pending)" if held.pending else ""
    shortfall = needed - held.available
    return Refused(
        f"insufficient points: {customer_id!r} has {held.available}{waiting}, needs {needed} "
        f"(short by {shortfall})",
        code="insufficient_points",
        field="--points" if kind == "redeem" else "POINTS",
        customer_id=customer_id,
        balance=held.balance,
        available=held.available,
        pending=held.pending,
        needed=needed,
        shortfall=shortfall,
    )
