"""Tier membership: a customer's standing as of a day, and the `tier` entries
that record each change. The arithmetic is in tiers.py; this reads the ledger
for it and writes what changed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from . import tiers
from .errors import BadArgument
from .evaluator import shop_zone
from .ledger import Ledger, NewEntry, NewOperation
from .models import Ruleset, TierPolicy
from .tiers import Override, Qualifying, TierStatus
from .values import from_cents, parse_utc


def _local_day(ruleset: Ruleset, moment: str) -> date:
    return parse_utc(moment).astimezone(shop_zone(ruleset)).date()


def qualifying(ledger: Ledger, ruleset: Ruleset, customer_id: str) -> list[Qualifying]:
    """The customer's dated qualifying amounts under the rules' metric. Purchases
    count from the end of their return window; a refund counts against its
    purchase on the purchase's own day, so a returned purchase never qualified."""
    policy = ruleset.tiers
    assert policy is not None
    held = timedelta(days=ruleset.points.pending_days)

    def counts_from(when: str) -> date:
        if len(when) == 10:  # a lot's available_on: already the local day it counts from
            return date.fromisoformat(when)
        return _local_day(ruleset, when) + held

    if policy.metric == "points":
        history = [(when, Decimal(points)) for when, points in ledger.points_history(customer_id)]
    else:
        history = [(when, from_cents(cents)) for when, cents in ledger.spend_history(customer_id)]
    return [Qualifying(counts_from(when), amount) for when, amount in history]


def _override(ledger: Ledger, customer_id: str) -> Override | None:
    found = ledger.tier_override(customer_id)
    if found is None or found.get("tier") is None:
        return None
    until = found.get("until")
    return Override(
        str(found["tier"]),
        None if until is None else date.fromisoformat(until),
        str(found.get("reason") or ""),
    )


def standing(ledger: Ledger, ruleset: Ruleset, customer_id: str, today: date) -> TierStatus | None:
    """The customer's tier as of `today`, or None when the rules have no tiers."""
    if ruleset.tiers is None:
        return None
    amounts = qualifying(ledger, ruleset, customer_id)
    return tiers.status(ruleset.tiers, amounts, today, _override(ledger, customer_id))


def record_change(
    ledger: Ledger,
    ruleset: Ruleset,
    customer_id: str,
    at: datetime,
    now: datetime,
    cause: str,
    current: TierStatus | None = None,
) -> TierStatus | None:
    """Write a `tier` entry (0 points) if the customer's tier as of `today` (their
    standing, `current` if the caller knows it) is not the one last recorded. The
    first tier needs no entry: no entry means the first level."""
    today = at.astimezone(shop_zone(ruleset)).date()
    if current is None:
        current = standing(ledger, ruleset, customer_id, today)
    if current is None:
        return None
    policy = ruleset.tiers
    assert policy is not None
    recorded = ledger.last_tier(customer_id) or policy.levels[0].id
    if recorded == current.level.id:
        return current
    before = next((lv for lv in policy.levels if lv.id == recorded), policy.levels[0])
    move = "up" if current.level.threshold > before.threshold else "down"
    reached = describe_value(policy, current.value)
    detail = f"{before.name} -> {current.level.name} ({move}): {reached} in the window; {cause}"
    ledger.append(
        NewOperation(
            kind="tier",
            customer_id=customer_id,
            occurred_at=at,
            event="change",
            ruleset=ruleset.version,
            request={
                "customer_id": customer_id,
                "from": before.id,
                "to": current.level.id,
                "on": today.isoformat(),
            },
        ),
        [NewEntry(kind="tier", points=0, rule=current.level.id, reason=cause, detail=detail)],
        now,
    )
    return current


def describe_value(policy: TierPolicy, value: Decimal) -> str:
    return f"{value:.2f} spent" if policy.metric == "spend" else f"{int(value)} points earned"


@dataclass(frozen=True)
class TierResult:
    customer_id: str
    policy: TierPolicy
    status: TierStatus
    today: date
    changed: bool = False

    def to_json(self) -> dict[str, object]:
        st, policy = self.status, self.policy

        def shown(value: Decimal | None) -> object:
            if value is None:
                return None
            return f"{value:.2f}" if policy.metric == "spend" else int(value)

        return {
            "customer_id": self.customer_id,
            "as_of": self.today.isoformat(),
            "tier": st.level.id,
            "name": st.level.name,
            "multiplier": str(st.level.multiplier),
            "perks": st.level.perks,
            "metric": policy.metric,
            "window": policy.window,
            "downgrade": policy.downgrade,
            "window_start": None if st.window_start is None else st.window_start.isoformat(),
            "qualifying": shown(st.value),
            "next_tier": None if st.next_level is None else st.next_level.id,
            "to_next": shown(st.to_next),
            "tier_until": None if st.until is None else st.until.isoformat(),
            "to_keep": shown(st.to_keep),
            "override": None
            if st.override is None
            else {
                "tier": st.override.tier,
                "until": None if st.override.until is None else st.override.until.isoformat(),
                "reason": st.override.reason,
            },
            "changed": self.changed,
        }


def _policy(ruleset: Ruleset) -> TierPolicy:
    if ruleset.tiers is None:
        raise BadArgument(f"{ruleset.source} defines no tiers (add a tiers: section)")
    return ruleset.tiers


def tier_of(ledger: Ledger, ruleset: Ruleset, customer_id: str, today: date) -> TierResult:
    policy = _policy(ruleset)
    current = standing(ledger, ruleset, customer_id, today)
    assert current is not None
    return TierResult(customer_id, policy, current, today)


def set_tier(
    ledger: Ledger,
    ruleset: Ruleset,
    customer_id: str,
    tier_id: str,
    reason: str,
    until: date | None,
    at: datetime,
    now: datetime,
) -> TierResult:
    """A manual tier: a floor until `until` (or for good), recorded with its reason."""
    today = at.astimezone(shop_zone(ruleset)).date()
    policy = _policy(ruleset)
    known = [level.id for level in policy.levels]
    if tier_id not in known:
        raise BadArgument(f"unknown tier '{tier_id}'; tiers are: {', '.join(known)}")
    if not reason.strip():
        raise BadArgument("--reason must say why the tier is set by hand")
    if until is not None and until < today:
        raise BadArgument(f"--until {until} is in the past")
    ledger.append(
        NewOperation(
            kind="tier",
            customer_id=customer_id,
            occurred_at=at,
            event="override",
            reason=reason,
            ruleset=ruleset.version,
            request={
                "customer_id": customer_id,
                "tier": tier_id,
                "until": None if until is None else until.isoformat(),
                "reason": reason,
            },
        ),
        [],
        now,
    )
    current = record_change(ledger, ruleset, customer_id, at, now, f"set by hand: {reason}")
    assert current is not None
    return TierResult(customer_id, policy, current, today, changed=True)


@dataclass(frozen=True)
class Distribution:
    policy: TierPolicy
    counts: Counter[str]
    today: date

    def to_json(self) -> dict[str, object]:
        return {
            "as_of": self.today.isoformat(),
            "tiers": [
                {"tier": level.id, "name": level.name, "customers": self.counts.get(level.id, 0)}
                for level in self.policy.levels
            ],
            "customers": sum(self.counts.values()),
        }


def distribution(ledger: Ledger, ruleset: Ruleset, today: date) -> Distribution:
    policy = _policy(ruleset)
    counts: Counter[str] = Counter()
    for customer_id in ledger.customer_ids():
        current = standing(ledger, ruleset, customer_id, today)
        assert current is not None
        counts[current.level.id] += 1
    return Distribution(policy, counts, today)
