"""Folding a duplicate account into another, as a decision (Odoo's and Square's
"merge customers"): the same person enrolled twice, at two tills or with two
cards.

What moves and how:
- points: every lot the duplicate still holds (pending ones included) is drawn
  in full by one debit entry on the duplicate, and the keeper gets one lot per
  lot drawn with that lot's own earned, spendable and expiry days, in the order
  of the lots' ids (a refund of the duplicate's purchase finds its moved lot by
  that order: store/snapshots._moved). Nothing is reset, nothing counts as
  earned or redeemed again;
- history: the duplicate's purchases, refunds, events, capped rules' usage and
  game facts stay its own rows, and every read that groups by customer counts
  them for the keeper (the `merges` table maps the id), so its tier inputs,
  segments and lifetime value are one customer's. The keeper's tier is worked
  out again on both histories; the duplicate's tier changes and manual floor do
  not carry over (the keeper's own do);
- the id: it stays in the ledger (its profile and history), but nothing more
  can be written to it (Book.account refuses it, naming the keeper).

Refused: a customer merged with themselves, an unknown id, either side already
merged away, a duplicate that others were merged into (merge into it instead),
an erased keeper (its person asked to be forgotten: nothing may be added to
them), and a duplicate that owes points (a refund under `allow_negative` took
more than it held): a merge moves points, not a debt, which would overdraw the
keeper without its holder's say.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import account as accounts
from ..account import Account
from ..errors import BadArgument, Refused
from ..games.model import Facts, Play
from ..kinds import EntryKind, OpKind
from ..lots import LotTerms
from ..values import format_utc
from .awards import earlier, refuse_unknown
from .book import Book, Outcome, merged_away
from .lifecycle import add_lots, due_pair, today_of
from .records import NewEntry, NewOperation, content_digest
from .requests import MergeRequest
from .tiering import standing, tier_change


@dataclass(frozen=True)
class MergeResult:
    keep: str
    duplicate: str
    reason: str
    occurred_at: str
    txn: str | None
    points: int  # moved to the keeper
    balance: int  # the keeper's, after
    tier: str | None  # the keeper's tier after (None: the rules have no tiers)
    lots: tuple[tuple[str | None, str, int], ...] = ()  # (expires_on, available_on, points)
    duplicate_retry: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "keep_customer": self.keep,
            "duplicate_customer": self.duplicate,
            "reason": self.reason,
            "occurred_at": self.occurred_at,
            "txn": self.txn,
            "points": self.points,
            "balance": self.balance,
            "tier": self.tier,
            "lots": [
                {"expires_on": day, "available_on": ready, "points": n}
                for day, ready, n in self.lots
            ],
            "duplicate": self.duplicate_retry,
        }


def combined(keep: Account, duplicate: Account) -> Account:
    """The keeper's account with the duplicate's history counted for it, as a
    fresh read of the keeper gives it after the merge (snapshots.build folds the
    duplicate's rows in). Points are not here: the merge's entries move them."""
    play = keep.play
    if play is not None and duplicate.play is not None:
        # Only a replay folds a play's facts (games.play.fold), never those of
        # an account that a merge to come joins (simulate.Compaction).
        assert not play.base and not duplicate.play.base
        play = Play(
            Facts(sorted((*play.facts, *duplicate.play.facts), key=lambda f: f.op)),
            tuple(sorted((*play.paid, *duplicate.play.paid), key=lambda p: (p.game, p.round))),
            play.earned + duplicate.play.earned,
        )
    return keep.with_(
        purchases=keep.purchases + duplicate.purchases,
        spend_cents=keep.spend_cents + duplicate.spend_cents,
        qualifying=tuple(sorted((*keep.qualifying, *duplicate.qualifying))),
        uses=(*keep.uses, *duplicate.uses),
        play=play,
    )


def merge(
    book: Book,
    request: MergeRequest,
    *,
    absorbed: int,
    keeper_erased: bool,
) -> MergeResult:
    """Fold `request.duplicate` into `request.keep`. `absorbed`: how many accounts
    were merged into the duplicate before; `keeper_erased`: whether the keeper's
    personal data was erased (both read with the accounts, under the write lock)."""
    if not request.reason.strip():
        raise BadArgument("--reason must say why the accounts are merged (it is kept)")
    keep_id, dup_id = request.keep, request.duplicate
    if keep_id == dup_id:
        raise Refused(
            f"customer {keep_id!r} cannot be merged into themselves: name the duplicate",
            code="same_customer",
            field="DUPLICATE",
        )
    ruleset, now = book.ruleset, book.now
    found = earlier(book, request.txn, request.content(), request.at)
    keep, dup = book.accounts.get(keep_id), book.accounts.get(dup_id)
    if found is not None:  # a retry: the merge is done, the duplicate is gone
        today = today_of(ruleset, now)
        held = 0 if keep is None else accounts.balance(keep, today)
        # The keeper's tier as it stands (the first run gave it after the merge;
        # no tier entry yet means the first level, which the record alone omits).
        tier = None
        if keep is not None:
            status = standing(keep, ruleset, today)
            tier = keep.tier if status is None else status.level.id
        return MergeResult(
            keep_id, dup_id, request.reason, format_utc(found.occurred_at), request.txn,
            sum(line.points for line in found.lines if line.points > 0), held,
            tier, duplicate_retry=True,
        )  # fmt: skip
    if keep is None:
        raise refuse_unknown(keep_id, "customer")
    if dup is None:
        raise refuse_unknown(dup_id, "customer")
    for side, who in (("DUPLICATE", dup), ("KEEP", keep)):
        if who.profile.merged_into is not None:
            error = merged_away(who.id, who.profile.merged_into)
            raise Refused(
                f"customer {who.id!r} was merged into {who.profile.merged_into!r} already; "
                f"merge into {who.profile.merged_into!r} instead",
                code="merged",
                field=side,
                **error.facts,
            )
    if absorbed:
        raise Refused(
            f"{absorbed} other account{'s were' if absorbed > 1 else ' was'} merged into "
            f"{dup_id!r}: it keeps them; merge {keep_id!r} into {dup_id!r} instead",
            code="merged",
            field="DUPLICATE",
        )
    if keeper_erased:
        raise Refused(
            f"customer {keep_id!r} was erased (they asked to be forgotten): nothing may be "
            f"added to them; merge {keep_id!r} into {dup_id!r} instead",
            code="erased",
            field="KEEP",
        )
    at = request.at or now
    # Points past their expiry are written off where they are, on the day they
    # fell due: only what is still held moves.
    ids = book.ids()
    today, ops, dup, keep = due_pair("merge", (dup, keep), ruleset, at, now, ids)
    owed = accounts.debt(dup)
    if owed > 0:
        raise Refused(
            f"{dup_id!r} owes {owed} points (a refund took back more than it held): a merge "
            f"moves points, not a debt, which would overdraw {keep_id!r}; merge {keep_id!r} "
            f"into {dup_id!r} instead, so that the account owing keeps its debt",
            code="insufficient_points",
            field="DUPLICATE",
            customer_id=dup_id,
            owed=owed,
        )
    moving = sorted(dup.lots, key=lambda lot: lot.id)
    points = sum(lot.remaining for lot in moving)
    # Always written, 0 points included: it names the duplicate in the chain
    # (the merges table is checked against it).
    debit = NewEntry(
        id=ids.entry(),
        customer_id=dup_id,
        kind=EntryKind.MERGE,
        points=-points,
        reason=f"merged into {keep_id}: {request.reason}",
        draws=tuple((lot.id, lot.remaining) for lot in moving),
    )
    credits = tuple(
        NewEntry(
            id=ids.entry(),
            customer_id=keep_id,
            kind=EntryKind.MERGE,
            points=lot.remaining,
            reason=f"merged from {dup_id}: {request.reason}",
            lot=LotTerms(lot.earned_on, lot.available_on, lot.expires_on),
        )
        for lot in moving
    )
    op = NewOperation(
        id=ids.op(),
        kind=OpKind.MERGE,
        customer_id=keep_id,
        occurred_at=at,
        ruleset=ruleset.version,
        entries=(debit, *credits),
        txn=request.txn,
        content=None if request.txn is None else content_digest(request.content()),
        reason=request.reason,
    )
    ops.append(op)
    after = combined(keep, dup)
    after = after.with_(lots=add_lots(after, credits), net=after.net + points)
    change, after, status = tier_change(after, ruleset, at, f"merged {dup_id}", ids)
    if change is not None:
        ops.append(change)
    gone = replace(dup.profile, merged_into=keep_id)
    book.apply(
        Outcome(
            tuple(ops),
            (after, Account(profile=gone)),
            keyed=(op,) if request.txn is not None else (),
        )
    )
    return MergeResult(
        keep_id,
        dup_id,
        request.reason,
        format_utc(at),
        request.txn,
        points,
        accounts.balance(after, today),
        after.tier if status is None else status.level.id,
        tuple(
            (
                None if e.lot is None or e.lot.expires_on is None else e.lot.expires_on.isoformat(),
                "" if e.lot is None else e.lot.available_on.isoformat(),
                e.points,
            )
            for e in credits
        ),
    )
