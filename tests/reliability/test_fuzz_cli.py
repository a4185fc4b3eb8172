"""Fuzzing command-line arguments and the environment: customer ids, amounts,
quantities, times, points, limits, LOYALTY_BUSY_TIMEOUT, LOYALTY_DB, odd --db paths.

Every command exits 0 with one JSON document, or fails with a documented exit code
(1, 2, 65, 66, 75, 78), `error:` lines on stderr and nothing on stdout. A refused
write leaves every table of the ledger exactly as it was. After any accepted write
the ledger holds nothing outside the documented bounds, and `balance` and `history`
of its customers, every report and `nightly` still exit 0.

The bulk runs in-process (typer's CliRunner); a sample of hostile argv, including
bytes that are not UTF-8, and of hostile environments runs the real binary.
"""

from __future__ import annotations

import itertools
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ..conftest import EXAMPLE_RULES
from .conftest import (
    DOCUMENTED,
    REPORTS,
    Outcome,
    assert_contract,
    bounds_problems,
    customers,
    fuzz_settings,
    inprocess_env,
    loyalty_env,
    record,
    run_inprocess,
    run_process,
    snapshot,
)

SHOP = ZoneInfo("Europe/London")
_counter = itertools.count()


def shop_day(days: int = 0) -> str:
    return (datetime.now(UTC).astimezone(SHOP).date() + timedelta(days=days)).isoformat()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """C1 (a birthday, a purchase P1, 300 points to spend) and C2."""
    db = tmp_path_factory.mktemp("cli-template") / "ledger.db"
    env = inprocess_env(db, EXAMPLE_RULES)
    for args in (
        ["enroll", "C1", "--name", "Ada", "--birthday", "1990-04-17", "--at", shop_day(-40)],
        ["enroll", "C2", "--at", shop_day(-40)],
        [
            "earn",
            "C1",
            "--amount",
            "20.00",
            "--category",
            "shoes",
            "--txn",
            "P1",
            "--at",
            f"{shop_day(-30)}T12:00",
        ],
        ["adjust", "C1", "300", "--reason", "float", "--txn", "A1"],
    ):
        assert_contract(run_inprocess([*args, "--json"], env), {0})
    return db


def attempt(
    template: Path,
    folder: Path,
    args: list[str] | list[str | bytes],
    *,
    real: bool = False,
    env: dict[str, str] | None = None,
    allowed: frozenset[int] | set[int] = DOCUMENTED,
    section: str = "fuzz: CLI arguments",
    allow_usage: bool = True,
    allow_raw_control: bool = False,
) -> Outcome:
    """Run one command on a fresh copy of the template and hold it to the contract."""
    db = folder / f"ledger-{next(_counter)}.db"
    shutil.copy(template, db)
    before = snapshot(db)
    if real:
        outcome = run_process(
            args, loyalty_env(folder, db, EXAMPLE_RULES, **(env or {})), timeout=30
        )
    else:
        outcome = run_inprocess(args, inprocess_env(db, EXAMPLE_RULES, **(env or {})))  # type: ignore[arg-type]
    record(section, cases=1, accepted=int(outcome.code == 0))
    assert_contract(outcome, allowed, allow_usage=allow_usage, allow_raw_control=allow_raw_control)
    after = snapshot(db)
    if outcome.code != 0:
        assert after == before, f"a refused command changed the ledger\n{outcome.brief()}"
    elif after != before:
        still_works(db, folder, outcome, real=real)
    return outcome


def still_works(db: Path, folder: Path, cause: Outcome, *, real: bool) -> None:
    """After an accepted write: in bounds, and the everyday commands still run."""
    problems = bounds_problems(db)
    assert not problems, f"accepted {cause.args!r}, and now out of bounds:\n" + "\n".join(problems)
    commands = [["nightly", "--json"], *[["report", name, "--json"] for name in REPORTS]]
    for customer in customers(db)[:5]:
        commands += [["balance", "--json", "--", customer], ["history", "--json", "--", customer]]
    for args in commands:
        if real:
            outcome = run_process(args, loyalty_env(folder, db, EXAMPLE_RULES), timeout=30)
        else:
            outcome = run_inprocess(args, inprocess_env(db, EXAMPLE_RULES))
        problems_text = f"after the accepted write {cause.args!r}:"
        try:
            assert_contract(outcome, {0})
        except AssertionError as error:
            raise AssertionError(f"{problems_text}\n{error}") from None


