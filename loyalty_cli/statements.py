"""`loyalty statement`: a customer's points statement, for the customer. Balance,
what expires when, the tier and what it takes to keep it or reach the next, and
recent activity in the shop's local time and in plain words ("Purchase of
£42.50", not the rules' arithmetic); as text, printable HTML or JSON.

Read side only: one customer's account and history, read once; the words and
figures are put together in pure code (`build`), and written by `text`, `html`
or `to_json` from the same Statement, so the three cannot disagree.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from html import escape
from pathlib import Path

from . import formats, lots
from .account import Account, holdings
from .clock import from_stamp, zone
from .engine.lifecycle import today_of
from .engine.tiering import standing
from .errors import BadArgument, unknown_customer
from .models import Ruleset
from .store import Store, queries
from .store.queries import HistoryRow
from .values import format_utc, from_cents

RECENT = 10  # lines of activity a statement shows
MAX_RECENT = 200
FORMATS = ("text", "html", "json")


@dataclass(frozen=True)
class Activity:
    at: datetime  # shop-local
    kind: str
    words: str
    points: int


@dataclass(frozen=True)
class TierLine:
    name: str
    until: date | None
    keep: str | None  # what keeps it past `until`, in words
    next_name: str | None
    to_next: str | None  # what reaches the next, in words


@dataclass(frozen=True)
class Statement:
    shop: str
    currency: str
    locale: str | None
    timezone: str
    customer_id: str
    name: str | None
    as_of: date
    balance: int
    available: int
    pending: int
    expiring: list[tuple[date, int]]  # (first day gone, points), soonest first
    tier: TierLine | None
    activity: list[Activity]  # newest first

    # --- JSON -------------------------------------------------------------------

    def to_json(self) -> dict[str, object]:
        t = self.tier
        return {
            "customer_id": self.customer_id,
            "name": self.name,
            "as_of": self.as_of.isoformat(),
            "timezone": self.timezone,
            "balance": self.balance,
            "available": self.available,
            "pending": self.pending,
            "expiring": [
                {"date": gone.isoformat(), "last_day": _last(gone).isoformat(), "points": n}
                for gone, n in self.expiring
            ],
            "tier_status": None
            if t is None
            else {
                "name": t.name,
                "tier_until": None if t.until is None else t.until.isoformat(),
                "how_to_keep": t.keep,
                "next_tier_name": t.next_name,
                "how_to_reach_next": t.to_next,
            },
            "recent_activity": [
                {
                    "occurred_at": format_utc(a.at),
                    "local_time": a.at.isoformat(timespec="minutes"),
                    "kind": a.kind,
                    "description": a.words,
                    "points": a.points,
                }
                for a in self.activity
            ],
        }

    # --- words ------------------------------------------------------------------

    def _n(self, value: int) -> str:
        return formats.number(value, self.locale)

    def _day(self, value: date) -> str:
        return formats.day(value, self.locale)

    def headline(self) -> str:
        who = f"{self.name} ({self.customer_id})" if self.name else self.customer_id
        return f"{self.shop}: points statement for {who}"

    def balance_words(self) -> str:
        out = f"{self._n(self.balance)} points"
        if self.pending:
            out += (
                f" ({self._n(self.available)} to spend now, "
                f"{self._n(self.pending)} held until returns close)"
            )
        return out

    def expiry_words(self) -> list[str]:
        return [
            f"{self._n(n)} points expire at the end of {self._day(_last(gone))}"
            for gone, n in self.expiring
        ]

    def tier_words(self) -> list[str]:
        t = self.tier
        if t is None:
            return []
        out = [f"Your tier: {t.name}" + (f", held until {self._day(t.until)}" if t.until else "")]
        if t.keep:
            out.append(f"To keep {t.name} after that: {t.keep}")
        if t.next_name and t.to_next:
            out.append(f"To reach {t.next_name}: {t.to_next}")
        return out

    def text(self) -> str:
        lines = [self.headline(), f"As of {self._day(self.as_of)}", ""]
        lines.append(f"Balance: {self.balance_words()}")
        if self.expiring:
            lines += ["", "Expiring:"] + [f"  {w}" for w in self.expiry_words()]
        if self.tier:
            lines += ["", *self.tier_words()]
        if self.activity:
            lines += ["", f"Recent activity ({self.timezone} time):"]
            for a in self.activity:
                when = formats.moment(a.at, self.locale)
                lines.append(f"  {when}  {a.words}  {_signed(a.points, self._n)}")
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        e = escape
        rows = "".join(
            f"<tr><td>{e(formats.moment(a.at, self.locale))}</td><td>{e(a.words)}</td>"
            f'<td class="points">{e(_signed(a.points, self._n))}</td></tr>'
            for a in self.activity
        )
        expiring = "".join(f"<li>{e(w)}</li>" for w in self.expiry_words())
        tier = "".join(f"<p>{e(w)}</p>" for w in self.tier_words())
        lang = (self.locale or "en").split("_")[0]
        parts = [
            "<!DOCTYPE html>",
            f'<html lang="{e(lang)}"><head><meta charset="utf-8">',
            f"<title>{e(self.headline())}</title>",
            "<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}"
            "table{border-collapse:collapse;width:100%}td{padding:.2em .5em;"
            "border-bottom:1px solid #ccc}td.points{text-align:right}"
            "@media print{body{margin:0}}</style></head><body>",
            f"<h1>{e(self.headline())}</h1>",
            f'<p class="as-of">As of {e(self._day(self.as_of))}</p>',
            f'<p class="balance">Balance: <strong>{e(self.balance_words())}</strong></p>',
        ]
        if expiring:
            parts.append(f'<h2>Expiring</h2><ul class="expiring">{expiring}</ul>')
        if tier:
            parts.append(f'<h2>Tier</h2><div class="tier">{tier}</div>')
        if rows:
            parts.append(
                f"<h2>Recent activity ({e(self.timezone)} time)</h2>"
                f'<table class="activity"><tbody>{rows}</tbody></table>'
            )
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"

    def render(self, form: str) -> str:
        if form == "html":
            return self.html()
        if form == "text":
            return self.text()
        import json

        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"


def _last(gone: date) -> date:
    """The last day points can be spent: the day before they are gone."""
    return gone - timedelta(days=1)


def _signed(points: int, n: Callable[[int], str]) -> str:
    return f"+{n(points)}" if points > 0 else n(points)


# --- deciding the words --------------------------------------------------------------


def words(rows: list[HistoryRow], ruleset: Ruleset) -> str:
    """One operation's entries in plain words."""
    first = rows[0]
    program = ruleset.program

    def money(cents: int | None) -> str:
        if cents is None:
            return ""
        return formats.money(from_cents(cents), program.currency, program.locale)

    def reward_name(reward: str | None) -> str:
        found = ruleset.rewards.get(reward or "")
        return found.name if found is not None else (reward or "a reward")

    kind = first.kind
    if kind == "enroll":
        return "Welcome points"
    if kind == "earn":
        if first.amount_cents is not None:
            return f"Purchase of {money(first.amount_cents)}"
        rule = next((r for r in ruleset.rules if r.id == first.rule), None)
        if rule is not None and rule.on == "referral":
            return "Thank you for a referral"
        if rule is not None and rule.on == "birthday":
            return "Birthday points"
        what = (rule.description if rule is not None else None) or (first.rule or "an action")
        return f"Points for {what}"
    if kind == "redeem":
        return f"Spent on {reward_name(first.reward)}" if first.reward else "Points spent"
    if kind == "gift":
        return f"Free {reward_name(first.reward)}"
    if kind == "adjust":
        return f"Adjustment: {first.reason}" if first.reason else "Adjustment"
    if kind == "expire":
        return "Points expired"
    if kind == "transfer":
        moved = "Points received" if sum(r.points for r in rows) > 0 else "Points given"
        return f"{moved}: {first.reason}" if first.reason else moved
    if kind == "merge":
        # The keeper's side: the points of the other card, now on this account.
        return "Points from your other account joined"
    if kind == "refund":
        return f"Refund of {money(first.amount_cents)}" if first.amount_cents else "Refund"
    if kind == "tier":
        policy = ruleset.tiers
        name = first.rule or ""
        if policy is not None and any(level.id == name for level in policy.levels):
            name = policy.level(name).name
        return f"Tier now {name}"
    return kind


