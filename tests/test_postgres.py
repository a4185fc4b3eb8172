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

from .conftest import EXAMPLE_RULES, Shop, check_error_json, loyalty_command
from .pgcluster import TILL

# The shop here is a runner: each test names the ledgers it uses (a file, URLs).
BACKENDS = ("sqlite",)


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
    ((chain,),) = [verified.pop("chains")]
    assert chain["operation_count"] == verified["operation_count"]
    out.append(verified)
    out.append(chain["writer"])
    return out


def test_the_same_commands_give_the_same_answers_on_postgresql_as_on_a_file(
    shop: Shop, pg_url: str
) -> None:
    shop.write_rules(
        shop.rules.read_text()
        + "tiers:\n  metric: spend\n  window: calendar_year\n  downgrade: keep_next_window\n  levels:\n    - {id: bronze, name: Bronze, threshold: 0}\n    - {id: silver, name: Silver, threshold: 100}\n"
    )
    assert _init(shop, pg_url)["created"] is True
    on_file = _scenario(shop, {"LOYALTY_TILL": "branch-1"})
    on_server = _scenario(shop, {"LOYALTY_DB": pg_url, "LOYALTY_TILL": "branch-1"})
    # A file has one chain; on the server, each till has its own.
    assert (on_file.pop(), on_server.pop()) == (None, "branch-1")
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
        "upgraded_from": None,
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


def test_a_ledger_an_older_loyalty_made_is_refused_until_its_owner_upgrades_it(
    shop: Shop, pg_url: str
) -> None:
    """A schema-8 ledger (before merges, game rounds' index and lines' split by
    rule): every command refuses it, naming the upgrade; `db init` as the owner
    upgrades it in place, its chains verify as before, and the till role it was
    granted to may write the new table (a merge) and column (a receipt's lines)."""
    _init(shop, pg_url, TILL)
    till = {"LOYALTY_DB": pg_url.replace("//owner@", f"//{TILL}@")}
    for customer in ("C1", "C2"):
        _ok(shop, till, "enroll", customer)
    _ok(shop, till, "earn", "C1", "--amount", "30.00", "--txn", "T1")
    with _connect(pg_url) as conn:
        for statement in (
            "DROP TABLE merges",
            "DROP TABLE notices_given",
            "DROP TABLE messages_sent",
            "DROP INDEX entries_game_rounds",
            "ALTER TABLE items DROP COLUMN earned_by",
            "ALTER TABLE loyalty_meta DISABLE TRIGGER loyalty_meta_no_update",
            "UPDATE loyalty_meta SET value = '8' WHERE key = 'schema_version'",
            "ALTER TABLE loyalty_meta ENABLE TRIGGER loyalty_meta_no_update",
        ):
            conn.execute(statement)
    refused = shop.run("balance", "C1", env=till)
    assert refused.exit_code == 66, refused.output
    assert "schema 8" in refused.stderr and "loyalty db init --db" in refused.stderr
    upgraded = _init(shop, pg_url)
    assert upgraded["upgraded_from"] == 8 and upgraded["created"] is False
    assert upgraded["schema_version"] == SCHEMA_VERSION
    assert _init(shop, pg_url)["upgraded_from"] is None  # once
    verified = _ok(shop, till, "verify")
    assert verified["ok"] is True and verified["operation_count"] == 3
    _ok(
        shop, till, "earn", "C1", "--line", "shoes:1x10.00", "--line", "books:2x5.00", "--txn", "T2"
    )
    _ok(shop, till, "merge", "C1", "C2", "--reason", "one person")
    with _connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM merges").fetchone()[0] == 1
        assert (
            conn.execute("SELECT count(*) FROM items WHERE earned_by IS NOT NULL").fetchone()[0]
            == 2
        )
        assert conn.execute("SELECT to_regclass('entries_game_rounds') IS NOT NULL").fetchone()[0]
    assert _ok(shop, till, "verify")["ok"] is True


