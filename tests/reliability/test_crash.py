"""Crash at random points: SIGKILL `import-csv`, `nightly` and a burst of `earn --txn`
at spread moments. After every kill the file passes `PRAGMA integrity_check` and
`loyalty verify`, and re-running the same command ends in exactly the ledger of a
clean run: the same business facts (customers, operations, entries, lots, draws,
refunds), without recording times, ids or hashes. No operation is lost or doubled.

Kills are placed by progress where the ledger shows it (operations or entries
written so far, polled read-only from this process) and by time otherwise; the
moments come from a seeded random generator, so CI kills at the same places.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ..conftest import BASIC_RULES, EXAMPLE_RULES, loyalty_command
from .conftest import (
    assert_contract,
    facts,
    facts_diff,
    inprocess_env,
    integrity,
    loyalty_env,
    record,
    run_inprocess,
    run_process,
    soak,
    txn_counts,
)

SHOP = ZoneInfo("Europe/London")  # the time zone of both rules files


def today() -> date:
    return datetime.now(UTC).astimezone(SHOP).date()


# --- killing -----------------------------------------------------------------------


def kill_when(
    args: list[str], env: dict[str, str], ready: Callable[[float], bool], *, limit: float = 120
) -> bool:
    """Start `loyalty ARGS`, SIGKILL it as soon as `ready(seconds since start)` says so,
    and return whether the kill landed (the process was still running). A process
    that ended on its own must have ended cleanly."""
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [*loyalty_command(), *args], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
        started = time.monotonic()
        try:
            while process.poll() is None and not ready(time.monotonic() - started):
                assert time.monotonic() - started < limit, f"loyalty {args[0]} never got there"
                time.sleep(0.002)
        finally:
            landed = process.poll() is None
            if landed:
                process.send_signal(signal.SIGKILL)
            process.wait()
        if landed:
            assert process.returncode == -signal.SIGKILL
        else:
            err.seek(0)
            text = err.read().decode("utf-8", "replace")
            assert process.returncode == 0, (process.returncode, text[-2000:])
    return landed


def holds_open(pid: int, db: Path) -> bool:
    """Whether process `pid` has the ledger (or its -wal/-shm) open: past its start-up,
    into its work. Linux /proc; elsewhere never, and the kill falls back to no delay."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return not Path("/proc").is_dir()
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(db)):
                return True
        except OSError:
            continue
    return False


def newest_id(db: Path, table: str) -> int:
    """The newest row id of a table, read-only, 0 when there is no ledger (yet)."""
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as c:
            return int(c.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0])
    except sqlite3.Error:
        return 0


def assert_intact_after_kill(db: Path, env: dict[str, str], moment: str) -> None:
    """What every kill must leave: a sound SQLite file that verifies."""
    if not db.exists():
        return  # killed before it created the file: nothing to check
    assert integrity(db) == "ok", f"integrity_check failed after a kill {moment}"
    outcome = run_process(["verify", "--json"], env)
    assert_contract(outcome, {0})
    assert json.loads(outcome.stdout)["ok"] is True, (moment, outcome.stdout)


def lost_and_doubled(
    clean: dict[str, list[object]], got: dict[str, list[object]]
) -> tuple[int, int]:
    """Rows of the clean ledger missing from `got`, and rows `got` has too many of."""
    lost = doubled = 0
    for name, rows in clean.items():
        left = list(got.get(name, []))
        for row in rows:
            if row in left:
                left.remove(row)
            else:
                lost += 1
        doubled += len(left)
    return lost, doubled


# --- import-csv ----------------------------------------------------------------------


