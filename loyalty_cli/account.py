"""A customer's account as one snapshot: everything a decision needs to know about
them, read at once under the write lock, or built in memory by a replay.

Pure data and pure arithmetic: what they hold on a day (lots, pending, debt),
their purchases and net spend, their tier inputs, and the usage that caps and
reward limits count. Decisions (engine) read an Account and return a new one;
nothing here touches the store.

Two words are defined here, once:
- **balance**: every point the customer holds that has not expired, spendable or
  pending (`Holdings.balance`). Points past their expiry never count, whether or
  not the nightly step has written their expiry yet.
- **spend**: what the customer's purchases came to, less what was refunded on
  them. Rule conditions and tiers both use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, NamedTuple

from . import lots
from .clock import Period, period_bounds, shared
from .games.model import Play
from .lots import Holdings, Lot
from .tiers import Override, Qualifying, folded, oldest_needed
from .values import from_cents


@dataclass(frozen=True, slots=True)
class Profile:
    """Who the customer is. `birthday_set_at` is when the birthday was last set
    or changed, counted from when it was recorded if that is later: a change
    dated in the past must not get round the notice a birthday needs."""

    id: str
    enrolled_at: datetime
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    birthday: str | None = None  # YYYY-MM-DD
    referred_by: str | None = None
    birthday_set_at: datetime | None = None
    salt: bytes = b""  # keys the profile digest that verify checks (see store.chain)
    # A merged duplicate: the account that now holds its points and history. Its
    # own Account is then empty: nothing may be written to it (Book.account).
    merged_into: str | None = None


class Use(NamedTuple):
    """A past award line of a capped rule, or a redemption of a reward; `times`
    of them when a replay folded old ones together (see compact)."""

    key: str  # the rule id, or "reward:" + the reward id
    at: datetime
    points: int
    times: int = 1


@dataclass(frozen=True, slots=True)
class Account:
    profile: Profile
    # Credits that still hold points, in spending order (lots.spending_order):
    # the first is the soonest to expire, so what is overdue is found at the front.
    lots: tuple[Lot, ...] = ()
    net: int = 0  # the sum of every entry: the lots' points less any refund debt
    purchases: int = 0  # how many (a refund does not undo the count)
    spend_cents: int = 0  # what they came to, less what was refunded on them
    # What counts toward tiers, dated, in the rules' metric (cents spent or points
    # earned), sorted by day: kept as it is read and as decisions add to it, so a
    # tier is worked out without going through the history again.
    qualifying: tuple[Qualifying, ...] = ()
    tier: str | None = None  # the tier last recorded (None: the first)
    tier_day: date | None = None  # the shop day that change is dated
    override: Override | None = None
    uses: tuple[Use, ...] = ()
    # What the games count (its purchases and counted events, the game lines paid):
    # read only when the rules have games.
    play: Play | None = None

    @property
    def id(self) -> str:
        return self.profile.id

    def with_(self, **changes: Any) -> Account:
        # What dataclasses.replace does, at a third of its cost: an import calls
        # this a few times a row.
        get = changes.get
        return Account(
            get("profile", self.profile),
            get("lots", self.lots),
            get("net", self.net),
            get("purchases", self.purchases),
            get("spend_cents", self.spend_cents),
            get("qualifying", self.qualifying),
            get("tier", self.tier),
            get("tier_day", self.tier_day),
            get("override", self.override),
            get("uses", self.uses),
            get("play", self.play),
        )


def debt(account: Account) -> int:
    """Points taken without a lot to take them from (a refund allowed to go
    negative): a debt against what is available, repaid by later points."""
    return sum(lot.remaining for lot in account.lots) - account.net


def holdings(account: Account, today: date) -> Holdings:
    split = lots.split(account.lots, today)
    return Holdings(split.available - debt(account), split.pending, split.expiring)


def balance(account: Account, today: date) -> int:
    """holdings(account, today).balance, without going through every lot: the
    points held less those in lots past their expiry, which, the lots being in
    spending order, are at the front."""
    gone = 0
    for lot in account.lots:
        if lot.expires_on is None or lot.expires_on > today:
            break
        gone += lot.remaining
    return account.net - gone


def spend(account: Account) -> Decimal:
    return from_cents(account.spend_cents)


def qualify(account: Account, day: date, amount: int) -> tuple[Qualifying, ...]:
    """The account's tier inputs with one more amount counting from `day`."""
    added = Qualifying(day, amount)
    held = account.qualifying
    if not held or held[-1] <= added:
        return (*held, added)
    return tuple(sorted((*held, added)))  # as a fresh read orders them


