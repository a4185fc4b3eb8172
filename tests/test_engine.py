"""The engine's decisions on plain in-memory accounts, with no database at all:
what replays and rule tests will run. And the words defined once: balance and
spend."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from loyalty_cli import account as accounts
from loyalty_cli.account import Account, Profile
from loyalty_cli.engine import awards, nightly, refunds, spending, tiering
from loyalty_cli.engine.book import Book
from loyalty_cli.engine.requests import (
    EarnRequest,
    EnrollRequest,
    RedeemRequest,
    RefundRequest,
)
from loyalty_cli.errors import Refused
from loyalty_cli.kinds import EntryKind, OpKind
from loyalty_cli.rules import parse_rules

from .conftest import Shop

START = datetime(2026, 3, 2, 10, tzinfo=UTC)  # a Monday

RULES = parse_rules(
    """\
program: {name: Engine Shop, currency: USD, timezone: Europe/London}
points: {pending_days: 7, expire_after_months: 1, expire_at: same_day}
tiers:
  metric: spend
  window: calendar_year
  levels:
    - {id: bronze, name: Bronze, threshold: 0}
    - {id: silver, name: Silver, threshold: 100, multiplier: 2}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: regular, on: purchase, points: 5, when: {spend: {gte: 100}}}
  - {id: welcome, on: enroll, points: 10}
  - {id: referral, on: referral, points: 20}
  - {id: review, on: review, points: 3, cap: {count: 1, per: week}}
rewards:
  - {id: coffee, name: Coffee, cost: 10, limit: {count: 1, per: day}}
""",
    "engine-rules.yaml",
)


def book(at: datetime = START) -> Book:
    return Book(RULES, at)


def buy(b: Book, cid: str, amount: str, txn: str, at: datetime) -> int:
    b.now = at
    return awards.earn(
        b, EarnRequest(cid, "purchase", amount=Decimal(amount), txn=txn, at=at)
    ).award.points


def test_enroll_with_a_referral_pays_both_and_records_one_operation() -> None:
    b = book()
    awards.enroll(b, EnrollRequest("ann", at=START, salt=b"a"))
    done = awards.enroll(b, EnrollRequest("bob", referred_by="ann", at=START, salt=b"b"))
    assert done.award.award.points == 10
    assert done.referral is not None and done.referral.balance == 30
    ops = b.take()
    assert [op.kind for op in ops] == [OpKind.ENROLL, OpKind.ENROLL]
    assert [(e.customer_id, e.kind, e.points) for e in ops[1].entries] == [
        ("bob", EntryKind.ENROLL, 10),
        ("ann", EntryKind.EARN, 20),
    ]


def test_a_cap_counts_what_the_account_already_holds() -> None:
    b = book()
    awards.enroll(b, EnrollRequest("ann", at=START, salt=b"a"))
    first = awards.earn(b, EarnRequest("ann", "review", at=START))
    again = awards.earn(b, EarnRequest("ann", "review", at=START + timedelta(days=2)))
    next_week = awards.earn(b, EarnRequest("ann", "review", at=START + timedelta(days=7)))
    assert (first.award.points, again.award.points, next_week.award.points) == (3, 0, 3)


def test_a_capped_free_reward_counts_its_gifts(shop: Shop) -> None:
    """A reward rule's lines are 0-point gifts, and a cap on it counts them, in a
    Book and in the accounts a store reads back alike."""
    shop.write_rules(
        """\
        program: {name: Shop, timezone: Europe/London}
        earn:
          - {id: thanks, on: review, reward: coffee, cap: {count: 1, per: month}}
        rewards:
          - {id: coffee, name: Coffee, cost: 10}
        """
    )
    shop.ok("enroll", "C1", "--at", "2026-01-01")
    first = shop.ok("earn", "C1", "--event", "review", "--at", "2026-03-02")
    again = shop.ok("earn", "C1", "--event", "review", "--at", "2026-03-09")
    assert [line["reward"] for line in first["lines"]] == ["coffee"]
    assert again["lines"] == []


def test_spend_is_net_of_refunds_for_conditions_and_tiers() -> None:
    """One meaning of spend: what purchases came to, less what was refunded on
    them. A rule's `when: {spend: ...}` and the tiers use the same figure."""
    b = book()
    awards.enroll(b, EnrollRequest("ann", at=START, salt=b"a"))
    buy(b, "ann", "150.00", "R1", START)
    b.now = START + timedelta(hours=1)
    refunds.refund(b, RefundRequest("R1", amount=Decimal("100.00"), at=b.now))
    account = b.account("ann")
    assert account is not None
    assert accounts.spend(account) == Decimal("50.00")
    later = START + timedelta(days=10)
    lines = awards.earn(
        b, EarnRequest("ann", "purchase", amount=Decimal("10.00"), txn="R2", at=later)
    ).award.lines
    assert [line.rule for line in lines] == ["base"]  # 'regular' needs a spend of 100
    current = tiering.standing(b.accounts["ann"], RULES, later.date())
    assert current is not None and current.level.id == "bronze"


