"""The write use cases: each reads what its decision needs under the write lock,
decides in pure code (engine/), and appends what was decided, in one
transaction. Retries are safe with an idempotency key (`txn`): the same key
with the same content reports the original result; other content is a
conflict.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from typing import TypeVar

from .clock import from_stamp, stamp
from .engine import awards, consent, merges, profiles, refunds, spending, tiering, transfers
from .engine.book import Book
from .engine.lifecycle import today_of
from .engine.merges import MergeResult
from .engine.profiles import EraseResult
from .engine.requests import (
    AdjustRequest,
    EarnRequest,
    EnrollRequest,
    EraseRequest,
    MergeRequest,
    ProfileRequest,
    RedeemRequest,
    RefundRequest,
    TierRequest,
    TransferRequest,
)
from .engine.results import (
    AwardResult,
    Distribution,
    EnrollResult,
    PointsResult,
    ProfileResult,
    RefundResult,
    RewardsResult,
    TierResult,
)
from .engine.transfers import TransferResult
from .errors import BadArgument, RulesInvalid
from .games import views as games_view
from .games.model import Games, Play
from .games.views import GamesReport, ProgressResult
from .models import Ruleset
from .standing import standings
from .store import Store, queries

__all__ = [
    "AdjustRequest",
    "EarnRequest",
    "EnrollRequest",
    "EraseRequest",
    "MergeRequest",
    "ProfileRequest",
    "RedeemRequest",
    "RefundRequest",
    "TierRequest",
    "TransferRequest",
]


Retried = TypeVar("Retried", AwardResult, PointsResult, RefundResult)


def as_left(store: Store, result: Retried, now: datetime) -> Retried:
    """A retry reports the original result, its balance included: the balance as the
    ledger stood at the original operation's time (`balance --as-of` that time), not
    today's. Read after the write transaction, which a retry leaves empty."""
    if not result.duplicate:
        return result
    from . import accounts
    from .values import parse_utc

    then = parse_utc(result.occurred_at)
    held = accounts.balance(store, result.customer_id, now, then).balance
    return replace(result, balance=held)


def older_rules(store: Store, book: Book) -> None:
    """Load the rules texts that recorded operations were made under, when they
    are not the current ones: a retry explains its lines as they were made."""
    wanted = {
        r.ruleset
        for r in book.recorded.values()
        if r.ruleset is not None
        and r.ruleset != book.ruleset.version
        and r.ruleset not in book.versions
    }
    if not wanted:
        return
    from .rules import parse_rules

    for version, (source, text) in queries.rules_texts(store.conn, sorted(wanted)).items():
        try:
            book.versions[version] = parse_rules(text, source)
        except RulesInvalid:
            continue  # no longer valid: its lines are shown without words


def enroll(store: Store, ruleset: Ruleset, request: EnrollRequest, now: datetime) -> EnrollResult:
    if not request.salt:
        request = replace(request, salt=os.urandom(16))
    people = [request.customer_id] + ([request.referred_by] if request.referred_by else [])
    with store.writing(ruleset, now, people) as book:
        result = awards.enroll(book, request)
        if not result.created:  # --exist-ok: consent changes go through `update`
            return result
        at = request.at or now
        ops = consent.record(book, request.customer_id, request.consent, request.consent_source, at)
        return replace(
            result,
            consent=tuple(
                consent.ConsentRecord(str(o.category), o.event == consent.GIVEN, at, o.reason)
                for o in ops
            ),
        )


def earn(
    store: Store,
    ruleset: Ruleset,
    request: EarnRequest,
    now: datetime,
    *,
    dry_run: bool = False,
    explain: bool = False,
) -> AwardResult:
    """Record a purchase or an event and award its points (a dry run writes nothing)."""
    if dry_run:
        book = store.reading(ruleset, now, [request.customer_id], [request.txn])
        older_rules(store, book)
        return as_left(store, awards.earn(book, request, dry_run=True, explain=explain), now)
    with store.writing(ruleset, now, [request.customer_id], [request.txn]) as book:
        older_rules(store, book)
        result = awards.earn(book, request, explain=explain)
    return as_left(store, result, now)


def redeem(store: Store, ruleset: Ruleset, request: RedeemRequest, now: datetime) -> PointsResult:
    with store.writing(ruleset, now, [request.customer_id], [request.txn]) as book:
        result = spending.redeem(book, request)
    return as_left(store, result, now)


def adjust(store: Store, ruleset: Ruleset, request: AdjustRequest, now: datetime) -> PointsResult:
    with store.writing(ruleset, now, [request.customer_id], [request.txn]) as book:
        result = spending.adjust(book, request)
    return as_left(store, result, now)


def refund(store: Store, ruleset: Ruleset, request: RefundRequest, now: datetime) -> RefundResult:
    with store.writing(ruleset, now, (), [request.txn, request.refund_of]) as book:
        older_rules(store, book)  # a return judges the receipt by the rules it was made with
        result = refunds.refund(book, request)
    return as_left(store, result, now)


def update_profile(
    store: Store, ruleset: Ruleset, request: ProfileRequest, now: datetime
) -> ProfileResult:
    with store.writing(ruleset, now, [request.customer_id]) as book:
        erased = queries.erased(store.conn, [request.customer_id]).get(request.customer_id)
        return profiles.update_profile(
            book, request, None if erased is None else from_stamp(erased[0])
        )


