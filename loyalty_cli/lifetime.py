"""`loyalty report clv`: what each customer is worth, who is still a customer,
and a check of the model on the shop's own history.

Per customer, from the ledger as of a day: the historical figures (purchase
days, spend, average spend per purchase day), then what the models in clv.py
predict from them: the probability the customer is still "alive", the purchase
days expected over the horizon, the expected spend per purchase day, and the
predicted customer lifetime value (CLV) over the horizon, discounted. Totals
per tier and per RFM segment (the segments report's own scores). With a
calibration end, the models are fitted on the history up to that day and
their predictions compared with what happened after it. And, for each rule
with a campaign window, the window against the same number of days before it.

The models count time in weeks. Nothing here reads the clock, and numpy and
scipy are loaded (by clv.py) only when a report is built.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from .clock import day_number, from_day_number
from .errors import BadArgument
from .reports import Period, Shop, Table, buckets, money, rate, segment, sort_key, tiers_as_of
from .store import Store
from .store import clv as sql
from .store import reports as report_sql
from .values import CENTS

if TYPE_CHECKING:
    from .clv import BgNbd, GammaGamma
    from .models import Ruleset

DAYS_PER_MONTH = 365.25 / 12
MAX_HORIZON_DAYS = 3653  # ten years
MAX_STEPS = 24  # parts of the horizon for discounting
MAX_DISCOUNT_RATE = Decimal(1)  # 100% a year
DEFAULT_HORIZON = "12m"
DEFAULT_DISCOUNT_RATE = Decimal("0.10")
# Below these the models are not fitted (too little to fit), and below the
# second pair they are fitted with a warning that the figures are rough.
MIN_CUSTOMERS, MIN_REPEAT_BUYERS = 20, 5
FEW_CUSTOMERS, FEW_REPEAT_BUYERS = 300, 100
CONDITIONAL_GROUPS = 7  # repeat purchases 0..6, then "7 or more" (the paper's figure 4)

SORTS = {
    # key: (field, descending)
    "clv": ("clv", True),
    "spend": ("spend_cents", True),
    "p_alive": ("p_alive", True),
    "expected": ("expected", True),
    "purchase_days": ("days", True),
    "last_purchase": ("last", True),
    "first_purchase": ("first", False),
    "id": ("customer_id", False),
}


# --- options -----------------------------------------------------------------------


@dataclass(frozen=True)
class Horizon:
    """How far ahead to predict, as typed (`12m`) and in days."""

    text: str
    days: float

    @property
    def weeks(self) -> float:
        return self.days / 7


_HORIZON = re.compile(r"([0-9]{1,5})([dwmy]?)")
_UNIT_DAYS = {"d": 1.0, "w": 7.0, "m": DAYS_PER_MONTH, "y": 365.25, "": DAYS_PER_MONTH}


def parse_horizon(text: str) -> Horizon:
    """`12m` (months, the unit when none is given), `39w`, `90d` or `2y`."""
    found = _HORIZON.fullmatch(text.strip().lower())
    if found is None:
        raise BadArgument(
            f"--horizon '{text}' should be a whole number of days, weeks, months or years: "
            "90d, 39w, 12m or 2y"
        )
    count, unit = int(found.group(1)), found.group(2)
    days = count * _UNIT_DAYS[unit]
    if not 0 < days <= MAX_HORIZON_DAYS:
        raise BadArgument(f"--horizon '{text}' must be more than 0 and at most 10 years (10y)")
    return Horizon(f"{count}{unit or 'm'}", days)


def parse_discount_rate(text: str) -> Decimal:
    """An annual rate as a fraction, 0 to 1: 0.10 is 10% a year."""
    try:
        value = Decimal(text.strip().removesuffix("%"))
    except ArithmeticError:
        value = Decimal("NaN")
    if text.strip().endswith("%") and value.is_finite():
        value /= 100
    if not value.is_finite() or not 0 <= value <= MAX_DISCOUNT_RATE:
        raise BadArgument(
            f"--discount-rate '{text}' must be an annual rate from 0 to 1 (0.10 or 10% "
            "for 10% a year)"
        )
    return value


@dataclass(frozen=True)
class Options:
    horizon: Horizon
    discount_rate: Decimal
    calibration_end: date | None = None
    sort: str = "clv"
    top: int | None = None
    by: str = "month"  # the calibration check's periods: week or month

    def check(self) -> None:
        if self.sort not in SORTS:
            raise BadArgument(f"--sort '{self.sort}' is not one of: {', '.join(SORTS)}")
        if self.by not in ("week", "month"):
            raise BadArgument(f"--by '{self.by}' is not one of: week, month (for clv)")


@dataclass(frozen=True)
class Campaign:
    """A rule with a campaign window: its first day, and its last (None: open)."""

    rule: str
    first: date
    last: date | None


def campaigns_of(ruleset: Ruleset) -> list[Campaign]:
    """The rules with a campaign window (one with a first day), in file order."""
    return [
        Campaign(rule.id, rule.window_from, rule.window_to)
        for rule in sorted(ruleset.rules, key=lambda r: r.order)
        if rule.window_from is not None
    ]


# --- the per-customer figures ---------------------------------------------------------


@dataclass(frozen=True)
class CustomerValue:
    customer_id: str
    name: str | None
    tier: str | None
    segment: str
    first: date
    last: date
    days: int  # purchase days
    spend_cents: int
    p_alive: float | None
    expected: float | None  # purchase days in the horizon
    expected_spend: Decimal | None  # per purchase day
    clv: Decimal | None
    holdout_expected: float | None = None
    holdout_actual: int | None = None

    def to_json(self, calibrating: bool) -> dict[str, object]:
        doc: dict[str, object] = {
            "customer_id": self.customer_id,
            "name": self.name,
            "tier": self.tier,
            "segment": self.segment,
            "first_purchase": self.first.isoformat(),
            "last_purchase": self.last.isoformat(),
            "purchase_days": self.days,
            "spend": money(self.spend_cents),
            "average_spend": _cents_str(Decimal(self.spend_cents) / self.days / 100),
            "p_alive": _round(self.p_alive, 4),
            "expected_purchase_days": _round(self.expected, 4),
            "expected_average_spend": _cents_str(self.expected_spend),
            "clv": _cents_str(self.clv),
        }
        if calibrating:
            doc["holdout_expected"] = _round(self.holdout_expected, 4)
            doc["holdout_actual"] = self.holdout_actual
        return doc


def _round(value: float | None, places: int) -> float | None:
    return None if value is None else round(value, places)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENTS, rounding=ROUND_HALF_UP)


def _cents_str(value: Decimal | None) -> str | None:
    return None if value is None else str(_cents(value))


def _money_of(value: float) -> Decimal:
    """A model's figure (a float) as money, to the cent."""
    return _cents(Decimal(repr(value)))


