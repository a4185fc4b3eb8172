"""--db, --rules and --json/--no-json before the command or after it, and shell
completion."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import Shop, check_error_json, loyalty_command


def test_options_before_the_command_work_as_after_it(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    other = shop.dir / "other.db"
    before = shop.run("--db", str(other), "--json", "enroll", "C2")
    assert before.exit_code == 0, before.output
    after = shop.run("balance", "C2", "--db", str(other), "--json")
    assert json.loads(after.stdout)["balance"] == 100
    # the same command, the option on either side of it, the same answer
    front = shop.run("--db", str(other), "balance", "C2", "--json")
    assert front.stdout == after.stdout
    # C2 is not in the ledger LOYALTY_DB names: the option before the command won
    assert shop.run("balance", "C2", "--json").exit_code == 1


@pytest.mark.sqlite_only
def test_the_command_s_own_option_wins_over_one_before_it(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    missing = shop.dir / "missing.db"
    result = shop.run("--db", str(missing), "balance", "C1", "--db", str(shop.db), "--json")
    assert result.exit_code == 0, result.output
    assert shop.run("--no-json", "balance", "C1", "--json").stdout.startswith("{")


def test_rules_and_no_json_before_the_command(shop: Shop) -> None:
    rules = shop.dir / "double.yaml"
    rules.write_text(
        "program: {name: D, currency: USD, timezone: Europe/London}\n"
        "earn:\n  - {id: welcome, on: enroll, points: 200}\n"
    )
    assert json.loads(shop.run("--rules", str(rules), "enroll", "C1").stdout)["points"] == 200
    table = shop.run("--no-json", "balance", "C1")
    assert table.exit_code == 0
    assert not table.stdout.startswith("{")
    assert "C1" in table.stdout


def test_an_option_the_command_does_not_take_is_refused_before_it_too(shop: Shop) -> None:
    result = shop.run("--rules", str(shop.rules), "verify")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --rules does not apply to '")
    assert " verify' (see '" in result.stderr
    assert check_error_json(result.stdout, 2, result.stderr.splitlines())["field"] == "--rules"


def test_shell_completion_completes_commands_and_options(tmp_path: Path) -> None:
    def complete(words: str) -> list[str]:
        env = {
            **os.environ,
            "_LOYALTY_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        }
        done = subprocess.run(
            loyalty_command(), env=env, capture_output=True, text=True, check=False, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("loyalty bal") == ["balance"]
    assert "--as-of" in complete("loyalty report --")


def _help(app: object, args: list[str]) -> str:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, args)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    return result.output


def test_a_process_builds_only_the_command_it_runs_and_answers_as_the_whole_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.main import get_command

    from loyalty_cli.cli import app, app_for

    # The whole app built once for this test, not once per --help asked of it.
    whole = get_command(app)
    monkeypatch.setattr(
        "typer.testing._get_command", lambda a: whole if a is app else get_command(a)
    )
    listed = _help(app, ["--help"]).split("Commands:\n")[1].split("\n\n")[0]
    names = [line.split()[0] for line in listed.splitlines() if not line.startswith("   ")]
    assert {"balance", "earn", "import-csv", "report", "customer", "db", "rules"} <= set(names)
    befores: list[list[str]] = [[], ["--db", "x.db", "--json"], ["--rules=r.yaml", "--no-json"]]
    for n, name in enumerate(names):
        args = [*befores[n % 3], name, "--help"]
        only = app_for(args)
        assert only is not app
        assert _help(only, args) == _help(app, args), name
    # anything but a command after those options gets the whole app
    for args in (
        ["--help"],
        ["--version"],
        [],
        ["balanc", "C1"],
        ["--db", "balance"],
        ["--help", "balance"],
    ):
        assert app_for(args) is app, args
