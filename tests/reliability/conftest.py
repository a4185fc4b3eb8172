"""Shared machinery of the reliability suite (issue 10): real processes, hostile
input, and the one contract every outcome is held to.

The contract: a command either succeeds (exit 0, one JSON document on stdout) or
fails with a documented exit code (1, 2, 65, 66, 75, 78), nothing on stdout but its
JSON error (`{"error": {..., "exit": CODE}}`), and `error:` lines on stderr
(`rejected:` lines too, for import-csv). Never a traceback, a hang, runaway memory,
or a changed ledger after a refusal.

Soak: `LOYALTY_SOAK=1` (or `--soak` when this folder is given to pytest) runs 10x
the kills, fuzz examples and concurrency rounds; `LOYALTY_SOAK=N` (N > 1) runs Nx.
Hypothesis is derandomized, so CI runs the same examples every time; set
`LOYALTY_FUZZ_SHRINK=1` to let it shrink a failing example (slow with processes).
The figures each test measured are printed at the end of the run, and written as
JSON to `$LOYALTY_RELIABILITY_FIGURES` when that is set.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, Phase, settings

from ..conftest import loyalty_command

DOCUMENTED = frozenset({0, 1, 2, 65, 66, 75, 78})
_RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # all but tab and LF
PREFIXES = ("error: ", "rejected: ")
MEMORY_LIMIT = 1 << 30  # address space for a process under test: 1 GiB
REPORTS = ("summary", "customers", "activity", "rules", "tiers", "segments", "liability")

# --- soak ------------------------------------------------------------------------

_FACTOR = {"value": 1}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="reliability suite: 10x the kills, fuzz examples and concurrency rounds",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability: the tests/reliability suite (deselect with -m 'not reliability')"
    )
    raw = os.environ.get("LOYALTY_SOAK", "").strip()
    value = 1
    if raw and raw != "0":
        value = int(raw) if raw.isdigit() and int(raw) > 1 else 10
    with contextlib.suppress(ValueError):
        if config.getoption("--soak"):
            value = max(value, 10)
    _FACTOR["value"] = value


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


def soak() -> int:
    """1 in CI; 10 (or LOYALTY_SOAK=N) for a soak run."""
    return _FACTOR["value"]


# --- figures ---------------------------------------------------------------------

FIGURES: dict[str, dict[str, Any]] = {}


def record(section: str, **figures: Any) -> None:
    """Add counts to a section's figures (max_* keys keep the maximum, others add up)."""
    into = FIGURES.setdefault(section, {})
    for key, value in figures.items():
        if key.startswith("max_"):
            into[key] = max(into.get(key, value), value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            into[key] = into.get(key, 0) + value
        else:
            into[key] = value


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section(f"reliability figures (soak x{soak()})")
    for section in sorted(FIGURES):
        parts = ", ".join(
            f"{k}={round(v, 3) if isinstance(v, float) else v}" for k, v in FIGURES[section].items()
        )
        terminalreporter.write_line(f"{section}: {parts}")
    target = os.environ.get("LOYALTY_RELIABILITY_FIGURES")
    if target:
        Path(target).write_text(
            json.dumps({"soak": soak(), "figures": FIGURES}, indent=2, sort_keys=True)
        )


# --- running the CLI -------------------------------------------------------------


class Outcome(NamedTuple):
    """What one command did, from a real process or in-process."""

    args: Sequence[object]
    code: int
    stdout: str
    stderr: str
    exception: str | None = None  # in-process: an exception that escaped, with its traceback
    seconds: float = 0.0

    def brief(self) -> str:
        shown = [
            a if len(str(a)) < 80 else f"{str(a)[:60]}...({len(str(a))} chars)" for a in self.args
        ]
        tail = [
            line if len(line) < 300 else line[:250] + "..."
            for line in self.stderr.strip().splitlines()[-3:]
        ]
        text = f"args={shown!r} exit={self.code} stderr(last lines)={tail!r}"
        if self.exception:
            text += f"\n{self.exception}"
        return text


def loyalty_env(
    home: Path, db: Path | str | None, rules: Path | str | None, **extra: str
) -> dict[str, str]:
    """A process environment: home folders in `home`, the ledger and the rules."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LOYALTY_DB", "LOYALTY_RULES", "LOYALTY_BUSY_TIMEOUT", "NO_COLOR")
    }
    env.update(XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"))
    if db is not None:
        env["LOYALTY_DB"] = str(db)
    if rules is not None:
        env["LOYALTY_RULES"] = str(rules)
    env.update(extra)
    return env


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_process(
    args: Sequence[str | bytes],
    env: Mapping[str, str],
    *,
    timeout: float = 60,
    stdin: bytes | None = None,
    limit_memory: bool = True,
) -> Outcome:
    """The installed `loyalty` in a real process, with a time and an address-space limit.
    A hang fails the test here, naming the command."""
    command = [*loyalty_command(), *args]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            env=dict(env),
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=timeout,
            check=False,
            preexec_fn=_limit_memory if limit_memory else None,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"hang: `loyalty {_show(args)}` did not finish within {timeout} s")
    return Outcome(
        list(args),
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
        None,
        time.monotonic() - started,
    )


def _show(args: Sequence[object]) -> str:
    return " ".join(str(a) if len(str(a)) < 80 else f"<{len(str(a))} chars>" for a in args)


class Hang(Exception):
    """Raised by the alarm when an in-process command runs past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def ring(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_inprocess(
    args: Sequence[str], env: Mapping[str, str | None], *, timeout: float = 20
) -> Outcome:
    """The CLI in this process (typer's CliRunner): fast, for the bulk of the fuzzing.
    An exception that escapes the CLI's error boundary comes back with its traceback."""
    from typer.testing import CliRunner

    from loyalty_cli.cli import app_for

    started = time.monotonic()
    with time_limit(timeout):
        result = CliRunner().invoke(app_for(list(args)), list(args), env=dict(env))
    exception = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        if isinstance(result.exception, Hang):
            pytest.fail(f"hang: `loyalty {_show(args)}` did not finish within {timeout} s")
        exc_type, exc, tb = result.exc_info or (None, None, None)
        exception = "".join(traceback.format_exception(exc_type, exc, tb)[-6:])
    # The bytes, not result.stdout: click's Result turns CRLF into LF, which would
    # hide whether a CSV export really has RFC 4180 line ends.
    return Outcome(
        list(args),
        result.exit_code,
        result.stdout_bytes.decode("utf-8", "replace"),
        result.stderr_bytes.decode("utf-8", "replace"),
        exception,
        time.monotonic() - started,
    )


def inprocess_env(
    db: Path | str | None, rules: Path | str | None, **extra: str | None
) -> dict[str, str | None]:
    """CliRunner's env: the variables to set (None unsets one) around one call."""
    env: dict[str, str | None] = {
        "LOYALTY_DB": None,
        "LOYALTY_RULES": None,
        "LOYALTY_BUSY_TIMEOUT": None,
    }
    if db is not None:
        env["LOYALTY_DB"] = str(db)
    if rules is not None:
        env["LOYALTY_RULES"] = str(rules)
    env.update(extra)
    return env


# --- the contract ------------------------------------------------------------------


def stderr_lines(text: str) -> list[str]:
    """The lines a terminal or a log shows: split at CR and LF only (str.splitlines would
    also split at \x1c-\x1e, \x85 and U+2028, which print inside one line)."""
    return [line for line in re.split(r"\r\n|\r|\n", text) if line.strip()]


def is_usage_block(outcome: Outcome) -> bool:
    """Click's own usage error (exit 2): 'Usage: ...', 'Try ...', 'Error: ...'."""
    lines = stderr_lines(outcome.stderr)
    return (
        outcome.code == 2
        and len(lines) >= 2
        and lines[0].startswith("Usage: ")
        and lines[-1].startswith("Error: ")
        and "Traceback" not in outcome.stderr
    )


def contract_problems(
    outcome: Outcome,
    allowed: frozenset[int] | set[int] = DOCUMENTED,
    *,
    stdout: str = "json",
    summary_on_65: bool = False,
    allow_usage: bool = False,
    allow_raw_control: bool = False,
) -> list[str]:
    """What is wrong with an outcome, or []. `stdout` is "json" (one document on
    success), "csv" (checked by the caller) or "any". `allow_usage` lets click's own
    usage block stand for the `error:` line (exit 2): the fuzz tests do, so that one
    dedicated test (test_fuzz_cli.py) reports that format instead of every fuzz test;
    `allow_raw_control` likewise lets input echoed with its control characters pass (the
    named cases in test_fuzz_cli.py and test_fuzz_csv.py report that)."""
    problems = []
    if outcome.exception:
        problems.append("an exception escaped the CLI (a traceback)")
    if "Traceback (most recent call last)" in outcome.stderr:
        problems.append("a traceback on stderr")
    if outcome.code not in allowed:
        problems.append(f"exit code {outcome.code} is not one of {sorted(allowed)}")
    if allow_usage and is_usage_block(outcome) and not outcome.stdout.strip():
        return problems
    lines = stderr_lines(outcome.stderr)
    strays = [line for line in lines if not line.startswith(PREFIXES)]
    if allow_raw_control and lines and lines[0].startswith(PREFIXES):
        strays = []  # an echoed CR or LF splits a message; reported by the named cases
    raw = sorted({repr(ch) for ch in outcome.stderr if _RAW_CONTROL.match(ch)})
    if raw and not allow_raw_control:
        problems.append(f"stderr carries raw control characters {raw} (input echoed unescaped?)")
    if strays:
        problems.append(f"stderr lines that are not error:/rejected: lines: {strays[:3]!r}")
    if outcome.code == 0:
        if stdout == "json":
            try:
                json.loads(outcome.stdout)
            except ValueError:
                problems.append(
                    f"exit 0 without one JSON document on stdout: {outcome.stdout[:200]!r}"
                )
    else:
        if not any(line.startswith("error: ") for line in lines):
            problems.append("failed without an error: line on stderr")
        if outcome.stdout.strip():
            doc: Any = None
            with contextlib.suppress(ValueError):
                doc = json.loads(outcome.stdout)
            is_error = (
                isinstance(doc, dict)
                and list(doc) == ["error"]
                and isinstance(doc["error"], dict)
                and doc["error"].get("exit") == outcome.code
            )
            if not (is_error or (summary_on_65 and outcome.code == 65 and doc is not None)):
                problems.append(
                    "failed but wrote to stdout something other than its JSON error: "
                    f"{outcome.stdout[:200]!r}"
                )
    return problems


def assert_contract(
    outcome: Outcome, allowed: frozenset[int] | set[int] = DOCUMENTED, **kw: Any
) -> None:
    problems = contract_problems(outcome, allowed, **kw)
    assert not problems, "; ".join(problems) + "\n" + outcome.brief()


# --- the ledger --------------------------------------------------------------------


def _connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    return conn


def snapshot(db: Path) -> dict[str, object]:
    """Every row of every table, and the ledger's marks: equal snapshots mean nothing
    was written."""
    if not db.exists():
        return {"no ledger": True}
    with contextlib.closing(_connect(db)) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        out: dict[str, object] = {
            "marks": conn.execute(
                "SELECT (SELECT application_id FROM pragma_application_id),"
                " (SELECT user_version FROM pragma_user_version)"
            ).fetchone(),
            "schema": conn.execute(
                "SELECT type, name, sql FROM sqlite_master ORDER BY name"
            ).fetchall(),
        }
        for table in tables:
            out[table] = conn.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
    return out


FACT_QUERIES = {
    "customers": "SELECT id, name, email, phone, birthday, referred_by, enrolled FROM customers",
    "operations": "SELECT o.txn, o.kind, o.customer_id, o.event, o.amount_cents, o.category,"
    " o.sku, o.quantity, o.reward, o.reason, o.occurred, o.tier, o.tier_from, o.until,"
    " p.txn, o.clawback FROM operations o LEFT JOIN operations p ON p.id = o.refund_of"
    " WHERE o.kind != 'migrate'",
    "entries": "SELECT o.txn, e.customer_id, e.kind, e.points, o.amount_cents, e.occurred, e.rule,"
    " e.reward, e.reason, e.detail, e.earned_on, e.available_on, e.expires_on"
    " FROM entries e JOIN operations o ON o.id = e.op_id",
    "draws": "SELECT d.points, debit_op.txn, debit.kind, debit.rule, debit.occurred,"
    " credit_op.txn, credit.rule, credit.occurred FROM draws d"
    " JOIN entries debit ON debit.id = d.entry_id JOIN entries credit ON credit.id = d.lot_id"
    " JOIN operations debit_op ON debit_op.id = debit.op_id"
    " JOIN operations credit_op ON credit_op.id = credit.op_id",
}


def facts(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """The business facts of a ledger, without ids, recording times, runs or hashes:
    two ledgers with equal facts hold the same customers, operations and points."""
    with contextlib.closing(_connect(db)) as conn:
        return {
            name: sorted(conn.execute(sql).fetchall(), key=repr)
            for name, sql in FACT_QUERIES.items()
        }


def facts_diff(a: Mapping[str, list[Any]], b: Mapping[str, list[Any]]) -> str:
    """A short account of how two fact sets differ, for assertion messages."""
    out = []
    for name in a:
        left, right = a[name], b.get(name, [])
        if left != right:
            only_a = [r for r in left if r not in right][:3]
            only_b = [r for r in right if r not in left][:3]
            out.append(
                f"{name}: {len(left)} vs {len(right)} rows; only in first {only_a}; only in second {only_b}"
            )
    return "\n".join(out)


def integrity(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))


def txn_counts(db: Path, like: str) -> dict[str, int]:
    with contextlib.closing(_connect(db)) as conn:
        return dict(
            conn.execute(
                "SELECT txn, count(*) FROM operations WHERE txn LIKE ? GROUP BY txn", (like,)
            ).fetchall()
        )


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EARLIEST = int(datetime(1900, 1, 1, tzinfo=UTC).timestamp())


def bounds_problems(db: Path, now: datetime | None = None) -> list[str]:
    """What in the ledger lies outside the documented bounds (issue 10): times from
    1900 to a day after now, ids of at most 200 characters of valid UTF-8 without
    control characters, amounts 0 < a <= 1,000,000,000, quantities 1..1,000,000,
    and points no entry could honestly reach (10^15). Times are stored as whole
    seconds since 1970."""
    latest = int(((now or datetime.now(UTC)) + timedelta(days=1, minutes=5)).timestamp())
    problems: list[str] = []

    def stamp(where: str, value: object) -> None:
        if not isinstance(value, int):
            problems.append(f"{where}: time {value!r} is not stored as whole seconds")
        elif not _EARLIEST <= value <= latest:
            problems.append(f"{where}: time {value} is outside 1900-01-01 .. a day after now")

    with contextlib.closing(_connect(db)) as conn:
        for cid, enrolled, birthday in conn.execute("SELECT id, enrolled, birthday FROM customers"):
            if (
                len(cid) > 200
                or _CONTROL.search(cid)
                or not _utf8(cid)
                or cid != cid.strip()
                or not cid
            ):
                problems.append(f"customer id {cid[:40]!r}... ({len(cid)} chars) is out of bounds")
            stamp(f"customer {cid[:20]!r} enrolled", enrolled)
            if birthday is not None and not ("1900-01-01" <= str(birthday) <= "2999-12-31"):
                problems.append(f"customer {cid[:20]!r} birthday {birthday!r} is out of bounds")
        for oid, kind, txn, occurred, cents, qty in conn.execute(
            "SELECT id, kind, txn, occurred, amount_cents, quantity FROM operations"
        ):
            where = f"operation {oid} (txn {str(txn)[:30]!r})"
            if kind != "migrate":
                stamp(where, occurred)
            if cents is not None and not (0 < cents <= 100_000_000_000):
                problems.append(f"{where}: amount_cents {cents} is out of bounds")
            if qty is not None and not (1 <= qty <= 1_000_000):
                problems.append(f"{where}: quantity {qty} is out of bounds")
            if txn is not None and (not _utf8(str(txn)) or _CONTROL.search(str(txn))):
                problems.append(f"{where}: txn is not clean UTF-8 text")
        for eid, points in conn.execute("SELECT id, points FROM entries"):
            if abs(points) > 10**15:
                problems.append(f"entry {eid}: {points} points is out of any honest bound")
        for cid, total in conn.execute(
            "SELECT customer_id, sum(CAST(points AS REAL)) FROM entries GROUP BY customer_id"
        ):
            if abs(total) > 2**62:
                problems.append(f"customer {cid[:20]!r}: balance {total:.3g} overflows 64 bits")
    return problems[:10]


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def customers(db: Path) -> list[str]:
    with contextlib.closing(_connect(db)) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM customers ORDER BY id")]


# --- CSV checks ---------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_problems(text: str, *, crlf: bool = True) -> list[str]:
    """RFC 4180 and spreadsheet safety: parses strictly, every row as wide as the
    header, CRLF line ends, and no text cell a spreadsheet would run as a formula
    (starting with = + - @ tab or CR), unless it is a plain number."""
    problems = []
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        return [f"not valid CSV: {exc}"]
    if not rows:
        return ["no header row"]
    width = len(rows[0])
    ragged = [n for n, row in enumerate(rows, 1) if len(row) != width]
    if ragged:
        problems.append(f"rows {ragged[:5]} are not {width} cells wide like the header")
    if crlf and text and not text.endswith("\r\n"):
        problems.append("the last line does not end with CRLF")
    if crlf and re.search(r"(?<!\r)\n", _outside_quotes(text)):
        problems.append("a line ends with a bare LF (RFC 4180 wants CRLF)")
    for n, row in enumerate(rows, 1):
        for cell in row:
            if cell.startswith(FORMULA_STARTS) and not _NUMBER.match(cell):
                problems.append(f"row {n}: cell {cell[:40]!r} would run as a formula")
    return problems[:10]


def _outside_quotes(text: str) -> str:
    return re.sub(r'"(?:[^"]|"")*"', '""', text)


# --- mounts (root only) -------------------------------------------------------------


def _sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)


def _can_mount() -> str | None:
    """None if this process may mount, else why not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root to mount a filesystem"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "no mount/umount command"
    return None


def unmount(path: Path) -> None:
    if _sh("umount", str(path)).returncode != 0:
        _sh("umount", "-l", str(path))


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at `path`, unmounted afterwards; skips if mounting is impossible."""
    why = _can_mount()
    if why:
        pytest.skip(why)
    path.mkdir(parents=True, exist_ok=True)
    done = _sh("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        unmount(path)


def remount_tmpfs(path: Path, size: str) -> None:
    done = _sh("mount", "-o", f"remount,size={size}", str(path))
    assert done.returncode == 0, done.stderr


@contextlib.contextmanager
def read_only_bind(source: Path, target: Path) -> Iterator[Path]:
    """`source` (a file or a folder) seen read-only at `target`, even by root."""
    why = _can_mount()
    if why:
        pytest.skip(why)
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.touch()
    done = _sh("mount", "--bind", str(source), str(target))
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
    try:
        remounted = _sh("mount", "-o", "remount,ro,bind", str(target))
        if remounted.returncode != 0:
            pytest.skip(f"cannot remount a bind mount read-only: {remounted.stderr.strip()}")
        yield target
    finally:
        unmount(target)


# --- hypothesis -----------------------------------------------------------------------


def fuzz_settings(examples: int) -> settings:
    """Seeded (derandomized) so CI runs the same cases each time; `examples` x soak."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    if os.environ.get("LOYALTY_FUZZ_SHRINK"):
        phases.append(Phase.shrink)
    return settings(
        max_examples=examples * soak(),
        derandomize=True,
        database=None,
        deadline=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
