"""Reports for the owner and the accountant: summary, customers, activity, rules,
tiers, RFM segments and the points liability.

Every figure comes from an aggregate query in store/reports.py: a handful of
numbers, or one row per customer, rule, tier or time bucket, never the entries
themselves. This module turns those rows into plain
results, each with one JSON shape (`to_json`) and one CSV table (`table`), and
holds the pure arithmetic: periods, time buckets, rates, RFM scores and segments.
Nothing here reads the clock: the as-of day comes from the caller.

Dates are the shop's local dates. A period is `first` to `last`, both inclusive:
from the start of `first` to the start of the day after `last`, in the shop's
time zone. "As of" a day means the ledger as it stood at the end of that day.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from .clock import day_start, from_day_number, from_stamp, shop_day, stamp, zone
from .errors import BadArgument, did_you_mean
from .standing import standings
from .store import Store
from .store import reports as sql
from .values import CENTS, from_cents

if TYPE_CHECKING:  # models is 30 dataclasses: not worth loading for a type
    from .models import Ruleset, TierPolicy

REPORTS = (
    "summary",
    "customers",
    "activity",
    "rules",
    "tiers",
    "segments",
    "liability",
    "clv",
    "games",
)
BUCKETS = ("day", "week", "month")
MAX_BUCKETS = 5000
Row = list[object]


# --- settings and periods ----------------------------------------------------------


@dataclass(frozen=True)
class Shop:
    """What a report needs from the rules file, when there is one."""

    timezone: str
    currency: str | None = None
    point_value: Decimal | None = None
    tiers: TierPolicy | None = None
    locale: str | None = None
    ruleset: Ruleset | None = None  # for tiers as of a moment (standing.py)

    @classmethod
    def of(cls, ruleset: Ruleset | None, stored_timezone: str | None) -> Shop:
        """From the rules file; without one, the time zone of the rules that last
        wrote to the ledger (UTC for a ledger no rules wrote to)."""
        if ruleset is None:
            return cls(stored_timezone or "UTC")
        program = ruleset.program
        return cls(
            program.timezone,
            program.currency,
            program.point_value,
            ruleset.tiers,
            program.locale,
            ruleset,
        )


@dataclass(frozen=True)
class Period:
    """Shop-local dates: the period [first, last], both inclusive, and the as-of day."""

    first: date
    last: date
    as_of: date
    timezone: str

    def instant(self, day: date) -> int:
        """The start of a shop-local day, as a stored time."""
        return stamp(day_start(day, zone(self.timezone)))

    @property
    def start(self) -> int:
        return self.instant(self.first)

    @property
    def end(self) -> int:
        return self.instant(self.last + timedelta(days=1))

    @property
    def until(self) -> int:
        return self.instant(self.as_of + timedelta(days=1))

    def local_day(self, stored: int) -> date:
        return shop_day(from_stamp(stored), zone(self.timezone))

    def utc_shifts(self, first: date) -> list[tuple[int, int]]:
        """The shop's UTC offset in seconds from the start of `first` through the
        as-of day: (stored UTC time, offset) at the start and at each change (summer
        time), found to the second, so that SQL can turn stored times into local days."""
        tz = zone(self.timezone)

        def offset(seconds: int) -> int:
            shift = from_stamp(seconds).astimezone(tz).utcoffset()
            return 0 if shift is None else int(shift.total_seconds())

        moment, end = self.instant(first), self.instant(self.as_of + timedelta(days=1))
        shifts = [(moment, offset(moment))]
        while moment < end:
            step = min(moment + 86400, end)
            if offset(step) != shifts[-1][1]:
                low, high = moment, step  # the change is in (low, high]
                while high - low > 1:
                    middle = (low + high) // 2
                    low, high = (low, middle) if offset(middle) != shifts[-1][1] else (middle, high)
                shifts.append((high, offset(high)))
            moment = step
        return shifts

    def to_json(self) -> dict[str, object]:
        return {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "as_of": self.as_of.isoformat(),
            "timezone": self.timezone,
        }


def period(
    store: Store,
    timezone: str,
    today: date,
    first: date | None = None,
    last: date | None = None,
    as_of: date | None = None,
) -> Period:
    """The period a report covers. As of: `as_of`, else `last`, else today. To:
    `last`, else the as-of day. From: `first`, else the day of the ledger's first
    entry or purchase (the as-of day when the ledger is empty)."""
    as_of = as_of or last or today
    last = last or as_of
    if first is None:
        earliest = sql.first_activity(store.conn)
        first = (
            as_of if earliest is None else Period(as_of, as_of, as_of, timezone).local_day(earliest)
        )
        first = min(first, last)
    if first > last:
        raise BadArgument(f"--from {first} is after --to {last}")
    return Period(first, last, as_of, timezone)


# --- numbers -------------------------------------------------------------------------


def rate(part: int, whole: int) -> float:
    """part / whole to 4 decimals; 0 when there is nothing to divide by."""
    return 0.0 if whole == 0 else round(part / whole, 4)


def money(cents: int) -> str:
    return str(from_cents(cents))


def average(cents: int, count: int) -> str:
    """A money average, rounded half up to the cent; "0.00" over nothing."""
    if count == 0:
        return "0.00"
    return str((Decimal(cents) / count / 100).quantize(CENTS, rounding=ROUND_HALF_UP))


def value_of(points: int, point_value: Decimal | None) -> str | None:
    """Points valued at the rules' point_value, rounded half up to the cent."""
    if point_value is None:
        return None
    return str((points * point_value).quantize(CENTS, rounding=ROUND_HALF_UP))


