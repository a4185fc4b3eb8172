"""Fuzzing till exports: random bytes, encodings (latin-1, UTF-16, a BOM), ragged rows,
NUL bytes, huge fields, unclosed quotes, repeated column names, dates out of range or
in a DST gap, amounts like `1_000`, `١٢` or `1e3`, 20-digit quantities.

`loyalty import-csv` exits 0, 65 or 66 (never 1 with a traceback); every stderr line
is an `error:` or `rejected:` line; afterwards the ledger verifies, holds nothing
outside the documented bounds, and `nightly`, every report, and `balance`/`history`
of every customer still work (exit 0).
"""

from __future__ import annotations

import itertools
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ..conftest import EXAMPLE_RULES
from .conftest import (
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
# Failing examples with a 130 KiB field make hypothesis warn that their repr is large.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
_counter = itertools.count()


def recent(days: int = 10) -> str:
    return (datetime.now(UTC).astimezone(SHOP).date() - timedelta(days=days)).isoformat()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """C1 and C2 enrolled, and a purchase P1 of C1's that rows may refund."""
    db = tmp_path_factory.mktemp("csv-template") / "ledger.db"
    env = inprocess_env(db, EXAMPLE_RULES)
    for args in (
        ["enroll", "C1", "--name", "Ada", "--at", recent(40)],
        ["enroll", "C2", "--at", recent(40)],
        ["earn", "C1", "--amount", "20.00", "--txn", "P1", "--at", f"{recent(30)}T12:00"],
    ):
        assert_contract(run_inprocess([*args, "--json"], env), {0})
    return db


def fresh(template: Path, folder: Path) -> Path:
    db = folder / f"ledger-{next(_counter)}.db"
    shutil.copy(template, db)
    return db


# --- generating exports ------------------------------------------------------------------

AMOUNTS = [
    "12.50",
    "7",
    "0.01",
    "1_000",
    "١٢",
    "1e3",
    "1.5e2",
    "-5",
    "0",
    "0.00",
    "NaN",
    "Infinity",
    "1,234.50",
    "$5.00",
    "€ 5",
    "1000000000",
    "1000000000.01",
    "99999999999999999999",
    "12.345",
    " 7 ",
    "0x10",
    "½",
    "５",
    "1" + "0" * 400,
]
DATES = [
    "0001-01-01",
    "9999-12-31T23:00",
    "9999-12-31",
    "2100-01-01",
    "1899-12-31",
    "1900-01-01T00:00",
    "2999-12-31",
    "2026-03-29T01:30",
    "2026-10-25T01:30",
    "2026-02-30",
    "20261120",
    "yesterday",
    "2026-11-20T10:00:00+14:00",
    "2026-11-20T10:00:00-12:00",
    "2026-11-20T10:00:00+25:00",
    "  2026-01-05  ",
]
QUANTITIES = ["1", "2", "0", "-1", "12345678901234567890", "1e3", "١", " 2 ", "1000001", "1.5", ""]
IDS = [
    "C1",
    "C2",
    "C3",
    "N9",
    "",
    "-1",
    '=HYPERLINK("x")',
    "@SUM(1)",
    "+1",
    "C\x07",
    " C1 ",
    "é",
    "a" * 201,
]
CELL_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10)

VALUES = {
    "txn_id": st.one_of(
        st.integers(0, 50).map(lambda n: f"T{n}"),
        st.sampled_from(["P1", "", "=1+1", "x" * 300]),
        CELL_TEXT,
    ),
    "customer_id": st.one_of(st.sampled_from(IDS), CELL_TEXT),
    "amount": st.one_of(
        st.sampled_from(AMOUNTS), st.decimals(allow_nan=True, places=3).map(str), CELL_TEXT
    ),
    "date": st.one_of(
        st.sampled_from([*DATES, recent(), recent(3), f"{recent(1)}T09:30"]), CELL_TEXT
    ),
    "category": st.one_of(st.sampled_from(["shoes", "books", "", "=cmd|' /C calc'!A0"]), CELL_TEXT),
    "event": st.sampled_from(["", "review", "reviw", "birthday", "enroll", "referral", "purchase"]),
    "sku": CELL_TEXT,
    "quantity": st.one_of(st.sampled_from(QUANTITIES), st.integers().map(str)),
    "refund_of": st.sampled_from(["", "P1", "T1", "nope", "P1 "]),
}
COLUMNS = list(VALUES)


