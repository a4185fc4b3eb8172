"""Shared fixtures. Every test runs with its own ledger and rules file, and an
environment that points the default paths into tmp_path, so nothing leaks
between tests or into the developer's home."""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from loyalty_cli import cli
from loyalty_cli.cli import app, app_for

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_RULES = ROOT / "rules.example.yaml"

# A small programme that tests can reason about exactly.
BASIC_RULES = """\
program: {name: Test Shop, currency: USD, timezone: Europe/London}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - id: shoes
    on: purchase
    when: {category: {in: [shoes, bags]}}
    points_per_unit: 2
  - {id: welcome, on: enroll, points: 100}
  - {id: referral, on: referral, points: 500}
  - {id: review, on: review, points: 50, cap: {count: 1, per: month}}
rewards:
  - {id: coffee, name: Free coffee, cost: 100}
"""


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LOYALTY_DB", "LOYALTY_RULES", "LOYALTY_BUSY_TIMEOUT", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


class Shop:
    """Runs the CLI against one ledger and one rules file."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.db = tmp_path / "ledger.db"
        self.rules = tmp_path / "rules.yaml"
        self.rules.write_text(BASIC_RULES)
        self.runner = CliRunner()
        self.now: datetime | None = None
        # A postgresql:// URL when the test runs on the PostgreSQL backend
        # (BACKENDS below); the ledger is then there, not in `db`.
        self.url: str | None = None

    def store(self) -> Any:
        """The ledger opened through the store (either backend): its `conn`
        speaks the store's SQL, so a test's own query runs on both."""
        from loyalty_cli.store import Store

        if self.url is not None:
            return Store.open_url(self.url, writer="tests")
        return Store.open(self.db, create=False)

    def tamper(self, *statements: str, triggers: tuple[str, ...] = ()) -> None:
        """Edit the ledger behind loyalty's back, as someone with the file or the
        server's superuser could: on SQLite dropping the `triggers` that would
        refuse it, on PostgreSQL with every trigger off for the session."""
        if self.url is not None:
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("SET session_replication_role = replica")
                for sql in statements:
                    conn.execute(sql)  # type: ignore[call-overload]
            return
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(self.db, isolation_level=None)) as conn:
            for trigger in triggers:
                conn.execute(f"DROP TRIGGER {trigger}")
            for sql in statements:
                conn.execute(sql)

    def clock(self, moment: str | None) -> None:
        """Set what the CLI reads as now (ISO 8601, UTC; a bare date is noon UTC),
        so a test can let time pass: writes may not be dated after now. None: the
        real clock."""
        if moment is None:
            self.now = None
            return
        text = f"{moment}T12:00:00" if len(moment) == 10 else moment
        self.now = datetime.fromisoformat(text).replace(tzinfo=UTC)

    def write_rules(self, text: str) -> Path:
        self.rules.write_text(textwrap.dedent(text))
        return self.rules

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        base = {"LOYALTY_DB": self.url or str(self.db), "LOYALTY_RULES": str(self.rules)}
        if self.now is None:
            return self.runner.invoke(app_for(list(args)), list(args), env={**base, **(env or {})})
        frozen = self.now
        real = cli.now
        cli.now = lambda: frozen
        try:
            return self.runner.invoke(app_for(list(args)), list(args), env={**base, **(env or {})})
        finally:
            cli.now = real

    def ok(self, *args: str) -> dict[str, Any]:
        """Run with --json, assert success, and return the parsed document."""
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        assert result.stderr == "", result.stderr
        doc: dict[str, Any] = json.loads(result.stdout)
        return doc

    def fails(self, code: int, *args: str) -> str:
        """Run, assert the exit code, and return the single stderr error line.
        stdout (a pipe here) holds nothing but the same error as JSON."""
        result = self.run(*args)
        assert result.exit_code == code, (result.exit_code, result.output)
        lines = result.stderr.strip().splitlines()
        assert lines and all(line.startswith("error: ") for line in lines), result.stderr
        check_error_json(result.stdout, code, lines)
        return result.stderr.strip()


def check_error_json(stdout: str, code: int, lines: list[str]) -> dict[str, Any]:
    """The JSON error document of a failed run: one key, the same exit code, and a
    message that is the stderr line's (a rules file's summary stands for its lines)."""
    doc: dict[str, Any] = json.loads(stdout)
    assert list(doc) == ["error"], doc
    error: dict[str, Any] = doc["error"]
    assert error["exit"] == code, error
    assert isinstance(error["code"], str) and error["code"], error
    if error["code"] != "rules_invalid":
        assert lines[0].startswith(f"error: {error['message']}"), (lines, error)
    return error


@pytest.fixture
def backend() -> str:
    """The ledger's backend: "sqlite", or, in a module that lists both in
    BACKENDS, each of them in turn (see pytest_generate_tests)."""
    return "sqlite"


def _on(backend: str, s: Shop, request: pytest.FixtureRequest) -> Shop:
    if backend == "postgresql":
        # A database cloned from the worker's template ledger (db init done once).
        s.url = request.getfixturevalue("pg_ledger_url")
    return s


@pytest.fixture
def shop(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Shop:
    return _on(backend, Shop(tmp_path), request)


@pytest.fixture
def example_shop(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Shop:
    s = Shop(tmp_path)
    shutil.copy(EXAMPLE_RULES, s.rules)
    return _on(backend, s, request)


ALL_BACKENDS = ("sqlite", "postgresql")

# The modules whose shop tests run on PostgreSQL too in every run: the commands
# every till uses (receipts with lines among them), their errors and the reports.
# The whole suite on both backends (1,459 tests) took 4 min 22 s on 2 idle cores,
# against 3 min 12 s for this default; with CI's install and linters that would
# fill its 5-minute budget, so it is asked for: LOYALTY_TEST_BACKEND=both (or
# =postgresql for that half alone).
BOTH_BY_DEFAULT = frozenset(
    {
        "test_bad_input", "test_cli", "test_errors_json", "test_global_options",
        "test_hardening", "test_lifecycle", "test_nightly", "test_rewards",
        "test_shop_time", "test_small_consistencies", "test_tiers", "test_reports",
        "test_receipts",
    }
)  # fmt: skip


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A shop test runs on both backends in a module of BOTH_BY_DEFAULT, or in
    every module with LOYALTY_TEST_BACKEND=both; never in a module that says
    `BACKENDS = ("sqlite",)` (with why) nor when marked `sqlite_only` (they read
    the ledger file, or a command that is SQLite's by nature).
    LOYALTY_TEST_BACKEND=sqlite or =postgresql runs one half only."""
    if not {"shop", "example_shop"} & set(metafunc.fixturenames):
        return
    only = os.environ.get("LOYALTY_TEST_BACKEND", "")
    name = metafunc.module.__name__.rpartition(".")[2]
    wide = only in ("both", "postgresql") or name in BOTH_BY_DEFAULT
    backends: tuple[str, ...] = getattr(
        metafunc.module, "BACKENDS", ALL_BACKENDS if wide else ("sqlite",)
    )
    if metafunc.definition.get_closest_marker("sqlite_only"):
        backends = ("sqlite",)
    if only in ALL_BACKENDS:
        backends = tuple(b for b in backends if b == only)
    metafunc.parametrize("backend", backends)


