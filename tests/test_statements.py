"""`loyalty statement`: for the customer, in the shop's time and words, as text,
printable HTML (checked by parsing it) and JSON; `--all` one per customer."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from loyalty_cli.statements import file_name

from .conftest import Shop

RULES = """\
program: {name: Corner Café, currency: GBP, timezone: Europe/London, locale: en_GB}
points: {expire_after_months: 12, expire_at: end_of_month}
tiers:
  metric: spend
  window: calendar_year
  downgrade: keep_next_window
  levels:
    - {id: bronze, name: Bronze, threshold: 0}
    - {id: gold, name: Gold, threshold: 100}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: welcome, on: enroll, points: 10}
  - {id: review, on: review, points: 5, description: a review}
rewards:
  - {id: coffee, name: Free coffee, cost: 20}
"""


@pytest.fixture
def cafe(shop: Shop) -> Shop:
    shop.write_rules(RULES)
    shop.clock("2026-07-20")
    shop.ok("enroll", "ann", "--name", "Ann <b>&</b> Lee", "--at", "2026-06-10T09:00")
    shop.ok(
        "earn", "ann", "--amount", "42.50", "--at", "2026-07-01T13:00:00+00:00"
    )  # 14:00 in London
    shop.ok("earn", "ann", "--event", "review", "--at", "2026-07-02T08:00:00+00:00")
    shop.ok("redeem", "ann", "--reward", "coffee", "--at", "2026-07-03T10:30:00+00:00")
    shop.ok("enroll", "b/o b", "--at", "2026-07-05T10:00")
    return shop


def run(shop: Shop, *args: str) -> str:
    result = shop.run("statement", *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_text_statement_speaks_plainly_in_shop_time(cafe: Shop) -> None:
    text = run(cafe, "ann")
    assert text.splitlines()[:4] == [
        "Corner Café: points statement for Ann <b>&</b> Lee (ann)",
        "As of 20 July 2026",
        "",
        "Balance: 37 points",
    ]
    # the coffee took the welcome points first (they expire first)
    assert "37 points expire at the end of 31 July 2027" in text and "30 June" not in text
    assert "Your tier: Bronze" in text and "To reach Gold: spend £57.50 more" in text
    assert "1 Jul 2026, 14:00  Purchase of £42.50  +42" in text
    assert "Points for a review  +5" in text and "Spent on Free coffee  -20" in text
    assert "rule" not in text and "floor" not in text  # no rules jargon


class Page(HTMLParser):
    """The text of each element with a class, and of each table row's cells."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []
        self.by_class: dict[str, str] = {}
        self.rows: list[list[str]] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("meta", "br", "link", "img"):  # void: no end tag
            return
        self.stack.append(dict(attrs).get("class"))
        if tag == "tr":
            self.rows.append([])
        if tag == "td":
            self.rows[-1].append("")
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self.stack.pop()
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        for name in self.stack:
            if name:
                self.by_class[name] = self.by_class.get(name, "") + data
        if self.rows and self.stack and self.stack[-1] in (None, "points") and self.rows[-1]:
            self.rows[-1][-1] += data


def test_the_html_statement_parses_and_escapes_what_it_shows(cafe: Shop) -> None:
    page_text = run(cafe, "ann", "--format", "html")
    assert page_text.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page_text
    assert "<b>&</b>" not in page_text  # the name is text, not markup
    page = Page()
    page.feed(page_text)
    page.close()
    assert page.stack == []  # every element closed
    assert page.title == "Corner Café: points statement for Ann <b>&</b> Lee (ann)"
    assert page.by_class["balance"] == "Balance: 37 points"
    assert page.by_class["expiring"] == "37 points expire at the end of 31 July 2027"
    assert page.rows[:2] == [
        ["3 Jul 2026, 11:30", "Spent on Free coffee", "-20"],
        ["2 Jul 2026, 09:00", "Points for a review", "+5"],
    ]
    assert ["1 Jul 2026, 14:00", "Purchase of £42.50", "+42"] in page.rows