@st.composite
def exports(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """A till export as bytes, and extra import-csv options (an --encoding)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=600)), []
    extra = draw(st.lists(st.sampled_from(COLUMNS), max_size=4))
    header = ["customer_id", "date", "amount", *extra]
    if draw(st.integers(0, 5)) == 0:
        header = draw(
            st.lists(st.sampled_from(COLUMNS), max_size=6)
        )  # maybe a required one missing
    header = draw(st.permutations(header))
    if draw(st.integers(0, 5)) == 0:
        header.append(draw(st.sampled_from(["amount", "Amount", "customer", "notes", ""])))
    delimiter = draw(st.sampled_from([",", ",", ",", ";", "\t", "|"]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [delimiter.join(header)]
    for _ in range(draw(st.integers(1, 8))):
        cells = []
        for column in header:
            values = VALUES.get(column, CELL_TEXT)
            cells.append(draw(values))
        mutation = draw(st.integers(0, 14))
        if mutation == 0 and cells:
            cells = cells[: draw(st.integers(0, len(cells) - 1))]  # short row
        elif mutation == 1:
            cells += draw(st.lists(CELL_TEXT, min_size=1, max_size=3))  # long row
        elif mutation == 2 and cells:
            cells[draw(st.integers(0, len(cells) - 1))] += "\x00"
        elif mutation == 3 and cells:
            cells[draw(st.integers(0, len(cells) - 1))] = "x" * (130 * 1024)  # > 128 KiB
        elif mutation == 4 and cells:
            cells[draw(st.integers(0, len(cells) - 1))] = '"unclosed ' + draw(CELL_TEXT)
        lines.append(delimiter.join(_quoted(c, delimiter) for c in cells))
    text = newline.join(lines) + draw(st.sampled_from([newline, ""]))
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "latin-1", "utf-16", "cp1252"]))
    data = text.encode(encoding, errors="replace")
    options: list[str] = []
    if encoding in ("latin-1", "utf-16", "cp1252") and draw(st.integers(0, 3)):
        options = ["--encoding", encoding]
    return data, options


def _quoted(cell: str, delimiter: str) -> str:
    if cell.startswith('"unclosed'):
        return cell
    if any(ch in cell for ch in (delimiter, '"', "\n", "\r")):
        return '"' + cell.replace('"', '""') + '"'
    return cell


# --- checking ----------------------------------------------------------------------------


def import_and_check(
    db: Path,
    folder: Path,
    data: bytes,
    options: list[str],
    *,
    real: bool,
    enroll_unknown: bool,
    then_use: bool = True,
    allow_raw_control: bool = False,
) -> Outcome:
    export = folder / f"till-{next(_counter)}.csv"
    export.write_bytes(data)
    rejects = folder / f"rejects-{next(_counter)}.csv"
    args = ["import-csv", str(export), "--rejects", str(rejects), "--json", *options]
    if enroll_unknown:
        args.append("--enroll-unknown")
    run = run_process if real else run_inprocess
    env = loyalty_env(folder, db, EXAMPLE_RULES) if real else inprocess_env(db, EXAMPLE_RULES)
    outcome = run(args, env, timeout=60)  # type: ignore[operator]
    assert_contract(outcome, {0, 65, 66}, summary_on_65=True, allow_raw_control=allow_raw_control)
    if then_use:
        still_works(db, folder, real=real)
    return outcome


def still_works(db: Path, folder: Path, *, real: bool) -> None:
    """After any import: the ledger verifies and is within bounds, and nothing crashes.
    `real`: verify and nightly as processes of the installed binary; the reports,
    balances and histories, the same code either way, in this process (a process
    costs ten times as much, and twelve of them were most of this suite's time)."""
    env = inprocess_env(db, EXAMPLE_RULES)
    if real:
        binary = loyalty_env(folder, db, EXAMPLE_RULES)
        verify = run_process(["verify", "--json"], binary)
        assert_contract(run_process(["nightly", "--json"], binary), {0})
    else:
        verify = run_inprocess(["verify", "--json"], env)
    assert_contract(verify, {0})
    assert json.loads(verify.stdout)["ok"] is True
    problems = bounds_problems(db)
    assert not problems, "out of bounds in the ledger:\n" + "\n".join(problems)
    commands = [["nightly", "--json"], *[["report", name, "--json"] for name in REPORTS]]
    for customer in customers(db)[:4]:
        commands += [["balance", "--json", "--", customer], ["history", "--json", "--", customer]]
    for args in commands:
        assert_contract(run_inprocess(args, env), {0})


# --- the tests ------------------------------------------------------------------------------


@fuzz_settings(50)
@given(export=exports(), enroll_unknown=st.booleans())
def test_fuzzed_till_exports_import_or_are_rejected_cleanly_and_the_ledger_stays_usable(
    tmp_path: Path, template: Path, export: tuple[bytes, list[str]], enroll_unknown: bool
) -> None:
    record("fuzz: CSV imports", cases=1)
    data, options = export
    import_and_check(
        fresh(template, tmp_path),
        tmp_path,
        data,
        options,
        real=False,
        enroll_unknown=enroll_unknown,
        allow_raw_control=True,
    )


@fuzz_settings(6)
@given(export=exports())
def test_fuzzed_till_exports_through_the_real_binary(
    tmp_path: Path, template: Path, export: tuple[bytes, list[str]]
) -> None:
    record("fuzz: CSV imports (real processes)", cases=1)
    data, options = export
    import_and_check(
        fresh(template, tmp_path),
        tmp_path,
        data,
        options,
        real=True,
        enroll_unknown=True,
        allow_raw_control=True,
    )


HEADER = "txn_id,customer_id,amount,date,category,quantity\n"


def rows_around(bad: str) -> bytes:
    """Two good rows, the bad one, and two more good rows after it."""
    day = recent()
    good = [f"G{n},C1,5.00,{day},books,1\n" for n in range(4)]
    return (HEADER + good[0] + good[1] + bad + good[2] + good[3]).encode()


KNOWN = {
    "a field over 128 KiB": rows_around(f"B1,C1,5.00,{recent()},{'x' * (130 * 1024)},1\n"),
    "a 20-digit quantity": rows_around(f"B1,C1,5.00,{recent()},books,12345678901234567890\n"),
    "9999-12-31T23:00": rows_around("B1,C1,5.00,9999-12-31T23:00,books,1\n"),
    "0001-01-01": rows_around("B1,C1,5.00,0001-01-01,books,1\n"),
    "2100-01-01 (the future)": rows_around("B1,C1,5.00,2100-01-01,books,1\n"),
    "1899-12-31": rows_around("B1,C1,5.00,1899-12-31,books,1\n"),
    "a time in the spring-forward gap": rows_around("B1,C1,5.00,2026-03-29T01:30,books,1\n"),
    "amount 1_000": rows_around(f"B1,C1,1_000,{recent()},books,1\n"),
    "amount ١٢ (Arabic-Indic digits)": rows_around(f"B1,C1,١٢,{recent()},books,1\n"),
    "amount 1e3": rows_around(f"B1,C1,1e3,{recent()},books,1\n"),
    "a NUL byte": rows_around(f"B1,C1\x00,5.00,{recent()},books,1\n"),
    "a control character in the amount (echoed in the rejection)": rows_around(
        f"B1,C1,5\x0e,{recent()},books,1\n"
    ),
    "a customer id of 201 characters": rows_around(f"B1,{'a' * 201},5.00,{recent()},books,1\n"),
}


@pytest.mark.parametrize("name", list(KNOWN))
def test_one_bad_row_is_rejected_alone_and_every_other_row_is_imported(
    tmp_path: Path, template: Path, name: str
) -> None:
    """Real processes: the bad row is a `rejected:` line (exit 65), the four good rows
    around it are imported, and the ledger stays usable."""
    record("fuzz: CSV imports (real processes)", cases=1)
    db = fresh(template, tmp_path)
    outcome = import_and_check(db, tmp_path, KNOWN[name], [], real=True, enroll_unknown=True)
    assert outcome.code == 65, outcome.brief()
    assert json.loads(outcome.stdout)["imported"] == 4, outcome.stdout
    assert sum(line.startswith("rejected: ") for line in outcome.stderr.splitlines()) == 1, (
        outcome.stderr
    )


def test_an_unclosed_quote_does_not_silently_swallow_the_rows_after_it(
    tmp_path: Path, template: Path
) -> None:
    db = fresh(template, tmp_path)
    data = rows_around(f'B1,C1,5.00,{recent()},"books,1\n')
    outcome = import_and_check(db, tmp_path, data, [], real=True, enroll_unknown=True)
    summary = json.loads(outcome.stdout) if outcome.stdout.strip() else {}
    accounted = (
        summary.get("imported", 0) + summary.get("rejected", 0) + summary.get("duplicates", 0)
    )
    assert outcome.code != 0 or accounted == 5, (
        f"exit 0 but only {accounted} of the 5 data rows were imported or rejected: the "
        f"unclosed quote swallowed the rest silently\n{outcome.brief()}"
    )


def test_two_columns_with_the_same_name_are_refused_before_anything_is_written(
    tmp_path: Path, template: Path
) -> None:
    db = fresh(template, tmp_path)
    before = snapshot(db)
    data = f"txn_id,customer_id,amount,date,amount\nD1,C1,5.00,{recent()},500.00\n".encode()
    outcome = import_and_check(
        db, tmp_path, data, [], real=True, enroll_unknown=True, then_use=False
    )
    assert outcome.code == 65, f"two 'amount' columns were not refused\n{outcome.brief()}"
    assert snapshot(db) == before
    still_works(db, tmp_path, real=True)
