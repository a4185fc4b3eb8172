"""Commands that reach customers: `notices` (who should be told what), and the
statements and messages built on them. Part of the CLI (cli.py imports this
module once, which registers the commands on its app); glue like every command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import cli
from .cli import DbOption, JsonOption, RulesOption, command, load, open_ledger, show
from .errors import BadArgument
from .values import check_customer_id


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


@command()
def statement(
    customer_id: Annotated[
        str | None,
        typer.Argument(metavar="[CUSTOMER_ID]", help="The customer; leave out with --all."),
    ] = None,
    form: Annotated[str, typer.Option("--format", help="text, html (printable) or json.")] = "text",
    recent: Annotated[
        int, typer.Option(help="How many recent operations the activity shows (1-200).")
    ] = 10,
    every: Annotated[
        bool,
        typer.Option("--all", help="One statement per customer (see --segment, --tier), in --out."),
    ] = False,
    segment: Annotated[str | None, typer.Option(help="With --all: only this RFM segment.")] = None,
    tier: Annotated[str | None, typer.Option(help="With --all: only this tier.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="With --all: the folder to write them in.")
    ] = None,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Print a customer's points statement: balance, what expires when, tier and what
    keeps it, recent activity in the shop's time and plain words.

    Example: loyalty statement C1001 --format html > C1001.html
    """
    import sys

    from .statements import FORMATS, MAX_RECENT, statement, write_all

    if as_json and not every:  # with --all, --json is for the summary
        form = "json"
    form = form.strip().lower()
    if form not in FORMATS:
        raise BadArgument(f"--format '{form}' is not one of {', '.join(FORMATS)}", field="--format")
    if not 1 <= recent <= MAX_RECENT:
        raise BadArgument(f"--recent {recent} must be from 1 to {MAX_RECENT}", field="--recent")
    if every == (customer_id is not None):
        raise BadArgument("give a CUSTOMER_ID, or --all with --out")
    if not every and (segment or tier or out):
        raise BadArgument("--segment, --tier and --out go with --all")
    ruleset = load(rules)
    if not every:
        assert customer_id is not None
        with open_ledger(db, create=False) as store:
            made = statement(store, ruleset, check_customer_id(customer_id), cli.now(), recent)
        cli._output.printed = True  # an error after this adds no JSON to the statement
        sys.stdout.write(made.render(form))
        return
    if out is None:
        raise BadArgument("--all needs --out FOLDER", field="--out")
    from .audience import Criteria, select_ids
    from .reports import segment_name

    criteria = Criteria(
        transactional=True,
        segment=None if segment is None else segment_name(segment),
        tier=cli._code(tier, "--tier"),
    )
    with open_ledger(db, create=False) as store:
        ids = select_ids(store, ruleset, criteria, cli.now())
        protected = [store.path, Path(ruleset.source)]
        written = write_all(store, ruleset, ids, cli.now(), form, out, protected, recent)
    show(
        {"folder": str(out), "format": form, "customers": len(written),
         "files": [str(p) for p in written]},
        "statements", as_json, ruleset.program.locale,
    )  # fmt: skip
