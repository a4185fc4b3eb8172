"""Exports a spreadsheet will open: `report NAME --csv` for every report, and the
`import-csv --rejects FILE` file, from ledgers and rows full of formula-like text
(`=HYPERLINK("x")`, `@SUM(1)`, `+1`, `-x`, tabs, CRs, quotes, newlines).

Each export is valid RFC 4180 CSV (parses strictly, CRLF line ends, every row as
wide as the header), and no cell starts with = + - @ tab or CR unless it is a
number. A `--rejects` path that is the ledger, an input, or a link to either is
refused (exit 2 or 66) and both files stay byte-for-byte the same; and a rejects
file can be imported again as it is, once its rows are fixed.
"""

from __future__ import annotations

import itertools
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ..conftest import EXAMPLE_RULES
from .conftest import (
    REPORTS,
    assert_contract,
    csv_problems,
    fuzz_settings,
    inprocess_env,
    loyalty_env,
    record,
    run_inprocess,
    run_process,
)

SHOP = ZoneInfo("Europe/London")
_counter = itertools.count()
SEGMENTS = [
    "champions",
    "loyal",
    "new",
    "potential_loyalists",
    "cant_lose",
    "at_risk",
    "hibernating",
    "lost",
]
FORMULAS = [
    '=HYPERLINK("http://example.com","click")',
    "@SUM(1)",
    "+1",
    "-x",
    "-1",
    "=1+1",
    "\tTAB",
    "\rCR",
    "=",
    "+",
    "-",
    "@",
    "'quoted",
    "a,b",
    'a"b',
    "line\nbreak",
    "-2.5e3",
    " =lead",
]
TEXT = st.one_of(st.sampled_from(FORMULAS), st.text(max_size=15))


def day(days: int) -> str:
    return (datetime.now(UTC).astimezone(SHOP).date() - timedelta(days=days)).isoformat()


