"""A profile change as a decision: contact details or the birthday. Kept as a
`profile` operation naming the fields that changed (not their values, which a
customer may later ask to have erased), with a digest of the profile after it
that `verify` checks the customers table against."""

from __future__ import annotations

from dataclasses import replace

from ..errors import BadArgument
from ..kinds import OpKind
from .awards import refuse_unknown
from .book import Book, Outcome
from .records import NewOperation
from .requests import ProfileRequest
from .results import ProfileResult


def update_profile(book: Book, request: ProfileRequest) -> ProfileResult:
    """Change a customer's contact details or birthday. A birthday's "set on"
    date (it needs 30 days' notice) is when the change was recorded, if that is
    later than the date it was given: backdating must not get round the notice."""
    if not request.changes:
        raise BadArgument("give at least one of --name, --email, --phone, --birthday")
    account = book.account(request.customer_id)
    if account is None:
        raise refuse_unknown(request.customer_id)
    at = request.at or book.now
    profile = account.profile
    changed = {k: v for k, v in request.changes.items() if getattr(profile, k) != v}
    if not changed:
        return ProfileResult(profile, ())
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
    return ProfileResult(after, tuple(sorted(changed)))
