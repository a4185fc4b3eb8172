"""Property tests: random sequences of operations against the core functions,
and random purchases against the evaluator.

Each example builds its own ledger in a TemporaryDirectory: function-scoped
fixtures (tmp_path, and conftest's autouse environment) are set up once per
test, not once per Hypothesis example, so they cannot give each example a
fresh file. That is why the function_scoped_fixture health check is silenced.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from loyalty_cli import operations as ops
from loyalty_cli.accounts import balance
from loyalty_cli.engine.results import AwardResult, EnrollResult, PointsResult
from loyalty_cli.errors import Refused
from loyalty_cli.evaluator import evaluate
from loyalty_cli.models import Activity, CustomerState
from loyalty_cli.rules import parse_rules
from loyalty_cli.store import Store

PROPERTY_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Stacking rates, a category bonus, a weekend multiplier, a capped basket bonus,
# capped events, a free-reward event and a budget shared by all customers.
RULESET = parse_rules(
    """\
program: {name: Property Shop, currency: USD, timezone: Europe/London}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - id: shoes
    on: purchase
    when: {category: {in: [shoes, bags]}}
    points_per_unit: 1.5
  - {id: big-basket, on: purchase, min_amount: 100, points: 25, cap: {count: 1, per: week}}
  - {id: weekend, on: purchase, weekdays: [sat, sun], multiply: 2}
  - {id: welcome, on: enroll, points: 100}
  - {id: referral, on: referral, points: 500}
  - {id: review, on: review, points: 50, cap: {count: 1, per: month}}
  - {id: newsletter, on: newsletter, points: 30, budget: 100}
  - {id: birthday-coffee, on: birthday, reward: coffee, cap: {count: 1, per: year}}
rewards:
  - {id: coffee, name: Free coffee, cost: 100}
""",
    "property-rules.yaml",
)

START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
END = datetime(2030, 1, 1, tzinfo=UTC)  # 'now' for reading balances: after every step
STEP = timedelta(hours=7)  # crosses days, weekends and weeks, so caps and multipliers vary
CUSTOMERS = ("C1", "C2", "C3")

# --- operations as data ----------------------------------------------------------


@dataclass(frozen=True)
class Enroll:
    customer: str
    referred_by: str | None


@dataclass(frozen=True)
class Purchase:
    customer: str
    amount: Decimal
    category: str | None


@dataclass(frozen=True)
class Event:
    customer: str
    event: str


@dataclass(frozen=True)
class Redeem:
    customer: str
    points: int | None  # None: redeem the coffee reward (100)


@dataclass(frozen=True)
class Adjust:
    customer: str
    points: int


@dataclass(frozen=True)
class Drain:
    """Spend the whole balance give or take `offset` points, by redemption or by
    a negative adjustment: the boundary that random amounts almost never hit.
    Resolved against the ledger just before it runs (see `resolve`)."""

    customer: str
    by: str  # redeem or adjust
    offset: int


Op = Enroll | Purchase | Event | Redeem | Adjust
Planned = Op | Drain
Result = EnrollResult | AwardResult | PointsResult

customers = st.sampled_from(CUSTOMERS)
amounts = st.decimals(
    min_value=Decimal("0.01"), max_value=Decimal("9999.99"), places=2, allow_nan=False
)
operation = st.one_of(
    st.builds(Enroll, customers, st.none() | customers),
    st.builds(Purchase, customers, amounts, st.sampled_from([None, "shoes", "bags", "food"])),
    st.builds(Event, customers, st.sampled_from(["review", "newsletter", "birthday"])),
    st.builds(Redeem, customers, st.none() | st.integers(1, 5000)),
    st.builds(Adjust, customers, st.integers(-5000, -1) | st.integers(1, 5000)),
    st.builds(Drain, customers, st.sampled_from(["redeem", "adjust"]), st.integers(-1, 1)),
)
# Every sequence starts with C1 enrolled and C2 enrolled on C1's referral, so
# most operations have someone to act on; C3 enrolls (or not) at random.
sequences = st.lists(operation, min_size=3, max_size=30).map(
    lambda rest: [Enroll("C1", None), Enroll("C2", "C1"), *rest]
)


def at(index: int) -> datetime:
    return START + STEP * index


def txn(index: int) -> str:
    return f"T-{index}"


def perform(
    ledger: Store,
    op: Op,
    index: int,
    *,
    now_index: int | None = None,
    leave_out_at: bool = False,
) -> Result:
    """Run operation number `index` through the core, as the CLI would: it
    happens at at(index), and every operation but enroll has its own txn. A
    retry runs later (`now_index`) and may leave out the business time, as a
    retried CLI command may leave out --at."""
    now = at(index if now_index is None else now_index)
    when = None if leave_out_at else at(index)
    match op:
        case Enroll(customer, referred_by):
            # A fixed salt: the same facts must give the very same chain.
            request = ops.EnrollRequest(customer, referred_by=referred_by, at=when, salt=b"s")
            return ops.enroll(ledger, RULESET, request, now)
        case Purchase(customer, amount, category):
            earn = ops.EarnRequest(
                customer, "purchase", amount=amount, category=category, txn=txn(index), at=when
            )
            return ops.earn(ledger, RULESET, earn, now)
        case Event(customer, name):
            earn = ops.EarnRequest(customer, name, txn=txn(index), at=when)
            return ops.earn(ledger, RULESET, earn, now)
        case Redeem(customer, points):
            reward = "coffee" if points is None else None
            redeem = ops.RedeemRequest(customer, points, reward, txn=txn(index), at=when)
            return ops.redeem(ledger, RULESET, redeem, now)
        case Adjust(customer, points):
            adjust = ops.AdjustRequest(customer, points, "property test", txn=txn(index), at=when)
            return ops.adjust(ledger, RULESET, adjust, now)
    raise AssertionError(op)


def resolve(ledger: Store, planned: Planned) -> Op:
    if not isinstance(planned, Drain):
        return planned
    if not raw_balances_known(ledger, planned.customer):
        return Redeem(planned.customer, 1)
    points = max(1, balance(ledger, planned.customer, END).balance + planned.offset)
    if planned.by == "redeem":
        return Redeem(planned.customer, points)
    return Adjust(planned.customer, -points)


def raw_balances_known(store: Store, customer: str) -> bool:
    """Whether the customer is enrolled (a balance can be read)."""
    return (
        store.conn.execute("SELECT 1 FROM customers WHERE id = ?", (customer,)).fetchone()
        is not None
    )


def deltas(result: Result) -> Counter[str]:
    """What an accepted operation says it did to each balance."""
    if isinstance(result, EnrollResult):
        changed = Counter({result.customer.id: result.award.award.points})
        if result.referral is not None:
            changed[result.referral.customer_id] += result.referral.award.points
        return changed
    if isinstance(result, AwardResult):
        return Counter({result.customer_id: result.award.points})
    return Counter({result.customer_id: result.points})


@contextmanager
def fresh_ledger() -> Iterator[tuple[Store, sqlite3.Connection]]:
    """A new ledger file, and an independent raw connection to read it with."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        with Store.open(path) as ledger, closing(sqlite3.connect(path)) as raw:
            yield ledger, raw


