"""Rich views for people. The only module that imports Rich.

Each view draws the same dict that `--json` prints, so the table and the JSON
cannot disagree. Rich honours NO_COLOR and writes no escape codes into a pipe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

Doc = dict[str, Any]

_console = Console(highlight=False)
_errors = Console(highlight=False, stderr=True)


def show(view: str, doc: Doc) -> None:
    VIEWS[view](doc)


def _table(*columns: str, title: str | None = None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", show_edge=False)
    for name in columns:
        table.add_column(name, justify="right" if name in ("Points", "Id", "Cost") else "left")
    return table


def _signed(points: int) -> str:
    return f"+{points}" if points > 0 else str(points)


def _lines(doc: Doc) -> None:
    if doc["lines"]:
        table = _table("Rule", "Points", "How")
        for line in doc["lines"]:
            how = line["detail"] if "reward" not in line else f"{line['detail']}, free"
            table.add_row(line["rule"], _signed(line["points"]), how)
        _console.print(table)
    if doc.get("skipped"):
        table = _table("Did not fire", "Why")
        for skip in doc["skipped"]:
            table.add_row(skip["rule"], skip["reason"])
        _console.print(table)


def _headline(doc: Doc, what: str) -> None:
    """`C1 <what> · balance N`, with a note when nothing was written."""
    head = Text.assemble(
        (doc["customer_id"], "bold"), f" {what} · balance ", (str(doc["balance"]), "bold")
    )
    if doc.get("duplicate"):
        head.append(f"  (already recorded under txn {doc['txn']}: nothing changed)", "yellow")
    if doc.get("dry_run"):
        head.append("  (dry run: nothing written)", "yellow")
    _console.print(head)


def earn(doc: Doc) -> None:
    what = f"{doc['amount']} purchase" if doc["event"] == "purchase" else f"'{doc['event']}'"
    _headline(doc, f"earned {doc['points']} points for a {what}")
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
            f"{name} · {doc['points']} points · balance ",
            (str(doc["balance"]), "bold"),
        )
    )
    _lines(doc)
    referral = doc["referral"]
    if referral:
        _console.print(
            f"Referrer {referral['customer_id']} earned {referral['points']} points "
            f"· balance {referral['balance']}"
        )
        _lines(referral)


def points(doc: Doc) -> None:
    verb = "redeemed" if doc["kind"] == "redeem" else "adjusted by"
    amount = -doc["points"] if doc["kind"] == "redeem" else _signed(doc["points"])
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
    unit = "spent" if doc["metric"] == "spend" else "points earned"
    since = f" since {doc['window_start']}" if doc["window_start"] else ""
    _console.print(f"Qualifying: {doc['qualifying']} {unit}{since} ({doc['window']})")
    if doc["next_tier"]:
        _console.print(f"Next: {doc['next_tier']}, {doc['to_next']} more to reach it")
    if doc["tier_until"]:
        short = doc["to_keep"] not in (None, 0, "0.00")
        keep = f"; {doc['to_keep']} more in this window keeps it longer" if short else ""
        _console.print(f"Held until {doc['tier_until']}{keep}")
    if doc["override"]:
        floor = doc["override"]
        until = f" until {floor['until']}" if floor["until"] else ""
        _console.print(f"Set by hand to {floor['tier']}{until}: {floor['reason']}")


def tiers(doc: Doc) -> None:
    table = _table("Tier", "Name", "Customers", title=f"Tiers as of {doc['as_of']}")
    table.columns[2].justify = "right"
    for row in doc["tiers"]:
        table.add_row(row["tier"], row["name"], str(row["customers"]))
    _console.print(table)


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
        row = [reward["id"], reward["name"], str(reward["cost"]), "; ".join(conditions)]
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
        Text.assemble(("Nightly step", "bold"), f" for {days}: {doc['customers']} customers")
    )
    table = _table("Step", "Count", "Points")
    table.columns[1].justify = table.columns[2].justify = "right"
    table.add_row("birthdays awarded", str(doc["birthdays"]), str(doc["birthday_points"]))
    table.add_row("birthdays refused (set < 30 days before)", str(doc["birthdays_refused"]), "")
    table.add_row(
        "customers with points expired", str(doc["expired_customers"]), str(doc["expired_points"])
    )
    table.add_row("tier upgrades", str(doc["tier_upgrades"]), "")
    table.add_row("tier downgrades", str(doc["tier_downgrades"]), "")
    table.add_row("points no longer pending", "", str(doc["became_available"]))
    _console.print(table)


def profile(doc: Doc) -> None:
    changed = ", ".join(doc["changed"]) or "nothing (same as before)"
    _console.print(Text.assemble((doc["customer_id"], "bold"), f" updated: {changed}"))


def import_summary(doc: Doc) -> None:
    """For people, on stderr: stdout stays free for data."""
    verb = "would import" if doc["dry_run"] else "imported"
    _errors.print(
        f"{', '.join(doc['files'])}: {doc['rows']} rows, {verb} {doc['imported']}, "
        f"{doc['duplicates']} already imported, {doc['rejected']} rejected; "
        f"{doc['points']} points for {doc['customers']} customers in {doc['seconds']} s"
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
            Text(str(doc["balance"]), "bold"),
            str(doc["available"]),
            str(doc["pending"]),
            expiring,
            str(doc["earned"]),
            str(doc["redeemed"]),
        )
    _console.print(table)


def history(doc: Doc) -> None:
    table = _table(
        "Id",
        "When (UTC)",
        "Kind",
        "Points",
        "Rule / reward",
        "Detail / reason",
        title=f"{doc['customer_id']} · balance {doc['balance']}",
    )
    when = table.columns[1]
    when.no_wrap, when.min_width = True, 16  # "2026-11-22 16:31": never cut or wrapped
    for e in doc["entries"]:
        table.add_row(
            str(e["id"]),
            e["occurred_at"][:16].replace("T", " "),
            e["kind"],
            _signed(e["points"]),
            e["rule"] or e["reward"] or "",
            e["reason"] or e["detail"] or "",
        )
    _console.print(table)


def verify(doc: Doc) -> None:
    counts = (
        f"{doc['entries']} entries, {doc['operations']} operations, {doc['customers']} customers"
    )
    if doc["ok"]:
        _console.print(
            Text.assemble(("Ledger OK", "bold green"), f": {counts}; hash chains intact")
        )
        return
    _console.print(Text.assemble(("Ledger BROKEN", "bold red"), f": {counts}"))
    for problem in doc["problems"]:
        _console.print(f"  - {problem}")


def rules(doc: Doc) -> None:
    _console.print(
        Text.assemble(
            (doc["program"], "bold"),
            f" · {doc['currency']} · {doc['timezone']} · rounding {doc['rounding']} · "
            f"version {doc['version'][:12]}",
        )
    )
    table = _table("Rule", "On", "Priority", "Stop", "Line")
    for rule in doc["rules"]:
        table.add_row(
            rule["id"],
            rule["on"],
            str(rule["priority"]),
            "stop" if rule["stop"] else "",
            str(rule["line"]),
        )
    _console.print(table)
    if doc["rewards"]:
        table = _table("Reward", "Name", "Cost")
        for reward in doc["rewards"]:
            table.add_row(reward["id"], reward["name"], str(reward["cost"]))
        _console.print(table)
    _console.print(f"{doc['file']}: OK, {len(doc['rules'])} rules, {len(doc['rewards'])} rewards")


def demo(doc: Doc) -> None:
    _console.print(
        Text.assemble("Demo ledger: ", (doc["db"], "bold"), f"  (rules: {doc['rules']})")
    )
    balances = []
    for step in doc["steps"]:
        command = step["command"]
        view = command.split()[1]
        if view == "balance":  # shown together, as one table, at the end
            balances.append(step["result"])
            continue
        _console.print(Text(f"\n$ {command}", style="cyan"))
        VIEWS[_DEMO_VIEWS.get(view, view)](step["result"])
    if balances:
        ids = " ".join(b["customer_id"] for b in balances)
        at = " --at " + command.split("--at ")[1] if "--at " in command else ""
        _console.print(Text(f"\n$ for c in {ids}; do loyalty balance $c{at}; done", style="cyan"))
        _balance_table(balances)


_DEMO_VIEWS = {"redeem": "points", "adjust": "points"}


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
    "import": import_summary,
    "balance": balance,
    "history": history,
    "verify": verify,
    "rules": rules,
    "demo": demo,
}
