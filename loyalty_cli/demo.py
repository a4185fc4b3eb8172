"""The demo: a small, deterministic story told through the real use cases.

It runs over Black Friday 2026 so that the example rules' campaign, first-purchase
bonus, referral, review cap, a redemption, a refund, an expiry and a tier upgrade
all show up. Business times are fixed
(`at`), so the demo gives the same points whenever it is run.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from . import reports
from .accounts import balance
from .models import Ruleset
from .nightly import run_nightly
from .operations import (
    EarnRequest,
    EnrollRequest,
    RedeemRequest,
    RefundRequest,
    earn,
    enroll,
    progress,
    redeem,
    refund,
    tier_of,
)
from .store import Store


def bundled_rules() -> Path:
    """rules.example.yaml: shipped inside the wheel, or at the top of a source checkout."""
    packaged = resources.files("loyalty_cli").joinpath("rules.example.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "rules.example.yaml"


def run_demo(store: Store, ruleset: Ruleset) -> list[dict[str, object]]:
    tz = ZoneInfo(ruleset.program.timezone)

    def at(day: int, hour: int) -> datetime:
        return datetime(2026, 11, day, hour, 0, tzinfo=tz).astimezone(UTC)

    now = datetime.now(UTC).replace(microsecond=0)
    steps: list[dict[str, object]] = []

    def step(command: str, result: dict[str, object]) -> None:
        steps.append({"command": command, "result": result})

    # Linus joined last year and never came back: his welcome points expire.
    joined = datetime(2025, 10, 1, 9, 0, tzinfo=tz)
    step(
        'loyalty enroll linus --name "Linus Torvalds" --at 2025-10-01T09:00',
        enroll(
            store, ruleset, EnrollRequest("linus", name="Linus Torvalds", at=joined), now
        ).to_json(),
    )
    for cid, name, referrer, day in (
        ("ada", "Ada Lovelace", None, 20),
        ("grace", "Grace Hopper", "ada", 21),
        ("alan", "Alan Turing", None, 21),
    ):
        joining = EnrollRequest(cid, name=name, referred_by=referrer, at=at(day, 9))
        extra = f" --referred-by {referrer}" if referrer else ""
        step(
            f'loyalty enroll {cid} --name "{name}"{extra}',
            enroll(store, ruleset, joining, now).to_json(),
        )
    # Ada has a coffee on her way in each morning: her card fills on the 25th.
    for n, day in enumerate((20, 21, 22, 23, 25)):
        txn = f"C-{n + 1:03d}"
        request = EarnRequest(
            "ada", "purchase", amount=Decimal("3.00"), category="coffee", txn=txn, at=at(day, 10)
        )
        explain = day == 25
        step(
            f"loyalty earn ada --amount 3.00 --category coffee --txn {txn}"
            + (" --explain" if explain else ""),
            earn(store, ruleset, request, now, explain=explain).to_json(),
        )
    purchases = (
        ("ada", "42.50", "shoes", 24, "R-1001"),  # a Tuesday, but ada is not yet a regular
        ("grace", "18.00", None, 24, "R-1002"),
        ("alan", "120.00", "bags", 28, "R-1003"),  # Black Friday weekend: double points
        ("ada", "35.00", "gift-card", 28, "R-1004"),  # gift cards earn nothing
        ("grace", "300.00", "shoes", 28, "R-1005"),  # enough for Silver, once it is not pending
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
            earn(store, ruleset, request, now, explain=explain).to_json(),
        )
    retry = EarnRequest("ada", "purchase", amount=Decimal("42.50"), category="shoes", txn="R-1001")
    step(
        "loyalty earn ada --amount 42.50 --category shoes --txn R-1001   # a retry: no change",
        earn(store, ruleset, retry, now).to_json(),
    )
    for day in (25, 26):  # the review rule is capped at once a month
        request = EarnRequest("grace", "review", at=at(day, 11))
        step(
            "loyalty earn grace --event review --explain",
            earn(store, ruleset, request, now, explain=True).to_json(),
        )
    spend = RedeemRequest("ada", reward="coffee", at=at(29, 10))
    step("loyalty redeem ada --reward coffee", redeem(store, ruleset, spend, now).to_json())
    # Alan brings one bag back inside the return window: its pending points go.
    back = RefundRequest("R-1003", amount=Decimal("40.00"), txn="RF-1003", at=at(30, 12))
    step(
        "loyalty refund R-1003 --amount 40.00 --txn RF-1003",
        refund(store, ruleset, back, now).to_json(),
    )
    # Two weeks on, the nightly step: grace's purchase has cleared its return window
    # (Silver), and linus's points reached their expiry.
    night = date(2026, 12, 13)
    step(
        "loyalty nightly --as-of 2026-12-13",
        run_nightly(store, ruleset, night, now).to_json(),
    )
    as_of = datetime.combine(night, time(12), tz)
    step("loyalty tier grace --at 2026-12-13", tier_of(store, ruleset, "grace", as_of).to_json())
    for cid in ("ada", "grace", "alan", "linus"):
        step(f"loyalty balance {cid} --at 2026-12-13", balance(store, cid, now, as_of).to_json())
    # Ada's card is full: her coffee came free, and the Regular badge earns her 1.1x.
    if ruleset.games is not None and ruleset.games.games:
        step("loyalty progress ada", progress(store, ruleset, "ada", as_of).to_json())
    # And the owner's view of it all: the summary report, as of that night.
    program = ruleset.program
    shop = reports.Shop(program.timezone, program.currency, program.point_value, ruleset.tiers)
    span = reports.period(store, program.timezone, night)
    step("loyalty report --as-of 2026-12-13", reports.summary(store, shop, span).to_json())
    return steps
