"""`loyalty verify`: the ledger checked against itself, as a list of small checks.

What it proves (the README's "Tamper evidence" repeats it):
- every operation, with every entry, lot and draw it wrote, is exactly as it was
  appended, and none was inserted, changed or removed in between: one SHA-256
  chain runs through them all;
- each customer's profile (name, contacts, birthday, referrer, enrollment) is
  the one the last enroll or profile operation recorded, by a salted digest;
- each stored rules text is the text its version (sha256) names;
- the runs table (imports, nightly) is chained on its own;
- the append-only triggers are all there, rows refer to rows that exist, kinds
  are known, and the lots account for every point;
- the heads remembered by earlier verifies (in `<ledger>.heads`) are still in
  the chain, so rows cut off or a chain rewritten since then show.

What it cannot prove: that the newest rows were not removed, or the chain
rewritten whole, since the last remembered head (keep `verify --json`'s heads
somewhere else too); nor that a correct-looking operation was made by loyalty
rather than forged with its hashes recomputed at the end of the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..kinds import EntryKind, OpKind
from .chain import op_hash, profile_digest, run_hash
from .dialect import Conn, is_postgres
from .schema import (
    DRAW_FIELDS,
    ENTRY_FIELDS,
    ITEM_FIELDS,
    OP_FIELDS,
    PROFILE_FIELDS,
    RUN_FIELDS,
    TRIGGERS,
)

CHANGED = "was changed, inserted or removed outside loyalty"


@dataclass
class VerifyReport:
    entries: int = 0
    operations: int = 0
    customers: int = 0
    first_bad_entry: int | None = None
    # The newest hash of the chain. Kept somewhere else (a daily mail from cron),
    # it lets you notice later that the newest rows were cut off.
    entries_head: str | None = None
    operations_head: str | None = None
    problems: list[str] = field(default_factory=list)
    head_id: int | None = None  # the newest operation, as remembered in the heads file
    # Each hash chain's operations and head, by writer (None: a ledger file's
    # one chain; on PostgreSQL each till chains its own operations).
    chains: dict[str | None, tuple[int, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "entry_count": self.entries,
            "operation_count": self.operations,
            "members": self.customers,
            "first_bad_entry": self.first_bad_entry,
            "entries_head": self.entries_head,
            "operations_head": self.operations_head,
            "chains": [
                {"writer": writer, "operation_count": count, "head": head}
                for writer, (count, head) in sorted(
                    self.chains.items(), key=lambda item: (item[0] is not None, item[0] or "")
                )
            ],
            "problems": self.problems,
        }


Check = Callable[[Conn, VerifyReport], None]


def integrity(conn: Conn, report: VerifyReport) -> None:
    if is_postgres(conn):  # no quick_check there: pages are the server's to check
        return
    check = conn.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        report.problems.append(f"SQLite integrity check failed: {check}")


def _rows(conn: Conn, sql: str) -> Iterator[tuple[Any, ...]]:
    yield from conn.execute(sql)


def chain(conn: Conn, report: VerifyReport) -> None:
    """Walk the operations in order, each with the entries in its range and their
    draws, recomputing the chain: one pass over each table."""
    versions = {rid: bytes(v).hex() for rid, v in conn.execute("SELECT id, version FROM rulesets")}
    entries = _rows(conn, f"SELECT {ENTRY_FIELDS} FROM entries ORDER BY id")
    draws = _rows(conn, f"SELECT {DRAW_FIELDS} FROM draws ORDER BY id")
    items = _rows(conn, f"SELECT {ITEM_FIELDS} FROM items ORDER BY op_id, number")
    entry = next(entries, None)
    draw = next(draws, None)
    item = next(items, None)
    previous = b""
    heads: dict[str | None, bytes] = {}  # each writer's chain
    counts: dict[str | None, int] = {}
    newest_entry_op: bytes | None = None
    bad_op: int | None = None
    query = f"SELECT {OP_FIELDS}, hash, store, writer FROM operations ORDER BY id"
    for full in conn.execute(query):
        row, store, writer = full[:-2], full[-2], full[-1]
        report.operations += 1
        op_id, last_entry = int(row[0]), int(row[6])
        mine: list[tuple[Any, ...]] = []
        while entry is not None and int(entry[0]) <= last_entry:
            mine.append(entry)
            if entry[1] != op_id:
                report.problems.append(
                    f"entry #{entry[0]} belongs to operation #{entry[1]} but lies among "
                    f"operation #{op_id}'s entries: it {CHANGED}"
                )
            entry = next(entries, None)
        taken: list[tuple[Any, ...]] = []
        while draw is not None and int(draw[1]) <= last_entry:
            taken.append(draw)
            draw = next(draws, None)
        sold: list[tuple[Any, ...]] = []
        while item is not None and int(item[0]) <= op_id:
            sold.append(item)
            item = next(items, None)
        ruleset = row[5]
        hashed = (*row[:5], None if ruleset is None else versions.get(ruleset, "?"), *row[6:-1])
        expected = op_hash(heads.get(writer, b""), hashed, mine, taken, sold, store)
        stored = bytes(row[-1])
        if expected != stored and bad_op is None:
            bad_op = op_id
            named = ""
            if mine:
                first, last = mine[0][0], mine[-1][0]
                named = f" (entries #{first}" + (f"-#{last})" if last != first else ")")
                report.first_bad_entry = int(first)
            report.problems.insert(
                0,
                f"operation #{op_id}{named} does not match the hash chain: it, one of its "
                f"entries, lots or draws, or the operation before it {CHANGED}",
            )
        report.entries += len(mine)
        if mine:
            newest_entry_op = stored
        # Follow the stored hashes, so one bad row is reported once, not as a
        # cascade through every row after it.
        previous = heads[writer] = stored
        counts[writer] = counts.get(writer, 0) + 1
        report.head_id = op_id
    report.operations_head = previous.hex() if previous else None
    report.chains = {w: (counts[w], head.hex()) for w, head in heads.items()}
    report.entries_head = newest_entry_op.hex() if newest_entry_op else None
    left = 0
    while entry is not None:
        left += 1
        first = entry[0] if left == 1 else first
        entry = next(entries, None)
    if left:
        report.problems.append(
            f"{left} entries from #{first} belong to no operation: they were added {CHANGED}"
        )
        report.entries += left
    if draw is not None:
        report.problems.append(f"draw #{draw[0]} belongs to no operation: it was added {CHANGED}")
    if item is not None:
        report.problems.append(
            f"receipt line {item[1]} of operation #{item[0]} belongs to no operation: "
            f"it was added {CHANGED}"
        )


def triggers(conn: Conn, report: VerifyReport) -> None:
    if is_postgres(conn):
        from .postgres import PG_TRIGGERS

        wanted = PG_TRIGGERS
        present = {
            str(n)
            for (n,) in conn.execute(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled != 'D'"
            )
        }
    else:
        wanted = TRIGGERS
        present = {
            n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")
        }
    if missing := sorted(wanted - present):
        report.problems.append(
            f"the append-only protection was removed: trigger{'s' if len(missing) > 1 else ''}"
            f" {', '.join(missing)} missing"
        )


def references(conn: Conn, report: VerifyReport) -> None:
    if is_postgres(conn):  # foreign keys are enforced there on every write, always
        return
    for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
        report.problems.append(f"{table} row {rowid} refers to a missing {parent} row")


def kinds(conn: Conn, report: VerifyReport) -> None:
    for table, known in (("entries", EntryKind), ("operations", OpKind)):
        names = [str(k) for k in known]
        marks = ", ".join("?" for _ in names)
        for row_id, kind in conn.execute(
            f"SELECT id, kind FROM {table} WHERE kind NOT IN ({marks}) LIMIT 5", names
        ):
            noun = "entry" if table == "entries" else "operation"
            report.problems.append(f"{noun} #{row_id} has unknown kind '{kind}'")


def lots(conn: Conn, report: VerifyReport) -> None:
    """The lots must account for every point: each credit opens a lot, no lot
    gives more than it holds, and every debit but a refund's is fully drawn
    from lots. So a balance can only go negative through a refund the rules
    allowed to (refund_shortfall: allow_negative)."""
    for (entry_id,) in conn.execute(
        "SELECT id FROM entries WHERE points > 0 AND (earned_on IS NULL OR available_on IS NULL) "
        "LIMIT 5"
    ):
        report.problems.append(f"entry #{entry_id} is a credit without a lot")
    for lot_id, drawn, held in conn.execute(
        "SELECT d.lot_id, SUM(d.points), e.points FROM draws d JOIN entries e "
        "ON e.id = d.lot_id GROUP BY d.lot_id, e.points HAVING SUM(d.points) > e.points LIMIT 5"
    ):
        report.problems.append(f"lot #{lot_id} gave {drawn} points but held only {held}")
    # A draw's copy of its lot's expiry is not hashed (the lot's is): it must agree.
    for draw_id, lot_id in conn.execute(
        "SELECT d.id, d.lot_id FROM draws d JOIN entries e ON e.id = d.lot_id "
        "WHERE d.expires_on IS NOT e.expires_on LIMIT 5"
    ):
        report.problems.append(
            f"draw #{draw_id} does not carry the expiry day of its lot #{lot_id}: "
            f"the draws table {CHANGED}"
        )
    for entry_id, points, drawn in conn.execute(
        "SELECT e.id, e.points, COALESCE(d.drawn, 0) AS drawn FROM entries e "
        "LEFT JOIN (SELECT entry_id, SUM(points) AS drawn FROM draws GROUP BY entry_id) d "
        "ON d.entry_id = e.id WHERE e.points <= 0 "
        "AND (COALESCE(d.drawn, 0) > -e.points "
        "OR (e.kind != 'refund' AND COALESCE(d.drawn, 0) != -e.points)) LIMIT 5"
    ):
        report.problems.append(
            f"entry #{entry_id} takes {-points} points but draws {drawn} from lots"
        )


def merges(conn: Conn, report: VerifyReport) -> None:
    """The merges table is not hashed: each row must say what its `merge`
    operation (chained) did, the keeper its customer and the duplicate the
    customer of its first entry, and every merge operation must have its row."""
    for duplicate, keep, op_id in conn.execute(
        "SELECT m.duplicate, m.keep, m.op_id FROM merges m LEFT JOIN operations o "
        "ON o.id = m.op_id WHERE o.id IS NULL OR o.kind != 'merge' OR o.customer_id != m.keep "
        "OR m.duplicate IS NOT (SELECT e.customer_id FROM entries e WHERE e.op_id = o.id "
        "ORDER BY e.id LIMIT 1) LIMIT 5"
    ):
        report.problems.append(
            f"merge of {duplicate!r} into {keep!r} is not what operation #{op_id} recorded: "
            f"the merges table {CHANGED}"
        )
    for (op_id,) in conn.execute(
        "SELECT o.id FROM operations o WHERE o.kind = 'merge' "
        "AND NOT EXISTS (SELECT 1 FROM merges m WHERE m.op_id = o.id) LIMIT 5"
    ):
        report.problems.append(
            f"merge operation #{op_id} has no row in the merges table: it {CHANGED}"
        )


def rulesets(conn: Conn, report: VerifyReport) -> None:
    """A rules text must be the one its version names: entries are explained by it."""
    for rid, version, text in conn.execute("SELECT id, version, text FROM rulesets ORDER BY id"):
        if hashlib.sha256(str(text).encode("utf-8")).digest() != bytes(version):
            report.problems.append(
                f"rules text #{rid} is not the text its version {bytes(version).hex()[:12]}... "
                f"names: it {CHANGED}"
            )


def profiles(conn: Conn, report: VerifyReport) -> None:
    """Each customer's profile must be the one their last enroll or profile
    operation recorded (a salted digest)."""
    recorded = dict(
        conn.execute(
            "SELECT o.customer_id, o.profile FROM operations o JOIN (SELECT customer_id, "
            "MAX(id) AS id FROM operations WHERE profile IS NOT NULL GROUP BY customer_id) m "
            "ON m.id = o.id"
        )
    )
    # Members as the reports count them: a merged duplicate is its keeper's account
    # (every profile is checked all the same).
    merged = {str(r[0]) for r in conn.execute("SELECT duplicate FROM merges")}
    for row in conn.execute(f"SELECT {PROFILE_FIELDS}, salt FROM customers ORDER BY id"):
        cid = row[0]
        if cid not in merged:
            report.customers += 1
        digest = recorded.get(cid)
        if digest is None:
            report.problems.append(
                f"customer {cid!r} has no enrollment in the chain: the customer {CHANGED}"
            )
        elif profile_digest(bytes(row[-1]), row[:-1]) != bytes(digest):
            report.problems.append(
                f"customer {cid!r}'s profile is not the one loyalty last recorded: it {CHANGED}"
            )


def runs(conn: Conn, report: VerifyReport) -> None:
    previous = b""
    for row in conn.execute(f"SELECT {RUN_FIELDS}, hash FROM runs ORDER BY id"):
        if run_hash(previous, row[:-1]) != bytes(row[-1]):
            report.problems.append(
                f"run #{row[0]} does not match the runs' hash chain: it, or the one before it, "
                f"{CHANGED}"
            )
            break
        previous = bytes(row[-1])


CHECKS: tuple[Check, ...] = (
    integrity,
    chain,
    triggers,
    references,
    kinds,
    lots,
    merges,
    rulesets,
    profiles,
    runs,
)


def verify(conn: Conn) -> VerifyReport:
    report = VerifyReport()
    for check in CHECKS:
        check(conn, report)
    return report


# --- the heads file ------------------------------------------------------------------


def heads_file(ledger: Path) -> Path:
    return Path(f"{ledger}.heads")


def remembered(conn: Conn, ledger: Path, report: VerifyReport) -> None:
    """Each head an earlier verify remembered must still be in the chain: rows cut
    off the end, or a chain rewritten, since then show here."""
    path = heads_file(ledger)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, OSError, UnicodeDecodeError):
        return
    for line in lines[-1000:]:
        try:
            head = json.loads(line)
            op_id, expected, when = int(head["operation"]), str(head["hash"]), head["verified_at"]
        except (ValueError, KeyError, TypeError):
            continue
        row = conn.execute("SELECT hash FROM operations WHERE id = ?", (op_id,)).fetchone()
        if row is None or bytes(row[0]).hex() != expected:
            report.problems.append(
                f"operation #{op_id}, verified on {when} with hash {expected[:12]}..., is "
                f"{'gone' if row is None else 'not the same'}: the newest rows were cut off or "
                f"the chain rewritten since (the heads are in {path})"
            )
            return


def remember(ledger: Path, report: VerifyReport, now: datetime) -> None:
    """Note the head of a ledger that verified, beside it (when the folder allows)."""
    if not report.ok or report.head_id is None or report.operations_head is None:
        return
    line = json.dumps(
        {
            "verified_at": now.astimezone(UTC).isoformat(timespec="seconds"),
            "operation": report.head_id,
            "hash": report.operations_head,
        }
    )
    path = heads_file(ledger)
    try:
        with path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
    except OSError:
        pass  # a read-only folder: nothing to remember, and nothing lost
