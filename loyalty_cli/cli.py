"""The `loyalty` command: arguments -> core -> output. The only module that imports typer.

Commands are glue: parse, call one or two core functions, hand the result to
the output. The one error boundary is `LoyaltyGroup.invoke`: a `LoyaltyError`
becomes `error: ...` lines on stderr and its exit code.

Start-up time matters (a till calls this in a loop), so the heavy modules are
imported inside the functions that need them: rules (PyYAML) only where rules
apply, render (Rich) only when a table is drawn. `balance --json` imports
neither.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import get_command_name

from . import __version__
from .errors import EXIT_CODES_HELP, BadArgument, DataRejected, LoyaltyError
from .store import DEFAULT_TIMEOUT, Store
from .values import (
    CUSTOMER_ID_MAX,
    MAX_QUANTITY,
    MAX_ROWS,
    TEXT_MAX,
    check_customer_id,
    check_points,
    check_text,
    latest_write,
    parse_amount,
    parse_at,
    parse_date,
)

if TYPE_CHECKING:
    from .models import Ruleset

Command = TypeVar("Command", bound=Callable[..., None])


# click's usage error (typer vendors click; its BadParameter is one kind of it).
_UsageError: type[Exception] = typer.BadParameter.__bases__[0]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def say(line: str) -> None:
    """One line to stderr, with any control character in it written out (\\x1b):
    what a user typed is often part of the message, and a newline would split the
    line, an escape sequence reach the terminal."""
    shown = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", line)
    print(shown, file=sys.stderr)


class LoyaltyGroup(TyperGroup):
    """The single error boundary: every LoyaltyError ends here, and click's usage
    errors too, each as one `error:` line on stderr and, when JSON was asked for
    (or stdout is not a terminal), as one `{"error": {...}}` document on stdout."""

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        _output.reset(list(args))
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _UsageError as error:
            raise _usage(error) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LoyaltyError as error:
            for line in error.lines():
                say(f"error: {line}")
            _output.error(error.to_json())
            raise typer.Exit(error.exit_code) from None
        except _UsageError as error:
            raise _usage(error) from None


class _Output:
    """What the error boundary needs to know about this run's stdout: whether the
    command chose JSON, and whether it already printed its one document (then an
    error adds none: `verify` and `import-csv` say what went wrong in theirs)."""

    def __init__(self) -> None:
        self.reset([])

    def reset(self, args: list[str]) -> None:
        self.args = args
        self.choice: bool | None = None
        self.parsed = False
        self.quiet = False
        self.printed = False
        self.command = ""  # the command's words after `loyalty` ("balance", "db init")

    def chosen(self, params: dict[str, Any]) -> None:
        """A command's parsed options: --json/--no-json, --quiet, and --csv (whose
        output is CSV, so an error there is not JSON either)."""
        self.parsed = True
        self.choice = params.get("as_json")
        if params.get("as_csv") and not self.choice:
            self.choice = False
        self.quiet = bool(params.get("quiet"))

    def wants_json(self) -> bool:
        """As `show` decides, and for arguments that did not parse, by the last of
        --json/--no-json among them; --quiet keeps a pipe's stdout empty."""
        choice = self.choice
        if not self.parsed:
            words = [a for a in self.args[: _end(self.args)] if a in ("--json", "--no-json")]
            choice = None if not words else words[-1] == "--json"
        if choice is None:
            return not self.quiet and not sys.stdout.isatty()
        return choice

    def error(self, doc: dict[str, Any]) -> None:
        if self.wants_json() and not self.printed:
            _write_json(doc)


def _end(args: list[str]) -> int:
    """Where options end: at `--`, after which every word is an argument."""
    return args.index("--") if "--" in args else len(args)


_output = _Output()


def _usage(error: Exception) -> Exception:
    """A usage error as one line, exit 2; no arguments at all still show the help."""
    if type(error).__name__ == "NoArgsIsHelpError":
        return error
    context = getattr(error, "ctx", None)
    where = getattr(context, "command_path", "loyalty")
    message = error.format_message() if hasattr(error, "format_message") else str(error)
    message = message.rstrip(".")
    say(f"error: {message} (see '{where} --help')")
    param = getattr(error, "param", None)
    field = _param_name(param) if param is not None else None
    _output.error(BadArgument(message, field=field).to_json())
    return typer.Exit(2)


def _param_name(param: Any) -> str:
    """An option as typed (`--points`), an argument as shown (`CUSTOMER_ID`)."""
    opts = getattr(param, "opts", None) or []
    if getattr(param, "param_type_name", "") == "option" and opts:
        return str(opts[0])
    return str(getattr(param, "metavar", None) or getattr(param, "name", "") or "").upper()


class LoyaltyCommand(TyperCommand):
    """A customer id may look like a negative number ('-1'), and so may adjust's
    POINTS: read such words as values, not as unknown options. (Other unknown
    options then end as "unexpected extra argument", still exit 2.)"""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if any(len(a) > 1 and a[0] == "-" and a[1].isdigit() for a in args):
            ctx.ignore_unknown_options = True
        result: list[str] = super().parse_args(ctx, args)
        _output.command = " ".join(str(ctx.command_path).split()[1:])
        _inherit(ctx)
        _output.chosen(ctx.params)
        return result


# The options that may come before the command as well as after it.
_GLOBAL = {"db": "--db", "rules": "--rules", "as_json": "--json/--no-json"}


def _inherit(ctx: Any) -> None:
    """`loyalty --db x balance C1` as `loyalty balance C1 --db x`: an option given
    before the command counts unless the command's own command line gives it too
    (an environment variable gives way to either). One the command does not take is
    refused, as it would be after the command."""
    root = ctx.find_root()
    if root is ctx:
        return
    for name, shown in _GLOBAL.items():
        value = root.params.get(name)
        if value is None:
            continue
        if name not in ctx.params:
            raise BadArgument(
                f"{shown} does not apply to '{ctx.command_path}' (see '{ctx.command_path} --help')",
                field=shown.split("/")[0],
            )
        source = ctx.get_parameter_source(name)
        if source is None or source.name != "COMMANDLINE":
            ctx.params[name] = value