def test_an_erasure_by_a_till_is_finished_by_the_owner_s_second_run(
    shop: Shop, pg_url: str
) -> None:
    """A till role may erase but not rewrite the customers table: `purged: false`,
    and the words say how to finish; the owner's run finishes it."""
    _init(shop, pg_url, TILL)
    till = {"LOYALTY_DB": pg_url.replace("//owner@", f"//{TILL}@")}
    _ok(shop, till, "enroll", "C1", "--name", "Zoë Quill", "--email", "zoe@example.com")
    first = _ok(shop, till, "customer", "erase", "C1", "--reason", "ticket 4411")
    assert first["erased_fields"] == ["name", "email"] and first["purged"] is False
    words = shop.run("customer", "erase", "C1", "--reason", "ticket 4411", "--no-json", env=till)
    assert words.exit_code == 0, words.output
    assert "already erased" in words.stdout and "on a server as the ledger's owner" in words.stdout
    owner = _ok(shop, {"LOYALTY_DB": pg_url}, "customer", "erase", "C1", "--reason", "ticket 4411")
    assert owner["already_erased"] is True and owner["purged"] is True
    with _connect(pg_url) as conn:
        row = conn.execute("SELECT name, email FROM customers WHERE id = 'C1'").fetchone()
    assert row == (None, None)
    assert _ok(shop, till, "verify")["ok"] is True


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
    ("args", "said"),
    [
        (("backup", "{dir}/copy.db"), "pg_dump"),
        (("demo", "--db", "{url}"), "SQLite file"),
    ],
)
def test_what_only_a_ledger_file_does_refuses_a_postgresql_ledger_saying_what_to_do(
    shop: Shop, pg_url: str, args: tuple[str, ...], said: str
) -> None:
    _init(shop, pg_url)
    args = tuple(a.format(dir=shop.dir, url=pg_url) for a in args)
    result = shop.run(*args, env={"LOYALTY_DB": pg_url})
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], lines
    error = check_error_json(result.stdout, 2, lines)
    assert error["code"] == "unsupported_backend"
    assert not (shop.dir / "copy.db").exists()


