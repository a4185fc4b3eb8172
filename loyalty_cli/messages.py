"""`loyalty messages`: the owner's template rendered for each customer a message
is due to, as a mail-merge CSV, as .eml files, or sent through the shop's SMTP
server, never twice.

Who a message is due to: the customers with a pending notice of the kinds asked
for (one message per notice), or a campaign's selection (one per customer per
campaign). Only those with an address, and, unless the message is
transactional, only those who consented to email. Each message has a key
(`TEMPLATE/NOTICE_KEY` or `TEMPLATE/CAMPAIGN/CUSTOMER`); a sent one is
recorded under it in the ledger's `messages_sent` table as soon as the server
took it, and a notice it gave is marked given, so a retry or a second run sends
nothing twice. A recipient the server refuses is reported (not kept: the
server's reply names the address) and the run goes on; a later run tries it
again, after the owner corrected the address, say. Its Message-ID is derived
from the key, so even the one message that could go twice (the server took it and the machine died
before the record was written) reaches the customer's mail client as the same
message.

Everything is rendered before anything is sent: a template error stops the run
with nothing sent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from .account import Account
from .audience import Criteria, accounts_of, select, split_name
from .clock import stamp
from .engine import consent
from .errors import BadArgument
from .models import Ruleset
from .notices import Notice, Window, find
from .statements import build
from .store import Store, queries
from .templates import Template

MAX_RATE = 6000  # messages a minute
MAX_COUNT = 100_000
_ADDRESS = re.compile(r"[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+\.[^@\s<>(),;:\"\[\]]+")
_KEY_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

CSV_HEADER = (
    "Email Address",
    "First Name",
    "Last Name",
    "Subject",
    "Body",
    "Customer ID",
    "Message Key",
)


@dataclass(frozen=True)
class Settings:
    template: Path
    sender: str  # the From address
    notice_kinds: tuple[str, ...] = ()  # one message per pending notice of these kinds
    campaign: str | None = None  # else one per customer of the selection, once per campaign
    criteria: Criteria = field(default_factory=Criteria)
    window: Window = field(default_factory=Window)
    transactional: bool = False
    unsubscribe: str | None = None  # a URL, else replies to the sender unsubscribe
    limit: int | None = None  # at most this many messages this run

    @property
    def name(self) -> str:
        return self.template.name.split(".")[0]


@dataclass(frozen=True)
class Draft:
    key: str
    customer_id: str
    name: str | None
    to: str
    subject: str
    body: str
    notice: Notice | None

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "customer_id": self.customer_id,
            "to": self.to,
            "subject": self.subject,
        }


@dataclass
class Run:
    drafts: list[Draft]
    already_sent: int = 0  # due, but sent before
    no_address: int = 0
    no_consent: int = 0
    sent: list[Draft] = field(default_factory=list)
    refused: list[tuple[Draft, int | None, str]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    stopped: str | None = None  # why a send stopped early

    def to_json(self, mode: str) -> dict[str, object]:
        return {
            "mode": mode,
            "due": len(self.drafts),
            "already_sent": self.already_sent,
            "no_address": self.no_address,
            "no_consent": self.no_consent,
            "sent": len(self.sent),
            "refused": [
                {
                    "key": d.key,
                    "customer_id": d.customer_id,
                    "to": d.to,
                    "reply": code,
                    "message": words,
                }
                for d, code, words in self.refused
            ],
            "files": self.written,
            "stopped": self.stopped,
            "rows": [d.to_json() for d in self.drafts],
        }


def check(settings: Settings) -> None:
    if not _ADDRESS.fullmatch(settings.sender):
        raise BadArgument(f"--from {settings.sender[:60]!r} is not an email address")
    if bool(settings.notice_kinds) == (settings.campaign is not None):
        raise BadArgument("give --notice KIND (repeat) or --campaign NAME, one of the two")
    if settings.notice_kinds and settings.criteria.selects():
        raise BadArgument(
            "the selection options (--segment, --tier, --expiring-within, --inactive-since, "
            "--clv-band, --badge) go with --campaign; --notice takes who the notices name"
        )
    if settings.campaign is not None and not _KEY_WORD.fullmatch(settings.campaign):
        raise BadArgument(
            "--campaign is a short name: letters, digits, '.', '_', '-' (up to 64)",
            field="--campaign",
        )
    if not _KEY_WORD.fullmatch(settings.name):
        raise BadArgument(
            f"template file name {settings.template.name!r} must start with a short name "
            "(letters, digits, '_', '-'): it names the messages in the ledger"
        )
    if settings.limit is not None and not 1 <= settings.limit <= MAX_COUNT:
        raise BadArgument(f"--limit must be from 1 to {MAX_COUNT:,}", field="--limit")


def _unsubscribe_line(settings: Settings, shop: str) -> str:
    how = (
        f"follow {settings.unsubscribe}"
        if settings.unsubscribe
        else f"reply to {settings.sender} with the word UNSUBSCRIBE"
    )
    return f"You receive this because you agreed to hear from {shop} by email. To stop, {how}."


def context(
    account: Account, ruleset: Ruleset, now: datetime, notice: Notice | None
) -> dict[str, Any]:
    """What a template may use: the customer, their statement's figures, the notice."""
    customer_id = account.id
    made = build(account, [], ruleset, now)
    figures = made.to_json()
    first, last = split_name(account.profile.name)
    return {
        "shop": {"name": ruleset.program.name, "currency": ruleset.program.currency},
        "customer": {
            "id": customer_id,
            "name": account.profile.name,
            "first_name": first,
            "last_name": last,
            "email": account.profile.email,
        },
        "balance": figures["balance"],
        "available": figures["available"],
        "pending": figures["pending"],
        "expiring": figures["expiring"],
        "tier": figures["tier_status"],
        "notice": None if notice is None else notice.to_json(),
        "today": made.as_of,
    }


