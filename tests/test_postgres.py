"""The same ledger on PostgreSQL: a throwaway cluster (tests/pgcluster.py), the
CLI in-process and as real till processes. Skipped, and said so in the run's
summary, where there is no PostgreSQL or no psycopg."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from loyalty_cli.store.schema import SCHEMA_VERSION

from .conftest import Shop, check_error_json, loyalty_command
from .pgcluster import TILL


def _pg(shop: Shop, url: str) -> dict[str, str]:
    return {"LOYALTY_DB": url}


def _ok(shop: Shop, env: dict[str, str], *args: str) -> dict[str, Any]:
    result = shop.run(*args, "--json", env=env)
    assert result.exit_code == 0, (args, result.output)
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def _init(shop: Shop, url: str, *roles: str) -> dict[str, Any]:
    grants = [arg for role in roles for arg in ("--grant-till", role)]
    return _ok(shop, {"LOYALTY_DB": url}, "db", "init", *grants)


def _connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


# The commands both backends run, with what differs by nature left out: the chain
# heads (each customer's profile digest is salted at random).
SCENARIO: list[tuple[str, ...]] = [
    ("enroll", "C1", "--name", "Ada", "--email", "ada@example.com"),
    ("enroll", "C2", "--referred-by", "C1", "--birthday", "1990-04-17"),
    ("earn", "C1", "--amount", "120.50", "--category", "shoes", "--txn", "R1"),
    ("earn", "C1", "--amount", "120.50", "--category", "shoes", "--txn", "R1"),
    ("earn", "C2", "--event", "review", "--txn", "V1"),
    ("earn", "C2", "--amount", "10.00", "--dry-run"),
    ("redeem", "C1", "--reward", "coffee", "--txn", "X1"),
    ("redeem", "C1", "--points", "50", "--reason", "gift wrap"),
    ("adjust", "C2", "-20", "--reason", "goodwill taken back"),
    ("refund", "R1", "--amount", "20.50", "--txn", "F1"),
    ("update", "C1", "--phone", "+44 20 7946 0000"),
    ("tier", "C1", "--set", "silver", "--reason", "launch", "--until", "2027-01-31"),
    ("tier", "C1"),
    ("rewards", "C1"),
    ("balance", "C1"),
    ("balance", "C2"),
    ("balance", "C1", "--as-of", "2026-11-28T12:00"),
    ("history", "C1"),
    ("history", "C2", "--limit", "2"),
]
REFUSED: list[tuple[str, ...]] = [
    ("redeem", "C2", "--points", "100000"),
    ("earn", "C9", "--amount", "5.00"),
    ("earn", "C1", "--amount", "99.00", "--txn", "R1"),
    ("enroll", "C1"),
]


def _scenario(shop: Shop, env: dict[str, str]) -> list[Any]:
    out: list[Any] = []
    for step, args in enumerate(SCENARIO):
        shop.clock(f"2026-11-27T10:{step:02d}:00")
        out.append(_ok(shop, env, *args))
    for args in REFUSED:
        result = shop.run(*args, "--json", env=env)
        out.append((result.exit_code, json.loads(result.stdout), result.stderr))
    verified = _ok(shop, env, "verify")
    for head in ("entries_head", "operations_head"):
        assert verified.pop(head)
    out.append(verified)
    return out


def test_the_same_commands_give_the_same_answers_on_postgresql_as_on_a_file(
    shop: Shop, pg_url: str
) -> None:
    shop.write_rules(
        shop.rules.read_text()
        + "tiers:\n  metric: spend\n  window: calendar_year\n  downgrade: keep_next_window\n  levels:\n    - {id: bronze, name: Bronze, threshold: 0}\n    - {id: silver, name: Silver, threshold: 100}\n"
    )
    assert _init(shop, pg_url)["created"] is True
    on_file = _scenario(shop, {})
    on_server = _scenario(shop, {"LOYALTY_DB": pg_url})
    assert on_server == on_file
    assert on_file[-1]["ok"] is True and on_file[-1]["operation_count"] > 10


def test_db_init_makes_the_schema_once_and_grants_only_roles_that_exist(
    shop: Shop, pg_url: str
) -> None:
    env = {"LOYALTY_DB": pg_url}
    missing = shop.run("balance", "C1", env=env)
    assert missing.exit_code == 66
    assert "no ledger at" in missing.stderr and "loyalty db init" in missing.stderr
    assert _init(shop, pg_url) == {
        "db": pg_url,
        "created": True,
        "schema_version": SCHEMA_VERSION,
        "tills": [],
    }
    again = _init(shop, pg_url, TILL)
    assert again["created"] is False and again["tills"] == [TILL]
    result = shop.run("db", "init", "--grant-till", "nobody_here", env=env)
    assert result.exit_code == 2 and "no such role" in result.stderr
    result = shop.run("db", "init", "--grant-till", "x; DROP TABLE entries", env=env)
    assert result.exit_code == 2 and "is not a role name" in result.stderr
    assert _ok(shop, env, "verify")["ok"] is True


def test_a_password_in_the_url_is_never_shown_and_a_dead_server_exits_66(
    shop: Shop, pg_cluster: Any
) -> None:
    url = "postgresql://owner:s3cret@127.0.0.1:1/none"
    result = shop.run("balance", "C1", env={"LOYALTY_DB": url})
    assert result.exit_code == 66, result.output
    assert "s3cret" not in result.output and "s3cret" not in result.stderr
    assert "cannot connect to postgresql://owner@127.0.0.1:1/none" in result.stderr
    check_error_json(result.stdout, 66, result.stderr.strip().splitlines())


def test_without_psycopg_a_postgresql_url_is_refused_saying_how_to_install_it(
    shop: Shop, tmp_path: Path
) -> None:
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "psycopg.py").write_text("raise ImportError('not installed')\n")
    env = dict(os.environ, PYTHONPATH=str(hidden), LOYALTY_DB="postgresql:///?service=shop")
    result = subprocess.run(
        [*loyalty_command(), "balance", "C1"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: a postgresql:// ledger needs psycopg: pip install 'loyalty-cli[postgres]'\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ("nightly",),
        ("report",),
        ("report", "liability"),
        ("import-csv", "{dir}/sales.csv"),
        ("backup", "{dir}/copy.db"),
    ],
)
def test_commands_not_yet_on_postgresql_refuse_with_one_line_and_exit_2(
    shop: Shop, pg_url: str, args: tuple[str, ...]
) -> None:
    (shop.dir / "sales.csv").write_text("customer_id,amount\nC1,5.00\n")
    _init(shop, pg_url)
    result = shop.run(*(a.format(dir=shop.dir) for a in args), env={"LOYALTY_DB": pg_url})
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not run on a PostgreSQL ledger yet" in lines[0]
    error = check_error_json(result.stdout, 2, lines)
    assert error["code"] == "unsupported_backend"


def test_a_sqlite_balance_does_not_load_psycopg(tmp_path: Path) -> None:
    from .test_architecture import _ledger_env, _loaded

    assert _loaded(_ledger_env(tmp_path), ["balance", "C1"], {"psycopg"}) == []


# --- roles and triggers ---------------------------------------------------------------

EDITS = [
    "UPDATE entries SET points = points + 1000",
    "DELETE FROM operations",
    "TRUNCATE draws",
    "UPDATE customers SET salt = '\\x00'",
    "DELETE FROM customers",
    "DROP TRIGGER entries_no_update ON entries",
    "UPDATE loyalty_meta SET value = '1'",
]


def test_a_till_role_may_append_and_read_but_never_edit_the_ledger(
    shop: Shop, pg_cluster: Any, pg_url: str
) -> None:
    import psycopg

    _init(shop, pg_url, TILL)
    till = pg_url.replace("//owner@", f"//{TILL}@")
    env = {"LOYALTY_DB": till}
    _ok(shop, env, "enroll", "C1")
    _ok(shop, env, "earn", "C1", "--amount", "30.00", "--txn", "T1")
    _ok(shop, env, "update", "C1", "--name", "Ada")
    with _connect(till) as conn:
        for statement in EDITS:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    # The owner is held by the triggers (dropping them is the owner's alone, and
    # verify reports a missing one).
    with _connect(pg_url) as conn:
        for statement in EDITS[:5]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only|never"):
                conn.execute(statement)
    assert _ok(shop, env, "balance", "C1")["balance"] == 130
    assert _ok(shop, env, "verify")["ok"] is True
    with _connect(pg_url) as conn:
        conn.execute("ALTER TABLE entries DISABLE TRIGGER entries_no_update")
        conn.execute("UPDATE entries SET points = points + 1000 WHERE id = 2")
    result = shop.run("verify", "--json", env=env)
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert any("entries_no_update missing" in p for p in doc["problems"])
    assert any("does not match the hash chain" in p for p in doc["problems"])


# --- real till processes --------------------------------------------------------------


def _start(shop: Shop, url: str, *args: str, **extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ, LOYALTY_DB=url, LOYALTY_RULES=str(shop.rules), **extra)
    return subprocess.Popen(
        [*loyalty_command(), *args, "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def test_till_processes_racing_on_shared_customers_never_overdraw_and_record_each_key_once(
    shop: Shop, pg_cluster: Any, pg_url: str
) -> None:
    _init(shop, pg_url, TILL)
    till = pg_url.replace("//owner@", f"//{TILL}@")
    env = {"LOYALTY_DB": till}
    for n in range(3):
        _ok(shop, env, "enroll", f"C{n}")  # 100 welcome points
        _ok(shop, env, "adjust", f"C{n}", "200", "--reason", "opening balance")
    # 12 redemptions of 100 (4 per customer, who each hold 300), and 12 purchases
    # under 6 receipt keys (each sent by two tills), all at once.
    processes = [
        _start(shop, till, "redeem", f"C{i % 3}", "--points", "100", "--txn", f"X{i}")
        for i in range(12)
    ]
    processes += [
        _start(shop, till, "earn", f"C{k % 3}", "--amount", "10.00", "--txn", f"K{k}")
        for k in [*range(6), *range(6)]
    ]
    results = [_finish(p) for p in processes]
    redeems, earns = results[:12], results[12:]
    approved = Counter(json.loads(out)["customer_id"] for code, out, _ in redeems if code == 0)
    assert approved == {"C0": 3, "C1": 3, "C2": 3}
    for code, out, err in redeems:
        if code:
            assert code == 1 and "insufficient points" in err, err
    assert all(code == 0 for code, _, _ in earns), [e for _, _, e in earns]
    duplicates = sum(json.loads(out).get("duplicate", False) for _, out, _ in earns)
    assert duplicates == 6
    with _connect(pg_url) as conn:
        keys = dict(
            conn.execute(
                "SELECT txn, count(*) FROM operations WHERE txn IS NOT NULL GROUP BY txn"
            ).fetchall()
        )
        sums = dict(
            conn.execute(
                "SELECT customer_id, SUM(points)::bigint FROM entries GROUP BY customer_id"
            ).fetchall()
        )
    assert set(keys.values()) == {1}
    assert {k for k in keys if k.startswith("K")} == {f"K{k}" for k in range(6)}
    for n in range(3):
        # 300, less 3 redemptions of 100, plus 2 purchases of 10 points each.
        expected = 300 - 300 + 2 * 10
        assert sums[f"C{n}"] == expected
        assert _ok(shop, env, "balance", f"C{n}")["balance"] == expected
    assert _ok(shop, env, "verify")["ok"] is True


def test_a_write_waiting_for_the_lock_past_the_busy_timeout_exits_75(
    shop: Shop, pg_url: str
) -> None:
    from loyalty_cli.store.postgres import WRITE_LOCK

    _init(shop, pg_url)
    _ok(shop, {"LOYALTY_DB": pg_url}, "enroll", "C1")
    with _connect(pg_url) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        code, out, err = _finish(
            _start(shop, pg_url, "earn", "C1", "--amount", "5.00", LOYALTY_BUSY_TIMEOUT="0.3")
        )
        # Reads do not wait for writers.
        read = _finish(_start(shop, pg_url, "balance", "C1"))
        holder.execute("ROLLBACK")
    assert code == 75, err
    assert err.strip().splitlines() == [err.strip()] and "is busy" in err
    assert read[0] == 0 and json.loads(read[1])["balance"] == 100
    assert _ok(shop, {"LOYALTY_DB": pg_url}, "balance", "C1")["balance"] == 100