def raw_balances(raw: sqlite3.Connection) -> dict[str, int]:
    return dict(raw.execute("SELECT customer_id, SUM(points) FROM entries GROUP BY customer_id"))


def row_counts(raw: sqlite3.Connection) -> tuple[int, int, int]:
    entries, operations, customers = raw.execute(
        "SELECT (SELECT count(*) FROM entries), (SELECT count(*) FROM operations), "
        "(SELECT count(*) FROM customers)"
    ).fetchone()
    return int(entries), int(operations), int(customers)


def entries_by_customer(raw: sqlite3.Connection) -> dict[str, list[tuple[str | None, int]]]:
    out: dict[str, list[tuple[str | None, int]]] = {}
    for customer, rule, points in raw.execute(
        "SELECT customer_id, rule, points FROM entries ORDER BY id"
    ):
        out.setdefault(customer, []).append((rule, points))
    return out


def refusal_is_justified(op: Op, model: Counter[str], enrolled: set[str]) -> bool:
    """A refusal must have a reason the model can see."""
    if isinstance(op, Enroll):
        return (
            op.customer in enrolled
            or op.referred_by == op.customer
            or (op.referred_by is not None and op.referred_by not in enrolled)
        )
    if op.customer not in enrolled:
        return True
    if isinstance(op, Redeem):
        return model[op.customer] < (100 if op.points is None else op.points)
    if isinstance(op, Adjust):
        return model[op.customer] + op.points < 0
    return False  # an earn for an enrolled customer is never refused


def run_sequence(
    ledger: Store, raw: sqlite3.Connection, sequence: Sequence[Planned]
) -> dict[int, tuple[Op, Result]]:
    """Apply the operations, checking the invariants after every one. Returns
    the accepted operations (as resolved) and their results, by index."""
    model: Counter[str] = Counter()  # balances as the results report them
    enrolled: set[str] = set()
    accepted: dict[int, tuple[Op, Result]] = {}
    for index, planned in enumerate(sequence):
        op = resolve(ledger, planned)
        before = row_counts(raw)
        try:
            result = perform(ledger, op, index)
        except Refused as refusal:
            event(f"{type(op).__name__} refused: {str(refusal).split(':')[0].split(' ')[0]}")
            assert refusal_is_justified(op, model, enrolled), (op, str(refusal))
            assert row_counts(raw) == before, f"refused {op} but wrote something"
        else:
            assert not refusal_is_justified(op, model, enrolled), (op, result)
            event(f"{type(op).__name__} accepted")
            accepted[index] = (op, result)
            model.update(deltas(result))
            if isinstance(op, Enroll):
                enrolled.add(op.customer)
        assert_balances(ledger, raw, model, enrolled)
    return accepted