# --- strategies ------------------------------------------------------------------------

HOSTILE_IDS = [
    "",
    " ",
    "-1",
    "-",
    "--",
    "C ",
    " C",
    "C\x07",
    "C\n",
    "C\x00",
    "C\x7f",
    "a" * 200,
    "a" * 201,
    "a" * 10_000,
    "=cmd|' /C calc'!A0",
    "@SUM(1)",
    "+1",
    "\u202eevil",
    "\ufeffC",
    "💳",
    "C\udcff",
    "\udc80",
    "NULL",
    "'; DROP TABLE customers;--",
    "%s%n",
    "../../etc/passwd",
    "C1",
    "c1",
    "Ｃ１",
]
IDS = st.one_of(st.sampled_from(HOSTILE_IDS), st.text(max_size=12))
TEXT = st.one_of(st.sampled_from(["", " ", "x" * 1001, "=1+1", "\x00", "é"]), st.text(max_size=12))


@st.composite
def id_commands(draw: st.DrawFn) -> list[str]:
    ident = draw(IDS)
    return draw(
        st.sampled_from(
            [
                ["enroll", "--json", "--", ident],
                [
                    "enroll",
                    "--name",
                    draw(TEXT),
                    "--email",
                    draw(TEXT),
                    "--phone",
                    draw(TEXT),
                    "--json",
                    "--",
                    ident,
                ],
                ["enroll", "--referred-by", ident, "--json", "--", "NEW"],
                ["earn", "--amount", "5.00", "--json", "--", ident],
                ["earn", "C1", "--amount", "5.00", "--txn", ident, "--json"],
                [
                    "earn",
                    "C1",
                    "--amount",
                    "5.00",
                    "--category",
                    ident,
                    "--sku",
                    draw(TEXT),
                    "--json",
                ],
                ["redeem", "--points", "1", "--json", "--", ident],
                ["redeem", "C1", "--reward", ident, "--json"],
                ["adjust", "--reason", draw(TEXT), "--json", "--", ident, "5"],
                ["update", "--name", draw(TEXT), "--json", "--", ident],
                ["refund", "--json", "--", ident],
                ["balance", "--json", "--", ident],
                ["history", "--json", "--", ident],
                ["tier", "--json", "--", ident],
                ["rewards", "--json", "--", ident],
                ["report", ident, "--json"],
                ["report", "segments", "--segment", ident, "--json"],
            ]
        )
    )


AMOUNTS = [
    "5",
    "0.01",
    "1_000",
    "١٢",
    "1e3",
    "1E3",
    "1.5e2",
    "-5",
    "0",
    "-0",
    "0.00",
    "NaN",
    "sNaN",
    "Infinity",
    "1,234.50",
    "$5.00",
    "1000000000",
    "1000000000.00",
    "1000000000.01",
    "99999999999999999999",
    "12.345",
    " 7 ",
    "0x10",
    "½",
    "５",
    "1" + "0" * 500,
    "1e-2",
    "0e0",
    ".5",
    "5.",
]
QUANTITIES = [
    "1",
    "0",
    "-1",
    "1000000",
    "1000001",
    "12345678901234567890",
    "1e3",
    "١",
    "9223372036854775808",
]


@st.composite
def amount_commands(draw: st.DrawFn) -> list[str]:
    amount = draw(
        st.one_of(st.sampled_from(AMOUNTS), st.decimals().map(str), st.floats().map(repr), TEXT)
    )
    command = draw(
        st.sampled_from(
            [
                ["earn", "C1", "--amount", amount, "--json"],
                [
                    "earn",
                    "C1",
                    "--amount",
                    amount,
                    "--quantity",
                    draw(st.sampled_from(QUANTITIES) | st.integers().map(str)),
                    "--json",
                ],
                ["earn", "C1", "--amount", amount, "--dry-run", "--explain", "--json"],
                ["refund", "P1", "--amount", amount, "--json"],
                [
                    "earn",
                    "C1",
                    "--event",
                    draw(
                        st.sampled_from(["review", "reviw", "birthday", "enroll", "purchase", ""])
                        | TEXT
                    ),
                    "--json",
                ],
            ]
        )
    )
    return command


