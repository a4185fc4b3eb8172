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
from .cli_selection import (
    BadgeOption,
    ClvBandOption,
    ExpiringOption,
    InactiveOption,
    SegmentOption,
    TierOption,
    criteria,
)
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
    with open_ledger(db, create=False) as store:
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
        typer.Option(
            "--all",
            help="One statement per customer (or those the selection options pick), in --out.",
        ),
    ] = False,
    segment: SegmentOption = None,
    tier: TierOption = None,
    expiring_within: ExpiringOption = None,
    inactive_since: InactiveOption = None,
    clv_band: ClvBandOption = None,
    badge: BadgeOption = None,
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
    chosen = (segment, tier, expiring_within, inactive_since, clv_band, badge)
    if not every and (any(c is not None for c in chosen) or out):
        raise BadArgument(
            "--out and the selection options (--segment, --tier, --expiring-within, "
            "--inactive-since, --clv-band, --badge) go with --all"
        )
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
    from .audience import select_ids

    # A statement goes to everyone selected, reachable or not: consent is not asked.
    selection = criteria(*chosen, transactional=True)
    with open_ledger(db, create=False) as store:
        ids = select_ids(store, ruleset, selection, cli.now())
        protected = [Path(store.path), Path(ruleset.source)]
        written = write_all(store, ruleset, ids, cli.now(), form, out, protected, recent)
    show(
        {"folder": str(out), "format": form, "customers": len(written),
         "files": [str(p) for p in written]},
        "statements", as_json, ruleset.program.locale,
    )  # fmt: skip


