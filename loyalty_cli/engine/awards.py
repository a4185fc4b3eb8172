"""Earning as decisions: a purchase or an event, and an enrollment with its
referral. Each reads the accounts in a Book, applies the rules (evaluator.py),
and records one operation with an entry per award line and a lot per credit,
after writing off what expired and before recording a tier change."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, tzinfo
from decimal import Decimal

from .. import account as accounts
from ..account import Account, Profile, Use
from ..clock import shop_time, zone
from ..errors import BadArgument, Refused, did_you_mean, unknown_customer
from ..evaluator import base_of, evaluate, line_detail
from ..games.model import Play, is_game_line
from ..kinds import AWARDS, EntryKind, OpKind
from ..lots import LotTerms
from ..models import (
    Activity,
    Award,
    AwardLine,
    CustomerState,
    ItemAward,
    Line,
    Ruleset,
    RuleUsage,
    TierLevel,
)
from ..values import MAX_POINTS, format_utc, from_cents, to_cents
from . import playing
from .book import Book, Ids, Outcome
from .lifecycle import add_lots, expire_due, lot_terms, today_of
from .records import NewEntry, NewItem, NewOperation, Recorded, content_digest
from .requests import SYSTEM_EVENTS, EarnRequest, EnrollRequest
from .results import AwardResult, EnrollResult
from .tiering import standing, tier_change


def check_event(ruleset: Ruleset, event: str) -> str:
    """An event typed at the CLI must be one the rules reward: a typo would
    otherwise record an action that silently earns nothing."""
    if event == "purchase":
        raise BadArgument("record a purchase with --amount, not --event purchase")
    if event in SYSTEM_EVENTS:
        raise BadArgument(f"'{event}' points are given by {SYSTEM_EVENTS[event]}")
    known = sorted(ruleset.events - set(SYSTEM_EVENTS))
    if event not in known:
        hint = did_you_mean(event, known)
        raise BadArgument(
            f"no rule in {ruleset.source} rewards the event '{event}'{hint}; "
            f"events with rules: {', '.join(known) or 'none'}"
        )
    return event


def refuse_unknown(customer_id: str, what: str = "customer") -> Refused:
    return unknown_customer(customer_id, what)


def conflict(txn: str, earlier: Recorded, tz: tzinfo) -> Refused:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(earlier.shown().items()) if v is not None)
    return Refused(
        f"txn {txn!r} was already used for a different operation ({shown}, "
        f"at {shop_time(earlier.occurred_at, tz)}); use a new --txn",
        code="txn_conflict",
        field="--txn",
        txn=txn,
    )


def earlier(
    book: Book, txn: str | None, content: dict[str, object], at: datetime | None
) -> Recorded | None:
    """The operation already recorded under `txn`, if its content is the same;
    a conflict if it is not. A retry may leave out --at."""
    if txn is None:
        return None
    found = book.find(txn)
    if found is None:
        return None
    if found.content != content_digest(content) or (
        at is not None and at.replace(microsecond=0) != found.occurred_at
    ):
        raise conflict(txn, found, zone(book.ruleset.program.timezone))
    return found


def bounded(award: Award, what: str) -> Award:
    """An award beyond MAX_POINTS is refused: the rules' rates times an amount can
    reach numbers that would overflow the ledger's sums."""
    if award.points > MAX_POINTS:
        raise Refused(
            f"the rules would award {award.points:,} points for this {what}, beyond the limit "
            f"of {MAX_POINTS:,} for one operation; check the rates in the rules file"
        )
    return award


def customer_state(
    book: Book, account: Account, activity: Activity, tier: TierLevel | None
) -> CustomerState:
    """What the evaluator may know about the customer before this activity."""
    ruleset = book.ruleset
    tz = zone(ruleset.program.timezone)
    usage: dict[str, RuleUsage] = {}
    budget_used: dict[str, int] = {}
    for rule in ruleset.limited_by_event.get(activity.event, ()):
        if rule.cap is not None:
            usage[rule.id] = RuleUsage(
                *accounts.usage(account, rule.id, rule.cap.per, activity.at, tz)
            )
        if rule.budget is not None:
            budget_used[rule.id] = book.budgets.used(rule.id)
    return CustomerState(
        customer_id=account.id,
        enrolled_at=account.profile.enrolled_at,
        balance=accounts.balance(account, today_of(ruleset, activity.at)),
        purchases=account.purchases,
        spend=accounts.spend(account),
        referred_by=account.profile.referred_by,
        tier=tier,
        usage=usage,
        budget_used=budget_used,
        badges=frozenset() if account.play is None else account.play.badges,
    )


