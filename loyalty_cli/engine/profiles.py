"""A profile change as a decision: contact details, the birthday and marketing
consent. Kept as a `profile` operation naming the fields that changed (not
their values, which a customer may later ask to have erased), with a digest of
the profile after it that `verify` checks the customers table against; consent
changes as `consent` operations (engine.consent).

Erasure is the one sanctioned removal: an `erase` operation, with its reason,
records the profile with its personal fields (name, email, phone, birthday)
emptied and a new salt, so the digests earlier operations hold can no longer be
tested against a guess of what was there. The ledger's points and chain stay
as they were: they never held those fields."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from ..errors import BadArgument, Refused
from ..kinds import OpKind
from ..values import format_utc
from . import consent
from .awards import refuse_unknown
from .book import Book, Outcome
from .records import NewOperation
from .requests import EraseRequest, ProfileRequest
from .results import ProfileResult

PERSONAL = ("name", "email", "phone", "birthday")


def refuse_erased(customer_id: str, erased_at: datetime) -> Refused:
    return Refused(
        f"customer {customer_id!r} was erased on {format_utc(erased_at)}: their profile "
        "cannot be filled in again (enroll them under a new id if they come back)",
        code="erased",
        field="CUSTOMER_ID",
        customer_id=customer_id,
    )


def update_profile(
    book: Book, request: ProfileRequest, erased_at: datetime | None = None
) -> ProfileResult:
    """Change a customer's contact details, birthday or consent. A birthday's
    "set on" date (it needs 30 days' notice) is when the change was recorded, if
    that is later than the date it was given: backdating must not get round the
    notice. An erased customer's profile stays empty."""
    if not request.changes and not request.consent:
        raise BadArgument(
            "give at least one of --name, --email, --phone, --birthday, --consent, --withdraw"
        )
    account = book.account(request.customer_id)
    if account is None:
        raise refuse_unknown(request.customer_id)
    if erased_at is not None:
        raise refuse_erased(account.id, erased_at)
    at = request.at or book.now
    profile = account.profile
    changed = {k: v for k, v in request.changes.items() if getattr(profile, k) != v}
    after = profile
    if changed:
        after = replace(profile, **changed)  # type: ignore[arg-type]
        if changed.get("birthday") is not None:
            after = replace(after, birthday_set_at=max(at, book.now))
        op = NewOperation(
            id=book.ids().op(),
            kind=OpKind.PROFILE,
            customer_id=account.id,
            occurred_at=at,
            ruleset=book.ruleset.version,
            reason=", ".join(sorted(changed)),
            profile=after,
        )
        book.apply(Outcome((op,), (account.with_(profile=after),)))
    ops = consent.record(book, account.id, request.consent, request.consent_source, at)
    return ProfileResult(
        after,
        tuple(sorted(changed)),
        tuple(
            consent.ConsentRecord(str(op.category), op.event == consent.GIVEN, at, op.reason)
            for op in ops
        ),
    )


@dataclass(frozen=True)
class EraseResult:
    customer_id: str
    erased_at: datetime
    reason: str
    erased_fields: tuple[str, ...]  # those that held a value
    already_erased: bool = False
    purged: bool = False  # the file's free space and WAL hold none of it (set by the store)

    def to_json(self) -> dict[str, object]:
        return {
            "customer_id": self.customer_id,
            "occurred_at": format_utc(self.erased_at),
            "reason": self.reason,
            "erased_fields": list(self.erased_fields),
            "already_erased": self.already_erased,
            "purged": self.purged,
        }


def erase(
    book: Book, request: EraseRequest, erased: tuple[datetime, str] | None = None
) -> EraseResult:
    """Empty the customer's personal fields for good and replace their salt.
    `erased`: (when, why) of an earlier erasure, which makes this a no-op that
    reports it (a retried erasure request succeeds)."""
    # A merged duplicate too: its personal fields are still its own to erase.
    account = book.accounts.get(request.customer_id)
    if account is None:
        raise refuse_unknown(request.customer_id)
    if erased is not None:
        return EraseResult(account.id, erased[0], erased[1], (), already_erased=True)
    assert request.salt, "the caller gives a fresh salt"
    at = request.at or book.now
    profile = account.profile
    held = tuple(f for f in PERSONAL if getattr(profile, f) is not None)
    after = replace(
        profile,
        name=None,
        email=None,
        phone=None,
        birthday=None,
        birthday_set_at=None,
        salt=request.salt,
    )
    op = NewOperation(
        id=book.ids().op(),
        kind=OpKind.ERASE,
        customer_id=account.id,
        occurred_at=at,
        ruleset=book.ruleset.version,
        reason=request.reason,
        profile=after,
    )
    book.apply(Outcome((op,), (account.with_(profile=after),)))
    return EraseResult(account.id, at, request.reason, held)
