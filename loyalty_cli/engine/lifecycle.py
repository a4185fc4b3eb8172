"""The points lifecycle as decisions: the dates of a new lot, and writing off
the lots that are past their expiry."""

from __future__ import annotations

from bisect import insort
from datetime import date, datetime, timedelta

from .. import lots
from ..account import Account
from ..clock import day_start, shared, shop_day, zone
from ..errors import Refused
from ..kinds import EntryKind, OpKind
from ..lots import LotTerms
from ..models import Ruleset
from ..values import format_utc
from .book import Ids
from .records import NewEntry, NewOperation


def today_of(ruleset: Ruleset, at: datetime) -> date:
    return shop_day(at, zone(ruleset.program.timezone))


def lot_terms(ruleset: Ruleset, at: datetime, *, purchase: bool) -> LotTerms:
    """The dates of points earned at `at`: purchase points wait out the return window."""
    policy = ruleset.points
    earned = shared(today_of(ruleset, at))
    held = timedelta(days=policy.pending_days if purchase else 0)
    expires = lots.expires_on(earned, policy.expire_after_months, policy.expire_at)
    return LotTerms(earned, shared(earned + held), None if expires is None else shared(expires))


def due_pair(
    what: str,
    pair: tuple[Account, Account],
    ruleset: Ruleset,
    at: datetime,
    now: datetime,
    ids: Ids,
) -> tuple[date, list[NewOperation], Account, Account]:
    """Two accounts a move of points (a transfer, a merge) dated `at` touches:
    refused before either enrolled, then each one's overdue lots written off
    (only what is still held moves). (today, those expiries, the two after.)"""
    for who in pair:
        if at < who.profile.enrolled_at:
            raise Refused(
                f"a {what} dated {format_utc(at)} is before {who.id!r} enrolled",
                code="before_enrollment",
                field="--at",
            )
    today = today_of(ruleset, at)
    ops, first, _ = expire_due(pair[0], ruleset, today, now, ids)
    more, second, _ = expire_due(pair[1], ruleset, today, now, ids)
    return today, ops + more, first, second


def expire_due(
    account: Account, ruleset: Ruleset, today: date, now: datetime, ids: Ids
) -> tuple[list[NewOperation], Account, int]:
    """Write off the customer's lots that are past their expiry and still hold
    points: one operation per expiry date, dated at the start of that day in the
    shop. Never beyond the real date (`now`): a row dated in the future must not
    expire points early, for good. Returns (operations, the account after them,
    points expired); nothing when nothing is due."""
    today = min(today, today_of(ruleset, now))
    first = account.lots[0].expires_on if account.lots else None
    if first is None or first > today:  # in spending order: the soonest first
        return [], account, 0
    due = lots.overdue(account.lots, today)
    by_day: dict[date, list[lots.Lot]] = {}
    for lot in due:
        assert lot.expires_on is not None
        by_day.setdefault(lot.expires_on, []).append(lot)
    tz = zone(ruleset.program.timezone)
    ops = [
        NewOperation(
            id=ids.op(),
            kind=OpKind.EXPIRE,
            customer_id=account.id,
            occurred_at=day_start(day, tz),
            ruleset=ruleset.version,
            entries=tuple(
                NewEntry(
                    id=ids.entry(),
                    customer_id=account.id,
                    kind=EntryKind.EXPIRE,
                    points=-lot.remaining,
                    reason=f"earned {lot.earned_on}, expired {day}",
                    draws=((lot.id, lot.remaining),),
                )
                for lot in expiring
            ),
        )
        for day, expiring in sorted(by_day.items())
    ]
    gone = {lot.id for lot in due}
    expired = sum(lot.remaining for lot in due)
    after = account.with_(
        lots=tuple(lot for lot in account.lots if lot.id not in gone), net=account.net - expired
    )
    return ops, after, expired


def add_lots(account: Account, entries: tuple[NewEntry, ...]) -> tuple[lots.Lot, ...]:
    """The account's lots with the credits among `entries` opened, for its owner,
    kept in spending order."""
    new = [
        lots.Lot(e.id, e.lot.earned_on, e.lot.available_on, e.lot.expires_on, e.points)
        for e in entries
        if e.lot is not None and e.customer_id == account.id and e.points > 0
    ]
    if not new:
        return account.lots
    held = list(account.lots)
    for lot in new:
        insort(held, lot, key=lots.spending_key)
    return tuple(held)


def take_from_lots(
    held: tuple[lots.Lot, ...], draws: tuple[tuple[int, int], ...]
) -> tuple[lots.Lot, ...]:
    """The lots after `draws` took from them; emptied lots are dropped."""
    if not draws:
        return held
    taken: dict[int, int] = {}
    for lot_id, points in draws:
        taken[lot_id] = taken.get(lot_id, 0) + points
    out = []
    for lot in held:
        left = lot.remaining - taken.get(lot.id, 0)
        if left > 0:
            out.append(lot._replace(remaining=left))
    return tuple(out)
