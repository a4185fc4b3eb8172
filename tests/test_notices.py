"""`loyalty notices`: who should be told what and why, each notice under a stable
key, and `--mark-given` so a cron job never gives one twice."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_cli.account import Account, Profile
from loyalty_cli.notices import Facts, TierMove, Window, decide, next_birthday
from loyalty_cli.rules import parse_rules

from .conftest import Shop

RULES = """\
program: {name: Test Shop, currency: GBP, timezone: Europe/London}
points: {expire_after_months: 1, expire_at: same_day}
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
rewards:
  - {id: coffee, name: Free coffee, cost: 100}
  - {id: bag, name: Tote bag, cost: 500}
"""


@pytest.fixture
def shop_(shop: Shop) -> Shop:
    shop.write_rules(RULES)
    shop.clock("2026-12-20")
    shop.ok("enroll", "ann", "--birthday", "1990-12-24", "--at", "2025-06-01")
    shop.ok("earn", "ann", "--amount", "150", "--at", "2025-06-02")  # gold in 2025, kept to 2026
    shop.ok("enroll", "bob", "--at", "2026-12-01")
    shop.ok("earn", "bob", "--amount", "120", "--at", "2026-12-10")  # gold now; lot gone 01-11
    return shop


def keys(doc: dict[str, object]) -> list[str]:
    rows = doc["rows"]
    assert isinstance(rows, list)
    return [row["key"] for row in rows]


def test_each_notice_says_who_what_and_why_under_a_stable_key(shop_: Shop) -> None:
    doc = shop_.ok("notices", "--within", "30")
    assert keys(doc) == [
        "tier_ending/ann/gold/2026-12-31",
        "birthday/ann/2026-12-24",
        "at_risk/ann/2025-06-02",  # as `report segments` scores her
        "points_expiring/bob/2027-01-02",
        "points_expiring/bob/2027-01-11",
        "tier_reached/bob/6",
        "reward_affordable/bob/coffee/0",
    ]
    rows = {row["key"]: row for row in doc["rows"]}
    assert rows["points_expiring/bob/2027-01-11"]["points"] == 120
    assert rows["points_expiring/bob/2027-01-11"]["message"] == (
        "120 points expire at the end of 2027-01-10"
    )
    assert rows["tier_ending/ann/gold/2026-12-31"]["message"] == (
        "Gold is held until 2026-12-31; 100.00 more spent keeps it"
    )
    assert rows["tier_reached/bob/6"]["message"] == "reached Gold on 2026-12-10"
    assert all(row["given_at"] is None for row in doc["rows"])
    # the same question asked again gives the same keys
    assert keys(shop_.ok("notices", "--within", "30")) == keys(doc)
    only = shop_.ok("notices", "--within", "30", "--kind", "birthday", "--kind", "tier_reached")
    assert keys(only) == ["birthday/ann/2026-12-24", "tier_reached/bob/6"]


@pytest.mark.sqlite_only  # SQLite's append-only trigger on the file
def test_mark_given_gives_each_notice_once(shop_: Shop) -> None:
    first = shop_.ok("notices", "--mark-given")
    assert first["marked_given"] == len(first["rows"]) > 0
    assert shop_.ok("notices", "--mark-given")["rows"] == []
    assert shop_.ok("notices", "--pending")["rows"] == []
    shown = shop_.ok("notices")["rows"]
    assert [r["key"] for r in shown] == keys(first)
    assert all(r["given_at"] == "2026-12-20T12:00:00Z" for r in shown)
    # something new happens: only it is pending
    shop_.ok("redeem", "bob", "--reward", "coffee")
    shop_.ok("earn", "bob", "--amount", "100")
    assert keys(shop_.ok("notices", "--pending", "--kind", "reward_affordable")) == [
        "reward_affordable/bob/coffee/1"
    ]
    with (
        closing(sqlite3.connect(shop_.db)) as conn,
        pytest.raises(sqlite3.IntegrityError, match="append-only"),
    ):
        conn.execute("DELETE FROM notices_given")
    assert shop_.ok("verify")["ok"]


def test_days_go_by_and_nothing_is_given_twice(shop_: Shop) -> None:
    seen: list[str] = []
    for day in ("2026-12-20", "2026-12-24", "2027-01-01", "2027-01-05", "2027-01-05"):
        shop_.clock(day)
        seen += keys(shop_.ok("notices", "--mark-given", "--within", "10"))
    assert len(seen) == len(set(seen))
    assert "points_expiring/bob/2027-01-11" in seen and "birthday/ann/2026-12-24" in seen


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--within", "0"], "--within 0 must be from 1 to 366 days"),
        (["--birthday-within", "400"], "--birthday-within 400 must be from 0 to 366 days"),
        (["--lookback", "-1"], "--lookback -1 must be from 1 to 366 days"),
        (["--kind", "birthdays"], "--kind 'birthdays' is not a notice (did you mean 'birthday'?)"),
    ],
)
def test_bad_windows_are_refused(shop_: Shop, args: list[str], message: str) -> None:
    assert message in shop_.fails(2, "notices", *args)
    with shop_.store() as store:
        assert store.conn.execute("SELECT COUNT(*) FROM notices_given").fetchone()[0] == 0


def test_tier_lost_and_at_risk_are_decided_from_the_facts() -> None:
    ruleset = parse_rules(RULES, "rules.yaml")
    account = Account(Profile("C1", datetime(2026, 1, 1, tzinfo=UTC)))
    facts = Facts(
        moves={"C1": [TierMove(7, "C1", "bronze", "gold", date(2027, 1, 1))]},
        at_risk={"C1": date(2026, 8, 1)},
    )
    notices = decide(account, ruleset, date(2027, 1, 3), Window(), facts)
    assert [(n.key, n.message) for n in notices] == [
        ("tier_lost/C1/7", "moved down to Bronze on 2027-01-01"),
        ("at_risk/C1/2026-08-01", "at risk: last purchase on 2026-08-01"),
    ]


def test_a_leap_day_birthday_comes_on_the_28th_in_other_years() -> None:
    assert next_birthday("2000-02-29", date(2027, 2, 1)) == date(2027, 2, 28)
    assert next_birthday("2000-02-29", date(2028, 2, 1)) == date(2028, 2, 29)
    assert next_birthday("1990-12-24", date(2026, 12, 25)) == date(2027, 12, 24)
    assert next_birthday("1990-12-24", date(2026, 12, 24)) == date(2026, 12, 24)


@settings(max_examples=80, deadline=None)
@given(st.dates(date(1900, 1, 1), date(2100, 1, 1)), st.dates(date(2000, 1, 1), date(2090, 1, 1)))
def test_the_next_birthday_is_within_a_year_and_on_the_birthday(born: date, today: date) -> None:
    when = next_birthday(born.isoformat(), today)
    assert when is not None and today <= when and (when - today).days <= 366
    assert when.month == born.month
    assert when.day == born.day or (born.month, born.day, when.day) == (2, 29, 28)


@pytest.mark.sqlite_only  # processes on one ledger file
def test_two_runs_at_once_never_give_a_notice_twice(shop_: Shop) -> None:
    """Real processes, started together: each notice is in one run's answer only."""
    import json
    import os
    import subprocess

    from .conftest import loyalty_command

    env = {**os.environ, "LOYALTY_DB": str(shop_.db), "LOYALTY_RULES": str(shop_.rules)}
    runs = [
        subprocess.Popen(
            [*loyalty_command(), "notices", "--mark-given", "--json", "--within", "366"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    given: list[str] = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        given += [row["key"] for row in json.loads(out)["rows"]]
    assert len(given) == len(set(given)) > 0
    shop_.clock(None)  # the processes ran on the real clock
    assert shop_.ok("notices", "--pending", "--within", "366")["rows"] == []
