"""Property tests for the points lifecycle: random purchases, events, redemptions,
refunds and the passing of time, with points held and expiring."""

from __future__ import annotations

import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty_cli import operations as ops
from loyalty_cli.accounts import holdings
from loyalty_cli.engine import tiering
from loyalty_cli.errors import Refused
from loyalty_cli.rules import parse_rules
from loyalty_cli.store import Store, queries

RULES = {
    shortfall: parse_rules(
        f"""\
program: {{name: P, timezone: Europe/London}}
points: {{pending_days: 7, expire_after_months: 1, expire_at: same_day, refund_shortfall: {shortfall}}}
earn:
  - {{id: base, on: purchase, points_per_unit: 1}}
  - {{id: bags, on: purchase, points_per_unit: 1.5, when: {{category: bags}}}}
  - {{id: review, on: review, points: 25}}
  - {{id: welcome, on: enroll, points: 50}}
"""
    )
    for shortfall in ("within_balance", "allow_negative")
}
START = datetime(2026, 1, 1, 10, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")

steps = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(1, 20000), st.sampled_from([None, "bags"])),
        st.tuples(st.just("review"), st.just(0), st.none()),
        st.tuples(st.just("redeem"), st.integers(1, 400), st.none()),
        st.tuples(st.just("refund"), st.integers(0, 30), st.integers(1, 100)),
        st.tuples(st.just("wait"), st.integers(1, 45), st.none()),
    ),
    min_size=1,
    max_size=30,
)


