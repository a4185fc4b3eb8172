"""The customer selection options, spelt once for every command that picks
customers (`customer list`, `statement --all`, `messages --campaign`): each
command lists them in its signature (typer reads options from it) with these
types, and turns them into an audience.Criteria with `criteria`, the one place
they are parsed and checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .cli import _code

if TYPE_CHECKING:  # audience loads when a selection is made, not at start-up
    from .audience import Criteria

SegmentOption = Annotated[
    str | None, typer.Option(help="Only this RFM segment (as `report segments`).")
]
TierOption = Annotated[str | None, typer.Option(help="Only customers in this tier.")]
ExpiringOption = Annotated[
    int | None,
    typer.Option(
        "--expiring-within",
        metavar="DAYS",
        help="Only customers with points that expire within DAYS days.",
    ),
]
InactiveOption = Annotated[
    str | None,
    typer.Option(
        "--inactive-since",
        metavar="YYYY-MM-DD",
        help="Only customers with no purchase (nor enrollment) on or after this day.",
    ),
]
ClvBandOption = Annotated[
    str | None,
    typer.Option(
        "--clv-band",
        metavar="BAND",
        help="Only this fifth of the customers by predicted lifetime value (as `report clv`): "
        "top, high, middle, low, bottom.",
    ),
]
BadgeOption = Annotated[str | None, typer.Option(help="Only customers holding this games badge.")]


def criteria(
    segment: str | None,
    tier: str | None,
    expiring_within: int | None,
    inactive_since: str | None,
    clv_band: str | None,
    badge: str | None,
    *,
    channel: str = "email",
    transactional: bool = False,
) -> Criteria:
    """The selection the options name (checked against the rules when it is used)."""
    from .audience import Criteria
    from .reports import segment_name
    from .values import parse_date

    return Criteria(
        channel=channel.strip().lower(),
        transactional=transactional,
        segment=None if segment is None else segment_name(segment),
        tier=_code(tier, "--tier"),
        expiring_within=expiring_within,
        inactive_since=None
        if inactive_since is None
        else parse_date(inactive_since, what="--inactive-since"),
        clv_band=None if clv_band is None else clv_band.strip().lower(),
        badge=_code(badge, "--badge"),
    )
