"""The look on a terminal: charts where a picture reads faster (bars per tier, segment,
rule and expiry month, drawn like `report activity`'s, only on a terminal), and report
tables that fit the terminal without cutting or wrapping a figure."""

from __future__ import annotations

import io
import shutil
from typing import Any

import pytest
from rich.console import Console

from loyalty_cli import render

from .conftest import EXAMPLE_RULES, Shop

BAR = "█"


@pytest.fixture
def docs(example_shop: Shop) -> dict[str, dict[str, Any]]:
    shop = example_shop
    shutil.copy(EXAMPLE_RULES, shop.rules)
    shop.clock("2026-11-20")
    shop.ok("enroll", "ann", "--at", "2026-06-01")
    shop.ok("enroll", "bob", "--at", "2026-06-01")
    shop.ok("earn", "ann", "--amount", "400", "--category", "shoes", "--at", "2026-06-02")
    shop.ok("earn", "bob", "--amount", "20", "--at", "2026-07-02")
    return {
        "report_tiers": shop.ok("report", "tiers"),
        "report_segments": shop.ok("report", "segments"),
        "report_rules": shop.ok("report", "rules"),
        "report_liability": shop.ok("report", "liability"),
        "tiers": shop.ok("tier"),
    }


def drawn(view: str, doc: dict[str, Any], *, terminal: bool, width: int = 80) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=width, color_system=None)
    real = render._console
    render._console = console
    try:
        render.show(view, doc)
    finally:
        render._console = real
    return out.getvalue()


@pytest.mark.parametrize(
    "view", ["report_tiers", "report_segments", "report_rules", "report_liability", "tiers"]
)
def test_a_chart_on_a_terminal_and_none_in_a_pipe(
    docs: dict[str, dict[str, Any]], view: str
) -> None:
    on_terminal = drawn(view, docs[view], terminal=True)
    assert BAR in on_terminal
    assert all(len(line) <= 80 for line in on_terminal.splitlines()), on_terminal
    assert BAR not in drawn(view, docs[view], terminal=False)


def test_bars_share_one_scale_and_a_small_figure_still_shows(
    docs: dict[str, dict[str, Any]],
) -> None:
    rules = docs["report_rules"]["rules"]
    top = max(r["points"] for r in rules)
    lines = drawn("report_rules", docs["report_rules"], terminal=True).splitlines()
    for rule in rules:
        (line,) = [x for x in lines if x.startswith(rule["rule"] + " ")]  # the chart's
        cells = line.count(BAR)
        if rule["points"] == 0:
            assert cells == 0
        else:
            assert cells == max(1, rule["points"] * render.CHART_WIDTH // top), line


def test_a_wide_report_fits_80_columns_by_leaving_columns_out_never_by_cutting_figures(
    example_shop: Shop,
) -> None:
    shop = example_shop
    shop.clock("2026-11-20")
    shop.ok("enroll", "ann", "--name", "Ann Katherine Longname-Smythe", "--at", "2026-06-01")
    shop.ok("earn", "ann", "--amount", "123456.78", "--category", "shoes", "--at", "2026-06-02")
    doc = shop.ok("report", "customers")
    narrow = drawn("report_customers", doc, terminal=True)
    assert all(len(line) <= 80 for line in narrow.splitlines()), narrow
    assert "123,456.78 USD" in narrow and "247,087" in narrow  # whole, on one line
    assert "…" not in narrow
    assert "Left out to fit 80 columns: First purchase" in narrow
    wide = drawn("report_customers", doc, terminal=True, width=200)
    assert "Left out" not in wide and "First purchase" in wide, wide


def test_figures_have_thousands_separators_in_every_view(example_shop: Shop) -> None:
    shop = example_shop
    shop.clock("2026-11-20")
    shop.ok("enroll", "ann", "--at", "2026-06-01")
    shop.ok("earn", "ann", "--amount", "21276.89", "--at", "2026-06-02")
    shop.ok("adjust", "ann", "12345", "--reason", "opening balance", "--at", "2026-06-03")
    balance = shop.ok("balance", "ann")["balance"]
    assert balance > 9999
    table = drawn("balance", shop.ok("balance", "ann"), terminal=False, width=120)
    assert f"{balance:,}" in table
    tier = drawn("tier", shop.ok("tier", "ann"), terminal=False, width=120)
    assert "Qualifying: 21,276.89 spent" in tier
    history = drawn("history", shop.ok("history", "ann"), terminal=False, width=120)
    assert "+12,345" in history


def test_a_shop_s_locale_writes_its_money_and_figures(shop: Shop) -> None:
    shop.clock("2026-11-20")
    base = "earn:\n  - {id: base, on: purchase, points_per_unit: 1}\n"
    shop.write_rules(
        "program: {name: L, currency: GBP, timezone: Europe/London, locale: en_GB}\n" + base
    )
    shop.ok("enroll", "C1", "--at", "2026-11-01")
    shop.ok("earn", "C1", "--amount", "12345.67", "--at", "2026-11-02")
    summary = shop.run("report", "--no-json", env={"COLUMNS": "100"}).stdout
    assert "£12,345.67" in summary and "12,345 " in summary
    shop.write_rules(
        "program: {name: L, currency: EUR, timezone: Europe/London, locale: de-DE}\n" + base
    )
    assert shop.ok("rules", "check")["locale"] == "de_DE"  # as babel spells it
    summary = shop.run("report", "--no-json", env={"COLUMNS": "100"}).stdout
    assert "12.345,67\u00a0€" in summary and "12.345 " in summary  # a space that never breaks
    assert "USD" not in summary


def test_a_locale_must_look_like_one(shop: Shop) -> None:
    shop.write_rules("program: {name: L, timezone: Europe/London, locale: english}\n")
    message = shop.fails(78, "rules", "check")
    assert message == (
        f"error: {shop.rules}:1:53: locale must be a language code, optionally with a "
        "country, like en_GB or de_DE, got 'english'"
    )
    shop.write_rules("program: {name: L, timezone: Europe/London, locale: xx_YY}\n")
    table = shop.run("rules", "check", "--no-json").stdout
    assert "locale xx_YY is not one babel knows: figures are shown in plain form" in table