app = typer.Typer(
    cls=LoyaltyGroup,
    help="Customer loyalty points for small shops: an append-only ledger with rules in YAML.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
rules_app = typer.Typer(help="Work with rules files.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(rules_app, name="rules")
db_app = typer.Typer(
    help="Create a ledger (a file, or a PostgreSQL schema with its roles).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(db_app, name="db")


# --- configuration: paths, clock, environment ----------------------------------


def _home_dir(kind: str, xdg_var: str, fallback: str) -> Path:
    base = os.environ.get(xdg_var)
    if base:
        return Path(base) / "loyalty"
    try:
        return Path.home() / fallback / "loyalty"
    except RuntimeError:
        raise BadArgument(
            f"no home directory to keep the default {kind} in; pass the path explicitly"
        ) from None


def default_db() -> Path:
    """$XDG_DATA_HOME/loyalty/ledger.db, else ~/.local/share/loyalty/ledger.db."""
    return _home_dir("database", "XDG_DATA_HOME", ".local/share") / "ledger.db"


def default_rules() -> Path:
    """$XDG_CONFIG_HOME/loyalty/rules.yaml, else ~/.config/loyalty/rules.yaml."""
    return _home_dir("rules file", "XDG_CONFIG_HOME", ".config") / "rules.yaml"


MAX_TIMEOUT = 3600.0


def _timeout() -> float:
    raw = os.environ.get("LOYALTY_BUSY_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_TIMEOUT:  # nan and infinities fail this too
        raise BadArgument(
            f"LOYALTY_BUSY_TIMEOUT {raw[:40]!r} must be a number of seconds from 0 to "
            f"{MAX_TIMEOUT:.0f}"
        )
    return value


def _not_blank(variable: str) -> None:
    """cron and scripts set variables from other variables: an empty one is a
    mistake, not a request for the default."""
    if os.environ.get(variable) == "":
        raise BadArgument(f"{variable} is set but empty; give it a path, or unset it")


def _db_path(db: str | None) -> Path:
    if db is None:
        _not_blank("LOYALTY_DB")
        return default_db()
    return Path(db)


_WRITER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


def _writer() -> str:
    """This till's name on a PostgreSQL ledger: its own hash chain there.
    LOYALTY_TILL, else the host name."""
    import socket

    _not_blank("LOYALTY_TILL")
    name = os.environ.get("LOYALTY_TILL") or socket.gethostname()
    if not _WRITER.fullmatch(name):
        raise BadArgument(
            f"till name {name[:70]!r} (LOYALTY_TILL, else the host name) must be 1 to 64 "
            "letters, digits and _.@- ; set LOYALTY_TILL"
        )
    return name


def _postgres_url(db: str | None) -> str | None:
    """The PostgreSQL URL `--db`/LOYALTY_DB names, if it names one."""
    from .store.dialect import is_url

    text = db if db is not None else os.environ.get("LOYALTY_DB")
    return text if text is not None and is_url(text) else None


def open_ledger(db: str | None, *, create: bool = True, read_only: bool = False) -> Store:
    url = _postgres_url(db)
    if url is not None:
        return Store.open_url(url, timeout=_timeout(), writer=_writer())
    path = _db_path(db)
    if db is None and create:
        path.parent.mkdir(parents=True, exist_ok=True)
    with _about(path):
        return Store.open(path, create=create, timeout=_timeout(), read_only=read_only)


@contextmanager
def _about(path: Path) -> Iterator[None]:
    """An error opening a file names it as `file` in the JSON error."""
    try:
        yield
    except LoyaltyError as error:
        if error.exit_code != BadArgument.exit_code:
            error.facts.setdefault("file", str(path))
        raise


def load(rules: Path | None) -> Ruleset:
    from .rules import load_rules

    if rules is None:
        _not_blank("LOYALTY_RULES")
    path = rules or default_rules()
    with _about(path):
        return load_rules(path)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _at(text: str | None, ruleset: Ruleset, *, write: bool = True) -> datetime | None:
    """--at (a write: when it happened) or --as-of (a read: as the ledger stood then),
    in the shop's time zone; a write may not be dated later than a day from now."""
    if text is None:
        return None
    from zoneinfo import ZoneInfo

    latest = latest_write(now()) if write else None
    what = "--at" if write else "--as-of"
    return parse_at(text, ZoneInfo(ruleset.program.timezone), what=what, latest=latest)


def _today(ruleset: Ruleset) -> date:
    from .clock import shop_day, zone

    return shop_day(now(), zone(ruleset.program.timezone))


def _text(value: str | None, what: str) -> str | None:
    """Optional free text: empty means absent, so a retry compares equal."""
    if value is None or not value.strip():
        return None
    return check_text(value, what, TEXT_MAX, lines=True)


def _reason(value: str | None, command: str) -> str:
    """A --reason the command requires (it is kept in the ledger)."""
    text = _text(value, "--reason")
    if text is None:
        raise BadArgument(f"{command} needs --reason (it is kept in the ledger)", field="--reason")
    return text


def _code(value: str | None, what: str) -> str | None:
    """An optional key or code (--txn, --category, --sku): one short line."""
    if value is None or not value.strip():
        return None
    return check_text(value, what, CUSTOMER_ID_MAX)


# --- output --------------------------------------------------------------------


def show(doc: dict[str, Any], view: str, as_json: bool | None, locale: str | None = None) -> None:
    """JSON when asked or when stdout is not a terminal; a Rich view otherwise, its
    figures in the shop's `locale` when the command read the rules."""
    if as_json is None:
        as_json = not sys.stdout.isatty()
    if as_json:
        _write_json(doc)
        return
    from . import render

    render.show(view, doc, locale)


def _write_json(doc: dict[str, Any]) -> None:
    """The run's one JSON document on stdout."""
    _output.printed = True
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    try:
        sys.stdout.write(text)
    except UnicodeEncodeError:  # a file name that is not UTF-8: escape it
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def _record(
    db: str | None,
    use_case: Callable[..., Any],
    ruleset: Ruleset,
    request: object,
    view: str,
    as_json: bool | None,
    dry_run: bool = False,
    **options: object,
) -> None:
    """The shape of every write command: one use case on the ledger, then the output."""
    if dry_run:
        options["dry_run"] = True
    with open_ledger(db, create=not dry_run) as store:
        result = _retrying(lambda: use_case(store, ruleset, request, now(), **options))
    show(result.to_json(), view, as_json, ruleset.program.locale)


Result = TypeVar("Result")
_ATTEMPTS = 8


def _retrying(write: Callable[[], Result]) -> Result:
    """Run a write again when it met another at the same moment and was rolled
    back whole (PostgreSQL; errors.Contended): it then decides afresh on what
    the other committed. After a few tries it exits 75 like any busy ledger."""
    import random
    import time

    from .errors import Contended

    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return write()
        except Contended:
            if attempt == _ATTEMPTS:
                raise
            time.sleep(random.uniform(0.002, 0.02) * attempt)
    raise AssertionError("unreachable")


# --- shared options ------------------------------------------------------------

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="LOYALTY_DB",
        help="Ledger file, or a postgresql:// URL (see README, PostgreSQL). Default: "
        "$XDG_DATA_HOME/loyalty/ledger.db (~/.local/share/loyalty/ledger.db).",
    ),
]
RulesOption = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        envvar="LOYALTY_RULES",
        help="Rules file. Default: $XDG_CONFIG_HOME/loyalty/rules.yaml "
        "(~/.config/loyalty/rules.yaml).",
    ),
]
JsonOption = Annotated[
    bool | None,
    typer.Option(
        "--json/--no-json",
        help="Print one JSON document on stdout. Default: JSON when stdout is not a terminal.",
    ),
]
AtOption = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="When it happened, ISO 8601 (2026-11-27T14:30). Naive times are shop-local. "
        "Default: now.",
    ),
]
AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        "--at",
        help="As the ledger stood at this time (later entries left out), ISO 8601 "
        "(2026-11-27 or 2026-11-27T14:30); naive times are shop-local. Default: now. "
        "--at is the same option.",
    ),
]
TxnOption = Annotated[
    str | None,
    typer.Option(
        "--txn",
        help="Idempotency key, e.g. the receipt number. A retry with the same key and "
        "content changes nothing; different content is refused.",
    ),
]
NameOption = Annotated[str | None, typer.Option(help="Full name.")]
EmailOption = Annotated[str | None, typer.Option(help="Email address.")]
PhoneOption = Annotated[str | None, typer.Option(help="Phone number.")]
BirthdayOption = Annotated[str | None, typer.Option(help="Birthday, YYYY-MM-DD.")]
ConsentOption = Annotated[
    list[str] | None,
    typer.Option(
        "--consent",
        help="Marketing consent given on a channel (email, sms); repeat for both. "
        "Needs --consent-source.",
    ),
]
WithdrawOption = Annotated[
    list[str] | None,
    typer.Option("--withdraw", help="Marketing consent withdrawn on a channel (email, sms)."),
]
ConsentSourceOption = Annotated[
    str | None,
    typer.Option(
        "--consent-source",
        help="Where the consent was given or withdrawn ('till form', 'website'), kept as proof.",
    ),
]