def counts_from(day: date, pending_days: int) -> date:
    """The day a purchase made on `day` starts to count toward tiers: the end of
    its return window."""
    return shared(day + timedelta(days=pending_days))


def usage(account: Account, key: str, per: Period, at: datetime, tz: tzinfo) -> tuple[int, int]:
    """(lines, points) a rule gave (or times a reward was redeemed, with
    key "reward:ID") in the calendar period containing `at`."""
    start, end = period_bounds(per, at, tz)
    count = points = 0
    for use in account.uses:
        if use.key != key:
            continue
        if (start is not None and use.at < start) or (end is not None and use.at >= end):
            continue
        count += use.times
        points += use.points
    return count, points


def compact(
    account: Account,
    floor: date,
    keep: frozenset[int],
    windows: AbstractSet[str],
    kept_from: date | None = None,
) -> Account:
    """The account with what no decision dated `floor` or later can tell apart
    folded together, for a replay that keeps every account of a long history
    (simulate): its memory then grows with customers, not with history.

    - lots: neighbours in spending order with the same expiry, all spendable by
      `floor`, become one (lots.merged); lots in `keep` stay whole;
    - tier inputs: one per day, and none older than any window of `windows` (the
      tier windows of every rules version the replay may still use) can reach;
      under one calendar_year or lifetime window, those before `floor` (and
      before `kept_from`, the first day of a purchase a refund to come will
      lower) two a year (tiers.folded);
    - uses: those before every calendar period a decision from `floor` on can
      fall in (at worst the week or year containing `floor`) become one per key,
      dated before those periods and counted whole (a lifetime cap counts them all).
    Every decision from `floor` on comes out the same on the result."""
    held = lots.merged(account.lots, floor, keep)
    cut = floor if kept_from is None else min(floor, kept_from)
    window = next(iter(windows)) if len(windows) == 1 else None
    qualifying = folded(account.qualifying, oldest_needed(windows, floor), cut, window)
    uses = _folded_uses(account.uses, _period_floor(floor))
    if held is account.lots and qualifying is account.qualifying and uses is account.uses:
        return account
    return account.with_(lots=held, qualifying=qualifying, uses=uses)


def _period_floor(floor: date) -> datetime:
    """A time before the start of any calendar period (day, week, month, year)
    containing a day from `floor` on, in any time zone: two days' margin."""
    first = min(floor - timedelta(days=7), date(floor.year, 1, 1)) - timedelta(days=2)
    return datetime(first.year, first.month, first.day, tzinfo=UTC)


def _folded_uses(uses: tuple[Use, ...], before: datetime) -> tuple[Use, ...]:
    old = [u for u in uses if u.at < before]
    if len(old) <= len({u.key for u in old}):
        return uses  # at most one old use per key: nothing to fold
    by_key: dict[str, Use] = {}
    for u in old:
        was = by_key.get(u.key)
        by_key[u.key] = (
            u
            if was is None
            else Use(u.key, max(was.at, u.at), was.points + u.points, was.times + u.times)
        )
    return (*by_key.values(), *(u for u in uses if u.at >= before))


@dataclass
class Budgets:
    """Points each budgeted rule has given to everyone, ever: a programme-wide
    figure, read once per transaction and added to as awards are decided."""

    totals: dict[str, int] = field(default_factory=dict)

    def used(self, rule: str) -> int:
        return self.totals.get(rule, 0)

    def add(self, lines: Iterable[tuple[str, int]]) -> None:
        for rule, points in lines:
            if rule in self.totals:
                self.totals[rule] += points
