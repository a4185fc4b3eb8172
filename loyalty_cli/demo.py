"""The demo: a small, deterministic story told through the real use cases.

It runs over Black Friday 2026 so that the example rules' campaign, first-purchase
bonus, referral, review cap and a redemption all show up. Business times are fixed
(`at`), so the demo gives the same points whenever it is run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from .accounts import balance
from .ledger import Ledger
from .models import Ruleset
from .operations import EarnRequest, EnrollRequest, RedeemRequest, earn, enroll, redeem


def bundled_rules() -> Path:
    """rules.example.yaml: shipped inside the wheel, or at the top of a source checkout."""
    packaged = resources.files("loyalty_cli").joinpath("rules.example.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "rules.example.yaml"


def run_demo(ledger: Ledger, ruleset: Ruleset) -> list[dict[str, object]]:
    tz = ZoneInfo(ruleset.program.timezone)

    def at(day: int, hour: int) -> datetime:
        return datetime(2026, 11, day, hour, 0, tzinfo=tz).astimezone(UTC)

    now = datetime.now(UTC).replace(microsecond=0)
    steps: list[dict[str, object]] = []

    def step(command: str, result: dict[str, object]) -> None:
        steps.append({"command": command, "result": result})

    for cid, name, referrer, day in (
        ("ada", "Ada Lovelace", None, 20),
        ("grace", "Grace Hopper", "ada", 21),
        ("alan", "Alan Turing", None, 21),
    ):
        joining = EnrollRequest(cid, name=name, referred_by=referrer, at=at(day, 9))
        extra = f" --referred-by {referrer}" if referrer else ""
        step(
            f'loyalty enroll {cid} --name "{name}"{extra}',
            enroll(ledger, ruleset, joining, now).to_json(),
        )
    purchases = (
        ("ada", "42.50", "shoes", 24, "R-1001"),  # a Tuesday, but ada is not yet a regular
        ("grace", "18.00", None, 24, "R-1002"),
        ("alan", "120.00", "bags", 28, "R-1003"),  # Black Friday weekend: double points
        ("ada", "35.00", "gift-card", 28, "R-1004"),  # gift cards earn nothing
    )
    for cid, amount, category, day, txn in purchases:
        request = EarnRequest(
            cid, "purchase", amount=Decimal(amount), category=category, txn=txn, at=at(day, 14)
        )
        shown = f" --category {category}" if category else ""
        explain = category == "gift-card"
        step(
            f"loyalty earn {cid} --amount {amount}{shown} --txn {txn}"
            + (" --explain" if explain else ""),
            earn(ledger, ruleset, request, now, explain=explain).to_json(),
        )
    retry = EarnRequest("ada", "purchase", amount=Decimal("42.50"), category="shoes", txn="R-1001")
    step(
        "loyalty earn ada --amount 42.50 --category shoes --txn R-1001   # a retry: no change",
        earn(ledger, ruleset, retry, now).to_json(),
    )
    for day in (25, 26):  # the review rule is capped at once a month
        request = EarnRequest("grace", "review", at=at(day, 11))
        step(
            "loyalty earn grace --event review --explain",
            earn(ledger, ruleset, request, now, explain=True).to_json(),
        )
    spend = RedeemRequest("ada", reward="coffee", at=at(29, 10))
    step("loyalty redeem ada --reward coffee", redeem(ledger, ruleset, spend, now).to_json())
    for cid in ("ada", "grace", "alan"):
        step(f"loyalty balance {cid}", balance(ledger, cid, now).to_json())
    return steps