def award_entries(
    award: Award, kind: EntryKind, terms: LotTerms, customer_id: str, ids: Ids
) -> tuple[NewEntry, ...]:
    """One entry per award line; each credit opens a lot on `terms`. A line's
    words are kept only when a cap or a budget cut it short: the others are
    rebuilt from the rules when shown."""
    return tuple(
        NewEntry(
            id=ids.entry(),
            customer_id=customer_id,
            kind=EntryKind.BADGE
            if line.badge is not None
            else EntryKind.GIFT
            if line.reward is not None and line.points == 0
            else kind,
            points=line.points,
            rule=line.rule,
            reward=line.badge or line.reward,
            # A game's words cannot be rebuilt from the rules: they are kept too.
            detail=line.detail if line.trimmed or is_game_line(line.rule) else None,
            lot=terms if line.points > 0 else None,
        )
        for line in award.lines
    )


def credited(
    account: Account, ruleset: Ruleset, entries: tuple[NewEntry, ...], at: datetime
) -> Account:
    """The account after the credits and award lines among `entries` (its own)."""
    mine = [e for e in entries if e.customer_id == account.id]
    if not mine:
        return account
    capped = ruleset.capped_rules
    uses = tuple(Use(e.rule, at, e.points) for e in mine if e.rule in capped)
    qualifying = account.qualifying
    if ruleset.tiers is not None and ruleset.tiers.metric == "points":
        for e in mine:
            if e.lot is not None and e.kind in (EntryKind.EARN, EntryKind.ENROLL):
                qualifying = accounts.qualify(
                    account.with_(qualifying=qualifying), e.lot.available_on, e.points
                )
    play = account.play
    if play is not None and ruleset.games is not None and ruleset.games.by_points:
        # Milestones on points count the rules' points, never the games' own.
        gained = sum(e.points for e in mine if e.kind in AWARDS and not is_game_line(e.rule))
        if gained:
            play = Play(play.facts, play.paid, play.earned + gained, play.memo, play.base)
    return account.with_(
        lots=add_lots(account, entries),
        net=account.net + sum(e.points for e in mine),
        uses=account.uses + uses if uses else account.uses,
        qualifying=qualifying,
        play=play,
    )


def bought(account: Account, ruleset: Ruleset, cents: int, day: date) -> Account:
    """The account after a purchase of `cents` made on the shop day `day`."""
    qualifying = account.qualifying
    if ruleset.tiers is not None and ruleset.tiers.metric == "spend":
        start = accounts.counts_from(day, ruleset.points.pending_days)
        qualifying = accounts.qualify(account, start, cents)
    return account.with_(
        purchases=account.purchases + 1,
        spend_cents=account.spend_cents + cents,
        qualifying=qualifying,
    )


def recorded_award(book: Book, found: Recorded, amount_cents: int | None) -> Award:
    """What a recorded operation awarded, its lines explained as when it was made."""
    rules = book.rules_of(found.ruleset)
    if len([i for i in found.items if i.quantity > 0]) > 1:
        return _recorded_receipt(found, rules)
    amount = None if amount_cents is None else from_cents(amount_cents)
    mine = [line for line in found.lines if line.customer_id == found.customer_id]
    base = 0 if rules is None else base_of(rules, [(line.rule, line.points) for line in mine])
    lines = []
    for line in mine:
        detail = line.detail
        if detail is None and rules is not None and line.rule is not None:
            detail = line_detail(rules, line.rule, line.points, amount, base)
        badge = line.reward if line.kind == EntryKind.BADGE else None
        reward = None if badge is not None else line.reward
        lines.append(
            AwardLine(line.rule or line.kind, line.points, detail or "", reward, badge=badge)
        )
    return Award(points=sum(line.points for line in lines), lines=tuple(lines))


