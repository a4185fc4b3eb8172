"""Concurrent writers: tills earning and redemptions racing to spend one balance, from
separate processes, while an import runs. Every command either succeeded (exit 0) or
exited 75 (busy) and wrote nothing (a redemption may also be refused, exit 1, for
insufficient points, and write nothing); the balances equal an independent
recomputation from what succeeded; no balance ever goes below zero and no round
approves more redemptions than the balance affords.

Some processes run with a short LOYALTY_BUSY_TIMEOUT, so the busy path (exit 75,
nothing written) is exercised for real, not only the waiting one. How long each
command took is measured and reported, never asserted.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ..conftest import BASIC_RULES, loyalty_command
from .conftest import (
    Outcome,
    assert_contract,
    inprocess_env,
    loyalty_env,
    record,
    run_inprocess,
    soak,
)
from .test_crash import expected_points

SHOP = ZoneInfo("Europe/London")
SHORT_TIMEOUT = "0.05"  # seconds: these processes give up (exit 75) rather than wait


@dataclass
class Launched:
    args: list[str]
    process: subprocess.Popen[bytes]
    started: float
    kind: str  # earn or redeem
    txn: str
    impatient: bool
    outcome: Outcome | None = None


@dataclass
class Tally:
    ran: int = 0
    ok: int = 0
    busy: int = 0
    refused: int = 0
    waited: int = 0
    during_import: int = 0
    seconds: list[float] = field(default_factory=list)


def import_rows(path: Path, rows: int) -> Path:
    start = datetime.now(UTC).astimezone(SHOP).date() - timedelta(days=60)
    lines = ["txn_id,customer_id,amount,date,category"]
    categories = ["", "shoes", "bags", "books"]
    for n in range(rows):
        day = start + timedelta(days=n * 50 // rows)  # in date order: none before enrolling
        lines.append(f"I{n},C{n % 40},{5 + n % 90}.{n % 100:02d},{day},{categories[n % 4]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def import_expected(path: Path) -> dict[str, int]:
    """Each import customer's balance, worked out from the file alone."""
    out: dict[str, int] = {}
    for line in path.read_text().splitlines()[1:]:
        _, customer, amount, _, category = line.split(",")
        out[customer] = out.get(customer, 100) + expected_points(amount, category)
    return out


def wrote(db: Path, txn: str) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as c:
        return int(c.execute("SELECT count(*) FROM operations WHERE txn = ?", (txn,)).fetchone()[0])


