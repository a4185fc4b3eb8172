"""Marketing consent as decisions: given or withdrawn per channel, each change a
`consent` operation (the channel in `category`, `given` or `withdrawn` in
`event`, where it came from in `reason`), so the ledger keeps the history that
proves it, chained like every other operation. A customer's consent on a
channel is their latest change on it; none means no consent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..errors import BadArgument, unknown_customer
from ..kinds import OpKind
from ..values import format_utc
from .book import Book, Outcome
from .records import NewOperation

CHANNELS = ("email", "sms")
GIVEN = "given"
WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class ConsentChange:
    channel: str  # one of CHANNELS
    given: bool


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One recorded change, as the ledger holds it."""

    channel: str
    given: bool
    at: datetime
    source: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "status": GIVEN if self.given else WITHDRAWN,
            "occurred_at": format_utc(self.at),
            "source": self.source,
        }


def changes(given: Iterable[str], withdrawn: Iterable[str]) -> tuple[ConsentChange, ...]:
    """--consent and --withdraw as changes, in channel order; a channel named twice,
    or both given and withdrawn, is refused."""
    out: dict[str, ConsentChange] = {}
    for names, flag, option in ((given, True, "--consent"), (withdrawn, False, "--withdraw")):
        for name in names:
            channel = name.strip().lower()
            if channel not in CHANNELS:
                raise BadArgument(
                    f"{option} {name[:40]!r} is not a channel; use one of {', '.join(CHANNELS)}",
                    field=option,
                )
            if channel in out:
                raise BadArgument(
                    f"channel '{channel}' is named twice in --consent/--withdraw", field=option
                )
            out[channel] = ConsentChange(channel, flag)
    return tuple(out[c] for c in CHANNELS if c in out)


def current(history: Sequence[ConsentRecord]) -> dict[str, ConsentRecord | None]:
    """Each channel's standing: its latest change (history in recorded order)."""
    latest: dict[str, ConsentRecord | None] = dict.fromkeys(CHANNELS)
    for record in history:
        latest[record.channel] = record
    return latest


def consents(latest: dict[str, ConsentRecord | None], channel: str) -> bool:
    record = latest.get(channel)
    return record is not None and record.given


def record(
    book: Book,
    customer_id: str,
    wanted: Sequence[ConsentChange],
    source: str | None,
    at: datetime,
) -> tuple[NewOperation, ...]:
    """One operation per change, appended to the book. Giving consent needs its
    source (a form, the till, the website): it is what proves it later."""
    if not wanted:
        return ()
    if source is None and any(c.given for c in wanted):
        raise BadArgument(
            "--consent needs --consent-source (where the customer agreed: "
            "'till form', 'website signup'...), kept as proof",
            field="--consent-source",
        )
    if book.account(customer_id) is None:
        raise unknown_customer(customer_id)
    ids = book.ids()
    ops = tuple(
        NewOperation(
            id=ids.op(),
            kind=OpKind.CONSENT,
            customer_id=customer_id,
            occurred_at=at,
            ruleset=book.ruleset.version,
            event=GIVEN if change.given else WITHDRAWN,
            category=change.channel,
            reason=source,
        )
        for change in wanted
    )
    book.apply(Outcome(ops))
    return ops
