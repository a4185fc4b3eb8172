"""`customer list`: a selection of customers as CSV a mail tool imports, only those
who consented on the channel unless the message is transactional."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_cli.audience import HEADER, split_name
from loyalty_cli.exports import neutralise

from .conftest import Shop

TIERED = """\
program: {name: Test Shop, currency: GBP, timezone: Europe/London}
points: {expire_after_months: 2, expire_at: same_day}
tiers:
  metric: spend
  window: lifetime
  downgrade: reevaluate
  levels:
    - {id: bronze, name: Bronze, threshold: 0}
    - {id: gold, name: Gold, threshold: 100}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: welcome, on: enroll, points: 10}
"""


@pytest.fixture
def people(shop: Shop) -> Shop:
    shop.write_rules(TIERED)
    shop.clock("2026-06-01")
    enroll = ("enroll", "--consent-source", "web form", "--at")
    shop.ok(*enroll[:1], "ann", "--name", "Ann Marie Smith", "--email", "ann@example.com",
            "--phone", "+44 7700 900001", "--consent", "email", "--consent", "sms",
            *enroll[1:], "2026-01-10")  # fmt: skip
    shop.ok("enroll", "bob", "--name", "Bob", "--email", "bob@example.com", "--at", "2026-01-10")
    shop.ok(
        "enroll", "cat", "--name", "Cat Jones", "--consent", "email", *enroll[1:], "2026-01-10"
    )  # fmt: skip  (no address)
    shop.ok("enroll", "dan", "--name", "Dan", "--email", "dan@example.com",
            "--consent", "email", *enroll[1:], "2026-05-20")  # fmt: skip
    shop.ok("earn", "ann", "--amount", "150", "--at", "2026-05-25")  # gold; lot gone 07-25
    shop.ok("earn", "bob", "--amount", "20", "--at", "2026-02-01")  # last purchase in Feb
    return shop


def rows(shop: Shop, *args: str) -> list[dict[str, str]]:
    result = shop.run("customer", "list", "--csv", *args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == ",".join(HEADER)
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_only_customers_who_consented_on_the_channel_are_listed(people: Shop) -> None:
    listed = rows(people)
    assert [r["Customer ID"] for r in listed] == ["ann", "dan"]
    ann = listed[0]
    assert (ann["Email Address"], ann["First Name"], ann["Last Name"]) == (
        "ann@example.com",
        "Ann",
        "Marie Smith",
    )
    assert ann["Phone Number"] == "+44 7700 900001"  # not turned into '+44... for a mail tool
    assert (ann["Tier"], ann["Points Balance"], ann["Last Purchase"]) == (
        "gold",
        "150",
        "2026-05-25",
    )
    doc = people.ok("customer", "list")
    assert (doc["selected"], doc["no_contact"], doc["no_consent"], doc["customers"]) == (4, 1, 1, 2)


def test_transactional_lists_everyone_with_an_address(people: Shop) -> None:
    assert [r["Customer ID"] for r in rows(people, "--transactional")] == ["ann", "bob", "dan"]


def test_sms_needs_a_phone_and_consent_on_sms(people: Shop) -> None:
    assert [r["Customer ID"] for r in rows(people, "--channel", "sms")] == ["ann"]
    people.ok("update", "ann", "--withdraw", "sms")
    assert rows(people, "--channel", "sms") == []
    doc = people.ok("customer", "list", "--channel", "SMS", "--transactional")
    assert [r["customer_id"] for r in doc["rows"]] == ["ann"]


def test_selection_by_tier_expiry_and_inactivity(people: Shop) -> None:
    t = "--transactional"
    assert [r["Customer ID"] for r in rows(people, t, "--tier", "gold")] == ["ann"]
    # welcome points of January are gone by March; ann's May points are gone on 07-26
    expiring = rows(people, t, "--expiring-within", "60")
    assert [(r["Customer ID"], r["Points Expiring"], r["Expiry Date"]) for r in expiring] == [
        ("ann", "150", "2026-07-26"),
        ("dan", "10", "2026-07-21"),
    ]
    assert [r["Customer ID"] for r in rows(people, t, "--expiring-within", "50")] == ["dan"]
    inactive = rows(people, t, "--inactive-since", "2026-03-01")
    assert [r["Customer ID"] for r in inactive] == ["bob"]  # dan enrolled after


def test_selection_by_segment(people: Shop) -> None:
    segments = people.ok("report", "segments")["segments"]
    named = {s["segment"]: s["customers"] for s in segments if s["customers"]}
    for segment in named:
        listed = people.ok("customer", "list", "--transactional", "--segment", segment)
        report = people.ok("report", "segments", "--segment", segment)["rows"]
        with_email = {r["customer_id"] for r in report} - {"cat"}
        assert {r["customer_id"] for r in listed["rows"]} == with_email


def test_an_erased_customer_is_never_listed(people: Shop) -> None:
    people.ok("customer", "erase", "ann", "--reason", "request")
    assert [r["Customer ID"] for r in rows(people, "--transactional")] == ["bob", "dan"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--channel", "fax"], "--channel 'fax' is not a channel"),
        (["--tier", "gld"], "--tier 'gld' is not a tier (did you mean 'gold'?)"),
        (["--expiring-within", "0"], "--expiring-within 0 must be from 1 to 3660 days"),
        (["--segment", "champs"], "--segment 'champs' is not a segment"),
        (["--inactive-since", "2026-13-01"], "--inactive-since"),
        (["--csv", "--json"], "--csv and --json are two outputs"),
    ],
)
def test_bad_selections_are_refused(people: Shop, args: list[str], message: str) -> None:
    assert message in people.fails(2, "customer", "list", *args)


def test_tier_needs_rules_with_tiers(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    assert "have no tiers" in shop.fails(2, "customer", "list", "--tier", "gold")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=30))
def test_a_name_splits_into_first_and_last_without_losing_a_word(name: str) -> None:
    first, last = split_name(name)
    if not name.strip():
        assert (first, last) == (None, None)
        return
    assert first is not None and " " not in first
    assert " ".join(p for p in (first, last) if p).split() == name.split()


def test_phone_numbers_stay_as_typed_but_formulas_are_neutralised() -> None:
    assert neutralise("+44 20 7946 0958") == "+44 20 7946 0958"
    assert neutralise("+1 (555) 010-9999") == "+1 (555) 010-9999"
    assert neutralise("+SUM(A1)") == "'+SUM(A1)"
    assert neutralise("=HYPERLINK()") == "'=HYPERLINK()"
