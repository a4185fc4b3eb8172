"""A customer in one place, read side: `customer show` (profile, consent, tier,
balance) and `customer export` (everything the ledger holds about them, for a
data-access request). No writes; the write side (consent, erasure) is in
operations.py over engine/profiles.py and engine/consent.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from . import accounts
from .clock import from_stamp, iso
from .engine import consent
from .engine.consent import ConsentRecord
from .engine.lifecycle import today_of
from .engine.results import contact
from .errors import unknown_customer
from .models import Ruleset
from .store import Store, queries
from .values import format_utc

# What an erased customer's record still holds, as `customer export` and the
# README say it.
KEPT_AFTER_ERASURE = (
    "the customer id, the enrollment time and referrer, every points entry (amounts, "
    "times, rules, reasons typed by staff), purchase amounts, tiers, consent history, "
    "the erasure itself with its reason, and salted digests that no longer match anything"
)


@dataclass(frozen=True)
class CustomerView:
    profile: dict[str, object]
    erased: dict[str, object] | None
    consent: dict[str, ConsentRecord | None]
    tier: dict[str, object] | None
    balance: dict[str, object]
    # `loyalty merge`: the account this id was folded into, and those folded into it
    merged_into: dict[str, object] | None = None
    merged: list[dict[str, object]] = field(default_factory=list)
    # export only
    consent_history: list[ConsentRecord] = field(default_factory=list)
    profile_history: list[dict[str, object]] = field(default_factory=list)
    entries: list[dict[str, object]] | None = None
    exported_at: datetime | None = None
    timezone: str = "UTC"  # the shop's: the day of each time, for people

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            **self.profile,
            "erased": self.erased,
            "merged_into": self.merged_into,
            "merged": self.merged,
            **{
                f"{channel}_consent": None if record is None else record.to_json()
                for channel, record in self.consent.items()
            },
            "tier": None if self.tier is None else self.tier["tier"],
            "tier_status": self.tier,
            **self.balance,
            "timezone": self.timezone,
        }
        if self.entries is not None:
            assert self.exported_at is not None
            out = {
                "exported_at": format_utc(self.exported_at),
                **out,
                "consent_history": [r.to_json() for r in self.consent_history],
                "profile_history": self.profile_history,
                "entries": self.entries,
                "kept_after_erasure": KEPT_AFTER_ERASURE,
            }
        return out


def _consent_record(event: queries.ProfileEvent) -> ConsentRecord:
    return ConsentRecord(
        str(event.category), event.event == consent.GIVEN, from_stamp(event.occurred), event.reason
    )


def _profile_change(event: queries.ProfileEvent) -> dict[str, object]:
    """An enroll, profile or erase operation as the record lists it: when, and
    which fields (the ledger keeps no earlier values)."""
    fields: list[str] = []
    if event.kind == "profile" and event.reason:
        fields = event.reason.split(", ")
    return {
        "kind": event.kind,
        "occurred_at": iso(event.occurred),
        "recorded_at": iso(event.recorded),
        "fields": fields,
        "reason": event.reason if event.kind == "erase" else None,
    }


def view(
    store: Store, ruleset: Ruleset, customer_id: str, now: datetime, *, export: bool = False
) -> CustomerView:
    """What `customer show` (or, `export`, `customer export`) prints."""
    from .engine import tiering

    kinds = ["consent", "erase"] + (["enroll", "profile"] if export else [])
    account = store.accounts(ruleset, [customer_id]).get(customer_id)
    if account is None:
        raise unknown_customer(customer_id)
    with store.snapshot():
        events = queries.profile_events(store.conn, customer_id, kinds)
        into = queries.merged_into(store.conn, customer_id)
        folded = queries.duplicates_of(store.conn, customer_id)
    held = accounts.balance(store, customer_id, now)
    entries = None
    if export:
        entries = accounts.history(store, customer_id, now).entries[::-1]  # oldest first
    p = account.profile
    profile: dict[str, object] = {
        "customer_id": p.id,
        **contact(p),
        "referred_by": p.referred_by,
        "enrollment": {"occurred_at": format_utc(p.enrolled_at)},
    }
    erased: dict[str, object] | None = None
    for e in events:
        if e.kind == "erase":
            erased = {"occurred_at": iso(e.occurred), "reason": e.reason}
    history = [_consent_record(e) for e in events if e.kind == "consent"]
    tier = None
    if ruleset.tiers is not None and into is None:  # a merged duplicate has none
        tier = tiering.tier_of(account, ruleset, today_of(ruleset, now)).to_json()
        del tier["customer_id"]
    balance = {k: v for k, v in held.to_json().items() if k not in ("customer_id", "name")}
    return CustomerView(
        profile=profile,
        erased=erased,
        consent=consent.current(history),
        tier=tier,
        balance=balance,
        consent_history=history if export else [],
        profile_history=[_profile_change(e) for e in events if e.kind != "consent"]
        if export
        else [],
        entries=entries,
        exported_at=now if export else None,
        merged_into=None if into is None else _merge_json(*into),
        merged=[_merge_json(*each) for each in folded],
        timezone=ruleset.program.timezone,
    )


def _merge_json(customer_id: str, occurred: int, reason: str) -> dict[str, object]:
    return {"customer_id": customer_id, "occurred_at": iso(occurred), "reason": reason}