def erase(store: Store, ruleset: Ruleset, request: EraseRequest, now: datetime) -> EraseResult:
    """Remove a customer's personal fields for good (engine/profiles.erase), then
    rewrite the file so none of their values stays in its free space or log. A
    second run reports the first, and finishes a purge a busy reader held up."""
    if not request.salt:
        request = replace(request, salt=os.urandom(16))
    with store.erasing(), store.writing(ruleset, now, [request.customer_id]) as book:
        found = queries.erased(store.conn, [request.customer_id]).get(request.customer_id)
        earlier = None if found is None else (from_stamp(found[0]), found[1])
        result = profiles.erase(book, request, earlier)
    return replace(result, purged=store.purge())


def transfer(
    store: Store, ruleset: Ruleset, request: TransferRequest, now: datetime
) -> TransferResult:
    people = [request.from_customer, request.to_customer]
    with store.writing(ruleset, now, people, [request.txn]) as book:
        return transfers.transfer(book, request)


def merge(store: Store, ruleset: Ruleset, request: MergeRequest, now: datetime) -> MergeResult:
    """Fold a duplicate account into another (engine/merges.py), in one write: both
    accounts, whether others were merged into the duplicate and whether the
    keeper was erased, read under the write lock."""
    people = [request.keep, request.duplicate]
    with store.writing(ruleset, now, people, [request.txn]) as book:
        absorbed = len(queries.duplicates_of(store.conn, request.duplicate))
        erased = request.keep in queries.erased(store.conn, [request.keep])
        return merges.merge(book, request, absorbed=absorbed, keeper_erased=erased)


def set_tier(store: Store, ruleset: Ruleset, request: TierRequest, now: datetime) -> TierResult:
    at = request.at or now
    with store.writing(ruleset, now, [request.customer_id]) as book:
        account = book.account(request.customer_id)
        if account is None:
            raise awards.refuse_unknown(request.customer_id)
        outcome, result = tiering.set_tier(account, ruleset, request, at, book.ids())
        book.apply(outcome)
        return result


def tier_of(store: Store, ruleset: Ruleset, customer_id: str, at: datetime) -> TierResult:
    """A customer's tier as of `at`, from what was recorded by then (standing.py)."""
    tiering.policy_of(ruleset)
    account = store.standings(ruleset, [customer_id], stamp(at) + 1).get(customer_id)
    if account is None:
        raise awards.refuse_unknown(customer_id)
    return tiering.tier_of(account, ruleset, today_of(ruleset, at))


def distribution(store: Store, ruleset: Ruleset, at: datetime) -> Distribution:
    """Customers enrolled by `at` per tier as of `at`, the way the reports count them."""
    policy = tiering.policy_of(ruleset)
    today = today_of(ruleset, at)
    counts = Counter(s.level.id for _, s in standings(store, ruleset, stamp(at) + 1, today))
    return Distribution(policy, counts, today)


def rewards_for(
    store: Store | None, ruleset: Ruleset, customer_id: str | None, at: datetime
) -> RewardsResult:
    """The rewards catalogue; with a customer, which they can redeem now and why not."""
    if store is None or customer_id is None:
        return spending.rewards_for(None, ruleset, at)
    account = store.accounts(ruleset, [customer_id]).get(customer_id)
    if account is None:
        raise awards.refuse_unknown(customer_id)
    return spending.rewards_for(account, ruleset, at)


def _games_of(ruleset: Ruleset) -> Games:
    if ruleset.games is None or (not ruleset.games.games and not ruleset.games.badges):
        raise BadArgument(
            f"{ruleset.source} has no games: add a games: section (see rules.example.yaml)"
        )
    return ruleset.games


def progress(
    store: Store, ruleset: Ruleset, customer_id: str, at: datetime, as_of: datetime | None = None
) -> ProgressResult:
    """A customer's progress in each game, and the badges they hold; with
    `as_of`, as they stood then (what was recorded by that moment, streaks and
    challenges judged on its shop day)."""
    games = _games_of(ruleset)
    if as_of is not None:
        account = store.plays(ruleset, [customer_id], stamp(as_of)).get(customer_id)
        at = as_of
    else:
        account = store.accounts(ruleset, [customer_id]).get(customer_id)
    if account is None:
        raise awards.refuse_unknown(customer_id)
    assert account.play is not None
    names = {rid: reward.name for rid, reward in ruleset.rewards.items()}
    return ProgressResult(customer_id, today_of(ruleset, at), games, account.play, names)


def games_report(
    store: Store, ruleset: Ruleset, first: date | None, last: date, as_of: date
) -> GamesReport:
    """Per game, what it paid over [first, last] and who takes part, reading the
    accounts a thousand at a time."""
    games = _games_of(ruleset)
    ids = queries.customer_ids(store.conn)

    def plays() -> Iterator[Play]:
        for start in range(0, len(ids), 1000):
            for account in store.accounts(ruleset, ids[start : start + 1000]).values():
                if account.play is not None:
                    yield account.play

    return games_view.report(games, plays(), as_of, first, last)