def assert_balances(
    ledger: Store, raw: sqlite3.Connection, model: Counter[str], enrolled: set[str]
) -> None:
    sums = raw_balances(raw)
    assert set(sums) <= enrolled
    for customer in enrolled:
        shown = balance(ledger, customer, END)
        assert shown.balance == sums.get(customer, 0), customer
        assert shown.balance == shown.earned - shown.redeemed + shown.adjusted
        assert shown.balance == model[customer], customer
        assert shown.balance >= 0, customer


# --- ledger properties -----------------------------------------------------------


@PROPERTY_SETTINGS
@given(sequence=sequences)
def test_balances_match_the_entries_never_go_negative_and_the_ledger_verifies(
    sequence: list[Planned],
) -> None:
    with fresh_ledger() as (ledger, raw):
        run_sequence(ledger, raw, sequence)
        report = ledger.verify(END)
        assert report.ok, report.problems
        assert report.entries == row_counts(raw)[0]


@PROPERTY_SETTINGS
@given(sequence=sequences)
def test_replaying_the_same_operations_into_a_new_ledger_gives_the_same_ledger(
    sequence: list[Planned],
) -> None:
    with fresh_ledger() as (first, first_raw), fresh_ledger() as (second, second_raw):
        accepted_first = run_sequence(first, first_raw, sequence)
        accepted_second = run_sequence(second, second_raw, sequence)
        assert [op for op, _ in accepted_first.values()] == [
            op for op, _ in accepted_second.values()
        ]
        assert accepted_first.keys() == accepted_second.keys()
        assert raw_balances(first_raw) == raw_balances(second_raw)
        assert entries_by_customer(first_raw) == entries_by_customer(second_raw)
        # Same facts, same times, same rules: the hash chains are identical too.
        tip = "SELECT hash FROM operations ORDER BY id DESC LIMIT 1"
        assert first_raw.execute(tip).fetchone() == second_raw.execute(tip).fetchone()


@PROPERTY_SETTINGS
@given(sequence=sequences, leave_out_at=st.booleans())
def test_retrying_any_operation_with_its_txn_is_a_duplicate_that_changes_nothing(
    sequence: list[Planned], leave_out_at: bool
) -> None:
    with fresh_ledger() as (ledger, raw):
        accepted = run_sequence(ledger, raw, sequence)
        counts, balances = row_counts(raw), raw_balances(raw)
        retry_at = len(sequence) + 10  # a later `now`
        for index, (op, original) in accepted.items():
            if isinstance(op, Enroll):
                continue  # enroll has no txn; a second enroll is refused instead
            retry = perform(ledger, op, index, now_index=retry_at, leave_out_at=leave_out_at)
            assert not isinstance(retry, EnrollResult)
            assert retry.duplicate is True, (op, retry)
            if isinstance(original, AwardResult):
                assert isinstance(retry, AwardResult)
                assert retry.award.points == original.award.points
                assert [(line.rule, line.points) for line in retry.award.lines] == [
                    (line.rule, line.points) for line in original.award.lines
                ]
            else:
                assert isinstance(original, PointsResult)
                assert isinstance(retry, PointsResult)
                assert retry.points == original.points
            assert row_counts(raw) == counts
            assert raw_balances(raw) == balances
        assert ledger.verify(END).ok


# --- evaluator properties ----------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    amount=amounts,
    rates=st.lists(
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5"), places=2),
        min_size=1,
        max_size=3,
    ),
    multipliers=st.lists(
        st.decimals(min_value=Decimal("1"), max_value=Decimal("3"), places=2), max_size=2
    ),
    rounding=st.sampled_from(["floor", "nearest", "ceil"]),
)
def test_an_award_is_the_sum_of_whole_point_lines_and_floor_never_exceeds_the_exact_value(
    amount: Decimal, rates: list[Decimal], multipliers: list[Decimal], rounding: str
) -> None:
    rules = [
        f"  - {{id: rate-{i}, on: purchase, points_per_unit: {r}}}" for i, r in enumerate(rates)
    ]
    rules += [
        f"  - {{id: campaign-{i}, on: purchase, multiply: {m}}}" for i, m in enumerate(multipliers)
    ]
    ruleset = parse_rules(
        "program: {name: Shop, currency: USD, timezone: Europe/London, "
        f"rounding: {rounding}}}\nearn:\n" + "\n".join(rules) + "\n"
    )
    state = CustomerState(customer_id="C1", enrolled_at=START)
    award = evaluate(ruleset, Activity("C1", "purchase", START, amount=amount), state)

    assert award.points == sum(line.points for line in award.lines)
    assert all(type(line.points) is int for line in award.lines)
    assert all(line.points != 0 for line in award.lines)  # 0-point lines are skipped
    # Multipliers stack additively on the base: two 2x campaigns give 3x.
    boost = 1 + sum(m - 1 for m in multipliers)
    exact = amount * sum(rates) * boost
    if rounding == "floor":
        assert award.points <= exact
        # Each line loses less than one point; the base's loss is multiplied.
        assert award.points > exact - len(rates) * boost - len(multipliers)
    elif rounding == "ceil":
        assert award.points >= exact
        assert award.points < exact + len(rates) * boost + len(multipliers)
    else:
        assert abs(award.points - exact) <= (len(rates) * boost + len(multipliers)) / 2
