"""The working set of one write transaction, in memory.

A use case fills a Book from one read of the store (the accounts it needs, the
operations recorded under the txns it was given, the budgets' totals, the next
ids), runs decisions on it, and appends what they decided in one write. An
import keeps one Book for a whole chunk, so each row sees the rows before it;
a replay or a rule test builds one from nothing. Nothing here touches a store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..account import Account, Budgets
from ..errors import Refused
from ..models import Ruleset
from .records import NewOperation, Recorded, RecordedItem, RecordedLine

_ABSENT = object()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a decision decided: the operations to append, the accounts as they
    stand after them, and the new operations a later retry or refund may look up."""

    operations: tuple[NewOperation, ...] = ()
    accounts: tuple[Account, ...] = ()
    recorded: tuple[Recorded, ...] = ()
    # The new operations with a txn that a later retry or refund may look up.
    keyed: tuple[NewOperation, ...] = ()


@dataclass
class Book:
    ruleset: Ruleset
    now: datetime  # when the decisions are recorded: nothing may be expired beyond it
    accounts: dict[str, Account] = field(default_factory=dict)
    # By txn. An operation decided in this transaction stays a NewOperation until
    # something looks it up (find): an import rarely does, and seldom needs the copy.
    recorded: dict[str, Recorded | NewOperation] = field(default_factory=dict)
    budgets: Budgets = field(default_factory=Budgets)
    next_op: int = 1
    next_entry: int = 1
    # Rules texts of other versions, for explaining what recorded operations gave.
    versions: dict[str, Ruleset] = field(default_factory=dict)
    new: list[NewOperation] = field(default_factory=list)
    # What `apply` replaced, so that `row()` can undo a decision that failed half-way.
    _undo: list[tuple[dict[str, Any], str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Budgets count from what the store read; a Book built from nothing starts at 0.
        for rule in self.ruleset.rules:
            if rule.budget is not None:
                self.budgets.totals.setdefault(rule.id, 0)

    def account(self, customer_id: str) -> Account | None:
        """The customer's account; a merged duplicate's is refused, naming the
        account that holds its points now (the one place every write asks)."""
        found = self.accounts.get(customer_id)
        if found is not None and found.profile.merged_into is not None:
            raise merged_away(customer_id, found.profile.merged_into)
        return found

    def find(self, txn: str) -> Recorded | None:
        """The operation recorded under `txn`, read or decided in this transaction."""
        found = self.recorded.get(txn)
        if isinstance(found, NewOperation):
            found = self.recorded[txn] = recorded_of(found)
        return found

    def rules_of(self, version: str | None) -> Ruleset | None:
        if version == self.ruleset.version:
            return self.ruleset
        return None if version is None else self.versions.get(version)

    def ids(self) -> Ids:
        return Ids(self.next_op, self.next_entry)

    def apply(self, outcome: Outcome) -> None:
        """Record a decision: later decisions in this transaction see its effects."""
        for op in outcome.operations:
            self.new.append(op)
            self.next_op = max(self.next_op, op.id + 1)
            for entry in op.entries:
                self.next_entry = max(self.next_entry, entry.id + 1)
            self.budgets.add((e.rule, e.points) for e in op.entries if e.rule is not None)
        for account in outcome.accounts:
            self._undo.append((self.accounts, account.id, self.accounts.get(account.id, _ABSENT)))
            self.accounts[account.id] = account
        known: list[Recorded | NewOperation] = [*outcome.recorded, *outcome.keyed]
        for recorded in known:
            assert recorded.txn is not None
            self._undo.append(
                (self.recorded, recorded.txn, self.recorded.get(recorded.txn, _ABSENT))
            )
            self.recorded[recorded.txn] = recorded

    @contextmanager
    def row(self) -> Iterator[None]:
        """Decisions that stand or fall together (an import row that enrolls its
        customer, then earns): if the block raises, the Book is as before it."""
        new, op, entry = len(self.new), self.next_op, self.next_entry
        totals, undo = dict(self.budgets.totals), len(self._undo)
        try:
            yield
        except BaseException:
            del self.new[new:]
            self.next_op, self.next_entry = op, entry
            self.budgets.totals = totals
            while len(self._undo) > undo:
                table, key, old = self._undo.pop()
                if old is _ABSENT:
                    del table[key]
                else:
                    table[key] = old
            raise

    def settle(self) -> None:
        """Let go of what `row()` would need to undo the decisions so far: a replay
        keeps one Book for a whole history, and must not keep its undo log too."""
        self._undo.clear()

    def take(self) -> list[NewOperation]:
        """The operations decided so far, to be appended; the Book forgets them."""
        taken, self.new = self.new, []
        return taken


def merged_away(customer_id: str, keeper: str) -> Refused:
    return Refused(
        f"customer {customer_id!r} was merged into {keeper!r}: use {keeper!r}",
        code="merged",
        customer_id=customer_id,
        merged_into=keeper,
    )


def recorded_of(op: NewOperation, **extra: Any) -> Recorded:
    """A new operation as a retry in the same transaction would find it."""
    assert op.txn is not None
    return Recorded(
        id=op.id,
        txn=op.txn,
        kind=op.kind,
        customer_id=op.customer_id,
        occurred_at=op.occurred_at.replace(microsecond=0),
        content=op.content,
        ruleset=op.ruleset,
        lines=tuple(
            RecordedLine(e.id, e.customer_id, e.kind, e.points, e.rule, e.reward, e.detail)
            for e in op.entries
        ),
        event=op.event,
        amount_cents=op.amount_cents,
        category=op.category,
        sku=op.sku,
        quantity=op.quantity,
        reward=op.reward,
        reason=op.reason,
        clawback=op.clawback,
        items=tuple(
            RecordedItem(
                i.number,
                i.quantity,
                i.amount_cents,
                i.points,
                i.sku,
                i.category,
                0,
                0,
                0,
                i.earned_by,
            )
            for i in op.items
        )
        if op.kind == "purchase"
        else (),
        store=op.store,
        **extra,
    )


class Ids:
    """Ids for the rows a decision writes, counted on from the Book's: an entry's
    id is its lot's id, and a later decision in the same chunk may draw on it."""

    def __init__(self, op: int, entry: int) -> None:
        self._op = op
        self._entry = entry

    @property
    def next_op(self) -> int:
        """The id the next op() gives."""
        return self._op

    def op(self) -> int:
        self._op += 1
        return self._op - 1

    def entry(self) -> int:
        self._entry += 1
        return self._entry - 1

    def entries(self, count: int) -> Iterable[int]:
        return [self.entry() for _ in range(count)]