TIMES = [
    "0001-01-01",
    "0999-12-31",
    "1899-12-31",
    "1900-01-01",
    "2999-12-31",
    "3000-01-01",
    "9999-12-31",
    "9999-12-31T23:59:59",
    "9999-12-31T23:00",
    "2100-01-01",
    "2026-03-29T01:30",
    "2026-10-25T01:30",
    "2026-11-20T10:00:00+14:00",
    "2026-11-20T10:00:00-23:59",
    "2026-11-20T10:00:00Z",
    "now",
    "",
    "T",
    "2026-13-01",
    "2026-02-29",
    "2028-02-29",
    "20261120",
    "2026-11-20 10:00",
    "2026-W48-1",
]


def times() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(
            [*TIMES, shop_day(), shop_day(1), shop_day(2), shop_day(-1), f"{shop_day(1)}T23:59"]
        ),
        st.datetimes().map(lambda d: d.isoformat()),
        st.dates().map(lambda d: d.isoformat()),
        TEXT,
    )


@st.composite
def time_commands(draw: st.DrawFn) -> list[str]:
    t, d, d2, d3 = draw(times()), draw(times()), draw(times()), draw(times())
    report = ["report", draw(st.sampled_from(REPORTS))]
    for option, value in (("--from", d), ("--to", d2), ("--as-of", d3)):
        if draw(st.booleans()):
            report += [option, value]
    return draw(
        st.sampled_from(
            [
                ["earn", "C1", "--amount", "5.00", "--at", t, "--json"],
                ["earn", "C1", "--amount", "5.00", "--txn", "P1", "--at", t, "--json"],
                ["enroll", "NEW", "--at", t, "--json"],
                ["enroll", "NEW", "--birthday", d, "--json"],
                ["update", "C1", "--birthday", d, "--at", t, "--json"],
                ["redeem", "C1", "--points", "1", "--at", t, "--json"],
                ["adjust", "C1", "1", "--reason", "x", "--at", t, "--json"],
                ["refund", "P1", "--amount", "1.00", "--at", t, "--json"],
                ["balance", "C1", "--at", t, "--json"],
                ["history", "C1", "--at", t, "--json"],
                ["tier", "C1", "--at", t, "--json"],
                ["rewards", "C1", "--at", t, "--json"],
                ["nightly", "--as-of", d, "--json"],
                ["tier", "C1", "--set", "silver", "--reason", "x", "--until", d, "--json"],
                [*report, "--json"],
            ]
        )
    )


NUMBERS = [
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "100000000000000000000",
    "1000000000",
    "-1000000000",
    "1000000001",
    "-1000000001",
    "1000000",
    "1000001",
    "0",
    "-0",
    "1e3",
    "0x10",
    "١",
    " 5",
    "5 ",
    "+5",
    "1" * 400,
]


@st.composite
def number_commands(draw: st.DrawFn) -> list[str]:
    n = draw(st.one_of(st.sampled_from(NUMBERS), st.integers().map(str), TEXT))
    return draw(
        st.sampled_from(
            [
                ["adjust", "C1", n, "--reason", "x", "--json"],
                ["adjust", "C1", n, "--reason", "x", "--txn", "A1", "--json"],
                ["redeem", "C1", "--points", n, "--json"],
                ["history", "C1", "--limit", n, "--json"],
                ["report", "customers", "--top", n, "--json"],
                [
                    "report",
                    "activity",
                    "--by",
                    draw(st.sampled_from(["day", "week", "month", "year", ""])),
                    "--json",
                ],
            ]
        )
    )


# --- in-process fuzzing ------------------------------------------------------------------