# --- CSV -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: list[Row]


# --- summary -------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    period: Period
    shop: Shop
    members: int
    new_members: int
    active_members: int
    purchases: int
    purchasing_customers: int
    repeat_customers: int
    revenue_cents: int
    refunds: int
    refunded_cents: int
    points: dict[str, int]  # by entry kind, in the period
    outstanding: int

    def to_json(self) -> dict[str, Any]:
        p = self.points
        earned = p.get("earn", 0) + p.get("enroll", 0)
        redeemed = -p.get("redeem", 0)
        return {
            "report": "summary",
            **self.period.to_json(),
            "currency": self.shop.currency,
            "members": self.members,
            "new_members": self.new_members,
            "active_members": self.active_members,
            "purchases": self.purchases,
            "purchasing_customers": self.purchasing_customers,
            "repeat_customers": self.repeat_customers,
            "revenue": money(self.revenue_cents),
            "refunds": self.refunds,
            "refunded": money(self.refunded_cents),
            "net_revenue": money(self.revenue_cents - self.refunded_cents),
            "average_order_value": average(self.revenue_cents, self.purchases),
            "points_earned": earned,
            "points_redeemed": redeemed,
            "points_expired": -p.get("expire", 0),
            "points_adjusted": p.get("adjust", 0),
            "points_refunded": -p.get("refund", 0),
            "points_outstanding": self.outstanding,
            "point_value": None if self.shop.point_value is None else str(self.shop.point_value),
            "liability_value": value_of(self.outstanding, self.shop.point_value),
            "redemption_rate": rate(redeemed, earned),
            "repeat_purchase_rate": rate(self.repeat_customers, self.purchasing_customers),
        }

    def table(self) -> Table:
        return Table(("metric", "value"), [[k, v] for k, v in self.to_json().items()])


def points_held(store: Store, span: Period, period_points: dict[str, int]) -> int:
    """The sum of every entry before the end of the as-of day, from the period's
    sums and the ranges around it: the default period runs from the first entry
    to the as-of day, so this reads almost nothing more."""
    start, end, until = span.start, span.end, span.until
    held = sum(period_points.values()) + sum(sql.points(store.conn, None, start).values())
    if until >= end:
        return held + sum(sql.points(store.conn, end, until).values())
    return held - sum(sql.points(store.conn, until, end).values())


def summary(store: Store, shop: Shop, span: Period) -> Summary:
    start, end, until = span.start, span.end, span.until
    conn = store.conn
    with store.snapshot():
        members, new = sql.members(conn, start, end, until)
        active, buyers, repeat, purchases, revenue = sql.purchasers(conn, start, end)
        refunds, refunded = sql.refunds(conn, start, end)
        points = sql.points(conn, start, end)
        outstanding = points_held(store, span, points) - sql.overdue(conn, span.as_of)
    return Summary(
        period=span,
        shop=shop,
        members=members,
        new_members=new,
        active_members=active,
        purchases=purchases,
        purchasing_customers=buyers,
        repeat_customers=repeat,
        revenue_cents=revenue,
        refunds=refunds,
        refunded_cents=refunded,
        points=points,
        outstanding=outstanding,
    )