@command()
def messages(
    template: Annotated[
        Path,
        typer.Argument(
            metavar="TEMPLATE",
            help="The message template: 'Subject: ...', a blank line, the body (Jinja2).",
        ),
    ],
    sender: Annotated[
        str | None,
        typer.Option(
            "--from", envvar="LOYALTY_MAIL_FROM", help="The shop's address the mail comes from."
        ),
    ] = None,
    notice: Annotated[
        list[str] | None,
        typer.Option("--notice", help="One message per notice of this kind (repeat)."),
    ] = None,
    campaign: Annotated[
        str | None,
        typer.Option(help="One message per selected customer, once per campaign NAME."),
    ] = None,
    segment: SegmentOption = None,
    tier: TierOption = None,
    expiring_within: ExpiringOption = None,
    inactive_since: InactiveOption = None,
    clv_band: ClvBandOption = None,
    badge: BadgeOption = None,
    within: Annotated[int, typer.Option(help="--notice: as `notices --within`.")] = 14,
    birthday_within: Annotated[
        int, typer.Option("--birthday-within", help="--notice: as `notices`.")
    ] = 7,
    lookback: Annotated[int, typer.Option(help="--notice: as `notices --lookback`.")] = 30,
    transactional: Annotated[
        bool,
        typer.Option(
            "--transactional",
            help="Not marketing: sent without email consent, and without the unsubscribe line.",
        ),
    ] = False,
    unsubscribe: Annotated[
        str | None,
        typer.Option(help="An unsubscribe URL (default: reply to --from with UNSUBSCRIBE)."),
    ] = None,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write a mail-merge CSV here; send nothing.")
    ] = None,
    eml: Annotated[
        Path | None, typer.Option("--eml", help="Write one .eml file per message in this folder.")
    ] = None,
    smtp: Annotated[
        str | None,
        typer.Option(
            "--smtp", metavar="HOST[:PORT]", help="Send through this server (STARTTLS; port 587)."
        ),
    ] = None,
    smtp_netrc: Annotated[
        Path | None,
        typer.Option(
            "--smtp-netrc",
            envvar="LOYALTY_SMTP_NETRC",
            help="A netrc-style file with the server's login. Default: LOYALTY_SMTP_USER and "
            "LOYALTY_SMTP_PASSWORD, else ~/.netrc.",
        ),
    ] = None,
    no_starttls: Annotated[
        bool,
        typer.Option("--no-starttls", help="Plain SMTP, for a relay on this machine only."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Render and list the messages; send nothing.")
    ] = False,
    rate: Annotated[int, typer.Option(help="At most this many messages a minute.")] = 60,
    limit: Annotated[int | None, typer.Option(help="At most this many messages this run.")] = None,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Render the owner's template for each customer a message is due to, and write
    it (--csv, --eml) or send it (--smtp); nothing is ever sent twice.

    Example (crontab): 0 9 * * * loyalty messages /srv/shop/expiring.txt --notice
    points_expiring --from shop@example.com --smtp mail.example.com
    """
    import os
    import time

    from . import mailer
    from . import messages as run_messages
    from .notices import Window, kinds_of

    outputs = [o for o in (csv_file, eml, smtp) if o is not None] + ([True] if dry_run else [])
    if len(outputs) != 1:
        raise BadArgument("give one of --csv FILE, --eml FOLDER, --smtp HOST, --dry-run")
    if sender is None:
        raise BadArgument("give --from ADDRESS (or LOYALTY_MAIL_FROM)", field="--from")
    if not 1 <= rate <= run_messages.MAX_RATE:
        raise BadArgument(f"--rate must be from 1 to {run_messages.MAX_RATE}", field="--rate")
    ruleset = load(rules)
    settings = run_messages.Settings(
        template=template,
        sender=sender.strip(),
        notice_kinds=kinds_of(notice) if notice else (),
        campaign=None if campaign is None else campaign.strip(),
        criteria=criteria(
            segment,
            tier,
            expiring_within,
            inactive_since,
            clv_band,
            badge,
            transactional=transactional,
        ),
        window=Window(within, birthday_within, lookback),
        transactional=transactional,
        unsubscribe=cli._code(unsubscribe, "--unsubscribe"),
        limit=limit,
    )
    server = None
    if smtp is not None:
        host, port = mailer.parse_address(smtp)
        user, password = (
            os.environ.get("LOYALTY_SMTP_USER"),
            os.environ.get("LOYALTY_SMTP_PASSWORD"),
        )
        if not (user and password):
            netrc_file = smtp_netrc
            if netrc_file is None and (Path.home() / ".netrc").exists():
                netrc_file = Path.home() / ".netrc"
            found = mailer.credentials(host, netrc_file)
            user, password = found if found else (None, None)
        cafile = os.environ.get("LOYALTY_SMTP_CAFILE") or None
        if cafile is not None and not Path(cafile).is_file():
            raise BadArgument(f"LOYALTY_SMTP_CAFILE {cafile} is not a file")
        server = mailer.Server(
            host, port, not no_starttls, user, password, None if cafile is None else Path(cafile)
        )
        mailer.check(server)
    shop = ruleset.program.name
    with open_ledger(db, create=False) as store:
        moment = cli.now()
        run = run_messages.prepare(store, ruleset, settings, moment)
        protected = [Path(store.path), Path(ruleset.source), template]
        if csv_file is not None:
            from .exports import OutputFile

            out = OutputFile(csv_file, "--csv", protected)
            try:
                run_messages.write_csv(run, out.file)
            except BaseException:
                out.discard()
                raise
            out.commit()
            run.written.append(str(csv_file))
        elif eml is not None:
            run_messages.write_eml(run, settings, shop, moment, eml, protected)
        elif server is not None:
            chosen = server
            run_messages.send(
                store,
                run,
                settings,
                shop,
                cli.now,
                lambda: mailer.connect(chosen),
                lambda: time.sleep(60 / rate),
            )
    mode = "csv" if csv_file else "eml" if eml else "smtp" if smtp else "dry_run"
    show(run.to_json(mode), "messages", as_json, ruleset.program.locale)
    for draft, code, words in run.refused:
        cli.say(f"refused: {draft.customer_id} <{draft.to}>: {code or ''} {words}".rstrip())
    if run.stopped is not None:
        cli.say(f"error: {run.stopped}")
        raise typer.Exit(mailer.Unavailable.exit_code)


@command()
def transfer(
    from_customer: Annotated[str, typer.Argument(metavar="FROM", help="Who gives the points.")],
    to_customer: Annotated[str, typer.Argument(metavar="TO", help="Who receives them.")],
    points: Annotated[int, typer.Argument(metavar="POINTS", help="How many (spendable) points.")],
    reason: Annotated[str | None, typer.Option(help="Why (required; kept in the ledger).")] = None,
    txn: cli.TxnOption = None,
    at: cli.AtOption = None,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Move points from one member to another (a family pooling points); each lot
    moved keeps its own expiry. Refused if FROM has fewer spendable points.

    Example: loyalty transfer C1002 C1001 300 --reason "family pool" --txn T-88
    """
    from .operations import TransferRequest, transfer
    from .values import check_points

    text = cli._reason(reason, "transfer")
    ruleset = load(rules)
    request = TransferRequest(
        check_customer_id(from_customer, what="FROM"),
        check_customer_id(to_customer, what="TO"),
        check_points(points, "POINTS"),
        text,
        cli._code(txn, "--txn"),
        cli._at(at, ruleset),
    )
    with open_ledger(db) as store:
        result = transfer(store, ruleset, request, cli.now())
    show(result.to_json(), "transfer", as_json, ruleset.program.locale)


@command()
def merge(
    keep: Annotated[str, typer.Argument(metavar="KEEP", help="The account that stays.")],
    duplicate: Annotated[
        str, typer.Argument(metavar="DUPLICATE", help="The account folded into KEEP.")
    ],
    reason: Annotated[str | None, typer.Option(help="Why (required; kept in the ledger).")] = None,
    txn: cli.TxnOption = None,
    at: cli.AtOption = None,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Fold a duplicate account into another: its points move with their own
    expiry and pending days, its purchases count for KEEP, and DUPLICATE can no
    longer be used.

    Example: loyalty merge C1001 C2417 --reason "same person, second card" --txn M-12
    """
    from .operations import MergeRequest, merge

    text = cli._reason(reason, "merge")
    ruleset = load(rules)
    request = MergeRequest(
        check_customer_id(keep, what="KEEP"),
        check_customer_id(duplicate, what="DUPLICATE"),
        text,
        cli._code(txn, "--txn"),
        cli._at(at, ruleset),
    )
    with open_ledger(db) as store:
        result = merge(store, ruleset, request, cli.now())
    show(result.to_json(), "merge", as_json, ruleset.program.locale)
