"""Returns that come before their sale. A till exports by time, a web shop by
invoice number, a spreadsheet by nothing: a cancellation (a `--cancel-prefix`
receipt, negative quantities, a `refund_of` row) may come before the sale it
returns, in an earlier chunk or an earlier file of the same import. It is
decided in its place when its sale is already in (so a file in time order
gives the ledger that typing its rows gives); one that finds no sale yet waits
until every other row of the import is in, and is decided then.

The waiting returns are kept in a temporary file, not in memory: an import's
memory does not grow with its files."""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from typing import IO, Generic, TypeVar

from .errors import Refused

G = TypeVar("G")


class NoSaleYet(Refused):
    """A return whose sale is not in the ledger (yet): in an import it waits for
    the rest of the import's rows; then, or anywhere else, it is refused."""


class Waiting(Generic[G]):
    """Returns put aside until the rest of the import is in. Iterating gives
    them back in the order they were put aside; `draining` says that has begun
    (a return that finds no sale then is refused, not put aside again)."""

    def __init__(self) -> None:
        self._spool: IO[bytes] | None = None
        self._count = 0
        self.draining = False

    def put(self, group: G) -> None:
        assert not self.draining, "a return that waited is decided, not put aside again"
        if self._spool is None:
            # Closed once drained (below), or with the process.
            self._spool = tempfile.TemporaryFile(prefix="loyalty-returns-")  # noqa: SIM115
        pickle.dump(group, self._spool, protocol=pickle.HIGHEST_PROTOCOL)
        self._count += 1

    def __iter__(self) -> Iterator[G]:
        self.draining = True
        spool, count = self._spool, self._count
        if spool is None:
            return
        with spool:
            spool.seek(0)
            for _ in range(count):
                # Written by this process a moment ago, to a file only it holds.
                yield pickle.load(spool)