def raw_balance(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COALESCE(SUM(points), 0) FROM entries").fetchone()[0])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps, shortfall=st.sampled_from(["within_balance", "allow_negative"]))
def test_lifecycle_invariants(plan: list[tuple[str, int, object]], shortfall: str) -> None:
    ruleset = RULES[shortfall]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "l.db"
        ledger = Store.open(db)
        at = START
        ops.enroll(ledger, ruleset, ops.EnrollRequest("C1", at=at), at)
        purchases: list[tuple[str, int]] = []  # (txn, points earned)
        for n, (kind, number, extra) in enumerate(plan):
            at += timedelta(hours=5)
            try:
                if kind == "buy":
                    amount = Decimal(number) / 100
                    request = ops.EarnRequest(
                        "C1", "purchase", amount=amount, category=extra, txn=f"R{n}", at=at
                    )
                    award = ops.earn(ledger, ruleset, request, at)
                    purchases.append((f"R{n}", award.award.points))
                elif kind == "review":
                    ops.earn(ledger, ruleset, ops.EarnRequest("C1", "review", at=at), at)
                elif kind == "redeem":
                    before = holdings(ledger, "C1", at.astimezone(LONDON).date(), None)
                    try:
                        ops.redeem(
                            ledger, ruleset, ops.RedeemRequest("C1", points=number, at=at), at
                        )
                    except Refused:
                        assert before.available < number
                    else:
                        assert before.available >= number
                elif kind == "refund" and purchases:
                    txn, _ = purchases[number % len(purchases)]
                    share = Decimal(str(extra)) / 100
                    with sqlite3.connect(db) as conn:
                        cents = conn.execute(
                            "SELECT amount_cents FROM operations WHERE txn = ?", (txn,)
                        ).fetchone()[0]
                    amount = max(
                        Decimal("0.01"), (Decimal(cents) * share / 100).quantize(Decimal("0.01"))
                    )
                    ops.refund(ledger, ruleset, ops.RefundRequest(txn, amount=amount, at=at), at)
                elif kind == "wait":
                    at += timedelta(days=number)
            except Refused as refused:
                assert (
                    "refunded" in str(refused)
                    or "left to refund" in str(refused)
                    or kind == "redeem"
                )
            total = raw_balance(db)
            lots_left = sum(lot.remaining for lot in queries.lots(ledger.conn, "C1", None))
            # The entries' sum is what the lots account for, less any debt.
            assert sum(queries.points_by_kind(ledger.conn, "C1", None).values()) == total
            assert lots_left >= total  # what lots hold beyond the balance is a debt
            if shortfall == "within_balance":
                assert total >= 0 and lots_left == total
        # No refund ever took back more than its purchase earned.
        with sqlite3.connect(db) as conn:
            for txn, earned in purchases:
                (op_id,) = conn.execute(
                    "SELECT id FROM operations WHERE txn = ?", (txn,)
                ).fetchone()
                (due,) = conn.execute(
                    "SELECT COALESCE(SUM(clawback), 0) FROM operations WHERE refund_of = ?",
                    (op_id,),
                ).fetchone()
                assert 0 <= due <= earned
        report = ledger.verify(at)
        assert report.ok, report.problems
        ledger.close()


TIERED = parse_rules(
    """\
program: {name: T, timezone: Europe/London}
points: {pending_days: 5, expire_after_months: 2, expire_at: end_of_month}
tiers:
  metric: spend
  window: calendar_year
  downgrade: keep_next_window
  levels:
    - {id: bronze, name: Bronze, threshold: 0}
    - {id: silver, name: Silver, threshold: 50, multiplier: 1.5}
    - {id: gold, name: Gold, threshold: 150, multiplier: 2}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: birthday, on: birthday, points: 40}
  - {id: welcome, on: enroll, points: 10}
"""
)

histories = st.lists(
    st.tuples(
        st.sampled_from(["C1", "C2"]),
        st.sampled_from(["buy", "refund", "redeem", "nightly"]),
        st.integers(1, 9000),
        st.integers(1, 40),  # days that pass before it
    ),
    min_size=1,
    max_size=20,
)


def play(db: Path, history: list[tuple[str, str, int, int]]) -> dict[str, tuple[int, str]]:
    """Run a history into a new ledger; the balances and tiers it ends with."""
    from loyalty_cli.nightly import run_nightly

    ledger = Store.open(db)
    at = START
    for cid, day in (("C1", "1990-01-20"), ("C2", "1985-03-02")):
        ops.enroll(
            ledger, TIERED, ops.EnrollRequest(cid, birthday=day, at=at - timedelta(days=60)), at
        )
    for n, (cid, kind, number, days) in enumerate(history):
        at += timedelta(days=days)
        try:
            if kind == "buy":
                request = ops.EarnRequest(
                    cid, "purchase", amount=Decimal(number) / 100, txn=f"R{n}", at=at
                )
                ops.earn(ledger, TIERED, request, at)
            elif kind == "refund" and n:
                ops.refund(ledger, TIERED, ops.RefundRequest(f"R{number % n}", at=at), at)
            elif kind == "redeem":
                ops.redeem(
                    ledger, TIERED, ops.RedeemRequest(cid, points=number // 100 + 1, at=at), at
                )
            elif kind == "nightly":
                day = at.astimezone(LONDON).date()
                run_nightly(ledger, TIERED, day, at)
                before = [tuple(r) for r in ledger.conn.execute("SELECT * FROM entries")]
                run_nightly(ledger, TIERED, day, at)
                # The nightly step, run twice, changes nothing the second time.
                assert [tuple(r) for r in ledger.conn.execute("SELECT * FROM entries")] == before
        except Refused:
            pass
    end = at.astimezone(LONDON).date()
    result = {}
    for cid in ("C1", "C2"):
        tier = tiering.standing(ledger.accounts(TIERED, [cid])[cid], TIERED, end)
        assert tier is not None
        result[cid] = (holdings(ledger, cid, end, None).balance, tier.level.id)
    assert ledger.verify(at).ok
    ledger.close()
    return result


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories)
def test_nightly_is_idempotent_and_replaying_gives_the_same_balances_and_tiers(
    history: list[tuple[str, str, int, int]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        first = play(Path(tmp) / "a.db", history)
        second = play(Path(tmp) / "b.db", history)
    assert first == second
