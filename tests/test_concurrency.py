"""Real processes racing on one ledger file, through the installed `loyalty` command.

Each test starts its `loyalty` processes back to back with Popen and only then
waits for them, so they overlap for real: the CLI has no start barrier, but
every process spends most of its ~0.1 s start-up importing, and they all reach
`BEGIN IMMEDIATE` at about the same moment.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from loyalty_cli.store import Store
from loyalty_cli.store import connection as ledger_module

from .conftest import Shop, check_error_json, loyalty_command

WELCOME = 100  # the welcome rule in conftest's BASIC_RULES
BUSY = 75

# Processes sharing a ledger file: on PostgreSQL, test_postgres.py's tills.
BACKENDS = ("sqlite",)


class Till:
    """Runs the real `loyalty` executable against the shop's ledger and rules, as
    a till would. Setup and checks go through the in-process `shop` fixture,
    which is much faster than a process; the contenders are always processes."""

    def __init__(self, shop: Shop, tmp_path: Path) -> None:
        self.shop = shop
        self.db = shop.db
        env = dict(os.environ)
        env.pop("LOYALTY_BUSY_TIMEOUT", None)
        env.update(
            XDG_DATA_HOME=str(tmp_path / "data"),
            XDG_CONFIG_HOME=str(tmp_path / "config"),
            LOYALTY_DB=str(shop.db),
            LOYALTY_RULES=str(shop.rules),
        )
        self.env = env

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*loyalty_command(), *args],
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return finish(self.start(*args, env=env))

    def fund(self, customer_id: str, extra: int = 0) -> int:
        """Enroll a customer (welcome points) and top them up; return the balance."""
        self.shop.ok("enroll", customer_id)
        if extra:
            self.shop.ok("adjust", customer_id, str(extra), "--reason", "test top-up")
        balance = self.balance(customer_id)
        assert balance == WELCOME + extra
        return balance

    def balance(self, customer_id: str) -> int:
        balance: int = self.shop.ok("balance", customer_id)["balance"]
        return balance

    def verify(self) -> dict[str, Any]:
        doc = self.shop.ok("verify")
        assert doc["ok"] is True, doc["problems"]
        return doc

    def entry_count(self) -> int:
        with closing(sqlite3.connect(self.db)) as conn:
            count: int = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        return count


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    stdout, stderr = process.communicate(timeout=30)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def race(till: Till, count: int, *args: str) -> list[subprocess.CompletedProcess[str]]:
    """Launch `count` identical commands back to back, then wait for all of them."""
    processes = [till.start(*args) for _ in range(count)]
    return [finish(p) for p in processes]


@contextmanager
def holding_write_lock(db: Path) -> Iterator[None]:
    """Hold the ledger's write lock from this process, as a slow writer would."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")


@pytest.fixture
def till(shop: Shop, tmp_path: Path) -> Till:
    return Till(shop, tmp_path)


# --- redemptions racing on one balance ------------------------------------------