# --- customers -----------------------------------------------------------------------

CUSTOMER_SORTS = {
    # key: (field, descending)
    "spend": ("spend_cents", True),
    "balance": ("balance", True),
    "purchases": ("purchases", True),
    "earned": ("points_earned", True),
    "redeemed": ("points_redeemed", True),
    "last_purchase": ("last_purchase", True),
    "first_purchase": ("first_purchase", False),
    "id": ("customer_id", False),
    "name": ("name", False),
}


@dataclass(frozen=True)
class CustomerRow:
    customer_id: str
    name: str | None
    tier: str | None
    balance: int
    spend_cents: int
    purchases: int
    first_purchase: date | None
    last_purchase: date | None
    points_earned: int
    points_redeemed: int

    def to_json(self) -> dict[str, object]:
        return {
            "customer_id": self.customer_id,
            "name": self.name,
            "tier": self.tier,
            "balance": self.balance,
            "lifetime_spend": money(self.spend_cents),
            "purchases": self.purchases,
            "first_purchase": None if self.first_purchase is None else str(self.first_purchase),
            "last_purchase": None if self.last_purchase is None else str(self.last_purchase),
            "points_earned": self.points_earned,
            "points_redeemed": self.points_redeemed,
        }


CUSTOMER_COLUMNS = (
    *("customer_id", "name", "tier", "balance", "lifetime_spend", "purchases"),
    *("first_purchase", "last_purchase", "points_earned", "points_redeemed"),
)


@dataclass(frozen=True)
class Customers:
    period: Period
    shop: Shop
    sort: str
    top: int | None
    rows: list[CustomerRow]
    total: int  # customers before --top

    def to_json(self) -> dict[str, Any]:
        return {
            "report": "customers",
            "as_of": self.period.as_of.isoformat(),
            "timezone": self.period.timezone,
            "currency": self.shop.currency,
            "sort": self.sort,
            "top": self.top,
            "total": self.total,
            "rows": [row.to_json() for row in self.rows],
        }

    def table(self) -> Table:
        return Table(CUSTOMER_COLUMNS, [list(r.to_json().values()) for r in self.rows])


def sort_key(field: str, descending: bool) -> Any:
    """A sort key on a row's `field`: largest first when `descending`, missing
    values last, ties by customer id (the customers and clv reports)."""

    def key(row: Any) -> tuple[object, ...]:
        value = getattr(row, field)
        missing = value is None
        if field == "name":
            value = (value or "").casefold()
        if isinstance(value, date):
            value = value.toordinal()
        if descending and not missing:
            value = -value
        # Missing values (no purchase, no name) go last; ties by customer id.
        return (missing, 0 if missing else value, row.customer_id)

    return key


def customers(
    store: Store, shop: Shop, span: Period, sort: str = "spend", top: int | None = None
) -> Customers:
    if sort not in CUSTOMER_SORTS:
        raise BadArgument(f"--sort '{sort}' is not one of: {', '.join(CUSTOMER_SORTS)}")
    first_tier = shop.tiers.levels[0].id if shop.tiers else None
    # The tier as of the day, worked out as `tier` works it out; without the
    # rules, the last one the ledger recorded.
    held = dict(tiers_as_of(store, shop, span))
    rows = []
    for c in sql.customers(store.conn, span.until, span.as_of):
        first, last = c.first_purchase, c.last_purchase
        rows.append(
            CustomerRow(
                customer_id=c.id,
                name=c.name,
                tier=held.get(c.id, c.tier if c.tier is not None else first_tier),
                balance=c.balance,
                spend_cents=c.spend_cents,
                purchases=c.purchases,
                first_purchase=None if first is None else span.local_day(first),
                last_purchase=None if last is None else span.local_day(last),
                points_earned=c.earned,
                points_redeemed=c.redeemed,
            )
        )
    field, descending = CUSTOMER_SORTS[sort]
    rows.sort(key=sort_key(field, descending))
    total = len(rows)
    return Customers(span, shop, sort, top, rows if top is None else rows[:top], total)


