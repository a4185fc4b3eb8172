"""Rich views for people. The only module that imports Rich.

Each view draws the same dict that `--json` prints, so the table and the JSON
cannot disagree. Rich honours NO_COLOR and writes no escape codes into a pipe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

Doc = dict[str, Any]

_console = Console(highlight=False)
_errors = Console(highlight=False, stderr=True)


# The shop's locale (the rules file's `program.locale`), for figures and money; None:
# plain figures with a comma between thousands and the currency's code after them.
_locale: str | None = None


def show(view: str, doc: Doc, locale: str | None = None) -> None:
    global _locale
    _locale = locale
    from . import whatif_views

    blocks = whatif_views.VIEWS.get(view)
    if blocks is not None:
        _blocks(blocks(doc))
        return
    VIEWS[view](doc)


def _blocks(blocks: list[Any]) -> None:
    """Draw the plain blocks of whatif_views: lines of text and tables."""
    from .whatif_views import Line

    for block in blocks:
        if isinstance(block, Line):
            _console.print(Text(block.text, block.style), soft_wrap=True)
            continue
        table = _report_table(*block.columns, numeric=block.numeric, title=block.title)
        for row in block.rows:
            table.add_row(*row)
        _fit(table)


def _babel(name: str) -> Any:
    """babel's Locale for a name, else None (see formats.py, which owns babel)."""
    from .formats import locale_of

    return locale_of(name)


def known_locale(name: str) -> bool:
    from .formats import known_locale as known

    return known(name)


