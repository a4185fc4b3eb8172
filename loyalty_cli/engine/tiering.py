"""Tier membership as decisions: a customer's standing as of a day (from their
account), the `tier` operation that records a change, and a manual floor. The
arithmetic is in tiers.py."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from .. import tiers
from ..account import Account
from ..errors import BadArgument
from ..kinds import EntryKind, OpKind
from ..models import Ruleset, TierPolicy
from ..tiers import Override, TierStatus
from .book import Ids, Outcome
from .lifecycle import today_of
from .records import NewEntry, NewOperation
from .requests import TierRequest
from .results import TierResult


def standing(account: Account, ruleset: Ruleset, today: date) -> TierStatus | None:
    """The customer's tier as of `today`, or None when the rules have no tiers."""
    policy = ruleset.tiers
    if policy is None:
        return None
    scale = 100 if policy.metric == "spend" else 1  # spend is kept in cents
    return tiers.status(policy, account.qualifying, today, account.override, scale)


def describe_value(policy: TierPolicy, value: Decimal) -> str:
    return f"{value:.2f} spent" if policy.metric == "spend" else f"{int(value)} points earned"


def tier_change(
    account: Account,
    ruleset: Ruleset,
    at: datetime,
    cause: str,
    ids: Ids,
    current: TierStatus | None = None,
) -> tuple[NewOperation | None, Account, TierStatus | None]:
    """A `tier` operation (with a 0-point entry) if the customer's tier as of
    `at`'s day (their standing, `current` if the caller knows it) is not the one
    last recorded. The first tier needs none: no entry means the first level.

    Changes are recorded in the order of their days: an operation dated before
    the last recorded change (a backlog imported out of order) decides none, or
    the history would read Silver on the 30th, then Bronze on the 2nd. The next
    operation dated on or after it, or the nightly run, decides with it counted."""
    today = today_of(ruleset, at)
    if current is None:
        current = standing(account, ruleset, today)
    if current is None:
        return None, account, None
    policy = ruleset.tiers
    assert policy is not None
    recorded = account.tier or policy.levels[0].id
    if recorded == current.level.id:
        return None, account, current
    if account.tier_day is not None and today < account.tier_day:
        return None, account, current
    before = next((lv for lv in policy.levels if lv.id == recorded), policy.levels[0])
    move = "up" if current.level.threshold > before.threshold else "down"
    reached = describe_value(policy, current.value)
    detail = f"{before.name} -> {current.level.name} ({move}): {reached} in the window; {cause}"
    op = NewOperation(
        id=ids.op(),
        kind=OpKind.TIER,
        customer_id=account.id,
        occurred_at=at,
        ruleset=ruleset.version,
        event="change",
        tier=current.level.id,
        tier_from=before.id,
        entries=(
            NewEntry(
                id=ids.entry(),
                customer_id=account.id,
                kind=EntryKind.TIER,
                points=0,
                rule=current.level.id,
                reason=cause,
                detail=detail,
            ),
        ),
    )
    return op, account.with_(tier=current.level.id, tier_day=today), current


def policy_of(ruleset: Ruleset) -> TierPolicy:
    if ruleset.tiers is None:
        raise BadArgument(f"{ruleset.source} defines no tiers (add a tiers: section)")
    return ruleset.tiers


def tier_of(account: Account, ruleset: Ruleset, today: date) -> TierResult:
    policy = policy_of(ruleset)
    current = standing(account, ruleset, today)
    assert current is not None
    return TierResult(account.id, policy, current, today)


def set_tier(
    account: Account, ruleset: Ruleset, request: TierRequest, at: datetime, ids: Ids
) -> tuple[Outcome, TierResult]:
    """A manual tier: a floor until `until` (or for good), recorded with its reason."""
    today = today_of(ruleset, at)
    policy = policy_of(ruleset)
    known = [level.id for level in policy.levels]
    if request.tier not in known:
        raise BadArgument(f"unknown tier '{request.tier}'; tiers are: {', '.join(known)}")
    if not request.reason.strip():
        raise BadArgument("--reason must say why the tier is set by hand")
    if request.until is not None and request.until < today:
        raise BadArgument(f"--until {request.until} is in the past")
    override = NewOperation(
        id=ids.op(),
        kind=OpKind.TIER,
        customer_id=account.id,
        occurred_at=at,
        ruleset=ruleset.version,
        event="override",
        reason=request.reason,
        tier=request.tier,
        until=request.until,
    )
    floored = account.with_(override=Override(request.tier, request.until, request.reason))
    change, after, current = tier_change(
        floored, ruleset, at, f"set by hand: {request.reason}", ids
    )
    assert current is not None
    ops = (override,) if change is None else (override, change)
    result = TierResult(account.id, policy, current, today, changed=True)
    return Outcome(ops, (after,)), result
