"""A ledger on PostgreSQL: the only module that imports psycopg, and only when
`--db`/`LOYALTY_DB` names a `postgresql://` URL.

- The same tables, indexes and chain as the SQLite file (schema.py), spelt for
  PostgreSQL (BIGINT, BYTEA); append-only is enforced by PL/pgSQL triggers that
  refuse UPDATE, DELETE and TRUNCATE, and by roles: `loyalty db init` creates
  the schema as its owner and grants a till role INSERT and SELECT only (and
  UPDATE of the contact fields a profile change writes).
- Every write takes one ledger-wide transaction lock (an advisory lock) before
  it reads, as SQLite's BEGIN IMMEDIATE does: the engine numbers operations and
  entries from the chain's tip it read, and an operation's entries are the ids
  after the previous operation's, so two writers must not decide on the same
  tip. A lock wait past LOYALTY_BUSY_TIMEOUT (lock_timeout) exits 75.
- Reads run in one REPEATABLE READ READ ONLY transaction: one snapshot.
- PgConn takes the store's SQLite SQL and rewrites what PostgreSQL spells
  differently (see translate); a statement made of tagged UNION ALL parts of
  different column types runs part by part, inside the caller's transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from functools import lru_cache
from itertools import pairwise
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import BadArgument, Busy, Contended, InputMissing, LoyaltyError, Refused
from . import schema
from .migrations import refuse_rounds_paid_twice

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.adapt import Loader
    from psycopg.pq import TransactionStatus

    IDLE = TransactionStatus.IDLE
except ImportError:  # pragma: no cover - the [postgres] extra is not installed
    psycopg = None  # type: ignore[assignment]

# The advisory lock every write takes (any fixed number: "LOY1" as an integer).
WRITE_LOCK = schema.APPLICATION_ID


def shown(url: str) -> str:
    """The URL without a password, for messages (passwords belong in .pgpass)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Rows:
    """Rows already fetched, as an sqlite3 cursor hands them out."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows
        self.at = 0

    def fetchone(self) -> Any:
        if self.at >= len(self.rows):
            return None
        self.at += 1
        return self.rows[self.at - 1]

    def fetchall(self) -> list[Any]:
        rest = self.rows[self.at :]
        self.at = len(self.rows)
        return rest

    def __iter__(self) -> Iterator[Any]:
        while self.at < len(self.rows):
            self.at += 1
            yield self.rows[self.at - 1]


_NUMBERED = re.compile(r"\?(\d+)")
_REWRITES = (
    # SQLite's index hints and join-order CROSS JOIN ... ON: plain joins here.
    (re.compile(r"\s+INDEXED BY \w+"), ""),
    # (a CROSS JOIN with no ON is a cross join in both, and stays one).
    (re.compile(r"\bCROSS JOIN (\w+(?:\s+(?!ON\b)\w+)?)\s+ON\b"), r"JOIN \1 ON"),
    (re.compile(r"json_each\((\?\d*)\)"), r"json_array_elements_text(\1::json)"),
    (re.compile(r"lower\(hex\(([\w.]+)\)\)"), r"encode(\1, 'hex')"),
    (
        re.compile(r"sqlite_master WHERE type = 'index' AND name IN"),
        "pg_indexes WHERE indexname IN",
    ),
    (re.compile(r"\bIS NOT (?!NULL\b)"), "IS DISTINCT FROM "),
    (re.compile(r"\bIS (\?\d*)"), r"IS NOT DISTINCT FROM \1::text"),
)


@lru_cache(maxsize=256)
def translate(sql: str) -> tuple[tuple[str, tuple[int, ...] | None], ...]:
    """SQLite SQL as PostgreSQL statements, each with the parameters it takes:
    None: all of them, in order (`?`); else the 0-based indexes of the
    numbered ones (`?N`) in the order they appear. A tagged UNION ALL (see
    snapshots.py: parts of different column types) becomes one statement per
    part, each with the WITH clause that opens it."""
    for pattern, replacement in _REWRITES:
        sql = pattern.sub(replacement, sql)
    sql = sql.replace("%", "%%")
    parts = [sql]
    prefix, body = "", sql
    if sql.startswith("WITH "):
        cut = _top_level(sql, " SELECT '")
        if cut:
            prefix, body = sql[: cut[0] + 1], sql[cut[0] + 1 :]
    if body.startswith("SELECT '"):
        cuts = _top_level(body, " UNION ALL ")
        if cuts:
            ends = [0, *cuts, len(body)]
            parts = [
                prefix + body[a + (len(" UNION ALL ") if a else 0) : b].strip()
                for a, b in pairwise(ends)
            ]
    out: list[tuple[str, tuple[int, ...] | None]] = []
    for part in parts:
        numbers = tuple(int(n) - 1 for n in _NUMBERED.findall(part))
        if numbers or "?" not in part:
            out.append((_NUMBERED.sub("%s", part), numbers))
        else:
            out.append((part.replace("?", "%s"), None))
    return tuple(out)


def _top_level(sql: str, needle: str) -> list[int]:
    """Where `needle` occurs in `sql` outside parentheses and quotes."""
    found: list[int] = []
    depth, quoted = 0, False
    for at, char in enumerate(sql):
        if char == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and sql.startswith(needle, at):
            found.append(at)
    return found


def _integral_numeric() -> type[Any]:
    class IntegralNumeric(Loader):
        """SUM over integers is NUMERIC in PostgreSQL; the ledger holds no
        fractions, so it comes back as the int SQLite gives."""

        def load(self, data: Any) -> int:
            return int(bytes(data).decode("ascii"))

    return IntegralNumeric


class PgConn:
    """A psycopg connection that speaks to the store as an sqlite3 one does.

    Round trips are what a till on a network pays for, so statements whose
    results nobody reads (BEGIN, the locks, a write's INSERTs and UPDATEs) wait
    in `pending` and go out with the next statement whose rows are wanted, or
    with the COMMIT, in one pipeline (libpq's pipeline mode): the server still
    runs them one after another, in order, each on what the previous ones left.
    An error in one of them surfaces at that flush, inside the same transaction,
    which then rolls back. `round_trips` counts the waits for the server."""

    backend = "postgresql"

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.pending: list[tuple[str, Any, bool]] = []  # (PostgreSQL SQL, parameters, many)
        self.open = False  # a transaction begun (its BEGIN perhaps still pending)
        self.round_trips = 0

    def defer(self, sql: str, parameters: Any = (), many: bool = False) -> None:
        """Send `sql` (PostgreSQL's spelling) with the next statement that reads."""
        self.pending.append((sql, parameters, many))

    def begin(self, sql: str = "BEGIN") -> None:
        self.defer(sql)
        self.open = True

    def end(self, sql: str = "COMMIT") -> None:
        """End the transaction: `sql` goes with what is pending, in one round trip
        (nothing at all, when the transaction never sent a statement)."""
        self.open = False
        if len(self.pending) == 1 and self.pending[0][0].startswith("BEGIN"):
            self.pending.clear()
            return
        self.defer(sql)
        self.flush()

    def abandon(self) -> None:
        """Roll back after an error: what is pending is dropped, unsent."""
        self.pending.clear()
        self.open = False
        if self.raw.info.transaction_status != IDLE:
            self.round_trips += 1
            self.raw.execute("ROLLBACK")

    def flush(self, then: Sequence[tuple[str, Any, bool]] = ()) -> list[Any]:
        """Send what is pending and then `then`, in one round trip; the cursors of
        `then`'s statements."""
        statements = [*self.pending, *then]
        self.pending = []
        if not statements:
            return []
        self.round_trips += 1
        cursors: list[Any] = []
        with self.raw.pipeline() if len(statements) > 1 or statements[0][2] else nullcontext():
            for sql, parameters, many in statements:
                cursor = self.raw.cursor()
                if many:
                    cursor.executemany(sql, parameters)
                else:
                    cursor.execute(sql, parameters)
                cursors.append(cursor)
        return cursors[len(statements) - len(then) :]

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Rows:
        if sql.startswith("CREATE INDEX IF NOT EXISTS"):
            # A budgeted rule's index (schema.budget_index): the owner makes it
            # (db init, or a write as the owner); a till role may not, and
            # does without it (it only speeds up that rule's total).
            self.flush()
            with suppress(pg_errors.InsufficientPrivilege), self.raw.transaction():
                self.round_trips += 1
                self.raw.execute(sql.replace("%", "%%"))
            return Rows([])
        parts = [
            (statement, list(parameters) if numbers is None else [parameters[n] for n in numbers])
            for statement, numbers in translate(sql)
        ]
        if self.open and sql.startswith(("INSERT", "UPDATE")) and "RETURNING" not in sql:
            for statement, args in parts:
                self.defer(statement, args)
            return Rows([])
        statements: list[tuple[str, Any, bool]] = [(sql_, args, False) for sql_, args in parts]
        if len(parts) > 1 and not self.open:
            # The parts of one SQLite statement are read from one snapshot, as
            # that statement would be (inside a write, the customers' row locks
            # keep what they read still).
            self.defer("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            statements.append(("COMMIT", (), False))
        rows: list[Any] = []
        for cursor in self.flush(statements):
            if cursor.description is not None:
                rows += cursor.fetchall()
        return Rows(rows)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Rows:
        ((statement, numbers),) = translate(sql)
        assert numbers is None
        self.defer(statement, [list(p) for p in parameters], many=True)
        if not self.open:
            self.flush()
        return Rows([])


def _connect(url: str, timeout: float) -> Any:
    if psycopg is None:
        raise BadArgument(
            "a postgresql:// ledger needs psycopg: pip install 'loyalty-cli[postgres]'",
            field="--db",
        )
    try:
        raw = psycopg.connect(url, autocommit=True, connect_timeout=max(2, int(timeout) or 2))
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
        raise InputMissing(f"cannot connect to {shown(url)}: {first}") from None
    except psycopg.ProgrammingError as exc:  # a malformed URL
        raise BadArgument(f"--db {shown(url)} is not a usable PostgreSQL URL: {exc}") from None
    raw.adapters.register_loader("numeric", _integral_numeric())
    return raw


class PgConnection:
    """A ledger on a PostgreSQL server: its transactions and its errors as a
    user's, with the same surface as connection.Connection."""

    backend = "postgresql"

    def __init__(self, raw: Any, url: str, timeout: float, writer: str | None = None) -> None:
        self.raw = raw
        self.writer = writer  # this process's hash chain
        self.conn = PgConn(raw)
        self.url = url
        self.path = shown(url)  # what messages and JSON name the ledger by
        self.timeout = timeout
        self.read_only = False
        self.depth = 0

    @classmethod
    def open(cls, url: str, *, timeout: float, writer: str) -> PgConnection:
        opened = cls(_connect(url, timeout), url, timeout, writer)
        try:
            opened._check()
        except BaseException:
            opened.close()
            raise
        return opened

    def _check(self) -> None:
        """The busy timeout set and the ledger's marks read, in one round trip."""
        try:
            with self.translate(), self.raw.pipeline():
                self.raw.cursor().execute(f"SET lock_timeout = {int(self.timeout * 1000)}")
                meta = self.raw.cursor().execute("SELECT key, value FROM loyalty_meta")
            found = dict(meta.fetchall())
        except pg_errors.UndefinedTable:
            raise InputMissing(
                f"no ledger at {self.path} yet: create it with loyalty db init --db {self.path}"
            ) from None
        if found.get("application") != "loyalty":
            raise InputMissing(f"{self.path} is not a loyalty ledger; pass another --db")
        version = int(found.get("schema_version", "0"))
        if version != schema.SCHEMA_VERSION:
            newer = version > schema.SCHEMA_VERSION
            raise InputMissing(
                f"{self.path} has ledger schema {version}, "
                + (
                    f"newer than this loyalty knows ({schema.SCHEMA_VERSION}); upgrade loyalty"
                    if newer
                    else f"older than this loyalty writes ({schema.SCHEMA_VERSION}); "
                    f"upgrade it as its owner: loyalty db init --db {self.path}"
                )
            )

    def close(self) -> None:
        self.raw.close()

    # --- errors -------------------------------------------------------------------

    def classify(self, exc: Exception) -> LoyaltyError | None:
        if isinstance(
            exc,
            pg_errors.DeadlockDetected | pg_errors.SerializationFailure | pg_errors.UniqueViolation,
        ):
            return Contended(
                f"database {self.path}: this write met another at the same moment "
                f"({type(exc).__name__}) and was rolled back; try again"
            )
        if isinstance(
            exc,
            pg_errors.LockNotAvailable | pg_errors.QueryCanceled,
        ):
            return Busy(
                f"database {self.path} is busy: another loyalty command held it too long; "
                "try again in a moment"
            )
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return Refused(
                f"database {self.path} refused: {_first_line(exc)} (this role may not do "
                "that; see loyalty db init --grant-till)",
                code="not_permitted",
            )
        if isinstance(exc, psycopg.OperationalError):
            return InputMissing(f"lost the connection to {self.path}: {_first_line(exc)}")
        return None

    @contextmanager
    def translate(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            error = self.classify(exc)
            if error is None:
                raise
            raise error from None

    # --- transactions ---------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction (READ COMMITTED): it locks what it touches as it
        goes (lock_customers, lock_all, claim), and the locks end with it. Its
        BEGIN and locks go with its first read, its writes with its COMMIT."""
        assert not self.depth, "write transactions do not nest"
        with self.translate():
            self.conn.begin()
            self.depth = 1
            try:
                yield
                self.conn.end()
            except BaseException:
                with suppress(psycopg.Error):
                    self.conn.abandon()
                raise
            finally:
                self.depth = 0

    def lock_customers(self, ids: list[str]) -> None:
        """Lock these customers' rows, in id order (so two writers never wait on
        each other in a cycle): every decision about them is made on what was
        committed before the lock, and no one else writes for them until this
        transaction ends. Writers on other customers go on in parallel."""
        if ids:
            self.conn.defer(
                "SELECT id FROM customers WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (ids,)
            )

    def lock_all(self) -> None:
        """The ledger-wide lock, from the start of a write whose decisions read
        more than its customers: a budget shared by every customer, or an import."""
        self.conn.defer("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))

    def claim(self, tip: Any) -> None:
        """Just before appending: take the append lock (held to the commit, so
        batches go in one at a time, each with contiguous ids) and read the tip
        as it now is, and this writer's chain head (snapshots.Tip). One round
        trip: the lock and the read go in one pipeline, and the read (its own
        statement, so its own snapshot under READ COMMITTED) sees every batch
        committed before the lock was granted."""
        self.lock_all()
        (cursor,) = self.conn.flush(
            [
                (
                    "SELECT (SELECT max(id) FROM operations), (SELECT max(id) FROM entries), "
                    "(SELECT max(id) FROM draws), (SELECT hash FROM operations WHERE id = "
                    "(SELECT max(id) FROM operations WHERE writer IS NOT DISTINCT FROM %s::text))",
                    (tip.writer,),
                    False,
                )
            ]
        )
        row = cursor.fetchone()
        tip.op, tip.entry, tip.draw = row[0] or 0, row[1] or 0, row[2] or 0
        tip.hash = row[3] or b""

    def purge(self) -> bool:
        """After an erasure: rewrite the customers table (VACUUM FULL) so no dead
        row version keeps the values it removed. Only the table's owner may, and
        the rewrite waits for every till reading customers (lock_timeout): False
        when this role is not the owner or the wait ran out; an owner's erase run
        again finishes it. Copies in the server's write-ahead log, its replicas and
        its backups go as those are recycled (README, PostgreSQL: erasure)."""
        with self.translate():
            self.conn.round_trips += 1
            (owner,) = self.raw.execute(
                "SELECT pg_has_role(relowner, 'MEMBER') FROM pg_class "
                "WHERE oid = 'customers'::regclass"
            ).fetchone()
        if not owner:
            return False
        try:
            self.conn.round_trips += 1
            self.raw.execute("VACUUM FULL customers")
        except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled):
            return False
        return True

    def after_copy(self) -> None:
        """Rows copied in with their ids (store/copy.py): the rules texts' id
        sequence goes on after the highest."""
        self.raw.execute(
            "SELECT setval('rulesets_id_seq', max(id)) FROM rulesets HAVING max(id) IS NOT NULL"
        )

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read: one snapshot (REPEATABLE READ READ ONLY), begun with its first statement."""
        if self.conn.open:  # inside a write, or a snapshot already: that one it is
            yield
            return
        with self.translate():
            self.conn.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield
            finally:
                with suppress(psycopg.Error):
                    self.conn.end()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- the schema ------------------------------------------------------------------

_TYPES = (
    (re.compile(r"\bid INTEGER PRIMARY KEY\b"), "id BIGINT PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\)\s*WITHOUT ROWID"), ")"),
)

_APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION loyalty_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% are append-only: add a correcting entry instead', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""
_IDENTITY_FUNCTION = """
CREATE OR REPLACE FUNCTION loyalty_keep_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- schema.KEEP_IDENTITY's rule: a salt changes only in an erasure, which
    -- empties the personal fields after its erase operation is recorded.
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.enrolled IS DISTINCT FROM OLD.enrolled
       OR NEW.recorded IS DISTINCT FROM OLD.recorded
       OR NEW.referred_by IS DISTINCT FROM OLD.referred_by
       OR (NEW.salt IS DISTINCT FROM OLD.salt AND NOT (
           NEW.name IS NULL AND NEW.email IS NULL AND NEW.phone IS NULL
           AND NEW.birthday IS NULL AND EXISTS (
               SELECT 1 FROM operations WHERE customer_id = NEW.id AND kind = 'erase'))) THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE =
            'a customer''s id, enrollment and referrer never change, '
            || 'nor their salt but in an erasure';
    END IF;
    RETURN NEW;
END
$$
"""
PG_TRIGGERS = frozenset(
    [f"{t}_no_{a}" for t in schema.APPEND_ONLY for a in ("update", "delete", "truncate")]
    + ["customers_no_delete", "customers_no_truncate", "customers_keep_identity"]
)


def schema_statements() -> list[str]:
    """schema.py's tables and indexes spelt for PostgreSQL, with its triggers."""
    out = []
    for table in schema.TABLES:
        for pattern, replacement in _TYPES:
            table = pattern.sub(replacement, table)
        if "CREATE TABLE rulesets" in table:
            table = table.replace(
                "id BIGINT PRIMARY KEY", "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
            )
        out.append(table)
    out += list(schema.INDEXES)
    out += [_APPEND_ONLY_FUNCTION, _IDENTITY_FUNCTION]
    for table in schema.APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION loyalty_refuse()"
            )
        out.append(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION loyalty_refuse()"
        )
    out += [
        "CREATE TRIGGER customers_no_delete BEFORE DELETE ON customers "
        "FOR EACH ROW EXECUTE FUNCTION loyalty_refuse()",
        "CREATE TRIGGER customers_no_truncate BEFORE TRUNCATE ON customers "
        "FOR EACH STATEMENT EXECUTE FUNCTION loyalty_refuse()",
        "CREATE TRIGGER customers_keep_identity BEFORE UPDATE ON customers "
        "FOR EACH ROW EXECUTE FUNCTION loyalty_keep_identity()",
        "CREATE TABLE loyalty_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TRIGGER loyalty_meta_no_update BEFORE UPDATE OR DELETE ON loyalty_meta "
        "FOR EACH ROW EXECUTE FUNCTION loyalty_refuse()",
    ]
    return out


_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
LEDGER_TABLES = (
    *("rulesets", "customers", "operations", "entries", "draws", "runs", "items", "merges"),
)


def init(url: str, grant_till: Sequence[str], timeout: float) -> dict[str, object]:
    """Create the ledger's schema (if it is not there yet) as the connecting role,
    its owner, and grant each till role INSERT and SELECT only (and UPDATE of
    the contact fields a profile change writes)."""
    for role in grant_till:
        if not _ROLE.fullmatch(role):
            raise BadArgument(
                f"--grant-till {role[:70]!r} is not a role name (letters, digits and _, "
                "at most 63)",
                field="--grant-till",
            )
    raw = _connect(url, timeout)
    raw.execute(f"SET lock_timeout = {int(timeout * 1000)}")
    target = shown(url)
    try:
        with PgConnection(raw, url, timeout).translate():
            exists = raw.execute("SELECT to_regclass('loyalty_meta') IS NOT NULL").fetchone()[0]
            with raw.transaction():
                created = not exists
                upgraded = None
                if exists:
                    upgraded = _upgrade(raw, target)
                    PgConnection(raw, url, timeout)._check()
                    # The triggers' functions as this version has them.
                    raw.execute(_APPEND_ONLY_FUNCTION)
                    raw.execute(_IDENTITY_FUNCTION)
                else:
                    for statement in schema_statements():
                        raw.execute(statement)
                    raw.execute(
                        "INSERT INTO loyalty_meta VALUES ('application', 'loyalty'), "
                        "('schema_version', %s)",
                        (str(schema.SCHEMA_VERSION),),
                    )
                for role in grant_till:
                    found = raw.execute(
                        "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
                    ).fetchone()
                    if found is None:
                        raise BadArgument(
                            f"--grant-till {role}: no such role on {target} (create it "
                            f"first: CREATE ROLE {role} LOGIN)",
                            field="--grant-till",
                        )
                    tables = ", ".join(LEDGER_TABLES)
                    raw.execute(f'GRANT SELECT, INSERT ON {tables}, loyalty_meta TO "{role}"')
                    raw.execute(
                        "GRANT UPDATE (name, email, phone, birthday, birthday_set, salt) "
                        f'ON customers TO "{role}"'
                    )
                    raw.execute(f'GRANT USAGE ON SEQUENCE rulesets_id_seq TO "{role}"')
                    raw.execute(f'REVOKE TRUNCATE, DELETE ON {tables} FROM "{role}"')
    finally:
        raw.close()
    return {
        "db": target,
        "created": created,
        "upgraded_from": upgraded,
        "schema_version": schema.SCHEMA_VERSION,
        "tills": list(grant_till),
    }


def _upgrade(raw: Any, target: str) -> int | None:
    """Bring a ledger an older loyalty made up to this schema, in the caller's
    transaction, as its owner (tills may not change a schema): the version it
    was at, or None when it is current. PostgreSQL ledgers start at schema 6,
    and every step since adds (a table, a nullable column, an index, a
    trigger): nothing written changes, so the chains verify as before. The
    database itself says what is missing: this version's schema is made in a
    scratch schema and compared with the ledger's, then dropped."""
    row = raw.execute("SELECT value FROM loyalty_meta WHERE key = 'schema_version'").fetchone()
    version = int(row[0]) if row else 0
    if not 6 <= version < schema.SCHEMA_VERSION:
        return None  # current, or _check says what is wrong with it
    home = raw.execute("SELECT current_schema()").fetchone()[0]
    raw.execute("CREATE SCHEMA loyalty_next")
    raw.execute("SET LOCAL search_path TO loyalty_next")
    for statement in schema_statements():
        raw.execute(statement)
    raw.execute(f'SET LOCAL search_path TO "{home}"')
    missing = raw.execute(
        "SELECT n.table_name, n.column_name, n.data_type, n.is_nullable, "
        "o.table_name IS NOT NULL FROM information_schema.columns n "
        "LEFT JOIN information_schema.tables o ON o.table_schema = %s "
        "AND o.table_name = n.table_name WHERE n.table_schema = 'loyalty_next' "
        "AND NOT EXISTS (SELECT 1 FROM information_schema.columns c WHERE "
        "c.table_schema = %s AND c.table_name = n.table_name "
        "AND c.column_name = n.column_name) ORDER BY n.table_name, n.ordinal_position",
        (home, home),
    ).fetchall()
    raw.execute("DROP SCHEMA loyalty_next CASCADE")
    if version < 11:  # m011's unique index over game rounds comes next
        refuse_rounds_paid_twice(raw)
    if version < 13:  # m013: the customer index covers more columns, made again below
        raw.execute("DROP INDEX IF EXISTS operations_customer")
    tables = {table for table, _, _, _, known in missing if not known}
    for table, column, kind, nullable, known in missing:
        if not known:
            continue
        if nullable != "YES":  # never so far: a step that needs one writes its own
            raise InputMissing(
                f"{target} has ledger schema {version}: its table {table} lacks {column}, "
                "which this loyalty cannot add; upgrade one version at a time"
            )
        raw.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    for statement in schema_statements():
        head = statement.lstrip()
        if head.startswith("CREATE TABLE"):
            if head.split()[2] in tables:
                raw.execute(statement)
        elif head.startswith(("CREATE INDEX", "CREATE UNIQUE INDEX")):
            raw.execute(head.replace(" INDEX ", " INDEX IF NOT EXISTS ", 1))
        elif head.startswith("CREATE TRIGGER"):
            raw.execute(head.replace("CREATE TRIGGER", "CREATE OR REPLACE TRIGGER", 1))
        else:  # the triggers' functions: CREATE OR REPLACE already
            raw.execute(statement)
    # The tills granted on the ledger before get the same on its new tables.
    tills = raw.execute(
        "SELECT DISTINCT grantee FROM information_schema.role_table_grants "
        "WHERE table_schema = %s AND table_name = 'operations' "
        "AND privilege_type = 'INSERT' AND grantee <> current_user",
        (home,),
    ).fetchall()
    for (role,) in tills:
        if tables:
            raw.execute(f'GRANT SELECT, INSERT ON {", ".join(sorted(tables))} TO "{role}"')
    raw.execute("ALTER TABLE loyalty_meta DISABLE TRIGGER loyalty_meta_no_update")
    raw.execute(
        "UPDATE loyalty_meta SET value = %s WHERE key = 'schema_version'",
        (str(schema.SCHEMA_VERSION),),
    )
    raw.execute("ALTER TABLE loyalty_meta ENABLE TRIGGER loyalty_meta_no_update")
    return version
