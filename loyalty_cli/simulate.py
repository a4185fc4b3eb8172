"""`loyalty simulate --rules NEW.yaml`: the recorded history replayed under other
rules, in memory, and compared with what was actually awarded.

Every recorded request (enrollments, purchases, events, refunds, redemptions,
adjustments, tiers set by hand) goes through the same decisions as at the till
(engine/), in the order it was written, on one Book built from nothing, with
the clock the original write had; the nightly runs are replayed where they ran.
What time alone decides (expiry, tier changes) is decided again, not copied.
Nothing is written: the ledger is opened read-only and read in one snapshot.

- Operations before `--from` are replayed under the rules they were recorded
  with, so the period starts from the accounts as they really stood; those in
  the period, under the new rules. Nothing after `--to` is replayed.
- A request the new rules refuse (a redemption the balance no longer covers, a
  reward no longer offered, a tier that no longer exists) is reported and left
  out; the replay goes on without it.
- Birthdays are replayed as recorded (the profile values that decided them are
  not all kept: a customer may have their contact details erased).
- Memory grows with customers, not history: the Book keeps their accounts, an
  operation only while a later refund may still look it up, and each account is
  compacted as it grows (account.compact): what no later decision can tell
  apart is folded together, judged by the earliest time of any operation still
  to come (a block of operation ids at a time). See Compaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from . import account as accounts
from .account import Account
from .clock import day_start, from_day_number, from_stamp, shop_day, stamp, zone
from .engine import awards, merges, refunds, spending, tiering, transfers
from .engine.book import Book
from .engine.nightly import night
from .engine.records import NewOperation
from .engine.requests import (
    AdjustRequest,
    EarnRequest,
    EnrollRequest,
    MergeRequest,
    RedeemRequest,
    RefundRequest,
    TierRequest,
    TransferRequest,
)
from .errors import LoyaltyError, RulesInvalid
from .games.model import Games
from .games.play import fold
from .models import Line, Ruleset
from .store import Store, replay
from .store import reports as ledger_reports
from .values import format_utc, from_cents

MAX_REFUSED = 1000  # refused operations listed (all are counted)
BLOCK = 4096  # operation ids looked ahead at once: refunds to come, the earliest time
COMPACT_FROM = 16  # lots, tier inputs and uses an account holds before it is compacted
_AWARDS = ("earn", "enroll")


@dataclass
class Side:
    """What one side (the ledger, or the replay) gave in the period."""

    kinds: Counter[str] = field(default_factory=Counter)  # points by entry kind
    rules: Counter[str] = field(default_factory=Counter)  # points by rule (award lines)
    rewards: Counter[str] = field(default_factory=Counter)  # redemptions and gifts
    changes: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # (day, tier)

    def entry(self, kind: str, points: int, rule: str | None, reward: str | None) -> None:
        self.kinds[kind] += points
        if rule is not None and kind in _AWARDS:
            self.rules[rule] += points
        if reward is not None and kind in ("redeem", "gift"):
            self.rewards[reward] += 1


@dataclass(frozen=True)
class Refusal:
    occurred_at: str
    customer_id: str | None
    operation: str
    txn: str | None
    reason: str


@dataclass
class Simulation:
    rules: Ruleset
    first: date | None
    last: date
    operations: int = 0  # replayed in the period
    members: int = 0  # accounts at the end (a merged duplicate is its keeper's)
    actual: Side = field(default_factory=Side)
    simulated: Side = field(default_factory=Side)
    actual_balance: dict[str, int] = field(default_factory=dict)
    simulated_balance: dict[str, int] = field(default_factory=dict)
    actual_tier: dict[str, str] = field(default_factory=dict)
    simulated_tier: dict[str, str] = field(default_factory=dict)
    refused: list[Refusal] = field(default_factory=list)
    refused_count: int = 0
    top: int = 10
    # Points the replay wrote off on days after the period (a nightly run dated
    # later): they were still held at its end.
    expired_after: Counter[str] = field(default_factory=Counter)

    # --- output -------------------------------------------------------------

    def customers(self) -> Iterator[tuple[str, int, int, str | None, str | None]]:
        """(customer, actual balance, simulated balance, actual tier, simulated tier)."""
        for cid in sorted(set(self.actual_balance) | set(self.simulated_balance)):
            yield (
                cid,
                self.actual_balance.get(cid, 0),
                self.simulated_balance.get(cid, 0),
                self.actual_tier.get(cid),
                self.simulated_tier.get(cid),
            )

    def table(self) -> tuple[list[str], Iterable[list[object]]]:
        header = [
            "customer_id",
            "actual_balance",
            "simulated_balance",
            "difference",
            "actual_tier",
            "simulated_tier",
        ]
        rows = ([c, a, s, s - a, at or "", st or ""] for c, a, s, at, st in self.customers())
        return header, rows

    def to_json(self) -> dict[str, Any]:
        actual, simulated = self.actual, self.simulated
        liability_a = sum(self.actual_balance.values())
        liability_s = sum(self.simulated_balance.values())
        figures = {"actual": (actual, liability_a), "simulated": (simulated, liability_s)}
        totals: dict[str, dict[str, Any]] = {}
        for name, (side, outstanding) in figures.items():
            totals[name] = {
                "points_earned": sum(side.kinds[k] for k in _AWARDS),
                "points_redeemed": -side.kinds["redeem"],
                "points_refunded": -side.kinds["refund"],
                "points_expired": -side.kinds["expire"],
                "points_adjusted": side.kinds["adjust"],
                "points_outstanding": outstanding,
            }
        totals["difference"] = {k: v - totals["actual"][k] for k, v in totals["simulated"].items()}
        value = self.rules.program.point_value
        if value is not None:
            totals["actual"]["liability_value"] = _money(liability_a * value)
            totals["simulated"]["liability_value"] = _money(liability_s * value)
            totals["difference"]["liability_value"] = _money((liability_s - liability_a) * value)
        rules = sorted(set(actual.rules) | set(simulated.rules))
        rewards = sorted(set(actual.rewards) | set(simulated.rewards))
        diffs = [(s - a, cid, a, s) for cid, a, s, _, _ in self.customers() if s != a]
        gainers = sorted((d for d in diffs if d[0] > 0), key=lambda d: (-d[0], d[1]))
        losers = sorted((d for d in diffs if d[0] < 0), key=lambda d: (d[0], d[1]))
        return {
            "file": self.rules.source,
            "rules_version": self.rules.version,
            "from": None if self.first is None else self.first.isoformat(),
            "to": self.last.isoformat(),
            "operations": self.operations,
            "members": self.members,
            "totals_actual": totals["actual"],
            "totals_simulated": totals["simulated"],
            "totals_difference": totals["difference"],
            "rules_points": [
                {"rule": r, **_pair(actual.rules[r], simulated.rules[r])} for r in rules
            ],
            "rewards": [
                {"reward": r, **_pair(actual.rewards[r], simulated.rewards[r])} for r in rewards
            ],
            "tier_changes": self._tiers(),
            "customers_changed": len(diffs),
            "gainers": [_customer(d) for d in gainers[: self.top]],
            "losers": [_customer(d) for d in losers[: self.top]],
            "refused_count": self.refused_count,
            "refused": [
                {
                    "occurred_at": r.occurred_at,
                    "customer_id": r.customer_id,
                    "operation": r.operation,
                    "txn": r.txn,
                    "reason": r.reason,
                }
                for r in self.refused
            ],
        }

    def _tiers(self) -> dict[str, Any] | None:
        policy = self.rules.tiers
        if policy is None:
            return None
        ids = [level.id for level in policy.levels]
        actual = Counter(self.actual_tier.values())
        simulated = Counter(self.simulated_tier.values())
        levels = [
            {"tier": t, **_pair(actual[t], simulated[t])}
            for t in [*ids, *sorted((set(actual) | set(simulated)) - set(ids))]
        ]
        changed: list[dict[str, Any]] = []
        for cid in sorted(set(self.actual_tier) | set(self.simulated_tier)):
            was = self.actual.changes.get(cid, [])
            now = self.simulated.changes.get(cid, [])
            a, s = self.actual_tier.get(cid), self.simulated_tier.get(cid)
            if was == now and a == s:
                continue
            first = next((min(x[0], y[0]) for x, y in zip(was, now, strict=False) if x != y), None)
            if first is None and len(was) != len(now):
                first = (was if len(was) > len(now) else now)[min(len(was), len(now))][0]
            changed.append(
                {
                    "customer_id": cid,
                    "actual_tier": a,
                    "simulated_tier": s,
                    "first_differs": first,
                    "actual_changes": [{"day": d, "tier": t} for d, t in was],
                    "simulated_changes": [{"day": d, "tier": t} for d, t in now],
                }
            )
        rank = {t: i for i, t in enumerate(ids)}
        ends = [
            (rank.get(c["actual_tier"] or "", 0), rank.get(c["simulated_tier"] or "", 0))
            for c in changed
        ]
        up = sum(1 for a, s in ends if s > a)
        down = sum(1 for a, s in ends if s < a)
        return {
            "by_tier": levels,
            "customers_changed": len(changed),
            "would_end_higher": up,
            "would_end_lower": down,
            "moved": changed[: self.top],
        }


def _pair(actual: int, simulated: int) -> dict[str, int]:
    return {"actual": actual, "simulated": simulated, "difference": simulated - actual}


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _customer(d: tuple[int, str, int, int]) -> dict[str, Any]:
    return {"customer_id": d[1], "actual": d[2], "simulated": d[3], "difference": d[0]}


# --- the replay -------------------------------------------------------------------


class _Versions:
    """The rules each recorded version stood for, parsed when first needed."""

    def __init__(self, texts: dict[str, tuple[str, str]], fallback: Ruleset) -> None:
        self.texts = texts
        self.fallback = fallback
        self.parsed: dict[str | None, Ruleset] = {}

    def of(self, version: str | None) -> Ruleset:
        found = self.parsed.get(version)
        if found is None:
            from .rules import parse_rules

            found = self.fallback
            if version is not None and version in self.texts:
                source, text = self.texts[version]
                with suppress(RulesInvalid):  # no longer valid: the new rules stand in
                    found = parse_rules(text, source)
            self.parsed[version] = found
        return found


def simulate(
    store: Store,
    new: Ruleset,
    first: date | None,
    last: date,
    top: int = 10,
    compact_from: int | None = COMPACT_FROM,
    block: int = BLOCK,
) -> Simulation:
    """The history up to the end of `last` (shop-local), the period from `first`
    (None: the beginning) replayed under `new`. `compact_from`: the size at
    which an account is first compacted (None: never, 1: after every decision;
    the result is the same); `block`: how many operation ids to look ahead at
    once (refunds to come, the earliest time of what is still to come)."""
    tz = zone(new.program.timezone)
    begin = None if first is None else stamp(day_start(first, tz))
    until = stamp(day_start(last + timedelta(days=1), tz)) - 1
    result = Simulation(new, first, last, top=top)
    conn = store.conn
    with store.snapshot():
        versions = _Versions(replay.rules_texts(conn), new)
        left: dict[str, int] = {}  # refunds still to come, by purchase txn
        looked = 0  # the operation ids whose refunds `left` knows: those below
        runs = [r for r in replay.nightly_runs(conn) if r[1] <= until]
        late = ledger_reports.overdue_by_customer(conn, last)
        book = Book(ruleset=new, now=from_stamp(0))
        compaction = None
        if compact_from is not None:
            used = [new] if first is None else [new, *map(versions.of, versions.texts)]
            # The games' facts fold only under one set of rules from start to end
            # (the rules of a later period may count the facts of before it
            # differently), and never those of an account a merge joins.
            games = new.games if first is None else None
            ahead = replay.earliest_ahead(conn, block)
            merged = replay.merged(conn) if games is not None else frozenset()
            compaction = Compaction(book, tz, runs, ahead, used, games, merged)
            compaction.start = compact_from
        # What the ledger recorded: balances (before overdue lots), tiers.
        held: dict[str, int] = {}
        run = 0
        for op in replay.operations(conn, until):
            while run < len(runs) and runs[run][1] < op.recorded:
                _nightly(book, runs[run], (begin, until), versions, result)
                run += 1
            if op.id >= looked:
                looked = op.id // block * block + block
                left.update(replay.refunded(conn, looked - block, looked - 1))
            inside = begin is None or op.occurred >= begin
            rules = new if inside else versions.of(op.version)
            _use(book, rules)
            book.now = from_stamp(op.recorded)
            for e in op.entries:
                held[e.customer_id] = held.get(e.customer_id, 0) + e.points
                if inside:
                    result.actual.entry(e.kind, e.points, e.rule, e.reward)
            if op.kind == "tier" and op.event == "change" and op.tier is not None:
                assert op.customer_id is not None
                result.actual_tier[op.customer_id] = op.tier
                if inside:
                    day = shop_day(from_stamp(op.occurred), tz).isoformat()
                    result.actual.changes.setdefault(op.customer_id, []).append((day, op.tier))
            if inside:
                result.operations += 1
            _replay(book, op, left, result)
            touched = _fold(book, (begin, until), tz, result)
            _forget(book, op, left)
            if compaction is not None:
                compaction.after(op.id, run, touched)
        while run < len(runs):
            _nightly(book, runs[run], (begin, until), versions, result)
            run += 1
    _use(book, new)
    lowest = new.tiers.levels[0].id if new.tiers else None
    for cid, account in book.accounts.items():
        back = result.expired_after.get(cid, 0)
        result.simulated_balance[cid] = accounts.balance(account, last) + back
        if lowest is not None:
            result.simulated_tier.setdefault(cid, lowest)
    for cid, points in held.items():
        result.actual_balance[cid] = points - late.get(cid, 0)
    for cid, account in book.accounts.items():
        result.actual_balance.setdefault(cid, 0)
        if account.profile.merged_into is None:
            result.members += 1
        else:
            # A merged duplicate is its keeper's account: one customer at the end.
            result.actual_tier.pop(cid, None)
            result.simulated_tier.pop(cid, None)
            continue
        if lowest is not None:
            result.actual_tier.setdefault(cid, lowest)
    return result


def _use(book: Book, rules: Ruleset) -> None:
    if book.ruleset is not rules:
        book.ruleset = rules
        for rule in rules.rules:
            if rule.budget is not None:
                book.budgets.totals.setdefault(rule.id, 0)


def _replay(book: Book, op: replay.PastOp, left: dict[str, int], result: Simulation) -> None:
    """One recorded request, decided again; a refusal is reported, not raised."""
    at = from_stamp(op.occurred)
    cid = op.customer_id
    # Each decision changes the Book only once it has decided (one `apply`), so a
    # refused one leaves it as it was. A purchase keeps its txn only when a refund
    # will look it up: nothing else needs the key (the history has no retries).
    txn = op.txn if op.kind != "purchase" or op.txn in left else None
    try:
        if op.kind == "enroll":
            assert cid is not None
            awards.enroll(
                book,
                EnrollRequest(
                    cid,
                    birthday=op.birthday,
                    referred_by=op.referred_by,
                    at=at,
                    salt=op.salt or b"",
                ),
            )
        elif op.kind in ("purchase", "event"):
            assert cid is not None
            purchase = op.kind == "purchase"
            request = EarnRequest(
                cid,
                "purchase" if purchase else op.event or "",
                amount=None if op.amount_cents is None else from_cents(op.amount_cents),
                category=op.category,
                sku=op.sku,
                quantity=op.quantity,
                txn=txn,
                at=at,
                lines=tuple(
                    Line(from_cents(cents), quantity, sku, category)
                    for _, sku, category, quantity, cents in op.items
                )
                if purchase and len(op.items) > 1
                else (),
                store=op.store,
            )
            awards.earn(book, request)
        elif op.kind == "refund" and op.refund_of_txn is not None:
            refunds.refund(
                book,
                RefundRequest(
                    op.refund_of_txn,
                    None if op.items or op.amount_cents is None else from_cents(op.amount_cents),
                    txn=op.txn,
                    at=at,
                    returns=tuple((f"#{number}", units) for number, _, _, units, _ in op.items),
                ),
            )
        elif op.kind == "redeem":
            assert cid is not None
            cost = -sum(e.points for e in op.entries)
            spending.redeem(
                book,
                RedeemRequest(
                    cid,
                    points=None if op.reward else cost,
                    reward=op.reward,
                    reason=op.reason,
                    txn=op.txn,
                    at=at,
                ),
            )
        elif op.kind == "adjust":
            assert cid is not None
            spending.adjust(
                book,
                AdjustRequest(
                    cid,
                    sum(e.points for e in op.entries),
                    op.reason or "adjustment",
                    txn=op.txn,
                    at=at,
                ),
            )
        elif op.kind == "transfer":
            # Points moved between members (issue 15): the same move, decided again.
            assert cid is not None
            to = next((e.customer_id for e in op.entries if e.points > 0), None)
            given = -sum(e.points for e in op.entries if e.customer_id == cid and e.points < 0)
            if to is not None and given > 0:
                transfers.transfer(
                    book,
                    TransferRequest(cid, to, given, op.reason or "transfer", txn=op.txn, at=at),
                )
        elif op.kind == "merge":
            # A duplicate folded into its keeper (issue 15): the same fold, decided
            # again (its first entry names the duplicate).
            assert cid is not None and op.entries
            merges.merge(
                book,
                MergeRequest(cid, op.entries[0].customer_id, op.reason or "merge", op.txn, at),
                absorbed=0,
                keeper_erased=False,
            )
        elif op.kind == "tier" and op.event == "override" and op.tier is not None:
            assert cid is not None
            account = book.account(cid)
            if account is None:
                raise awards.refuse_unknown(cid)
            until = None if op.until is None else from_day_number(op.until)
            outcome, _ = tiering.set_tier(
                account,
                book.ruleset,
                TierRequest(cid, op.tier, op.reason or "set by hand", until, at),
                at,
                book.ids(),
            )
            book.apply(outcome)
        # Expiries and tier changes are decided again; profiles change no points.
    except LoyaltyError as error:
        result.refused_count += 1
        if len(result.refused) < MAX_REFUSED:
            shown = (
                op.kind
                if op.kind not in ("event", "redeem")
                else f"{op.kind} {op.event or op.reward or ''}".strip()
            )
            result.refused.append(Refusal(format_utc(at), cid, shown, op.txn, error.message))


def _nightly(
    book: Book,
    run: tuple[str, int, str | None],
    span: tuple[int | None, int],
    versions: _Versions,
    result: Simulation,
) -> None:
    """A nightly run where it ran: expiry and tier changes for every customer then enrolled."""
    as_of, started, first = run
    day = date.fromisoformat(as_of)
    book.now = from_stamp(started)
    begin = span[0]
    if begin is None or started >= begin:  # before it, the rules replayed last stand
        _use(book, result.rules)
    covered = date.fromisoformat(first) if first else day
    tz = zone(book.ruleset.program.timezone)
    for cid in list(book.accounts):
        account = book.accounts[cid]
        if shop_day(account.profile.enrolled_at, tz) > day:
            continue
        night(book, account, day, covered)
    _fold(book, span, tz, result)


def _fold(book: Book, span: tuple[int | None, int], tz: Any, result: Simulation) -> set[str]:
    """Count what the replay just decided, and let the Book forget it: the
    customers whose accounts it changed."""
    begin, until = span
    touched: set[str] = set()
    for op in book.take():
        touched.add(op.customer_id)
        touched.update(e.customer_id for e in op.entries)
        when = stamp(op.occurred_at)
        if when > until:
            for e in op.entries:
                if e.kind == "expire":
                    result.expired_after[e.customer_id] -= e.points
            continue
        tier = op.tier if op.kind == "tier" and op.event == "change" else None
        if tier is not None:
            result.simulated_tier[op.customer_id] = tier
        if begin is not None and when < begin:
            continue
        side = result.simulated
        for e in op.entries:
            side.entry(e.kind, e.points, e.rule, e.reward)
        if tier is not None:
            day = shop_day(op.occurred_at, tz).isoformat()
            side.changes.setdefault(op.customer_id, []).append((day, tier))
    book.settle()
    return touched


class Compaction:
    """When and how far the replay compacts an account (account.compact).

    An account is compacted once it holds `start` lots, tier inputs and uses,
    and again each time it holds twice what the last compaction left, so the
    work is a constant share of the replay's. How far: up to the earliest day
    any decision still to come can be dated (the operations from the current
    block of ids on, occurred or recorded, and the nightly runs still to come,
    with two days' margin for time zones), keeping whole the lots a refund to
    come will draw on by id. The games' facts fold into each game's base tally
    (games.play.fold) up to the same day and before the purchases a refund to
    come changes, when `games` is given: the whole history replayed under one
    set of rules, and not for the accounts in `merged` (a merge joins two
    histories fact by fact).
    """

    start = COMPACT_FROM

    def __init__(
        self,
        book: Book,
        tz: Any,
        runs: list[tuple[str, int, str | None]],
        ahead: list[tuple[int, int]],
        rules: list[Ruleset],
        games: Games | None = None,
        merged: frozenset[str] = frozenset(),
    ) -> None:
        self.book = book
        self.games = games
        self.merged = merged
        self.tz = tz
        self.ahead = ahead
        self.block = 0  # the index in `ahead` of the current block
        self.windows = {r.tiers.window for r in rules if r.tiers is not None}
        # The earliest day of the nightly runs from each index on.
        self.runs: list[date] = [date.max]
        for as_of, started, covered in reversed(runs):
            days = [date.fromisoformat(as_of), shop_day(from_stamp(started), tz)]
            if covered:
                days.append(date.fromisoformat(covered))
            self.runs.append(min(self.runs[-1], *days))
        self.runs.reverse()
        self.limits: dict[str, int] = {}

    def floor(self, op_id: int, run: int) -> date:
        while self.block + 1 < len(self.ahead) and self.ahead[self.block + 1][0] <= op_id:
            self.block += 1
        day = self.runs[run]
        if self.ahead:
            day = min(day, shop_day(from_stamp(self.ahead[self.block][1]), self.tz))
        return day - timedelta(days=2)

    def after(self, op_id: int, run: int, touched: set[str]) -> None:
        floor: date | None = None
        for cid in touched:
            account = self.book.accounts.get(cid)
            if account is None:
                continue
            if _size(account) < self.limits.get(cid, self.start):
                continue
            if floor is None:
                floor = self.floor(op_id, run)
            lots, first = self._kept(cid)
            account = accounts.compact(account, floor, lots, self.windows, first)
            play = account.play
            if self.games is not None and play is not None and cid not in self.merged:
                before = floor if first is None else min(floor, first)
                account = account.with_(play=fold(self.games, play, before))
            self.book.accounts[cid] = account
            size = _size(account)
            # start 1 (tests): after every decision
            self.limits[cid] = 1 if self.start <= 1 else max(self.start, 2 * size)

    def _kept(self, cid: str) -> tuple[frozenset[int], date | None]:
        """What a refund to come will look up: the customer's lots it draws on by
        id (the award lines of their purchases the Book keeps for those refunds),
        and the first day of those purchases (a refund lowers the tier inputs from
        that day)."""
        ids: set[int] = set()
        first: date | None = None
        for kept in self.book.recorded.values():
            if kept.customer_id == cid:
                lines = kept.entries if isinstance(kept, NewOperation) else kept.lines
                ids.update(line.id for line in lines)
                day = shop_day(kept.occurred_at, self.tz) - timedelta(days=2)
                first = day if first is None else min(first, day)
        return frozenset(ids), first


def _size(account: Account) -> int:
    """What an account holds that a replay keeps growing: lots, tier inputs,
    uses and the games' facts."""
    facts = 0 if account.play is None else account.play.facts.length or 0
    return len(account.lots) + len(account.qualifying) + len(account.uses) + facts


def _forget(book: Book, op: replay.PastOp, left: dict[str, int]) -> None:
    """Keep an operation in the Book only while a later refund may look it up."""
    if op.kind == "refund" and op.refund_of_txn is not None:
        remaining = left.get(op.refund_of_txn, 1) - 1
        if remaining <= 0:
            left.pop(op.refund_of_txn, None)
            book.recorded.pop(op.refund_of_txn, None)
        else:
            left[op.refund_of_txn] = remaining
    if op.txn is not None and op.txn not in left:
        book.recorded.pop(op.txn, None)


def today_default(new: Ruleset, now: datetime) -> date:
    return shop_day(now, zone(new.program.timezone))
