"""`loyalty report clv`: the models' invariants (clv.py, called directly) and the
report through the command line, every historical figure checked against
arithmetic done here from the rows the test imported."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_cli import clv
from tests.conftest import Shop

# --- the models ---------------------------------------------------------------------

positive = st.floats(min_value=0.05, max_value=20)
MODELS = st.builds(
    lambda r, alpha, a, b: clv.BgNbd(r, alpha, a, b, 0.0, 1, True),
    positive,
    positive,
    positive,
    positive,
)


@st.composite
def customers(draw: st.DrawFn) -> tuple[float, float, float]:
    """(x, t_x, T) in weeks: x repeat purchases, the last at t_x, observed for T."""
    T = draw(st.floats(min_value=0, max_value=300))
    x = draw(st.integers(min_value=0, max_value=60))
    t_x = 0.0 if x == 0 else draw(st.floats(min_value=0, max_value=T))
    return float(x), t_x, T


@settings(max_examples=60, deadline=None)
@given(MODELS, st.lists(customers(), min_size=1, max_size=20))
def test_p_alive_is_a_probability_and_one_for_a_single_purchase(
    model: clv.BgNbd, people: list[tuple[float, float, float]]
) -> None:
    x, t_x, T = zip(*people, strict=True)
    alive = clv.p_alive(model, x, t_x, T)
    assert all(0 <= p <= 1 for p in alive)
    # BG/NBD lets a customer drop out only right after a repeat purchase.
    assert all(p == 1 for p, xi in zip(alive, x, strict=True) if xi == 0)


@settings(max_examples=60, deadline=None)
@given(MODELS, customers(), st.floats(min_value=0.1, max_value=200), st.floats(0.01, 300))
def test_expected_purchases_grow_with_the_horizon(
    model: clv.BgNbd, person: tuple[float, float, float], t: float, more: float
) -> None:
    x, t_x, T = ([v] for v in person)
    sooner = clv.expected_purchases(model, x, t_x, T, t)[0]
    later = clv.expected_purchases(model, x, t_x, T, t + more)[0]
    assert 0 <= sooner <= later * (1 + 1e-9) + 1e-12
    assert math.isfinite(later)


@settings(max_examples=40, deadline=None)
@given(
    MODELS,
    st.lists(customers(), min_size=1, max_size=10),
    st.floats(1, 520),
    st.floats(0, 1),
    st.integers(1, 24),
)
def test_discounting_never_adds_and_a_zero_rate_changes_nothing(
    model: clv.BgNbd,
    people: list[tuple[float, float, float]],
    horizon: float,
    rate: float,
    steps: int,
) -> None:
    x, t_x, T = zip(*people, strict=True)
    plain, discounted = clv.horizon_purchases(model, x, t_x, T, horizon, rate, steps)
    assert list(plain) == pytest.approx(list(clv.expected_purchases(model, x, t_x, T, horizon)))
    assert all(0 <= d <= p * (1 + 1e-9) + 1e-12 for p, d in zip(plain, discounted, strict=True))
    _, undiscounted = clv.horizon_purchases(model, x, t_x, T, horizon, 0.0, steps)
    assert list(undiscounted) == pytest.approx(list(plain), rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0.1, 20),
    st.floats(1.05, 20),
    st.floats(0.1, 500),
    st.integers(0, 50),
    st.floats(-100, 1000),
)
def test_expected_spend_lies_between_the_customers_own_and_everyones(
    p: float, q: float, gamma: float, x: int, m: float
) -> None:
    model = clv.GammaGamma(p, q, gamma, 0.0, 1, True)
    (expected,) = clv.expected_value(model, [x], [m])
    # A mean refunds took to 0 or below counts as 0.
    low, high = sorted((model.mean, max(m, 0.0) if x else model.mean))
    assert low * (1 - 1e-9) <= expected <= high * (1 + 1e-9)
    assert expected > 0


def test_the_fit_recovers_the_parameters_customers_were_drawn_from() -> None:
    # Simulated BG/NBD customers: purchase rates Gamma(r, alpha), a dropout
    # chance Beta(a, b) after each purchase, observed for 52 weeks after a
    # first purchase in one of the first 12 weeks.
    import numpy as np

    rng = np.random.default_rng(7)
    r, alpha, a, b = 0.5, 6.0, 0.7, 3.0
    xs, txs, Ts = [], [], []
    for _ in range(4000):
        rate = rng.gamma(r, 1 / alpha)
        drop = rng.beta(a, b)
        T = 52 + 12 * rng.random()
        t, x, t_x = 0.0, 0, 0.0
        while True:
            t += rng.exponential(1 / rate)
            if t > T:
                break
            x, t_x = x + 1, t
            if rng.random() < drop:
                break
        xs.append(float(x))
        txs.append(t_x)
        Ts.append(T)
    fit = clv.fit_bgnbd(xs, txs, Ts)
    assert fit.converged
    assert fit.r == pytest.approx(r, rel=0.2)
    assert fit.alpha == pytest.approx(alpha, rel=0.3)
    assert fit.a == pytest.approx(a, rel=0.35)
    assert fit.b == pytest.approx(b, rel=0.5)


# --- the report ----------------------------------------------------------------------

RULES = """\
program: {name: Value Shop, currency: EUR, timezone: Europe/London}
tiers:
  metric: spend
  window: lifetime
  levels:
    - {id: bronze, name: Bronze, threshold: 0}
    - {id: silver, name: Silver, threshold: 200}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: spring, on: purchase, window: {from: 2024-03-01, to: 2024-03-10}, multiply: 2}
  - {id: someday, on: purchase, window: {from: 2030-01-01}, multiply: 2}