def till_export(path: Path, rows: int, start: date, customers: int = 60) -> Path:
    """A till's export: purchases (some for shoes and bags), now and then a review
    event and a partial refund of the same customer's earlier purchase. Rows are in
    time order over 56 days, 10:00 to 18:00 (nothing is earned before the row that
    enrolled its customer)."""

    def kind(n: int) -> str:
        if n % 53 == 52:
            return "event"
        if n % 41 == 40 and n >= 2 * customers:
            return "refund"
        return "purchase"

    lines = ["txn_id,customer_id,amount,date,category,event,refund_of"]
    categories = ["", "shoes", "bags", "books"]
    for n in range(rows):
        customer = f"C{n % customers}"
        minutes = n * 56 * 480 // rows  # of the 56 days' opening hours
        day = start + timedelta(days=minutes // 480)
        stamp = f"{day.isoformat()}T{10 + minutes % 480 // 60:02d}:{minutes % 60:02d}"
        if kind(n) == "event":
            lines.append(f"V{n},{customer},,{stamp},,review,")
        elif kind(n) == "refund":
            earlier = n - customers
            while kind(earlier) != "purchase":
                earlier -= customers
            lines.append(f"F{n},{customer},1.00,{stamp},,,R{earlier}")
        else:
            amount = f"{5 + n % 90}.{n % 100:02d}"
            lines.append(f"R{n},{customer},{amount},{stamp},{categories[n % 4]},,")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_import_killed_at_spread_moments_resumes_to_exactly_a_clean_ledger(
    tmp_path: Path,
) -> None:
    rng = random.Random(1010)
    rows = 3000
    export = till_export(tmp_path / "till.csv", rows, today() - timedelta(days=90))
    args = ["import-csv", str(export), "--enroll-unknown", "--quiet"]

    clean_db = tmp_path / "clean.db"
    clean_env = loyalty_env(tmp_path, clean_db, EXAMPLE_RULES)
    began = time.monotonic()
    first = run_process(args, clean_env, timeout=300)
    import_seconds = time.monotonic() - began
    assert_contract(first, {0}, stdout="any")
    clean = facts(clean_db)
    total_ops = newest_id(clean_db, "operations")
    # A re-import of the whole file credits nothing twice: the skip phase is a kill target too.
    began = time.monotonic()
    assert_contract(run_process(args, clean_env, timeout=300), {0}, stdout="any")
    skip_seconds = time.monotonic() - began
    assert facts(clean_db) == clean, "re-importing the same file changed the ledger"

    landed = attempts = 0
    lost = doubled = 0
    chains = 2
    kills_per_chain = 4 * soak()
    for chain in range(chains):
        db = tmp_path / f"killed-{chain}.db"
        env = loyalty_env(tmp_path, db, EXAMPLE_RULES)
        # 1. while the ledger file is being created (schema, migrations)
        pause = rng.uniform(0, 0.03)
        attempts += 1
        landed += kill_when(args, env, lambda s, db=db, p=pause: db.exists() and _after(p))
        assert_intact_after_kill(db, env, "while the ledger was created")
        # 2. part-way, at operations spread over the whole import
        targets = sorted(rng.sample(range(10, total_ops - 10), kills_per_chain))
        for target in targets:
            attempts += 1
            landed += kill_when(
                args, env, lambda s, db=db, t=target: newest_id(db, "operations") >= t
            )
            assert_intact_after_kill(db, env, f"at operation {target} of {total_ops}")
        # 3. while a re-run of a finished import skips what is there
        assert_contract(run_process(args, env, timeout=300), {0}, stdout="any")
        for _ in range(1 if chain == 0 else 0):
            delay = rng.uniform(0.05, 0.15 + skip_seconds)
            attempts += 1
            landed += kill_when(args, env, lambda s, d=delay: s >= d)
            assert_intact_after_kill(db, env, f"{delay:.2f} s into a re-run")
        rerun = run_process(args, env, timeout=300)
        assert_contract(rerun, {0}, stdout="any")
        got = facts(db)
        chain_lost, chain_doubled = lost_and_doubled(clean, got)
        lost += chain_lost
        doubled += chain_doubled
        assert got == clean, (
            f"chain {chain}: the resumed ledger differs from a clean run\n{facts_diff(clean, got)}"
        )
        purchases = txn_counts(db, "R%")
        assert len(purchases) == export.read_text().count("\nR")
        assert set(purchases.values()) == {1}
    record(
        "crash: import-csv",
        kills=landed,
        attempts=attempts,
        lost=lost,
        duplicated=doubled,
        rows=rows,
        max_import_seconds=round(import_seconds, 2),
    )
    print(f"\nimport-csv: {landed} kills landed of {attempts}, {lost} rows lost, {doubled} doubled")
    assert landed >= chains * kills_per_chain, f"only {landed} of {attempts} kills landed"


def _after(pause: float) -> bool:
    """A short extra wait once a condition holds, so creation kills spread out."""
    time.sleep(pause)
    return True


# --- nightly -------------------------------------------------------------------------


# How far behind the last nightly run is: 90 days catch up over 1,200 writes to kill
# into (a year gave 6,000, at three times the run's length, for no more kill points).
DAYS_BEHIND = 90


@pytest.fixture(scope="module")
def nightly_ledger(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, date]:
    """A ledger of 700 customers with birthdays all through the year, purchases 14 to
    20 months old (due to expire), tiers to recompute, and a nightly run DAYS_BEHIND
    days ago: the next nightly run catches up those days' birthdays and expires most
    points."""
    from loyalty_cli.engine import awards
    from loyalty_cli.engine.requests import EarnRequest, EnrollRequest
    from loyalty_cli.rules import load_rules
    from loyalty_cli.store import Store

    folder = tmp_path_factory.mktemp("nightly")
    db = folder / "base.db"
    ruleset = load_rules(EXAMPLE_RULES)
    day = today() - timedelta(days=1)
    enrolled = datetime.combine(day - timedelta(days=800), clock_time(9), SHOP)
    # Recorded when they happened (`now` is the enrollment day): a birthday set less
    # than 30 days before it falls, counted from when it was recorded, earns nothing.
    with Store.open(db) as store, store.writing(ruleset, enrolled) as book:
        for n in range(700):
            born = date(1970 + n % 40, 1, 1) + timedelta(days=(n * 7) % 365)
            awards.enroll(
                book, EnrollRequest(f"N{n}", birthday=born.isoformat(), at=enrolled, salt=b"s")
            )
            for k in range(3):
                at = datetime.combine(
                    day - timedelta(days=420 + (n * 13 + k * 37) % 200), clock_time(12), SHOP
                )
                amount = Decimal(20 + (n * 7 + k) % 400)
                category = ["shoes", "books", None][k]
                request = EarnRequest(
                    f"N{n}", "purchase", amount=amount, category=category, txn=f"P{n}-{k}", at=at
                )
                awards.earn(book, request)
    year_ago = (day - timedelta(days=DAYS_BEHIND)).isoformat()
    setup = run_inprocess(
        ["nightly", "--as-of", year_ago, "--json"], inprocess_env(db, EXAMPLE_RULES)
    )
    assert_contract(setup, {0})
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    return db, day


def test_a_nightly_run_killed_at_spread_moments_resumes_to_exactly_a_clean_ledger(
    tmp_path: Path, nightly_ledger: tuple[Path, date]
) -> None:
    rng = random.Random(2020)
    base, day = nightly_ledger
    args = ["nightly", "--as-of", day.isoformat(), "--quiet"]
    clean_db, db = tmp_path / "clean.db", tmp_path / "killed.db"
    shutil.copy(base, clean_db)
    shutil.copy(base, db)
    first_entry = newest_id(base, "entries")
    assert_contract(
        run_process(args, loyalty_env(tmp_path, clean_db, EXAMPLE_RULES), timeout=300),
        {0},
        stdout="any",
    )
    clean = facts(clean_db)
    written = newest_id(clean_db, "entries") - first_entry
    assert written > 500, f"the nightly run wrote only {written} entries: too little to kill into"

    env = loyalty_env(tmp_path, db, EXAMPLE_RULES)
    kills = 6 * soak()
    landed = 0
    for target in sorted(rng.sample(range(5, written - 5), kills)):
        landed += kill_when(
            args, env, lambda s, t=target: newest_id(db, "entries") - first_entry >= t
        )
        assert_intact_after_kill(db, env, f"at entry {target} of the {written} nightly writes")
    assert_contract(run_process(args, env, timeout=300), {0}, stdout="any")
    got = facts(db)
    lost, doubled = lost_and_doubled(clean, got)
    record(
        "crash: nightly",
        kills=landed,
        attempts=kills,
        lost=lost,
        duplicated=doubled,
        entries_written=written,
    )
    print(f"\nnightly: {landed} kills landed of {kills}, {lost} rows lost, {doubled} doubled")
    assert got == clean, (
        f"the resumed nightly run differs from a clean one\n{facts_diff(clean, got)}"
    )
    assert landed >= kills - 1, f"only {landed} of {kills} kills landed"


# --- a burst of earns ----------------------------------------------------------------


def expected_points(amount: str, category: str) -> int:
    """BASIC_RULES, worked out independently: 1 per unit, and 2 more on shoes and bags,
    each line floored."""
    value = Decimal(amount)
    points = int(value // 1)
    if category in ("shoes", "bags"):
        points += int((value * 2) // 1)
    return points


def test_a_burst_of_earns_killed_at_random_moments_records_each_txn_exactly_once(
    tmp_path: Path,
) -> None:
    rng = random.Random(3030)
    rules = tmp_path / "rules.yaml"
    rules.write_text(BASIC_RULES)
    db, clean_db = tmp_path / "killed.db", tmp_path / "clean.db"
    tills = [f"E{n}" for n in range(4)]
    enrolled = str(today() - timedelta(days=2))  # the same moment in both ledgers
    for ledger in (db, clean_db):
        for customer in tills:
            enroll = ["enroll", customer, "--at", enrolled, "--json"]
            assert_contract(run_inprocess(enroll, inprocess_env(ledger, rules)), {0})
    env = loyalty_env(tmp_path, db, rules)
    at = f"{today() - timedelta(days=1)}T12:00"
    rounds, burst = 4 * soak(), 8
    landed = attempts = in_ledger = 0
    expected = {customer: 100 for customer in tills}
    for r in range(rounds):
        earns = []
        for n in range(burst):
            amount = f"{rng.randint(1, 300)}.{rng.randint(0, 99):02d}"
            category = rng.choice(["shoes", "books", "bags", "food"])
            customer = tills[n % len(tills)]
            txn = f"B{r}-{n}"
            earns.append(
                [
                    "earn",
                    customer,
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
            )
            expected[customer] += expected_points(amount, category)
        # Five of the eight die: most a moment after they opened the ledger (inside
        # their write, or about to start it), the others at any time from start-up on.
        victims = {
            n: ("opened", rng.uniform(0, 0.04))
            if rng.random() < 0.7
            else ("any", rng.uniform(0.02, 0.5))
            for n in rng.sample(range(burst), 5)
        }
        processes = [
            subprocess.Popen(
                [*loyalty_command(), *a], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for a in earns
        ]
        started = time.monotonic()
        killed = set()
        opened: dict[int, float] = {}
        while victims and time.monotonic() - started < 60:
            now = time.monotonic()
            for n in list(victims):
                mode, delay = victims[n]
                if processes[n].poll() is not None:
                    del victims[n]
                    attempts += 1
                    continue
                if mode == "opened" and n not in opened and holds_open(processes[n].pid, db):
                    opened[n] = now
                due = (
                    now - started >= delay
                    if mode == "any"
                    else now - opened.get(n, now) >= delay and n in opened
                )
                if due:
                    processes[n].send_signal(signal.SIGKILL)
                    killed.add(n)
                    in_ledger += mode == "opened"
                    del victims[n]
                    attempts += 1
            time.sleep(0.001)
        for n, process in enumerate(processes):
            out, err = process.communicate(timeout=60)
            if n in killed:
                continue
            assert process.returncode == 0, (earns[n], process.returncode, err.decode()[-1000:])
        landed += len(killed)
        assert_intact_after_kill(db, env, f"in burst {r}")
        before = txn_counts(db, f"B{r}-%")
        # The till retries every receipt of the burst, all at once.
        retries = [
            subprocess.Popen(
                [*loyalty_command(), *a], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for a in earns
        ]
        for n, process in enumerate(retries):
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, (earns[n], process.returncode, err.decode()[-1000:])
            doc = json.loads(out)
            assert doc["points"] == expected_points(earns[n][3], earns[n][5]), (earns[n], doc)
            if earns[n][7] in before:
                assert doc["duplicate"] is True, (earns[n], doc)
        counts = txn_counts(db, f"B{r}-%")
        assert counts == {f"B{r}-{n}": 1 for n in range(burst)}, (
            f"burst {r}: each txn must be recorded exactly once: {counts}"
        )
        for a in earns:
            assert_contract(run_inprocess(a, inprocess_env(clean_db, rules)), {0})
    clean, got = facts(clean_db), facts(db)
    lost, doubled = lost_and_doubled(clean, got)
    record(
        "crash: earn burst",
        kills=landed,
        kills_with_the_ledger_open=in_ledger,
        attempts=attempts,
        txns=rounds * burst,
        lost=lost,
        duplicated=doubled,
    )
    print(
        f"\nearn burst: {landed} kills landed of {attempts} ({in_ledger} with the ledger open), "
        f"{lost} rows lost, {doubled} doubled"
    )
    assert got == clean, facts_diff(clean, got)
    for customer, points in expected.items():
        balance = run_inprocess(["balance", customer, "--json"], inprocess_env(db, rules))
        assert_contract(balance, {0})
        assert json.loads(balance.stdout)["balance"] == points, customer
    assert landed >= rounds, f"only {landed} of {attempts} kills landed while an earn was running"