# --- the fitted models ----------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    """The models fitted, on what, and what the owner should know about them."""

    fitted_to: date
    customers: int
    repeat_buyers: int
    bgnbd: BgNbd | None
    gamma_gamma: GammaGamma | None
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        g = self.gamma_gamma
        b = self.bgnbd
        return {
            "time_unit": "week",
            "fitted_to": self.fitted_to.isoformat(),
            "customers": self.customers,
            "repeat_buyers": self.repeat_buyers,
            "bgnbd": None
            if b is None
            else {
                "r": round(b.r, 6),
                "alpha": round(b.alpha, 6),
                "a": round(b.a, 6),
                "b": round(b.b, 6),
                "log_likelihood": round(b.log_likelihood, 3),
                "converged": b.converged,
                "at_limit": b.at_limit,
            },
            "gamma_gamma": None
            if g is None
            else {
                "p": round(g.p, 6),
                "q": round(g.q, 6),
                "gamma": round(g.gamma, 6),
                "log_likelihood": round(g.log_likelihood, 3),
                "customers": g.customers,
                "converged": g.converged,
                "at_limit": g.at_limit,
            },
        }


def fit(fitted_to: date, x: list[float], t_x: list[float], T: list[float], m: list[float]) -> Fit:
    """Fit both models when there is enough to fit, with plain warnings."""
    from . import clv

    repeat = sum(1 for v in x if v > 0)
    warnings: list[str] = []
    customers = len(x)
    if customers < MIN_CUSTOMERS or repeat < MIN_REPEAT_BUYERS:
        warnings.append(
            f"too little history to predict: {customers} customers with a purchase, "
            f"{repeat} of them came back (the models need at least {MIN_CUSTOMERS} and "
            f"{MIN_REPEAT_BUYERS}); only the historical figures are shown"
        )
        return Fit(fitted_to, customers, repeat, None, None, warnings)
    if customers < FEW_CUSTOMERS or repeat < FEW_REPEAT_BUYERS:
        warnings.append(
            f"little history: {customers} customers, {repeat} came back; predictions from "
            f"fewer than {FEW_CUSTOMERS} customers or {FEW_REPEAT_BUYERS} repeat buyers are "
            "rough, and --calibration-end shows how rough"
        )
    bgnbd = clv.fit_bgnbd(x, t_x, T)
    if not bgnbd.converged:
        warnings.append("the purchase model (BG/NBD) did not converge: treat it with care")
    elif bgnbd.at_limit:
        warnings.append(
            "the purchase model (BG/NBD) reached the optimiser's limit (e^12): customers "
            "differ little in their chance of stopping after a purchase, so a and b grow "
            "together and only a / (a + b) means much; the predictions stand"
        )
    pairs = [(xi, mi) for xi, mi in zip(x, m, strict=True) if xi > 0 and mi > 0]
    gamma_gamma = None
    if len(pairs) < MIN_REPEAT_BUYERS:
        warnings.append(
            "too few repeat purchases with a positive value to model spend (Gamma-Gamma): "
            "no expected spend or CLV"
        )
    else:
        gamma_gamma = clv.fit_gamma_gamma([p[0] for p in pairs], [p[1] for p in pairs])
        if not gamma_gamma.converged:
            warnings.append("the spend model (Gamma-Gamma) did not converge: treat it with care")
        elif gamma_gamma.at_limit:
            warnings.append(
                "the spend model (Gamma-Gamma) reached the optimiser's limit (e^12): treat "
                "its parameters with care"
            )
        if gamma_gamma.q <= 1:
            warnings.append(
                "the spend model (Gamma-Gamma) found spend too spread out to have an "
                "average (q <= 1): no expected spend or CLV"
            )
            gamma_gamma = None
    return Fit(fitted_to, customers, repeat, bgnbd, gamma_gamma, warnings)