def _consent(
    given: list[str] | None, withdrawn: list[str] | None, source: str | None
) -> tuple[tuple[Any, ...], str | None]:
    from .engine.consent import changes

    wanted = changes(given or (), withdrawn or ())
    text = _text(source, "--consent-source")
    if text is not None and not wanted:
        raise BadArgument("--consent-source goes with --consent or --withdraw")
    return wanted, text


def _profile(
    name: str | None,
    email: str | None,
    phone: str | None,
    birthday: str | None,
    today: date,
) -> dict[str, str | None]:
    """The profile fields given on the command line, checked; empty text clears one."""
    fields: dict[str, str | None] = {}
    for field, value in (("name", name), ("email", email), ("phone", phone)):
        if value is not None:
            fields[field] = _text(value, f"--{field}")
    if birthday is not None:
        fields["birthday"] = parse_date(birthday, latest=today).isoformat()
    return fields


CustomerArg = Annotated[
    str, typer.Argument(metavar="CUSTOMER_ID", help="The customer's id, stored exactly as given.")
]


def command(name: str | None = None, **settings: Any) -> Callable[[Command], Command]:
    """app.command, with the exit codes in every command's --help."""
    return app.command(name, cls=LoyaltyCommand, epilog=EXIT_CODES_HELP, **settings)


# --- commands ------------------------------------------------------------------


def _print_version(value: bool) -> None:
    if value:
        print(f"loyalty {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Ledger file, for the command that follows (as its --db)."),
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option("--rules", help="Rules file, for the command that follows (as its --rules)."),
    ] = None,
    as_json: Annotated[
        bool | None,
        typer.Option("--json/--no-json", help="JSON or a table, for the command that follows."),
    ] = None,
) -> None:
    """Customer loyalty points for small shops: an append-only ledger with rules in YAML.

    --db, --rules and --json go before the command or after it: loyalty --db x balance C1.
    """


@command()
def enroll(
    customer_id: CustomerArg,
    name: NameOption = None,
    email: EmailOption = None,
    phone: PhoneOption = None,
    birthday: BirthdayOption = None,
    referred_by: Annotated[
        str | None,
        typer.Option(help="Id of the customer who referred them (gets referral points)."),
    ] = None,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="Succeed without change if already enrolled.")
    ] = False,
    consent: ConsentOption = None,
    withdraw: WithdrawOption = None,
    consent_source: ConsentSourceOption = None,
    at: AtOption = None,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Enroll a customer, applying the enroll and referral rules.

    Example: loyalty enroll C1001 --name "Ada Lovelace" --referred-by C1000
    """
    from .operations import EnrollRequest, enroll

    ruleset = load(rules)
    profile = _profile(name, email, phone, birthday, _today(ruleset))
    wanted, source = _consent(consent, withdraw, consent_source)
    request = EnrollRequest(
        customer_id=check_customer_id(customer_id),
        name=profile.get("name"),
        email=profile.get("email"),
        phone=profile.get("phone"),
        birthday=profile.get("birthday"),
        referred_by=None
        if referred_by is None
        else check_customer_id(referred_by, what="--referred-by"),
        at=_at(at, ruleset),
        exist_ok=exist_ok,
        consent=wanted,
        consent_source=source,
    )
    _record(db, enroll, ruleset, request, "enroll", as_json)


@command()
def update(
    customer_id: CustomerArg,
    name: NameOption = None,
    email: EmailOption = None,
    phone: PhoneOption = None,
    birthday: BirthdayOption = None,
    consent: ConsentOption = None,
    withdraw: WithdrawOption = None,
    consent_source: ConsentSourceOption = None,
    at: AtOption = None,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Change a customer's contact details, birthday or marketing consent (kept in the
    ledger's history).

    Example: loyalty update C1001 --email ada@example.com --consent email --consent-source web
    """
    from .operations import ProfileRequest, update_profile

    ruleset = load(rules)
    changes = _profile(name, email, phone, birthday, _today(ruleset))
    wanted, source = _consent(consent, withdraw, consent_source)
    request = ProfileRequest(
        check_customer_id(customer_id), changes, _at(at, ruleset), wanted, source
    )
    with open_ledger(db) as store:
        result = _retrying(lambda: update_profile(store, ruleset, request, now()))
    show(result.to_json(), "profile", as_json, ruleset.program.locale)


