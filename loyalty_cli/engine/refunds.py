"""A refund as a decision: take back a purchase's points in proportion to the
amount refunded, computed from the purchase's original award."""

from __future__ import annotations

from dataclasses import replace

from .. import account as accounts
from .. import lots
from ..clock import shop_day, zone
from ..errors import Refused
from ..games.model import is_game_line
from ..kinds import EntryKind, OpKind
from ..values import format_utc, from_cents, to_cents
from .awards import earlier, refuse_unknown
from .bonuses import own_points
from .book import Book, Outcome, recorded_of
from .lifecycle import expire_due, take_from_lots, today_of
from .records import NewEntry, NewItem, NewOperation, Recorded, RecordedItem, content_digest
from .requests import RefundRequest
from .results import RefundResult, ReturnedItem
from .tiering import tier_change


def refund(book: Book, request: RefundRequest) -> RefundResult:
    """Take back the points of a purchase, in proportion to the amount refunded.

    The clawback is computed from the purchase's original award entries, never
    from today's rules: over all refunds of a purchase it is
    floor(points earned x amount refunded / purchase amount), so it never takes
    back more than was earned, and a full refund takes back exactly that. It draws
    first on the purchase's own lots (cancelling points still pending), then on
    the customer's other spendable points. If those fall short, `refund_shortfall`
    decides: `within_balance` takes what is there and records the shortfall;
    `allow_negative` takes it all, leaving a debt."""
    ruleset, now = book.ruleset, book.now
    at = request.at or now
    today = today_of(ruleset, at)
    content = request.content()
    found = earlier(book, request.txn, content, request.at)
    purchase = book.find(request.refund_of)
    if purchase is None:
        raise Refused(f"unknown transaction {request.refund_of!r}: no purchase has that txn")
    if purchase.kind != OpKind.PURCHASE:
        if purchase.kind == OpKind.REFUND:
            raise Refused(f"{request.refund_of!r} is itself a refund; refund the purchase")
        raise Refused(f"{request.refund_of!r} is a {purchase.kind}, not a purchase")
    total_cents = purchase.amount_cents
    assert total_cents is not None
    customer_id = purchase.customer_id
    gone = book.accounts.get(customer_id)
    if gone is not None and gone.profile.merged_into is not None:
        # A merged duplicate's purchase (a replay: a read of the ledger already
        # names the keeper): its points, and so the clawback, are the keeper's.
        customer_id = gone.profile.merged_into
    account = book.account(customer_id)
    if found is not None:
        assert found.amount_cents is not None and found.clawback is not None
        return RefundResult(
            customer_id,
            purchase.txn,
            from_cents(found.amount_cents),
            from_cents(total_cents),
            from_cents(purchase.refunded_cents),
            found.clawback,
            found.points,
            found.clawback + found.points,
            0 if account is None else accounts.balance(account, today_of(ruleset, now)),
            format_utc(found.occurred_at),
            found.txn,
            duplicate=True,
        )
    if account is None:
        raise refuse_unknown(customer_id)
    refunded_cents, due_before = purchase.refunded_cents, purchase.due_back
    left = total_cents - refunded_cents
    lots_of = {
        line.id: line.points
        for line in purchase.lines
        if line.points > 0 and line.customer_id == customer_id
    }
    # A game's points are for a round of many purchases, not for this one: a refund
    # never takes them back; the purchase stops counting for the game instead.
    earned = sum(
        line.points for line in purchase.lines if line.id in lots_of and not is_game_line(line.rule)
    )
    own = own_points(purchase, book.rules_of(purchase.ruleset), earned)
    sold = sold_lines(purchase, earned - own.total)
    by_line = sum(item.returned_cents for item in sold)
    owed = earned - due_before  # what is left to take back
    if left <= 0 and owed <= 0:
        raise Refused(f"purchase {request.refund_of!r} is already fully refunded")
    # Money all back but points still owed: the lines kept cost nothing (free
    # items still qualifying the receipt's bonuses). Their return, or the rest,
    # takes back what is left, for 0.00.
    returned: tuple[NewItem, ...] = ()
    if request.returns:
        wanted = returns(sold, request.returns, request.refund_of)
        after = _after(sold, wanted)
        if all(item.returned_quantity >= item.quantity for item in after):
            # The last unit back takes back what is left: the receipt's own points too.
            returned, cents, clawback = _within(wanted, owed, left), left, owed
        else:
            # Never more than is left, after refunds by amount took their part.
            returned = _within(wanted, owed, left)
            cents = sum(item.amount_cents for item in returned)
            dropped = max(0, own.kept(sold) - own.kept(_after(sold, returned)))
            clawback = min(owed, sum(-item.points for item in returned) + dropped)
    else:
        cents = left if request.amount is None else to_cents(request.amount)
        if cents > left:
            raise Refused(
                f"refund of {from_cents(cents)} is more than the {from_cents(left)} left to "
                f"refund on {request.refund_of!r} (a purchase of {from_cents(total_cents)})"
            )
        if cents == left:
            clawback = owed
        elif by_line:
            # After a return by line: the points left, in proportion to the amount left.
            clawback = owed * cents // left
        else:
            clawback = max(0, earned * (refunded_cents + cents) // total_cents - due_before)
    due_after = due_before + clawback
    ids = book.ids()
    ops, account, _ = expire_due(account, ruleset, today, now, ids)
    own_lots = [
        lot
        for lot in lots.spending_order(account.lots)
        if lot.id in lots_of and lots.is_live(lot, today)
    ]
    others = [lot for lot in lots.spendable(account.lots, today) if lot.id not in lots_of]
    # What the customer holds beyond any earlier debt is all a refund may take.
    room = max(0, accounts.balance(account, today))
    draws = tuple(lots.draw(own_lots + others, min(clawback, room)))
    taken = sum(points for _, points in draws)
    if ruleset.points.refund_shortfall == "allow_negative":
        taken = clawback
    shortfall = clawback - taken
    what = "" if not returned else " (" + ", ".join(_named(i) for i in returned) + ")"
    reason = f"refund of {from_cents(cents)}{what} on {request.refund_of}" + (
        f"; {shortfall} points could not be taken back" if shortfall else ""
    )
    # Always a line, 0 points included: a refund whose clawback fell wholly short
    # (or that was due nothing) still shows in the customer's history, with why.
    entries = (
        NewEntry(
            id=ids.entry(),
            customer_id=customer_id,
            kind=EntryKind.REFUND,
            points=-taken,
            reason=reason,
            draws=draws,
        ),
    )
    op = NewOperation(
        id=ids.op(),
        kind=OpKind.REFUND,
        customer_id=customer_id,
        occurred_at=at,
        ruleset=ruleset.version,
        entries=entries,
        txn=request.txn,
        content=None if request.txn is None else content_digest(content),
        amount_cents=cents,
        reason=request.reason or reason,
        refund_of=purchase.id,
        clawback=clawback,
        items=returned,
    )
    ops.append(op)
    play = account.play
    if play is not None:
        returned_lines = tuple((item.number, item.quantity, item.amount_cents) for item in returned)
        taken_back = 0 if ruleset.games is None else ruleset.games.counted(taken)
        play = replace(
            play.refunded(purchase.id, cents, returned_lines), earned=play.earned - taken_back
        )
    account = account.with_(
        lots=take_from_lots(account.lots, draws),
        net=account.net - taken,
        spend_cents=account.spend_cents - cents,
        play=play,
    )
    # A refund counts against its purchase's part in a tier, as of the purchase's
    # own day: a returned purchase never qualified.
    policy = ruleset.tiers
    if policy is not None:
        start = accounts.counts_from(
            shop_day(purchase.occurred_at, zone(ruleset.program.timezone)),
            ruleset.points.pending_days,
        )
        back = -cents if policy.metric == "spend" else -taken  # cents, or points
        if back:
            account = account.with_(qualifying=accounts.qualify(account, start, back))
    change, account, _ = tier_change(account, ruleset, at, reason, ids)
    if change is not None:
        ops.append(change)
    recorded = [
        replace(
            purchase,
            refunded_cents=refunded_cents + cents,
            due_back=due_after,
            items=_after(sold, returned) if returned else purchase.items,
        )
    ]
    if request.txn is not None:
        recorded.append(recorded_of(op, refund_of_txn=purchase.txn))
    book.apply(Outcome(tuple(ops), (account,), tuple(recorded)))
    return RefundResult(
        customer_id,
        request.refund_of,
        from_cents(cents),
        from_cents(total_cents),
        from_cents(refunded_cents + cents),
        clawback,
        -taken,
        shortfall,
        accounts.balance(account, today),
        format_utc(at),
        request.txn,
        items=tuple(
            ReturnedItem(
                i.number, i.sku, i.category, i.quantity, from_cents(i.amount_cents), i.points
            )
            for i in returned
        ),
    )


def sold_lines(purchase: Recorded, earned: int) -> list[RecordedItem]:
    """A purchase's lines with what was returned of each. A one-line purchase is
    its own line 1, which earned `earned` (its points but its own: see bonuses)."""
    real = [item for item in purchase.items if item.quantity > 0]
    if real:
        return real
    assert purchase.amount_cents is not None
    line = RecordedItem(
        1, purchase.quantity or 1, purchase.amount_cents, earned, purchase.sku, purchase.category
    )
    if purchase.items:  # returns already recorded against line 1
        back = purchase.items[0]
        line = replace(
            line,
            returned_quantity=back.returned_quantity,
            returned_cents=back.returned_cents,
            returned_points=back.returned_points,
        )
    return [line]


def returns(
    sold: list[RecordedItem], wanted: tuple[tuple[str, int | None], ...], txn: str
) -> tuple[NewItem, ...]:
    """The units each return takes from the sold lines it names (a SKU, else a
    category, or #N for line N), in line order; and exactly what those units
    earned: over all returns of a line, floor(its points x units returned /
    units sold), so its last unit back takes back the rest of its points."""
    left = {item.number: item.quantity - item.returned_quantity for item in sold}
    taking: dict[int, int] = {}
    for key, units in wanted:
        folded = key.casefold()
        if folded.startswith("#") and folded[1:].isdigit():
            named = [item for item in sold if item.number == int(folded[1:])]
        else:
            named = [item for item in sold if (item.sku or "").casefold() == folded]
            if not named:
                named = [item for item in sold if (item.category or "").casefold() == folded]
        if not named:
            known = sorted({x for item in sold for x in (item.sku, item.category) if x})
            raise Refused(
                f"{txn!r} has no line with SKU or category {key!r} "
                f"(its lines: {', '.join(known) or 'none named'}; or name one as #N)"
            )
        available = sum(left[item.number] for item in named)
        if not available:
            raise Refused(f"every unit of {key!r} on {txn!r} was returned already")
        need = available if units is None else units
        if need > available:
            raise Refused(
                f"{need} unit{'s' if need != 1 else ''} of {key!r} to return, but "
                f"{available} {'is' if available == 1 else 'are'} left to return on {txn!r}"
            )
        for item in named:
            take = min(need, left[item.number])
            if take:
                left[item.number] -= take
                taking[item.number] = taking.get(item.number, 0) + take
                need -= take
    out = []
    for item in sold:
        units = taking.get(item.number)
        if not units:
            continue
        done = item.returned_quantity + units
        points = item.points * done // item.quantity - item.returned_points
        cents = item.amount_cents * done // item.quantity - item.returned_cents
        out.append(NewItem(item.number, units, cents, -points, item.sku, item.category))
    return tuple(out)


def _within(wanted: tuple[NewItem, ...], points: int, cents: int) -> tuple[NewItem, ...]:
    """The lines returned, each taking back no more than is left of the purchase's
    points and amount, in line order (refunds by amount may have taken part)."""
    out = []
    for item in wanted:
        took, paid = min(-item.points, points), min(item.amount_cents, cents)
        points, cents = points - took, cents - paid
        out.append(replace(item, points=-took, amount_cents=paid))
    return tuple(out)


def _after(sold: list[RecordedItem], returned: tuple[NewItem, ...]) -> tuple[RecordedItem, ...]:
    back = {item.number: item for item in returned}
    return tuple(
        replace(
            item,
            returned_quantity=item.returned_quantity + back[item.number].quantity,
            returned_cents=item.returned_cents + back[item.number].amount_cents,
            returned_points=item.returned_points - back[item.number].points,
        )
        if item.number in back
        else item
        for item in sold
    )


def _named(item: NewItem) -> str:
    return f"{item.quantity} x {item.sku or item.category or f'line {item.number}'}"