# --- the calibration check ---------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    end: date
    as_of: date
    by: str
    customers: int
    groups: list[tuple[str, int, float, float]]  # repeat purchases, customers, predicted, actual
    periods: list[tuple[str, date, date, float, int]]  # label, first, last, predicted, actual

    def to_json(self) -> dict[str, Any]:
        predicted = sum(p[3] for p in self.periods)
        actual = sum(p[4] for p in self.periods)
        rows = []
        running_p, running_a = 0.0, 0
        for label, first, last, p, a in self.periods:
            running_p += p
            running_a += a
            rows.append(
                {
                    "period": label,
                    "start": first.isoformat(),
                    "end": last.isoformat(),
                    "predicted": round(p, 2),
                    "actual": a,
                    "cumulative_predicted": round(running_p, 2),
                    "cumulative_actual": running_a,
                }
            )
        return {
            "end": self.end.isoformat(),
            "holdout_from": (self.end + timedelta(days=1)).isoformat(),
            "holdout_to": self.as_of.isoformat(),
            "holdout_weeks": round((self.as_of - self.end).days / 7, 4),
            "customers": self.customers,
            "predicted": round(predicted, 2),
            "actual": actual,
            "error": rate(round(predicted) - actual, actual) if actual else None,
            "by_repeat_purchases": [
                {
                    "repeat_purchases": label,
                    "customers": n,
                    "predicted": round(p, 4),
                    "actual": round(a, 4),
                }
                for label, n, p, a in self.groups
            ],
            "by": self.by,
            "periods": rows,
        }


# --- campaigns --------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    first: date
    last: date
    purchases: int
    revenue_cents: int
    active: int

    def to_json(self) -> dict[str, object]:
        days = (self.last - self.first).days + 1
        return {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "days": days,
            "purchases": self.purchases,
            "revenue": money(self.revenue_cents),
            "active_customers": self.active,
            "purchases_per_day": round(self.purchases / days, 4),
            "revenue_per_day": _cents_str(Decimal(self.revenue_cents) / days / 100),
            "purchases_per_active_customer": rate(self.purchases, self.active),
            "revenue_per_active_customer": _cents_str(
                Decimal(self.revenue_cents) / self.active / 100 if self.active else Decimal(0)
            ),
        }


