"""Lists for the shop's mail tool: a selection of customers (an RFM segment, a
tier, points expiring soon, no purchase since a day, a CLV band, a badge) with
their contact fields,
only those who agreed to hear from the shop on the channel unless the message is
transactional (a statement, a points-expiry warning the programme's terms
promise).

Read side only. The accounts are read a thousand at a time, so memory stays
flat however many customers a file has; the selection is decided per account
from what was read, in pure code (`Criteria.admits`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

from . import lots
from .account import Account, balance
from .clock import day_start, from_stamp, stamp, zone
from .engine import consent
from .engine.lifecycle import today_of
from .engine.tiering import standing
from .errors import BadArgument, did_you_mean
from .models import Ruleset
from .store import Store, queries

CHUNK = 1000
MAX_DAYS = 3660  # ten years: --expiring-within beyond it is a typo

# The header row: the names common mail tools (Mailchimp, Brevo, MailerLite,
# Sendinblue...) map to their own contact fields on import, then the programme's.
HEADER = (
    "Email Address",
    "First Name",
    "Last Name",
    "Phone Number",
    "Customer ID",
    "Tier",
    "Points Balance",
    "Points Expiring",
    "Expiry Date",
    "Last Purchase",
)


def split_name(name: str | None) -> tuple[str | None, str | None]:
    """A full name as (first, last): the first word greets ("Dear Ada"); the rest
    is the last name. One word is a first name."""
    if not name or not name.strip():
        return None, None
    first, _, rest = name.strip().partition(" ")
    return first, rest.strip() or None


@dataclass(frozen=True)
class Criteria:
    channel: str = "email"  # email or sms: whose contact and consent count
    transactional: bool = False  # not marketing: consent is not asked for
    segment: str | None = None  # an RFM segment's key (reports.segment_name)
    tier: str | None = None
    expiring_within: int | None = None  # days: customers with points gone by then
    inactive_since: date | None = None  # no purchase on or after this shop day
    clv_band: str | None = None  # lifetime.CLV_BANDS, as `report clv` values them today
    badge: str | None = None  # a games badge the customer holds

    def check(self, ruleset: Ruleset) -> None:
        if self.channel not in consent.CHANNELS:
            raise BadArgument(
                f"--channel '{self.channel}' is not a channel; use one of "
                f"{', '.join(consent.CHANNELS)}",
                field="--channel",
            )
        if self.tier is not None:
            if ruleset.tiers is None:
                raise BadArgument(f"--tier: the rules in {ruleset.source} have no tiers")
            known = [level.id for level in ruleset.tiers.levels]
            if self.tier not in known:
                raise BadArgument(
                    f"--tier '{self.tier}' is not a tier{did_you_mean(self.tier, known)}; "
                    f"tiers: {', '.join(known)}",
                    field="--tier",
                )
        if self.clv_band is not None:
            from .lifetime import CLV_BANDS  # the report's module, for this option only

            if self.clv_band not in CLV_BANDS:
                raise BadArgument(
                    f"--clv-band '{self.clv_band}' is not a band"
                    f"{did_you_mean(self.clv_band, CLV_BANDS)}; bands: {', '.join(CLV_BANDS)}",
                    field="--clv-band",
                )
        if self.badge is not None:
            games = ruleset.games
            known = [] if games is None else [b.id for b in games.badges]
            if not known:
                raise BadArgument(
                    f"--badge: the rules in {ruleset.source} have no badges", field="--badge"
                )
            if self.badge not in known:
                raise BadArgument(
                    f"--badge '{self.badge}' is not a badge{did_you_mean(self.badge, known)}; "
                    f"badges: {', '.join(known)}",
                    field="--badge",
                )
        if self.expiring_within is not None and not 1 <= self.expiring_within <= MAX_DAYS:
            raise BadArgument(
                f"--expiring-within {self.expiring_within} must be from 1 to {MAX_DAYS} days",
                field="--expiring-within",
            )

    def selects(self) -> bool:
        """Whether any selection option was given (no option: every customer)."""
        chosen = (self.segment, self.tier, self.expiring_within, self.inactive_since)
        return any(c is not None for c in (*chosen, self.clv_band, self.badge))

    def to_json(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "transactional": self.transactional,
            "segment": self.segment,
            "tier": self.tier,
            "expiring_within": self.expiring_within,
            "inactive_since": None if self.inactive_since is None else str(self.inactive_since),
            "clv_band": self.clv_band,
            "badge": self.badge,
        }


@dataclass(frozen=True)
class Member:
    """A customer on the list, with the figures a message would quote."""

    customer_id: str
    name: str | None
    email: str | None
    phone: str | None
    tier: str | None
    balance: int
    expiring_points: int
    next_expiry: date | None
    last_purchase: date | None

    def to_json(self) -> dict[str, object]:
        first, last = split_name(self.name)
        return {
            "customer_id": self.customer_id,
            "name": self.name,
            "first_name": first,
            "last_name": last,
            "email": self.email,
            "phone": self.phone,
            "tier": self.tier,
            "balance": self.balance,
            "expiring_points": self.expiring_points,
            "next_expiry": None if self.next_expiry is None else self.next_expiry.isoformat(),
            "last_purchase": None if self.last_purchase is None else self.last_purchase.isoformat(),
        }

    def row(self) -> tuple[object, ...]:
        doc = self.to_json()
        return (
            self.email,
            doc["first_name"],
            doc["last_name"],
            self.phone,
            self.customer_id,
            self.tier,
            self.balance,
            self.expiring_points,
            doc["next_expiry"],
            doc["last_purchase"],
        )


@dataclass(frozen=True)
class Audience:
    criteria: Criteria
    as_of: date
    members: list[Member]
    selected: int  # customers the selection matched, with or without contact and consent
    no_contact: int  # of those, without an address on the channel (erased ones among them)
    no_consent: int  # of those, with an address but no consent on the channel

    def to_json(self) -> dict[str, object]:
        return {
            **self.criteria.to_json(),
            "as_of": self.as_of.isoformat(),
            "selected": self.selected,
            "no_contact": self.no_contact,
            "no_consent": self.no_consent,
            "customers": len(self.members),
            "rows": [m.to_json() for m in self.members],
        }


def accounts_of(store: Store, ruleset: Ruleset, ids: list[str]) -> Iterator[Account]:
    """The accounts of `ids`, read CHUNK at a time."""
    for start in range(0, len(ids), CHUNK):
        found = store.accounts(ruleset, ids[start : start + CHUNK])
        yield from (found[cid] for cid in ids[start : start + CHUNK] if cid in found)


def _matching(
    store: Store, ruleset: Ruleset, criteria: Criteria, now: datetime
) -> tuple[list[Member], date]:
    """Every customer the filters pick (contact and consent aside), as members."""
    criteria.check(ruleset)
    today = today_of(ruleset, now)
    tz = zone(ruleset.program.timezone)
    banded = None
    if criteria.clv_band is not None:  # numpy and scipy load for this selection only
        banded = clv_band_members(store, ruleset, criteria.clv_band, today)
    with store.snapshot():
        ids = queries.customer_ids(store.conn)
        if banded is not None:
            ids = [cid for cid in ids if cid in banded]
        if criteria.segment is not None:
            wanted = segment_members(store, ruleset, criteria, today)
            ids = [cid for cid in ids if cid in wanted]
        bought = queries.last_purchases(store.conn)
    since = None
    if criteria.inactive_since is not None:
        since = stamp(day_start(criteria.inactive_since, tz))
    found: list[Member] = []
    for account in accounts_of(store, ruleset, ids):
        profile = account.profile
        last = bought.get(account.id)
        if since is not None and (
            (last is not None and last >= since) or stamp(profile.enrolled_at) >= since
        ):
            continue
        if criteria.badge is not None and (
            account.play is None or criteria.badge not in account.play.badges
        ):
            continue
        status = standing(account, ruleset, today)
        tier = None if status is None else status.level.id
        if criteria.tier is not None and tier != criteria.tier:
            continue
        horizon = criteria.expiring_within or 30
        expiring = lots.split(account.lots, today, horizon).expiring
        if criteria.expiring_within is not None and not expiring:
            continue
        found.append(
            Member(
                account.id,
                profile.name,
                profile.email,
                profile.phone,
                tier,
                balance(account, today),
                sum(points for _, points in expiring),
                expiring[0][0] if expiring else None,
                None if last is None else today_of(ruleset, from_stamp(last)),
            )
        )
    return found, today


def select(store: Store, ruleset: Ruleset, criteria: Criteria, now: datetime) -> Audience:
    """The customers the criteria pick, with contact and consent on the channel."""
    found, today = _matching(store, ruleset, criteria, now)
    with store.snapshot():
        given = queries.consent_by_customer(store.conn, criteria.channel)
    members: list[Member] = []
    no_contact = no_consent = 0
    for member in found:
        address = member.email if criteria.channel == "email" else member.phone
        if not address:
            no_contact += 1
        elif (
            not criteria.transactional and given.get(member.customer_id, ("",))[0] != consent.GIVEN
        ):
            no_consent += 1
        else:
            members.append(member)
    return Audience(criteria, today, members, len(found), no_contact, no_consent)


def select_ids(store: Store, ruleset: Ruleset, criteria: Criteria, now: datetime) -> list[str]:
    """The customers the criteria pick, contact and consent aside (a statement is
    written for each, reachable or not)."""
    return [m.customer_id for m in _matching(store, ruleset, criteria, now)[0]]


def clv_band_members(store: Store, ruleset: Ruleset, band: str, today: date) -> set[str]:
    """The customers of a CLV band as `report clv` values them today (lifetime.py,
    imported here only: the models' numpy and scipy load for this selection alone)."""
    from . import lifetime, reports

    shop = reports.Shop.of(ruleset, None)
    return lifetime.band_members(store, shop, reports.period(store, shop.timezone, today), band)


def segment_members(store: Store, ruleset: Ruleset, criteria: Criteria, today: date) -> set[str]:
    """The customers of an RFM segment as `report segments --segment` scores them today."""
    from . import reports

    assert criteria.segment is not None
    shop = reports.Shop.of(ruleset, None)
    span = reports.period(store, shop.timezone, today)
    found = reports.segments(store, shop, span, criteria.segment)
    return {row.customer_id for row in found.scored}
