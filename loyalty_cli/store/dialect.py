"""The seam between the store's SQL and the database that runs it.

The store's modules speak SQLite's SQL to a `Conn`: an sqlite3.Connection, or
postgres.PgConn, which rewrites the few things PostgreSQL spells differently
(placeholders, JSON arrays of ids, index hints, the catalogue) on the way
through. Everything a module needs of a connection is here, so a module typed
against `Conn` runs on either backend.

Writing SQL that runs on both (what postgres.translate rewrites, and what it
does not, so it must be written the way both read):

- Rewritten for you: `?` and `?N` placeholders; `json_each(?)` (its `value`
  only: a text); `INDEXED BY name`; `CROSS JOIN t ON ...` (SQLite's join order);
  `lower(hex(col))`; `x IS ?`, `x IS NOT y`; the index catalogue; a statement of
  tagged `SELECT 'tag', ...` parts joined by top-level `UNION ALL` (run part by
  part, in one round trip, from one snapshot).
- Write instead (both read these):
  - a count of rows meeting a condition: `COUNT(*) FILTER (WHERE cond)`, not
    `SUM(cond)` (PostgreSQL has no sum of booleans);
  - every subquery in FROM named: `FROM (SELECT ...) AS name`;
  - HAVING on the expression, or a WHERE around an aliased subquery: not an
    output column's alias;
  - the newest row of each group by a join on `MAX(id)`
    (`JOIN (SELECT MAX(id) AS id FROM t GROUP BY k) AS newest ON newest.id = t.id`),
    not SQLite's bare column beside `MAX()`;
  - `lower(a) = lower(?)`, not `COLLATE NOCASE`;
  - a list of tuples as `VALUES (?, ?), (?, ?)`, not `json_each`'s `key` and
    `json_extract`; a list of numbers as `IN (?, ?, ...)`;
  - dates as day numbers or stored times (integers), turned into text in
    Python: no `date()`, `strftime()` or `julianday()`;
  - no PRAGMA, no `INSERT OR REPLACE`/`OR IGNORE` (check `is_postgres(conn)` in
    the one place that must differ).
- A statement whose result nobody reads (an INSERT or UPDATE without RETURNING)
  is sent with the transaction's next read or its COMMIT (postgres.PgConn): an
  error in it surfaces there, still inside the transaction.
- The test suite runs every shop test on both backends (tests/conftest.py), so
  SQL that only SQLite reads fails there.
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
