"""The catalogue of bad input: each gets one clear `error:` line on stderr, a
documented exit code, nothing on stdout, and leaves the ledger unchanged."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from loyalty_cli.store.schema import SCHEMA_VERSION

from .conftest import Shop


def snapshot(db: Path) -> tuple[object, ...]:
    """Every row of every ledger table: equal snapshots mean nothing was written."""
    if not db.exists():
        return ("no ledger",)
    conn = sqlite3.connect(db)
    try:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return tuple(tuple(conn.execute(f"SELECT * FROM {table} ORDER BY 1")) for table in tables)
    finally:
        conn.close()


def use_db(path: str) -> Callable[[Shop], list[str]]:
    return lambda shop: ["--db", path]


CASES: list[tuple[str, list[str], int, str]] = [
    # (name, args, exit code, message fragment)
    ("unknown customer", ["earn", "C9", "--amount", "10"], 1, "unknown customer 'C9'"),
    ("unknown customer on redeem", ["redeem", "C9", "--points", "5"], 1, "unknown customer 'C9'"),
    ("unknown customer on balance", ["balance", "C9"], 1, "unknown customer 'C9'"),
    ("unknown customer on history", ["history", "C9"], 1, "unknown customer 'C9'"),
    ("negative amount", ["earn", "C1", "--amount", "-5"], 2, "must be greater than zero"),
    ("zero amount", ["earn", "C1", "--amount", "0"], 2, "must be greater than zero"),
    ("non-numeric amount", ["earn", "C1", "--amount", "abc"], 2, "'abc' is not a number"),
    ("thousands separator", ["earn", "C1", "--amount", "1,234.50"], 2, "is not a number"),
    ("NaN amount", ["earn", "C1", "--amount", "NaN"], 2, "not a finite number"),
    ("Infinity amount", ["earn", "C1", "--amount", "Infinity"], 2, "not a finite number"),
    ("absurd amount", ["earn", "C1", "--amount", "1000000000.01"], 2, "larger than the maximum"),
    ("exponent amount", ["earn", "C1", "--amount", "1e3"], 2, "is not a number"),
    ("underscored amount", ["earn", "C1", "--amount", "1_000"], 2, "is not a number"),
    ("non-ASCII digits", ["earn", "C1", "--amount", "١٢"], 2, "is not a number"),
    ("year 1", ["earn", "C1", "--amount", "5", "--at", "0001-01-01"], 2, "out of range"),
    ("year 9999", ["earn", "C1", "--amount", "5", "--at", "9999-12-31T23:00"], 2, "out of range"),
    ("balance in year 9999", ["balance", "C1", "--at", "9999-12-31"], 2, "out of range"),
    ("dated in 2100", ["earn", "C1", "--amount", "5", "--at", "2100-01-01"], 2, "in the future"),
    (
        "a local time the clocks skipped",
        ["earn", "C1", "--amount", "5", "--at", "2026-03-29T01:30"],
        2,
        "clocks went forward",
    ),
    (
        "adjust beyond 64 bits",
        ["adjust", "C1", "9223372036854775807", "--reason", "x"],
        2,
        "beyond the limit of 1,000,000,000",
    ),
    ("redeem a trillion", ["redeem", "C1", "--points", "10" + "0" * 11], 2, "beyond the limit"),
    ("birthday in the future", ["enroll", "C2", "--birthday", "2999-01-01"], 2, "in the future"),
    ("birthday in year 1", ["enroll", "C2", "--birthday", "0001-01-01"], 2, "out of range"),
    ("id that is not UTF-8", ["enroll", "C\udcff"], 2, "not valid UTF-8"),
    ("txn too long", ["earn", "C1", "--amount", "5", "--txn", "x" * 201], 2, "longer than 200"),
    (
        "category with a newline",
        ["earn", "C1", "--amount", "5", "--category", "a\nb"],
        2,
        "control",
    ),
    ("report day out of range", ["report", "--as-of", "0999-01-01"], 2, "out of range"),
    ("clv horizon zero", ["report", "clv", "--horizon", "0"], 2, "must be more than 0"),
    ("clv horizon huge", ["report", "clv", "--horizon", "99999w"], 2, "at most 10 years"),
    ("clv negative rate", ["report", "clv", "--discount-rate", "-1"], 2, "from 0 to 1"),
    ("clv absurd rate", ["report", "clv", "--discount-rate", "1e9"], 2, "from 0 to 1"),
    ("clv top zero", ["report", "clv", "--top", "0"], 2, "--top"),
    (
        "clv calibration end after the as-of day",
        ["report", "clv", "--calibration-end", "2999-01-01"],
        2,
        "must be before the as-of day",
    ),
    ("fractional cents", ["earn", "C1", "--amount", "10.123"], 2, "more than two decimal"),
    ("malformed --at", ["earn", "C1", "--amount", "5", "--at", "yesterday"], 2, "not an ISO 8601"),
    ("impossible date", ["earn", "C1", "--amount", "5", "--at", "2026-02-30"], 2, "ISO 8601"),
    ("both amount and event", ["earn", "C1", "--amount", "5", "--event", "review"], 2, "either"),
    ("neither amount nor event", ["earn", "C1"], 2, "give either --amount"),
    ("unknown event", ["earn", "C1", "--event", "reviw"], 2, "did you mean 'review'"),
    ("enroll typed as event", ["earn", "C1", "--event", "enroll"], 2, "loyalty enroll"),
    ("redeem zero points", ["redeem", "C1", "--points", "0"], 2, "positive whole number"),
    ("redeem negative points", ["redeem", "C1", "--points", "-5"], 2, "positive whole number"),
    ("redeem both", ["redeem", "C1", "--points", "5", "--reward", "coffee"], 2, "either"),
    ("unknown reward", ["redeem", "C1", "--reward", "cofee"], 1, "did you mean 'coffee'"),
    (
        "insufficient points",
        ["redeem", "C1", "--points", "500"],
        1,
        "has 100, needs 500 (short by 400)",
    ),
    ("duplicate enrollment", ["enroll", "C1"], 1, "already enrolled"),
    ("self referral", ["enroll", "C2", "--referred-by", "C2"], 1, "cannot refer themselves"),
    ("unknown referrer", ["enroll", "C2", "--referred-by", "C7"], 1, "unknown referrer 'C7'"),
    ("bad birthday", ["enroll", "C2", "--birthday", "17/04/1990"], 2, "not a date"),
    ("empty customer id", ["earn", "", "--amount", "5"], 2, "empty"),
    ("customer id with spaces around", ["enroll", " C2 "], 2, "leading/trailing spaces"),
    ("control character in id", ["enroll", "C\x072"], 2, "control characters"),
    ("adjust zero", ["adjust", "C1", "0", "--reason", "x"], 2, "must not be zero"),
    (
        "adjust with blank reason",
        ["adjust", "C1", "5", "--reason", " "],
        2,
        "--reason must say why",
    ),
    ("adjust below zero", ["adjust", "C1", "-101", "--reason", "typo"], 1, "insufficient points"),
    (
        "txn conflict",
        ["earn", "C1", "--amount", "99", "--txn", "R1"],
        1,
        "txn 'R1' was already used",
    ),
    (
        "txn reused across kinds",
        ["redeem", "C1", "--points", "1", "--txn", "R1"],
        1,
        "already used",
    ),
    (
        "missing rules file",
        ["earn", "C1", "--amount", "5", "--rules", "nope.yaml"],
        66,
        "not found",
    ),
    ("rules path is a directory", ["earn", "C1", "--amount", "5", "--rules", "."], 66, "directory"),
    (
        "db in a missing directory",
        ["enroll", "C2", "--db", "no/such/dir/l.db"],
        66,
        "does not exist",
    ),
    ("no ledger yet for a read", ["balance", "C1", "--db", "fresh.db"], 66, "no ledger at"),
]


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("args", "code", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_one_clear_line_and_changes_nothing(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int, fragment: str
) -> None:
    monkeypatch.chdir(shop.dir)
    shop.ok("enroll", "C1")
    shop.ok("earn", "C1", "--amount", "10", "--txn", "R1")
    shop.ok("redeem", "C1", "--points", "10")
    before = snapshot(shop.db)
    message = shop.fails(code, *args)
    assert fragment in message
    assert len(message.splitlines()) == 1
    assert snapshot(shop.db) == before


def test_invalid_rules_file_exits_78_listing_every_problem(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    before = snapshot(shop.db)
    shop.write_rules(
        """\
        program: {name: Shop, timezone: Europe/London}
        earn:
          - {id: base, on: purchase, points_per_unit: 1, multiplyer: 2}
          - {id: bad, on: review, points: -5}
        """
    )
    message = shop.fails(78, "earn", "C1", "--amount", "5")
    assert message.splitlines() == [
        f"error: {shop.rules}:3:50: unknown key 'multiplyer' in an earn rule "
        "(did you mean 'multiply'?)",
        f"error: {shop.rules}:4:35: points must not be negative, got -5",
    ]
    assert snapshot(shop.db) == before


def test_rules_file_that_is_not_utf8_exits_78(shop: Shop) -> None:
    shop.rules.write_bytes(b"program: {name: \xff\xfe}\n")
    message = shop.fails(78, "rules", "check")
    assert "not valid UTF-8" in message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"this is a text file, not a database" * 10, "not a loyalty ledger"),
        (None, "not a loyalty ledger (an SQLite file with other contents)"),
        ("newer", f"newer than this loyalty knows ({SCHEMA_VERSION})"),
    ],
    ids=["text file", "someone else's sqlite database", "newer schema"],
)
def test_a_file_that_is_not_our_ledger_is_refused_and_left_untouched(
    shop: Shop, content: bytes | str | None, fragment: str
) -> None:
    path = shop.dir / "other.db"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is None:
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.commit()
        conn.close()
    else:
        shop.ok("enroll", "C1", "--db", str(path))
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.close()
    before = path.read_bytes()
    for args in (["enroll", "C2"], ["balance", "C1"], ["verify"]):
        message = shop.fails(66, *args, "--db", str(path))
        assert fragment in message
    assert path.read_bytes() == before


def test_database_that_cannot_be_written_is_refused(shop: Shop) -> None:
    # /proc exists but no file can be created in it, even by root, where
    # file permissions would not stop us.
    message = shop.fails(66, "enroll", "C1", "--db", "/proc/loyalty-test.db")
    assert "/proc/loyalty-test.db" in message


def test_database_path_that_is_a_directory_is_refused(shop: Shop) -> None:
    message = shop.fails(66, "balance", "C1", "--db", str(shop.dir))
    assert "is a directory" in message


def test_typer_usage_errors_keep_exit_2(shop: Shop) -> None:
    result = shop.run("adjust", "C1", "5")
    assert result.exit_code == 2
    assert "Missing option '--reason'" in result.stderr
