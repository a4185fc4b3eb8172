"""A few runs of the real installed `loyalty` command, as cron and scripts run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import EXAMPLE_RULES, loyalty_command


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        loyalty_command() + args, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def cron_env(tmp_path: Path) -> dict[str, str]:
    """Almost empty, as under cron: no terminal, no HOME-dependent defaults used."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LOYALTY_DB": str(tmp_path / "shop.db"),
        "LOYALTY_RULES": str(EXAMPLE_RULES),
    }


def test_installed_command_round_trip_with_json_on_stdout(tmp_path: Path) -> None:
    env = cron_env(tmp_path)
    assert run(["enroll", "C1"], env).returncode == 0
    earned = run(["earn", "C1", "--amount", "19.99", "--txn", "T1"], env)
    assert earned.returncode == 0, earned.stderr
    assert earned.stderr == ""
    doc = json.loads(earned.stdout)  # piped: JSON without asking
    assert doc["points"] == 19 + 50  # base + first purchase
    balance = run(["balance", "C1", "--json"], env)
    assert json.loads(balance.stdout)["balance"] == 100 + 69


def test_installed_command_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    env = cron_env(tmp_path)
    missing = run(["balance", "C1"], env)
    assert missing.returncode == 66
    assert json.loads(missing.stdout)["error"]["code"] == "input_missing"  # a pipe: JSON
    assert missing.stderr.startswith("error: no ledger at") and missing.stderr.count("\n") == 1
    run(["enroll", "C1"], env)
    refused = run(["redeem", "C1", "--points", "1000"], env)
    assert refused.returncode == 1
    assert refused.stderr == "error: insufficient points: 'C1' has 100, needs 1000 (short by 900)\n"
    bad_rules = tmp_path / "bad.yaml"
    bad_rules.write_text("program: {name: x}\n")
    invalid = run(["earn", "C1", "--amount", "5", "--rules", str(bad_rules)], env)
    assert invalid.returncode == 78
    assert "Traceback" not in invalid.stderr


def test_python_dash_m_works(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loyalty_cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("loyalty ")
