"""What a long writer (an import, the nightly step) keeps between its write
transactions: the accounts it decided, and the games' tallies of those it let go.
snapshots.load takes what is still exact from here and reads only the rest."""

from __future__ import annotations

import json
import marshal
import sqlite3
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..account import Account
from ..games.model import Tally

if TYPE_CHECKING:
    from .snapshots import Tip


class Kept:
    """Accounts a long writer keeps between its transactions. They are exact as
    long as the ledger's newest operation is still the one this writer appended
    last: then nobody else wrote, and what the writer's own decisions left in
    its Book is what a fresh read would give. When another process has written
    in between, they are all dropped.

    Bounded by what they hold, not by how many they are: `budget` lots, tier
    inputs and uses in all (each a few hundred bytes), the least recently used
    account going first; and the games' tallies of the accounts let go by
    TALLIES customers. So memory stays flat however many customers a file has."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.held = 0
        self.tip: tuple[int, bytes, str] | None = None  # (op id, hash, rules version)
        self.accounts: OrderedDict[str, Account] = OrderedDict()
        # The games' tallies of accounts that went: an account read again gets
        # them back instead of building its history and counting it once per
        # game, which an import whose accounts outgrow the budget would do on
        # most rows.
        self.tallies = Tallies()

    def valid(self, tip: Tip, version: str) -> bool:
        if self.tip != (tip.op, tip.hash, version):
            self.accounts.clear()
            self.tallies.clear()
            self.held = 0
            return False
        return True

    def keep(self, tip: Tip, version: str, accounts: dict[str, Account]) -> None:
        self.tip = (tip.op, tip.hash, version)
        for cid, account in accounts.items():
            before = self.accounts.pop(cid, None)
            if before is not None:
                self.held -= _size(before)
            self.accounts[cid] = account
            self.held += _size(account)
        gone: dict[str, dict[str, Tally]] = {}
        while self.held > self.budget and self.accounts:
            cid, account = self.accounts.popitem(last=False)
            self.held -= _size(account)
            if account.play is not None and account.play.memo:
                gone[cid] = account.play.memo
        self.tallies.put(gone)

    def restore(self, accounts: dict[str, Account]) -> None:
        """Give accounts just read the tallies they had when they went: exact,
        since nobody else wrote in between (valid) and their facts are those
        this writer's decisions left."""
        played = [cid for cid, account in accounts.items() if account.play is not None]
        for cid, memo in self.tallies.take(played).items():
            play = accounts[cid].play
            assert play is not None
            play.memo.update(memo)


def _size(account: Account) -> int:
    # A game's facts are not counted: one small record per purchase of the
    # accounts kept (a few MB at the budget), where counting them halved the
    # accounts kept and an import read each account again 1.8x as often.
    return 1 + len(account.lots) + len(account.qualifying) + len(account.uses)


# Customers whose games' tallies are kept after their account went: about 100
# bytes each with three games, so at most 10 MB.
TALLIES = 100_000


class Tallies:
    """The games' tallies of the accounts a Kept let go, packed, by customer, in
    a private in-memory SQLite database: a chunk's worth put or taken in one
    statement, and no Python object per customer. As a dict of bytes they took
    about 2.5x their size (24 MB at 45,000 customers: small long-lived objects
    among an import's short-lived ones keep the allocator's pages from being
    given back), which alone broke bench_import's memory target at 1M rows.
    Past TALLIES customers, the older half goes; those count their history again."""

    def __init__(self) -> None:
        self.db: sqlite3.Connection | None = None  # made when the first tallies come
        self.games: dict[str, int] = {}  # game id -> its number in a packed tally
        self.names: list[str] = []
        # How many customers are kept, at most (a put that replaces one counts
        # it twice): counted exactly only when it passes TALLIES.
        self.count = 0
        self.seq = 0  # the next put's place in the order they came in

    def clear(self) -> None:
        if self.db is not None:
            self.db.execute("DELETE FROM kept")
        self.count = 0

    def put(self, memos: dict[str, dict[str, Tally]]) -> None:
        if not memos:
            return
        if self.db is None:
            self.db = sqlite3.connect(":memory:", isolation_level=None)
            # One b-tree keyed by customer (WITHOUT ROWID): a rowid table and an
            # index on customer took 8.6 MB for 50,000 customers, this 5.1 MB.
            # `seq` is the order they came in (a customer put again comes last).
            self.db.execute(
                "CREATE TABLE kept (customer TEXT PRIMARY KEY, seq INTEGER NOT NULL, packed BLOB)"
                " WITHOUT ROWID"
            )
        db = self.db
        first = self.seq
        self.seq += len(memos)
        db.executemany(
            "INSERT OR REPLACE INTO kept (customer, seq, packed) VALUES (?, ?, ?)",
            [(cid, first + n, self._packed(memo)) for n, (cid, memo) in enumerate(memos.items())],
        )
        self.count += len(memos)
        if self.count <= TALLIES:
            return
        # Bound by how many are kept, not by their order: every take and put
        # moves a customer to the end, and a bound on the span of the order
        # dropped, in a long import, the tallies of everyone not seen lately, who
        # then counted their whole history again (most reads, at a million rows).
        (self.count,) = db.execute("SELECT count(*) FROM kept").fetchone()
        if self.count > TALLIES:
            gone = self.count - max(1, TALLIES // 2)
            db.execute(
                "DELETE FROM kept WHERE customer IN "
                "(SELECT customer FROM kept ORDER BY seq LIMIT ?)",
                (gone,),
            )
            self.count -= gone

    def take(self, customers: list[str]) -> dict[str, dict[str, Tally]]:
        """The tallies kept of `customers`, which are kept no more (the accounts
        hold them now)."""
        if self.db is None or not customers:
            return {}
        rows = self.db.execute(
            "DELETE FROM kept WHERE customer IN (SELECT value FROM json_each(?)) "
            "RETURNING customer, packed",
            (json.dumps(customers),),
        ).fetchall()
        self.count -= len(rows)
        return {cid: self._unpacked(packed) for cid, packed in rows}

    def _packed(self, memo: dict[str, Tally]) -> bytes:
        # Each tally as its game's number and its fields up to the last that is
        # not a default (Tally() fills them in again), marshalled: a tenth of the
        # dict of named tuples. Only this process reads it, so marshal serves.
        numbers = self.games
        packed = []
        for game, tally in memo.items():
            number = numbers.get(game)
            if number is None:
                number = numbers[game] = len(self.names)
                self.names.append(game)
            packed.append((number, *_trimmed(tally)))
        return marshal.dumps(tuple(packed))

    def _unpacked(self, packed: bytes) -> dict[str, Tally]:
        names = self.names
        return {names[number]: Tally(*fields) for number, *fields in marshal.loads(packed)}


def _trimmed(tally: Tally) -> tuple[Any, ...]:
    fields = list(tally)
    while fields and not fields[-1]:  # 0 or ()
        fields.pop()
    return tuple(fields)