def loyalty_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).parent / "loyalty"
    return [str(script)] if script.exists() else [sys.executable, "-m", "loyalty_cli"]


Factory = Callable[..., Shop]


# --- the PostgreSQL half ------------------------------------------------------------

_PG_SKIPPED: list[str] = []


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """One throwaway PostgreSQL cluster for the whole run (tests/pgcluster.py),
    or the test is skipped, saying why."""
    from . import pgcluster

    reason = pgcluster.why_not()
    if reason is not None:
        _PG_SKIPPED.append(reason)
        pytest.skip(f"PostgreSQL half skipped: {reason}")
    cluster = pgcluster.Cluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Any) -> str:
    """The owner's URL of a new, empty database on the cluster (no ledger yet)."""
    url: str = pg_cluster.url(pg_cluster.database())
    return url


@pytest.fixture(scope="session")
def pg_template(pg_cluster: Any) -> str:
    """A database holding an empty ledger (db init, the till role granted), made
    once per worker: a test's ledger is a copy of it (CREATE DATABASE ...
    TEMPLATE), which costs a file copy instead of the schema's statements."""
    name = pg_cluster.database()
    result = CliRunner().invoke(
        app,
        ["db", "init", "--grant-till", "till", "--json"],
        env={"LOYALTY_DB": pg_cluster.url(name)},
    )
    assert result.exit_code == 0, result.output
    return name


@pytest.fixture
def pg_ledger_url(pg_cluster: Any, pg_template: str) -> Iterator[str]:
    """The owner's URL of a new database holding an empty ledger, dropped after
    the test (a run makes hundreds: their disk space goes back as it goes)."""
    name = pg_cluster.database(template=pg_template)
    yield pg_cluster.url(name)
    pg_cluster.drop(name)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _PG_SKIPPED:
        terminalreporter.write_line(
            f"PostgreSQL half SKIPPED ({_PG_SKIPPED[0]}): only the SQLite backend was tested"
        )
