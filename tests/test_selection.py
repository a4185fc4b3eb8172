"""The customer selection every list takes (`customer list`, `statement --all`,
`messages --campaign`): a segment, a tier, points expiring, inactivity, and a
CLV band (as `report clv` values customers) and a games badge."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_cli.lifetime import CLV_BANDS, CustomerValue, bands

from .conftest import Shop
from .test_architecture import _ledger_env, _loaded

GAMES = """\
program: {name: Test Shop, currency: GBP, timezone: Europe/London}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
rewards:
  - {id: coffee, name: Free coffee, cost: 100}
badges:
  - {id: regular, name: Regular, description: Filled a coffee card}
  - {id: foodie, name: Foodie}
games:
  - id: coffee-card
    name: Coffee card
    stamps: 2
    give: {points: 10, badge: regular}
"""


@pytest.fixture
def players(shop: Shop) -> Shop:
    shop.write_rules(GAMES)
    shop.clock("2026-06-01")
    for who in ("ann", "bob", "cat"):
        shop.ok("enroll", who, "--email", f"{who}@example.com", "--at", "2026-05-01")
    for day in ("2026-05-02", "2026-05-03"):  # ann fills her card: the badge
        shop.ok("earn", "ann", "--amount", "5", "--at", day)
    shop.ok("earn", "bob", "--amount", "5", "--at", "2026-05-02")  # one stamp only
    return shop


def test_a_badge_selects_who_holds_it(players: Shop) -> None:
    listed = players.ok("customer", "list", "--transactional", "--badge", "regular")
    assert [r["customer_id"] for r in listed["rows"]] == ["ann"]
    assert (listed["badge"], listed["clv_band"]) == ("regular", None)
    assert players.ok("customer", "list", "--transactional", "--badge", "foodie")["rows"] == []
    error = players.fails(2, "customer", "list", "--badge", "regulr")
    assert (
        error
        == "error: --badge 'regulr' is not a badge (did you mean 'regular'?); badges: regular, foodie"
    )


def test_a_badge_needs_rules_with_badges(shop: Shop) -> None:
    shop.ok("enroll", "ann")
    error = shop.fails(2, "customer", "list", "--badge", "regular")
    assert error == f"error: --badge: the rules in {shop.rules} have no badges"


def test_statement_all_takes_the_same_selection(players: Shop, tmp_path: Path) -> None:
    out = tmp_path / "statements"
    doc = players.ok("statement", "--all", "--out", str(out), "--badge", "regular")
    assert [Path(f).name for f in doc["files"]] == ["ann.txt"]
    doc = players.ok(
        "statement", "--all", "--out", str(out), "--inactive-since", "2026-05-03"
    )  # bob's last purchase was 05-02, cat never bought
    assert sorted(Path(f).name for f in doc["files"]) == ["bob.txt", "cat.txt"]
    error = players.fails(2, "statement", "ann", "--badge", "regular")
    assert "go with --all" in error


def test_messages_campaign_takes_the_same_selection(players: Shop, tmp_path: Path) -> None:
    template = tmp_path / "welcome.txt"
    template.write_text("Subject: hello {{ customer.id }}\n\nHello.\n")
    doc = players.ok(
        "messages", str(template), "--from", "shop@example.com", "--campaign", "june",
        "--badge", "regular", "--transactional", "--dry-run",
    )  # fmt: skip
    assert [r["customer_id"] for r in doc["rows"]] == ["ann"]
    error = players.fails(
        2, "messages", str(template), "--from", "shop@example.com", "--notice", "birthday",
        "--badge", "regular", "--dry-run",
    )  # fmt: skip
    assert "go with --campaign" in error


# --- CLV bands ----------------------------------------------------------------------------


def _buyers(shop: Shop, count: int) -> None:
    """`count` customers, each buying on a few days: customer i on i % 4 + 1 days,
    for 10 + 7 i pounds a time."""
    lines = ["customer_id,amount,occurred_at,txn"]
    for i in range(count):
        for day in range(i % 4 + 1):
            lines.append(f"C{i:02d},{10 + 7 * i}.00,2026-0{1 + day}-{10 + i % 15},T{i}-{day}")
    (shop.dir / "sales.csv").write_text("\n".join(lines) + "\n")
    shop.ok("import-csv", str(shop.dir / "sales.csv"), "--enroll-unknown")


def test_a_clv_band_selects_a_fifth_of_the_customers_by_predicted_value(shop: Shop) -> None:
    shop.clock("2026-06-01")
    _buyers(shop, 25)
    report = {r["customer_id"]: r["clv"] for r in shop.ok("report", "clv")["rows"]}
    assert all(v is not None for v in report.values()) and len(report) == 25
    seen: dict[str, str] = {}
    for band in CLV_BANDS:  # (imported customers have no address: statements list them all)
        out = shop.dir / band
        written = shop.ok("statement", "--all", "--out", str(out), "--clv-band", band)["files"]
        for name in written:
            seen[Path(name).stem] = band
        listed = shop.ok("customer", "list", "--transactional", "--clv-band", band)
        assert (listed["clv_band"], listed["selected"]) == (band, len(written))
    assert set(seen) == set(report)  # every customer with a value is in one band
    ranked = sorted(report, key=lambda cid: Decimal(report[cid]))
    assert seen[ranked[-1]] == "top" and seen[ranked[0]] == "bottom"
    for low, high in itertools.pairwise(ranked):  # bands follow the value
        assert CLV_BANDS.index(seen[low]) >= CLV_BANDS.index(seen[high])
    error = shop.fails(2, "customer", "list", "--clv-band", "gold")
    assert error == "error: --clv-band 'gold' is not a band; bands: top, high, middle, low, bottom"


def test_a_clv_band_is_refused_where_the_report_predicts_nothing(shop: Shop) -> None:
    shop.clock("2026-06-01")
    _buyers(shop, 3)  # too few to fit the models
    error = shop.fails(1, "customer", "list", "--clv-band", "top")
    assert error.startswith("error: --clv-band: `report clv` predicts no customer values")


def test_only_a_clv_band_loads_numpy_and_scipy(tmp_path: Path) -> None:
    env = _ledger_env(tmp_path)
    models = {"numpy", "scipy"}
    for args in (["--tier", "silver"], ["--expiring-within", "30"], ["--segment", "loyal"]):
        assert _loaded(env, ["customer", "list", "--transactional", *args], models) == [], args


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=30))
def test_bands_are_fifths_by_value_and_equal_values_share_one(values: list[int]) -> None:
    rows = [_valued(f"C{i}", v) for i, v in enumerate(values)]
    found = bands(rows)
    assert set(found) == {r.customer_id for r in rows}
    for a in rows:
        for b in rows:
            if a.clv == b.clv:
                assert found[a.customer_id] == found[b.customer_id]
            elif a.clv is not None and b.clv is not None and a.clv > b.clv:
                assert CLV_BANDS.index(found[a.customer_id]) <= CLV_BANDS.index(
                    found[b.customer_id]
                )
    if len(set(values)) == 1:
        assert set(found.values()) == {"middle"}


def _valued(customer_id: str, clv: int) -> CustomerValue:
    day = date(2026, 1, 1)
    return CustomerValue(
        customer_id, None, None, "new", day, day, 1, 100, 1.0, 1.0, Decimal(1), Decimal(clv)
    )