CAMPAIGN_NOTE = (
    "a before/after comparison of the campaign's days with as many days just before "
    "it, not a controlled experiment: seasons, weekdays and other campaigns differ too"
)


def campaigns(store: Store, span: Period, found: Sequence[Campaign]) -> list[dict[str, Any]]:
    out = []
    for campaign in found:
        if campaign.first > span.as_of:
            continue  # not started by the as-of day
        last = min(campaign.last or span.as_of, span.as_of)
        length = (last - campaign.first).days + 1
        before_first = campaign.first - timedelta(days=length)
        figures = []
        for lo, hi in ((before_first, campaign.first - timedelta(days=1)), (campaign.first, last)):
            active, _, _, purchases, cents = report_sql.purchasers(
                store.conn, span.instant(lo), span.instant(hi + timedelta(days=1))
            )
            figures.append(Window(lo, hi, purchases, cents, active))
        before, during = figures
        change = None
        if before.revenue_cents:
            change = round((during.revenue_cents / length) / (before.revenue_cents / length) - 1, 4)
        out.append(
            {
                "rule": campaign.rule,
                "window_to": None if campaign.last is None else campaign.last.isoformat(),
                "before": before.to_json(),
                "during": during.to_json(),
                "revenue_per_day_change": change,
                "note": CAMPAIGN_NOTE,
            }
        )
    return out


# --- the report --------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    key: str
    customers: int
    spend_cents: int
    expected: float | None
    clv: Decimal | None
    p_alive: float | None  # the sum, averaged in to_json

    def to_json(self, name: str | None) -> dict[str, object]:
        """Keyed by `name` (tier, segment); the totals of all (None) have no key."""
        n = self.customers
        return {
            **({} if name is None else {name: self.key}),
            "customers": n,
            "spend": money(self.spend_cents),
            "expected_purchase_days": _round(self.expected, 2),
            "clv": _cents_str(self.clv),
            "average_clv": None if self.clv is None else _cents_str(self.clv / n),
            "average_p_alive": None if self.p_alive is None else round(self.p_alive / n, 4),
        }


def _groups(rows: Sequence[CustomerValue], field: str | None) -> list[Group]:
    """Totals per value of `field` (tier, segment), or of all rows (None)."""
    grouped: dict[str, list[CustomerValue]] = {}
    for row in rows:
        key = "all" if field is None else getattr(row, field) or ""
        grouped.setdefault(key, []).append(row)
    out = []
    for key, members in grouped.items():
        predicted = members[0].p_alive is not None
        valued = members[0].clv is not None
        out.append(
            Group(
                key,
                len(members),
                sum(r.spend_cents for r in members),
                sum(r.expected or 0.0 for r in members) if predicted else None,
                sum((r.clv or Decimal(0) for r in members), Decimal(0)) if valued else None,
                sum(r.p_alive or 0.0 for r in members) if predicted else None,
            )
        )
    return out


@dataclass(frozen=True)
class Clv:
    period: Period
    shop: Shop
    options: Options
    fit: Fit
    rows: list[CustomerValue]  # after --sort and --top
    total: int
    overall: Group
    tiers: list[Group]
    segments: list[Group]
    calibration: Calibration | None
    campaigns: list[dict[str, Any]]
    without_purchase: int

    @property
    def warnings(self) -> list[str]:
        return self.fit.warnings

    def to_json(self) -> dict[str, Any]:
        calibrating = self.calibration is not None
        return {
            "report": "clv",
            "as_of": self.period.as_of.isoformat(),
            "timezone": self.period.timezone,
            "currency": self.shop.currency,
            "horizon": self.options.horizon.text,
            "horizon_weeks": round(self.options.horizon.weeks, 4),
            "discount_rate": str(self.options.discount_rate),
            "model": self.fit.to_json(),
            "warnings": self.fit.warnings,
            "customers": self.total,
            "without_purchase": self.without_purchase,
            "totals": self.overall.to_json(None),
            "tiers": [g.to_json("tier") for g in self.tiers],
            "segments": [g.to_json("segment") for g in self.segments],
            "calibration": None if self.calibration is None else self.calibration.to_json(),
            "campaigns": self.campaigns,
            "sort": self.options.sort,
            "top": self.options.top,
            "rows": [r.to_json(calibrating) for r in self.rows],
        }

    def table(self) -> Table:
        calibrating = self.calibration is not None
        docs = [r.to_json(calibrating) for r in self.rows]
        header = tuple(docs[0]) if docs else ROW_COLUMNS + (HOLDOUT if calibrating else ())
        return Table(header, [list(d.values()) for d in docs])


