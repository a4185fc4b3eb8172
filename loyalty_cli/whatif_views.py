"""The views for people of `rules test`, `rules show`, `explain` and `simulate`,
as blocks of plain data (lines of text, and tables of cells) drawn from the
documents `--json` prints; render.py draws the blocks with Rich. Kept out of
render.py so the renderer only learns one generic way to draw them.

Prose is wrapped here at 80 columns (a terminal's least), the lines after the
first indented, whatever the terminal or pipe; text shown as it is stored (a
rules file, a diff) is not. Tables fit the terminal in render.py."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

WIDTH = 80

Doc = dict[str, Any]


@dataclass
class Table:
    title: str | None
    columns: list[str]
    numeric: int  # the last `numeric` columns are figures (right-aligned)
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Line:
    text: str
    style: str = ""


Block = Table | Line


def _prose(text: str, style: str = "") -> Line:
    """A line of prose, wrapped at WIDTH columns at its spaces (a path or a
    hash longer than that stays whole)."""
    wrapped = textwrap.wrap(
        text, WIDTH, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False
    )
    return Line("\n".join(wrapped) or text, style)


def _points(value: int | None) -> str:
    return "" if value is None else f"{value:+,}" if value else "0"


def rules_test(doc: Doc) -> list[Block]:
    table = Table(None, ["Test", "Line", "Rule", "Expected", "Points", "Result"], 3)
    failures: list[Block] = []
    for case in doc["cases"]:
        where = f"{doc['file']}:{case['line']}: test '{case['name']}'"
        if case["refused"]:
            table.rows.append([case["name"], str(case["line"]), "-", "", "", "FAIL"])
            failures.append(_prose(f"FAIL {where}: refused: {case['refused']}", "red"))
            continue
        lines = case["rules"] or [
            {"rule": "(none)", "expected": 0, "points": 0, "passed": True, "detail": ""}
        ]
        for i, line in enumerate(lines):
            first = i == 0
            table.rows.append(
                [
                    case["name"] if first else "",
                    str(case["line"]) if first else "",
                    line["rule"],
                    _points(line["expected"]),
                    _points(line["points"]),
                    "ok" if line["passed"] else "FAIL",
                ]
            )
            if not line["passed"]:
                failures.append(
                    _prose(
                        f"FAIL {where}: rule '{line['rule']}' expected {_points(line['expected'])}"
                        f", got {_points(line['points'])} ({line['detail']})",
                        "red",
                    )
                )
        mark = "pass" if case["passed"] else "FAIL"
        table.rows.append(
            ["", "", "total", _points(case["expected_total"]), _points(case["total"]), mark]
        )
        if case["expected_total"] != case["total"] and all(x["passed"] for x in case["rules"]):
            failures.append(
                _prose(
                    f"FAIL {where}: total expected {_points(case['expected_total'])}, "
                    f"got {_points(case['total'])}",
                    "red",
                )
            )
    if not doc["tests"]:
        return [_prose(f"{doc['file']}: no test cases (add a tests: section; see the README)")]
    verdict = "OK" if not doc["tests_failed"] else f"{doc['tests_failed']} FAILED"
    style = "green" if not doc["tests_failed"] else "bold red"
    return [
        table,
        *failures,
        _prose(
            f"{doc['file']}: {doc['tests_passed']} of {doc['tests']} tests passed: {verdict}", style
        ),
    ]


def rules_show(doc: Doc) -> list[Block]:
    current = " (the current rules)" if doc["current"] else ""
    out: list[Block] = [
        _prose(
            f"rules version {doc['rules_version']}{current} · {doc['file']} · "
            f"first used {doc['first_used_at']}",
            "bold",
        )
    ]
    if doc["diff"] is not None:
        out += _diff(doc["diff"])
    else:
        out.append(Line(doc["text"].rstrip("\n")))
    return out


def _diff(lines: list[str]) -> list[Block]:
    if not lines:
        return [Line("no difference: the current rules are the same text", "green")]
    styles = {"+": "green", "-": "red", "@": "cyan"}
    return [Line(line, styles.get(line[:1], "")) for line in lines]


def explain(doc: Doc) -> list[Block]:
    what = doc["operation"]
    if doc["event"] and doc["event"] != what:
        what += f" ({doc['event']})"
    if doc["amount"] is not None:
        what += f" of {doc['amount']}"
    if doc["category"]:
        what += f", category {doc['category']}"
    key = f" {doc['txn']}" if doc["txn"] else ""
    out: list[Block] = [
        _prose(
            f"{doc['customer_id']}{key}: {what} on {doc['shop_day']} · "
            f"{_points(doc['points'])} points",
            "bold",
        )
    ]
    version = doc["rules_version"]
    if version is None:
        out.append(_prose("no rules version is stamped on this operation"))
    else:
        now = {True: "the current rules", False: "not the current rules"}.get(
            doc["rules_current"], "no current rules file to compare"
        )
        out.append(
            _prose(
                f"rules version {version[:12]} ({doc['file']}; {now}): "
                f"loyalty rules show {version[:12]}"
            )
        )
    fired = Table("Fired", ["Rule", "Customer", "Points", "How"], 1)
    for line in doc["fired"]:
        fired.rows.append(
            [
                line["rule"] or line["kind"],
                line["customer_id"],
                _points(line["points"]),
                line["detail"],
            ]
        )
    fired.columns = ["Rule", "Customer", "How", "Points"]
    fired.rows = [[r[0], r[1], r[3], r[2]] for r in fired.rows]
    out.append(fired if fired.rows else Line("No rule gave points."))
    if doc["not_fired"]:
        table = Table("Did not fire", ["Rule", "Why not"], 0)
        table.rows = [[s["rule"], s["reason"]] for s in doc["not_fired"]]
        out.append(table)
    if doc["note"]:
        out.append(_prose(f"note: {doc['note']}", "yellow"))
    if doc["diff"] is not None:
        out.append(Line("How the current rules differ from those of then:", "bold"))
        out += _diff(doc["diff"])
    return out


def simulate(doc: Doc) -> list[Block]:
    period = f"{doc['from'] or 'the start'} to {doc['to'] or 'today'}"
    out: list[Block] = [
        _prose(
            f"Simulated {doc['operations']:,} operations ({period}) under {doc['file']} "
            f"(version {doc['rules_version'][:12]}); nothing was written",
            "bold",
        )
    ]
    totals = Table(None, ["Figure", "Actual", "Simulated", "Difference"], 3)
    for name in doc["totals_actual"]:
        totals.rows.append(
            [
                name.replace("_", " "),
                _fig(doc["totals_actual"][name]),
                _fig(doc["totals_simulated"][name]),
                _fig(doc["totals_difference"][name], signed=True),
            ]
        )
    out.append(totals)
    by_rule = Table("Points per rule", ["Rule", "Actual", "Simulated", "Difference"], 3)
    for row in doc["rules_points"]:
        by_rule.rows.append(
            [
                row["rule"],
                _fig(row["actual"]),
                _fig(row["simulated"]),
                _fig(row["difference"], signed=True),
            ]
        )
    out.append(by_rule)
    if doc["rewards"]:
        rewards = Table("Rewards", ["Reward", "Actual", "Simulated", "Difference"], 3)
        for row in doc["rewards"]:
            rewards.rows.append(
                [
                    row["reward"],
                    _fig(row["actual"]),
                    _fig(row["simulated"]),
                    _fig(row["difference"], signed=True),
                ]
            )
        out.append(rewards)
    if doc["tier_changes"] is not None:
        tiers = Table("Tiers at the end", ["Tier", "Actual", "Simulated", "Difference"], 3)
        for row in doc["tier_changes"]["by_tier"]:
            tiers.rows.append(
                [
                    row["tier"],
                    _fig(row["actual"]),
                    _fig(row["simulated"]),
                    _fig(row["difference"], signed=True),
                ]
            )
        out.append(tiers)
        moves = Table(
            "Customers whose tier would differ",
            ["Customer", "Actual", "Simulated", "First differs"],
            0,
        )
        for row in doc["tier_changes"]["moved"]:
            moves.rows.append(
                [
                    row["customer_id"],
                    row["actual_tier"],
                    row["simulated_tier"],
                    row["first_differs"] or "",
                ]
            )
        if moves.rows:
            out.append(moves)
    for key, title in (("gainers", "Gaining most"), ("losers", "Losing most")):
        table = Table(title, ["Customer", "Actual", "Simulated", "Difference"], 3)
        for row in doc[key]:
            table.rows.append(
                [
                    row["customer_id"],
                    _fig(row["actual"]),
                    _fig(row["simulated"]),
                    _fig(row["difference"], signed=True),
                ]
            )
        if table.rows:
            out.append(table)
    refused = doc["refused"]
    if refused:
        table = Table(
            f"Operations the new rules would refuse ({doc['refused_count']:,})",
            ["When", "Customer", "Operation", "Txn", "Why"],
            0,
        )
        table.rows = [
            [r["occurred_at"], r["customer_id"], r["operation"], r["txn"] or "", r["reason"]]
            for r in refused
        ]
        out.append(table)
    return out


def _fig(value: Any, *, signed: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return f"{value:+,}" if signed and value else f"{value:,}"


VIEWS = {
    "rules_test": rules_test,
    "rules_show": rules_show,
    "explain": explain,
    "simulate": simulate,
}
