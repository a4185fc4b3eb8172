"""The seam between the store's SQL and the database that runs it.

The store's modules speak SQLite's SQL to a `Conn`: an sqlite3.Connection, or
postgres.PgConn, which rewrites the few things PostgreSQL spells differently
(placeholders, JSON arrays of ids, index hints, the catalogue) on the way
through. Everything a module needs of a connection is here, so a module typed
against `Conn` runs on either backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol


class Rows(Protocol):
    """What a statement gives back: rows as tuples, once."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """The part of a DB-API connection the store uses (sqlite3's spelling)."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Rows: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Rows: ...


def is_postgres(conn: Conn) -> bool:
    """Whether `conn` is a PostgreSQL connection (checks that only SQLite can
    make, such as PRAGMA quick_check, are skipped or asked another way)."""
    return getattr(conn, "backend", "sqlite") == "postgresql"


SCHEMES = ("postgresql://", "postgres://")


def is_url(text: str) -> bool:
    """Whether a --db names a PostgreSQL ledger (a libpq URL; `postgresql:///?service=NAME`
    names a service in pg_service.conf) rather than a ledger file."""
    return text.startswith(SCHEMES)