@fuzz_settings(15)
@given(
    people=st.lists(
        st.tuples(
            st.sampled_from(["=ID", "+C", "-C", "@C", "C1", "C2", "\tC"])
            | st.text(min_size=1, max_size=8),
            TEXT,
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda p: p[0],
    ),
    amounts=st.lists(st.integers(1, 50_000), min_size=1, max_size=4),
)
def test_report_csv_exports_are_rfc4180_and_never_start_a_cell_with_a_formula(
    tmp_path: Path, people: list[tuple[str, str]], amounts: list[int]
) -> None:
    record("fuzz: CSV exports", cases=1)
    db = tmp_path / f"ledger-{next(_counter)}.db"
    env = inprocess_env(db, EXAMPLE_RULES)
    enrolled = []
    for n, (ident, name) in enumerate(people):
        outcome = run_inprocess(
            ["enroll", "--name", name, "--at", day(200), "--json", "--", ident], env
        )
        assert_contract(outcome, {0, 1, 2}, allow_usage=True)
        if outcome.code == 0:
            enrolled.append(ident)
            for k, cents in enumerate(amounts):
                amount = f"{cents // 100}.{cents % 100:02d}"
                at = f"{day(190 - 40 * k - n)}T12:00"
                earn = [
                    "earn",
                    "--amount",
                    amount,
                    "--category",
                    name,
                    "--at",
                    at,
                    "--json",
                    "--",
                    ident,
                ]
                assert_contract(run_inprocess(earn, env), {0, 2}, allow_usage=True)
    exports = [["report", name, "--csv"] for name in REPORTS]
    exports += [["report", "customers", "--sort", "name", "--csv"]]
    exports += [["report", "segments", "--segment", s, "--csv"] for s in SEGMENTS]
    if not db.exists():
        return
    for args in exports:
        outcome = run_inprocess(args, env)
        assert_contract(outcome, {0}, stdout="csv")
        problems = csv_problems(outcome.stdout)
        assert not problems, f"{args}: " + "; ".join(problems)


@fuzz_settings(20)
@given(cells=st.lists(st.tuples(TEXT, TEXT, TEXT), min_size=1, max_size=5))
def test_the_rejects_file_is_rfc4180_and_never_starts_a_cell_with_a_formula(
    tmp_path: Path, cells: list[tuple[str, str, str]]
) -> None:
    """Every row is rejected (unknown customers, no --enroll-unknown), and the rejects
    file carries their hostile cells."""
    record("fuzz: CSV exports", cases=1)
    export = tmp_path / f"till-{next(_counter)}.csv"
    rejects = tmp_path / f"rejects-{next(_counter)}.csv"
    lines = ["txn_id,customer_id,amount,date,category"]
    for n, (customer, amount, category) in enumerate(cells):
        row = [f"T{n}", "X" + customer, amount, day(3), category]
        lines.append(",".join('"' + c.replace('"', '""') + '"' for c in row))
    export.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8", errors="surrogatepass")
    db = tmp_path / f"ledger-{next(_counter)}.db"
    args = ["import-csv", str(export), "--rejects", str(rejects), "--json"]
    outcome = run_inprocess(args, inprocess_env(db, EXAMPLE_RULES))
    assert_contract(outcome, {65}, summary_on_65=True)
    problems = csv_problems(rejects.read_bytes().decode("utf-8"))
    assert not problems, "; ".join(problems)


def test_a_rejects_file_can_be_imported_again_as_it_is(tmp_path: Path) -> None:
    """Issue 10: the rejects file keeps the input's own header and cells (plus line and
    reason columns the import ignores), so once the cause is fixed it imports as is."""
    export = tmp_path / "till.csv"
    export.write_text(
        "txn_id,customer_id,amount,date,category\r\n"
        f"T1,NEW1,12.50,{day(3)},shoes\r\n"
        f"T2,NEW2,7.00,{day(2)},books\r\n"
    )
    rejects = tmp_path / "rejects.csv"
    env = loyalty_env(tmp_path, tmp_path / "ledger.db", EXAMPLE_RULES)
    first = run_process(["import-csv", str(export), "--rejects", str(rejects), "--json"], env)
    assert_contract(first, {65}, summary_on_65=True)
    again = run_process(["import-csv", str(rejects), "--enroll-unknown", "--json"], env)
    assert_contract(again, {0}, summary_on_65=True)
    assert json.loads(again.stdout)["imported"] == 2, again.stdout


# --- --rejects must not overwrite what it names ----------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "the ledger",
        "the input CSV",
        "a symlink to the ledger",
        "a symlink to the input",
        "a hard link to the ledger",
        "the ledger, by a relative path",
    ],
)
def test_a_rejects_path_that_is_the_ledger_or_an_input_is_refused_and_both_stay_intact(
    tmp_path: Path, target: str
) -> None:
    db = tmp_path / "ledger.db"
    env = loyalty_env(tmp_path, db, EXAMPLE_RULES)
    for args in (["enroll", "C1", "--json"], ["earn", "C1", "--amount", "9.99", "--json"]):
        assert run_process(args, env).code == 0
    export = tmp_path / "till.csv"
    export.write_text(
        f"txn_id,customer_id,amount,date\r\nT1,C1,5.00,{day(1)}\r\nT2,NOBODY,5.00,{day(1)}\r\n"
    )
    paths = {
        "the ledger": db,
        "the input CSV": export,
        "a symlink to the ledger": tmp_path / "link-to-ledger.csv",
        "a symlink to the input": tmp_path / "link-to-input.csv",
        "a hard link to the ledger": tmp_path / "hard-link.csv",
        "the ledger, by a relative path": Path(os.path.relpath(db)),
    }
    (tmp_path / "link-to-ledger.csv").symlink_to(db)
    (tmp_path / "link-to-input.csv").symlink_to(export)
    os.link(db, tmp_path / "hard-link.csv")
    ledger_bytes, export_bytes = db.read_bytes(), export.read_bytes()
    outcome = run_process(
        ["import-csv", str(export), "--rejects", str(paths[target]), "--json"], env
    )
    record("fuzz: CSV exports (--rejects targets)", cases=1)
    assert db.read_bytes() == ledger_bytes, (
        f"--rejects {target} changed the ledger file\n{outcome.brief()}"
    )
    assert export.read_bytes() == export_bytes, (
        f"--rejects {target} changed the input\n{outcome.brief()}"
    )
    assert_contract(outcome, {2, 66})
    assert run_process(["verify", "--json"], env).code == 0