# --- activity ------------------------------------------------------------------------


def buckets(first: date, last: date, by: str) -> list[tuple[str, date, date]]:
    """(label, first day, last day) of each day, ISO week (Monday to Sunday) or
    calendar month that meets [first, last], clipped to it."""
    if by not in BUCKETS:
        raise BadArgument(f"--by '{by}' is not one of: {', '.join(BUCKETS)}")
    out: list[tuple[str, date, date]] = []
    day = first
    while day <= last:
        if by == "day":
            label, stop = day.isoformat(), day
        elif by == "week":
            year, week, weekday = day.isocalendar()
            label, stop = f"{year}-W{week:02d}", day + timedelta(days=7 - weekday)
        else:
            label = f"{day.year}-{day.month:02d}"
            following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
            stop = following - timedelta(days=1)
        stop = min(stop, last)
        out.append((label, day, stop))
        if len(out) > MAX_BUCKETS:
            raise BadArgument(
                f"{first} to {last} by {by} is more than {MAX_BUCKETS} rows; "
                "use a coarser --by or a shorter period"
            )
        day = stop + timedelta(days=1)
    return out


@dataclass(frozen=True)
class ActivityRow:
    period: str
    start: date
    end: date
    purchases: int
    revenue_cents: int
    points_earned: int
    points_redeemed: int
    points_expired: int

    def to_json(self) -> dict[str, object]:
        return {
            "period": self.period,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "purchases": self.purchases,
            "revenue": money(self.revenue_cents),
            "points_earned": self.points_earned,
            "points_redeemed": self.points_redeemed,
            "points_expired": self.points_expired,
        }


ACTIVITY_COLUMNS = (
    "period",
    "start",
    "end",
    "purchases",
    "revenue",
    "points_earned",
    "points_redeemed",
    "points_expired",
)


@dataclass(frozen=True)
class Activity:
    period: Period
    shop: Shop
    by: str
    rows: list[ActivityRow]

    def to_json(self) -> dict[str, Any]:
        rows = self.rows
        return {
            "report": "activity",
            **self.period.to_json(),
            "currency": self.shop.currency,
            "by": self.by,
            "rows": [row.to_json() for row in rows],
            "totals": {
                "purchases": sum(r.purchases for r in rows),
                "revenue": money(sum(r.revenue_cents for r in rows)),
                "points_earned": sum(r.points_earned for r in rows),
                "points_redeemed": sum(r.points_redeemed for r in rows),
                "points_expired": sum(r.points_expired for r in rows),
            },
        }

    def table(self) -> Table:
        return Table(ACTIVITY_COLUMNS, [list(r.to_json().values()) for r in self.rows])


def activity(store: Store, shop: Shop, span: Period, by: str = "month") -> Activity:
    spans = buckets(span.first, span.last, by)
    bounds = [(span.instant(lo), span.instant(hi + timedelta(days=1))) for _, lo, hi in spans]
    sales, points = sql.activity(store.conn, bounds)
    rows = []
    for i, (label, lo, hi) in enumerate(spans):
        count, cents = sales.get(i, (0, 0))
        rows.append(
            ActivityRow(
                label,
                lo,
                hi,
                count,
                cents,
                points.get((i, "earn"), 0) + points.get((i, "enroll"), 0),
                -points.get((i, "redeem"), 0),
                -points.get((i, "expire"), 0),
            )
        )
    return Activity(span, shop, by, rows)


