"""`loyalty notices`: who should be told what, and why. Each notice has a stable
key naming what it is about (the customer, and the expiry day, the tier change,
the reward and how often it was redeemed before, the birthday, the purchase after
which they lapsed), so that a cron job can ask for the notices not given yet and
mark them given: a notice is never given twice, however often it is asked for.

The kinds (README, "Notices"):
- points_expiring: points that expire within --within days, per expiry day;
- tier_ending: a tier held until a day within --within days, with what keeps it;
- tier_reached / tier_lost: a tier change within the last --lookback days;
- reward_affordable: a reward the customer can redeem now (again after each
  redemption of it);
- birthday: a birthday within --birthday-within days;
- at_risk: an RFM "at risk" customer, once per last purchase.

Deciding is pure (`decide`): an account, what the rules say and today's date in,
notices out. `find` reads the accounts a thousand at a time and the few other
facts (tier changes, last purchases, the at-risk segment) once.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from . import lots
from .account import Account, balance, holdings
from .clock import day_start, from_stamp, stamp, zone
from .engine.lifecycle import today_of
from .engine.spending import reward_refusal
from .engine.tiering import standing
from .errors import BadArgument, did_you_mean
from .models import Ruleset
from .store import Store, queries

KINDS = (
    "points_expiring",
    "tier_ending",
    "tier_reached",
    "tier_lost",
    "reward_affordable",
    "birthday",
    "at_risk",
)
MAX_DAYS = 366


@dataclass(frozen=True)
class Window:
    """How far ahead and back notices look, in days, and which kinds are asked for."""

    within: int = 14  # expiring points, tiers ending
    birthday_within: int = 7
    lookback: int = 30  # tier changes
    kinds: tuple[str, ...] = KINDS

    def check(self) -> None:
        for name, value, low in (
            ("--within", self.within, 1),
            ("--birthday-within", self.birthday_within, 0),
            ("--lookback", self.lookback, 1),
        ):
            if not low <= value <= MAX_DAYS:
                raise BadArgument(
                    f"{name} {value} must be from {low} to {MAX_DAYS} days", field=name
                )
        for kind in self.kinds:
            if kind not in KINDS:
                raise BadArgument(
                    f"--kind '{kind}' is not a notice{did_you_mean(kind, KINDS)}; "
                    f"kinds: {', '.join(KINDS)}",
                    field="--kind",
                )


@dataclass(frozen=True)
class Notice:
    key: str
    kind: str
    customer_id: str
    message: str  # in plain words, for the owner and for a template's fallback
    date: date | None = None  # the day it is about: points gone, tier ends, birthday
    points: int | None = None
    tier: str | None = None
    reward: str | None = None
    given_at: datetime | None = None

    def to_json(self) -> dict[str, object]:
        from .values import format_utc

        return {
            "key": self.key,
            "kind": self.kind,
            "customer_id": self.customer_id,
            "message": self.message,
            "date": None if self.date is None else self.date.isoformat(),
            "points": self.points,
            "tier": self.tier,
            "reward": self.reward,
            "given_at": None if self.given_at is None else format_utc(self.given_at),
        }


@dataclass(frozen=True)
class TierMove:
    op_id: int
    customer_id: str
    tier: str
    tier_from: str
    day: date


@dataclass(frozen=True)
class Facts:
    """What notices need beyond the accounts: read once for everyone."""

    moves: dict[str, list[TierMove]] = field(default_factory=dict)
    at_risk: dict[str, date] = field(default_factory=dict)  # customer -> last purchase


def next_birthday(birthday: str, today: date) -> date | None:
    """The next time `birthday` (YYYY-MM-DD) comes round, today included; 29
    February falls on 28 February in other years."""
    try:
        born = date.fromisoformat(birthday)
    except ValueError:
        return None
    for year in (today.year, today.year + 1):
        day = born.day
        if born.month == 2 and day == 29 and not calendar.isleap(year):
            day = 28
        when = date(year, born.month, day)
        if when >= today:
            return when
    return None


def decide(
    account: Account, ruleset: Ruleset, today: date, window: Window, facts: Facts
) -> list[Notice]:
    """The notices an account calls for today, in KINDS order."""
    cid = account.id
    wanted = set(window.kinds)
    out: list[Notice] = []
    if "points_expiring" in wanted:
        for day, points in lots.split(account.lots, today, window.within).expiring:
            last = day - timedelta(days=1)
            out.append(
                Notice(
                    f"points_expiring/{cid}/{day}",
                    "points_expiring",
                    cid,
                    f"{points} points expire at the end of {last}",
                    date=day,
                    points=points,
                )
            )
    status = standing(account, ruleset, today)
    policy = ruleset.tiers
    if "tier_ending" in wanted and status is not None and status.until is not None:
        short = status.to_keep is not None and status.to_keep > 0
        if short and today <= status.until <= today + timedelta(days=window.within):
            assert policy is not None
            need = (
                f"{status.to_keep:.2f} more spent"
                if policy.metric == "spend"
                else (f"{int(status.to_keep or 0)} more points earned")
            )
            out.append(
                Notice(
                    f"tier_ending/{cid}/{status.level.id}/{status.until}",
                    "tier_ending",
                    cid,
                    f"{status.level.name} is held until {status.until}; {need} keeps it",
                    date=status.until,
                    tier=status.level.id,
                )
            )
    if policy is not None:
        rank = {level.id: n for n, level in enumerate(policy.levels)}
        for move in facts.moves.get(cid, ()):
            up = rank.get(move.tier, 0) > rank.get(move.tier_from, 0)
            kind = "tier_reached" if up else "tier_lost"
            if kind not in wanted:
                continue
            name = policy.level(move.tier).name if move.tier in rank else move.tier
            verb = "reached" if up else "moved down to"
            out.append(
                Notice(
                    f"{kind}/{cid}/{move.op_id}",
                    kind,
                    cid,
                    f"{verb} {name} on {move.day}",
                    date=move.day,
                    tier=move.tier,
                )
            )
    if "reward_affordable" in wanted:
        at = day_start(today, zone(ruleset.program.timezone))
        available = holdings(account, today).available
        for reward in ruleset.rewards.values():
            if available < reward.cost or reward_refusal(account, ruleset, reward, at):
                continue
            times = sum(use.times for use in account.uses if use.key == f"reward:{reward.id}")
            out.append(
                Notice(
                    f"reward_affordable/{cid}/{reward.id}/{times}",
                    "reward_affordable",
                    cid,
                    f"can redeem {reward.name} ({reward.cost} points)",
                    points=reward.cost,
                    reward=reward.id,
                )
            )
    if "birthday" in wanted and account.profile.birthday:
        comes = next_birthday(account.profile.birthday, today)
        if comes is not None and comes <= today + timedelta(days=window.birthday_within):
            out.append(
                Notice(
                    f"birthday/{cid}/{comes}", "birthday", cid, f"birthday on {comes}", date=comes
                )
            )
    if "at_risk" in wanted and cid in facts.at_risk:
        last = facts.at_risk[cid]
        out.append(
            Notice(
                f"at_risk/{cid}/{last}",
                "at_risk",
                cid,
                f"at risk: last purchase on {last}",
                date=last,
                points=balance(account, today),
            )
        )
    return out


@dataclass(frozen=True)
class Notices:
    as_of: date
    window: Window
    notices: list[Notice]
    pending_only: bool
    marked: int  # notices this run marked given

    def to_json(self) -> dict[str, object]:
        return {
            "as_of": self.as_of.isoformat(),
            "within": self.window.within,
            "birthday_within": self.window.birthday_within,
            "lookback": self.window.lookback,
            "kinds": list(self.window.kinds),
            "pending_only": self.pending_only,
            "marked_given": self.marked,
            "rows": [n.to_json() for n in self.notices],
        }


def facts_of(store: Store, ruleset: Ruleset, window: Window, today: date) -> Facts:
    tz = zone(ruleset.program.timezone)
    moves: dict[str, list[TierMove]] = {}
    if {"tier_reached", "tier_lost"} & set(window.kinds) and ruleset.tiers is not None:
        since = stamp(day_start(today - timedelta(days=window.lookback), tz))
        for op_id, cid, tier, tier_from, occurred in queries.tier_changes_since(store.conn, since):
            day = today_of(ruleset, from_stamp(occurred))
            moves.setdefault(cid, []).append(TierMove(op_id, cid, tier, tier_from, day))
    at_risk: dict[str, date] = {}
    if "at_risk" in window.kinds:
        from . import reports

        shop = reports.Shop.of(ruleset, None)
        span = reports.period(store, shop.timezone, today)
        for row in reports.segments(store, shop, span, "at_risk").scored:
            at_risk[row.customer_id] = row.last_purchase
    return Facts(moves, at_risk)


def find(
    store: Store,
    ruleset: Ruleset,
    window: Window,
    now: datetime,
    *,
    customers: Sequence[str] | None = None,
    pending_only: bool = False,
    mark_given: bool = False,
) -> Notices:
    """Today's notices (for `customers`, or everyone), each with when it was given.
    `mark_given`: the ones not given yet are marked given. They are worked out
    without the write lock (a minute for 50,000 customers: the tills must not wait
    that long), then which of them were given is read again under the lock, in the
    transaction that marks the rest: two runs at once cannot both give one."""
    window.check()
    today = today_of(ruleset, now)
    if mark_given:
        with store.snapshot():
            found = _collect(store, ruleset, window, today, customers)
        with store.transaction():
            given = queries.given_notices(store.conn, [n.key for n in found])
            pending = [n for n in found if n.key not in given]
            queries.mark_given(
                store.conn, [(n.key, n.customer_id, n.kind, stamp(now), "marked") for n in pending]
            )
        return Notices(today, window, pending, True, len(pending))
    with store.snapshot():
        found = _collect(store, ruleset, window, today, customers)
        given = queries.given_notices(store.conn, [n.key for n in found])
    shown = [
        n if n.key not in given else _given(n, from_stamp(given[n.key]))
        for n in found
        if not (pending_only and n.key in given)
    ]
    return Notices(today, window, shown, pending_only, 0)


def _given(notice: Notice, at: datetime) -> Notice:
    return replace(notice, given_at=at)


def _collect(
    store: Store, ruleset: Ruleset, window: Window, today: date, customers: Sequence[str] | None
) -> list[Notice]:
    from .audience import accounts_of

    facts = facts_of(store, ruleset, window, today)
    ids = list(customers) if customers is not None else queries.customer_ids(store.conn)
    out: list[Notice] = []
    for account in accounts_of(store, ruleset, ids):
        out += decide(account, ruleset, today, window, facts)
    return out


def kinds_of(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip().lower() for n in names)) or KINDS
