"""What the write use cases answer, each with its documented JSON shape."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from ..account import Profile
from ..models import Award, AwardLine, ItemAward, Reward, TierPolicy
from ..tiers import TierStatus
from ..values import format_utc
from .consent import ConsentRecord


def line_json(line: AwardLine) -> dict[str, object]:
    out: dict[str, object] = {"rule": line.rule, "points": line.points, "detail": line.detail}
    if line.reward is not None:
        out["reward"] = line.reward
    if line.badge is not None:
        out["badge"] = line.badge
    return out


def item_json(item: ItemAward, explain: bool) -> dict[str, object]:
    """A receipt line and what it earned, by rule."""
    line = item.line
    out: dict[str, object] = {
        "number": item.number,
        "sku": line.sku,
        "category": line.category,
        "quantity": line.quantity,
        "amount": str(line.amount),
        "points": item.points,
        "excluded_by": item.excluded_by,
        "lines": [line_json(award_line) for award_line in item.lines],
    }
    if explain:
        out["skipped"] = [{"rule": s.rule, "reason": s.reason} for s in item.skipped if not s.fired]
        out["zero_points"] = [{"rule": s.rule, "reason": s.reason} for s in item.skipped if s.fired]
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
    store: str | None = None  # a purchase's store or till, when given

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "customer_id": self.customer_id,
            "event": self.event,
            "amount": None if self.amount is None else str(self.amount),
            "occurred_at": self.occurred_at,
            "txn": self.txn,
            "points": self.award.points,
            "balance": self.balance,
            "lines": [line_json(line) for line in self.award.lines],
            "duplicate": self.duplicate,
            "dry_run": self.dry_run,
        }
        if self.store is not None:
            out["store"] = self.store
        if self.award.items:
            out["items"] = [item_json(item, self.explain) for item in self.award.items]
        if self.explain:
            # A rule that fired for 0 points did fire: it is not among those skipped.
            skips = self.award.skipped
            out["skipped"] = [{"rule": s.rule, "reason": s.reason} for s in skips if not s.fired]
            out["zero_points"] = [{"rule": s.rule, "reason": s.reason} for s in skips if s.fired]
            out["games"] = [{"game": g, "progress": words} for g, words in self.award.games]
        return out


def contact(profile: Profile) -> dict[str, object]:
    """The profile fields a customer's JSON shows, in their documented order."""
    return {
        "name": profile.name,
        "email": profile.email,
        "phone": profile.phone,
        "birthday": profile.birthday,
    }


@dataclass(frozen=True)
class EnrollResult:
    customer: Profile
    created: bool
    award: AwardResult
    referral: AwardResult | None
    consent: tuple[ConsentRecord, ...] = ()  # the consent changes recorded with it

    def to_json(self) -> dict[str, object]:
        c = self.customer
        return {
            "customer_id": c.id,
            "created": self.created,
            **contact(c),
            "referred_by": c.referred_by,
            "occurred_at": format_utc(c.enrolled_at),
            "points": self.award.award.points,
            "balance": self.award.balance,
            "lines": [line_json(line) for line in self.award.award.lines],
            "referral": None if self.referral is None else self.referral.to_json(),
            "consent_changes": [record.to_json() for record in self.consent],
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
class ReturnedItem:
    """A sold line a refund returned units of, and the points they took back."""

    number: int
    sku: str | None
    category: str | None
    quantity: int
    amount: Decimal
    points: int  # negative: taken back

    def to_json(self) -> dict[str, object]:
        return {
            "number": self.number,
            "sku": self.sku,
            "category": self.category,
            "quantity": self.quantity,
            "amount": str(self.amount),
            "points": self.points,
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
    items: tuple[ReturnedItem, ...] = ()  # the lines it returned (a refund by line)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
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
        if self.items:
            out["items"] = [item.to_json() for item in self.items]
        return out


@dataclass(frozen=True)
class ProfileResult:
    customer: Profile
    changed: tuple[str, ...]
    consent: tuple[ConsentRecord, ...] = ()  # the consent changes recorded

    def to_json(self) -> dict[str, object]:
        return {
            "customer_id": self.customer.id,
            **contact(self.customer),
            "changed_fields": list(self.changed),
            "consent_changes": [record.to_json() for record in self.consent],
        }


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
                "reward": reward.id,
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


@dataclass(frozen=True)
class TierResult:
    customer_id: str
    policy: TierPolicy
    status: TierStatus
    today: date
    changed: bool = False

    def to_json(self) -> dict[str, object]:
        st, policy = self.status, self.policy

        # Money is a string and points an integer, each under its own name: the
        # metric's three keys are given, the other metric's are null.
        spend = policy.metric == "spend"

        def money(value: Decimal | None) -> str | None:
            return None if value is None or not spend else f"{value:.2f}"

        def points(value: Decimal | None) -> int | None:
            return None if value is None or spend else int(value)

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
            "qualifying_spend": money(st.value),
            "qualifying_points": points(st.value),
            "next_tier": None if st.next_level is None else st.next_level.id,
            "to_next_spend": money(st.to_next),
            "to_next_points": points(st.to_next),
            "tier_until": None if st.until is None else st.until.isoformat(),
            "to_keep_spend": money(st.to_keep),
            "to_keep_points": points(st.to_keep),
            "override": None
            if st.override is None
            else {
                "tier": st.override.tier,
                "until": None if st.override.until is None else st.override.until.isoformat(),
                "reason": st.override.reason,
            },
            "changed": self.changed,
        }


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
            "members": sum(self.counts.values()),
        }