"""
START = date(2024, 1, 1)
AS_OF = date(2024, 6, 30)


def history() -> list[tuple[str, str, date, str, str | None]]:
    """(txn, customer, day, amount, refund_of): 40 customers, each first buying
    on day i of 2024 and coming back i % 6 times every 7 + 3 (i % 5) days."""
    rows: list[tuple[str, str, date, str, str | None]] = []
    for i in range(1, 41):
        cid = f"C{i:02d}"
        day = START + timedelta(days=i)
        for k in range(i % 6 + 1):
            rows.append((f"T{i}-{k}", cid, day, f"{10 + i + k}.50", None))
            day += timedelta(days=7 + 3 * (i % 5))
    rows.append(("T1-same", "C01", START + timedelta(days=1), "5.25", None))  # same day
    rows.append(("R2", "C02", START + timedelta(days=40), "4.00", "T2-1"))  # a refund
    return rows


@pytest.fixture
def valued(shop: Shop) -> Shop:
    shop.write_rules(RULES)
    path = shop.dir / "till.csv"
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["txn_id", "customer_id", "date", "amount", "refund_of"])
        for txn, cid, day, amount, refund_of in history():
            writer.writerow([txn, cid, f"{day}T12:00", amount, refund_of or ""])
    shop.ok("import-csv", str(path), "--enroll-unknown")
    shop.ok("enroll", "NOBUY", "--at", "2024-02-01")
    return shop


def report(shop: Shop, *args: str) -> dict[str, Any]:
    return shop.ok("report", "clv", "--as-of", str(AS_OF), *args)


def test_historical_figures_are_the_ledgers(valued: Shop) -> None:
    doc = report(valued)
    days: dict[str, set[date]] = defaultdict(set)
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for _, cid, day, amount, refund_of in history():
        spend[cid] += -Decimal(amount) if refund_of else Decimal(amount)
        if refund_of is None:
            days[cid].add(day)
    rows = {row["customer_id"]: row for row in doc["rows"]}
    assert set(rows) == set(days)
    assert (doc["customers"], doc["without_purchase"]) == (40, 1)
    for cid, row in rows.items():
        assert row["purchase_days"] == len(days[cid])
        assert row["first_purchase"] == str(min(days[cid]))
        assert row["last_purchase"] == str(max(days[cid]))
        assert Decimal(row["spend"]) == spend[cid]
        average = (spend[cid] / len(days[cid])).quantize(Decimal("0.01"), "ROUND_HALF_UP")
        assert Decimal(row["average_spend"]) == average
    assert rows["C01"]["purchase_days"] == 2  # three purchases, two of them on one day
    assert Decimal(doc["totals"]["spend"]) == sum(spend.values())
    assert sum(t["customers"] for t in doc["tiers"]) == 40
    assert [t["tier"] for t in doc["tiers"]] == sorted(
        {t["tier"] for t in doc["tiers"]}, key=["bronze", "silver"].index
    )


def test_segments_are_the_segments_reports(valued: Shop) -> None:
    doc = report(valued)
    segments = valued.ok("report", "segments", "--as-of", str(AS_OF))
    counts = {s["segment"]: s["customers"] for s in segments["segments"] if s["customers"]}
    assert {s["segment"]: s["customers"] for s in doc["segments"]} == counts
    members = valued.ok("report", "segments", "--as-of", str(AS_OF), "--segment", "lost")
    lost = {m["customer_id"] for m in members["rows"]}
    assert {r["customer_id"] for r in doc["rows"] if r["segment"] == "lost"} == lost


def test_predictions_are_shown_with_a_warning_when_history_is_short(valued: Shop) -> None:
    doc = report(valued)
    model = doc["model"]
    came_back = sum(1 for i in range(1, 41) if i % 6)  # the others bought once
    assert (model["time_unit"], model["customers"], model["repeat_buyers"]) == (
        "week",
        40,
        came_back,
    )
    assert model["bgnbd"] is not None and model["gamma_gamma"] is not None
    assert any("little history" in w for w in doc["warnings"])
    for row in doc["rows"]:
        assert 0 <= row["p_alive"] <= 1
        assert row["expected_purchase_days"] >= 0
        assert Decimal(row["clv"]) >= 0
        # The CLV is the expected spend on the purchases expected, discounted.
        top = Decimal(row["expected_average_spend"]) * Decimal(str(row["expected_purchase_days"]))
        assert Decimal(row["clv"]) <= top + Decimal("0.01")
    clvs = [Decimal(r["clv"]) for r in doc["rows"]]
    assert clvs == sorted(clvs, reverse=True)  # --sort clv, the default
    assert Decimal(doc["totals"]["clv"]) == sum(clvs)
    by_tier = sum((Decimal(t["clv"]) for t in doc["tiers"]), Decimal(0))
    assert by_tier == sum(clvs)


def test_a_longer_horizon_and_a_lower_rate_never_lower_the_value(valued: Shop) -> None:
    year = {r["customer_id"]: r for r in report(valued)["rows"]}
    longer = {r["customer_id"]: r for r in report(valued, "--horizon", "2y")["rows"]}
    cheaper = {r["customer_id"]: r for r in report(valued, "--discount-rate", "0")["rows"]}
    for cid, row in year.items():
        assert longer[cid]["expected_purchase_days"] >= row["expected_purchase_days"]
        assert Decimal(longer[cid]["clv"]) >= Decimal(row["clv"])
        assert Decimal(cheaper[cid]["clv"]) >= Decimal(row["clv"])


def test_too_little_history_shows_the_historical_figures_only(shop: Shop) -> None:
    shop.ok("enroll", "C1", "--at", "2024-01-01")
    shop.ok("earn", "C1", "--amount", "10", "--at", "2024-01-02")
    shop.ok("earn", "C1", "--amount", "5", "--at", "2024-01-09")
    doc = shop.ok("report", "clv", "--as-of", "2024-02-01")
    assert doc["model"]["bgnbd"] is None and doc["model"]["gamma_gamma"] is None
    assert doc["warnings"] == [
        "too little history to predict: 1 customers with a purchase, 1 of them came back "
        "(the models need at least 20 and 5); only the historical figures are shown"
    ]
    (row,) = doc["rows"]
    assert (row["purchase_days"], row["spend"], row["average_spend"]) == (2, "15.00", "7.50")
    assert (row["p_alive"], row["expected_purchase_days"], row["clv"]) == (None, None, None)
    result = shop.run("report", "clv", "--as-of", "2024-02-01", "--csv")
    assert result.exit_code == 0
    assert result.stderr.startswith("warning: too little history")
    header = next(csv.reader(result.stdout.splitlines()))
    assert header == list(row)


def test_top_and_sort(valued: Shop) -> None:
    doc = report(valued, "--sort", "purchase_days", "--top", "3")
    assert (doc["sort"], doc["top"], doc["customers"], len(doc["rows"])) == (
        "purchase_days",
        3,
        40,
        3,
    )
    everyone = report(valued, "--sort", "id")["rows"]
    assert [r["customer_id"] for r in everyone] == sorted(r["customer_id"] for r in everyone)
    most = sorted(everyone, key=lambda r: (-r["purchase_days"], r["customer_id"]))[:3]
    assert [r["customer_id"] for r in doc["rows"]] == [r["customer_id"] for r in most]


def test_the_calibration_check_counts_what_happened_after(valued: Shop) -> None:
    end = date(2024, 3, 31)
    doc = report(valued, "--calibration-end", str(end), "--by", "week")
    check = doc["calibration"]
    assert doc["model"]["fitted_to"] == str(end)
    days: dict[str, set[date]] = defaultdict(set)
    for _, cid, day, _, refund_of in history():
        if refund_of is None:
            days[cid].add(day)
    cohort = {cid: seen for cid, seen in days.items() if min(seen) <= end}
    after = {cid: sum(1 for d in seen if d > end) for cid, seen in cohort.items()}
    assert check["customers"] == len(cohort)
    assert check["actual"] == sum(after.values())
    assert sum(p["actual"] for p in check["periods"]) == check["actual"]
    assert check["periods"][0]["start"] == "2024-04-01"
    assert check["periods"][-1]["end"] == str(AS_OF)
    assert check["periods"][-1]["cumulative_predicted"] == pytest.approx(
        check["predicted"], abs=0.02
    )
    rows = {r["customer_id"]: r for r in doc["rows"]}
    assert {cid: r["holdout_actual"] for cid, r in rows.items()} == after
    for row in doc["rows"]:  # as of the calibration end
        assert row["last_purchase"] <= str(end)
    assert sum(g["customers"] for g in check["by_repeat_purchases"]) == len(cohort)


def test_campaigns_compare_the_window_with_the_days_before(valued: Shop) -> None:
    (spring,) = report(valued)["campaigns"]  # `someday` has not started
    first, last = date(2024, 3, 1), date(2024, 3, 10)
    before_first = first - timedelta(days=10)
    assert spring["rule"] == "spring"
    assert (spring["during"]["from"], spring["during"]["to"]) == (str(first), str(last))
    assert (spring["before"]["from"], spring["before"]["to"]) == (
        str(before_first),
        str(first - timedelta(days=1)),
    )
    for key, lo, hi in (("before", before_first, first), ("during", first, last)):
        sales = [
            (cid, Decimal(amount))
            for _, cid, day, amount, refund_of in history()
            if refund_of is None and lo <= day <= hi and (key == "during" or day < hi)
        ]
        window = spring[key]
        buyers = {cid for cid, _ in sales}
        revenue = sum((a for _, a in sales), Decimal(0))
        assert window["days"] == 10
        assert (window["purchases"], Decimal(window["revenue"])) == (len(sales), revenue)
        assert window["active_customers"] == len(buyers)
        assert window["purchases_per_day"] == round(len(sales) / 10, 4)
        assert Decimal(window["revenue_per_day"]) == (revenue / 10).quantize(Decimal("0.01"))
    assert "not a controlled experiment" in spring["note"]


def test_the_table_shows_the_models_time_unit(valued: Shop) -> None:
    result = valued.run("report", "clv", "--as-of", str(AS_OF), "--no-json")
    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.split())  # as the terminal's width wrapped it
    assert "time in weeks" in shown
    assert "BG/NBD r=" in shown


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--horizon", "0"], "--horizon '0' must be more than 0 and at most 10 years"),
        (["--horizon", "11y"], "--horizon '11y' must be more than 0 and at most 10 years"),
        (["--horizon", "a year"], "--horizon 'a year' should be a whole number of days"),
        (["--discount-rate", "-0.1"], "--discount-rate '-0.1' must be an annual rate from 0 to 1"),
        (["--discount-rate", "5"], "--discount-rate '5' must be an annual rate from 0 to 1"),
        (["--discount-rate", "nan"], "--discount-rate 'nan' must be an annual rate"),
        (["--calibration-end", "2024-06-30"], "must be before the as-of day 2024-06-30"),
        (["--calibration-end", "2023-12-01"], "is before the ledger's first purchase"),
        (["--calibration-end", "31/03/2024"], "--calibration-end"),
        (["--top", "0"], "--top"),
        (["--sort", "balance"], "--sort 'balance' is not one of: clv, spend"),
        (["--by", "day"], "--by 'day' is not one of: week, month (for clv)"),
        (["--from", "2024-01-01"], "the clv report is as of one day"),
    ],
)
def test_bad_options_are_one_error_line(valued: Shop, args: list[str], fragment: str) -> None:
    message = valued.fails(2, "report", "clv", "--as-of", str(AS_OF), *args)
    assert len(message.splitlines()) == 1
    assert fragment in message


def test_clv_options_belong_to_the_clv_report(shop: Shop) -> None:
    message = shop.fails(2, "report", "customers", "--horizon", "12m")
    assert message == "error: --horizon goes with the clv report, not customers"


def test_the_json_shape_is_the_documented_one(valued: Shop) -> None:
    doc = report(valued, "--calibration-end", "2024-03-31", "--top", "1")
    assert list(doc) == [
        *("report", "as_of", "timezone", "currency", "horizon", "horizon_weeks"),
        *("discount_rate", "model", "warnings", "customers", "without_purchase", "totals"),
        *("tiers", "segments", "calibration", "campaigns", "sort", "top", "rows"),
    ]
    assert (doc["report"], doc["horizon"], doc["discount_rate"]) == ("clv", "12m", "0.10")
    assert doc["horizon_weeks"] == round(365.25 / 7, 4)
    assert list(doc["model"]) == [
        *("time_unit", "fitted_to", "customers", "repeat_buyers", "bgnbd", "gamma_gamma"),
    ]
    assert list(doc["model"]["bgnbd"]) == [
        *("r", "alpha", "a", "b", "log_likelihood", "converged", "at_limit"),
    ]
    assert list(doc["model"]["gamma_gamma"]) == [
        *("p", "q", "gamma", "log_likelihood", "customers", "converged", "at_limit"),
    ]
    assert list(doc["totals"]) == [
        *("customers", "spend", "expected_purchase_days", "clv", "average_clv"),
        "average_p_alive",
    ]
    assert list(doc["calibration"]) == [
        *("end", "holdout_from", "holdout_to", "holdout_weeks", "customers", "predicted"),
        *("actual", "error", "by_repeat_purchases", "by", "periods"),
    ]
    assert list(doc["rows"][0]) == [
        *("customer_id", "name", "tier", "segment", "first_purchase", "last_purchase"),
        *("purchase_days", "spend", "average_spend", "p_alive", "expected_purchase_days"),
        *("expected_average_spend", "clv", "holdout_expected", "holdout_actual"),
    ]
    assert list(doc["campaigns"][0]) == [
        *("rule", "window_to", "before", "during", "revenue_per_day_change", "note"),
    ]


def test_a_rate_may_be_written_as_a_percentage(valued: Shop) -> None:
    as_fraction = report(valued, "--discount-rate", "0.08", "--horizon", "2y")
    as_percent = report(valued, "--discount-rate", "8%", "--horizon", "24")
    assert as_percent["discount_rate"] == "0.08"
    assert as_percent["horizon"] == "24m"
    assert as_percent["rows"] == as_fraction["rows"]


def test_every_clv_table_fits_80_columns_without_cutting_a_figure(valued: Shop) -> None:
    """CliRunner's terminal is 80 columns: the tables leave columns out (and say
    which) rather than cut or wrap a figure."""
    result = valued.run(
        "report", "clv", "--as-of", str(AS_OF), "--calibration-end", "2024-04-30", "--no-json"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), result.stdout
    assert "…" not in result.stdout
    assert any(line.startswith("Left out to fit 80 columns: Name") for line in lines)
    doc = report(valued, "--calibration-end", "2024-04-30")
    shown = result.stdout.split()
    for row in doc["rows"]:
        assert row["customer_id"] in shown and row["clv"] in shown, row