# --- rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    period: Period
    shop: Shop
    rows: list[tuple[str, int, int, int, int]]  # rule, awards, customers, points, cents
    # category (None: none, or a receipt's own points), earned, taken back (<= 0)
    categories: list[tuple[str | None, int, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        total = sum(points for _, _, _, points, _ in self.rows)
        return {
            "report": "rules",
            **self.period.to_json(),
            "currency": self.shop.currency,
            "points": total,
            "rules": [
                {
                    "rule": rule,
                    "awards": awards,
                    "customers": reached,
                    "points": points,
                    "share": rate(points, total),
                    "revenue": money(cents),
                }
                for rule, awards, reached, points, cents in self.rows
            ],
            "categories": [
                {
                    "category": category,
                    "points_earned": earned,
                    "points_refunded": back,
                    "points": earned + back,
                }
                for category, earned, back in self.categories
            ],
        }

    def table(self) -> Table:
        rows = [list(r.values()) for r in self.to_json()["rules"]]
        return Table(("rule", "awards", "customers", "points", "share", "revenue"), rows)


def rules(store: Store, shop: Shop, span: Period) -> Rules:
    return Rules(
        span,
        shop,
        sql.rules(store.conn, span.start, span.end),
        sql.categories(store.conn, span.start, span.end),
    )


# --- tiers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tiers:
    period: Period
    policy: TierPolicy
    counts: dict[str | None, int]
    moves: list[tuple[str, str, int, int]]  # from, to, changes, customers

    def rank(self, tier: str) -> int:
        ids = [level.id for level in self.policy.levels]
        return ids.index(tier) if tier in ids else -1

    def to_json(self) -> dict[str, Any]:
        first = self.policy.levels[0].id
        up = [m for m in self.moves if self.rank(m[1]) > self.rank(m[0])]
        down = [m for m in self.moves if self.rank(m[1]) < self.rank(m[0])]
        known = {level.id for level in self.policy.levels}
        levels = [(level.id, level.name) for level in self.policy.levels]
        # A tier the ledger recorded that the rules file no longer has is still shown.
        levels += [(t, t) for t in sorted(t for t in self.counts if t and t not in known)]
        tiers = []
        for tier, name in levels:
            held = self.counts.get(tier, 0) + (self.counts.get(None, 0) if tier == first else 0)
            tiers.append(
                {
                    "tier": tier,
                    "name": name,
                    "customers": held,
                    "upgrades_in": sum(m[2] for m in up if m[1] == tier),
                    "downgrades_in": sum(m[2] for m in down if m[1] == tier),
                    "upgrades_out": sum(m[2] for m in up if m[0] == tier),
                    "downgrades_out": sum(m[2] for m in down if m[0] == tier),
                }
            )
        return {
            "report": "tiers",
            **self.period.to_json(),
            "members": sum(self.counts.values()),
            "upgrades": sum(m[2] for m in up),
            "downgrades": sum(m[2] for m in down),
            "tiers": tiers,
            "movements": [
                {"from_tier": a, "to_tier": b, "changes": n, "customers": c}
                for a, b, n, c in self.moves
            ],
        }

    def table(self) -> Table:
        tiers = self.to_json()["tiers"]
        return Table(tuple(tiers[0]) if tiers else (), [list(t.values()) for t in tiers])


def tiers(store: Store, shop: Shop, span: Period) -> Tiers:
    if shop.tiers is None:
        raise BadArgument(
            "the tiers report needs a rules file with a tiers: section (pass --rules)"
        )
    counts: dict[str | None, int] = dict(
        Counter(tier for _, tier in tiers_as_of(store, shop, span))
    )
    return Tiers(span, shop.tiers, counts, sql.tier_moves(store.conn, span.start, span.end))


def tiers_as_of(store: Store, shop: Shop, span: Period) -> Iterator[tuple[str, str]]:
    """(customer, tier) as of the end of the as-of day, for everyone enrolled by
    then, as `tier` works it out (standing.py); nothing without the rules' tiers."""
    if shop.ruleset is None or shop.ruleset.tiers is None:
        return
    for cid, status in standings(store, shop.ruleset, span.until, span.as_of):
        yield cid, status.level.id


# --- RFM segments --------------------------------------------------------------------

# In the order they are tried: the first that matches names the customer's segment.
SEGMENTS = (
    "champions",
    "loyal",
    "new",
    "potential_loyalists",
    "cant_lose",
    "at_risk",
    "hibernating",
    "lost",
)


def segment(r: int, f: int, m: int) -> str:
    """The RFM segment of recency, frequency and monetary scores (1-5, 5 best)."""
    if r >= 4 and f >= 4 and m >= 4:
        return "champions"
    if r >= 3 and f >= 4:
        return "loyal"
    if r >= 4 and f == 1:
        return "new"
    if r >= 4 or (r == 3 and f >= 2):
        return "potential_loyalists"
    if r == 1 and f >= 4 and m >= 4:
        return "cant_lose"
    if r <= 2 and f >= 3:
        return "at_risk"
    if r >= 2:
        return "hibernating"
    return "lost"


def segment_name(text: str) -> str:
    """A segment as typed (`can't lose`, `At-Risk`) -> its key (cant_lose, at_risk)."""
    key = text.strip().lower().replace("'", "").replace("-", "_").replace(" ", "_")
    if key not in SEGMENTS:
        hint = did_you_mean(key, SEGMENTS)
        raise BadArgument(
            f"--segment '{text}' is not a segment{hint}; segments: {', '.join(SEGMENTS)}"
        )
    return key


@dataclass(frozen=True)
class Scored:
    customer_id: str
    name: str | None
    last_purchase: date
    recency_days: int
    frequency: int
    monetary_cents: int
    r: int
    f: int
    m: int
    segment: str

    def to_json(self) -> dict[str, object]:
        return {
            "customer_id": self.customer_id,
            "name": self.name,
            "last_purchase": self.last_purchase.isoformat(),
            "recency_days": self.recency_days,
            "frequency": self.frequency,
            "monetary": money(self.monetary_cents),
            "r": self.r,
            "f": self.f,
            "m": self.m,
            "rfm": f"{self.r}{self.f}{self.m}",
            "segment": self.segment,
        }


SCORED_COLUMNS = (
    *("customer_id", "name", "last_purchase", "recency_days", "frequency", "monetary"),
    *("r", "f", "m", "rfm", "segment"),
)


@dataclass(frozen=True)
class Segments:
    period: Period
    shop: Shop
    scored: list[Scored]  # the customers of `only`
    only: str | None  # --segment: list this one's customers
    counts: dict[str, int]  # customers per segment, in SEGMENTS order

    def to_json(self) -> dict[str, Any]:
        total = sum(self.counts.values())
        doc: dict[str, Any] = {
            "report": "segments",
            "as_of": self.period.as_of.isoformat(),
            "timezone": self.period.timezone,
            "currency": self.shop.currency,
            "customers": total,
            "segments": [
                {"segment": name, "customers": n, "share": rate(n, total)}
                for name, n in self.counts.items()
            ],
        }
        if self.only is not None:
            doc["segment"] = self.only
            doc["rows"] = [row.to_json() for row in self.scored]
        return doc

    def table(self) -> Table:
        doc = self.to_json()
        if self.only is None:
            return Table(
                ("segment", "customers", "share"), [list(s.values()) for s in doc["segments"]]
            )
        return Table(SCORED_COLUMNS, [list(m.values()) for m in doc["rows"]])


def segments(store: Store, shop: Shop, span: Period, only: str | None = None) -> Segments:
    """RFM over the customers with a purchase by the end of the as-of day, scored
    in SQL (see `Ledger._rfm_scored`). Only the customers of the segment asked for
    (--segment) become rows; the others are counted by score."""
    counts = dict.fromkeys(SEGMENTS, 0)
    first = sql.first_activity(store.conn)
    if first is None:
        return Segments(span, shop, [], only, counts)
    shifts = span.utc_shifts(min(span.local_day(first), span.as_of))
    for r, f, m, n in sql.rfm_counts(store.conn, span.until, shifts):
        counts[segment(r, f, m)] += n
    scored = []
    if only is not None:
        scores = [
            r * 100 + f * 10 + m
            for r in range(1, 6)
            for f in range(1, 6)
            for m in range(1, 6)
            if segment(r, f, m) == only
        ]
        for cid, name, day, count, cents, r, f, m in sql.rfm_members(
            store.conn, span.until, shifts, scores
        ):
            last = from_day_number(int(day))
            recency = (span.as_of - last).days
            scored.append(Scored(cid, name, last, recency, count, cents, r, f, m, only))
    return Segments(span, shop, scored, only, counts)


# --- liability -----------------------------------------------------------------------


@dataclass(frozen=True)
class Liability:
    period: Period
    shop: Shop
    lots: list[tuple[str, str | None, bool, int]]  # earn month, expiry month, pending, points
    ledger_points: int  # every entry as of the day
    overdue: int  # held in lots past their expiry

    def to_json(self) -> dict[str, Any]:
        outstanding = self.ledger_points - self.overdue
        held = sum(n for *_, n in self.lots)
        debt = held - outstanding
        earned: dict[str, int] = {}
        expiring: dict[str, int] = {}
        for month, expiry, _, points in self.lots:
            earned[month] = earned.get(month, 0) + points
            if expiry is not None:
                expiring[expiry] = expiring.get(expiry, 0) + points
        value = self.shop.point_value
        return {
            "report": "liability",
            "as_of": self.period.as_of.isoformat(),
            "timezone": self.period.timezone,
            "currency": self.shop.currency,
            "points_outstanding": outstanding,
            "point_value": None if value is None else str(value),
            "value": value_of(outstanding, value),
            "pending": sum(n for _, _, pending, n in self.lots if pending),
            "debt": debt,
            "by_earn_month": [
                {"month": k, "points": v, "value": value_of(v, value)}
                for k, v in sorted(earned.items())
            ],
            "expiring_by_month": [
                {"month": k, "points": v, "value": value_of(v, value)}
                for k, v in sorted(expiring.items())
            ],
            "never_expire": sum(n for _, expiry, _, n in self.lots if expiry is None),
        }

    def table(self) -> Table:
        doc = self.to_json()
        rows: list[Row] = [
            ["earned", b["month"], b["points"], b["value"]] for b in doc["by_earn_month"]
        ]
        rows += [
            ["expiring", b["month"], b["points"], b["value"]] for b in doc["expiring_by_month"]
        ]
        value = self.shop.point_value
        rows.append(["never_expire", "", doc["never_expire"], value_of(doc["never_expire"], value)])
        rows.append(["debt", "", -doc["debt"], value_of(-doc["debt"], value)])
        rows.append(["outstanding", "", doc["points_outstanding"], doc["value"]])
        return Table(("section", "month", "points", "value"), rows)


def liability(store: Store, shop: Shop, span: Period) -> Liability:
    with store.snapshot():
        held = sum(sql.points(store.conn, None, span.until).values())
        overdue = sql.overdue(store.conn, span.as_of)
        lots = sql.lots(store.conn, span.until, span.as_of)
    return Liability(span, shop, lots, held, overdue)


# --- choosing a report ---------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A report as asked for on the command line, its options checked together."""

    name: str = "summary"
    ranged: bool = False  # --from or --to given
    by: str | None = None
    sort: str | None = None
    top: int | None = None
    segment: str | None = None  # as typed
    clv_options: tuple[str, ...] = ()  # the clv report's own options given

    def clv_option(self, option: str) -> str | None:
        return option if option in self.clv_options else None

    def check(self) -> None:
        """Refuse an unknown report, and options that belong to another one."""
        if self.name not in REPORTS:
            hint = did_you_mean(self.name, REPORTS)
            raise BadArgument(f"unknown report '{self.name}'{hint}; reports: {', '.join(REPORTS)}")
        for option, value, owners in (
            ("--by", self.by, ("activity", "clv")),
            ("--sort", self.sort, ("customers", "clv")),
            ("--top", self.top, ("customers", "clv")),
            ("--segment", self.segment, ("segments",)),
            ("--horizon", self.clv_option("--horizon"), ("clv",)),
            ("--discount-rate", self.clv_option("--discount-rate"), ("clv",)),
            ("--calibration-end", self.clv_option("--calibration-end"), ("clv",)),
        ):
            if value is not None and self.name not in owners:
                reports = " and ".join(f"the {owner} report" for owner in owners)
                raise BadArgument(f"{option} goes with {reports}, not {self.name}")
        if self.name in ("customers", "segments", "liability", "clv") and self.ranged:
            raise BadArgument(
                f"the {self.name} report is as of one day: use --as-of, not --from/--to"
            )
        if self.segment is not None:
            segment_name(self.segment)


Report = Summary | Customers | Activity | Rules | Tiers | Segments | Liability


def build(request: Request, store: Store, shop: Shop, span: Period) -> Report:
    """The report asked for, over `span`."""
    name = request.name
    if name == "summary":
        return summary(store, shop, span)
    if name == "customers":
        return customers(store, shop, span, request.sort or "spend", request.top)
    if name == "activity":
        return activity(store, shop, span, request.by or "month")
    if name == "rules":
        return rules(store, shop, span)
    if name == "tiers":
        return tiers(store, shop, span)
    if name == "segments":
        only = None if request.segment is None else segment_name(request.segment)
        return segments(store, shop, span, only)
    return liability(store, shop, span)