def _recorded_receipt(found: Recorded, rules: Ruleset | None) -> Award:
    """What a recorded receipt of several lines awarded, as the first earn said it:
    each line's points by rule (kept in the ledger since schema 12), each rule's
    total with its words per line and for the receipt, rebuilt from the rules it
    was made with. A receipt written before schema 12 gives each rule's total
    and each line's points only."""
    mine = [line for line in found.lines if line.customer_id == found.customer_id]
    sold = [i for i in found.items if i.quantity > 0]
    items: list[ItemAward] = []
    parts: dict[str, list[tuple[str, AwardLine]]] = {}
    basket = Decimal("0.00")
    rewards = {line.rule: line.reward for line in mine}
    # A rule a cap or a budget cut short kept its words, part by part.
    kept_words = {
        line.rule: dict(_PART.findall(line.detail)) for line in mine if line.detail is not None
    }
    for i in sold:
        sold_line = Line(from_cents(i.amount_cents), i.quantity, i.sku, i.category)
        split = None if i.earned_by is None else json.loads(i.earned_by)
        if isinstance(split, str):
            items.append(ItemAward(i.number, sold_line, 0, excluded_by=split))
            continue
        basket += sold_line.amount
        if split is None:
            items.append(ItemAward(i.number, sold_line, i.points))
            continue
        base = 0 if rules is None else base_of(rules, split)
        lines = tuple(
            AwardLine(
                rule,
                points,
                kept_words.get(rule, {}).get(f"line {i.number}")
                or _words(rules, rule, points, sold_line.amount, base),
                rewards.get(rule),
            )
            for rule, points in split
        )
        for award_line in lines:
            parts.setdefault(award_line.rule, []).append((f"line {i.number}", award_line))
        items.append(ItemAward(i.number, sold_line, i.points, lines))
    complete = all(i.earned_by is not None for i in sold)
    own = {line.rule or line.kind: line.points for line in mine}
    for rule, shares in parts.items():
        own[rule] = own.get(rule, 0) - sum(share.points for _, share in shares)
    own_base = 0 if rules is None else base_of(rules, list(own.items()))
    summed = []
    for line in mine:
        rule = line.rule or line.kind
        detail = line.detail
        if detail is None and complete:
            words = [f"{name}: {share.detail}" for name, share in parts.get(rule, [])]
            if own.get(rule) or rule not in parts:
                receipt = _words(rules, rule, own[rule], basket, own_base)
                words.append(f"receipt: {receipt}")
            detail = "; ".join(words)
        summed.append(
            AwardLine(
                rule, line.points, detail or f"over the receipt's {len(sold)} lines", line.reward
            )
        )
    return Award(sum(line.points for line in summed), tuple(summed), items=tuple(items))


# "line 2: 4 points; capped at 6 points per day; receipt: ..." -> each part's words
_PART = re.compile(r"(line \d+|receipt): (.*?)(?=; (?:line \d+|receipt): |$)")


def _words(rules: Ruleset | None, rule: str, points: int, amount: Decimal, base: int) -> str:
    found = None if rules is None else line_detail(rules, rule, points, amount, base)
    return found or ""


def receipt_items(award: Award) -> tuple[NewItem, ...]:
    """A receipt's lines as the ledger keeps them, each with what it earned and
    how: its points by rule, or the rule that excluded it (`earned_by`)."""
    return tuple(
        NewItem(
            number=item.number,
            quantity=item.line.quantity,
            amount_cents=to_cents(item.line.amount),
            points=item.points,
            sku=item.line.sku,
            category=item.line.category,
            earned_by=_earned_by(item),
        )
        for item in award.items
    )


_PLAIN = re.compile(r"[a-z0-9_.:-]+")


def _earned_by(item: ItemAward) -> str:
    """A line's split by rule as compact JSON, written for every line of every
    receipt of an import: rule ids are plain (rules.py's _ID; `tier:` and game
    lines add a colon), so only an unusual one goes through the encoder."""
    if item.excluded_by is not None:
        return json.dumps(item.excluded_by)
    if not all(_PLAIN.fullmatch(line.rule) for line in item.lines):
        return json.dumps([[line.rule, line.points] for line in item.lines], separators=(",", ":"))
    return "[" + ",".join(f'["{line.rule}",{line.points}]' for line in item.lines) + "]"