def prepare(store: Store, ruleset: Ruleset, settings: Settings, now: datetime) -> Run:
    """The messages due, rendered, and what was left out. Nothing is written."""
    check(settings)
    template = Template(settings.template, ruleset.program.locale, ruleset.program.currency)
    due: list[tuple[str, str, Notice | None]] = []  # (key, customer, notice)
    no_address = no_consent = 0
    if settings.campaign is not None:
        criteria = replace(settings.criteria, channel="email", transactional=settings.transactional)
        audience = select(store, ruleset, criteria, now)
        no_address, no_consent = audience.no_contact, audience.no_consent
        due = [
            (f"{settings.name}/{settings.campaign}/{m.customer_id}", m.customer_id, None)
            for m in audience.members
        ]
    else:
        window = Window(
            settings.window.within,
            settings.window.birthday_within,
            settings.window.lookback,
            settings.notice_kinds,
        )
        # Every current notice, given or not: a message is due once per notice
        # (by its own key), whether or not `notices --mark-given` listed it.
        pending = find(store, ruleset, window, now).notices
        with store.snapshot():
            given = queries.consent_by_customer(store.conn, "email")
        people = {
            a.id: a for a in accounts_of(store, ruleset, sorted({n.customer_id for n in pending}))
        }
        for notice in pending:
            email = people[notice.customer_id].profile.email
            if not email:
                no_address += 1
            elif not settings.transactional and (
                given.get(notice.customer_id, ("",))[0] != consent.GIVEN
            ):
                no_consent += 1
            else:
                due.append((f"{settings.name}/{notice.key}", notice.customer_id, notice))
    with store.snapshot():
        done = queries.messages_sent(store.conn, [key for key, _, _ in due])
    fresh = [d for d in due if d[0] not in done]
    if settings.limit is not None:
        fresh = fresh[: settings.limit]
    footer = None if settings.transactional else _unsubscribe_line(settings, ruleset.program.name)
    drafts = []
    people = {a.id: a for a in accounts_of(store, ruleset, sorted({cid for _, cid, _ in fresh}))}
    for key, cid, about in fresh:
        account = people[cid]
        rendered = template.render(context(account, ruleset, now, about), cid)
        body = rendered.body.rstrip("\n") + "\n"
        if footer:
            body += f"\n-- \n{footer}\n"
        email = account.profile.email
        assert email is not None
        drafts.append(Draft(key, cid, account.profile.name, email, rendered.subject, body, about))
    return Run(drafts, len(due) - len(fresh), no_address, no_consent)


