"""`loyalty report`: every figure checked against arithmetic done here, in plain
Python, from the operations the test itself made through the CLI.

The shop is in Europe/London, so summer dates are UTC+1 and a purchase at
00:30 local on 1 July is stored as 23:30 UTC on 30 June: periods must be judged
on the shop's date, not the stored one.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import shutil
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from tests.conftest import Shop, check_error_json

RULES = """\
program: {name: Report Shop, currency: EUR, timezone: Europe/London, point_value: 0.05}
points: {expire_after_months: 12, expire_at: same_day}
tiers:
  metric: spend
  window: calendar_year
  downgrade: reevaluate
  levels:
    - {id: bronze, name: Bronze, threshold: 0}
    - {id: silver, name: Silver, threshold: 100}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: black-friday, on: purchase, points_per_unit: 1, window: {from: 2024-11-29, to: 2024-11-29}}
  - {id: welcome, on: enroll, points: 10}
  - {id: review, on: review, points: 5}
rewards:
  - {id: coffee, name: Coffee, cost: 20}
"""


@dataclass
class Model:
    """What the test did, and the arithmetic a report must agree with."""

    enrolled: dict[str, date] = field(default_factory=dict)
    names: dict[str, str | None] = field(default_factory=dict)
    # (customer, local day, kind, points); credits also open a lot [earned, points left]
    points: list[tuple[str, date, str, int, str | None]] = field(default_factory=list)
    purchases: list[tuple[str, date, int, str]] = field(default_factory=list)  # cents, txn
    refunds: list[tuple[str, date, int]] = field(default_factory=list)
    events: list[tuple[str, date]] = field(default_factory=list)  # events and redemptions
    lots: dict[str, list[list[Any]]] = field(default_factory=lambda: defaultdict(list))
    tier_moves: list[tuple[str, date, str, str]] = field(default_factory=list)

    def credit(self, cid: str, day: date, kind: str, points: int, rule: str | None) -> None:
        self.points.append((cid, day, kind, points, rule))
        self.lots[cid].append([day, points, rule])

    def debit(self, cid: str, day: date, kind: str, points: int) -> None:
        self.points.append((cid, day, kind, -points, None))
        for lot in self.lots[cid]:  # one expiry length for all: soonest expiry = oldest
            take = min(lot[1], points)
            lot[1] -= take
            points -= take


def local(text: str) -> date:
    return date.fromisoformat(text[:10])


def build(shop: Shop) -> Model:
    shop.rules.write_text(RULES)
    m = Model()

    def enroll(cid: str, at: str, name: str | None = None) -> None:
        args = ["enroll", cid, "--at", at] + (["--name", name] if name else [])
        assert shop.ok(*args)["points"] == 10
        m.enrolled[cid], m.names[cid] = local(at), name
        m.credit(cid, local(at), "enroll", 10, "welcome")

    def buy(cid: str, amount: str, at: str, txn: str) -> None:
        doc = shop.ok("earn", cid, "--amount", amount, "--at", at, "--txn", txn)
        cents = int(Decimal(amount) * 100)
        day = local(at)
        m.purchases.append((cid, day, cents, txn))
        base = cents // 100
        assert doc["points"] == base * (2 if day == date(2024, 11, 29) else 1)
        m.credit(cid, day, "earn", base, "base")
        if day == date(2024, 11, 29):
            m.credit(cid, day, "earn", base, "black-friday")

    # dora joined long ago and never came back: her welcome points expire on 2024-01-11.
    enroll("dora", "2023-01-10T12:00")
    enroll("ann", "2024-06-01T10:00", "Ann")
    enroll("bob", "2024-06-15T23:30", '=HYPERLINK("http://x")')  # 22:30 UTC
    enroll("cy", "2024-07-01T00:30", "-cy")  # 23:30 UTC on 30 June, 1 July in the shop
    buy("ann", "60.00", "2024-06-02T09:00", "R1")
    buy("ann", "45.50", "2024-07-01T00:15", "R2")  # takes ann to silver (105.50 in 2024)
    m.tier_moves.append(("ann", date(2024, 7, 1), "bronze", "silver"))
    buy("bob", "30.00", "2024-06-30T23:59", "R3")
    buy("bob", "20.00", "2024-11-29T15:00", "R4")  # Black Friday: double
    buy("cy", "12.34", "2024-11-29T18:00", "R5")
    buy("ann", "8.00", "2024-12-31T23:59", "R6")

    assert (
        shop.ok("redeem", "ann", "--reward", "coffee", "--at", "2024-07-02T12:00")["points"] == -20
    )
    m.events.append(("ann", date(2024, 7, 2)))
    m.debit("ann", date(2024, 7, 2), "redeem", 20)

    shop.ok("adjust", "bob", "7", "--reason", "goodwill", "--at", "2024-08-01T10:00")
    m.credit("bob", date(2024, 8, 1), "adjust", 7, None)

    shop.ok("earn", "cy", "--event", "review", "--at", "2024-12-01T10:00")
    m.events.append(("cy", date(2024, 12, 1)))
    m.credit("cy", date(2024, 12, 1), "earn", 5, "review")

    # bob returns 10.00 of Black Friday's 20.00: floor(40 x 10 / 20) = 20 points back,
    # drawn first from that purchase's own lots.
    doc = shop.ok("refund", "R4", "--amount", "10.00", "--at", "2024-12-02T10:00")
    assert doc["points"] == -20
    m.refunds.append(("bob", date(2024, 12, 2), 1000))
    m.points.append(("bob", date(2024, 12, 2), "refund", -20, None))
    base_lot = next(lot for lot in m.lots["bob"] if lot[0] == date(2024, 11, 29))
    base_lot[1] -= 20  # the purchase's own lots first: its base lot (20) is emptied

    shop.ok("nightly", "--as-of", "2024-12-31")
    m.debit("dora", date(2024, 1, 11), "expire", 10)
    return m


def between(day: date, first: date, last: date) -> bool:
    return first <= day <= last


def expected_summary(m: Model, first: date, last: date, as_of: date) -> dict[str, Any]:
    period = [p for p in m.points if between(p[1], first, last)]
    by_kind: dict[str, int] = defaultdict(int)
    for _, _, kind, points, _ in period:
        by_kind[kind] += points
    buys = [p for p in m.purchases if between(p[1], first, last)]
    per_customer: dict[str, int] = defaultdict(int)
    for cid, *_ in buys:
        per_customer[cid] += 1
    active = set(per_customer) | {c for c, d in m.events if between(d, first, last)}
    revenue = sum(p[2] for p in buys)
    refunded = sum(r[2] for r in m.refunds if between(r[1], first, last))
    earned = by_kind["enroll"] + by_kind["earn"]
    redeemed = -by_kind["redeem"]
    outstanding = sum(p[3] for p in m.points if p[1] <= as_of)
    aov = (
        (Decimal(revenue) / len(buys) / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
        if buys
        else Decimal("0.00")
    )
    repeat = sum(1 for n in per_customer.values() if n >= 2)
    return {
        "report": "summary",
        "from": str(first),
        "to": str(last),
        "as_of": str(as_of),
        "timezone": "Europe/London",
        "currency": "EUR",
        "members": sum(1 for d in m.enrolled.values() if d <= as_of),
        "new_members": sum(1 for d in m.enrolled.values() if between(d, first, last)),
        "active_members": len(active),
        "purchases": len(buys),
        "purchasing_customers": len(per_customer),
        "repeat_customers": repeat,
        "revenue": f"{revenue / 100:.2f}",
        "refunds": sum(1 for r in m.refunds if between(r[1], first, last)),
        "refunded": f"{refunded / 100:.2f}",
        "net_revenue": f"{(revenue - refunded) / 100:.2f}",
        "average_order_value": str(aov),
        "points_earned": earned,
        "points_redeemed": redeemed,
        "points_expired": -by_kind["expire"],
        "points_adjusted": by_kind["adjust"],
        "points_refunded": -by_kind["refund"],
        "points_outstanding": outstanding,
        "point_value": "0.05",
        "liability_value": str((outstanding * Decimal("0.05")).quantize(Decimal("0.01"))),
        "redemption_rate": round(redeemed / earned, 4) if earned else 0.0,
        "repeat_purchase_rate": round(repeat / len(per_customer), 4) if per_customer else 0.0,
    }


# The built ledger and its model, once per backend and worker: a test gets a copy
# (the file, or a database cloned from it), not the sixty commands that build it.
_BUILT: dict[str, tuple[Any, Model]] = {}


@pytest.fixture
def built(shop: Shop, request: pytest.FixtureRequest) -> Iterator[tuple[Shop, Model]]:
    cluster: Any = None if shop.url is None else request.getfixturevalue("pg_cluster")
    backend = "sqlite" if cluster is None else "postgresql"
    clone = None
    if backend not in _BUILT:
        model = build(shop)
        if cluster is None:
            kept: Any = shop.dir.parent / f"built-{shop.dir.name}.db"
            shutil.copy(shop.db, kept)
        else:  # a clone of the test's database (dropped after it) is the template
            kept = cluster.database(template=str(shop.url).rsplit("/", 1)[1])
        _BUILT[backend] = (kept, model)
    else:
        kept, model = _BUILT[backend]
        shop.rules.write_text(RULES)
        if cluster is None:
            shutil.copy(kept, shop.db)
        else:
            clone = cluster.database(template=kept)
            shop.url = cluster.url(clone)
    yield shop, copy.deepcopy(model)
    if clone is not None:
        cluster.drop(clone)


PERIODS = [
    (date(2023, 1, 1), date(2024, 12, 31), date(2024, 12, 31)),
    (date(2024, 6, 1), date(2024, 6, 30), date(2024, 6, 30)),  # cy and R2 are in July
    (date(2024, 7, 1), date(2024, 7, 1), date(2024, 7, 1)),  # the UTC day before, locally
    (date(2024, 11, 29), date(2024, 12, 2), date(2024, 12, 31)),
    (date(2024, 1, 1), date(2024, 1, 31), date(2024, 1, 11)),  # dora's expiry day
    (date(2020, 1, 1), date(2020, 12, 31), date(2020, 12, 31)),  # before anything
]


def test_summary_matches_independent_arithmetic(built: tuple[Shop, Model]) -> None:
    shop, m = built
    for first, last, as_of in PERIODS:
        doc = shop.ok("report", "--from", str(first), "--to", str(last), "--as-of", str(as_of))
        assert doc == expected_summary(m, first, last, as_of), (first, last, as_of)


def test_summary_default_period_runs_from_the_first_entry_to_as_of(
    built: tuple[Shop, Model],
) -> None:
    shop, m = built
    doc = shop.ok("report", "--as-of", "2024-12-31")
    assert (doc["from"], doc["to"]) == ("2023-01-10", "2024-12-31")
    assert doc == expected_summary(m, date(2023, 1, 10), date(2024, 12, 31), date(2024, 12, 31))
    assert shop.ok("report", "summary", "--to", "2024-06-30")["as_of"] == "2024-06-30"


def test_outstanding_is_what_the_balances_add_up_to(built: tuple[Shop, Model]) -> None:
    shop, _ = built
    for as_of in ("2023-06-01", "2024-06-30", "2024-12-31"):
        doc = shop.ok("report", "--as-of", as_of)
        at = (date.fromisoformat(as_of) + timedelta(days=1)).isoformat()
        balances = [
            shop.ok("balance", cid, "--at", f"{at}T00:00:00")["balance"]
            for cid in ("ann", "bob", "cy", "dora")
            if shop.run("balance", cid, "--at", at, "--json").exit_code == 0
        ]
        assert doc["points_outstanding"] == sum(balances), as_of


def test_overdue_points_summed_at_once_equal_them_lot_by_lot(built: tuple[Shop, Model]) -> None:
    """The reports sum what expired lots were given less what was drawn from
    them, without reading when each draw's debit was dated (a lot is drawn from
    while live or written off on its expiry day); that must give what the lots
    hold one by one, debits read, as of any day, in all and per customer."""
    from loyalty_cli.clock import day_number, day_start, stamp, zone
    from loyalty_cli.store import reports as sql

    shop, _ = built
    tz = zone("Europe/London")
    held = []
    with shop.store() as store:
        conn = store.conn
        for as_of in [date(2023, 6, 1), date(2024, 1, 11), date(2024, 6, 30), date(2026, 1, 1)]:
            until = stamp(day_start(as_of + timedelta(days=1), tz))
            lot_by_lot: dict[str, int] = {}
            for cid, left in conn.execute(
                "SELECT e.customer_id, e.points - COALESCE((SELECT SUM(d.points) FROM draws d "
                "JOIN entries de ON de.id = d.entry_id WHERE d.lot_id = e.id "
                "AND de.occurred < ?1), 0) FROM entries e "
                "WHERE e.earned_on IS NOT NULL AND e.expires_on <= ?2 AND e.occurred < ?1",
                (until, day_number(as_of)),
            ):
                if left:
                    lot_by_lot[cid] = lot_by_lot.get(cid, 0) + left
            assert sql.overdue(conn, as_of) == sum(lot_by_lot.values()), as_of
            assert sql.overdue_by_customer(conn, as_of) == lot_by_lot, as_of
            held.append(sum(lot_by_lot.values()))
    assert any(held)


def test_points_past_expiry_count_for_no_one_before_the_nightly_step(shop: Shop) -> None:
    shop.rules.write_text(RULES)
    shop.ok("enroll", "eve", "--at", "2023-01-10T12:00")
    # No nightly run: no expire entry, but on 2024-02-01 the points are gone.
    assert shop.ok("report", "--as-of", "2024-01-10")["points_outstanding"] == 10
    doc = shop.ok("report", "--as-of", "2024-01-11")
    assert (doc["points_outstanding"], doc["points_expired"]) == (0, 0)
    liability = shop.ok("report", "liability", "--as-of", "2024-01-11")
    assert liability["points_outstanding"] == 0 and liability["by_earn_month"] == []


def test_customers_report(built: tuple[Shop, Model]) -> None:
    shop, m = built
    as_of = date(2024, 12, 31)
    doc = shop.ok("report", "customers", "--as-of", str(as_of), "--sort", "id")
    rows = {c["customer_id"]: c for c in doc["rows"]}
    assert [c["customer_id"] for c in doc["rows"]] == sorted(m.enrolled)
    for cid in m.enrolled:
        mine = [p for p in m.purchases if p[0] == cid]
        spend = sum(p[2] for p in mine) - sum(r[2] for r in m.refunds if r[0] == cid)
        pts = [p for p in m.points if p[0] == cid]
        assert rows[cid] == {
            "customer_id": cid,
            "name": m.names[cid],
            "tier": "silver" if cid == "ann" else "bronze",
            "balance": sum(p[3] for p in pts),
            "lifetime_spend": f"{spend / 100:.2f}",
            "purchases": len(mine),
            "first_purchase": str(min(p[1] for p in mine)) if mine else None,
            "last_purchase": str(max(p[1] for p in mine)) if mine else None,
            "points_earned": sum(p[3] for p in pts if p[2] in ("enroll", "earn")),
            "points_redeemed": -sum(p[3] for p in pts if p[2] == "redeem"),
        }, cid
    top = shop.ok("report", "customers", "--top", "2", "--as-of", str(as_of))
    assert [c["customer_id"] for c in top["rows"]] == ["ann", "bob"]  # by spend
    assert (top["total"], top["top"], top["sort"]) == (4, 2, "spend")
    by_balance = shop.ok("report", "customers", "--sort", "balance", "--as-of", str(as_of))
    balances = [c["balance"] for c in by_balance["rows"]]
    assert balances == sorted(balances, reverse=True)


def test_activity_report_by_day_week_and_month(built: tuple[Shop, Model]) -> None:
    shop, m = built
    first, last = date(2024, 6, 1), date(2024, 12, 31)
    for by in ("day", "week", "month"):
        doc = shop.ok("report", "activity", "--by", by, "--from", str(first), "--to", str(last))
        rows = doc["rows"]
        assert rows[0]["start"] == str(first) and rows[-1]["end"] == str(last)
        for a, b in itertools.pairwise(rows):  # contiguous, no gaps or overlaps
            assert date.fromisoformat(a["end"]) + timedelta(days=1) == date.fromisoformat(
                b["start"]
            )
        for row in rows:
            lo, hi = date.fromisoformat(row["start"]), date.fromisoformat(row["end"])
            buys = [p for p in m.purchases if between(p[1], lo, hi)]
            pts = [p for p in m.points if between(p[1], lo, hi)]
            assert row == {
                "period": row["period"],
                "start": row["start"],
                "end": row["end"],
                "purchases": len(buys),
                "revenue": f"{sum(p[2] for p in buys) / 100:.2f}",
                "points_earned": sum(p[3] for p in pts if p[2] in ("enroll", "earn")),
                "points_redeemed": -sum(p[3] for p in pts if p[2] == "redeem"),
                "points_expired": -sum(p[3] for p in pts if p[2] == "expire"),
            }
        assert doc["totals"]["purchases"] == len(m.purchases)
    weeks = shop.ok(
        "report", "activity", "--by", "week", "--from", "2024-07-01", "--to", "2024-07-14"
    )
    assert [r["period"] for r in weeks["rows"]] == ["2024-W27", "2024-W28"]
    months = shop.ok("report", "activity", "--from", "2024-06-15", "--to", "2024-07-03")
    assert [(r["period"], r["start"], r["end"]) for r in months["rows"]] == [
        ("2024-06", "2024-06-15", "2024-06-30"),
        ("2024-07", "2024-07-01", "2024-07-03"),
    ]


def test_rules_report(built: tuple[Shop, Model]) -> None:
    shop, m = built
    first, last = date(2024, 11, 1), date(2024, 12, 31)
    doc = shop.ok("report", "rules", "--from", str(first), "--to", str(last))
    lines = [p for p in m.points if p[4] and between(p[1], first, last)]
    expected: dict[str, dict[str, Any]] = {}
    for cid, _, _, points, rule in lines:
        e = expected.setdefault(rule or "", {"awards": 0, "customers": set(), "points": 0})
        e["awards"] += 1
        e["customers"].add(cid)
        e["points"] += points
    total = sum(e["points"] for e in expected.values())
    assert doc["points"] == total
    got = {r["rule"]: r for r in doc["rules"]}
    assert set(got) == set(expected)
    for rule, e in expected.items():
        assert got[rule]["awards"] == e["awards"]
        assert got[rule]["customers"] == len(e["customers"])
        assert got[rule]["points"] == e["points"]
        assert got[rule]["share"] == round(e["points"] / total, 4)
    # Black Friday fired on bob's 20.00 and cy's 12.34: that is the revenue it drew.
    assert got["black-friday"]["revenue"] == "32.34"


def test_tiers_report(built: tuple[Shop, Model]) -> None:
    shop, _ = built
    doc = shop.ok("report", "tiers", "--from", "2024-01-01", "--to", "2024-12-31")
    assert (doc["members"], doc["upgrades"], doc["downgrades"]) == (4, 1, 0)
    assert [(t["tier"], t["customers"], t["upgrades_in"]) for t in doc["tiers"]] == [
        ("bronze", 3, 0),
        ("silver", 1, 1),
    ]
    assert doc["movements"] == [
        {"from_tier": "bronze", "to_tier": "silver", "changes": 1, "customers": 1}
    ]
    # The calendar year turns: ann falls back to bronze (downgrade: reevaluate).
    shop.ok("nightly", "--as-of", "2025-01-02")
    later = shop.ok("report", "tiers", "--from", "2025-01-01", "--to", "2025-01-31")
    assert (later["upgrades"], later["downgrades"]) == (0, 1)
    assert [t["customers"] for t in later["tiers"]] == [4, 0]
    before = shop.ok("report", "tiers", "--from", "2024-06-01", "--to", "2024-06-30")
    assert [t["customers"] for t in before["tiers"]] == [3, 0]  # cy enrolled 1 July


def test_liability_report(built: tuple[Shop, Model]) -> None:
    shop, m = built
    doc = shop.ok("report", "liability", "--as-of", "2024-12-31")
    earned: dict[str, int] = defaultdict(int)
    expiring: dict[str, int] = defaultdict(int)
    for lots in m.lots.values():
        for day, left, _ in lots:
            gone = date(day.year + 1, day.month, day.day) + timedelta(days=1)
            if left and gone > date(2024, 12, 31):
                earned[f"{day:%Y-%m}"] += left
                last_day = gone - timedelta(days=1)
                expiring[f"{last_day:%Y-%m}"] += left
    outstanding = sum(p[3] for p in m.points)
    assert doc["points_outstanding"] == outstanding == sum(earned.values())
    assert doc["value"] == str(Decimal(outstanding) * Decimal("0.05"))
    assert doc["debt"] == 0 and doc["never_expire"] == 0 and doc["pending"] == 0
    assert doc["by_earn_month"] == [
        {"month": k, "points": v, "value": str(Decimal(v) * Decimal("0.05"))}
        for k, v in sorted(earned.items())
    ]
    assert {b["month"]: b["points"] for b in doc["expiring_by_month"]} == dict(expiring)


def test_segments_report(built: tuple[Shop, Model]) -> None:
    from loyalty_cli.reports import segment

    from .reference import quintiles

    shop, m = built
    as_of = date(2024, 12, 31)
    doc = shop.ok("report", "segments", "--as-of", str(as_of))
    buyers = sorted({p[0] for p in m.purchases})
    last = {c: max(p[1] for p in m.purchases if p[0] == c) for c in buyers}
    freq = {c: sum(1 for p in m.purchases if p[0] == c) for c in buyers}
    spend = {
        c: sum(p[2] for p in m.purchases if p[0] == c) - sum(r[2] for r in m.refunds if r[0] == c)
        for c in buyers
    }
    r = dict(zip(buyers, quintiles([(as_of - last[c]).days for c in buyers], False), strict=True))
    f = dict(zip(buyers, quintiles([freq[c] for c in buyers]), strict=True))
    mo = dict(zip(buyers, quintiles([spend[c] for c in buyers]), strict=True))
    names = {c: segment(r[c], f[c], mo[c]) for c in buyers}
    assert doc["customers"] == 3
    counts = {s["segment"]: s["customers"] for s in doc["segments"]}
    for name in counts:
        assert counts[name] == sum(1 for c in buyers if names[c] == name)
    which = names["ann"]
    listed = shop.ok(
        "report", "segments", "--segment", which.replace("_", " "), "--as-of", str(as_of)
    )
    assert listed["segment"] == which
    ann = next(x for x in listed["rows"] if x["customer_id"] == "ann")
    assert ann == {
        "customer_id": "ann",
        "name": "Ann",
        "last_purchase": "2024-12-31",
        "recency_days": 0,
        "frequency": 3,
        "monetary": "113.50",
        "r": r["ann"],
        "f": f["ann"],
        "m": mo["ann"],
        "rfm": f"{r['ann']}{f['ann']}{mo['ann']}",
        "segment": which,
    }
    # ann: most recent (R 5), most purchases (F 5), most spent (M 5).
    assert (ann["r"], ann["f"], ann["m"], which) == (5, 5, 5, "champions")


def test_csv_output_is_rfc4180_and_neutralises_formulas(built: tuple[Shop, Model]) -> None:
    shop, _ = built
    result = shop.run("report", "customers", "--csv", "--sort", "id", "--as-of", "2024-12-31")
    assert result.exit_code == 0, result.output
    raw = result.stdout_bytes.decode("utf-8")
    assert raw.endswith("\r\n") and raw.count("\r\n") == raw.count("\n") == 5
    rows = list(csv.reader(io.StringIO(raw, newline="")))
    assert rows[0] == [
        "customer_id",
        "name",
        "tier",
        "balance",
        "lifetime_spend",
        "purchases",
        "first_purchase",
        "last_purchase",
        "points_earned",
        "points_redeemed",
    ]
    by_id = {row[0]: row for row in rows[1:]}
    assert by_id["bob"][1] == '\'=HYPERLINK("http://x")'
    assert by_id["cy"][1] == "'-cy"
    assert by_id["ann"][1] == "Ann"
    assert by_id["dora"][1] == ""  # null -> empty cell
    as_json = shop.ok("report", "customers", "--sort", "id", "--as-of", "2024-12-31")
    for row, doc in zip(rows[1:], as_json["rows"], strict=True):
        assert row[3] == str(doc["balance"]) and row[4] == doc["lifetime_spend"]


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("summary", ["metric", "value"]),
        ("customers", None),
        (
            "activity",
            [
                "period",
                "start",
                "end",
                "purchases",
                "revenue",
                "points_earned",
                "points_redeemed",
                "points_expired",
            ],
        ),
        ("rules", ["rule", "awards", "customers", "points", "share", "revenue"]),
        (
            "tiers",
            [
                "tier",
                "name",
                "customers",
                "upgrades_in",
                "downgrades_in",
                "upgrades_out",
                "downgrades_out",
            ],
        ),
        ("segments", ["segment", "customers", "share"]),
        ("liability", ["section", "month", "points", "value"]),
    ],
)
def test_every_report_in_json_csv_and_table(
    built: tuple[Shop, Model], name: str, header: list[str] | None
) -> None:
    shop, _ = built
    doc = shop.ok("report", name, "--as-of", "2024-12-31")
    assert doc["report"] == name
    result = shop.run("report", name, "--csv", "--as-of", "2024-12-31")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout, newline="")))
    if header:
        assert rows[0] == header
    assert all(len(row) == len(rows[0]) for row in rows)
    table = shop.run("report", name, "--no-json", "--as-of", "2024-12-31")
    assert table.exit_code == 0, table.output
    assert table.stdout.strip() and not table.stdout.lstrip().startswith("{")
    if name == "summary":
        assert "EUR" in table.stdout and "%" in table.stdout
        assert dict(rows[1:])["points_outstanding"] == str(doc["points_outstanding"])


def test_an_empty_ledger_gives_zeros(shop: Shop) -> None:
    shop.rules.write_text(RULES)
    shop.ok("rules", "check")
    shop.ok("nightly", "--as-of", "2024-01-01")  # creates the ledger, writes no entries
    doc = shop.ok("report", "--as-of", "2024-01-01")
    assert doc["members"] == doc["purchases"] == doc["points_outstanding"] == 0
    assert (doc["revenue"], doc["average_order_value"], doc["liability_value"]) == (
        "0.00",
        "0.00",
        "0.00",
    )
    assert doc["redemption_rate"] == doc["repeat_purchase_rate"] == 0.0
    for name in ("customers", "activity", "rules", "tiers", "segments", "liability"):
        assert shop.ok("report", name, "--as-of", "2024-01-01")["report"] == name
        assert shop.run("report", name, "--csv", "--as-of", "2024-01-01").exit_code == 0
        assert shop.run("report", name, "--no-json", "--as-of", "2024-01-01").exit_code == 0


def test_without_a_rules_file_reports_use_the_ledgers_time_zone(
    built: tuple[Shop, Model],
) -> None:
    shop, m = built
    result = shop.run("report", "--as-of", "2024-12-31", "--json", env={"LOYALTY_RULES": None})  # type: ignore[dict-item]
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["timezone"], doc["currency"], doc["liability_value"]) == (
        "Europe/London",
        None,
        None,
    )
    want = expected_summary(m, date(2023, 1, 10), date(2024, 12, 31), date(2024, 12, 31))
    assert doc["points_outstanding"] == want["points_outstanding"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nope"], 2, "unknown report 'nope'; reports: summary, customers"),
        (["summry"], 2, "(did you mean 'summary'?)"),
        (["--from", "2024-13-01"], 2, "--from '2024-13-01' is not a date"),
        (["--to", "yesterday"], 2, "--to 'yesterday' is not a date"),
        (["--as-of", "2024/01/01"], 2, "--as-of '2024/01/01' is not a date"),
        (["--from", "2024-02-01", "--to", "2024-01-01"], 2, "--from 2024-02-01 is after --to"),
        (["activity", "--by", "year"], 2, "--by 'year' is not one of: day, week, month"),
        (["customers", "--sort", "age"], 2, "--sort 'age' is not one of: spend"),
        (["customers", "--top", "0"], 2, ""),
        (["segments", "--segment", "champs"], 2, "(did you mean 'champions'?)"),
        (["summary", "--by", "day"], 2, "--by goes with the activity report"),
        (["summary", "--top", "3"], 2, "--top goes with the customers report"),
        (["rules", "--segment", "lost"], 2, "--segment goes with the segments report"),
        (["customers", "--from", "2024-01-01"], 2, "use --as-of, not --from/--to"),
        (["--csv", "--json"], 2, "--csv and --json are two outputs"),
        (["activity", "--by", "day", "--from", "1990-01-01"], 2, "more than 5000 rows"),
    ],
)
def test_bad_input(built: tuple[Shop, Model], args: list[str], code: int, message: str) -> None:
    shop, _ = built
    result = shop.run("report", *args)
    assert result.exit_code == code, result.output
    check_error_json(result.stdout, code, result.stderr.splitlines())
    assert message in result.stderr


def test_tiers_report_needs_tiers_and_a_missing_ledger_is_66(shop: Shop) -> None:
    if shop.url is None:  # a server's database holds the ledger db init made
        assert "no ledger at" in shop.fails(66, "report")
    shop.ok("enroll", "x", "--at", "2024-01-01")
    assert "needs a rules file with a tiers: section" in shop.fails(2, "report", "tiers")


def test_point_value_must_be_a_positive_number(shop: Shop) -> None:
    shop.rules.write_text(RULES.replace("point_value: 0.05", "point_value: -1"))
    assert "point_value must be greater than zero, got -1" in shop.fails(78, "rules", "check")
    shop.rules.write_text(RULES.replace("point_value: 0.05", "point_value: lots"))
    assert "point_value must be a number, got 'lots'" in shop.fails(78, "rules", "check")