def tier_line(account: Account, ruleset: Ruleset, today: date) -> TierLine | None:
    status = standing(account, ruleset, today)
    policy = ruleset.tiers
    if status is None or policy is None:
        return None
    program = ruleset.program

    def need(value: Decimal | None) -> str | None:
        if value is None or value <= 0:
            return None
        if policy.metric == "spend":
            return f"spend {formats.money(value, program.currency, program.locale)} more"
        return f"earn {formats.number(int(value), program.locale)} more points"

    by = {"calendar_year": "this calendar year", "rolling_12_months": "within 12 months"}
    keep = need(status.to_keep)
    if keep and policy.window in by:
        keep += f" {by[policy.window]}"
    return TierLine(
        status.level.name,
        status.until,
        keep,
        None if status.next_level is None else status.next_level.name,
        need(status.to_next),
    )


def build(
    account: Account, history: list[HistoryRow], ruleset: Ruleset, now: datetime
) -> Statement:
    """The statement of `account` as of now, its recent activity from `history`
    (entries newest first, whole operations)."""
    today = today_of(ruleset, now)
    tz = zone(ruleset.program.timezone)
    held = holdings(account, today)
    expiring: dict[date, int] = {}
    for lot in account.lots:
        if lots.is_live(lot, today) and lot.expires_on is not None:
            expiring[lot.expires_on] = expiring.get(lot.expires_on, 0) + lot.remaining
    grouped: dict[int, list[HistoryRow]] = {}
    for row in history:
        grouped.setdefault(row.op_id, []).append(row)
    activity = [
        Activity(
            from_stamp(rows[0].occurred).astimezone(tz),
            rows[0].kind,
            words(sorted(rows, key=lambda r: r.id), ruleset),
            sum(r.points for r in rows),
        )
        for rows in grouped.values()
    ]
    # The latest operations recorded, newest first by when they happened: a sale
    # keyed in late, or a merged account's past, falls into its place in time.
    activity.sort(key=lambda a: a.at, reverse=True)
    program = ruleset.program
    return Statement(
        shop=program.name,
        currency=program.currency,
        locale=program.locale,
        timezone=program.timezone,
        customer_id=account.id,
        name=account.profile.name,
        as_of=today,
        balance=held.balance,
        available=held.available,
        pending=held.pending,
        expiring=sorted(expiring.items()),
        tier=tier_line(account, ruleset, today),
        activity=activity,
    )


