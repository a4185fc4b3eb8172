"""Opening the ledger file, its transactions, and SQLite's errors as ones a user
can act on.

- Every write runs inside `BEGIN IMMEDIATE`, so a read-check-write such as a
  redemption holds the write lock from its first read: two redemptions racing
  on one balance are serialised, never both approved.
- `PRAGMA recursive_triggers` is on for every connection, so `INSERT OR
  REPLACE` cannot delete a row behind the append-only triggers' backs.
- The schema evolves through numbered migrations (schema.py), applied when the
  ledger opens; `PRAGMA application_id` marks the file as ours. Every refusal
  happens before anything is written.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ..errors import Busy, InputMissing, LoyaltyError
from . import schema

DEFAULT_TIMEOUT = 5.0
# SQLite waits this long for a lock by itself; the write lock is waited for by
# polling (see _begin_immediate), so that a till behind an import catches the
# gaps between its chunks.
_POLL = 0.002


class _CannotOpen(Exception):
    """SQLite could not open the file read-write where it lies (a read-only folder)."""


class Connection:
    """An open ledger file: a sqlite3 connection, its path, and its transactions."""

    def __init__(self, conn: sqlite3.Connection, path: Path, timeout: float) -> None:
        self.conn = conn
        self.path = path
        self.timeout = timeout
        self.read_only = False  # opened immutable: its folder cannot be written
        self.asked_read_only = False  # opened mode=ro: a command that must not write
        self.depth = 0  # 1 inside a write transaction

    # --- opening ------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        create: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        read_only: bool = False,
    ) -> Connection:
        """`read_only`: SQLite refuses every write on this connection (mode=ro), so
        a command that must leave the file as it found it (simulate, explain) cannot
        write to it, not even by a migration."""
        try:
            return cls._open(path, create and not read_only, timeout, read_only)
        except OSError as exc:  # a name too long, a loop of links, a path through a file
            raise InputMissing(f"database {path} cannot be used: {exc.strerror}") from None

    @classmethod
    def _open(cls, path: Path, create: bool, timeout: float, read_only: bool) -> Connection:
        if path.is_symlink() and not path.exists():
            raise InputMissing(
                f"database {path} is a link to {os.readlink(path)}, which does not exist; "
                "pass the ledger's real path with --db"
            )
        exists = path.exists()
        if path.is_dir():
            raise InputMissing(f"database {path} is a directory; pass a file path with --db")
        if not exists:
            if not create:
                raise InputMissing(
                    f"no ledger at {path} yet (enroll a customer first, or pass --db PATH)"
                )
            if not path.parent.is_dir():
                raise InputMissing(
                    f"cannot create database {path}: directory {path.parent} does not exist"
                )
            if not os.access(path.parent, os.W_OK):
                raise InputMissing(
                    f"cannot create database {path}: no write permission in {path.parent}"
                )
        elif not os.access(path, os.R_OK):
            raise InputMissing(f"cannot read database {path}: permission denied")
        writable = not read_only and (not exists or os.access(path, os.W_OK))
        try:
            if read_only:
                from urllib.parse import quote

                uri = f"file:{quote(str(path.resolve()))}?mode=ro"
                conn = sqlite3.connect(uri, uri=True, timeout=_POLL, isolation_level=None)
            else:
                conn = sqlite3.connect(path, timeout=_POLL, isolation_level=None)
        except sqlite3.Error as exc:
            raise InputMissing(f"cannot open database {path}: {exc}") from None
        opened = cls(conn, path, timeout)
        opened.asked_read_only = read_only
        try:
            try:
                opened._prepare(writable)
            except _CannotOpen:
                # A WAL ledger in a folder we may not write to: SQLite cannot make
                # its shared-memory file there. Nobody can write to it there either,
                # so reading the file as it stands is exact (unless a crash left
                # writes in its -wal file, which only a writable folder can apply).
                conn.close()
                conn = opened._open_immutable()
                opened.conn = conn
                opened.read_only = True
                opened._prepare(writable=False)
        except BaseException:
            opened.conn.close()
            raise
        opened.read_only = opened.read_only or read_only
        return opened

    def _open_immutable(self) -> sqlite3.Connection:
        wal = Path(f"{self.path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise InputMissing(
                f"cannot open database {self.path}: its folder is read-only and {wal} holds "
                "writes not yet in the file; open it once where its folder is writable"
            )
        from urllib.parse import quote

        uri = f"file:{quote(str(self.path.resolve()))}?immutable=1"
        try:
            return sqlite3.connect(uri, uri=True, timeout=_POLL, isolation_level=None)
        except sqlite3.Error as exc:
            raise InputMissing(f"cannot open database {self.path}: {exc}") from None

    def _prepare(self, writable: bool) -> None:
        path = self.path
        found: list[tuple[int, int, int]] = []

        def read() -> None:
            # One statement, so one snapshot: another process may be creating this
            # very file, and must not be caught half-way (tables but no mark yet).
            # A process closing the last connection checkpoints the file, and an
            # opener meanwhile sees "busy" for a moment: hence the retries.
            found[:] = self.conn.execute(
                "SELECT (SELECT application_id FROM pragma_application_id),"
                " (SELECT user_version FROM pragma_user_version),"
                " (SELECT count(*) FROM sqlite_master)"
            ).fetchall()

        try:
            self._retry(read)
            ((app_id, version, tables),) = found
        except sqlite3.Error as exc:
            name = getattr(exc, "sqlite_errorname", "")
            if name.startswith("SQLITE_CANTOPEN") and not self.read_only:
                raise _CannotOpen() from None
            if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
                raise self._busy() from None
            if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
                raise InputMissing(
                    f"{path} is not a loyalty ledger (not an SQLite database, or a damaged one)"
                ) from None
            raise InputMissing(f"cannot read database {path}: {exc}") from None
        empty = app_id == 0 and tables == 0
        if app_id != schema.APPLICATION_ID and not (empty and version == 0):
            raise InputMissing(
                f"{path} is not a loyalty ledger (an SQLite file with other contents); "
                "pass another --db"
            )
        if version > schema.SCHEMA_VERSION:
            raise InputMissing(
                f"{path} has ledger schema {version}, newer than this loyalty knows "
                f"({schema.SCHEMA_VERSION}); upgrade loyalty to use it"
            )
        self.conn.execute("PRAGMA recursive_triggers = ON")
        if version == schema.SCHEMA_VERSION:
            return
        if self.asked_read_only:
            raise InputMissing(
                f"database {path} has ledger schema {version} and this command only reads; "
                "upgrade it first with any other command (loyalty verify --db ...)"
            )
        if not writable or self.read_only:
            raise InputMissing(f"database {path} needs upgrading but is not writable")
        with self.translate():
            with self.transaction():
                # Another process may have created or migrated it while we waited.
                current = self.conn.execute("PRAGMA user_version").fetchone()[0]
                tables = self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if current == 0 and tables == 0:
                    schema.create(self.conn)
                else:
                    from .migrations import MIGRATIONS

                    for migration in MIGRATIONS[current:]:
                        migration(self.conn)
                self.conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
                self.conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION}")
            # Only once the file is ours and current: a refused upgrade changes nothing.
            self._retry(lambda: self._wal())

    def _wal(self) -> None:
        if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.conn.execute("PRAGMA journal_mode = WAL")

    def close(self) -> None:
        self.conn.close()

    # --- errors -------------------------------------------------------------------

    def _busy(self) -> Busy:
        return Busy(
            f"database {self.path} is busy: another loyalty command held it too long; "
            "try again in a moment"
        )

    def classify(self, exc: sqlite3.Error) -> LoyaltyError | None:
        """SQLite's failure as an error a user can act on, told apart by SQLite's
        own error name (the message text is not an interface); None: a bug."""
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return self._busy()
        if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
            return InputMissing(
                f"cannot write to database {self.path}: it is read-only (check its "
                "permissions, and those of its folder); nothing was written"
            )
        if name == "SQLITE_FULL":
            return InputMissing(
                f"cannot write to database {self.path}: the disk is full; free some "
                "space and run the command again (this command wrote nothing)"
            )
        if name.startswith("SQLITE_IOERR"):
            return InputMissing(
                f"cannot write to database {self.path}: {exc} (the disk may be full or "
                "failing); this command wrote nothing"
            )
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return InputMissing(
                f"database {self.path} is damaged ({exc}); restore it from a backup"
            )
        return None

    @contextmanager
    def translate(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            error = self.classify(exc)
            if error is None:
                raise
            raise error from None

    # --- transactions ---------------------------------------------------------------

    def _retry(self, attempt: Callable[[], object]) -> None:
        """Run `attempt` until it gets past a lock, polling up to the timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                attempt()
                return
            except sqlite3.OperationalError as exc:
                name = getattr(exc, "sqlite_errorname", "")
                busy = name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
                if not busy or time.monotonic() >= deadline:
                    raise
                time.sleep(_POLL)

    def _begin_immediate(self) -> None:
        """Take the write lock, polling every 2 ms up to the busy timeout.

        SQLite's own busy handler backs off to 100 ms sleeps, so a till waiting
        behind an import (which commits a chunk, pauses briefly and goes on)
        would keep missing the gaps and give up. Polling often catches them."""
        if self.read_only:
            raise InputMissing(
                f"cannot write to database {self.path}: its folder is read-only (check the "
                "permissions of the folder and the file); nothing was written"
            )
        self._retry(lambda: self.conn.execute("BEGIN IMMEDIATE"))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction that holds the write lock from its first statement.
        SQLite rolls a whole transaction back by itself on some failures (a full
        disk, an I/O error): then there is nothing left to roll back, and the
        original error is the one to report."""
        assert not self.depth, "write transactions do not nest"
        with self.translate():
            self._begin_immediate()
            self.depth = 1
            try:
                yield
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    with suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                raise
            finally:
                self.depth = 0

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction, so every query sees the same ledger even while a
        till writes (WAL: the writer is not held up)."""
        with self.translate():
            self.conn.execute("BEGIN")
            # The first read takes the snapshot; it may meet a checkpoint.
            self._retry(lambda: self.conn.execute("SELECT 1 FROM sqlite_master").fetchall())
            try:
                yield
            finally:
                if self.conn.in_transaction:
                    self.conn.execute("COMMIT")
