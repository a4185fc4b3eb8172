"""Moving points between members as a decision: a family pooling points, say.
Its own operation kind, not a redemption plus an adjustment (which would count
as points redeemed, and give the receiver fresh lots that expire later than the
points they came from): the giver's spendable lots are drawn soonest-expiry
first, as a redemption draws them, and the receiver gets one lot per lot drawn,
with that lot's own dates. Transferred points count toward no tier and are not
points earned.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import account as accounts
from .. import lots
from ..errors import BadArgument, Refused
from ..kinds import EntryKind, OpKind
from ..lots import LotTerms
from ..values import format_utc
from .awards import earlier, refuse_unknown
from .book import Book, Outcome
from .lifecycle import add_lots, due_pair, take_from_lots, today_of
from .records import NewEntry, NewOperation, content_digest
from .requests import TransferRequest
from .spending import short


@dataclass(frozen=True)
class TransferResult:
    from_customer: str
    to_customer: str
    points: int
    from_balance: int
    to_balance: int
    occurred_at: str
    txn: str | None
    reason: str
    lots: tuple[tuple[str | None, int], ...] = ()  # (expiry day, points) of each lot moved
    duplicate: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "from_customer": self.from_customer,
            "to_customer": self.to_customer,
            "points": self.points,
            "from_balance": self.from_balance,
            "to_balance": self.to_balance,
            "reason": self.reason,
            "occurred_at": self.occurred_at,
            "txn": self.txn,
            "lots": [{"expires_on": day, "points": n} for day, n in self.lots],
            "duplicate": self.duplicate,
        }


def transfer(book: Book, request: TransferRequest) -> TransferResult:
    """Move `points` spendable points from one member to another, or refuse with
    the giver's figures if they do not hold them."""
    if request.points <= 0:
        raise BadArgument("transfer POINTS must be a positive number of points", field="POINTS")
    if not request.reason.strip():
        raise BadArgument("--reason must say why the points move (it is kept in the ledger)")
    if request.from_customer == request.to_customer:
        raise Refused(
            f"customer {request.from_customer!r} cannot transfer points to themselves",
            code="same_customer",
            field="TO",
        )
    ruleset, now = book.ruleset, book.now
    found = earlier(book, request.txn, request.content(), request.at)
    giver, receiver = book.account(request.from_customer), book.account(request.to_customer)
    if found is not None:
        today = today_of(ruleset, now)
        return TransferResult(
            request.from_customer,
            request.to_customer,
            request.points,
            0 if giver is None else accounts.balance(giver, today),
            0 if receiver is None else accounts.balance(receiver, today),
            format_utc(found.occurred_at),
            request.txn,
            request.reason,
            duplicate=True,
        )
    if giver is None:
        raise refuse_unknown(request.from_customer)
    if receiver is None:
        raise refuse_unknown(request.to_customer)
    at = request.at or now
    ids = book.ids()
    today, ops, giver, receiver = due_pair("transfer", (giver, receiver), ruleset, at, now, ids)
    held = accounts.holdings(giver, today)
    if held.available < request.points:
        raise short(giver.id, held, request.points, "transfer")
    draws = lots.draw(lots.spendable(giver.lots, today), request.points)
    by_id = {lot.id: lot for lot in giver.lots}
    debit = NewEntry(
        id=ids.entry(),
        customer_id=giver.id,
        kind=EntryKind.TRANSFER,
        points=-request.points,
        reason=request.reason,
        draws=tuple(draws),
    )
    credits = tuple(
        NewEntry(
            id=ids.entry(),
            customer_id=receiver.id,
            kind=EntryKind.TRANSFER,
            points=taken,
            reason=request.reason,
            lot=LotTerms(
                by_id[lot_id].earned_on, by_id[lot_id].available_on, by_id[lot_id].expires_on
            ),
        )
        for lot_id, taken in draws
    )
    op = NewOperation(
        id=ids.op(),
        kind=OpKind.TRANSFER,
        customer_id=giver.id,
        occurred_at=at,
        ruleset=ruleset.version,
        entries=(debit, *credits),
        txn=request.txn,
        content=None if request.txn is None else content_digest(request.content()),
        reason=request.reason,
    )
    giver = giver.with_(
        lots=take_from_lots(giver.lots, debit.draws), net=giver.net - request.points
    )
    receiver = receiver.with_(lots=add_lots(receiver, credits), net=receiver.net + request.points)
    book.apply(
        Outcome((*ops, op), (giver, receiver), keyed=(op,) if request.txn is not None else ())
    )
    moved = tuple(
        (None if e.lot is None or e.lot.expires_on is None else e.lot.expires_on.isoformat(),
         e.points)
        for e in credits
    )  # fmt: skip
    return TransferResult(
        giver.id,
        receiver.id,
        request.points,
        accounts.balance(giver, today),
        accounts.balance(receiver, today),
        format_utc(at),
        request.txn,
        request.reason,
        moved,
    )
