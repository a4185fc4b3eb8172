"""A full disk, and a ledger that cannot be written (a read-only file, a read-only folder).

A full disk stops a write with exit 66 and one `error:` line, and leaves a sound
ledger that verifies; the same import, re-run once there is room, ends in exactly
the ledger of a clean run. Where this machine cannot mount a small filesystem (not
root, no tmpfs), `PRAGMA max_page_count` stands in for the full disk, in-process;
that test runs everywhere.

Read-only: root ignores file permissions, so the ledger is shown read-only through a
read-only bind mount (of its folder, or of the file alone). Reads (`balance`,
`history`, `report`, `verify`) work; writes exit 66 with an `error:` line saying the
ledger is read-only (not that it is "not an SQLite database", which could lead an
owner to delete a good ledger); the ledger is unchanged. Mounts are always undone.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ..conftest import EXAMPLE_RULES
from .conftest import (
    REPORTS,
    Outcome,
    assert_contract,
    contract_problems,
    facts,
    facts_diff,
    inprocess_env,
    integrity,
    loyalty_env,
    read_only_bind,
    record,
    remount_tmpfs,
    run_inprocess,
    run_process,
    snapshot,
    tmpfs,
)
from .test_crash import till_export

SHOP = ZoneInfo("Europe/London")


def _start() -> date:
    return datetime.now(UTC).astimezone(SHOP).date() - timedelta(days=90)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    return lines[0]


# --- a full disk ---------------------------------------------------------------------


def test_an_import_onto_a_full_filesystem_exits_66_and_resumes_to_a_clean_ledger(
    tmp_path: Path,
) -> None:
    export = till_export(tmp_path / "till.csv", 3000, _start())  # a ledger of ~1.5 MB
    args = ["import-csv", str(export), "--enroll-unknown", "--quiet"]
    clean_db = tmp_path / "clean.db"
    assert_contract(
        run_process(args, loyalty_env(tmp_path, clean_db, EXAMPLE_RULES), timeout=300),
        {0},
        stdout="any",
    )
    # A filesystem half the size the ledger needs: the import must run out of room.
    room = max(256, clean_db.stat().st_size // 2048)
    with tmpfs(tmp_path / "small", f"{room}k") as small:
        db = small / "ledger.db"
        env = loyalty_env(tmp_path, db, EXAMPLE_RULES)
        full = run_process(args, env, timeout=300)
        assert full.code == 66, full.brief()
        assert_contract(full, {66})
        one_error_line(full.stderr)
        assert integrity(db) == "ok"
        verify = run_process(["verify", "--json"], env)
        assert_contract(verify, {0})
        # Another write on the full disk is refused the same way and changes nothing
        # (what room the rolled-back import left is taken first).
        before = snapshot(db)
        filler = small / "filler"
        with filler.open("wb") as out, contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        earn = run_process(["enroll", "NEW-ON-A-FULL-DISK", "--json"], env)
        assert earn.code == 66, earn.brief()
        one_error_line(earn.stderr)
        filler.unlink()
        assert snapshot(db) == before
        # Room again: the same import finishes the job.
        remount_tmpfs(small, "64m")
        resumed = run_process(args, env, timeout=300)
        assert_contract(resumed, {0}, stdout="any")
        got, clean = facts(db), facts(clean_db)
        assert got == clean, facts_diff(clean, got)
        assert run_process(["verify", "--json"], env).code == 0
    record(
        "disk: full filesystem (tmpfs, half the ledger)",
        imports_stopped=1,
        resumed_equal_to_clean=1,
    )


def test_a_ledger_at_its_max_page_count_stops_the_import_with_exit_66_not_a_raw_sqlite_error(
    tmp_path: Path,
) -> None:
    """The full disk without mounting anything: the connection may not grow the file."""
    from loyalty_cli import importer
    from loyalty_cli.errors import LoyaltyError
    from loyalty_cli.rules import load_rules
    from loyalty_cli.store import Store

    export = till_export(tmp_path / "till.csv", 1500, _start())
    ruleset = load_rules(EXAMPLE_RULES)
    options = importer.Options()
    now = datetime.now(UTC).replace(microsecond=0)
    db, clean_db = tmp_path / "ledger.db", tmp_path / "clean.db"
    with Store.open(clean_db) as ledger:
        source = importer.read_source(str(export), options.encoding)
        importer.import_sources(ledger, ruleset, [source], options, now, enroll_unknown=True)
    with Store.open(db) as ledger:
        pages = ledger.conn.execute("PRAGMA page_count").fetchone()[0]
        ledger.conn.execute(f"PRAGMA max_page_count = {pages + 60}")
        source = importer.read_source(str(export), options.encoding)
        with pytest.raises(LoyaltyError) as stopped:
            importer.import_sources(ledger, ruleset, [source], options, now, enroll_unknown=True)
    assert stopped.value.exit_code == 66, repr(stopped.value)
    assert integrity(db) == "ok"
    verify = run_inprocess(["verify", "--json"], inprocess_env(db, EXAMPLE_RULES))
    assert_contract(verify, {0})
    with Store.open(db) as ledger:
        source = importer.read_source(str(export), options.encoding)
        importer.import_sources(ledger, ruleset, [source], options, now, enroll_unknown=True)
    got, clean = facts(db), facts(clean_db)
    assert got == clean, facts_diff(clean, got)
    record("disk: full (max_page_count)", imports_stopped=1, resumed_equal_to_clean=1)


# --- read-only ------------------------------------------------------------------------


@pytest.fixture
def shop_ledger(tmp_path: Path) -> Path:
    """A small ledger, closed cleanly (no -wal or -shm beside it), in a folder of its own."""
    folder = tmp_path / "shop"
    folder.mkdir()
    db = folder / "ledger.db"
    env = inprocess_env(db, EXAMPLE_RULES)
    day = datetime.now(UTC).astimezone(SHOP).date() - timedelta(days=20)
    for args in (
        ["enroll", "C1", "--name", "Ada", "--at", str(day)],
        ["enroll", "C2", "--at", str(day)],
        [
            "earn",
            "C1",
            "--amount",
            "42.50",
            "--category",
            "shoes",
            "--txn",
            "R1",
            "--at",
            f"{day}T12:00",
        ],
        ["adjust", "C1", "50", "--reason", "welcome back"],
        ["redeem", "C1", "--points", "20"],
    ):
        assert_contract(run_inprocess([*args, "--json"], env), {0})
    leftovers = [p.name for p in folder.iterdir() if p.name != "ledger.db"]
    assert not leftovers, leftovers
    return db


READS = [
    ["balance", "C1", "--json"],
    ["history", "C1", "--json"],
    *[["report", name, "--json"] for name in REPORTS],
    ["verify", "--json"],
]


def writes(csv_file: Path) -> list[list[str]]:
    return [
        ["enroll", "C3", "--json"],
        ["earn", "C1", "--amount", "5.00", "--json"],
        ["redeem", "C1", "--points", "10", "--json"],
        ["adjust", "C1", "5", "--reason", "x", "--json"],
        ["update", "C1", "--name", "Ada L", "--json"],
        ["nightly", "--json"],
        ["import-csv", str(csv_file), "--enroll-unknown", "--json"],
    ]


def copy_snapshot(db: Path, scratch: Path) -> dict[str, object]:
    """A snapshot taken from a copy, so that reading leaves no -wal/-shm beside `db`."""
    scratch.mkdir(exist_ok=True)
    copy = scratch / "copy.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
    copy.write_bytes(db.read_bytes())
    return snapshot(copy)


@pytest.mark.parametrize("what", ["folder", "folder with -wal and -shm", "file"])
def test_a_read_only_ledger_answers_reads_and_refuses_writes_with_exit_66_saying_read_only(
    tmp_path: Path, shop_ledger: Path, what: str
) -> None:
    csv_file = tmp_path / "sales.csv"
    csv_file.write_text("txn_id,customer_id,amount,date\nS1,C2,3.00,2026-01-02\n")
    original = shop_ledger.read_bytes()
    before = copy_snapshot(shop_ledger, tmp_path / "scratch")
    if what == "folder with -wal and -shm":
        # What a reader that could not checkpoint leaves behind: both files, the WAL empty.
        snapshot(shop_ledger)
        assert Path(f"{shop_ledger}-shm").exists()
    if what.startswith("folder"):
        mount, source = tmp_path / "ro", shop_ledger.parent
    else:
        mount, source = tmp_path / "ro.db", shop_ledger
    failures: list[str] = []
    with read_only_bind(source, mount):
        db = mount / shop_ledger.name if what.startswith("folder") else mount
        # The installed binary on a read-only folder; the same code in this process
        # on the other two (a process costs ten times as much).
        real = what == "folder"
        env = loyalty_env(tmp_path, db, EXAMPLE_RULES) if real else inprocess_env(db, EXAMPLE_RULES)
        run: Callable[..., Outcome] = run_process if real else run_inprocess
        for args in READS:
            outcome = run(args, env)
            if outcome.code != 0:
                failures.append(f"read {args[:2]} on a read-only {what}: {outcome.brief()}")
                continue
            assert_contract(outcome, {0})
            if args[0] == "verify":
                assert json.loads(outcome.stdout)["ok"] is True
        for args in writes(csv_file):
            outcome = run(args, env)
            lines = [line for line in outcome.stderr.splitlines() if line.strip()]
            if (
                outcome.code != 66
                or contract_problems(outcome, {66})
                or len(lines) != 1
                or not lines[0].startswith("error: ")
                or "read-only" not in lines[0]
                or "not an SQLite database" in lines[0]
            ):
                failures.append(f"write {args[:2]} on a read-only {what}: {outcome.brief()}")
    record(
        f"disk: read-only {what}", commands=len(READS) + len(writes(csv_file)), wrong=len(failures)
    )
    assert shop_ledger.read_bytes() == original, "the read-only ledger's file changed"
    assert copy_snapshot(shop_ledger, tmp_path / "scratch") == before
    assert not failures, "\n".join(failures)


def test_mounts_are_undone(tmp_path: Path) -> None:
    """The fixtures above leave nothing mounted under the test folders."""
    mounts = Path("/proc/self/mounts")
    if not mounts.exists():
        pytest.skip("no /proc/self/mounts")
    # This run's folder (this worker's, under xdist, whose --dist loadfile keeps the
    # module's mounting tests with this one): not other runs' or other workers'.
    base = str(tmp_path.parent)
    left = [line for line in mounts.read_text().splitlines() if base in line]
    assert not left, left
