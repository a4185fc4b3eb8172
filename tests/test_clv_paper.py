"""`report clv` reproduces the published fits on the CDNOW sample.

The sample (2,357 customers who first bought at CDNOW in the first quarter of
1997, followed to the end of June 1998) is imported through `import-csv` as a
till export, and the report is fitted on weeks 1-39 (to 1997-09-30), as in
Fader, Hardie and Lee (2005), "Counting your customers the easy way"
(BG/NBD: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4;
customer 1, x = 2, t_x = 30.43, T = 38.86 weeks, expects 1.226 purchases in
the next 39 weeks), and "RFM and CLV" (Gamma-Gamma on the 946 repeat buyers:
p = 6.25, q = 3.74, gamma = 15.44).

The file lives in the project's shared data, beside the repository
(`<repo>/../shared/data`); the test is skipped, saying so, when it is absent.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Shop

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "CDNOW_sample.txt"

RULES = """\
program: {name: CDNOW, currency: USD, timezone: UTC}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
"""


def till_export(sample: Path, target: Path) -> int:
    """The sample as a till's CSV: one row per line, keyed by its line number.
    Returns how many of its 0.00 rows were written as 0.01.

    The ledger refuses a purchase of 0.00 (README, Limits: an amount is more
    than 0), and eight CDNOW customers' only purchase is $0.00. They are
    written as 0.01, which changes no published figure: BG/NBD reads dates
    only, and Gamma-Gamma reads repeat purchases, which these customers have
    none of."""
    zero = 0
    with sample.open() as rows, target.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["txn_id", "customer_id", "date", "quantity", "amount"])
        for line, row in enumerate(rows, 1):
            _, customer, day, cds, dollars = row.split()
            if float(dollars) == 0:
                dollars, zero = "0.01", zero + 1
            writer.writerow([f"cdnow-{line}", customer, day, cds, dollars])
    return zero


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not SAMPLE.exists():
        pytest.skip(f"the CDNOW sample is not at {SAMPLE} (the project's shared/data)")
    shop = Shop(tmp_path_factory.mktemp("cdnow"))
    shop.write_rules(RULES)
    export = shop.dir / "cdnow.csv"
    assert till_export(SAMPLE, export) == 8
    imported = shop.ok("import-csv", str(export), "--enroll-unknown", "--date-format", "%Y%m%d")
    assert (imported["rows_read"], imported["imported"], imported["rejected"]) == (6919, 6919, 0)
    return shop.ok(
        "report",
        "clv",
        "--calibration-end",
        "1997-09-30",
        "--as-of",
        "1998-06-30",
        "--horizon",
        "39w",
    )


def test_bgnbd_matches_the_paper(fitted: dict[str, Any]) -> None:
    model = fitted["model"]
    assert model["time_unit"] == "week"
    assert model["fitted_to"] == "1997-09-30"
    assert (model["customers"], model["repeat_buyers"]) == (2357, 946)
    b = model["bgnbd"]
    assert b["converged"]
    assert (round(b["r"], 3), round(b["alpha"], 3)) == (0.243, 4.414)
    assert (round(b["a"], 3), round(b["b"], 3)) == (0.793, 2.426)
    assert round(b["log_likelihood"], 1) == -9582.4
    assert fitted["warnings"] == []


def test_gamma_gamma_matches_the_paper(fitted: dict[str, Any]) -> None:
    g = fitted["model"]["gamma_gamma"]
    assert g["converged"]
    assert g["customers"] == 946
    assert (round(g["p"], 2), round(g["q"], 2), round(g["gamma"], 2)) == (6.25, 3.74, 15.44)


def test_customer_1_expects_what_the_paper_says(fitted: dict[str, Any]) -> None:
    (one,) = [row for row in fitted["rows"] if row["customer_id"] == "0001"]
    # x = 2 repeat purchase days, t_x = 30.43 and T = 38.86 weeks
    assert (one["purchase_days"], one["first_purchase"], one["last_purchase"]) == (
        3,
        "1997-01-01",
        "1997-08-02",
    )
    assert round(one["holdout_expected"], 3) == 1.226  # the 39 weeks after 1997-09-30
    assert round(one["expected_purchase_days"], 3) == 1.226  # --horizon 39w
    assert one["holdout_actual"] == 1  # it bought on 1997-12-12


def test_the_calibration_check_covers_the_39_weeks_after(fitted: dict[str, Any]) -> None:
    check = fitted["calibration"]
    assert (check["holdout_from"], check["holdout_to"], check["holdout_weeks"]) == (
        "1997-10-01",
        "1998-06-30",
        39.0,
    )
    # Every repeat purchase day of the 2,357 after the calibration end, counted
    # here from the file itself.
    days: dict[str, set[str]] = {}
    for row in SAMPLE.read_text().splitlines():
        _, customer, day, _, _ = row.split()
        days.setdefault(customer, set()).add(day)
    later = sum(1 for seen in days.values() for day in seen if day > "19970930")
    assert check["actual"] == later == sum(p["actual"] for p in check["periods"])
    groups = check["by_repeat_purchases"]
    assert [g["repeat_purchases"] for g in groups] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert sum(g["customers"] for g in groups) == 2357
    assert groups[0]["customers"] == 1411  # bought on one day only, by 1997-09-30
    # The model's known fit on this sample: within 15% of what happened overall,
    # and within 0.4 purchase days for every group of customers.
    assert abs(check["predicted"] - later) / later < 0.15
    assert all(abs(g["predicted"] - g["actual"]) < 0.4 for g in groups)
