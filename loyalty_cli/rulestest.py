"""`loyalty rules test`: run the cases of a rules file's `tests:` section.

Each case is one customer, as the case describes them, and one activity, run
through the same decisions as the till (engine/awards.py, engine/refunds.py)
on a Book built in memory: no ledger, no clock. What each rule gave is compared
with what the case expects: a rule the case does not name is expected to give
nothing, so a rule that starts firing where it should not fails too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from .account import Account, Profile, Use
from .clock import shared
from .engine import awards, refunds
from .engine.book import Book
from .engine.lifecycle import today_of
from .engine.requests import EarnRequest, RefundRequest
from .errors import LoyaltyError, Refused
from .lots import Lot
from .models import Award, RuleCase, Ruleset
from .tiers import Override
from .values import to_cents

CUSTOMER = "test-customer"
PURCHASE = "test-purchase"


@dataclass(frozen=True)
class Line:
    rule: str
    expected: int
    actual: int
    why: str  # how the actual points came about, or why the rule did not fire

    @property
    def passed(self) -> bool:
        return self.expected == self.actual


@dataclass(frozen=True)
class Outcome:
    case: RuleCase
    lines: tuple[Line, ...]
    total: int
    refused: str | None = None  # the activity itself was refused (not a points question)

    @property
    def passed(self) -> bool:
        if self.refused is not None:
            return False
        if self.case.total is not None and self.case.total != self.total:
            return False
        return all(line.passed for line in self.lines)


@dataclass(frozen=True)
class Report:
    file: str
    version: str
    outcomes: tuple[Outcome, ...]

    @property
    def failed(self) -> int:
        return sum(not o.passed for o in self.outcomes)

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "rules_version": self.version,
            "tests": len(self.outcomes),
            "tests_passed": len(self.outcomes) - self.failed,
            "tests_failed": self.failed,
            "cases": [_case_json(o) for o in self.outcomes],
        }


def _case_json(outcome: Outcome) -> dict[str, object]:
    case = outcome.case
    return {
        "name": case.name,
        "line": case.location.line,
        "activity": case.event,
        "passed": outcome.passed,
        "refused": outcome.refused,
        "expected_total": case.total if case.total is not None else sum(case.expect.values()),
        "total": outcome.total,
        "rules": [
            {
                "rule": line.rule,
                "expected": line.expected,
                "points": line.actual,
                "passed": line.passed,
                "detail": line.why,
            }
            for line in outcome.lines
        ],
    }


class TestsFailed(Refused):
    """Some cases of `rules test` failed: exit 1, so CI or a pre-commit hook stops."""

    code = "tests_failed"


def run(ruleset: Ruleset) -> Report:
    """Every case of the rules' `tests:` section, in file order."""
    return Report(
        ruleset.source, ruleset.version, tuple(run_case(ruleset, c) for c in ruleset.cases)
    )


def failure(report: Report) -> TestsFailed | None:
    if not report.failed:
        return None
    first = next(o for o in report.outcomes if not o.passed)
    wrong = next((line for line in first.lines if not line.passed), None)
    where = f"{report.file}:{first.case.location.line}"
    what = (
        f"rule '{wrong.rule}' gave {wrong.actual}, expected {wrong.expected}"
        if wrong is not None
        else first.refused or f"total {first.total}, expected {first.case.total}"
    )
    return TestsFailed(
        f"{report.failed} of {len(report.outcomes)} rule tests failed; first: {where}: "
        f"test '{first.case.name}': {what}",
        file=report.file,
        line=first.case.location.line,
        failed=report.failed,
    )


def customer(case: RuleCase, ruleset: Ruleset) -> Account:
    """The customer as the case describes them, as an account the decisions read.
    A tier is given as a floor (as `loyalty tier --set` would), so the customer
    stands at it whatever their spend; usage of capped rules is dated at the
    activity, inside any period."""
    enrolled = case.enrolled or (case.at - timedelta(days=365))
    profile = Profile(
        id=CUSTOMER,
        enrolled_at=min(enrolled, case.at),
        referred_by="referrer" if case.referred else None,
    )
    held: tuple[Lot, ...] = ()
    if case.balance:
        day = shared(today_of(ruleset, enrolled))
        held = (Lot(0, day, day, None, case.balance),)
    uses: list[Use] = []
    for rule, used in case.used.items():
        times = max(used.count, 1 if used.points else 0)
        for i in range(times):
            uses.append(Use(rule, case.at, used.points if i == 0 else 0))
    override = None if case.tier is None else Override(case.tier, None, "rules test")
    return Account(
        profile=profile,
        lots=held,
        net=case.balance,
        purchases=case.purchases,
        spend_cents=to_cents(case.spend),
        override=override,
        uses=tuple(uses),
    )


def run_case(ruleset: Ruleset, case: RuleCase) -> Outcome:
    book = Book(ruleset=ruleset, now=case.at, next_entry=1)
    book.accounts[CUSTOMER] = customer(case, ruleset)
    for rule, used in case.budget_used.items():
        book.budgets.totals[rule] = used
    purchase = case.event in ("purchase", "refund")
    request = EarnRequest(
        CUSTOMER,
        "purchase" if purchase else case.event,
        amount=case.amount if purchase else None,
        category=case.category,
        sku=case.sku,
        quantity=case.quantity,
        txn=PURCHASE,
        at=case.at,
        lines=case.lines,
    )
    try:
        award = awards.earn(book, request, explain=True).award
        given = _given(award)
        why = {line.rule: line.detail for line in award.lines}
        why.update({skip.rule: skip.reason for skip in award.skipped})
        if case.event == "refund":
            back = refunds.refund(book, RefundRequest(PURCHASE, case.refund, at=case.at))
            given = {"refund": back.points}
            why = {"refund": f"{back.clawback} due back on {back.amount} of {back.purchase_amount}"}
    except LoyaltyError as error:
        lines = tuple(Line(rule, points, 0, "") for rule, points in case.expect.items())
        return Outcome(case, lines, 0, refused=error.message)
    names = list(dict.fromkeys([*case.expect, *given]))
    lines = tuple(
        Line(
            rule,
            case.expect.get(rule, 0),
            given.get(rule, 0),
            why.get(rule, "did not fire") if rule in given or rule in why else "did not fire",
        )
        for rule in names
    )
    return Outcome(case, lines, sum(given.values()))


def _given(award: Award) -> dict[str, int]:
    given: dict[str, int] = {}
    for line in award.lines:
        given[line.rule] = given.get(line.rule, 0) + line.points
    return given