@fuzz_settings(50)
@given(args=id_commands())
def test_fuzzed_customer_ids_and_texts(tmp_path: Path, template: Path, args: list[str]) -> None:
    attempt(template, tmp_path, args, allow_raw_control=True)


@fuzz_settings(50)
@given(args=amount_commands())
def test_fuzzed_amounts_quantities_and_events(
    tmp_path: Path, template: Path, args: list[str]
) -> None:
    attempt(template, tmp_path, args, allow_raw_control=True)


@fuzz_settings(60)
@given(args=time_commands())
def test_fuzzed_times_and_dates(tmp_path: Path, template: Path, args: list[str]) -> None:
    attempt(template, tmp_path, args, allow_raw_control=True)


@fuzz_settings(40)
@given(args=number_commands())
def test_fuzzed_points_and_limits(tmp_path: Path, template: Path, args: list[str]) -> None:
    attempt(template, tmp_path, args, allow_raw_control=True)


# --- the documented bounds ----------------------------------------------------------------

BOUNDS: list[tuple[str, list[str], dict[str, str]]] = [
    ("--at 0001-01-01", ["earn", "C1", "--amount", "5", "--at", "0001-01-01"], {}),
    ("--at 1899-12-31", ["earn", "C1", "--amount", "5", "--at", "1899-12-31"], {}),
    ("--at 9999-12-31", ["earn", "C1", "--amount", "5", "--at", "9999-12-31"], {}),
    ("--at 2100-01-01 (the future)", ["earn", "C1", "--amount", "5", "--at", "2100-01-01"], {}),
    ("--at three days ahead", ["earn", "C1", "--amount", "5", "--at", shop_day(3)], {}),
    (
        "--at in the spring-forward gap",
        ["earn", "C1", "--amount", "5", "--at", "2026-03-29T01:30"],
        {},
    ),
    ("enroll --at 0001-01-01", ["enroll", "C9", "--at", "0001-01-01"], {}),
    ("enroll --birthday 0001-01-01", ["enroll", "C9", "--birthday", "0001-01-01"], {}),
    ("update --birthday 9999-12-31", ["update", "C1", "--birthday", "9999-12-31"], {}),
    ("balance --at 9999-12-31", ["balance", "C1", "--at", "9999-12-31"], {}),
    ("report --to 9999-12-31", ["report", "--to", "9999-12-31"], {}),
    ("nightly --as-of 0001-01-01", ["nightly", "--as-of", "0001-01-01"], {}),
    ("--amount 1_000", ["earn", "C1", "--amount", "1_000"], {}),
    ("--amount ١٢", ["earn", "C1", "--amount", "١٢"], {}),
    ("--amount 1e3", ["earn", "C1", "--amount", "1e3"], {}),
    ("--amount 1000000000.01", ["earn", "C1", "--amount", "1000000000.01"], {}),
    ("--quantity 0", ["earn", "C1", "--amount", "5", "--quantity", "0"], {}),
    ("--quantity 1000001", ["earn", "C1", "--amount", "5", "--quantity", "1000001"], {}),
    (
        "--quantity of 20 digits",
        ["earn", "C1", "--amount", "5", "--quantity", "12345678901234567890"],
        {},
    ),
    ("adjust 9223372036854775807", ["adjust", "C1", "9223372036854775807", "--reason", "x"], {}),
    ("adjust 1000000001", ["adjust", "C1", "1000000001", "--reason", "x"], {}),
    ("adjust -1000000001", ["adjust", "C1", "-1000000001", "--reason", "x"], {}),
    ("redeem --points 1000000001", ["redeem", "C1", "--points", "1000000001"], {}),
    ("history --limit 10**20", ["history", "C1", "--limit", "100000000000000000000"], {}),
    ("history --limit 1000001", ["history", "C1", "--limit", "1000001"], {}),
    (
        "report customers --top 10**20",
        ["report", "customers", "--top", "100000000000000000000"],
        {},
    ),
    ("id of 201 characters", ["enroll", "a" * 201], {}),
    ("id with a lone surrogate (not UTF-8)", ["enroll", "C\udcff"], {}),
    ("LOYALTY_BUSY_TIMEOUT=nan", ["earn", "C1", "--amount", "5"], {"LOYALTY_BUSY_TIMEOUT": "nan"}),
    ("LOYALTY_BUSY_TIMEOUT=inf", ["earn", "C1", "--amount", "5"], {"LOYALTY_BUSY_TIMEOUT": "inf"}),
    (
        "LOYALTY_BUSY_TIMEOUT=1e308",
        ["earn", "C1", "--amount", "5"],
        {"LOYALTY_BUSY_TIMEOUT": "1e308"},
    ),
    ("LOYALTY_BUSY_TIMEOUT=-1", ["earn", "C1", "--amount", "5"], {"LOYALTY_BUSY_TIMEOUT": "-1"}),
    (
        "LOYALTY_BUSY_TIMEOUT=3601",
        ["earn", "C1", "--amount", "5"],
        {"LOYALTY_BUSY_TIMEOUT": "3601"},
    ),
]