@command()
def earn(
    customer_id: CustomerArg,
    amount: Annotated[
        str | None, typer.Option(help="Purchase amount, e.g. 42.50. Records a purchase.")
    ] = None,
    event: Annotated[
        str | None, typer.Option(help="An action the rules reward, e.g. review. Records an event.")
    ] = None,
    category: Annotated[str | None, typer.Option(help="Product category of the purchase.")] = None,
    sku: Annotated[str | None, typer.Option(help="Product code of the purchase.")] = None,
    quantity: Annotated[
        int | None, typer.Option(help="Number of items.", min=1, max=MAX_QUANTITY)
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="The store or till of the purchase (rules may test it).")
    ] = None,
    line: Annotated[
        list[str] | None,
        typer.Option(
            "--line",
            help="A receipt line, CATEGORY[/SKU]:[QTYx]PRICE[-DISCOUNT], e.g. shoes:59.90 or "
            "food/SKU-123:2x4.50. Repeat for each line. Records a purchase.",
        ),
    ] = None,
    lines_file: Annotated[
        str | None,
        typer.Option(
            "--lines",
            help="A receipt's lines as JSON lines, from FILE or - (stdin): "
            '{"sku", "category", "quantity", "unit_price" or "amount", "discount"} each.',
        ),
    ] = None,
    txn: TxnOption = None,
    at: AtOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the award and write nothing.")
    ] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Also say why each other rule did not fire.")
    ] = False,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Record a purchase (--amount, or its lines with --line/--lines) or an action
    (--event) and award points.

    Example: loyalty earn C1001 --amount 42.50 --category shoes --txn R-5521
    Example: loyalty earn C1001 --line shoes:59.90 --line food/SKU-123:2x4.50 --txn R-5522
    """
    from .engine.awards import check_event
    from .operations import EarnRequest, earn
    from .receipts import given_lines, total

    ways = [w for w, given in (("--amount", amount), ("--event", event)) if given is not None]
    if line or lines_file is not None:
        ways.append("--line" if line else "--lines")
    if line and lines_file is not None:
        raise BadArgument("give the receipt's lines with --line or with --lines, not both")
    if len(ways) != 1:
        raise BadArgument(
            "give either --amount or --line/--lines (a purchase) or --event (an action)"
            + (f"; got {' and '.join(ways)}" if ways else "")
        )
    if event is not None and (category or sku or quantity or store):
        raise BadArgument(
            "--category, --sku, --quantity and --store describe purchases, not events"
        )
    if ways[0] in ("--line", "--lines") and (category or sku or quantity):
        raise BadArgument(
            "--category, --sku and --quantity describe an --amount purchase; "
            "put them in each --line instead"
        )
    receipt = given_lines(line or [], lines_file, sys.stdin.buffer)
    ruleset = load(rules)
    if len(receipt) == 1:
        # A one-line receipt is a purchase as --amount records it, and earns the same.
        (only,) = receipt
        amount, category, sku, quantity = None, only.category, only.sku, only.quantity
    request = EarnRequest(
        customer_id=check_customer_id(customer_id),
        event="purchase" if event is None else check_event(ruleset, event),
        amount=total(receipt) if receipt else (None if amount is None else parse_amount(amount)),
        category=_code(category, "--category"),
        sku=_code(sku, "--sku"),
        quantity=quantity,
        txn=_code(txn, "--txn"),
        at=_at(at, ruleset),
        lines=receipt if len(receipt) > 1 else (),
        store=_code(store, "--store"),
    )
    _record(db, earn, ruleset, request, "earn", as_json, dry_run=dry_run, explain=explain)


@command()
def redeem(
    customer_id: CustomerArg,
    points: Annotated[int | None, typer.Option(help="Points to spend.")] = None,
    reward: Annotated[str | None, typer.Option(help="A reward id from the rules file.")] = None,
    reason: Annotated[str | None, typer.Option(help="Note kept with the entry.")] = None,
    txn: TxnOption = None,
    at: AtOption = None,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Spend points, or redeem a reward for its cost. Never goes below zero.

    Example: loyalty redeem C1001 --reward coffee
    """
    from .operations import RedeemRequest, redeem

    ruleset = load(rules)
    request = RedeemRequest(
        customer_id=check_customer_id(customer_id),
        points=None if points is None else check_points(points, "--points"),
        reward=reward,
        reason=_text(reason, "--reason"),
        txn=_code(txn, "--txn"),
        at=_at(at, ruleset),
    )
    _record(db, redeem, ruleset, request, "points", as_json)