def _table(*columns: str, title: str | None = None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", show_edge=False)
    for name in columns:
        table.add_column(name, justify="right" if name in ("Points", "Id", "Cost") else "left")
    return table


def _signed(points: int) -> str:
    return f"+{_num(points)}" if points > 0 else _num(points)


def _lines(doc: Doc) -> None:
    if doc["lines"]:
        table = _table("Rule", "Points", "How")
        for line in doc["lines"]:
            how = line["detail"] if "reward" not in line else f"{line['detail']}, free"
            table.add_row(line["rule"], _signed(line["points"]), how)
        _console.print(table)
    if doc.get("zero_points"):
        table = _table("Fired for 0 points", "Why")
        for zero in doc["zero_points"]:
            table.add_row(zero["rule"], zero["reason"])
        _console.print(table)
    if doc.get("games"):
        table = _table("Game moved", "Progress")
        for moved in doc["games"]:
            table.add_row(moved["game"], moved["progress"])
        _console.print(table)
    if doc.get("skipped"):
        table = _table("Did not fire", "Why")
        for skip in doc["skipped"]:
            table.add_row(skip["rule"], skip["reason"])
        _console.print(table)


def _items(items: list[Doc]) -> None:
    """A receipt's lines, each with its points by rule."""
    table = _table("Line", "Item", "Qty", "Amount", "Points", "By rule")
    for item in items:
        what = " / ".join(v for v in (item["category"], item["sku"]) if v)
        if item.get("excluded_by"):
            how = f"excluded by {item['excluded_by']}"
        elif "excluded_by" not in item:
            how = ""
        else:
            how = ", ".join(f"{x['rule']} {_signed(x['points'])}" for x in item.get("lines", []))
        table.add_row(
            str(item["number"]),
            what,
            _num(item["quantity"]),
            _money(item["amount"], None),
            _signed(item["points"]),
            how,
        )
    _console.print(table)


def _headline(doc: Doc, what: str) -> None:
    """`C1 <what> · balance N`, with a note when nothing was written."""
    head = Text.assemble(
        (doc["customer_id"], "bold"), f" {what} · balance ", (_num(doc["balance"]), "bold")
    )
    if doc.get("duplicate"):
        head.append(f"  (already recorded under txn {doc['txn']}: nothing changed)", "yellow")
    if doc.get("dry_run"):
        head.append("  (dry run: nothing written)", "yellow")
    _console.print(head)


def earn(doc: Doc) -> None:
    what = (
        f"{_money(doc['amount'], None)} purchase"
        if doc["event"] == "purchase"
        else f"'{doc['event']}'"
    )
    _headline(doc, f"earned {_num(doc['points'])} points for a {what}")
    if doc.get("items"):
        _items(doc["items"])
    _lines(doc)
    if not doc["lines"] and "skipped" not in doc:
        _console.print("No rule gave points; add --explain to see why.")


def enroll(doc: Doc) -> None:
    name = f" ({doc['name']})" if doc["name"] else ""
    if not doc["created"]:
        _console.print(f"{doc['customer_id']}{name} was already enrolled; nothing changed")
        return
    _console.print(
        Text.assemble(
            "Enrolled ",
            (doc["customer_id"], "bold"),
            f"{name} · {_num(doc['points'])} points · balance ",
            (_num(doc["balance"]), "bold"),
        )
    )
    _lines(doc)
    referral = doc["referral"]
    if referral:
        _console.print(
            f"Referrer {referral['customer_id']} earned {_num(referral['points'])} points "
            f"· balance {_num(referral['balance'])}"
        )
        _lines(referral)


def points(doc: Doc) -> None:
    verb = "redeemed" if doc["kind"] == "redeem" else "adjusted by"
    amount = _num(-doc["points"]) if doc["kind"] == "redeem" else _signed(doc["points"])
    why = f" for {doc['reason']}" if doc["kind"] == "redeem" and doc["reason"] else ""
    if doc["kind"] == "adjust":
        why = f": {doc['reason']}"
    _headline(doc, f"{verb} {amount} points{why}")


def refund(doc: Doc) -> None:
    took = -doc["points"]
    _headline(
        doc,
        f"refunded {doc['amount']} of {doc['purchase_amount']} on {doc['refund_of']}: "
        f"{took} points taken back",
    )
    if doc["shortfall"]:
        _console.print(
            f"{doc['shortfall']} of the {doc['clawback']} points due could not be taken back: "
            "the balance was too small (refund_shortfall: within_balance)"
        )


def tier(doc: Doc) -> None:
    head = Text.assemble(
        (doc["customer_id"], "bold"), " is ", (doc["name"], "bold"), f" (x{doc['multiplier']})"
    )
    if doc["perks"]:
        head.append(f" · {doc['perks']}")
    _console.print(head)
    spend = doc["metric"] == "spend"
    unit = "spent" if spend else "points earned"
    suffix = "_spend" if spend else "_points"
    qualifying, to_next, to_keep = (
        _amount(doc[k + suffix]) for k in ("qualifying", "to_next", "to_keep")
    )
    since = f" since {doc['window_start']}" if doc["window_start"] else ""
    _console.print(f"Qualifying: {qualifying} {unit}{since} ({doc['window']})")
    if doc["next_tier"]:
        _console.print(f"Next: {doc['next_tier']}, {to_next} more to reach it")
    if doc["tier_until"]:
        short = to_keep not in ("", "0", "0.00")
        keep = f"; {to_keep} more in this window keeps it longer" if short else ""
        _console.print(f"Held until {doc['tier_until']}{keep}")
    if doc["override"]:
        floor = doc["override"]
        until = f" until {floor['until']}" if floor["until"] else ""
        _console.print(f"Set by hand to {floor['tier']}{until}: {floor['reason']}")


def tiers(doc: Doc) -> None:
    table = _table("Tier", "Name", "Customers", title=f"Tiers as of {doc['as_of']}")
    table.columns[2].justify = "right"
    for row in doc["tiers"]:
        table.add_row(row["tier"], row["name"], _num(row["customers"]))
    _console.print(table)
    _chart([(row["tier"], row["customers"]) for row in doc["tiers"]], "magenta")


def rewards(doc: Doc) -> None:
    who = doc["customer_id"]
    columns = ["Reward", "Name", "Cost", "Conditions"] + (["Now"] if who else [])
    title = f"{who} has {doc['available']} points available" if who else "Rewards"
    table = _table(*columns, title=title)
    for reward in doc["rewards"]:
        conditions = []
        if reward["tiers"]:
            conditions.append("tiers: " + ", ".join(reward["tiers"]))
        if reward["limit"]:
            conditions.append(f"{reward['limit']['count']} per {reward['limit']['per']}")
        if reward["available_from"] or reward["available_to"]:
            conditions.append(
                f"{reward['available_from'] or '...'} to {reward['available_to'] or '...'}"
            )
        row = [reward["reward"], reward["name"], _num(reward["cost"]), "; ".join(conditions)]
        if who:
            row.append(
                Text("yes", "green") if reward["can_redeem"] else Text(reward["why_not"], "yellow")
            )
        table.add_row(*row)
    _console.print(table)


def nightly(doc: Doc) -> None:
    days = (
        doc["as_of"]
        if doc["days_from"] == doc["days_to"]
        else (f"{doc['days_from']} to {doc['days_to']}")
    )
    _console.print(
        Text.assemble(("Nightly step", "bold"), f" for {days}: {doc['members']} members")
    )
    table = _table("Step", "Count", "Points")
    table.columns[1].justify = table.columns[2].justify = "right"
    table.add_row("birthdays awarded", _num(doc["birthdays"]), _num(doc["birthday_points"]))
    table.add_row("birthdays refused (set < 30 days before)", _num(doc["birthdays_refused"]), "")
    table.add_row(
        "customers with points expired", _num(doc["expired_customers"]), _num(doc["expired_points"])
    )
    table.add_row("tier upgrades", _num(doc["tier_upgrades"]), "")
    table.add_row("tier downgrades", _num(doc["tier_downgrades"]), "")
    table.add_row("points no longer pending", "", _num(doc["became_available"]))
    if doc.get("streaks_broken") or doc.get("challenges_missed"):
        table.add_row("game streaks broken", _num(doc["streaks_broken"]), "")
        table.add_row("challenges closed unfinished", _num(doc["challenges_missed"]), "")
    _console.print(table)


def profile(doc: Doc) -> None:
    changed = ", ".join(doc["changed_fields"]) or "nothing (same as before)"
    _console.print(Text.assemble((doc["customer_id"], "bold"), f" updated: {changed}"))


def customer(doc: Doc) -> None:
    """`customer show`: who, consent per channel, tier, then the balance table.
    Days are the shop's (a time just after midnight is not the UTC day before)."""
    from zoneinfo import ZoneInfo

    shop = ZoneInfo(doc["timezone"])

    def day(stamp: str) -> str:
        return datetime.fromisoformat(stamp).astimezone(shop).date().isoformat()

    head = Text.assemble((doc["customer_id"], "bold"))
    if doc["name"]:
        head.append(f" {doc['name']}")
    head.append(f" · enrolled {day(doc['enrollment']['occurred_at'])}")
    _console.print(head)
    if doc["erased"]:
        erased = doc["erased"]
        _console.print(f"Erased on {day(erased['occurred_at'])}: {erased['reason']}")
    if doc["merged_into"]:
        into = doc["merged_into"]
        _console.print(
            f"Merged into {into['customer_id']} on {day(into['occurred_at'])}: "
            f"{into['reason']} (use {into['customer_id']})"
        )
    for each in doc["merged"]:
        _console.print(
            f"Merged from {each['customer_id']} on {day(each['occurred_at'])}: {each['reason']}"
        )
    contacts = [f"{k}: {doc[k]}" for k in ("email", "phone", "birthday") if doc[k]]
    if contacts:
        _console.print(" · ".join(contacts))
    if doc["referred_by"]:
        _console.print(f"Referred by {doc['referred_by']}")
    for channel in ("email", "sms"):
        state = doc[f"{channel}_consent"]
        if state is None:
            _console.print(f"Marketing by {channel}: never asked")
        else:
            source = f" ({state['source']})" if state["source"] else ""
            given = day(state["occurred_at"])
            _console.print(f"Marketing by {channel}: {state['status']} {given}{source}")
    if doc["tier_status"]:
        t = doc["tier_status"]
        _console.print(Text.assemble("Tier: ", (t["name"], "bold"), f" (x{t['multiplier']})"))
    _balance_table([doc])


def erase(doc: Doc) -> None:
    if doc["already_erased"]:
        said = f"{doc['customer_id']} was already erased on {doc['occurred_at'][:10]}"
    else:
        fields = ", ".join(doc["erased_fields"]) or "no personal fields held"
        said = f"{doc['customer_id']} erased: {fields}"
    if not doc["purged"]:
        # A file's reader held its log, or a server's till role may not rewrite the table.
        said += (
            " (old copies not cleared yet: run it again later, on a server as the ledger's"
            " owner, to finish)"
        )
    _console.print(said)


def audience(doc: Doc) -> None:
    """`customer list`: who the list holds, then who the selection left out and why."""
    table = _report_table(
        "Customer", "Name", doc["channel"].capitalize(), "Tier", "Balance", "Expiring", numeric=2
    )
    for row in doc["rows"]:
        expiring = ""
        if row["expiring_points"]:
            expiring = f"{_num(row['expiring_points'])} from {row['next_expiry']}"
        contact = row["email"] if doc["channel"] == "email" else row["phone"]
        table.add_row(
            row["customer_id"], row["name"] or "", contact, row["tier"] or "",
            _num(row["balance"]), expiring,
        )  # fmt: skip
    _console.print(table)
    left = []
    if doc["no_contact"]:
        left.append(f"{_num(doc['no_contact'])} without an address")
    if doc["no_consent"]:
        left.append(f"{_num(doc['no_consent'])} without consent")
    said = f"{_num(doc['customers'])} of {_num(doc['selected'])} selected"
    _errors.print(said + (f" ({', '.join(left)} left out)" if left else ""))


def notices(doc: Doc) -> None:
    """`notices`: one line per notice, and whether it was given."""
    table = _table("Customer", "Notice", "What", "Given")
    for row in doc["rows"]:
        given = row["given_at"][:10] if row["given_at"] else ""
        table.add_row(row["customer_id"], row["kind"], row["message"], given)
    _console.print(table)
    if doc["marked_given"]:
        _errors.print(f"{_num(doc['marked_given'])} notices marked given")


def statements(doc: Doc) -> None:
    _console.print(
        f"{_num(doc['customers'])} {doc['format']} statements written in {doc['folder']}"
    )


def messages(doc: Doc) -> None:
    """`messages`: what was due, sent or written, and who was left out."""
    table = _table("Customer", "To", "Subject")
    for row in doc["rows"]:
        table.add_row(row["customer_id"], row["to"], row["subject"])
    _console.print(table)
    done = {
        "smtp": f"{_num(doc['sent'])} sent",
        "csv": f"written to {', '.join(doc['files'])}",
        "eml": f"{_num(len(doc['files']))} .eml files written",
        "dry_run": "nothing sent (dry run)",
    }[doc["mode"]]
    left = f"{_num(doc['already_sent'])} sent before"
    left += f", {_num(doc['no_address'])} without an address"
    left += f", {_num(doc['no_consent'])} without consent"
    _errors.print(f"{_num(len(doc['rows']))} due: {done}; {left}")


def transfer(doc: Doc) -> None:
    again = " (already recorded)" if doc["duplicate"] else ""
    _console.print(
        Text.assemble(
            f"{_num(doc['points'])} points from ", (doc["from_customer"], "bold"),
            " to ", (doc["to_customer"], "bold"), f"{again}: balances now ",
            f"{_num(doc['from_balance'])} and {_num(doc['to_balance'])}",
        )
    )  # fmt: skip


def merge(doc: Doc) -> None:
    again = " (already recorded)" if doc["duplicate"] else ""
    tier = f", tier {doc['tier']}" if doc["tier"] else ""
    _console.print(
        Text.assemble(
            (doc["duplicate_customer"], "bold"), " merged into ", (doc["keep_customer"], "bold"),
            f"{again}: {_num(doc['points'])} points moved in {len(doc['lots'])} lots; "
            f"balance now {_num(doc['balance'])}{tier}",
        )
    )  # fmt: skip


def import_summary(doc: Doc) -> None:
    """For people, on stderr: stdout stays free for data."""
    verb = "would import" if doc["dry_run"] else "imported"
    _errors.print(
        f"{', '.join(doc['files'])}: {doc['rows_read']} rows, {verb} {doc['imported']}, "
        f"{doc['duplicates']} already imported, {doc['rejected']} rejected"
        + (f", {doc['rows_skipped']} skipped (no customer)" if doc["rows_skipped"] else "")
        + "; "
        f"{_num(doc['points'])} points for {_num(doc['customers'])} customers in {doc['seconds']} s"
    )


@contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr (rows/s and time left); call the tick once per row."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TimeRemainingColumn,
    )

    class RowsPerSecond(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text(f"{task.speed:,.0f} rows/s" if task.speed else "")

    bar = Progress(
        label,
        BarColumn(),
        MofNCompleteColumn(),
        RowsPerSecond(),
        TimeRemainingColumn(),
        console=_errors,
        transient=True,
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


def balance(doc: Doc) -> None:
    _balance_table([doc])


def _balance_table(docs: list[Doc]) -> None:
    table = _table(
        "Customer", "Name", "Balance", "Available", "Pending", "Expiring", "Earned", "Redeemed"
    )
    for column in table.columns[2:]:
        column.justify = "right"
    for doc in docs:
        expiring = ""
        if doc["expiring_30_days"]:
            expiring = f"{doc['expiring_30_days']} from {doc['next_expiry']}"
        table.add_row(
            doc["customer_id"],
            doc["name"] or "",
            Text(_num(doc["balance"]), "bold"),
            _num(doc["available"]),
            _num(doc["pending"]),
            expiring,
            _num(doc["points_earned"]),
            _num(doc["points_redeemed"]),
        )
    _console.print(table)


def history(doc: Doc) -> None:
    from zoneinfo import ZoneInfo

    shop = ZoneInfo(doc["timezone"])
    table = _table(
        "Id",
        "When (shop time)",
        "Kind",
        "Points",
        "Rule / reward",
        "Detail / reason",
        title=f"{doc['customer_id']} · balance {_num(doc['balance'])}",
    )
    when = table.columns[1]
    when.no_wrap, when.min_width = True, 23  # "2026-11-22 16:31 +00:00": never cut or wrapped
    for e in doc["entries"]:
        local = datetime.fromisoformat(e["occurred_at"]).astimezone(shop)
        table.add_row(
            str(e["entry"]),
            f"{local:%Y-%m-%d %H:%M} {local.isoformat()[-6:]}",
            e["kind"],
            _signed(e["points"]),
            e["rule"] or e["reward"] or "",
            e["reason"] or e["detail"] or "",
        )
    _console.print(table)
    for receipt in doc.get("receipts", []):
        if receipt["kind"] == "refund":
            label = "returned" + (f" under {receipt['txn']}" if receipt["txn"] else "")
        else:
            label = f"lines of {receipt['txn'] or 'a receipt'}"
        _console.print(f"{label}:")
        _items([{**item, "lines": []} for item in receipt["items"]])


def verify(doc: Doc) -> None:
    counts = (
        f"{doc['entry_count']} entries, {doc['operation_count']} operations, "
        f"{doc['members']} members"
    )
    if doc["ok"]:
        _console.print(
            Text.assemble(("Ledger OK", "bold green"), f": {counts}; hash chains intact")
        )
        return
    _console.print(Text.assemble(("Ledger BROKEN", "bold red"), f": {counts}"))
    for problem in doc["problems"]:
        _console.print(f"  - {problem}")


def backup(doc: Doc) -> None:
    if doc["ok"]:
        _console.print(
            Text.assemble(
                ("Backup OK", "bold green"),
                f": {doc['backup']} ({doc['bytes']:,} bytes), {doc['operation_count']} "
                f"operations, {doc['members']} members; verified",
            )
        )
        return
    _console.print(Text.assemble(("Backup NOT written", "bold red"), ": the copy does not verify"))
    for problem in doc["problems"]:
        _console.print(f"  - {problem}")


def db_init(doc: Doc) -> None:
    done = "created" if doc["created"] else "already there"
    tills = f"; till roles granted: {', '.join(doc['tills'])}" if doc["tills"] else ""
    _console.print(f"Ledger {doc['db']}: schema {doc['schema_version']} {done}{tills}")


def db_copy(doc: Doc) -> None:
    rows = ", ".join(f"{n:,} {table}" for table, n in doc["rows"].items())
    if doc["ok"]:
        _console.print(
            Text.assemble(("Copied", "bold green"), f" {doc['source']} to {doc['destination']}")
        )
        _console.print(f"  {rows}; verified, hash chains end where the source's do")
        return
    _console.print(Text.assemble(("Copy NOT kept", "bold red"), ": it does not verify"))
    for problem in doc["problems"]:
        _console.print(f"  - {problem}")


def rules(doc: Doc) -> None:
    _console.print(
        Text.assemble(
            (doc["program"], "bold"),
            f" · {doc['currency']} · {doc['timezone']} · rounding {doc['rounding']} · "
            f"version {doc['rules_version'][:12]}",
        )
    )
    locale = doc.get("locale")
    if locale and not known_locale(locale):
        shown = "its language's" if _babel(locale) is not None else "plain"
        _console.print(
            Text(f"locale {locale} is not one babel knows: figures are shown in {shown} form")
        )
    table = _table("Rule", "On", "Priority", "Stop", "Per", "Line")
    for rule in doc["rules"]:
        per = rule.get("scope") or ""
        table.add_row(
            rule["rule"],
            rule["on"],
            str(rule["priority"]),
            "stop" if rule["stop"] else "",
            f"{per}, excludes" if rule.get("exclude") else per,
            str(rule["line"]),
        )
    _console.print(table)
    if doc["rewards"]:
        table = _table("Reward", "Name", "Cost")
        for reward in doc["rewards"]:
            table.add_row(reward["reward"], reward["name"], _num(reward["cost"]))
        _console.print(table)
    if doc.get("games"):
        table = _table("Game", "Name", "Kind", "Line")
        for game in doc["games"]:
            table.add_row(game["game"], game["name"], game["kind"], str(game["line"]))
        _console.print(table)
    if doc.get("badges"):
        _console.print("Badges: " + ", ".join(b["name"] for b in doc["badges"]))
    _console.print(f"{doc['file']}: OK, {len(doc['rules'])} rules, {len(doc['rewards'])} rewards")


def demo(doc: Doc) -> None:
    _console.print(
        Text.assemble("Demo ledger: ", (doc["db"], "bold"), f"  (rules: {doc['rules']})")
    )
    balances: list[Doc] = []
    shown_at = ""
    for step in doc["steps"]:
        command = step["command"]
        view = command.split()[1]
        if view == "balance":  # shown together, as one table, after the last of them
            balances.append(step["result"])
            shown_at = command
            continue
        if balances:
            _demo_balances(balances, shown_at)
            balances = []
        _console.print(Text(f"\n$ {command}", style="cyan"))
        VIEWS[_DEMO_VIEWS.get(view, view)](step["result"])
    if balances:
        _demo_balances(balances, shown_at)


def _demo_balances(balances: list[Doc], command: str) -> None:
    ids = " ".join(b["customer_id"] for b in balances)
    at = " --at " + command.split("--at ")[1] if "--at " in command else ""
    _console.print(Text(f"\n$ for c in {ids}; do loyalty balance $c{at}; done", style="cyan"))
    _balance_table(balances)


# --- reports -----------------------------------------------------------------------
# Numbers right-aligned, money with its currency, rates as percentages to one decimal.


def _money(amount: str | None, currency: str | None) -> str:
    """Money as the shop writes it: with a locale, babel's form (`£1,234.50`,
    `1.234,50 €`); without, `1,234.50 USD`."""
    if amount is None:
        return ""
    from decimal import Decimal

    from .formats import money

    return money(Decimal(amount), currency, _locale)


def _amount(value: str | int | None) -> str:
    """A tier's figure, money or points, with thousands separators."""
    if value is None:
        return ""
    return _num(value) if isinstance(value, int) else _money(value, None)


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _segment(key: str) -> str:
    """A segment's key as words: cant_lose -> can't lose."""
    return key.replace("_", " ").replace("cant", "can't")


def _num(value: int) -> str:
    from .formats import number

    return number(value, _locale)


def _report_table(*columns: str, numeric: int, title: str | None = None) -> Table:
    """A table whose first `len(columns) - numeric` columns are text, the rest numbers.
    The title goes on a line of its own: a table's title wraps at the table's width."""
    if title:
        _console.print(Text(title, "bold"))
    table = _table(*columns)
    for column in table.columns[len(columns) - numeric :]:
        column.justify = "right"
    return table


def _fit(table: Table, drop: tuple[str, ...] = ()) -> None:
    """Print a report table so that it fits the terminal without cutting a figure:
    numbers and money (the right-aligned columns) and single words are as wide as
    their widest cell, so they never wrap; when the table is wider than the
    terminal, the columns in `drop` are left out, in that order, until it fits, and
    a line says which (JSON and CSV have them all)."""
    # Figures, and single words (ids, dates, segments): exactly as wide as their
    # widest cell or their header, so Rich never cuts them when it narrows the table
    # (it narrows only the columns of several words, which wrap); when that is too
    # wide, their headers wrap at their words.
    fixed = []
    for column in table.columns:
        cells = [_plain(cell) for cell in column.cells]
        if column.justify == "right" or not any(" " in cell for cell in cells):
            widest = max([*(cell_len(cell) for cell in cells), 1])
            header = _plain(column.header)
            words = max([*(cell_len(word) for word in header.split()), 1])
            fixed.append((column, max(widest, cell_len(header)), max(widest, words)))
    for column, full, _ in fixed:
        column.width = full
    if _needed(table) > _console.width:
        for column, _, tight in fixed:
            column.width = tight
    left_out = []
    for header in drop:
        if _needed(table) <= _console.width:
            break
        found = next((c for c in table.columns if c.header == header), None)
        if found is not None:
            table.columns.remove(found)
            left_out.append(header)
    _console.print(table)
    if left_out:
        _console.print(
            Text(
                f"Left out to fit {_console.width} columns: {', '.join(left_out)} "
                "(a wider terminal shows them; --json and --csv have them all)",
                "dim",
            )
        )


def _plain(cell: object) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def _needed(table: Table) -> int:
    """How wide the table must be for no word or figure to be cut (Rich's own measure)."""
    from rich.measure import Measurement

    unbounded = _console.options.update_width(10_000)  # else it is clamped to the console
    return Measurement.get(_console, unbounded, table).minimum


def _span(doc: Doc) -> str:
    if "from" in doc:
        return f"{doc['from']} to {doc['to']} (as of {doc['as_of']}, {doc['timezone']})"
    return f"as of {doc['as_of']} ({doc['timezone']})"


def report_summary(doc: Doc) -> None:
    cur = doc["currency"]
    table = _report_table("", "", numeric=1, title=f"Summary, {_span(doc)}")
    table.show_header = False
    rows = [
        ("Members", _num(doc["members"])),
        ("New in the period", _num(doc["new_members"])),
        ("Active in the period", _num(doc["active_members"])),
        ("Purchases", _num(doc["purchases"])),
        ("Revenue", _money(doc["revenue"], cur)),
        (f"Refunds ({_num(doc['refunds'])})", _money(doc["refunded"], cur)),
        ("Net revenue", _money(doc["net_revenue"], cur)),
        ("Average order value", _money(doc["average_order_value"], cur)),
        ("Repeat purchase rate", _pct(doc["repeat_purchase_rate"])),
        ("Points earned", _num(doc["points_earned"])),
        ("Points redeemed", _num(doc["points_redeemed"])),
        ("Redemption rate", _pct(doc["redemption_rate"])),
        ("Points expired", _num(doc["points_expired"])),
        ("Points adjusted", _num(doc["points_adjusted"])),
        ("Points taken back by refunds", _num(doc["points_refunded"])),
        ("Points outstanding", _num(doc["points_outstanding"])),
    ]
    if doc["liability_value"] is not None:
        rows.append(
            (
                f"Liability at {doc['point_value']} a point",
                _money(doc["liability_value"], cur),
            )
        )
    for label, value in rows:
        table.add_row(label, value)
    _fit(table)


def report_customers(doc: Doc) -> None:
    cur = doc["currency"]
    shown = len(doc["rows"])
    title = f"Customers by {doc['sort']}, {_span(doc)}: {shown} of {doc['total']}"
    table = _report_table(
        "Customer",
        "Name",
        "Tier",
        "First purchase",
        "Last purchase",
        "Purchases",
        "Lifetime spend",
        "Earned",
        "Redeemed",
        "Balance",
        numeric=5,
        title=title,
    )
    for c in doc["rows"]:
        table.add_row(
            c["customer_id"],
            c["name"] or "",
            c["tier"] or "",
            c["first_purchase"] or "",
            c["last_purchase"] or "",
            _num(c["purchases"]),
            _money(c["lifetime_spend"], cur),
            _num(c["points_earned"]),
            _num(c["points_redeemed"]),
            Text(_num(c["balance"]), "bold"),
        )
    _fit(table, ("First purchase", "Last purchase", "Redeemed", "Earned", "Tier", "Purchases"))


_SPARKS = "▁▂▃▄▅▆▇█"


def _sparkline(values: list[int]) -> str:
    top = max(values, default=0)
    if top <= 0:
        return _SPARKS[0] * len(values)
    return "".join(_SPARKS[max(0, v) * (len(_SPARKS) - 1) // top] for v in values)


CHART_WIDTH = 40  # cells of the longest bar: label, figure and bar fit 80 columns


def _chart(bars: list[tuple[str, int]], style: str) -> None:
    """A bar per (label, value), on one scale, under the table it pictures, only on a
    terminal: a picture reads faster there, and a pipe or a cron mail gets the figures
    alone. A chart of its own, so the table keeps its width and its cells never wrap."""
    if not _console.is_terminal or not bars:
        return
    chart = Table(box=None, show_header=False, show_edge=False, pad_edge=False)
    chart.add_column(no_wrap=True, max_width=24, overflow="ellipsis")
    chart.add_column(no_wrap=True, justify="right")
    chart.add_column(no_wrap=True, min_width=CHART_WIDTH)
    top = max((value for _, value in bars), default=0)
    for label, value in bars:
        chart.add_row(label, _num(value), _meter(value, top, style))
    _console.print(chart)


def _meter(value: int, top: int, style: str) -> Text:
    """One bar, `value` on a scale whose longest bar is `top`; a sliver for any value
    above 0, so a small figure is not mistaken for none."""
    if top <= 0 or value <= 0:
        return Text()
    return Text("█" * max(1, value * CHART_WIDTH // top), style)


def _bar(earned: int, redeemed: int, expired: int, top: int, width: int = 24) -> Text:
    """Earned (green) over redeemed (red) and expired (yellow), on one scale."""
    bar = Text()
    if top <= 0:
        return bar
    for value, char, style in (
        (earned, "█", "green"),
        (redeemed, "█", "red"),
        (expired, "█", "yellow"),
    ):
        cells = value * width // top
        if value > 0 and cells == 0:
            cells = 1
        bar.append(char * cells, style)
        bar.append(" ")
    return bar


def report_activity(doc: Doc) -> None:
    cur = doc["currency"]
    rows = doc["rows"]
    revenue = [int(r["revenue"].replace(".", "")) for r in rows]
    _console.print(
        Text.assemble(
            (f"Activity by {doc['by']}, {_span(doc)}", "bold"),
            "\nRevenue  ",
            (_sparkline(revenue), "cyan"),
        )
    )
    top = max(
        (max(r["points_earned"], r["points_redeemed"], r["points_expired"]) for r in rows),
        default=0,
    )
    table = _report_table(
        "Period",
        "Purchases",
        "Revenue",
        "Earned",
        "Redeemed",
        "Expired",
        numeric=5,
    )
    table.add_column("Earned / redeemed / expired", no_wrap=True, min_width=27)
    for r in rows:
        table.add_row(
            r["period"],
            _num(r["purchases"]),
            _money(r["revenue"], cur),
            _num(r["points_earned"]),
            _num(r["points_redeemed"]),
            _num(r["points_expired"]),
            _bar(r["points_earned"], r["points_redeemed"], r["points_expired"], top),
        )
    t = doc["totals"]
    table.add_row(
        Text("Total", "bold"),
        _num(t["purchases"]),
        _money(t["revenue"], cur),
        _num(t["points_earned"]),
        _num(t["points_redeemed"]),
        _num(t["points_expired"]),
        "",
    )
    _fit(table, ("Earned / redeemed / expired", "Expired", "Redeemed"))


def report_rules(doc: Doc) -> None:
    cur = doc["currency"]
    table = _report_table(
        "Rule",
        "Awards",
        "Customers",
        "Points",
        "Share",
        "Revenue it fired on",
        numeric=5,
        title=f"Points by rule, {_span(doc)}: {_num(doc['points'])} points",
    )
    for r in doc["rules"]:
        table.add_row(
            r["rule"],
            _num(r["awards"]),
            _num(r["customers"]),
            _num(r["points"]),
            _pct(r["share"]),
            _money(r["revenue"], cur),
        )
    _fit(table, ("Customers", "Awards", "Revenue it fired on"))
    _chart([(r["rule"], r["points"]) for r in doc["rules"]], "green")


def game_progress(doc: Doc) -> None:
    _console.print(Text.assemble((doc["customer_id"], "bold"), f"'s games, {doc['as_of']}"))
    table = _table("Game", "Progress", "Next")
    for g in doc["games"]:
        table.add_row(g["name"], g["progress"], g["next_reward"] or "")
    _console.print(table)
    if doc["badges"]:
        held = ", ".join(f"{b['name']} ({b['date']})" for b in doc["badges"])
        _console.print(f"Badges: {held}")
    for near in doc["reach"]:
        _console.print(Text(f"Within reach: {near}", "green"))


def report_games(doc: Doc) -> None:
    span = f"{doc['from']} to {doc['to']}" if doc["from"] else f"to {doc['to']}"
    table = _report_table(
        "Game",
        "Customers",
        "Rounds",
        "Points",
        "Rewards",
        "Badges",
        numeric=5,
        title=f"Games, {span}",
    )
    for g in doc["games"]:
        table.add_row(
            g["name"],
            _num(g["customers"]),
            _num(g["rounds_completed"]),
            _num(g["points"]),
            _num(g["rewards_given"]),
            _num(g["badges_given"]),
        )
    _fit(table, ("Badges", "Rewards"))


def report_tiers(doc: Doc) -> None:
    table = _report_table(
        "Tier",
        "Name",
        "Customers",
        "Upgraded in",
        "Downgraded in",
        "Upgraded out",
        "Downgraded out",
        numeric=5,
        title=f"Tiers, {_span(doc)}: {doc['upgrades']} upgrades, {doc['downgrades']} downgrades",
    )
    for t in doc["tiers"]:
        table.add_row(
            t["tier"],
            t["name"],
            _num(t["customers"]),
            _num(t["upgrades_in"]),
            _num(t["downgrades_in"]),
            _num(t["upgrades_out"]),
            _num(t["downgrades_out"]),
        )
    _fit(table, ("Downgraded out", "Upgraded out", "Downgraded in", "Upgraded in"))
    _chart([(t["tier"], t["customers"]) for t in doc["tiers"]], "magenta")


def report_segments(doc: Doc) -> None:
    if "rows" in doc:
        cur = doc["currency"]
        table = _report_table(
            "Customer",
            "Name",
            "Last purchase",
            "RFM",
            "Days since",
            "Purchases",
            "Spend",
            numeric=3,
            title=f"Segment {doc['segment']}, {_span(doc)}: {len(doc['rows'])} customers",
        )
        for m in doc["rows"]:
            table.add_row(
                m["customer_id"],
                m["name"] or "",
                m["last_purchase"],
                m["rfm"],
                _num(m["recency_days"]),
                _num(m["frequency"]),
                _money(m["monetary"], cur),
            )
        _fit(table, ("Days since", "Last purchase", "RFM"))
        return
    table = _report_table(
        "Segment",
        "Customers",
        "Share",
        numeric=2,
        title=f"RFM segments, {_span(doc)}: {_num(doc['customers'])} purchasing customers",
    )
    for s in doc["segments"]:
        table.add_row(_segment(s["segment"]), _num(s["customers"]), _pct(s["share"]))
    _fit(table)
    _chart([(_segment(s["segment"]), s["customers"]) for s in doc["segments"]], "cyan")


def report_liability(doc: Doc) -> None:
    cur = doc["currency"]
    head = f"Points outstanding {_span(doc)}: {_num(doc['points_outstanding'])}"
    if doc["value"] is not None:
        head += f" = {_money(doc['value'], cur)} at {doc['point_value']} a point"
    _console.print(Text(head, "bold"))
    if doc["pending"]:
        _console.print(f"of which pending (in the return window): {_num(doc['pending'])}")
    if doc["debt"]:
        _console.print(f"less {_num(doc['debt'])} owed by customers (refunds beyond their balance)")
    for key, title in (
        ("by_earn_month", "Outstanding by the month it was earned"),
        ("expiring_by_month", "Expiring, by the month of the last day it can be spent"),
    ):
        table = _report_table("Month", "Points", "Value", numeric=2, title=title)
        for b in doc[key]:
            table.add_row(b["month"], _num(b["points"]), _money(b["value"], cur))
        never = doc["never_expire"] if key == "expiring_by_month" else 0
        if never:
            table.add_row("never", _num(never), "")
        _fit(table)
        bars = [(b["month"], b["points"]) for b in doc[key]]
        _chart(bars + ([("never", never)] if never else []), "yellow")


def _ratio(value: float | None, places: int = 2) -> str:
    return "" if value is None else f"{value:,.{places}f}"


def report_clv(doc: Doc) -> None:
    cur = doc["currency"]
    model = doc["model"]
    # Without a fit there are only the historical figures: no empty columns for the rest.
    fitted_model = model["bgnbd"] is not None
    title = (
        f"Customer lifetime value, {_span(doc)}: the next {doc['horizon']} "
        f"({doc['horizon_weeks']:.1f} weeks), discounted at {float(doc['discount_rate']):.0%} "
        "a year"
    )
    for warning in doc["warnings"]:
        _errors.print(f"warning: {warning}")
    groups = (
        ("Tier", "tier", "tiers", "tier"),
        ("RFM segment", "RFM segment", "segments", "segment"),
    )
    for label, by, key, field in groups:
        if not doc[key]:
            continue
        predicted = ("Expected days", "CLV", "Average CLV", "Average P(alive)")
        table = _report_table(
            label,
            "Customers",
            "Spend",
            *(predicted if fitted_model else ()),
            numeric=6 if fitted_model else 2,
            title=f"By {by}, {_span(doc)}",
        )
        for g in [*doc[key], {field: "all", **doc["totals"]}]:
            cells = [
                _segment(g[field]) if field == "segment" else g[field],
                _num(g["customers"]),
                _money(g["spend"], cur),
            ]
            if fitted_model:
                cells += [
                    _ratio(g["expected_purchase_days"]),
                    _money(g["clv"], cur),
                    _money(g["average_clv"], cur),
                    "" if g["average_p_alive"] is None else _pct(g["average_p_alive"]),
                ]
            table.add_row(*cells)
        _fit(table, ("Average P(alive)", "Expected days", "Spend", "Average CLV"))
    predicted = ("P(alive)", "Expected days", "Expected average", "CLV")
    table = _report_table(
        "Customer",
        "Name",
        "Segment",
        "First purchase",
        "Last purchase",
        "Days bought",
        "Spend",
        "Average",
        *(predicted if fitted_model else ()),
        numeric=7 if fitted_model else 3,
        title=f"{title}: {len(doc['rows'])} of {doc['customers']} by {doc['sort']}",
    )
    for c in doc["rows"]:
        line: list[str | Text] = [
            c["customer_id"],
            c["name"] or "",
            _segment(c["segment"]),
            c["first_purchase"],
            c["last_purchase"],
            _num(c["purchase_days"]),
            _money(c["spend"], cur),
            _money(c["average_spend"], cur),
        ]
        if fitted_model:
            line += [
                "" if c["p_alive"] is None else _pct(c["p_alive"]),
                _ratio(c["expected_purchase_days"]),
                _money(c["expected_average_spend"], cur),
                Text(_money(c["clv"], cur), "bold"),
            ]
        table.add_row(*line)
    _fit(
        table,
        (
            "Name",
            "First purchase",
            "Expected average",
            "Average",
            "Last purchase",
            "Segment",
            "Expected days",
            "Days bought",
        ),
    )
    b, g = model["bgnbd"], model["gamma_gamma"]
    fitted = (
        f"Fitted on {_num(model['customers'])} customers ({_num(model['repeat_buyers'])} came "
        f"back) up to {model['fitted_to']}, time in {model['time_unit']}s"
    )
    if b is not None:
        fitted += (
            f"; BG/NBD r={b['r']:.3f} alpha={b['alpha']:.3f} a={b['a']:.3f} b={b['b']:.3f} "
            f"(log-likelihood {b['log_likelihood']:,.1f})"
        )
    if g is not None:
        fitted += f"; Gamma-Gamma p={g['p']:.3f} q={g['q']:.3f} gamma={g['gamma']:.3f}"
    _console.print(fitted)
    calibration = doc["calibration"]
    if calibration is not None:
        _console.print(
            Text(
                f"Check: fitted up to {calibration['end']}, then {calibration['holdout_from']} "
                f"to {calibration['holdout_to']}: {calibration['predicted']:,.1f} repeat "
                f"purchase days predicted, {_num(calibration['actual'])} happened",
                "bold",
            )
        )
        table = _report_table(
            "Repeat purchases up to the end",
            "Customers",
            "Predicted after, each",
            "Actual after, each",
            numeric=3,
        )
        for row in calibration["by_repeat_purchases"]:
            table.add_row(
                row["repeat_purchases"],
                _num(row["customers"]),
                _ratio(row["predicted"]),
                _ratio(row["actual"]),
            )
        _fit(table)
        table = _report_table(
            "Period", "Predicted", "Actual", "Cumulative predicted", "Cumulative actual", numeric=4
        )
        for row in calibration["periods"]:
            table.add_row(
                row["period"],
                _ratio(row["predicted"], 1),
                _num(row["actual"]),
                _ratio(row["cumulative_predicted"], 1),
                _num(row["cumulative_actual"]),
            )
        _fit(table, ("Cumulative predicted", "Cumulative actual"))
    for c in doc["campaigns"]:
        table = _report_table(
            f"Campaign {c['rule']}",
            "Days",
            "Purchases a day",
            "Revenue a day",
            "Active customers",
            "Revenue per active customer",
            numeric=5,
        )
        for label, w in (("before", c["before"]), ("during", c["during"])):
            table.add_row(
                f"{label} ({w['from']} to {w['to']})",
                _num(w["days"]),
                _ratio(w["purchases_per_day"]),
                _money(w["revenue_per_day"], cur),
                _num(w["active_customers"]),
                _money(w["revenue_per_active_customer"], cur),
            )
        _fit(table, ("Revenue per active customer", "Active customers"))
        _console.print(f"({c['note']})")


_DEMO_VIEWS = {"redeem": "points", "adjust": "points", "report": "report_summary"}


VIEWS: dict[str, Callable[[Doc], None]] = {
    "earn": earn,
    "enroll": enroll,
    "points": points,
    "refund": refund,
    "tier": tier,
    "tiers": tiers,
    "rewards": rewards,
    "nightly": nightly,
    "profile": profile,
    "customer": customer,
    "audience": audience,
    "notices": notices,
    "statements": statements,
    "messages": messages,
    "transfer": transfer,
    "merge": merge,
    "erase": erase,
    "import": import_summary,
    "balance": balance,
    "history": history,
    "verify": verify,
    "backup": backup,
    "db_init": db_init,
    "db_copy": db_copy,
    "rules": rules,
    "demo": demo,
    "report_summary": report_summary,
    "report_customers": report_customers,
    "report_activity": report_activity,
    "report_rules": report_rules,
    "report_tiers": report_tiers,
    "report_segments": report_segments,
    "report_liability": report_liability,
    "report_clv": report_clv,
    "report_games": report_games,
    "progress": game_progress,
}