@pytest.mark.parametrize(("args", "env"), [c[1:] for c in BOUNDS], ids=[c[0] for c in BOUNDS])
def test_input_outside_the_documented_bounds_is_refused_with_exit_2_and_changes_nothing(
    tmp_path: Path, template: Path, args: list[str], env: dict[str, str]
) -> None:
    outcome = attempt(template, tmp_path, [*args, "--json"], env=env, section="fuzz: CLI bounds")
    assert outcome.code == 2, f"expected exit 2 (out of bounds)\n{outcome.brief()}"


# --- the real binary: hostile argv and environments -----------------------------------------

REAL: list[tuple[str, list[str | bytes], dict[str, str]]] = [
    ("id that is not UTF-8", [b"enroll", b"C\xff", b"--json"], {}),
    (
        "category that is not UTF-8",
        [b"earn", b"C1", b"--amount", b"5", b"--category", b"\xff\xfe", b"--json"],
        {},
    ),
    ("amount that is not UTF-8", [b"earn", b"C1", b"--amount", b"\xff", b"--json"], {}),
    (
        "--at that is not UTF-8",
        [b"earn", b"C1", b"--amount", b"5", b"--at", b"2026-01-01\xff", b"--json"],
        {},
    ),
    ("id of 10,000 characters", ["enroll", "a" * 10_000, "--json"], {}),
    (
        "id ending in a newline (echoed in the error)",
        ["earn", "--amount", "5", "--json", "--", "C1\n"],
        {},
    ),
    (
        "id with an escape sequence (echoed in the error)",
        ["earn", "--amount", "5", "--json", "--", " \x1b[2J"],
        {},
    ),
    (
        "event with a control character (echoed in the error)",
        ["earn", "C1", "--event", "rev\x0eiew", "--json"],
        {},
    ),
    ("earn --at 0001-01-01", ["earn", "C1", "--amount", "5", "--at", "0001-01-01", "--json"], {}),
    (
        "earn --at 9999-12-31T23:00",
        ["earn", "C1", "--amount", "5", "--at", "9999-12-31T23:00", "--json"],
        {},
    ),
    ("balance --at 9999-12-31", ["balance", "C1", "--at", "9999-12-31", "--json"], {}),
    (
        "adjust 9223372036854775807",
        ["adjust", "C1", "9223372036854775807", "--reason", "x", "--json"],
        {},
    ),
    ("history --limit 10**20", ["history", "C1", "--limit", "100000000000000000000", "--json"], {}),
    (
        "LOYALTY_BUSY_TIMEOUT=nan",
        ["earn", "C1", "--amount", "5", "--json"],
        {"LOYALTY_BUSY_TIMEOUT": "nan"},
    ),
    (
        "LOYALTY_BUSY_TIMEOUT=1e308",
        ["earn", "C1", "--amount", "5", "--json"],
        {"LOYALTY_BUSY_TIMEOUT": "1e308"},
    ),
    (
        "LOYALTY_BUSY_TIMEOUT=-1",
        ["earn", "C1", "--amount", "5", "--json"],
        {"LOYALTY_BUSY_TIMEOUT": "-1"},
    ),
    (
        "XDG_CONFIG_HOME too long a path",
        ["report", "--json"],
        {"LOYALTY_RULES": "", "XDG_CONFIG_HOME": "/tmp/" + "a" * 5000},
    ),
]