# --- earn ---------------------------------------------------------------------------


def earn(
    book: Book,
    request: EarnRequest,
    *,
    dry_run: bool = False,
    explain: bool = False,
) -> AwardResult:
    """Record a purchase or an event and award its points."""
    ruleset, now = book.ruleset, book.now
    at = request.at or now
    content = request.content()
    found = earlier(book, request.txn, content, request.at)
    if found is not None:
        account = book.account(request.customer_id)
        return AwardResult(
            request.customer_id,
            request.event,
            format_utc(found.occurred_at),
            request.amount,
            request.txn,
            recorded_award(book, found, found.amount_cents),
            0 if account is None else accounts.balance(account, today_of(ruleset, now)),
            duplicate=True,
            dry_run=dry_run,
            store=found.store,
        )
    account = book.account(request.customer_id)
    if account is None:
        raise refuse_unknown(request.customer_id)
    if at < account.profile.enrolled_at:
        tz = zone(ruleset.program.timezone)
        raise Refused(
            f"an earn dated {shop_time(at, tz)} is before {account.id!r} enrolled "
            f"({shop_time(account.profile.enrolled_at, tz)}): date it (--at, or a CSV row's "
            "date) at or after the enrollment",
            code="before_enrollment",
            field="--at",
            customer_id=account.id,
        )
    today = today_of(ruleset, at)
    ids = book.ids()
    ops: list[NewOperation] = []
    if not dry_run:
        ops, account, _ = expire_due(account, ruleset, today, now, ids)
    activity = Activity(
        customer_id=account.id,
        event=request.event,
        at=at,
        amount=request.amount,
        category=request.category,
        sku=request.sku,
        quantity=request.quantity,
        lines=request.lines,
        store=request.store,
    )
    current = standing(account, ruleset, today)
    state = customer_state(book, account, activity, None if current is None else current.level)
    award = evaluate(ruleset, activity, state, explain=explain)
    played = None
    if ruleset.games is not None and account.play is not None:
        tier = None if current is None else current.level.id
        award, played = playing.play(
            ruleset, account.play, activity, award, today, ids.next_op, explain, tier
        )
    award = bounded(award, request.event)
    result = AwardResult(
        account.id,
        request.event,
        format_utc(at),
        request.amount,
        request.txn,
        award,
        # Exact, written or not: the new lots count from today (pending or not) and
        # expire months later, and a tier change carries no points.
        state.balance + award.points,
        dry_run=dry_run,
        explain=explain,
        store=request.store,
    )
    if dry_run:
        return result
    purchase = request.event == "purchase"
    cents = None if request.amount is None else to_cents(request.amount)
    op = NewOperation(
        id=ids.op(),
        kind=OpKind.PURCHASE if purchase else OpKind.EVENT,
        customer_id=account.id,
        occurred_at=at,
        ruleset=ruleset.version,
        entries=award_entries(
            award, EntryKind.EARN, lot_terms(ruleset, at, purchase=purchase), account.id, ids
        ),
        txn=request.txn,
        content=None if request.txn is None else content_digest(content),
        event=request.event,
        amount_cents=cents,
        category=request.category,
        sku=request.sku,
        quantity=request.quantity,
        items=receipt_items(award),
        store=request.store,
    )
    ops.append(op)
    account = credited(account, ruleset, op.entries, at)
    if played is not None:
        account = account.with_(play=played)
    if purchase:
        assert cents is not None
        account = bought(account, ruleset, cents, today)
    # A purchase counts toward tiers only once its return window is over, so on
    # its own day the tier is the one worked out before it.
    unchanged = purchase and ruleset.points.pending_days > 0
    cause = f"{request.event} {request.txn or ''}".strip()
    change, account, _ = tier_change(
        account, ruleset, at, cause, ids, current if unchanged else None
    )
    if change is not None:
        ops.append(change)
    book.apply(Outcome(tuple(ops), (account,), keyed=(op,) if request.txn else ()))
    return result


