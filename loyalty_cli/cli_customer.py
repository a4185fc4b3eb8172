"""`loyalty customer ...`: a customer in one place, and their data rights (show,
export, erase). A command group of the CLI (cli.py registers it with one line),
glue like every command: parse, call the use case, hand the result to the output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from . import cli
from .cli import (
    Command,
    CustomerArg,
    DbOption,
    JsonOption,
    LoyaltyCommand,
    RulesOption,
    _at,
    _write_json,
    load,
    open_ledger,
    show,
)
from .cli_selection import (
    BadgeOption,
    ClvBandOption,
    ExpiringOption,
    InactiveOption,
    SegmentOption,
    TierOption,
    criteria,
)
from .errors import EXIT_CODES_HELP, BadArgument
from .values import check_customer_id

customer_app = typer.Typer(
    help="A customer in one place: profile, consent, tier and balance; their data rights.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _command(name: str) -> Callable[[Command], Command]:
    return customer_app.command(name, cls=LoyaltyCommand, epilog=EXIT_CODES_HELP)


@_command("show")
def customer_show(
    customer_id: CustomerArg,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Show a customer's profile, marketing consent, tier and balance together.

    Example: loyalty customer show C1001 --json | jq .email_consent.status
    """
    from .customers import view

    ruleset = load(rules)
    with open_ledger(db, create=False) as store:
        result = view(store, ruleset, check_customer_id(customer_id), cli.now())
    show(result.to_json(), "customer", as_json, ruleset.program.locale)


@_command("export")
def customer_export(
    customer_id: CustomerArg,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: Annotated[
        bool | None, typer.Option("--json/--no-json", help="Accepted; the export is JSON.")
    ] = None,
) -> None:
    """Print everything the ledger holds about a customer as one JSON document
    (for a data-access request): profile, consent and its history, profile changes,
    tier, balance and every points entry.

    Example: loyalty customer export C1001 > C1001.json
    """
    from .customers import view

    ruleset = load(rules)
    with open_ledger(db, create=False) as store:
        result = view(store, ruleset, check_customer_id(customer_id), cli.now(), export=True)
    _write_json(result.to_json())


@_command("erase")
def customer_erase(
    customer_id: CustomerArg,
    reason: Annotated[
        str | None,
        typer.Option(
            help="Why (required; kept in the ledger, so name the request, not the person)."
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="When it was decided, ISO 8601; naive times are shop-local. Default: now."
        ),
    ] = None,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Erase a customer's personal fields (name, email, phone, birthday) for good.
    Their points, history and the ledger's tamper evidence stay, and verify still
    passes; the file is rewritten so no copy of the values stays in it.

    Example: loyalty customer erase C1001 --reason "erasure request by email, ticket 4411"
    """
    from .operations import EraseRequest, erase

    text = cli._reason(reason, "erase")
    ruleset = load(rules)
    request = EraseRequest(check_customer_id(customer_id), text, _at(at, ruleset))
    with open_ledger(db, create=False) as store:
        result = erase(store, ruleset, request, cli.now())
    show(result.to_json(), "erase", as_json, ruleset.program.locale)


@_command("list")
def customer_list(
    channel: Annotated[
        str, typer.Option(help="email or sms: whose address and consent count.")
    ] = "email",
    transactional: Annotated[
        bool,
        typer.Option(
            "--transactional",
            help="Not marketing (a statement, an expiry notice the terms promise): "
            "list customers without consent on the channel too.",
        ),
    ] = False,
    segment: SegmentOption = None,
    tier: TierOption = None,
    expiring_within: ExpiringOption = None,
    inactive_since: InactiveOption = None,
    clv_band: ClvBandOption = None,
    badge: BadgeOption = None,
    as_csv: Annotated[
        bool,
        typer.Option(
            "--csv", help="CSV with the column names mail tools import (Email Address...)."
        ),
    ] = False,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """List customers to reach on a channel, with their contact fields: only those
    who consented on it, unless --transactional.

    Example: loyalty customer list --expiring-within 14 --csv > expiring.csv
    """
    import sys

    from .audience import HEADER, select

    if as_csv and as_json:
        raise BadArgument("--csv and --json are two outputs; give one")
    ruleset = load(rules)
    selection = criteria(
        segment, tier, expiring_within, inactive_since, clv_band, badge,
        channel=channel, transactional=transactional,
    )  # fmt: skip
    with open_ledger(db, create=False) as store:
        audience = select(store, ruleset, selection, cli.now())
    if as_csv:
        from .exports import write_csv

        write_csv(HEADER, [m.row() for m in audience.members], sys.stdout)
        return
    show(audience.to_json(), "audience", as_json, ruleset.program.locale)