def test_balance_leaves_out_points_past_their_expiry_written_off_or_not() -> None:
    """One meaning of balance: what the customer holds that has not expired,
    spendable or pending. `net` (every entry summed) is not the balance."""
    b = book()
    awards.enroll(b, EnrollRequest("ann", at=START, salt=b"a"))  # 10, gone on 2026-04-03
    account = b.account("ann")
    assert account is not None
    assert accounts.balance(account, date(2026, 4, 2)) == 10
    assert accounts.balance(account, date(2026, 4, 3)) == 0
    assert account.net == 10  # the expiry is not written yet
    b.now = datetime(2026, 4, 3, 1, tzinfo=UTC)
    expired, _, _ = nightly.night(b, account, date(2026, 4, 3))
    assert expired == 10 and b.accounts["ann"].net == 0


def test_a_redemption_never_overdraws_and_a_reward_keeps_to_its_limit() -> None:
    b = book()
    awards.enroll(b, EnrollRequest("ann", at=START, salt=b"a"))
    buy(b, "ann", "30.00", "R1", START)
    with pytest.raises(Refused, match="insufficient points"):  # the 30 are pending
        spending.redeem(b, RedeemRequest("ann", points=11, at=START))
    spending.redeem(b, RedeemRequest("ann", reward="coffee", at=START))
    with pytest.raises(Refused, match="the limit is 1 per day"):
        spending.redeem(b, RedeemRequest("ann", reward="coffee", at=START))
    assert accounts.balance(b.accounts["ann"], START.date()) == 30


def test_a_tier_change_is_decided_when_the_return_window_ends() -> None:
    b = book()
    awards.enroll(b, EnrollRequest("ann", at=START, salt=b"a"))
    buy(b, "ann", "120.00", "R1", START)
    assert b.accounts["ann"].tier is None
    week = (START + timedelta(days=7)).date()
    b.now = START + timedelta(days=7)
    _, before, after = nightly.night(b, b.accounts["ann"], week)
    assert (before, after) == (None, "silver")
    # Silver doubles the next purchase's base: its point lines, 10 + 5.
    assert buy(b, "ann", "10.00", "R2", b.now) == 10 + 5 + 15


def test_an_enrollment_that_fails_half_way_leaves_no_trace_in_a_row() -> None:
    b = book()
    with pytest.raises(Refused), b.row():
        awards.enroll(b, EnrollRequest("ann", at=START, salt=b"a"))
        awards.enroll(b, EnrollRequest("bob", referred_by="nobody", at=START, salt=b"b"))
    assert b.accounts == {} and b.take() == []


def test_decisions_are_the_same_from_a_snapshot_as_from_history() -> None:
    """An account handed to a Book (as a store would read it) decides exactly
    as the one the Book built itself."""
    built = book()
    awards.enroll(built, EnrollRequest("ann", at=START, salt=b"a"))
    buy(built, "ann", "80.00", "R1", START)
    snapshot: Account = built.accounts["ann"]
    fresh = Book(RULES, START, accounts={"ann": snapshot}, next_op=99, next_entry=99)
    later = START + timedelta(days=1)
    assert buy(fresh, "ann", "40.00", "R2", later) == buy(built, "ann", "40.00", "R2", later)


def test_an_account_is_plain_data() -> None:
    profile = Profile("zed", START)
    account = Account(profile)
    assert account.with_(net=5).net == 5 and account.net == 0
    assert accounts.holdings(account, START.date()).balance == 0


def test_an_enrollment_writes_off_the_referrers_overdue_points_first(shop: Shop) -> None:
    """Reported by the benchmark's generator: the referrer's expiry got the lower
    operation id but the higher entry ids, and the chain no longer verified."""
    shop.write_rules(
        """\
        program: {name: Shop, timezone: Europe/London}
        points: {expire_after_months: 1}
        earn:
          - {id: base, on: purchase, points_per_unit: 1}
          - {id: welcome, on: enroll, points: 10}
          - {id: referral, on: referral, points: 20}
        """
    )
    shop.ok("enroll", "A", "--at", "2025-01-01")
    shop.ok("earn", "A", "--amount", "20", "--at", "2025-01-02")
    shop.ok("enroll", "B", "--referred-by", "A", "--at", "2026-06-01")
    assert shop.ok("verify")["ok"] is True
    kinds = [e["kind"] for e in reversed(shop.ok("history", "A")["entries"])]
    assert kinds == ["enroll", "earn", "expire", "expire", "earn"]
