"""Commands that reach customers: `notices` (who should be told what), and the
statements and messages built on them. Part of the CLI (cli.py imports this
module once, which registers the commands on its app); glue like every command.
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import cli
from .cli import DbOption, JsonOption, RulesOption, command, load, open_ledger, show


@command()
def notices(
    within: Annotated[
        int, typer.Option(help="Days ahead for points expiring and tiers ending.")
    ] = 14,
    birthday_within: Annotated[
        int, typer.Option("--birthday-within", help="Days ahead for birthdays (0: today).")
    ] = 7,
    lookback: Annotated[int, typer.Option(help="Days back for tier changes.")] = 30,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            help="Only this kind (repeat): points_expiring, tier_ending, tier_reached, "
            "tier_lost, reward_affordable, birthday, at_risk.",
        ),
    ] = None,
    pending: Annotated[
        bool, typer.Option("--pending", help="Only the notices not given yet.")
    ] = False,
    mark_given: Annotated[
        bool,
        typer.Option(
            "--mark-given",
            help="List the notices not given yet and mark them given, in one transaction: "
            "a later run lists them no more.",
        ),
    ] = False,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """List who should be told what, and why: points expiring, tiers ending, reached
    or lost, rewards now affordable, birthdays coming, customers turning at risk.

    Example (crontab): 0 7 * * * loyalty notices --mark-given --json > /srv/notices/today.json
    """
    from .notices import Window, find, kinds_of

    ruleset = load(rules)
    window = Window(within, birthday_within, lookback, kinds_of(kind or ()))
    with open_ledger(db, create=mark_given) as store:
        result = find(
            store, ruleset, window, cli.now(), pending_only=pending, mark_given=mark_given
        )
    show(result.to_json(), "notices", as_json, ruleset.program.locale)
