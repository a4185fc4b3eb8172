"""The benchmark scripts run against the package as it is: they import parts of it,
so a rename in loyalty_cli must not break them unnoticed."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import EXAMPLE_RULES, Shop

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"

# The benchmark scripts build ledger files (scripts/bench_pg: the PostgreSQL ones).
BACKENDS = ("sqlite",)


@pytest.mark.parametrize(
    "script",
    ["bench_core", "bench_import", "bench_report", "bench_simulate", "bench_games", "bench_pg"],
)
def test_each_benchmark_starts(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_the_import_floor_copies_a_ledger_row_for_row(shop: Shop) -> None:
    """The floor inserts exactly the rows an import wrote: the copy is the same
    ledger, and it verifies."""
    shop.rules.write_text(EXAMPLE_RULES.read_text())
    csv = shop.dir / "sales.csv"
    csv.write_text(
        "txn_id,customer_id,amount,date,category\n"
        + "".join(f"R{n},C{n % 3},{n * 7}.50,2026-11-{10 + n:02d} 10:00,shoes\n" for n in range(9))
    )
    assert shop.ok("import-csv", str(csv), "--enroll-unknown")["imported"] == 9
    copy = shop.dir / "floor.db"
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_import"), "--floor-insert", str(shop.db), str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)["rows"]

    def dump(db: Path) -> dict[str, list[tuple[object, ...]]]:
        with sqlite3.connect(db) as conn:
            return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in counts}

    def schema(db: Path) -> list[tuple[object, ...]]:
        with sqlite3.connect(db) as conn:
            return conn.execute(
                "SELECT type, name, sql FROM sqlite_master ORDER BY name"
            ).fetchall()

    assert dump(copy) == dump(shop.db)
    assert schema(copy) == schema(shop.db)  # the indexes the import made as it went too
    assert counts["entries"] > 9 and counts["customers"] == 3
    assert shop.ok("verify", "--db", str(copy))["ok"] is True
