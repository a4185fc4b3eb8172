"""Issue 10: nothing a user types, a till exports or a file holds can lose data or
break the ledger. Each test here failed on the code before the fix it names."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loyalty_cli.errors import InputMissing
from loyalty_cli.importer import Options, import_sources, read_source
from loyalty_cli.rules import load_rules
from loyalty_cli.store import Store

from .conftest import Shop
from .test_bad_input import snapshot

HEADER = "txn_id,customer_id,amount,date,category"


def write(shop: Shop, text: str, name: str = "sales.csv") -> Path:
    path = shop.dir / name
    path.write_text(text)
    return path


@pytest.fixture
def till(shop: Shop) -> Shop:
    shop.ok("enroll", "C1", "--at", "2026-01-01")
    return shop


def everything_still_works(shop: Shop, customers: tuple[str, ...] = ("C1",)) -> None:
    """After whatever got in: the commands that read it all still answer."""
    for name in ("summary", "customers", "activity", "rules", "segments", "liability"):
        shop.ok("report", name)
    for customer in customers:
        shop.ok("balance", customer)
        shop.ok("history", customer)
        shop.ok("earn", customer, "--amount", "1.00")
    shop.ok("nightly")
    assert shop.ok("verify")["ok"] is True


# --- 1. --rejects never overwrites the ledger or an input ------------------------


@pytest.mark.sqlite_only
@pytest.mark.parametrize("target", ["ledger", "input", "link to the ledger", "rules", "wal"])
def test_rejects_may_not_name_the_ledger_or_an_input(till: Shop, target: str) -> None:
    till.ok("earn", "C1", "--amount", "5.00")
    sales = write(till, f"{HEADER}\nR1,C1,abc,2026-11-20,\n")
    link = till.dir / "link.db"
    link.symlink_to(till.db)
    path = {
        "ledger": till.db,
        "input": sales,
        "link to the ledger": link,
        "rules": till.rules,
        "wal": Path(f"{till.db}-wal"),
    }[target]
    before = (till.db.read_bytes(), sales.read_bytes(), till.rules.read_bytes())
    message = till.fails(2, "import-csv", str(sales), "--rejects", str(path))
    assert "which this command reads; name a new file" in message
    assert (till.db.read_bytes(), sales.read_bytes(), till.rules.read_bytes()) == before
    assert till.ok("verify")["ok"] is True


@pytest.mark.sqlite_only
def test_a_rejects_file_keeps_the_input_columns_and_imports_again_once_fixed(till: Shop) -> None:
    sales = write(
        till,
        "receipt,customer,total,sold_at,notes\n"
        "R1,C1,10.00,2026-11-20,ok\n"
        'R2,C1,12.5O,2026-11-21,"=HYPERLINK(""http://x"")"\n'
        "R3,C1,-4.00,2026-11-21,@SUM(1)\n",
    )
    rejects = till.dir / "rejects.csv"
    result = till.run("import-csv", str(sales), "--rejects", str(rejects), "--json")
    assert result.exit_code == 65, result.output
    rows = list(csv.reader(io.StringIO(rejects.read_text())))
    assert rows[0] == [
        "rejected_file",
        "rejected_line",
        "rejected_reason",
        "receipt",
        "customer",
        "total",
        "sold_at",
        "notes",
    ]
    assert [r[1] for r in rows[1:]] == ["3", "4"]
    # Formulas are neutralised; numbers (-4.00) are left alone.
    assert rows[1][3:] == ["R2", "C1", "12.5O", "2026-11-21", '\'=HYPERLINK("http://x")']
    assert rows[2][3:] == ["R3", "C1", "-4.00", "2026-11-21", "'@SUM(1)"]
    # The owner fixes the amounts and imports the rejects file as it is.
    fixed = rejects.read_text().replace("12.5O", "12.50").replace("-4.00", "4.00")
    rejects.write_text(fixed)
    again = till.dir / "again.csv"
    doc = till.ok("import-csv", str(rejects), "--rejects", str(again))
    assert (doc["imported"], doc["rejected"]) == (2, 0)
    assert next(iter(csv.reader(io.StringIO(again.read_text()))))[:3] == [
        "rejected_file",
        "rejected_line",
        "rejected_reason",
    ]


@pytest.mark.sqlite_only
def test_rejects_from_files_with_different_headers_line_up_by_column_name(till: Shop) -> None:
    a = write(till, "txn_id,customer_id,amount,date\nA1,C1,x,2026-11-20\n", "a.csv")
    b = write(till, "customer_id,date,amount,sku\nC1,2026-11-20,y,S1\n", "b.csv")
    rejects = till.dir / "rejects.csv"
    assert till.run("import-csv", str(a), str(b), "--rejects", str(rejects)).exit_code == 65
    rows = list(csv.DictReader(io.StringIO(rejects.read_text())))
    assert [(r["customer_id"], r["amount"], r["txn_id"], r["sku"]) for r in rows] == [
        ("C1", "x", "A1", ""),
        ("C1", "y", "", "S1"),
    ]


def test_a_rejects_file_in_a_missing_folder_fails_before_anything_is_imported(till: Shop) -> None:
    sales = write(till, f"{HEADER}\nR1,C1,10.00,2026-11-20,\n")
    before = snapshot(till.db)
    message = till.fails(66, "import-csv", str(sales), "--rejects", str(till.dir / "no/r.csv"))
    assert "--rejects" in message
    assert snapshot(till.db) == before


# --- 2 and 3. bad rows are rejected, never a traceback, never the rest lost -------


@pytest.mark.sqlite_only
def test_hostile_rows_are_rejected_one_by_one_and_the_good_ones_imported(till: Shop) -> None:
    big = "x" * (200 * 1024)
    sales = write(
        till,
        f"{HEADER}\n"
        "R1,C1,10.00,2026-11-20,\n"
        "R2,C1,10.00,0001-01-01,\n"
        "R3,C1,10.00,9999-12-31T23:00,\n"
        f'R4,C1,10.00,2026-11-20,"{big}"\n'
        "R5,C1,10.00,2026-11-20,shoes\n"
        "R6,C1,1_000,2026-11-20,\n"
        "R7,C1,١٢,2026-11-20,\n"
        "R8,C1,10.00,2100-01-01,\n"
        "R9,C1,10.00,2026-03-29T01:30,\n"
        "R10,C1\x00,10.00,2026-11-20,\n"
        "R11,C1,10.00,2026-11-21,\n",
    )
    result = till.run("import-csv", str(sales), "--json")
    assert result.exit_code == 65, result.output
    assert "Traceback" not in result.output
    doc = json.loads(result.stdout)
    assert (doc["imported"], doc["rejected"]) == (3, 8)
    reasons = result.stderr
    for fragment in (
        "date '0001-01-01' is out of range",
        "date '9999-12-31T23:00' is out of range",
        "a field is longer than 65,536 characters",
        "amount '1_000' is not a number",
        "amount '١٢' is not a number",
        "date '2100-01-01' is in the future",
        "clocks went forward",
        "control characters",
    ):
        assert fragment in reasons, fragment
    everything_still_works(till)


@pytest.mark.sqlite_only
def test_an_unclosed_quote_is_rejected_not_silently_swallowed(till: Shop) -> None:
    # In a column the import does not read, so that nothing else would notice.
    sales = write(
        till,
        "txn_id,customer_id,amount,date,notes\n"
        "R1,C1,10.00,2026-11-20,\n"
        'R2,C1,10.00,2026-11-20,"gift wrap\n'
        "R3,C1,10.00,2026-11-21,\n",
    )
    result = till.run("import-csv", str(sales), "--json")
    assert result.exit_code == 65, result.output
    assert json.loads(result.stdout)["imported"] == 1
    assert f"{sales}:3: a quote opened in this row is never closed (lines 3-4" in result.stderr


@pytest.mark.sqlite_only
def test_twenty_digit_quantities_are_rejected(till: Shop) -> None:
    sales = write(
        till,
        "txn_id,customer_id,amount,date,quantity\n"
        "R1,C1,10.00,2026-11-20,12345678901234567890\n"
        "R2,C1,10.00,2026-11-20,3\n",
    )
    result = till.run("import-csv", str(sales))
    assert result.exit_code == 65
    assert "quantity '12345678901234567890' is not a whole number" in result.stderr
    everything_still_works(till)


@pytest.mark.sqlite_only
def test_two_columns_with_the_same_name_are_refused_before_anything_is_written(
    till: Shop,
) -> None:
    sales = write(till, "txn_id,customer_id,amount,date,amount\nR1,C1,10.00,2026-11-20,99.00\n")
    before = snapshot(till.db)
    message = till.fails(65, "import-csv", str(sales))
    assert "columns 3 and 5 are both named 'amount'" in message
    assert snapshot(till.db) == before


# --- 4. no integer overflow can get in ---------------------------------------------


@pytest.mark.sqlite_only
def test_the_largest_adjustment_leaves_every_command_working(till: Shop) -> None:
    till.ok("adjust", "C1", "1000000000", "--reason", "the limit itself")
    till.ok("adjust", "C1", "1000000000", "--reason", "and again")
    assert till.ok("balance", "C1")["balance"] == 2_000_000_100
    till.ok("adjust", "C1", "-1000000000", "--reason", "corrected")
    everything_still_works(till)


# --- 8. smaller ones ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "1e308", "-1", "inf", "soon"])
def test_a_bad_busy_timeout_is_one_error_line(till: Shop, value: str) -> None:
    result = till.run("balance", "C1", env={"LOYALTY_BUSY_TIMEOUT": value})
    assert result.exit_code == 2
    assert result.stderr.startswith("error: LOYALTY_BUSY_TIMEOUT")


@pytest.mark.parametrize("variable", ["LOYALTY_DB", "LOYALTY_RULES"])
def test_an_empty_variable_is_refused_not_taken_for_the_default(till: Shop, variable: str) -> None:
    result = till.run("earn", "C1", "--amount", "5", env={variable: ""})
    assert result.exit_code == 2
    assert f"{variable} is set but empty" in result.stderr


def test_a_huge_history_limit_is_a_usage_error(till: Shop) -> None:
    result = till.run("history", "C1", "--limit", str(10**20))
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_a_dangling_symlink_as_the_ledger_is_refused_and_not_created(shop: Shop) -> None:
    link = shop.dir / "ledger-link.db"
    target = shop.dir / "elsewhere.db"
    link.symlink_to(target)
    message = shop.fails(66, "enroll", "C1", "--db", str(link))
    assert "which does not exist" in message
    assert not target.exists()


def test_an_empty_sqlite_file_with_a_schema_number_is_not_taken_for_a_ledger(shop: Shop) -> None:
    path = shop.dir / "odd.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    message = shop.fails(66, "enroll", "C1", "--db", str(path))
    assert "not a loyalty ledger" in message


def test_customer_ids_that_look_like_negative_numbers_work(shop: Shop) -> None:
    assert shop.ok("enroll", "-1")["customer_id"] == "-1"
    shop.ok("earn", "-1", "--amount", "5")
    assert shop.ok("balance", "-1")["balance"] == 105
    shop.ok("adjust", "-1", "-5", "--reason", "typo")
    assert shop.ok("balance", "-1")["balance"] == 100


def test_non_utf8_arguments_are_refused_in_a_real_process(tmp_path: Path) -> None:
    from .conftest import EXAMPLE_RULES, loyalty_command

    env = {
        **os.environ,
        "LOYALTY_DB": str(tmp_path / "l.db"),
        "LOYALTY_RULES": str(EXAMPLE_RULES),
    }
    bad = os.fsdecode(b"C\xff")
    out = subprocess.run(
        [*loyalty_command(), "enroll", bad], env=env, capture_output=True, text=True
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: customer id is not valid UTF-8")


# --- a full disk and a read-only folder -----------------------------------------------


@pytest.mark.sqlite_only
def test_a_full_ledger_mid_import_is_exit_66_and_leaves_it_intact(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite rolls back by itself when the disk fills; a second ROLLBACK used
    # to raise "cannot rollback - no transaction is active" and hide the cause.
    shop.ok("enroll", "C1", "--at", "2026-01-01")
    lines = [HEADER] + [f"R{n},C1,{n % 90 + 1}.00,2026-11-{n % 28 + 1:02d}," for n in range(3000)]
    sales = write(shop, "\n".join(lines) + "\n")
    ruleset = load_rules(shop.rules)
    store = Store.open(shop.db)
    try:
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages + 5}")
        source = read_source(str(sales), "utf-8-sig")
        with pytest.raises(InputMissing, match="the disk is full"):
            import_sources(store, ruleset, [source], Options(), datetime(2026, 12, 1, tzinfo=UTC))
    finally:
        store.close()
    conn = sqlite3.connect(shop.db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert shop.ok("verify")["ok"] is True


@pytest.fixture
def read_only_copy(shop: Shop) -> Iterator[Path]:
    """The shop's ledger seen through a read-only bind mount of its folder."""
    if os.geteuid() != 0:
        pytest.skip("needs root to bind-mount a folder read-only")
    source = shop.dir / "src"
    source.mkdir()
    shop.ok("enroll", "C1", "--db", str(source / "l.db"))
    mount = shop.dir / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "--bind", str(source), str(mount)]).returncode != 0:
        pytest.skip("bind mounts are not allowed here")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(mount)], check=True)
        yield mount / "l.db"
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_ledger_in_a_read_only_folder_reads_and_refuses_writes_clearly(
    shop: Shop, read_only_copy: Path
) -> None:
    db = str(read_only_copy)
    assert shop.ok("balance", "C1", "--db", db)["balance"] == 100
    assert shop.ok("verify", "--db", db)["ok"] is True
    shop.ok("report", "--db", db)
    message = shop.fails(66, "earn", "C1", "--amount", "5", "--db", db)
    assert "read-only" in message and "not an SQLite database" not in message


@pytest.mark.sqlite_only
def test_an_award_beyond_the_limit_is_refused_and_writes_nothing(shop: Shop) -> None:
    shop.write_rules(
        """\
        program: {name: Shop, timezone: Europe/London}
        earn:
          - {id: base, on: purchase, points_per_unit: 1000}
        """
    )
    shop.ok("enroll", "C1")
    before = snapshot(shop.db)
    message = shop.fails(1, "earn", "C1", "--amount", "1000000000")
    assert "beyond the limit of 1,000,000,000" in message
    assert snapshot(shop.db) == before
    shop.ok("earn", "C1", "--amount", "1000000")  # a billion points exactly: allowed
    everything_still_works(shop)