ROW_COLUMNS = (
    *("customer_id", "name", "tier", "segment", "first_purchase", "last_purchase"),
    *("purchase_days", "spend", "average_spend", "p_alive", "expected_purchase_days"),
    *("expected_average_spend", "clv"),
)
HOLDOUT = ("holdout_expected", "holdout_actual")


def build(
    store: Store, shop: Shop, span: Period, options: Options, found: Sequence[Campaign] = ()
) -> Clv:
    """The clv report as of `span.as_of` (the model as of the calibration end, if any)."""
    from .reports import SEGMENTS

    options.check()
    as_of = span.as_of
    end = options.calibration_end
    if end is not None and end >= as_of:
        raise BadArgument(
            f"--calibration-end {end} must be before the as-of day {as_of}: the days "
            "after it are what the check compares with"
        )
    cut_day = end or as_of
    first = report_sql.first_activity(store.conn)
    buyers: list[sql.Buyer] = []
    later: dict[int, int] = {}
    with store.snapshot():
        if first is not None:
            shifts = span.utc_shifts(min(span.local_day(first), cut_day))
            cut = span.instant(cut_day + timedelta(days=1))
            buyers = sql.buyers(store.conn, span.until, cut, day_number(cut_day), shifts)
            if end is not None and buyers:
                later = sql.later_days(store.conn, span.until, cut, day_number(end), shifts)
        enrolled = report_sql.members(store.conn, 0, 0, span.instant(cut_day + timedelta(days=1)))[
            0
        ]
    if end is not None and not buyers:
        raise BadArgument(
            f"--calibration-end {end} is before the ledger's first purchase: "
            "nothing to fit the model on"
        )
    cut_number = day_number(cut_day)
    x = [float(b.days - 1) for b in buyers]
    t_x = [(b.last - b.first) / 7 for b in buyers]
    T = [(cut_number - b.first) / 7 for b in buyers]
    m = [
        (b.spend_cents - b.first_day_cents) / 100 / (b.days - 1) if b.days > 1 else 0.0
        for b in buyers
    ]
    fitted = fit(cut_day, x, t_x, T, m)
    alive: list[float | None] = [None] * len(buyers)
    expected: list[float | None] = [None] * len(buyers)
    spend: list[Decimal | None] = [None] * len(buyers)
    value: list[Decimal | None] = [None] * len(buyers)
    held: list[float | None] = [None] * len(buyers)
    calibration = None
    if fitted.bgnbd is not None:
        from . import clv

        model = fitted.bgnbd
        alive = list(clv.p_alive(model, x, t_x, T).tolist())
        steps = min(MAX_STEPS, max(1, math.ceil(options.horizon.days / DAYS_PER_MONTH)))
        plain, discounted = clv.horizon_purchases(
            model, x, t_x, T, options.horizon.weeks, float(options.discount_rate), steps
        )
        expected = list(plain.tolist())
        if fitted.gamma_gamma is not None:
            per_day = clv.expected_value(fitted.gamma_gamma, x, m).tolist()
            spend = [_money_of(v) for v in per_day]
            value = [_money_of(v * d) for v, d in zip(per_day, discounted.tolist(), strict=True)]
        if end is not None:
            weeks = (as_of - end).days / 7
            held = list(clv.expected_purchases(model, x, t_x, T, weeks).tolist())
            calibration = _calibration(
                model, end, as_of, options.by, (x, t_x, T), held, buyers, later
            )
    first_tier = shop.tiers.levels[0].id if shop.tiers else None
    standing = dict(tiers_as_of(store, shop, span))
    rows = [
        CustomerValue(
            customer_id=b.id,
            name=b.name,
            tier=standing.get(b.id, b.tier if b.tier is not None else first_tier),
            segment=segment(*b.rfm),
            first=from_day_number(b.first),
            last=from_day_number(b.last),
            days=b.days,
            spend_cents=b.spend_cents,
            p_alive=alive[i],
            expected=expected[i],
            expected_spend=spend[i],
            clv=value[i],
            holdout_expected=held[i],
            holdout_actual=b.later_days if end is not None else None,
        )
        for i, b in enumerate(buyers)
    ]
    overall = _groups(rows, None)
    tiers = _groups(rows, "tier") if shop.tiers is not None else []
    order = [level.id for level in shop.tiers.levels] if shop.tiers else []
    tiers.sort(key=lambda g: (order.index(g.key) if g.key in order else len(order), g.key))
    segments = _groups(rows, "segment")
    segments.sort(key=lambda g: SEGMENTS.index(g.key))
    field, descending = SORTS[options.sort]
    rows.sort(key=sort_key(field, descending))
    total = len(rows)
    shown = rows if options.top is None else rows[: options.top]
    return Clv(
        period=span,
        shop=shop,
        options=options,
        fit=fitted,
        rows=shown,
        total=total,
        overall=overall[0] if overall else Group("all", 0, 0, None, None, None),
        tiers=tiers,
        segments=segments,
        calibration=calibration,
        campaigns=campaigns(store, span, found),
        without_purchase=max(enrolled - total, 0),
    )