@command()
def adjust(
    customer_id: CustomerArg,
    points: Annotated[int, typer.Argument(help="Points to add, or take away when negative.")],
    reason: Annotated[str, typer.Option(help="Why (required; kept in the ledger).")],
    txn: TxnOption = None,
    at: AtOption = None,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Correct a balance by hand, with a mandatory reason.

    Example: loyalty adjust C1001 -50 --reason "double-scanned receipt R-5521"
    """
    from .operations import AdjustRequest, adjust

    ruleset = load(rules)
    request = AdjustRequest(
        customer_id=check_customer_id(customer_id),
        points=check_points(points, "POINTS"),
        reason=check_text(reason, "--reason", lines=True),
        txn=_code(txn, "--txn"),
        at=_at(at, ruleset),
    )
    _record(db, adjust, ruleset, request, "points", as_json)


@command()
def refund(
    refund_of: Annotated[
        str, typer.Argument(metavar="TXN", help="The purchase's txn (its receipt number).")
    ],
    amount: Annotated[
        str | None, typer.Option(help="Amount refunded. Default: all that is left to refund.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Note kept with the refund.")] = None,
    line: Annotated[
        list[str] | None,
        typer.Option(
            "--line",
            help="Return units of a line: SKU[:QTY] (or its category, or #N for line N); "
            "QTY left out: all of them. Repeat for each line.",
        ),
    ] = None,
    txn: TxnOption = None,
    at: AtOption = None,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Take back a purchase's points, in proportion to the amount refunded, or
    exactly what the returned lines earned (--line).

    Example: loyalty refund R-5521 --amount 20.00 --txn RF-5521-1
    Example: loyalty refund R-5522 --line SKU-123:1 --txn RF-5522-1
    """
    from .operations import RefundRequest, refund
    from .receipts import parse_return

    if line and amount is not None:
        raise BadArgument("give --amount or --line, not both: a line's amount is known")
    ruleset = load(rules)
    request = RefundRequest(
        refund_of=check_text(refund_of, "TXN", CUSTOMER_ID_MAX),
        amount=None if amount is None else parse_amount(amount),
        reason=_text(reason, "--reason"),
        txn=_code(txn, "--txn"),
        at=_at(at, ruleset),
        returns=tuple(parse_return(spec) for spec in line or ()),
    )
    _record(db, refund, ruleset, request, "refund", as_json)


@command()
def tier(
    customer_id: Annotated[
        str | None,
        typer.Argument(metavar="[CUSTOMER_ID]", help="A customer; leave out for all tiers."),
    ] = None,
    set_to: Annotated[
        str | None, typer.Option("--set", help="Set this tier by hand: a floor (see --until).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why, with --set (required).")] = None,
    until: Annotated[
        str | None, typer.Option(help="With --set: the last day the floor holds, YYYY-MM-DD.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            "--at",
            help="The tier as it stood at this time, ISO 8601 (2026-11-27T14:30; naive times "
            "are shop-local); with --set, when the floor is set. Default: now.",
        ),
    ] = None,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Show a customer's tier and what it takes to rise or stay, or customers per tier.

    Example: loyalty tier C1001 --set gold --reason "opening-week VIP" --until 2027-06-30
    """
    from . import operations
    from .engine.requests import TierRequest

    ruleset = load(rules)
    moment = _at(at, ruleset, write=set_to is not None) or now()
    if customer_id is None:
        if set_to is not None:
            raise BadArgument("--set needs a CUSTOMER_ID")
        with open_ledger(db, create=False) as store:
            doc = operations.distribution(store, ruleset, moment).to_json()
            show(doc, "tiers", as_json, ruleset.program.locale)
        return
    cid = check_customer_id(customer_id)
    if set_to is None:
        if reason is not None or until is not None:
            raise BadArgument("--reason and --until go with --set")
        with open_ledger(db, create=False) as store:
            result = operations.tier_of(store, ruleset, cid, moment)
    else:
        if reason is None:
            raise BadArgument("--set needs --reason (it is kept in the ledger)")
        floor_until = None if until is None else parse_date(until, what="--until")
        request = TierRequest(
            cid, set_to, check_text(reason, "--reason", lines=True), floor_until, moment
        )
        with open_ledger(db) as store:
            result = _retrying(lambda: operations.set_tier(store, ruleset, request, now()))
    show(result.to_json(), "tier", as_json, ruleset.program.locale)


@command()
def progress(
    customer_id: Annotated[str, typer.Argument(help="The customer.")],
    at: AsOfOption = None,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Show a customer's progress in each game (stamps, milestones), the badges
    they hold and what is within reach; with --as-of, as they stood then.

    Example: loyalty progress C1001 --as-of 2026-11-30
    """
    from .operations import progress as progress_of

    ruleset = load(rules)
    moment = _at(at, ruleset, write=False)
    with open_ledger(db, create=False) as store:
        result = progress_of(store, ruleset, check_customer_id(customer_id), now(), moment)
    show(result.to_json(), "progress", as_json, ruleset.program.locale)


@command()
def rewards(
    customer_id: Annotated[
        str | None,
        typer.Argument(metavar="[CUSTOMER_ID]", help="Show what this customer can redeem now."),
    ] = None,
    at: AsOfOption = None,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """List the rewards catalogue, or what a customer can redeem now and why not.

    Example: loyalty rewards C1001
    """
    from .operations import rewards_for

    ruleset = load(rules)
    moment = _at(at, ruleset, write=False) or now()
    if customer_id is None:
        result = rewards_for(None, ruleset, None, moment)
    else:
        with open_ledger(db, create=False) as store:
            result = rewards_for(store, ruleset, check_customer_id(customer_id), moment)
    show(result.to_json(), "rewards", as_json, ruleset.program.locale)


@command()
def nightly(
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="The shop-local day to run for, YYYY-MM-DD. Default: today."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="Print nothing on success (for cron).")
    ] = False,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Do every time-based step for all customers: birthdays, expiry, tier changes.

    Safe to run twice or to skip days. Example (crontab): 5 0 * * * loyalty nightly --quiet
    """

    from .nightly import run_nightly

    ruleset = load(rules)
    today = _today(ruleset)
    day = today if as_of is None else parse_date(as_of, what="--as-of")
    if day > today:
        raise BadArgument(f"--as-of {day} is in the future (today is {today} in the shop)")
    with open_ledger(db) as store:
        summary = run_nightly(store, ruleset, day, now())
    if not quiet:
        show(summary.to_json(), "nightly", as_json, ruleset.program.locale)


@command("import-csv")
def import_csv(
    files: Annotated[
        list[str], typer.Argument(metavar="FILE...", help="Till exports; '-' reads standard input.")
    ],
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map", help="FIELD=COLUMN for a column with another name, e.g. amount=Total."
        ),
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(
            help="Write rejected rows here: CSV with rejected_file, rejected_line, "
            "rejected_reason, then the input's own columns (fix it and import it again)."
        ),
    ] = None,
    enroll_unknown: Annotated[
        bool, typer.Option("--enroll-unknown", help="Enroll customers the ledger does not know.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and evaluate every row; write nothing.")
    ] = False,
    encoding: Annotated[str, typer.Option(help="Text encoding.")] = "utf-8-sig",
    delimiter: Annotated[
        str | None, typer.Option(help="Column separator (',', ';', tab, '|'). Default: sniffed.")
    ] = None,
    decimal_comma: Annotated[
        bool, typer.Option("--decimal-comma", help="Amounts are written 1.234,50.")
    ] = False,
    thousands: Annotated[
        str | None, typer.Option(help="Thousands separator to ignore in amounts, e.g. ','.")
    ] = None,
    date_format: Annotated[
        str | None,
        typer.Option(help="strptime format for dates, e.g. %d/%m/%Y. Default: ISO 8601."),
    ] = None,
    cancel_prefix: Annotated[
        str | None,
        typer.Option(
            help="A receipt number starting with this is a cancellation (e.g. C): its "
            "lines go back to the customer's purchase that sold them."
        ),
    ] = None,
    reject_guests: Annotated[
        bool,
        typer.Option(
            "--reject-guests", help="Reject rows with no customer (default: count them skipped)."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print nothing on success.")] = False,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Import a till's CSV export: purchases, events and refunds, each through the rules.

    Safe to re-run (rows are keyed by txn_id). Exit 65 if some rows were rejected.
    Example (crontab): 30 23 * * * loyalty import-csv /srv/till/today.csv --quiet
    """
    import tempfile

    from . import importer

    options = importer.Options(
        mapping=_mapping(mapping or []),
        encoding=encoding,
        delimiter={"tab": "\t", "\\t": "\t"}.get(delimiter or "", delimiter),
        decimal_comma=decimal_comma,
        thousands=thousands,
        date_format=date_format,
        cancel_prefix=_code(cancel_prefix, "--cancel-prefix"),
        reject_guests=reject_guests,
    )
    if files.count("-") > 1:
        raise BadArgument("'-' (standard input) can be given only once")
    ruleset = load(rules)
    db_path = _db_path(db)
    inputs = [Path(name) for name in files if name != "-"]
    rejected = (
        None
        if rejects is None
        else importer.RejectsFile(rejects, [db_path, Path(ruleset.source), *inputs])
    )
    shown = 0
    try:
        with tempfile.TemporaryDirectory() as scratch:
            spool = Path(scratch) / "stdin.csv"
            sources = [
                importer.read_source(name, encoding, sys.stdin.buffer, spool) for name in files
            ]

            def on_reject(rejection: importer.Rejection) -> None:
                nonlocal shown
                if shown < 20:
                    say(f"rejected: {rejection.source}:{rejection.line}: {rejection.reason}")
                shown += 1

            with open_ledger(db, create=not dry_run) as real, _progress(sources, quiet) as tick:
                store = real.copy_to(Path(scratch) / "dry-run.db") if dry_run else real
                try:
                    summary = importer.import_sources(
                        store,
                        ruleset,
                        sources,
                        options,
                        now(),
                        enroll_unknown=enroll_unknown,
                        dry_run=dry_run,
                        on_reject=on_reject,
                        on_row=tick,
                        rejects=rejected,
                        finished_at=now,
                    )
                finally:
                    if dry_run:
                        store.close()
    except BaseException:
        if rejected is not None:
            rejected.discard()
        raise
    if rejected is not None:
        rejected.commit()
    if shown > 20:
        print(f"rejected: ... and {shown - 20} more rows", file=sys.stderr)
    doc = summary.to_json()
    if as_json or (as_json is None and not sys.stdout.isatty() and not quiet):
        show(doc, "import", True)
    elif not quiet:
        from . import render

        render.show("import", doc, ruleset.program.locale)
    if summary.rejected:
        where = f"; see {rejects}" if rejects else " (pass --rejects FILE to keep them)"
        raise DataRejected(f"{summary.rejected} of {summary.rows_read} rows rejected{where}")


@contextmanager
def _progress(sources: Any, quiet: bool) -> Iterator[Callable[[], None]]:
    """A progress bar, only for a person watching: stderr a terminal, not --quiet."""
    if quiet or not sys.stderr.isatty():
        yield lambda: None
        return
    from . import render

    lines = sum(source.lines for source in sources)
    with render.progress(max(lines - len(sources), 1), "importing") as tick:
        yield tick


def _mapping(pairs: list[str]) -> dict[str, str]:
    from .importer import FIELDS

    out = {}
    for pair in pairs:
        name, sep, column = pair.partition("=")
        if not sep or not column.strip():
            raise BadArgument(f"--map '{pair}' should be FIELD=COLUMN, e.g. amount=Total")
        if name.strip() not in FIELDS:
            raise BadArgument(
                f"--map '{pair}': unknown field '{name}' (fields: {', '.join(FIELDS)})"
            )
        out[name.strip()] = column.strip()
    return out


def _as_of(store: Store, text: str | None) -> datetime | None:
    """--at on a read: shop-local by the time zone the ledger's rules last used."""
    if text is None:
        return None
    from zoneinfo import ZoneInfo

    from .store.queries import shop_timezone

    name = shop_timezone(store.conn)
    return parse_at(text, ZoneInfo(name) if name else UTC, what="--as-of")


@command()
def balance(
    customer_id: CustomerArg, at: AsOfOption = None, db: DbOption = None, as_json: JsonOption = None
) -> None:
    """Show a customer's points: available, pending, expiring soon, and lifetime totals.

    Example: loyalty balance C1001 --json | jq .available
    """
    from .accounts import balance

    with open_ledger(db, create=False) as store:
        result = balance(store, check_customer_id(customer_id), now(), _as_of(store, at))
    show(result.to_json(), "balance", as_json)


@command()
def history(
    customer_id: CustomerArg,
    limit: Annotated[
        int | None, typer.Option(help="Show only the newest N entries.", min=1, max=MAX_ROWS)
    ] = None,
    at: AsOfOption = None,
    db: DbOption = None,
    as_json: JsonOption = None,
) -> None:
    """List a customer's ledger entries, newest first, with rule and reason.

    Example: loyalty history C1001 --limit 20
    """
    from .accounts import history

    with open_ledger(db, create=False) as store:
        result = history(store, check_customer_id(customer_id), now(), limit, _as_of(store, at))
    show(result.to_json(), "history", as_json)


@command()
def verify(db: DbOption = None, as_json: JsonOption = None) -> None:
    """Recompute the hash chains and check the ledger's invariants. Exit 1 if broken.

    Example: loyalty verify --db /srv/shop/ledger.db
    """
    from .errors import TamperDetected

    with open_ledger(db, create=False) as store:
        report = store.verify(now())
    show(report.to_json(), "verify", as_json)
    if not report.ok:
        raise TamperDetected(report.problems)


@command()
def backup(
    dest: Annotated[
        Path,
        typer.Argument(metavar="DEST", help="The copy's file (never the ledger itself)."),
    ],
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace DEST if it exists (only by a copy that verifies)."),
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = None,
) -> None:
    """Copy the ledger to DEST while tills keep writing, and verify the copy.

    The copy is one consistent moment of the ledger; it takes DEST's name only
    once it passes every check `loyalty verify` makes. Exit 1 if it does not
    (DEST is then left as it was), 2 if DEST is the ledger or exists without
    --force, 66 if the ledger is missing or DEST's disk fails, 75 if busy.

    Example: loyalty backup /srv/backups/ledger-$(date +%F).db
    """
    from .errors import TamperDetected

    with open_ledger(db, create=False) as store:
        result = store.backup(dest, force=force)
    show(result.to_json(), "backup", as_json)
    if not result.report.ok:
        raise TamperDetected(result.report.problems)


@db_app.command("init", cls=LoyaltyCommand, epilog=EXIT_CODES_HELP)
def db_init(
    grant_till: Annotated[
        list[str] | None,
        typer.Option(
            "--grant-till",
            metavar="ROLE",
            help="PostgreSQL: let this (existing) role append and read, nothing more. Repeatable.",
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = None,
) -> None:
    """Create the ledger's tables, indexes and append-only triggers, if not there yet.

    On PostgreSQL, run it as the role that is to own the ledger; till roles get
    INSERT and SELECT only. Safe to run again (it then only grants).

    Example: loyalty db init --db postgresql://owner@db.shop/loyalty --grant-till till
    """
    from .store import schema

    roles = grant_till or []
    url = _postgres_url(db)
    if url is not None:
        from .store.postgres import init

        doc = init(url, roles, _timeout())
    else:
        if roles:
            raise BadArgument("--grant-till is for a PostgreSQL ledger", field="--grant-till")
        path = _db_path(db)
        existed = path.exists()
        with open_ledger(db):
            pass
        doc = {"db": str(path), "created": not existed, "schema_version": schema.SCHEMA_VERSION}
        doc["tills"] = []
    show(doc, "db_init", as_json)


@db_app.command("copy", cls=LoyaltyCommand, epilog=EXIT_CODES_HELP)
def db_copy(
    source: Annotated[
        str,
        typer.Argument(metavar="SRC", help="The ledger to copy: a file or a postgresql:// URL."),
    ],
    destination: Annotated[
        str,
        typer.Argument(
            metavar="DEST",
            help="A new ledger file, or a postgresql:// URL of a database with no ledger yet "
            "(or an empty one).",
        ),
    ],
    as_json: JsonOption = None,
) -> None:
    """Copy a whole ledger between a file and PostgreSQL (either way), ids and hashes unchanged.

    The copy is verified before it is committed; a copy that does not verify
    leaves DEST as it was (exit 1). Exit 2 if DEST is SRC, an existing file or
    a database that already holds a ledger; 66 if SRC is missing or cannot be
    reached.

    Example: loyalty db copy /srv/shop/ledger.db postgresql://owner@db.shop/loyalty
    """
    from .errors import TamperDetected
    from .store.copy import run

    for value, what in ((source, "SRC"), (destination, "DEST")):
        if not value.strip():
            raise BadArgument(f"{what} is empty; give a ledger file or a postgresql:// URL")
    result = run(source, destination, _timeout())
    show(result.to_json(), "db_copy", as_json)
    if not result.report.ok:
        raise TamperDetected(result.report.problems)


@rules_app.command("check", cls=LoyaltyCommand, epilog=EXIT_CODES_HELP)
def rules_check(
    file: Annotated[
        Path | None,
        typer.Argument(help="Rules file. Default: --rules, LOYALTY_RULES, then the default path."),
    ] = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Validate a rules file and summarise what it defines. Exit 78 if invalid.

    Example: loyalty rules check rules.yaml
    """
    ruleset = load(file or rules)
    program = ruleset.program
    doc = {
        "file": ruleset.source,
        "rules_version": ruleset.version,
        "program": program.name,
        "currency": program.currency,
        "timezone": program.timezone,
        "rounding": program.rounding,
        "locale": program.locale,
        "rules": [
            {
                "rule": r.id,
                "on": r.on,
                "priority": r.priority,
                "stop": r.stop,
                # where it is judged on a receipt of several lines (purchases only)
                "scope": r.scope if r.on == "purchase" else None,
                "exclude": r.exclude,
                "line": r.location.line,
            }
            for r in ruleset.rules
        ],
        "rewards": [
            {"reward": w.id, "name": w.name, "cost": w.cost} for w in ruleset.rewards.values()
        ],
    }
    if ruleset.games is not None:
        doc["games"] = [
            {"game": g.id, "name": g.name, "kind": g.kind, "line": g.line}
            for g in ruleset.games.games
        ]
        badges: list[dict[str, object]] = [
            {"badge": b.id, "name": b.name} for b in ruleset.games.badges
        ]
        doc["badges"] = badges
    show(doc, "rules", as_json, program.locale)


@rules_app.command("test", cls=LoyaltyCommand, epilog=EXIT_CODES_HELP)
def rules_test(
    file: Annotated[
        Path | None,
        typer.Argument(help="Rules file. Default: --rules, LOYALTY_RULES, then the default path."),
    ] = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Run the test cases in the rules file's `tests:` section. Exit 1 if any fails.

    Each case gives a customer, one activity and the points each rule should give;
    a rule it does not name should give nothing. For CI or a git pre-commit hook.

    Example: loyalty rules test rules.yaml
    """
    from . import rulestest

    ruleset = load(file or rules)
    report = rulestest.run(ruleset)
    show(report.to_json(), "rules_test", as_json, ruleset.program.locale)
    failed = rulestest.failure(report)
    if failed is not None:
        raise failed


@rules_app.command("show", cls=LoyaltyCommand, epilog=EXIT_CODES_HELP)
def rules_show(
    version: Annotated[
        str,
        typer.Argument(
            metavar="VERSION", help="A rules version's hash, or its first 4 or more hex digits."
        ),
    ],
    diff: Annotated[
        bool, typer.Option("--diff", help="Show how the current rules (--rules) differ from it.")
    ] = False,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Print a rules text the ledger keeps: every version that ever wrote is stored.

    Example: loyalty rules show 3f2a9c1b --diff
    """
    from .explain import show_version

    current = load(rules) if diff else _report_rules(rules)
    with open_ledger(db, create=False, read_only=True) as store:
        doc = show_version(store, version, current, diff)
    show(doc, "rules_show", as_json)


@command()
def explain(
    txn: Annotated[
        str,
        typer.Argument(
            metavar="TXN",
            help="The operation's txn, or entry:N for an entry id from history "
            "(enrollments, expiries and tier changes have no txn).",
        ),
    ],
    diff: Annotated[
        bool,
        typer.Option(
            "--diff", help="Show how the current rules (--rules) differ from those of then."
        ),
    ] = False,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Explain a past operation under the rules as they stood then: each rule that
    fired with its arithmetic, each that did not and why, and the rules version.

    Example: loyalty explain R-1042 --diff
    """
    from .explain import explain as explain_past

    txn = check_text(txn, "TXN", CUSTOMER_ID_MAX)
    # The current rules, to say whether they are the ones of then: --diff needs them,
    # otherwise the default file is read only if it is there.
    current = load(rules) if diff else _report_rules(rules)
    with open_ledger(db, create=False, read_only=True) as store:
        doc = explain_past(store, current, txn, diff)
    show(doc, "explain", as_json)


@command()
def simulate(
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="First day replayed under the new rules, YYYY-MM-DD (shop-local). Default: "
            "the beginning. Earlier operations are replayed under the rules they were "
            "recorded with.",
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Last day replayed, YYYY-MM-DD (shop-local). Default: today."),
    ] = None,
    customers: Annotated[
        int,
        typer.Option(
            "--customers",
            help="How many customers gaining and losing most to list.",
            min=1,
            max=MAX_ROWS,
        ),
    ] = 10,
    as_csv: Annotated[
        bool,
        typer.Option(
            "--csv", help="One CSV row per customer: balances and tiers, actual and simulated."
        ),
    ] = False,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Replay the recorded history under other rules (--rules NEW.yaml), in memory, and
    compare with what was awarded: points, liability, points per rule, tiers, rewards,
    the customers gaining and losing most, and what the new rules would refuse.
    Writes nothing: the ledger is opened read-only.

    Example: loyalty simulate --rules new-rules.yaml --from 2026-01-01 --customers 20
    """
    from .simulate import simulate as replay_history
    from .simulate import today_default

    if as_csv and as_json:
        raise BadArgument("--csv and --json are two outputs; give one")
    ruleset = load(rules)
    today = today_default(ruleset, now())
    first = _report_date(from_, "--from")
    last = _report_date(to, "--to") or today
    if first is not None and first > last:
        raise BadArgument(f"--from {first} is after --to {last}", field="--from")
    with open_ledger(db, create=False, read_only=True) as store:
        result = replay_history(store, ruleset, first, last, customers)
    if as_csv:
        from .exports import write_csv

        header, rows = result.table()
        write_csv(header, rows, sys.stdout)
        return
    show(result.to_json(), "simulate", as_json, ruleset.program.locale)


@command()
def demo(
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="Where to build the demo ledger (replaced if it exists). "
            "Default: demo.db next to the default ledger.",
        ),
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option("--rules", help="Rules file. Default: the bundled rules.example.yaml."),
    ] = None,
    as_json: JsonOption = None,
) -> None:
    """Build a demo ledger from rules.example.yaml: enroll, earn, redeem, show balances.

    Example: loyalty demo
    """
    from .demo import bundled_rules, run_demo

    default_target = default_db().with_name("demo.db")
    target = db or default_target
    if str(target).startswith(("postgresql:", "postgres:")):
        # The demo builds and replaces its own file; a server's ledger is never replaced.
        raise BadArgument(
            "demo builds its own SQLite file and never writes to a PostgreSQL ledger; "
            "give --db a file path (or none)",
            field="--db",
            code="unsupported_backend",
        )
    if target.exists() and target != default_target:
        # Only the demo's own default file is ever replaced: --db might point
        # at a real ledger, and ledgers are never deleted.
        raise BadArgument(f"demo will not overwrite {target}; remove it or pick a new --db path")
    target.parent.mkdir(parents=True, exist_ok=True)
    ruleset = load(rules or bundled_rules())
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with open_ledger(str(target)) as store:
        steps = run_demo(store, ruleset)
    doc = {"db": str(target), "rules": ruleset.source, "steps": steps}
    show(doc, "demo", as_json, ruleset.program.locale)


# --- reports -------------------------------------------------------------------


def _report_rules(rules: Path | None) -> Ruleset | None:
    """Reports read the rules only for the time zone, currency, point_value and
    tiers: an explicit --rules (or LOYALTY_RULES) must load, the default path is
    used only if there is something there (and then it must load too)."""
    if rules is not None:
        return load(rules)
    _not_blank("LOYALTY_RULES")
    from .rules import load_rules_if_present

    return load_rules_if_present(default_rules())


def _report_date(text: str | None, what: str) -> date | None:
    return None if text is None else parse_date(text, what=what)


@command()
def report(
    name: Annotated[
        str,
        typer.Argument(
            metavar="[NAME]",
            help="summary (default), customers, activity, rules, tiers, segments, liability, "
            "clv or games.",
        ),
    ] = "summary",
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="First day of the period, YYYY-MM-DD (shop-local, included). "
            "Default: the day of the first entry.",
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Last day of the period, YYYY-MM-DD (shop-local, included). Default: --as-of.",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            "--at",
            help="Balances, tiers, segments and liability as the ledger stood at the end of "
            "this shop-local day, YYYY-MM-DD. Default: --to, else today. --at is the same "
            "option.",
        ),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            help="activity: one row per day, week or month (default); clv: the calibration "
            "check per week or month (default)."
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(
            help="customers: spend (default), balance, purchases, earned, redeemed, "
            "last_purchase, first_purchase, id or name; clv: clv (default), spend, p_alive, "
            "expected, purchase_days, last_purchase, first_purchase or id."
        ),
    ] = None,
    top: Annotated[
        int | None,
        typer.Option(help="customers, clv: only the first N rows.", min=1, max=MAX_ROWS),
    ] = None,
    horizon: Annotated[
        str | None,
        typer.Option(
            help="clv: how far ahead to predict: 12m (months, the default), 39w, 90d or 2y; "
            "at most 10y."
        ),
    ] = None,
    discount_rate: Annotated[
        str | None,
        typer.Option(
            "--discount-rate",
            help="clv: annual rate future spend is discounted at, 0 to 1 (default 0.10, 10%).",
        ),
    ] = None,
    calibration_end: Annotated[
        str | None,
        typer.Option(
            "--calibration-end",
            help="clv: fit the model on the history up to this day, YYYY-MM-DD, and compare "
            "its predictions with what happened after it, up to --as-of.",
        ),
    ] = None,
    segment: Annotated[
        str | None, typer.Option(help="segments: list the customers in this segment.")
    ] = None,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Write RFC 4180 CSV with a header row to stdout.")
    ] = False,
    db: DbOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = None,
) -> None:
    """Reports from the ledger: summary, customers, activity, rules, tiers, segments,
    liability, clv (customer lifetime value), games.

    Example: loyalty report activity --by week --from 2026-11-01 --to 2026-11-30
    """
    from . import reports

    if as_csv and as_json:
        raise BadArgument("--csv and --json are two outputs; give one")
    given = {
        "--horizon": horizon,
        "--discount-rate": discount_rate,
        "--calibration-end": calibration_end,
    }
    clv_options = tuple(option for option, value in given.items() if value is not None)
    request = reports.Request(name, bool(from_ or to), by, sort, top, segment, clv_options)
    request.check()
    first = _report_date(from_, "--from")
    last = _report_date(to, "--to")
    day = _report_date(as_of, "--as-of")
    lifetime_options = None
    if name == "clv":
        lifetime_options = _clv_options(horizon, discount_rate, calibration_end, sort, top, by)
    ruleset = _report_rules(rules)
    with open_ledger(db, create=False) as store:
        from .store.queries import shop_timezone

        shop = reports.Shop.of(ruleset, shop_timezone(store.conn))

        from .clock import shop_day, zone

        today = shop_day(now(), zone(shop.timezone))
        span = reports.period(store, shop.timezone, today, first, last, day)
        if name == "games":
            from .operations import games_report

            if ruleset is None:
                raise BadArgument("the games report needs the rules file that has the games")
            result: Any = games_report(store, ruleset, span.first, span.last, span.as_of)
        elif lifetime_options is not None:
            from . import lifetime

            campaigns = [] if ruleset is None else lifetime.campaigns_of(ruleset)
            result = lifetime.build(store, shop, span, lifetime_options, campaigns)
        else:
            result = reports.build(request, store, shop, span)
    if as_csv:
        table = result.table()
        from .exports import write_csv

        write_csv(table.header, table.rows, sys.stdout)
        for warning in getattr(result, "warnings", ()):
            say(f"warning: {warning}")  # CSV has no place for them; a person does
        return
    show(result.to_json(), f"report_{name}", as_json, shop.locale)


def _clv_options(
    horizon: str | None,
    discount_rate: str | None,
    calibration_end: str | None,
    sort: str | None,
    top: int | None,
    by: str | None,
) -> Any:
    """The clv report's options, each checked before the ledger is opened."""
    from . import lifetime

    options = lifetime.Options(
        lifetime.parse_horizon(horizon or lifetime.DEFAULT_HORIZON),
        lifetime.DEFAULT_DISCOUNT_RATE
        if discount_rate is None
        else lifetime.parse_discount_rate(discount_rate),
        _report_date(calibration_end, "--calibration-end"),
        sort or "clv",
        top,
        by or "month",
    )
    options.check()
    return options


from . import cli_reach  # noqa: E402, F401  (registers notices, statement, messages)
from .cli_customer import customer_app  # noqa: E402  (it builds on the helpers above)

app.add_typer(customer_app, name="customer")


# The options `loyalty` itself takes before a command, and whether each takes a
# value (a flag pair such as --json/--no-json takes none).
_BEFORE = {flag: "/" not in shown for shown in _GLOBAL.values() for flag in shown.split("/")}


def _named(args: list[str]) -> str | None:
    """The command a command line names, when only --db, --rules and --json come
    before it; None for anything else (--help, --version, no command)."""
    words = iter(args)
    for word in words:
        option = word.split("=", 1)[0]
        if option not in _BEFORE:
            return None if word.startswith("-") else word
        if _BEFORE[option] and "=" not in word:
            next(words, None)
    return None


@functools.cache
def _app_named(name: str) -> typer.Typer:
    only = copy.copy(app)
    only.registered_commands = [
        c
        for c in app.registered_commands
        if (c.name or get_command_name(getattr(c.callback, "__name__", ""))) == name
    ]
    only.registered_groups = [g for g in app.registered_groups if g.name == name]
    return only


def app_for(args: list[str]) -> typer.Typer:
    """The app to run this command line with: only the command it names. Typer
    builds every command's options from its signature each time an app runs, about
    0.1 s for all forty, and a process runs one (a till calls `loyalty` in a loop).
    The whole app answers anything else: help, completion, a misspelt command."""
    name = _named(args)
    if name is None or any(key.endswith("_COMPLETE") for key in os.environ):
        return app
    only = _app_named(name)
    return only if only.registered_commands or only.registered_groups else app


def main() -> None:
    app_for(sys.argv[1:])(prog_name="loyalty")
