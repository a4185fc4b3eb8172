"""Errors as JSON: a script that asked for JSON (or reads a pipe) gets the error as one
`{"error": {...}}` document on stdout, while the person still gets the `error:` line
on stderr and the exit code is unchanged."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import EXAMPLE_RULES, Shop, check_error_json, loyalty_command


def error_of(shop: Shop, code: int, *args: str) -> dict[str, Any]:
    result = shop.run(*args)
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    return check_error_json(result.stdout, code, lines)


def test_a_refused_redemption_carries_the_balance_and_the_shortfall(shop: Shop) -> None:
    shop.ok("enroll", "C1")  # 100 welcome points
    error = error_of(shop, 1, "redeem", "C1", "--points", "250", "--json")
    assert error == {
        "code": "insufficient_points",
        "exit": 1,
        "message": "insufficient points: 'C1' has 100, needs 250 (short by 150)",
        "field": "--points",
        "customer_id": "C1",
        "balance": 100,
        "available": 100,
        "pending": 0,
        "needed": 250,
        "shortfall": 150,
    }


def test_a_reward_too_dear_is_refused_with_the_same_figures(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    shop.ok("redeem", "C1", "--points", "50")
    error = error_of(shop, 1, "redeem", "C1", "--reward", "coffee")
    assert (error["code"], error["needed"], error["shortfall"]) == ("insufficient_points", 100, 50)


def test_no_json_keeps_stdout_empty_and_the_exit_code(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    result = shop.run("redeem", "C1", "--points", "250", "--no-json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: insufficient points")


def test_a_bad_value_names_its_option_as_the_field(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    error = error_of(shop, 2, "earn", "C1", "--amount", "abc")
    assert (error["code"], error["field"]) == ("usage", "--amount")
    error = error_of(shop, 2, "earn", "C1", "--amount", "5", "--quantity", "0")
    assert (error["code"], error["field"]) == ("usage", "--quantity")


def test_a_usage_error_is_json_too_and_last_of_json_or_no_json_wins(shop: Shop) -> None:
    error = error_of(shop, 2, "balance", "C1", "--bogus", "--json")
    assert error["code"] == "usage"
    assert "No such option: --bogus" in error["message"]
    result = shop.run("balance", "C1", "--json", "--bogus", "--no-json")
    assert (result.exit_code, result.stdout) == (2, "")


def test_refusals_have_codes_scripts_can_branch_on(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    shop.ok("earn", "C1", "--amount", "10", "--txn", "R1")
    unknown = error_of(shop, 1, "balance", "C9")
    assert (unknown["code"], unknown["customer_id"]) == ("unknown_customer", "C9")
    again = error_of(shop, 1, "enroll", "C1")
    assert again["code"] == "already_enrolled"
    conflict = error_of(shop, 1, "earn", "C1", "--amount", "11", "--txn", "R1")
    assert (conflict["code"], conflict["field"], conflict["txn"]) == ("txn_conflict", "--txn", "R1")
    reward = error_of(shop, 1, "redeem", "C1", "--reward", "cofee")
    assert (reward["code"], reward["field"]) == ("unknown_reward", "--reward")


def test_an_invalid_rules_file_points_at_its_file_and_line(shop: Shop) -> None:
    shop.write_rules(
        """\
        program: {name: X, currency: USD, timezone: Europe/London}
        earn:
          - {id: base, on: purchase, points_per_unit: 1, multiplyer: 2}
          - {id: review, on: review, points: -5}
        """
    )
    error = error_of(shop, 78, "rules", "check")
    assert error["code"] == "rules_invalid"
    assert (error["file"], error["line"]) == (str(shop.rules), 3)
    assert [(p["line"], p["col"]) for p in error["problems"]] == [(3, 50), (4, 38)]


def test_a_missing_file_is_named(shop: Shop) -> None:
    error = error_of(shop, 66, "balance", "C1", "--db", str(shop.dir / "none.db"))
    assert (error["code"], error["file"]) == ("input_missing", str(shop.dir / "none.db"))


@pytest.mark.sqlite_only
def test_a_csv_missing_a_column_points_at_its_header(shop: Shop) -> None:
    sales = shop.dir / "sales.csv"
    sales.write_text("customer_id,date\nC1,2026-11-01\n")
    error = error_of(shop, 65, "import-csv", str(sales))
    assert (error["code"], error["file"], error["line"]) == ("data_rejected", str(sales), 1)


@pytest.mark.sqlite_only
def test_a_command_that_printed_its_document_adds_no_second(shop: Shop) -> None:
    """import-csv with rejected rows: its summary says so; stdout stays one document."""
    shop.ok("enroll", "C1")
    sales = shop.dir / "sales.csv"
    sales.write_text("txn_id,customer_id,amount,date\nT1,C1,abc,2026-11-01\n")
    result = shop.run("import-csv", str(sales))
    assert result.exit_code == 65
    assert json.loads(result.stdout)["rejected"] == 1


def test_csv_output_gets_no_json_error(shop: Shop) -> None:
    result = shop.run("report", "customers", "--csv", "--db", str(shop.dir / "none.db"))
    assert (result.exit_code, result.stdout) == (66, "")
    assert result.stderr.startswith("error: ")


def test_quiet_keeps_a_pipe_empty_unless_json_is_asked_for(shop: Shop) -> None:
    args = ("import-csv", str(shop.dir / "none.csv"), "--quiet")
    result = shop.run(*args)
    assert (result.exit_code, result.stdout) == (66, "")
    assert error_of(shop, 66, *args, "--json")["code"] == "input_missing"


def test_the_installed_command_in_a_pipe_prints_the_error_as_json(tmp_path: Path) -> None:
    env = {"LOYALTY_DB": str(tmp_path / "shop.db"), "LOYALTY_RULES": str(EXAMPLE_RULES)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*loyalty_command(), *args], env=env, capture_output=True, text=True, check=False
        )

    assert run("enroll", "C1").returncode == 0
    refused = run("redeem", "C1", "--points", "1000")
    assert refused.returncode == 1
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: insufficient points")
    error = check_error_json(refused.stdout, 1, lines)
    assert (error["balance"], error["shortfall"]) == (100, 900)