def _calibration(
    model: BgNbd,
    end: date,
    as_of: date,
    by: str,
    inputs: tuple[list[float], list[float], list[float]],
    held: list[float | None],
    buyers: Sequence[sql.Buyer],
    later: dict[int, int],
) -> Calibration:
    """Predicted against actual repeat purchase days after `end`, in total, by
    the customers' repeat purchases up to `end`, and per period."""
    from . import clv

    x, t_x, T = inputs
    groups = []
    for k in range(CONDITIONAL_GROUPS + 1):
        members = [
            i
            for i, v in enumerate(x)
            if (v == k if k < CONDITIONAL_GROUPS else v >= CONDITIONAL_GROUPS)
        ]
        if not members:
            continue
        n = len(members)
        predicted = sum(held[i] or 0.0 for i in members) / n
        actual = sum(buyers[i].later_days for i in members) / n
        label = str(k) if k < CONDITIONAL_GROUPS else f"{k}+"
        groups.append((label, n, predicted, actual))
    spans = buckets(end + timedelta(days=1), as_of, by)
    ends = [(hi - end).days / 7 for _, _, hi in spans]
    cumulative = clv.cumulative_expected(model, x, t_x, T, ends)
    periods = []
    previous = 0.0
    for (label, lo, hi), upto in zip(spans, cumulative, strict=True):
        done = sum(n for day, n in later.items() if day_number(lo) <= day <= day_number(hi))
        periods.append((label, lo, hi, upto - previous, done))
        previous = upto
    return Calibration(end, as_of, by, len(buyers), groups, periods)


# --- bands: fifths of the customers by predicted value -----------------------------

# Best first. A customer's band is the fifth of the customers with a predicted
# value that their CLV falls in, by mid-rank as the segments report scores
# (equal values share a band; alone, or all equal, a customer is "middle").
CLV_BANDS = ("top", "high", "middle", "low", "bottom")


def bands(rows: Sequence[CustomerValue]) -> dict[str, str]:
    """Each customer's CLV band (CLV_BANDS); customers without a predicted value
    (the model not fitted, or spend too spread out) have none."""
    valued = sorted((r.clv, r.customer_id) for r in rows if r.clv is not None)
    n = len(valued)
    out: dict[str, str] = {}
    start = 0
    while start < n:
        end = start
        while end < n and valued[end][0] == valued[start][0]:
            end += 1
        score = 1 + 5 * (2 * start + (end - start)) // (2 * n)  # 1..5, as rfm scores
        for _, cid in valued[start:end]:
            out[cid] = CLV_BANDS[5 - min(score, 5)]
        start = end
    return out


def band_members(store: Store, shop: Shop, span: Period, band: str) -> set[str]:
    """The customers in a CLV band as `report clv` values them on `span.as_of`
    (its default horizon and discount rate); refused when it predicts no values."""
    from .errors import Refused

    result = build(
        store, shop, span, Options(parse_horizon(DEFAULT_HORIZON), DEFAULT_DISCOUNT_RATE)
    )
    found = bands(result.rows)
    if not found:
        why = "; ".join(result.warnings) or "no customer has a purchase yet"
        raise Refused(
            f"--clv-band: `report clv` predicts no customer values on this ledger ({why})",
            code="no_clv",
            field="--clv-band",
        )
    return {cid for cid, each in found.items() if each == band}
