"""import-csv as cron runs it: killed part-way and re-run, and alongside a till."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from .conftest import EXAMPLE_RULES, loyalty_command

ROWS = 3000


def big_csv(path: Path, rows: int = ROWS) -> Path:
    lines = ["txn_id,customer_id,amount,date,category"]
    categories = ["", "shoes", "bags", "books"]
    for n in range(rows):
        day = 1 + n * 28 // rows  # in date order: no row before the one that enrolled
        lines.append(
            f"R{n},C{n % 60},{5 + n % 90}.{n % 100:02d},2026-10-{day:02d},{categories[n % 4]}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def env_for(tmp_path: Path, db: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LOYALTY_DB": str(db),
        "LOYALTY_RULES": str(EXAMPLE_RULES),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }


def count(db: Path, sql: str) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def ledger_facts(db: Path) -> list[tuple[object, ...]]:
    """What an import leaves, without ids, record times or hashes."""
    with sqlite3.connect(db) as conn:
        return sorted(
            conn.execute(
                "SELECT o.txn, e.customer_id, e.kind, e.points, e.rule, e.occurred "
                "FROM entries e JOIN operations o ON o.id = e.op_id"
            ).fetchall(),
            key=repr,
        )


def test_an_import_killed_part_way_finishes_on_the_rerun_with_nothing_lost_or_doubled(
    tmp_path: Path,
) -> None:
    csv_file = big_csv(tmp_path / "sales.csv")
    killed_db, clean_db = tmp_path / "killed.db", tmp_path / "clean.db"
    command = [*loyalty_command(), "import-csv", str(csv_file), "--enroll-unknown", "--quiet"]
    run = subprocess.Popen(command, env=env_for(tmp_path, killed_db))
    deadline = time.monotonic() + 60
    while count(killed_db, "SELECT count(*) FROM operations WHERE kind = 'purchase'") < 500:
        assert run.poll() is None, "the import finished before it could be killed: make it bigger"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait()
    partial = count(killed_db, "SELECT count(*) FROM operations WHERE kind = 'purchase'")
    assert 500 <= partial < ROWS
    # The interrupted run is visible: started, never finished.
    assert count(killed_db, "SELECT count(*) FROM runs WHERE command = 'import-started'") == 1
    assert count(killed_db, "SELECT count(*) FROM runs WHERE command = 'import'") == 0

    rerun = subprocess.run(command, env=env_for(tmp_path, killed_db), check=False, timeout=120)
    assert rerun.returncode == 0
    clean = subprocess.run(command, env=env_for(tmp_path, clean_db), check=False, timeout=120)
    assert clean.returncode == 0
    assert count(killed_db, "SELECT count(*) FROM operations WHERE kind = 'purchase'") == ROWS
    assert ledger_facts(killed_db) == ledger_facts(clean_db)
    verify = subprocess.run(
        [*loyalty_command(), "verify", "--json"],
        env=env_for(tmp_path, killed_db),
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout


def test_the_till_can_earn_while_an_import_runs(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    env = env_for(tmp_path, db)
    subprocess.run([*loyalty_command(), "enroll", "TILL"], env=env, check=True, capture_output=True)
    csv_file = big_csv(tmp_path / "sales.csv", rows=8000)
    run = subprocess.Popen(
        [*loyalty_command(), "import-csv", str(csv_file), "--enroll-unknown", "--quiet"], env=env
    )
    try:
        while count(db, "SELECT count(*) FROM operations WHERE kind = 'purchase'") < 100:
            time.sleep(0.01)
        for n in range(5):
            earn = subprocess.run(
                [*loyalty_command(), "earn", "TILL", "--amount", "3.00", "--txn", f"T{n}"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            # Refused with exit 75 if the import held the write lock past the
            # busy timeout; how long it waited is bench_import's to measure.
            assert earn.returncode == 0, earn.stderr
            if n == 0:
                still_running = run.poll() is None
    finally:
        run.wait(timeout=120)
    assert run.returncode == 0
    assert still_running, "the import ended before the till's earns: make it bigger"