def statement(
    store: Store, ruleset: Ruleset, customer_id: str, now: datetime, recent: int = RECENT
) -> Statement:
    account = store.accounts(ruleset, [customer_id]).get(customer_id)
    if account is None:
        raise unknown_customer(customer_id)
    if account.profile.merged_into is not None:  # its points and past are the keeper's
        from .engine.book import merged_away

        raise merged_away(customer_id, account.profile.merged_into)
    return build(account, _recent(store, customer_id, recent), ruleset, now)


def _recent(store: Store, customer_id: str, recent: int) -> list[HistoryRow]:
    """The entries of the customer's `recent` latest operations."""
    with store.snapshot():
        rows = queries.history(store.conn, customer_id, recent * 20, None)
    # A merge's debit on the duplicate is the other side of what the customer got:
    # their statement shows the points joined, not a sum of 0.
    rows = [r for r in rows if r.kind != "merge" or r.customer_id == customer_id]
    ops: list[int] = []
    for row in rows:
        if row.op_id not in ops:
            ops.append(row.op_id)
    keep = set(ops[:recent])
    return [row for row in rows if row.op_id in keep]


# --- one per customer, into a folder -------------------------------------------------

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_name(customer_id: str, form: str) -> str:
    """A file name for a customer's statement: the id where it is safe as a name,
    else made safe with a short digest, so two ids never share a file."""
    ext = {"text": "txt", "html": "html", "json": "json"}[form]
    safe = _SAFE.sub("_", customer_id)
    if safe != customer_id or safe.startswith("."):
        safe = f"{safe.lstrip('.')}-{hashlib.sha256(customer_id.encode()).hexdigest()[:8]}"
    return f"{safe}.{ext}"


def make_folder(folder: Path, what: str) -> None:
    """The folder output files go in, made if missing; one that cannot be is refused."""
    from .errors import InputMissing

    if folder.exists() and not folder.is_dir():
        raise BadArgument(f"{what} {folder} is a file; name a folder", field=what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputMissing(f"{what} {folder} cannot be made: {exc.strerror}", field=what) from None


def write_all(
    store: Store,
    ruleset: Ruleset,
    ids: list[str],
    now: datetime,
    form: str,
    folder: Path,
    protected: list[Path],
    recent: int = RECENT,
) -> list[Path]:
    """One statement per customer in `ids`, written whole into `folder` (created),
    never over the ledger or an input."""
    from .audience import accounts_of
    from .exports import OutputFile

    make_folder(folder, "--out")
    written: list[Path] = []
    for account in accounts_of(store, ruleset, ids):
        out = OutputFile(folder / file_name(account.id, form), "statement", protected)
        try:
            made = build(account, _recent(store, account.id, recent), ruleset, now)
            out.file.write(made.render(form))
        except BaseException:
            out.discard()
            raise
        out.commit()
        written.append(out.path)
    return written