def test_a_purchase_makes_no_more_round_trips_on_postgresql_than_statements_on_a_file(
    tmp_path: Path, pg_ledger_url: str
) -> None:
    """Round trips, not statements, are what a till on a network waits for: the
    BEGIN and the row lock go with the first read, the append lock with the read
    of the chain's tip, the appends with the COMMIT (postgres.PgConn)."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from loyalty_cli import operations as ops
    from loyalty_cli.engine.requests import EarnRequest, EnrollRequest
    from loyalty_cli.rules import load_rules
    from loyalty_cli.store import Store

    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    ruleset = load_rules(EXAMPLE_RULES)
    counts: dict[str, int] = {}
    for name, store in (
        ("sqlite", Store.open(tmp_path / "l.db")),
        ("postgresql", Store.open_url(pg_ledger_url, writer="till-1")),
    ):
        with store:
            ops.enroll(store, ruleset, EnrollRequest("C1", at=now), now)
            for n in range(3):  # a customer with some history
                request = EarnRequest("C1", "purchase", amount=Decimal("12.50"), txn=f"R{n}")
                ops.earn(store, ruleset, request, now)
            request = EarnRequest(
                "C1", "purchase", amount=Decimal("120.00"), category="shoes", txn="R9"
            )
            if name == "sqlite":
                statements: list[str] = []
                store.conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
                ops.earn(store, ruleset, request, now)
                counts[name] = len(statements)
            else:
                before = store.conn.round_trips  # type: ignore[attr-defined]
                ops.earn(store, ruleset, request, now)
                counts[name] = store.conn.round_trips - before  # type: ignore[attr-defined]
    assert counts["postgresql"] <= counts["sqlite"] <= 8, counts
    # And the sale is there, once, with its points: the deferred appends went in.
    with Store.open_url(pg_ledger_url, writer="till-1") as store:
        rows = store.conn.execute(
            "SELECT count(*), sum(e.points) FROM operations o JOIN entries e ON e.op_id = o.id "
            "WHERE o.txn = 'R9'"
        ).fetchall()
    with Store.open(tmp_path / "l.db") as store:
        expected = store.conn.execute(
            "SELECT count(*), sum(e.points) FROM operations o JOIN entries e ON e.op_id = o.id "
            "WHERE o.txn = 'R9'"
        ).fetchall()
    assert rows == expected and rows[0][0] >= 1


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
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"append-only|never"):
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
    # Two branches' tills ("north", "south"), each with its own hash chain.
    processes = [
        _start(
            shop, till, "redeem", f"C{i % 3}", "--points", "100", "--txn", f"X{i}",
            LOYALTY_TILL=("north", "south")[i % 2],
        )
        for i in range(12)
    ]  # fmt: skip
    processes += [
        _start(
            shop, till, "earn", f"C{k % 3}", "--amount", "10.00", "--txn", f"K{k}",
            LOYALTY_TILL=("north", "south")[n % 2],
        )
        for n, k in enumerate([*range(6), *range(6)])
    ]  # fmt: skip
    results = [_finish(p) for p in processes]
    redeems, earns = results[:12], results[12:]
    approved = Counter(json.loads(out)["customer_id"] for code, out, _ in redeems if code == 0)
    assert approved == {"C0": 3, "C1": 3, "C2": 3}
    for code, _, err in redeems:
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
    verified = _ok(shop, env, "verify")
    assert verified["ok"] is True, verified["problems"]
    chains = {c["writer"]: c["operation_count"] for c in verified["chains"]}
    # the setup's 6 operations ran in this process (the host's name), then
    # 9 redemptions and 6 purchases from the two branches
    assert set(chains) - {"north", "south"} and sum(chains.values()) == 6 + 9 + 6
    assert chains["north"] + chains["south"] == 15


def test_each_till_chains_its_own_operations_and_verify_names_the_one_edited(
    shop: Shop, pg_url: str
) -> None:
    _init(shop, pg_url)
    for n, till in enumerate(["north", "south", "north", "south"]):
        env = {"LOYALTY_DB": pg_url, "LOYALTY_TILL": till}
        _ok(shop, env, "enroll", f"C{n}")
        _ok(shop, env, "earn", f"C{n}", "--amount", "12.00")
    env = {"LOYALTY_DB": pg_url}
    doc = _ok(shop, env, "verify")
    assert [(c["writer"], c["operation_count"]) for c in doc["chains"]] == [
        ("north", 4),
        ("south", 4),
    ]
    with _connect(pg_url) as conn:
        # Moving an operation to the other chain breaks both.
        conn.execute("ALTER TABLE operations DISABLE TRIGGER operations_no_update")
        conn.execute("UPDATE operations SET writer = 'south' WHERE id = 5")
        conn.execute("ALTER TABLE operations ENABLE TRIGGER operations_no_update")
    result = shop.run("verify", "--json", env=env)
    assert result.exit_code == 1
    assert "operation #5" in result.stderr and "hash chain" in result.stderr
    for args in (("balance", "C0"), ("earn", "C0", "--amount", "1.00")):
        for name in ("a b", "x" * 65, ""):
            bad = shop.run(*args, env={**env, "LOYALTY_TILL": name})
            assert bad.exit_code == 2 and "LOYALTY_TILL" in bad.stderr, bad.output


def test_tills_on_other_customers_do_not_wait_for_a_locked_one(shop: Shop, pg_url: str) -> None:
    _init(shop, pg_url)
    env = {"LOYALTY_DB": pg_url}
    _ok(shop, env, "enroll", "C1")
    _ok(shop, env, "enroll", "C2")
    with _connect(pg_url) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT id FROM customers WHERE id = 'C1' FOR UPDATE")
        waiting = _start(shop, pg_url, "earn", "C1", "--amount", "5.00", LOYALTY_BUSY_TIMEOUT="5")
        other = _finish(_start(shop, pg_url, "earn", "C2", "--amount", "5.00"))
        assert other[0] == 0, other[2]
        assert waiting.poll() is None  # still waiting for C1
        holder.execute("ROLLBACK")
    code, _, err = _finish(waiting)
    assert code == 0, err
    assert _ok(shop, env, "balance", "C1")["balance"] == 105
    assert _ok(shop, env, "verify")["ok"] is True


def test_tills_enrolling_the_same_new_customer_at_once_enroll_them_once(
    shop: Shop, pg_url: str
) -> None:
    _init(shop, pg_url)
    results = [
        _finish(p)
        for p in [_start(shop, pg_url, "enroll", "NEW", "--name", "Ada") for _ in range(6)]
    ]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1, 1, 1, 1, 1], [e for _, _, e in results]
    assert all("already enrolled" in e for c, _, e in results if c)
    assert _ok(shop, {"LOYALTY_DB": pg_url}, "verify")["members"] == 1


def test_a_write_waiting_for_the_lock_past_the_busy_timeout_exits_75(
    shop: Shop, pg_url: str
) -> None:
    from loyalty_cli.store.postgres import WRITE_LOCK

    _init(shop, pg_url)
    _ok(shop, {"LOYALTY_DB": pg_url}, "enroll", "C1")
    with _connect(pg_url) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        code, _, err = _finish(
            _start(shop, pg_url, "earn", "C1", "--amount", "5.00", LOYALTY_BUSY_TIMEOUT="0.3")
        )
        # Reads do not wait for writers.
        read = _finish(_start(shop, pg_url, "balance", "C1"))
        holder.execute("ROLLBACK")
    assert code == 75, err
    assert err.strip().splitlines() == [err.strip()] and "is busy" in err
    assert read[0] == 0 and json.loads(read[1])["balance"] == 100
    assert _ok(shop, {"LOYALTY_DB": pg_url}, "balance", "C1")["balance"] == 100


# --- moving in and out ----------------------------------------------------------------


def _tables(url_or_path: str) -> dict[str, list[Any]]:
    """Every row of every ledger table, by id, as plain values."""
    from loyalty_cli.store.copy import TABLES

    out: dict[str, list[Any]] = {}
    if url_or_path.startswith("postgresql://"):
        with _connect(url_or_path) as conn:
            for table, columns in TABLES:
                out[table] = conn.execute(f"SELECT {columns} FROM {table} ORDER BY 1, 2").fetchall()
    else:
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(url_or_path)) as conn:
            for table, columns in TABLES:
                out[table] = conn.execute(f"SELECT {columns} FROM {table} ORDER BY 1, 2").fetchall()
    return {t: [tuple(r) for r in rows] for t, rows in out.items()}


def test_db_copy_moves_a_ledger_to_postgresql_and_back_with_ids_and_hashes_unchanged(
    shop: Shop, pg_cluster: Any, pg_url: str
) -> None:
    # A shop's file, with a referral (a customer referring one enrolled before),
    # lots, draws and a refund.
    shop.ok("enroll", "Z1")
    shop.ok("enroll", "A2", "--referred-by", "Z1")
    shop.ok("earn", "A2", "--amount", "250.00", "--txn", "R1")
    shop.ok("redeem", "Z1", "--points", "300")
    shop.ok("refund", "R1", "--amount", "50.00")
    # a receipt with lines (items), and one line of it returned
    shop.ok("earn", "Z1", "--line", "shoes/S1:2x10.00", "--line", "bags/B1:5.00", "--txn", "R2")
    shop.ok("refund", "R2", "--line", "S1:1")
    before = _tables(str(shop.db))
    assert len(before["items"]) == 3
    moved = _ok(shop, {}, "db", "copy", str(shop.db), pg_url)
    assert moved["ok"] is True and moved["rows"]["operations"] == 7
    assert _tables(pg_url) == before
    assert moved["operations_head"] == shop.ok("verify")["operations_head"]
    # The branches go on there, each till on its own chain...
    env = {"LOYALTY_DB": pg_url}
    _ok(shop, {**env, "LOYALTY_TILL": "north"}, "earn", "Z1", "--amount", "10.00")
    _ok(shop, {**env, "LOYALTY_TILL": "south"}, "enroll", "B3")
    chains = _ok(shop, env, "verify")["chains"]
    assert [c["writer"] for c in chains] == [None, "north", "south"]
    # ... and the owner leaving takes it all back to a file.
    back = shop.dir / "back.db"
    returned = _ok(shop, {}, "db", "copy", pg_url, str(back))
    assert returned["ok"] is True and returned["chains"] == chains
    assert _tables(str(back)) == _tables(pg_url)
    for who in ("Z1", "A2", "B3"):
        assert _ok(shop, {"LOYALTY_DB": str(back)}, "balance", who) == _ok(
            shop, env, "balance", who
        )
    # A file written after the return extends the file's own chain.
    _ok(shop, {"LOYALTY_DB": str(back)}, "earn", "A2", "--amount", "5.00")
    assert _ok(shop, {"LOYALTY_DB": str(back)}, "verify")["ok"] is True


def test_db_copy_refuses_a_destination_that_holds_anything_and_keeps_it_as_it_was(
    shop: Shop, pg_url: str
) -> None:
    shop.ok("enroll", "C1")
    _ok(shop, {}, "db", "copy", str(shop.db), pg_url)
    second = shop.dir / "second.db"
    second.write_text("not yours")
    for args in (
        (str(shop.db), pg_url),
        (str(shop.db), str(second)),
        (str(shop.db), str(shop.db)),
        (pg_url, pg_url),
    ):
        result = shop.run("db", "copy", *args)
        assert result.exit_code == 2, (args, result.output)
        check_error_json(result.stdout, 2, result.stderr.strip().splitlines())
    assert second.read_text() == "not yours"
    result = shop.run("db", "copy", str(shop.dir / "none.db"), str(shop.dir / "new.db"))
    assert result.exit_code == 66 and not (shop.dir / "new.db").exists()


def test_db_copy_of_a_ledger_that_does_not_verify_keeps_nothing(shop: Shop, pg_url: str) -> None:
    import sqlite3
    from contextlib import closing

    shop.ok("enroll", "C1")
    shop.ok("earn", "C1", "--amount", "20.00")
    with closing(sqlite3.connect(shop.db, isolation_level=None)) as conn:
        conn.execute("DROP TRIGGER entries_no_update")
        conn.execute("UPDATE entries SET points = 5000 WHERE id = 2")
    for dest in (pg_url, str(shop.dir / "copy.db")):
        result = shop.run("db", "copy", str(shop.db), dest, "--json")
        assert result.exit_code == 1, result.output
        assert "does not match the hash chain" in result.stderr
    assert not (shop.dir / "copy.db").exists()
    with _connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 0


def test_a_till_killed_mid_write_leaves_nothing_and_its_retry_records_the_sale_once(
    shop: Shop, pg_url: str
) -> None:
    import signal
    import time

    _init(shop, pg_url)
    env = {"LOYALTY_DB": pg_url}
    _ok(shop, env, "enroll", "C1")
    with _connect(pg_url) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT id FROM customers WHERE id = 'C1' FOR UPDATE")
        till = _start(
            shop, pg_url, "earn", "C1", "--amount", "20.00", "--txn", "K1",
            LOYALTY_BUSY_TIMEOUT="60",
        )  # fmt: skip
        # Killed inside its write transaction, waiting for the customer's row.
        deadline = time.monotonic() + 60
        with _connect(pg_url) as watcher:
            while not watcher.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[
                0
            ]:
                assert time.monotonic() < deadline and till.poll() is None
                time.sleep(0.05)
        till.send_signal(signal.SIGKILL)
        till.communicate(timeout=30)
        holder.execute("ROLLBACK")
    with _connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM operations WHERE txn = 'K1'").fetchone()[0] == 0
    first = _ok(shop, env, "earn", "C1", "--amount", "20.00", "--txn", "K1")
    again = _ok(shop, env, "earn", "C1", "--amount", "20.00", "--txn", "K1")
    assert first["duplicate"] is False and again["duplicate"] is True
    assert _ok(shop, env, "balance", "C1")["balance"] == 120
    assert _ok(shop, env, "verify")["ok"] is True


def test_tills_racing_for_a_budget_shared_by_every_customer_never_exceed_it(
    shop: Shop, pg_url: str
) -> None:
    shop.write_rules(
        shop.rules.read_text().replace(
            "earn:\n", "earn:\n  - {id: launch, on: purchase, points: 100, budget: 250}\n"
        )
    )
    _init(shop, pg_url, TILL)
    till = pg_url.replace("//owner@", f"//{TILL}@")
    for n in range(6):
        _ok(shop, {"LOYALTY_DB": till}, "enroll", f"C{n}")
    results = [
        _finish(p)
        for p in [
            _start(shop, till, "earn", f"C{n}", "--amount", "1.00", LOYALTY_TILL=f"t{n}")
            for n in range(6)
        ]
    ]
    assert all(code == 0 for code, _, _ in results), [e for _, _, e in results]
    with _connect(pg_url) as conn:
        given = conn.execute(
            "SELECT SUM(points)::bigint, count(*) FROM entries WHERE rule = 'launch'"
        ).fetchone()
    assert given[0] == 250  # 100 + 100 + 50, then nothing: never more than the budget
    assert _ok(shop, {"LOYALTY_DB": till}, "verify")["ok"] is True


def test_two_branches_share_one_ledger_as_the_readme_walks_through(
    shop: Shop, pg_ledger_url: str
) -> None:
    """README, "Two branches, one ledger": what one till records the other spends,
    a retry from the other branch is recorded once, the reports see one programme,
    and verify lists each branch's chain."""
    shop.rules.write_text(EXAMPLE_RULES.read_text())
    north = {"LOYALTY_DB": pg_ledger_url, "LOYALTY_TILL": "north"}
    south = {"LOYALTY_DB": pg_ledger_url, "LOYALTY_TILL": "south"}
    _ok(shop, north, "enroll", "C1", "--name", "Ada")
    earned = _ok(shop, north, "earn", "C1", "--amount", "120.00", "--txn", "N-0001")
    spent = _ok(shop, south, "redeem", "C1", "--reward", "coffee", "--txn", "S-0001")
    again = _ok(shop, south, "earn", "C1", "--amount", "120.00", "--txn", "N-0001")
    assert again["duplicate"] is True and again["points"] == earned["points"]
    balance = _ok(shop, north, "balance", "C1")["balance"]
    assert balance == earned["balance"] + spent["points"] == spent["balance"]
    liability = _ok(shop, south, "report", "liability")
    assert liability["points_outstanding"] == balance
    summary = _ok(shop, north, "report")
    assert summary["purchases"] == 1 and summary["members"] == 1
    chains = _ok(shop, south, "verify")["chains"]
    assert sorted(c["writer"] for c in chains) == ["north", "south"]
    assert sum(c["operation_count"] for c in chains) == 3
