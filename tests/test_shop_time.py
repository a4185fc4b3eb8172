"""Shop-local time wherever a person reads a time, and one spelling (`--as-of`) for "as
the ledger stood then"."""

from __future__ import annotations

import json
from importlib import metadata

import pytest

from .conftest import Shop

NEW_YORK = """\
program: {name: NY, currency: USD, timezone: America/New_York}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: welcome, on: enroll, points: 100}
"""


def test_history_shows_shop_time_with_its_offset(shop: Shop) -> None:
    shop.write_rules(NEW_YORK)
    shop.ok("enroll", "C1", "--at", "2026-11-19T09:00")  # 14:00 UTC
    doc = shop.ok("history", "C1")
    assert doc["timezone"] == "America/New_York"
    assert doc["entries"][0]["occurred_at"] == "2026-11-19T14:00:00Z"  # JSON: UTC
    table = shop.run("history", "C1", "--no-json", env={"COLUMNS": "120"})
    assert table.exit_code == 0, table.output
    assert "2026-11-19 09:00 -05:00" in table.stdout
    assert "14:00" not in table.stdout


def test_a_reused_txn_is_refused_naming_the_original_time_in_shop_time(shop: Shop) -> None:
    shop.write_rules(NEW_YORK)
    shop.ok("enroll", "C1", "--at", "2026-07-01T08:00")
    shop.ok("earn", "C1", "--amount", "5", "--txn", "R1", "--at", "2026-07-01T10:30")
    message = shop.fails(1, "earn", "C1", "--amount", "6", "--txn", "R1")
    assert "at 2026-07-01T10:30:00-04:00)" in message  # summer: EDT


@pytest.mark.sqlite_only
def test_as_of_and_at_are_one_option_on_every_reading_command(shop: Shop) -> None:
    shop.ok("enroll", "C1", "--at", "2026-11-01T10:00")
    shop.ok("earn", "C1", "--amount", "40", "--at", "2026-11-20T10:00")
    for command in (["balance", "C1"], ["history", "C1"], ["rewards", "C1"]):
        spelt = [shop.ok(*command, option, "2026-11-10") for option in ("--as-of", "--at")]
        assert spelt[0] == spelt[1], command
    assert shop.ok("balance", "C1", "--as-of", "2026-11-10")["balance"] == 100
    shop.write_rules(
        shop.rules.read_text()
        + "tiers:\n  metric: spend\n  window: lifetime\n  levels:\n"
        + "    - {id: bronze, name: Bronze, threshold: 0}\n"
        + "    - {id: silver, name: Silver, threshold: 30}\n"
    )
    assert shop.ok("tier", "C1", "--as-of", "2026-11-10")["tier"] == "bronze"
    assert shop.ok("tier", "C1", "--at", "2026-11-10")["tier"] == "bronze"
    assert shop.ok("tier", "C1", "--as-of", "2026-11-25")["tier"] == "silver"
    as_of = shop.ok("report", "--as-of", "2026-11-10")
    assert as_of == shop.ok("report", "--at", "2026-11-10")
    assert as_of["points_outstanding"] == 100


def test_examples_in_messages_fit_the_option(shop: Shop) -> None:
    message = shop.fails(2, "report", "--as-of", "2026-11-10T10:00")
    assert message.startswith(
        "error: --as-of '2026-11-10T10:00' is not a date (a date only, without a time) "
        "(write it like 2026-11-30)"
    )
    assert "1990" in shop.fails(2, "enroll", "C1", "--birthday", "17/04/1990")
    shop.ok("enroll", "C1")
    message = shop.fails(2, "balance", "C1", "--at", "yesterday")
    assert message.startswith("error: --as-of 'yesterday' is not an ISO 8601 time")


def test_tzdata_is_a_dependency() -> None:
    requires = metadata.requires("loyalty-cli") or []
    assert any(json.dumps(r).strip('"').startswith("tzdata") for r in requires), requires