def message_id(key: str, sender: str) -> str:
    """The same message always has the same Message-ID: a mail client shows a
    message sent twice (after a crash between sending and recording) once."""
    domain = sender.rpartition("@")[2]
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def mail(draft: Draft, settings: Settings, shop: str, now: datetime) -> EmailMessage:
    """The message as it goes out: names and subject in any script (RFC 2047 where
    needed), the body in UTF-8, and List-Unsubscribe for marketing."""
    msg = EmailMessage()
    msg["From"] = formataddr((" ".join(shop.split()), settings.sender))
    name = " ".join((draft.name or "").split())
    msg["To"] = formataddr((name, draft.to)) if name else draft.to
    msg["Subject"] = draft.subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(draft.key, settings.sender)
    msg["X-Loyalty-Key"] = draft.key
    if not settings.transactional:
        target = settings.unsubscribe or f"mailto:{settings.sender}?subject=unsubscribe"
        msg["List-Unsubscribe"] = f"<{target}>"
    msg.set_content(draft.body, charset="utf-8")
    return msg


def _valid(draft: Draft) -> bool:
    return bool(_ADDRESS.fullmatch(draft.to))


def send(
    store: Store,
    run: Run,
    settings: Settings,
    shop: str,
    now: Callable[[], datetime],
    connect: Callable[[], Any],
    pause: Callable[[], None],
) -> None:
    """Send the drafts one by one, recording each outcome as it comes (its own
    small transaction), pausing between messages for the rate limit. A server
    that goes away stops the run: `run.stopped` says why."""
    from .mailer import Unavailable

    if not run.drafts:
        return
    try:
        with connect() as connection:
            for n, draft in enumerate(run.drafts):
                if n:
                    pause()
                if not _valid(draft):
                    run.refused.append((draft, None, "not an email address"))
                    continue
                outcome = connection.send(mail(draft, settings, shop, now()))
                if outcome.sent:
                    _record(store, draft, settings, now())
                    run.sent.append(draft)
                else:
                    run.refused.append((draft, outcome.reply, outcome.words))
    except Unavailable as exc:
        run.stopped = exc.message


def _record(store: Store, draft: Draft, settings: Settings, at: datetime) -> None:
    """A sent message, in its own transaction: recorded as soon as the server took it."""
    with store.transaction():
        row = (
            draft.key,
            draft.customer_id,
            settings.name,
            stamp(at),
            message_id(draft.key, settings.sender),
        )
        notice = None
        if draft.notice is not None:
            notice = (draft.notice.key, draft.customer_id, draft.notice.kind, stamp(at), "message")
        queries.record_sent(store.conn, row, notice)


def write_csv(run: Run, out: Any) -> None:
    from .exports import write_csv as csv

    rows = []
    for d in run.drafts:
        first, last = split_name(d.name)
        rows.append((d.to, first, last, d.subject, d.body, d.customer_id, d.key))
    csv(CSV_HEADER, rows, out)


def write_eml(
    run: Run, settings: Settings, shop: str, now: datetime, folder: Path, protected: Sequence[Path]
) -> None:
    """One .eml file per message, named by its key, written whole."""
    from .exports import OutputFile
    from .statements import file_name, make_folder

    make_folder(folder, "--eml")
    for draft in run.drafts:
        name = file_name(draft.key.replace("/", "_"), "text").removesuffix(".txt") + ".eml"
        out = OutputFile(folder / name, "message", protected)
        out.file.write(mail(draft, settings, shop, now).as_string())
        out.commit()
        run.written.append(str(out.path))
