"""Tiers as of a moment, read side: the one way `tier`, `report tiers` and
`report customers` find a customer's tier.

A customer's tier is their standing (engine/tiering.py) on the moment's day,
from what the ledger recorded before the moment: never the last tier entry,
which is only as fresh as the last write or nightly run. Between a change that
time alone makes (a hold ending, a year turning, a manual floor running out)
and the nightly run that records it, every command still shows the new tier.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date

from .engine.tiering import standing
from .models import Ruleset
from .store import Store, queries
from .tiers import TierStatus

CHUNK = 1000  # customers read at a time: memory stays flat in the customer count


def standings(
    store: Store,
    ruleset: Ruleset,
    until: int,
    day: date,
    customers: Sequence[str] | None = None,
) -> Iterator[tuple[str, TierStatus]]:
    """(customer, standing on `day`) for `customers`, or for everyone enrolled
    before `until`, by id, from what was recorded before `until` (a stored time)."""
    ids = queries.enrolled_before(store.conn, until) if customers is None else list(customers)
    for start in range(0, len(ids), CHUNK):
        accounts = store.standings(ruleset, ids[start : start + CHUNK], until)
        for cid in ids[start : start + CHUNK]:
            account = accounts.get(cid)
            if account is None:
                continue
            status = standing(account, ruleset, day)
            if status is not None:
                yield cid, status