def assert_race_outcome(
    results: list[subprocess.CompletedProcess[str]], start: int, points: int
) -> int:
    """Exactly as many redemptions as the balance covers succeed, one after the
    other; every other one is refused with 'insufficient points'. Returns the
    number that succeeded."""
    expected_wins = min(len(results), start // points)
    wins = [r for r in results if r.returncode == 0]
    losses = [r for r in results if r.returncode != 0]
    assert len(wins) == expected_wins, [(r.returncode, r.stderr) for r in results]
    for loss in losses:
        assert loss.returncode == 1, loss.stderr
        lines = loss.stderr.strip().splitlines()
        assert len(lines) == 1, loss.stderr
        assert lines[0].startswith("error: insufficient points"), loss.stderr
        error = check_error_json(loss.stdout, 1, lines)  # a pipe: the error as JSON too
        assert error["code"] == "insufficient_points"
        assert error["shortfall"] == error["needed"] - error["available"] > 0
    docs = [json.loads(w.stdout) for w in wins]
    for doc in docs:
        assert doc["kind"] == "redeem"
        assert doc["points"] == -points
        assert doc["duplicate"] is False
    # Serialised: each winner saw the balance its predecessor left behind.
    reported = sorted((doc["balance"] for doc in docs), reverse=True)
    assert reported == [start - k * points for k in range(1, expected_wins + 1)]
    return expected_wins


def test_two_racing_redemptions_on_a_balance_for_one_approve_exactly_one(till: Till) -> None:
    start = till.fund("C1", extra=50)  # 150: room for one redemption of 100, not two
    balance = start
    for _ in range(4):
        results = race(till, 2, "redeem", "C1", "--points", "100", "--json")
        wins = assert_race_outcome(results, balance, 100)
        assert wins == 1
        assert till.balance("C1") == balance - 100 == 50
        till.shop.ok("adjust", "C1", "100", "--reason", "top up for the next round")
        balance = till.balance("C1")
        assert balance == start
    till.verify()


@pytest.mark.parametrize(
    ("processes", "extra", "points"),
    [
        (8, 250, 100),  # 350 points: 3 of 8 succeed, 50 left
        (8, 300, 50),  # 400 points: all 8 succeed, exactly 0 left
    ],
)
def test_many_racing_redemptions_spend_exactly_what_the_balance_covers_and_never_go_negative(
    till: Till, processes: int, extra: int, points: int
) -> None:
    start = till.fund("C1", extra=extra)
    results = race(till, processes, "redeem", "C1", "--points", str(points), "--json")
    wins = assert_race_outcome(results, start, points)
    final = till.balance("C1")
    assert final == start - wins * points
    assert final >= 0
    assert till.verify()["entry_count"] == (2 if extra else 1) + wins


def test_racing_purchases_all_land_and_keep_the_hash_chain_intact(till: Till) -> None:
    start = till.fund("C1")
    amounts = [10, 20, 30, 40, 50, 60, 70, 80]
    processes = [till.start("earn", "C1", "--amount", str(a), "--json") for a in amounts]
    results = [finish(p) for p in processes]
    assert [r.returncode for r in results] == [0] * len(amounts), [r.stderr for r in results]
    assert sorted(json.loads(r.stdout)["points"] for r in results) == amounts
    assert till.balance("C1") == start + sum(amounts)
    verify = till.verify()
    assert verify["entry_count"] == 1 + len(amounts)
    assert verify["operation_count"] == 1 + len(amounts)


def test_racing_retries_of_one_receipt_record_it_once_and_report_the_rest_as_duplicates(
    till: Till,
) -> None:
    start = till.fund("C1")
    results = race(till, 6, "earn", "C1", "--amount", "12.34", "--txn", "R-1", "--json")
    assert [r.returncode for r in results] == [0] * 6, [r.stderr for r in results]
    docs = [json.loads(r.stdout) for r in results]
    assert sorted(doc["duplicate"] for doc in docs) == [False] + [True] * 5
    assert {doc["points"] for doc in docs} == {12}
    assert till.balance("C1") == start + 12
    assert till.verify()["operation_count"] == 2


# --- a busy ledger ---------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("earn", "C1", "--amount", "5"),
        ("redeem", "C1", "--points", "10"),
    ],
    ids=["earn", "redeem"],
)
def test_a_write_blocked_by_a_held_lock_gives_up_after_the_busy_timeout_with_exit_75(
    till: Till, command: tuple[str, ...]
) -> None:
    start = till.fund("C1")
    entries = till.entry_count()
    with holding_write_lock(till.db):
        began = time.monotonic()
        result = till.run(*command, env={"LOYALTY_BUSY_TIMEOUT": "0.3"})
        elapsed = time.monotonic() - began
    assert result.returncode == BUSY, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert check_error_json(result.stdout, BUSY, lines)["code"] == "busy"
    assert "busy" in lines[0]
    assert elapsed < ledger_module.DEFAULT_TIMEOUT, "LOYALTY_BUSY_TIMEOUT was not honoured"
    # Released: nothing was written.
    assert till.balance("C1") == start
    assert till.entry_count() == entries


def test_reads_still_answer_while_another_process_holds_the_write_lock(till: Till) -> None:
    start = till.fund("C1", extra=25)
    with holding_write_lock(till.db):
        result = till.run("balance", "C1", "--json", env={"LOYALTY_BUSY_TIMEOUT": "0.3"})
        history = till.run("history", "C1", "--json", env={"LOYALTY_BUSY_TIMEOUT": "0.3"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["balance"] == start
    assert history.returncode == 0, history.stderr
    assert [e["points"] for e in json.loads(history.stdout)["entries"]] == [25, WELCOME]


def test_a_write_waits_for_a_briefly_held_lock_instead_of_failing(till: Till) -> None:
    start = till.fund("C1")
    with holding_write_lock(till.db):
        waiting = till.start("earn", "C1", "--amount", "5", "--json")
        time.sleep(0.5)
        assert waiting.poll() is None, "the write should still be waiting for the lock"
    result = finish(waiting)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["balance"] == start + 5


# --- first use of a new ledger file -----------------------------------------------


def test_opening_a_new_ledger_while_another_process_creates_it_is_not_mistaken_for_a_foreign_file(
    till: Till, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deterministic version of a race seen with 8 concurrent `loyalty enroll`s on a
    # new file (about 1 round in 30): a second process creates the schema right
    # after this one has read application_id = 0, before it reads anything else.
    real_connect = sqlite3.connect
    other: list[subprocess.CompletedProcess[str]] = []

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = real_connect(*args, **kwargs)
        seen_application_id = False

        def trace(sql: str) -> None:
            nonlocal seen_application_id
            # "-- PRAGMA ..." lines are sub-steps of the statement still running.
            if seen_application_id and not other and not sql.startswith("--"):
                other.append(till.run("enroll", "C0", "--json"))
            if "application_id" in sql.lower():
                seen_application_id = True

        conn.set_trace_callback(trace)
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)  # the module the ledger uses
    assert not till.db.exists()
    with Store.open(till.db) as store:
        assert other, "the other process never ran: the race was not set up"
        assert other[0].returncode == 0, other[0].stderr
        assert "C0" in store.accounts(None, ["C0"])
        assert store.verify(datetime.now(UTC)).ok