@pytest.mark.parametrize(("args", "env"), [c[1:] for c in REAL], ids=[c[0] for c in REAL])
def test_hostile_arguments_through_the_real_binary(
    tmp_path: Path, template: Path, args: list[str | bytes], env: dict[str, str]
) -> None:
    attempt(
        template, tmp_path, args, real=True, env=env, section="fuzz: CLI arguments (real processes)"
    )


USAGE = [
    ("id -1 without --", ["enroll", "-1", "--json"], {0, 2}),
    ("--quantity 0", ["earn", "C1", "--amount", "5", "--quantity", "0", "--json"], {2}),
    ("a missing --reason", ["adjust", "C1", "5", "--json"], {2}),
    ("an unknown command", ["frobnicate", "--json"], {2}),
]


@pytest.mark.parametrize(("args", "allowed"), [c[1:] for c in USAGE], ids=[c[0] for c in USAGE])
def test_usage_errors_are_error_lines_too(
    tmp_path: Path, template: Path, args: list[str], allowed: set[int]
) -> None:
    """The README: errors go to stderr as `error: ...` lines. Click's own usage block
    ('Usage: ...', 'Try ...', 'Error: ...') is not one; every fuzz test above lets it
    pass, so that it fails here alone."""
    attempt(
        template,
        tmp_path,
        args,
        real=True,
        allowed=allowed,
        allow_usage=False,
        section="fuzz: CLI arguments (real processes)",
    )


def test_an_empty_loyalty_db_is_refused_not_read_as_the_default_path(tmp_path: Path) -> None:
    env = loyalty_env(tmp_path, "", EXAMPLE_RULES)
    outcome = run_process(["enroll", "C1", "--json"], env)
    record("fuzz: CLI arguments (real processes)", cases=1)
    assert_contract(outcome, {2, 66})
    default = tmp_path / "data" / "loyalty" / "ledger.db"
    assert not default.exists(), "LOYALTY_DB='' wrote to the default ledger"


def test_a_dangling_symlink_as_the_db_is_refused_and_its_target_not_created(tmp_path: Path) -> None:
    link = tmp_path / "ledger.db"
    target = tmp_path / "elsewhere" / "target.db"
    target.parent.mkdir()
    link.symlink_to(target)
    outcome = run_process(
        ["enroll", "C1", "--db", str(link), "--json"], loyalty_env(tmp_path, None, EXAMPLE_RULES)
    )
    record("fuzz: CLI arguments (real processes)", cases=1)
    assert_contract(outcome, {2, 66})
    assert not target.exists(), "a dangling --db symlink created its target"


@pytest.mark.parametrize("command", [["balance", "C1"], ["enroll", "C1"], ["verify"]])
def test_an_empty_sqlite_file_claiming_a_schema_version_is_refused_with_exit_66(
    tmp_path: Path, command: list[str]
) -> None:
    from loyalty_cli.store.schema import SCHEMA_VERSION

    db = tmp_path / "odd.db"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.close()
    original = db.read_bytes()
    outcome = run_process(
        [*command, "--db", str(db), "--json"], loyalty_env(tmp_path, None, EXAMPLE_RULES)
    )
    record("fuzz: CLI arguments (real processes)", cases=1)
    assert_contract(outcome, {66})
    assert db.read_bytes() == original


def test_a_db_path_too_long_for_the_filesystem_is_refused_cleanly(tmp_path: Path) -> None:
    db = "/tmp/" + "a" * 5000 + "/ledger.db"
    for command in (["balance", "C1"], ["enroll", "C1"]):
        outcome = run_process(
            [*command, "--db", db, "--json"], loyalty_env(tmp_path, None, EXAMPLE_RULES)
        )
        record("fuzz: CLI arguments (real processes)", cases=1)
        assert_contract(outcome, {2, 66})