def test_the_json_statement(cafe: Shop) -> None:
    doc = json.loads(run(cafe, "ann", "--json"))
    assert (doc["balance"], doc["available"], doc["pending"]) == (37, 37, 0)
    assert doc["expiring"] == [{"date": "2027-08-01", "last_day": "2027-07-31", "points": 37}]
    assert doc["tier_status"]["how_to_reach_next"] == "spend £57.50 more"
    purchase = next(a for a in doc["recent_activity"] if a["kind"] == "earn" and a["points"] == 42)
    assert purchase["occurred_at"] == "2026-07-01T13:00:00Z"
    assert purchase["local_time"] == "2026-07-01T14:00+01:00"
    assert (
        len(json.loads(run(cafe, "ann", "--format", "json", "--recent", "1"))["recent_activity"])
        == 1
    )


def test_recent_activity_is_in_the_order_it_happened(cafe: Shop) -> None:
    """A sale keyed in after the redemption but dated before it takes its place in time."""
    cafe.ok("earn", "ann", "--amount", "5.00", "--at", "2026-07-02T12:00:00+00:00")
    doc = json.loads(run(cafe, "ann", "--json"))
    times = [a["occurred_at"] for a in doc["recent_activity"]]
    assert times == sorted(times, reverse=True)
    assert times[:3] == ["2026-07-03T10:30:00Z", "2026-07-02T12:00:00Z", "2026-07-02T08:00:00Z"]


def test_all_writes_one_per_customer_and_never_over_the_ledger(cafe: Shop) -> None:
    out = cafe.dir / "statements"
    doc = cafe.ok("statement", "--all", "--out", str(out), "--format", "html")
    assert doc["customers"] == 2
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([file_name("ann", "html"), file_name("b/o b", "html")])
    assert file_name("b/o b", "html").startswith("b_o_b-") and "/" not in file_name("b/o b", "html")
    again = cafe.ok("statement", "--all", "--out", str(out), "--tier", "bronze")
    assert again["customers"] == 2 and len(list(out.iterdir())) == 4  # .txt beside .html
    assert cafe.ok("verify")["ok"]


@pytest.mark.sqlite_only  # the ledger is a file only there
def test_a_statement_is_never_written_over_the_ledger(shop: Shop) -> None:
    shop.db = shop.dir / "ann.txt"  # a ledger with the name ann's statement would get
    shop.write_rules(RULES)
    shop.clock("2026-07-20")
    shop.ok("enroll", "ann", "--at", "2026-06-10T09:00")
    before = shop.db.read_bytes()
    error = shop.fails(2, "statement", "--all", "--out", str(shop.dir))
    assert f"is {shop.db}, which this command reads; name a new file" in error
    assert shop.db.read_bytes() == before
    assert shop.ok("verify")["ok"]
    (shop.dir / "afile").write_text("x")
    assert "is a file; name a folder" in shop.fails(
        2, "statement", "--all", "--out", str(shop.dir / "afile")
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ann", "--format", "pdf"], "--format 'pdf' is not one of text, html, json"),
        (["ann", "--recent", "0"], "--recent 0 must be from 1 to 200"),
        (["ann", "--all", "--out", "x"], "give a CUSTOMER_ID, or --all with --out"),
        ([], "give a CUSTOMER_ID, or --all with --out"),
        (["ann", "--out", "x"], "--out and the selection options (--segment, --tier, "),
        (["ann", "--badge", "regular"], "--inactive-since, --clv-band, --badge) go with --all"),
        (["--all"], "--all needs --out FOLDER"),
    ],
)
def test_bad_requests_are_refused(cafe: Shop, args: list[str], message: str) -> None:
    assert message in cafe.fails(2, "statement", *args)


def test_an_unknown_customer_is_refused(cafe: Shop) -> None:
    assert "unknown customer 'zed'" in cafe.fails(1, "statement", "zed")