# --- enroll -------------------------------------------------------------------------


def enroll(book: Book, request: EnrollRequest) -> EnrollResult:
    """Enroll a customer; pay the enroll rules to them and the referral rules to
    their referrer (once per referred customer, since a customer enrolls once)."""
    ruleset, now = book.ruleset, book.now
    at = request.at or now
    today = today_of(ruleset, at)
    existing = book.account(request.customer_id)
    if existing is not None:
        if not request.exist_ok:
            raise Refused(
                f"customer {request.customer_id!r} is already enrolled "
                "(add --exist-ok to make enroll a no-op for existing customers)",
                code="already_enrolled",
                field="CUSTOMER_ID",
                customer_id=request.customer_id,
            )
        award = AwardResult(
            existing.id,
            "enroll",
            format_utc(existing.profile.enrolled_at),
            None,
            None,
            Award(0, ()),
            accounts.balance(existing, today),
        )
        return EnrollResult(existing.profile, created=False, award=award, referral=None)
    referrer: Account | None = None
    if request.referred_by is not None:
        if request.referred_by == request.customer_id:
            raise Refused(f"customer {request.customer_id!r} cannot refer themselves")
        referrer = book.account(request.referred_by)
        if referrer is None:
            raise refuse_unknown(request.referred_by, "referrer")
    profile = Profile(
        id=request.customer_id,
        enrolled_at=at,
        name=request.name,
        email=request.email,
        phone=request.phone,
        birthday=request.birthday,
        referred_by=request.referred_by,
        # Backdating an enrollment must not get round a birthday's notice.
        birthday_set_at=max(at, now),
        salt=request.salt,
    )
    account = Account(profile, play=None if ruleset.games is None else Play())
    # Ids in the order the operations are appended: the referrer's overdue points
    # are written off first, so their expiry's entries come before the enrollment's.
    ids = book.ids()
    ops: list[NewOperation] = []
    if referrer is not None:
        expired, referrer, _ = expire_due(referrer, ruleset, today, now, ids)
        ops += expired
    activity = Activity(account.id, "enroll", at)
    first = standing(account, ruleset, today)
    welcome = bounded(
        evaluate(
            ruleset,
            activity,
            customer_state(book, account, activity, None if first is None else first.level),
            explain=False,
        ),
        "enroll",
    )
    terms = lot_terms(ruleset, at, purchase=False)
    entries = award_entries(welcome, EntryKind.ENROLL, terms, account.id, ids)
    referral: Award | None = None
    if referrer is not None:
        ref_activity = Activity(referrer.id, "referral", at, referred=account.id)
        theirs = standing(referrer, ruleset, today)
        referral = bounded(
            evaluate(
                ruleset,
                ref_activity,
                customer_state(
                    book, referrer, ref_activity, None if theirs is None else theirs.level
                ),
                explain=False,
            ),
            "referral",
        )
        entries += award_entries(referral, EntryKind.EARN, terms, referrer.id, ids)
    op = NewOperation(
        id=ids.op(),
        kind=OpKind.ENROLL,
        customer_id=account.id,
        occurred_at=at,
        ruleset=ruleset.version,
        entries=entries,
        event="enroll",
        profile=profile,
    )
    ops.append(op)
    account = credited(account, ruleset, entries, at)
    change, account, _ = tier_change(account, ruleset, at, "enrolled", ids)
    if change is not None:
        ops.append(change)
    changed = [account]
    if referrer is not None:
        referrer = credited(referrer, ruleset, entries, at)
        change, referrer, _ = tier_change(referrer, ruleset, at, f"referred {account.id}", ids)
        if change is not None:
            ops.append(change)
        changed.append(referrer)
    book.apply(Outcome(tuple(ops), tuple(changed)))
    occurred = format_utc(at)
    result = AwardResult(
        account.id, "enroll", occurred, None, None, welcome, accounts.balance(account, today)
    )
    referred = None
    if referrer is not None and referral is not None:
        referred = AwardResult(
            referrer.id,
            "referral",
            occurred,
            None,
            None,
            referral,
            accounts.balance(referrer, today),
        )
    return EnrollResult(profile, created=True, award=result, referral=referred)
