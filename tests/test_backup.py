"""`loyalty backup DEST`: a verified, consistent copy of a ledger that tills keep
writing to, which never replaces the ledger, nor an existing file unless asked."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

from loyalty_cli.store import Store
from loyalty_cli.store import backup as backup_module

from .conftest import Shop, check_error_json, loyalty_command

# backup copies a ledger file (on PostgreSQL it refuses, saying pg_dump: test_postgres.py).
BACKENDS = ("sqlite",)


def _operations(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        count: int = conn.execute("SELECT count(*) FROM operations").fetchone()[0]
    return count


def _ledger(shop: Shop, customers: int = 3) -> None:
    for n in range(customers):
        shop.ok("enroll", f"C{n}")
        shop.ok("earn", f"C{n}", "--amount", "25.00", "--txn", f"R{n}")


def test_a_backup_is_a_verified_copy_that_verify_and_balance_read_like_the_ledger(
    shop: Shop,
) -> None:
    _ledger(shop)
    dest = shop.dir / "copy.db"
    doc = shop.ok("backup", str(dest))
    assert doc["ok"] is True and doc["problems"] == []
    assert doc["ledger"] == str(shop.db) and doc["backup"] == str(dest)
    assert doc["operation_count"] == 6 and doc["members"] == 3
    assert doc["bytes"] == dest.stat().st_size and doc["pages"] > 0
    # One self-contained file (no -wal beside it), and nothing else left behind.
    assert sorted(p.name for p in shop.dir.iterdir() if p.name.startswith("copy")) == ["copy.db"]
    assert not [p for p in shop.dir.iterdir() if ".partial-" in p.name]
    ledger = shop.ok("verify")
    assert doc["operations_head"] == ledger["operations_head"]
    original = shop.ok("balance", "C1")
    restored = shop.run("balance", "C1", "--json", env={"LOYALTY_DB": str(dest)})
    assert restored.exit_code == 0
    assert '"balance": ' + str(original["balance"]) in restored.stdout


@pytest.mark.parametrize("name", ["ledger.db", "ledger.db-wal", "ledger.db.heads", "link.db"])
def test_a_backup_never_overwrites_the_ledger_itself_even_with_force(shop: Shop, name: str) -> None:
    _ledger(shop, 1)
    (shop.dir / "link.db").symlink_to(shop.db)
    before = shop.db.read_bytes()
    line = shop.fails(2, "backup", str(shop.dir / name), "--force")
    assert "part of the ledger itself" in line
    assert shop.db.read_bytes() == before


def test_an_existing_file_is_replaced_only_with_force(shop: Shop) -> None:
    _ledger(shop, 1)
    dest = shop.dir / "copy.db"
    dest.write_text("yesterday's backup")
    result = shop.run("backup", str(dest))
    assert result.exit_code == 2
    check_error_json(result.stdout, 2, result.stderr.strip().splitlines())
    assert "already exists; pass --force" in result.stderr
    assert dest.read_text() == "yesterday's backup"
    assert shop.ok("backup", str(dest), "--force")["ok"] is True
    assert _operations(dest) == 2


def test_unusable_destinations_and_a_missing_ledger_are_refused_with_one_line(
    shop: Shop,
) -> None:
    assert "no ledger at" in shop.fails(66, "backup", str(shop.dir / "copy.db"))
    _ledger(shop, 1)
    assert "is a directory" in shop.fails(2, "backup", str(shop.dir), "--force")
    assert "does not exist" in shop.fails(2, "backup", str(shop.dir / "no" / "copy.db"))
    assert not (shop.dir / "copy.db").exists()


def test_a_ledger_that_does_not_verify_leaves_the_last_good_backup_in_place(shop: Shop) -> None:
    _ledger(shop, 2)
    dest = shop.dir / "copy.db"
    shop.ok("backup", str(dest))
    good = dest.read_bytes()
    with closing(sqlite3.connect(shop.db, isolation_level=None)) as conn:
        conn.execute("DROP TRIGGER entries_no_update")
        conn.execute("UPDATE entries SET points = points + 1000 WHERE id = 2")
    result = shop.run("backup", str(dest), "--force", "--json")
    assert result.exit_code == 1
    assert "does not match the hash chain" in result.stderr
    assert '"ok": false' in result.stdout
    assert dest.read_bytes() == good
    assert not [p for p in shop.dir.iterdir() if ".partial-" in p.name]


# --- while a till writes ----------------------------------------------------------


class Writer:
    """A till process earning in a loop (one `loyalty earn` process per sale)
    until told to stop; each sale's exit status is counted."""

    SCRIPT = (
        'i=0; while [ ! -e "$STOP" ]; do i=$((i+1)); '
        '"$@" earn "C$((i % 3))" --amount 1.00 --txn "W$i" --json >/dev/null '
        '|| { echo "earn $i failed"; exit 1; }; done; echo "$i"'
    )

    def __init__(self, shop: Shop) -> None:
        self.stop = shop.dir / "stop"
        env = dict(os.environ, LOYALTY_DB=str(shop.db), LOYALTY_RULES=str(shop.rules))
        env["STOP"] = str(self.stop)
        self.process = subprocess.Popen(
            ["sh", "-c", self.SCRIPT, "writer", *loyalty_command()],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self) -> int:
        """Stop the loop; the number of sales it made, all of which succeeded."""
        self.stop.touch()
        out, err = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, (out, err)
        return int(out.strip())


def _wait_for_growth(db: Path, beyond: int) -> None:
    deadline = time.monotonic() + 60
    while _operations(db) <= beyond:
        assert time.monotonic() < deadline, "the writer made no sale in a minute"
        time.sleep(0.02)


def test_a_backup_taken_while_a_till_writes_is_one_consistent_moment_that_verifies(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ledger(shop)
    writer = Writer(shop)
    try:
        _wait_for_growth(shop.db, 6)
        steps: list[int] = []

        class Clock:
            # The pause between two steps of the copy waits until the till has
            # committed another sale: the copy is certainly taken across writes.
            @staticmethod
            def sleep(_: float) -> None:
                if not steps:
                    _wait_for_growth(shop.db, started)
                steps.append(1)

        monkeypatch.setattr(backup_module, "time", Clock)
        dest = shop.dir / "copy.db"
        started = _operations(shop.db)
        with Store.open(shop.db) as store:
            result = backup_module.backup(store.connection, dest, pages=1, pause=0.0)
        after = _operations(shop.db)
        assert steps, "the copy was made in one step"
        assert result.report.ok, result.report.problems
        copied = _operations(dest)
        # The moment the copy began, not a mix of pages from before and after a sale.
        assert started <= copied < after
        monkeypatch.undo()
        # And through the command itself, as cron runs it, while the till goes on.
        again = subprocess.run(
            [*loyalty_command(), "backup", str(shop.dir / "cli.db"), "--json"],
            env=dict(os.environ, LOYALTY_DB=str(shop.db)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert again.returncode == 0, again.stderr
    finally:
        sales = writer.finish()
    assert sales >= 2
    assert _operations(shop.db) == 6 + sales
    assert shop.ok("verify")["ok"] is True
    for copy in ("copy.db", "cli.db"):
        checked = shop.run("verify", "--json", env={"LOYALTY_DB": str(shop.dir / copy)})
        assert checked.exit_code == 0, checked.output