def lowest_running_balance(db: Path) -> tuple[str, int]:
    """The lowest balance any customer ever had, entry by entry in ledger order."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as c:
        low = ("", 0)
        running: dict[str, int] = {}
        for customer, points in c.execute("SELECT customer_id, points FROM entries ORDER BY id"):
            running[customer] = running.get(customer, 0) + points
            if running[customer] < low[1]:
                low = (customer, running[customer])
    return low


def test_earns_and_racing_redemptions_during_an_import_never_overdraw_or_lose_a_write(
    tmp_path: Path,
) -> None:
    rng = random.Random(4040)
    rules = tmp_path / "rules.yaml"
    rules.write_text(BASIC_RULES)
    db = tmp_path / "shop.db"
    env = loyalty_env(tmp_path, db, rules)
    quick = inprocess_env(db, rules)
    rounds = 3 * soak()
    tills = [f"T{n}" for n in range(4)]
    for customer in tills:
        assert_contract(
            run_inprocess(["enroll", customer, "--at", "2026-01-01", "--json"], quick), {0}
        )
    balances = {customer: 100 for customer in tills}
    # Each round's redeemer holds enough for 0 to 3 redemptions of its cost, plus change.
    plan = []
    for r in range(rounds):
        cost = rng.randint(10, 120)
        affordable = rng.randint(0, 3)
        change = rng.randint(0, cost - 1)
        customer = f"R{r}"
        assert_contract(
            run_inprocess(["enroll", customer, "--at", "2026-01-01", "--json"], quick), {0}
        )
        top_up = affordable * cost + change - 100
        if top_up:
            assert_contract(
                run_inprocess(["adjust", customer, str(top_up), "--reason", "float"], quick), {0}
            )
        balances[customer] = affordable * cost + change
        plan.append((customer, cost, affordable))
    # The same burst of 8 processes without an import: how long they take on this
    # machine when they only share the CPU and each other's locks.
    warm_up = [
        _launch(
            ["earn", tills[n % 4], "--amount", "1.00", "--txn", f"W{n}", "--json"],
            env,
            "earn",
            f"W{n}",
            impatient=False,
        )
        for n in range(8)
    ]
    for item in warm_up:
        item.process.communicate(timeout=120)
        assert item.process.returncode == 0
        balances[item.args[1]] += 1
    baseline = time.monotonic() - min(item.started for item in warm_up)

    # Big enough that the import outlasts the rounds (it runs at several thousand
    # rows a second): the tills must meet it, not a finished ledger.
    export = import_rows(tmp_path / "sales.csv", 6000 * rounds)
    importing = subprocess.Popen(
        [*loyalty_command(), "import-csv", str(export), "--enroll-unknown", "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    tally = Tally()
    wins_by_round = []
    at = f"{datetime.now(UTC).astimezone(SHOP).date() - timedelta(days=1)}T15:00"
    try:
        while not any(line.startswith("I") for line in _txns(db)):
            assert importing.poll() is None, "the import ended before the tills started"
            time.sleep(0.01)
        for r, (redeemer, cost, affordable) in enumerate(plan):
            import_running = importing.poll() is None
            launched = []
            for n in range(4):
                amount = f"{rng.randint(1, 200)}.{rng.randint(0, 99):02d}"
                category = rng.choice(["shoes", "books", "bags", "food"])
                txn = f"E{r}-{n}"
                args = [
                    "earn",
                    tills[n],
                    "--amount",
                    amount,
                    "--category",
                    category,
                    "--txn",
                    txn,
                    "--at",
                    at,
                    "--json",
                ]
                launched.append(_launch(args, env, "earn", txn, impatient=n == 3))
            for n in range(4):
                txn = f"X{r}-{n}"
                args = ["redeem", redeemer, "--points", str(cost), "--txn", txn, "--json"]
                launched.append(_launch(args, env, "redeem", txn, impatient=n == 3))
            for item in launched:
                out, err = item.process.communicate(timeout=120)
                item.outcome = Outcome(
                    item.args,
                    item.process.returncode,
                    out.decode(),
                    err.decode(),
                    None,
                    time.monotonic() - item.started,
                )
            wins = 0
            for item in launched:
                outcome = item.outcome
                assert outcome is not None
                tally.ran += 1
                tally.during_import += import_running
                tally.seconds.append(outcome.seconds)
                if outcome.seconds > baseline + 0.25:
                    tally.waited += 1
                allowed = {0, 75} if item.kind == "earn" else {0, 1, 75}
                assert_contract(outcome, allowed)
                if outcome.code == 0:
                    tally.ok += 1
                    assert wrote(db, item.txn) == 1, (
                        f"{item.txn} succeeded but is not in the ledger once"
                    )
                    doc = json.loads(outcome.stdout)
                    if item.kind == "earn":
                        points = expected_points(item.args[3], item.args[5])
                        assert doc["points"] == points, (item.args, doc)
                        balances[item.args[1]] += points
                    else:
                        wins += 1
                        balances[redeemer] -= cost
                else:
                    if outcome.code == 75:
                        tally.busy += 1
                    else:
                        tally.refused += 1
                        assert "insufficient points" in outcome.stderr, outcome.brief()
                    assert wrote(db, item.txn) == 0, (
                        f"{item.txn} failed ({outcome.code}) but wrote to the ledger"
                    )
            wins_by_round.append((wins, affordable))
            assert wins <= affordable, (
                f"round {r}: {wins} redemptions approved, the balance affords {affordable}"
            )
    finally:
        _, import_err = importing.communicate(timeout=300)
    assert importing.returncode == 0, import_err.decode()[-2000:]

    expected = {**balances, **import_expected(export)}
    for customer, points in sorted(expected.items()):
        balance = run_inprocess(["balance", customer, "--json"], quick)
        assert_contract(balance, {0})
        assert json.loads(balance.stdout)["balance"] == points, customer
    lowest = lowest_running_balance(db)
    assert lowest[1] >= 0, f"customer {lowest[0]} went to {lowest[1]} points"
    verify = run_inprocess(["verify", "--json"], quick)
    assert_contract(verify, {0})
    overdrafts = sum(1 for wins, affordable in wins_by_round if wins > affordable)
    full = sum(1 for wins, affordable in wins_by_round if wins == affordable)
    record(
        "concurrency",
        operations=tally.ran,
        during_import=tally.during_import,
        ok=tally.ok,
        busy_75=tally.busy,
        refused_insufficient=tally.refused,
        waited=tally.waited,
        max_seconds=round(max(tally.seconds), 2),
        overdrafts=overdrafts,
        rounds=rounds,
        rounds_all_affordable_won=full,
        import_rows=export.read_text().count("\n") - 1,
    )
    print(
        f"\nconcurrency: {tally.ran} till operations ({tally.during_import} while the import ran): "
        f"{tally.ok} ok, {tally.busy} busy (75, nothing written), {tally.refused} refused "
        f"(insufficient points), {tally.waited} took > 0.25 s longer than the same burst without an import "
        f"({baseline:.2f} s), slowest {max(tally.seconds):.2f} s; {overdrafts} overdrafts; "
        f"{full}/{rounds} rounds approved every affordable redemption"
    )


def _launch(
    args: list[str], env: dict[str, str], kind: str, txn: str, *, impatient: bool
) -> Launched:
    extra = {"LOYALTY_BUSY_TIMEOUT": SHORT_TIMEOUT} if impatient else {}
    process = subprocess.Popen(
        [*loyalty_command(), *args],
        env={**env, **extra},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return Launched(args, process, time.monotonic(), kind, txn, impatient)


def _txns(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as c:
            return [
                r[0] for r in c.execute("SELECT txn FROM operations WHERE txn LIKE 'I%' LIMIT 1")
            ]
    except sqlite3.Error:
        return []
