"""The ledger: an append-only SQLite file, the only place that touches sqlite3.

- connection.py: opening the file, transactions, SQLite's errors as a user's;
- schema.py: the tables and indexes, and the migrations to them (legacy.py:
  the ledgers before the lean store);
- chain.py: the hash chain and the profile digests;
- snapshots.py: what decisions need, read in two statements;
- append.py: what they decided, written in one batch;
- queries.py: the read side (balance, history, nightly's questions, runs);
- reports.py: the report aggregates; verify.py: the checks.

A write is `with store.writing(...) as book:` decisions on the book `...`: the
Book is read under the write lock when the block starts, and what the
decisions recorded in it is appended, in one batch, when it ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .connection import DEFAULT_TIMEOUT, Connection

if TYPE_CHECKING:  # the write side's modules load only when a write happens:
    # `balance` and `history`, the commands a till calls most, start faster.
    from ..account import Account
    from ..engine.book import Book
    from ..engine.records import Recorded
    from ..models import Ruleset
    from . import verify as checks
    from .backup import BackupResult
    from .dialect import Conn
    from .kept import Kept
    from .postgres import PgConnection

__all__ = ["DEFAULT_TIMEOUT", "Store"]


class Store:
    def __init__(self, connection: Connection | PgConnection) -> None:
        self.connection = connection
        self.conn: Conn = connection.conn
        self.path = connection.path
        self._kept: Kept | None = None

    @property
    def backend(self) -> str:
        """ "sqlite" (a ledger file) or "postgresql" (a server; see postgres.py)."""
        return getattr(self.connection, "backend", "sqlite")

    def sqlite(self) -> Connection:
        """The SQLite connection, for what only a ledger file can do (a backup of
        the file, a private copy for a dry run)."""
        from ..errors import BadArgument

        if not isinstance(self.connection, Connection):
            raise BadArgument(
                f"this needs a SQLite ledger file; {self.path} is on PostgreSQL",
                code="unsupported_backend",
            )
        return self.connection

    def keep_accounts(self, budget: int) -> None:
        """Keep accounts between write transactions, up to `budget` lots, tier
        inputs and uses in all (see kept.Kept): for a writer that comes back
        to the same customers."""
        from .kept import Kept

        self._kept = Kept(budget)

    def widen_cache(self, mebibytes: int) -> None:
        """Give a long writer (an import) a page cache of `mebibytes`: each row
        it appends adds index entries at its customer's place in the customer
        indexes, and once the ledger outgrows SQLite's default 2 MB most of those
        pages miss the cache. Measured on a 1M-row import's rows (the ledger
        floor): 7% less time with 16 MB. Only bulk writers pay for the memory;
        reports and tills keep the default, so they stay flat in the ledger's size."""
        if self.backend == "sqlite":
            self.conn.execute(f"PRAGMA cache_size = -{mebibytes * 1024}")

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        create: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        read_only: bool = False,
    ) -> Store:
        return cls(Connection.open(path, create=create, timeout=timeout, read_only=read_only))

    @classmethod
    def open_url(cls, url: str, *, writer: str, timeout: float = DEFAULT_TIMEOUT) -> Store:
        """A ledger on PostgreSQL (made with `loyalty db init`): psycopg loads
        here. `writer` names this till's hash chain there."""
        from .postgres import PgConnection

        return cls(PgConnection.open(url, timeout=timeout, writer=writer))

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def read_only(self) -> bool:
        return self.connection.read_only

    @contextmanager
    def writing(
        self,
        ruleset: Ruleset,
        now: datetime,
        customers: Iterable[str] | Callable[[dict[str, Recorded]], Iterable[str]] = (),
        txns: Iterable[str | None] = (),
        lines_for: Iterable[str] | None = None,
    ) -> Iterator[Book]:
        """One write transaction: a Book of these customers' accounts and these
        txns' operations (see snapshots.load), read under the write lock; what
        the decisions record in it is appended when the block ends, or nothing if
        it raises."""
        from . import append, snapshots
        from .connection import Connection

        connection = self.connection
        with connection.transaction():
            lock = None
            if not isinstance(connection, Connection):  # PostgreSQL: see postgres.py
                if callable(customers) or any(r.budget is not None for r in ruleset.rules):
                    # A budget shared by every customer (or an import): one at a time.
                    connection.lock_all()
                if not callable(customers):
                    lock = connection.lock_customers
            book, tip = snapshots.load(
                self.conn,
                ruleset,
                now,
                customers,
                [t for t in txns if t is not None],
                lines_for,
                self._kept,
                writer=connection.writer,
                lock=lock,
            )
            yield book
            ops = book.take()
            if ops and not isinstance(connection, Connection):
                connection.claim(tip)
            append.append(self.conn, ops, ruleset, now, tip)
            if self._kept is not None:
                self._kept.keep(tip, ruleset.version, book.accounts)

    def reading(
        self,
        ruleset: Ruleset,
        now: datetime,
        customers: Iterable[str] = (),
        txns: Iterable[str | None] = (),
    ) -> Book:
        """A Book read without the write lock, for a decision that writes nothing
        (a dry run): consistent, since it is read in one transaction."""
        from . import snapshots

        with self.connection.snapshot():
            book, _ = snapshots.load(
                self.conn, ruleset, now, customers, [t for t in txns if t is not None], write=False
            )
        return book

    def accounts(self, ruleset: Ruleset | None, customers: Iterable[str]) -> dict[str, Account]:
        from . import snapshots

        with self.connection.translate():
            return snapshots.accounts(self.conn, ruleset, customers)

    def standings(
        self, ruleset: Ruleset, customers: Iterable[str], until: int
    ) -> dict[str, Account]:
        """Accounts holding a tier's inputs as recorded before `until` (snapshots.standings)."""
        from . import snapshots

        with self.connection.translate():
            return snapshots.standings(self.conn, ruleset, customers, until)

    def plays(self, ruleset: Ruleset, customers: Iterable[str], until: int) -> dict[str, Account]:
        """Accounts holding their games' play as recorded by `until` (snapshots.plays)."""
        from . import snapshots

        with self.connection.translate():
            return snapshots.plays(self.conn, ruleset, customers, until)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        with self.connection.snapshot():
            yield

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write of the runs table (imports, nightly): on PostgreSQL under the
        ledger-wide lock, as the runs' chain is extended from its newest row."""
        from .connection import Connection

        connection = self.connection
        with connection.transaction():
            if not isinstance(connection, Connection):  # PostgreSQL
                connection.lock_all()
            yield

    @contextmanager
    def erasing(self) -> Iterator[None]:
        """A write whose removed values SQLite must overwrite, not leave in the
        page's free space (PRAGMA secure_delete). On PostgreSQL the old row
        versions are dead tuples until purge() rewrites the table."""
        if self.backend != "sqlite":
            yield
            return
        self.conn.execute("PRAGMA secure_delete = ON")
        try:
            yield
        finally:
            self.conn.execute("PRAGMA secure_delete = OFF")

    def purge(self) -> bool:
        """Rewrite the file so no free page, free space in a page or write-ahead
        log keeps a value written over or removed before (an erasure, and the
        profile changes before it): VACUUM builds the file anew, and a TRUNCATE
        checkpoint empties the log. False when a reader held the log and the
        checkpoint could not finish: running it again later completes it."""
        connection = self.connection
        if not isinstance(connection, Connection):
            return connection.purge()
        with connection.translate():
            connection._retry(lambda: self.conn.execute("VACUUM"))
            busy = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        return bool(busy == 0)

    def verify(self, now: datetime) -> checks.VerifyReport:
        """Every check (verify.py), and the heads earlier verifies remembered; a
        ledger that passes has its head remembered beside it."""
        from . import verify as checks

        with self.connection.snapshot():
            report = checks.verify(self.conn)
            if self.backend == "sqlite":  # the heads file lies beside a ledger file
                checks.remembered(self.conn, Path(self.path), report)
        if not self.read_only and self.backend == "sqlite":
            checks.remember(Path(self.path), report, now)
        return report

    def backup(self, dest: Path, *, force: bool = False) -> BackupResult:
        """A verified copy of the live ledger at `dest` (backup.py)."""
        from ..errors import BadArgument
        from .backup import backup

        if self.backend != "sqlite":
            raise BadArgument(
                f"backup copies a SQLite ledger file; {self.path} is on PostgreSQL: back it "
                "up with pg_dump (see README, PostgreSQL: backups)",
                field="--db",
                code="unsupported_backend",
            )
        return backup(self.sqlite(), dest, force=force)

    def copy_to(self, path: Path) -> Store:
        """A private copy of the ledger, for a dry run that must see its own writes:
        a file, from a file or from PostgreSQL (one snapshot of every row)."""
        import sqlite3

        if self.backend != "sqlite":
            from .copy import transfer

            private = Store.open(path, timeout=self.connection.timeout)
            try:
                with self.snapshot(), private.transaction():
                    transfer(self.conn, private.conn)
            except BaseException:
                private.close()
                raise
            return private
        source = self.sqlite()
        target = sqlite3.connect(path, isolation_level=None)
        with source.translate():
            source.conn.backup(target)
        target.close()
        return Store.open(path, timeout=self.connection.timeout)
