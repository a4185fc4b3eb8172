"""Rules file (YAML) -> validated `Ruleset`.

The only module that imports PyYAML. We compose the YAML into nodes and read
values from the node tree ourselves, instead of constructing Python objects,
for three reasons: every value keeps its line and column for error messages;
no tag can construct an arbitrary object (`!!python/object` is refused); and
YAML 1.1's surprises stay out (the key `on` would otherwise become `True`,
and `0.1` would become a float). Every problem in the file is collected before
failing, so the owner fixes them all in one pass.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import zoneinfo
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

import yaml

from .errors import InputMissing, Location, Problem, RulesInvalid
from .models import (
    All,
    Any_,
    Cap,
    Compare,
    Condition,
    Not,
    PointsPolicy,
    Program,
    Reward,
    Rule,
    Ruleset,
    TierLevel,
    TierPolicy,
)

T = TypeVar("T")

# libyaml's loader when PyYAML was built with it: 17x faster, same nodes and marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")

TOP_KEYS = ("program", "points", "tiers", "earn", "rewards")
TIER_KEYS = ("metric", "window", "downgrade", "levels")
LEVEL_KEYS = ("id", "name", "threshold", "multiplier", "perks")
METRICS = ("spend", "points")
WINDOWS = ("calendar_year", "rolling_12_months", "lifetime")
DOWNGRADES = ("keep_next_window", "reevaluate")
POINTS_KEYS = ("pending_days", "expire_after_months", "expire_at", "refund_shortfall")
EXPIRE_AT = ("end_of_month", "same_day")
SHORTFALLS = ("within_balance", "allow_negative")
PROGRAM_KEYS = ("name", "currency", "timezone", "rounding", "point_value")
RULE_KEYS = (
    "id",
    "on",
    "description",
    "points",
    "points_per_unit",
    "multiply",
    "reward",
    "when",
    "window",
    "weekdays",
    "min_amount",
    "priority",
    "stop",
    "cap",
    "budget",
)
AWARD_KEYS = ("points", "points_per_unit", "multiply", "reward")
REWARD_KEYS = ("id", "name", "cost", "description", "tiers", "limit", "window")
LIMIT_KEYS = ("count", "per")
CAP_KEYS = ("count", "points", "per")
WINDOW_KEYS = ("from", "to")
ROUNDINGS = ("floor", "nearest", "ceil")
PERIODS = ("day", "week", "month", "year", "lifetime")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Events the ledger raises itself; `signup` is accepted as another name for enroll.
EVENT_ALIASES = {"signup": "enroll"}

# Fields a condition may test, with their type and whether they exist only on purchases.
FIELDS: dict[str, tuple[str, bool]] = {
    "amount": ("decimal", True),
    "category": ("str", True),
    "sku": ("str", True),
    "quantity": ("int", True),
    "customer_id": ("str", False),
    "purchases": ("int", False),
    "spend": ("decimal", False),
    "balance": ("int", False),
    "enrolled_days": ("int", False),
    "referred": ("bool", False),
    "tier": ("str", False),
}
OPS_BY_TYPE = {
    "str": ("eq", "ne", "in", "not_in"),
    "bool": ("eq", "ne"),
    "int": ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between"),
    "decimal": ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between"),
}
COMBINATORS = ("all", "any", "not")
_KIND_WORDS = {"str": "text", "int": "a whole number", "decimal": "a number", "bool": "true/false"}


class _Invalid(Exception):
    """A value that could not be read; its problem is already recorded."""


def rules_version(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_rules(path: Path) -> Ruleset:
    """Read and validate a rules file. Raises InputMissing or RulesInvalid."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputMissing(
            f"rules file {path} not found (pass --rules PATH or set LOYALTY_RULES; "
            "rules.example.yaml is a starting point)"
        ) from None
    except IsADirectoryError:
        raise InputMissing(f"rules file {path} is a directory, not a file") from None
    except OSError as exc:
        raise InputMissing(f"rules file {path} cannot be read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RulesInvalid(
            [Problem(Location(str(path), line), "not valid UTF-8 text; save the file as UTF-8")]
        ) from None
    return parse_rules(text, str(path))


def parse_rules(text: str, source: str = "rules.yaml") -> Ruleset:
    reader = _Reader(source)
    ruleset = reader.read(text)
    if reader.problems or ruleset is None:
        problems = sorted(
            reader.problems, key=lambda p: (p.location.line, p.location.col or 0, p.message)
        )
        raise RulesInvalid(problems or [Problem(Location(source, 1), "file is empty")])
    return ruleset


def _suggest(word: str, known: tuple[str, ...] | list[str]) -> str:
    match = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


class _Reader:
    """Walks the YAML node tree, recording every problem instead of stopping."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.tier_ids: tuple[str, ...] = ()  # known once the tiers section is read

    # --- locating and reporting --------------------------------------------

    def at(self, node: yaml.Node) -> Location:
        mark = node.start_mark
        return Location(self.source, mark.line + 1, mark.column + 1)

    def problem(self, node: yaml.Node, message: str) -> None:
        self.problems.append(Problem(self.at(node), message))

    def fail(self, node: yaml.Node, message: str) -> _Invalid:
        self.problem(node, message)
        return _Invalid()

    # --- structure ---------------------------------------------------------

    def read(self, text: str) -> Ruleset | None:
        try:
            root = yaml.compose(text, Loader=_LOADER)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, None)
            what = exc.problem or exc.context or "invalid YAML"
            self.problems.append(Problem(Location(self.source, line, col), f"YAML syntax: {what}"))
            return None
        except yaml.YAMLError as exc:
            self.problems.append(Problem(Location(self.source, 1), f"YAML: {exc}"))
            return None
        if root is None:
            self.problems.append(Problem(Location(self.source, 1), "file is empty"))
            return None
        self.check_tags(root)
        if self.problems:
            return None
        try:
            top = self.mapping(root, TOP_KEYS, "the rules file")
        except _Invalid:
            return None
        program = self.optional(top, "program", self.program)
        if "program" not in top:
            self.problems.append(
                Problem(
                    self.at(root),
                    "missing 'program' section (add program: {name: ..., timezone: ...})",
                )
            )
        policy = self.optional(top, "points", self.points_policy) or PointsPolicy()
        tiers = self.optional(top, "tiers", self.tiers)
        rewards = self.optional(top, "rewards", self.rewards) or {}
        rules = self.optional(top, "earn", lambda n: self.rules(n, rewards)) or ()
        if program is None or self.problems:
            return None
        return Ruleset(
            program=program,
            rules=rules,
            rewards=rewards,
            source=self.source,
            text=text,
            version=rules_version(text),
            points=policy,
            tiers=tiers,
        )

    def check_tags(self, node: yaml.Node) -> None:
        """Refuse explicit tags (`!!python/object`, `!custom`) and merge keys."""
        if isinstance(node, yaml.ScalarNode):
            if node.tag not in _SCALAR_TAGS:
                self.problem(node, f"YAML tag '{node.tag.replace(_TAG, '!!')}' is not allowed")
        elif isinstance(node, yaml.SequenceNode):
            if node.tag != _TAG + "seq":
                self.problem(node, f"YAML tag '{node.tag.replace(_TAG, '!!')}' is not allowed")
            for child in node.value:
                self.check_tags(child)
        elif isinstance(node, yaml.MappingNode):
            if node.tag != _TAG + "map":
                self.problem(node, f"YAML tag '{node.tag.replace(_TAG, '!!')}' is not allowed")
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag == _TAG + "merge":
                    self.problem(key, "YAML merge keys ('<<') are not supported; write keys out")
                    continue
                self.check_tags(key)
                self.check_tags(value)

    def mapping(
        self, node: yaml.Node, known: tuple[str, ...], what: str
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """A mapping's keys -> (key node, value node); flags duplicates and unknown keys."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping of keys to values")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                self.problem(key, f"keys in {what} must be plain words")
                continue
            name = key.value
            if name in out:
                first = out[name][0].start_mark.line + 1
                self.problem(key, f"duplicate key '{name}' in {what} (first given at line {first})")
                continue
            if known and name not in known:
                self.problem(key, f"unknown key '{name}' in {what}{_suggest(name, known)}")
                continue
            out[name] = (key, value)
        return out

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list (items starting with '- ')")
        return list(node.value)

    def optional(
        self,
        fields: dict[str, tuple[yaml.Node, yaml.Node]],
        key: str,
        read: Callable[[yaml.Node], T],
    ) -> T | None:
        if key not in fields:
            return None
        try:
            return read(fields[key][1])
        except _Invalid:
            return None

    def required(
        self,
        fields: dict[str, tuple[yaml.Node, yaml.Node]],
        key: str,
        read: Callable[[yaml.Node], T],
        parent: yaml.Node,
        what: str,
    ) -> T | None:
        if key not in fields:
            self.problem(parent, f"{what} is missing required key '{key}'")
            return None
        return self.optional(fields, key, read)

    def first_use(
        self, seen: dict[str, int], ident: str, what: str, where: yaml.Node, item: yaml.Node
    ) -> bool:
        """Note the id's line; False (and a problem at `where`) if it was used before."""
        if ident in seen:
            self.problem(where, f"duplicate {what} id '{ident}' (first at line {seen[ident]})")
            return False
        seen[ident] = item.start_mark.line + 1
        return True

    # --- scalars -----------------------------------------------------------

    def scalar(self, node: yaml.Node, expected: str) -> yaml.ScalarNode:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"expected {expected}, got a {_shape(node)}")
        if node.tag == _TAG + "null":
            raise self.fail(node, f"expected {expected}, got nothing")
        return node

    def text(self, node: yaml.Node) -> str:
        # Any plain scalar reads as its text: `category: no` means the word "no".
        value = self.scalar(node, "text").value
        if not value.strip():
            raise self.fail(node, "expected text, got an empty string")
        return str(value)

    def identifier(self, node: yaml.Node, what: str) -> str:
        value = self.text(node)
        if not _ID.match(value):
            raise self.fail(
                node,
                f"{what} '{value}' must be lowercase letters, digits, '-', '_' or '.', "
                "starting with a letter or digit",
            )
        return value

    def integer(self, node: yaml.Node, what: str, *, minimum: int | None = None) -> int:
        scalar = self.scalar(node, f"a whole number for {what}")
        if scalar.tag != _TAG + "int":
            raise self.fail(node, f"{what} must be a whole number, got '{scalar.value}'")
        try:
            value = int(scalar.value.replace("_", ""), 0)
        except ValueError:
            raise self.fail(node, f"{what} must be a whole number, got '{scalar.value}'") from None
        if minimum is not None and value < minimum:
            if minimum == 0:
                raise self.fail(node, f"{what} must not be negative, got {value}")
            raise self.fail(node, f"{what} must be at least {minimum}, got {value}")
        return value

    def decimal(self, node: yaml.Node, what: str) -> Decimal:
        scalar = self.scalar(node, f"a number for {what}")
        if scalar.tag not in (_TAG + "int", _TAG + "float"):
            raise self.fail(node, f"{what} must be a number, got '{scalar.value}'")
        try:
            value = Decimal(scalar.value.replace("_", ""))
        except InvalidOperation:
            raise self.fail(node, f"{what} must be a plain number, got '{scalar.value}'") from None
        if not value.is_finite():
            raise self.fail(node, f"{what} must be a finite number, got '{scalar.value}'")
        return value

    def boolean(self, node: yaml.Node, what: str) -> bool:
        scalar = self.scalar(node, f"true or false for {what}")
        if scalar.tag != _TAG + "bool":
            raise self.fail(node, f"{what} must be true or false, got '{scalar.value}'")
        return scalar.value.lower() in ("true", "yes", "on", "y")

    def day(self, node: yaml.Node, what: str) -> date:
        scalar = self.scalar(node, f"a date for {what}")
        try:
            return date.fromisoformat(scalar.value)
        except ValueError:
            raise self.fail(
                node, f"{what} must be a date like 2026-11-27, got '{scalar.value}'"
            ) from None

    def choice(self, node: yaml.Node, what: str, options: tuple[str, ...]) -> str:
        value = self.text(node)
        if value not in options:
            raise self.fail(
                node,
                f"{what} must be one of {', '.join(options)}, got '{value}'"
                f"{_suggest(value, options)}",
            )
        return value

    # --- sections ----------------------------------------------------------

    def program(self, node: yaml.Node) -> Program | None:
        fields = self.mapping(node, PROGRAM_KEYS, "program")
        name = self.required(fields, "name", self.text, node, "program")
        currency = self.optional(fields, "currency", self.currency) or "USD"
        tz = self.required(fields, "timezone", self.timezone, node, "program")
        rounding = self.optional(
            fields, "rounding", lambda n: self.choice(n, "rounding", ROUNDINGS)
        )
        point_value = self.optional(
            fields, "point_value", lambda n: self.positive(n, "point_value")
        )
        if name is None or tz is None:
            return None
        return Program(
            name=name,
            currency=currency,
            timezone=tz,
            rounding=rounding or "floor",  # type: ignore[arg-type]
            point_value=point_value,
        )

    def points_policy(self, node: yaml.Node) -> PointsPolicy:
        f = self.mapping(node, POINTS_KEYS, "points")
        pending = self.optional(
            f, "pending_days", lambda n: self.integer(n, "pending_days", minimum=0)
        )
        months = self.optional(
            f, "expire_after_months", lambda n: self.integer(n, "expire_after_months", minimum=1)
        )
        at = self.optional(f, "expire_at", lambda n: self.choice(n, "expire_at", EXPIRE_AT))
        shortfall = self.optional(
            f, "refund_shortfall", lambda n: self.choice(n, "refund_shortfall", SHORTFALLS)
        )
        if "expire_at" in f and "expire_after_months" not in f:
            self.problem(f["expire_at"][0], "expire_at needs expire_after_months")
        return PointsPolicy(
            pending_days=pending or 0,
            expire_after_months=months,
            expire_at=at or "end_of_month",  # type: ignore[arg-type]
            refund_shortfall=shortfall or "within_balance",  # type: ignore[arg-type]
        )

    def tiers(self, node: yaml.Node) -> TierPolicy:
        f = self.mapping(node, TIER_KEYS, "tiers")
        metric = self.required(
            f, "metric", lambda n: self.choice(n, "metric", METRICS), node, "tiers"
        )
        window = self.required(
            f, "window", lambda n: self.choice(n, "window", WINDOWS), node, "tiers"
        )
        downgrade = self.optional(f, "downgrade", lambda n: self.choice(n, "downgrade", DOWNGRADES))
        levels = self.required(f, "levels", self.levels, node, "tiers")
        if metric is None or window is None or not levels:
            raise _Invalid()
        self.tier_ids = tuple(level.id for level in levels)
        return TierPolicy(
            metric=metric,  # type: ignore[arg-type]
            window=window,  # type: ignore[arg-type]
            downgrade=downgrade or "keep_next_window",  # type: ignore[arg-type]
            levels=levels,
        )

    def levels(self, node: yaml.Node) -> tuple[TierLevel, ...]:
        out: list[TierLevel] = []
        seen: dict[str, int] = {}
        previous: tuple[TierLevel, yaml.Node] | None = None
        items = self.sequence(node, "levels")
        if not items:
            raise self.fail(node, "levels must list at least one tier")
        for item in items:
            try:
                f = self.mapping(item, LEVEL_KEYS, "a tier")
            except _Invalid:
                continue
            tid = self.required(f, "id", lambda n: self.identifier(n, "tier id"), item, "a tier")
            name = self.required(f, "name", self.text, item, f"tier '{tid}'")
            threshold = self.required(
                f, "threshold", lambda n: self.decimal(n, "threshold"), item, f"tier '{tid}'"
            )
            multiplier = self.optional(f, "multiplier", self.multiplier)
            perks = self.optional(f, "perks", self.text)
            if tid is None or name is None or threshold is None:
                continue
            if not self.first_use(seen, tid, "tier", f["id"][1], item):
                continue
            level = TierLevel(tid, name, threshold, multiplier or Decimal(1), perks)
            where = f["threshold"][1]
            if previous is None and threshold != 0:
                self.problem(
                    where,
                    f"the first tier, '{tid}', is where everyone starts: its threshold must be 0",
                )
            if previous is not None and threshold <= previous[0].threshold:
                self.problem(
                    where,
                    f"tier thresholds must ascend: '{tid}' ({threshold}) is not above "
                    f"'{previous[0].id}' ({previous[0].threshold})",
                )
            previous = (level, where)
            out.append(level)
        return tuple(out)

    def currency(self, node: yaml.Node) -> str:
        value = self.text(node)
        if not _CURRENCY.match(value):
            raise self.fail(node, f"currency must be a 3-letter ISO code like USD, got '{value}'")
        return value

    def timezone(self, node: yaml.Node) -> str:
        value = self.text(node)
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise self.fail(
                node, f"unknown time zone '{value}' (use an IANA name like Europe/London)"
            ) from None
        return value

    def rewards(self, node: yaml.Node) -> dict[str, Reward]:
        out: dict[str, Reward] = {}
        first: dict[str, int] = {}
        for item in self.sequence(node, "rewards"):
            try:
                fields = self.mapping(item, REWARD_KEYS, "a reward")
            except _Invalid:
                continue
            rid = self.required(
                fields, "id", lambda n: self.identifier(n, "reward id"), item, "a reward"
            )
            name = self.required(fields, "name", self.text, item, f"reward '{rid}'")
            cost = self.required(
                fields,
                "cost",
                lambda n: self.integer(n, "cost", minimum=1),
                item,
                f"reward '{rid}'",
            )
            self.optional(fields, "description", self.text)
            tiers = self.optional(fields, "tiers", self.tier_list)
            limit = self.optional(fields, "limit", self.limit)
            window = self.optional(fields, "window", self.window)
            if rid is None:
                continue
            if not self.first_use(first, rid, "reward", fields["id"][1], item):
                continue
            if name is not None and cost is not None:
                out[rid] = Reward(
                    id=rid,
                    name=name,
                    cost=cost,
                    tiers=tiers,
                    limit=limit,
                    available_from=window[0] if window else None,
                    available_to=window[1] if window else None,
                )
        return out

    def rules(self, node: yaml.Node, rewards: dict[str, Reward]) -> tuple[Rule, ...]:
        out: list[Rule] = []
        first: dict[str, int] = {}
        for order, item in enumerate(self.sequence(node, "earn")):
            rule = self.rule(item, order, rewards)
            if rule is None:
                continue
            if self.first_use(first, rule.id, "rule", item, item):
                out.append(rule)
        return tuple(out)

    def rule(self, node: yaml.Node, order: int, rewards: dict[str, Reward]) -> Rule | None:
        try:
            f = self.mapping(node, RULE_KEYS, "an earn rule")
        except _Invalid:
            return None
        rid = self.required(f, "id", lambda n: self.identifier(n, "rule id"), node, "an earn rule")
        what = f"rule '{rid}'" if rid else "an earn rule"
        on = self.required(f, "on", lambda n: self.identifier(n, "'on'"), node, what)
        on = EVENT_ALIASES.get(on, on) if on else on
        awards = [k for k in AWARD_KEYS if k in f]
        if len(awards) != 1:
            self.problem(
                node,
                f"{what} needs exactly one of points, points_per_unit, multiply or reward"
                + (f" (it has {', '.join(awards)})" if awards else ""),
            )
        points = self.optional(f, "points", lambda n: self.integer(n, "points", minimum=0))
        per_unit = self.optional(
            f, "points_per_unit", lambda n: self.positive(n, "points_per_unit")
        )
        multiply = self.optional(f, "multiply", self.multiplier)
        reward = self.optional(f, "reward", lambda n: self.reward_ref(n, rewards))
        purchase_only = [k for k in ("points_per_unit", "min_amount") if k in f]
        if on and on != "purchase" and purchase_only:
            self.problem(
                f[purchase_only[0]][0],
                f"'{purchase_only[0]}' only applies to purchase rules, and {what} is on '{on}'",
            )
        when = self.optional(f, "when", lambda n: self.condition(n, on == "purchase"))
        window = self.optional(f, "window", self.window)
        weekdays = self.optional(f, "weekdays", self.weekdays)
        min_amount = self.optional(f, "min_amount", lambda n: self.positive(n, "min_amount"))
        priority = self.optional(f, "priority", lambda n: self.integer(n, "priority"))
        stop = self.optional(f, "stop", lambda n: self.boolean(n, "stop"))
        cap = self.optional(f, "cap", self.cap)
        budget = self.optional(f, "budget", lambda n: self.integer(n, "budget", minimum=1))
        description = self.optional(f, "description", self.text)
        if rid is None or on is None or len(awards) != 1:
            return None
        return Rule(
            id=rid,
            on=on,
            order=order,
            location=self.at(node),
            points=points,
            points_per_unit=per_unit,
            multiply=multiply,
            reward=reward,
            when=when,
            window_from=window[0] if window else None,
            window_to=window[1] if window else None,
            weekdays=weekdays,
            min_amount=min_amount,
            priority=priority or 0,
            stop=bool(stop),
            cap=cap,
            budget=budget,
            description=description,
        )

    def positive(self, node: yaml.Node, what: str) -> Decimal:
        value = self.decimal(node, what)
        if value <= 0:
            raise self.fail(node, f"{what} must be greater than zero, got {value}")
        return value

    def multiplier(self, node: yaml.Node) -> Decimal:
        value = self.decimal(node, "multiply")
        if value < 1:
            raise self.fail(
                node,
                f"multiply must be at least 1, got {value} (for fewer points, use a lower "
                "points_per_unit with a higher priority and stop: true)",
            )
        return value

    def reward_ref(self, node: yaml.Node, rewards: dict[str, Reward]) -> str:
        value = self.text(node)
        if value not in rewards:
            known = sorted(rewards)
            raise self.fail(
                node,
                f"unknown reward '{value}'{_suggest(value, known)}; rewards are: "
                + (", ".join(known) or "none (add a rewards: section)"),
            )
        return value

    def tier_list(self, node: yaml.Node) -> frozenset[str]:
        items = self.sequence(node, "tiers")
        if not items:
            raise self.fail(node, "tiers must list at least one tier id")
        found = set()
        for item in items:
            try:
                found.add(self.tier_ref(item))
            except _Invalid:
                continue
        return frozenset(found)

    def limit(self, node: yaml.Node) -> Cap:
        f = self.mapping(node, LIMIT_KEYS, "limit")
        count = self.required(
            f, "count", lambda n: self.integer(n, "limit count", minimum=1), node, "limit"
        )
        per = self.required(
            f, "per", lambda n: self.choice(n, "limit 'per'", PERIODS), node, "limit"
        )
        if count is None or per is None:
            raise _Invalid()
        return Cap(per=per, count=count)  # type: ignore[arg-type]

    def tier_ref(self, node: yaml.Node) -> str:
        value = self.text(node)
        if value not in self.tier_ids:
            known = list(self.tier_ids)
            raise self.fail(
                node,
                f"unknown tier '{value}'{_suggest(value, known)}; tiers are: "
                + (", ".join(known) or "none (add a tiers: section)"),
            )
        return value

    def window(self, node: yaml.Node) -> tuple[date | None, date | None]:
        f = self.mapping(node, WINDOW_KEYS, "window")
        if not f:
            raise self.fail(node, "window needs 'from', 'to' or both")
        start = self.optional(f, "from", lambda n: self.day(n, "window 'from'"))
        end = self.optional(f, "to", lambda n: self.day(n, "window 'to'"))
        if start and end and end < start:
            raise self.fail(node, f"window ends ({end}) before it starts ({start})")
        return (start, end)

    def weekdays(self, node: yaml.Node) -> frozenset[int]:
        days: set[int] = set()
        items = self.sequence(node, "weekdays")
        if not items:
            raise self.fail(node, "weekdays must list at least one day")
        for item in items:
            try:
                word = self.text(item).lower()[:3]
            except _Invalid:
                continue
            if word not in WEEKDAYS:
                self.problem(item, f"unknown weekday '{item.value}' (use mon, tue, ... sun)")
                continue
            days.add(WEEKDAYS.index(word))
        return frozenset(days)

    def cap(self, node: yaml.Node) -> Cap:
        f = self.mapping(node, CAP_KEYS, "cap")
        per = self.required(f, "per", lambda n: self.choice(n, "cap 'per'", PERIODS), node, "cap")
        count = self.optional(f, "count", lambda n: self.integer(n, "cap count", minimum=1))
        points = self.optional(f, "points", lambda n: self.integer(n, "cap points", minimum=1))
        if "count" not in f and "points" not in f:
            raise self.fail(node, "cap needs 'count', 'points' or both")
        if per is None:
            raise _Invalid()
        return Cap(per=per, count=count, points=points)  # type: ignore[arg-type]

    # --- conditions --------------------------------------------------------

    def condition(self, node: yaml.Node, on_purchase: bool) -> Condition:
        known = tuple(FIELDS) + COMBINATORS
        f = self.mapping(node, known, "a condition")
        if isinstance(node, yaml.MappingNode) and not node.value:
            raise self.fail(node, "a condition needs at least one field or all/any/not")
        parts: list[Condition] = []
        for name, (key, value) in f.items():
            try:
                parts.append(self.condition_part(name, key, value, on_purchase))
            except _Invalid:
                continue
        if len(parts) != len(f):
            raise _Invalid()
        return parts[0] if len(parts) == 1 else All(tuple(parts))

    def condition_part(
        self, name: str, key: yaml.Node, value: yaml.Node, on_purchase: bool
    ) -> Condition:
        if name in ("all", "any"):
            items = [self.condition(n, on_purchase) for n in self.sequence(value, name)]
            if not items:
                raise self.fail(value, f"'{name}' needs at least one condition")
            return All(tuple(items)) if name == "all" else Any_(tuple(items))
        if name == "not":
            return Not(self.condition(value, on_purchase))
        kind, purchase_only = FIELDS[name]
        if purchase_only and not on_purchase:
            raise self.fail(key, f"'{name}' is only known on purchases, not on events")
        if isinstance(value, yaml.MappingNode):
            if not value.value:
                raise self.fail(value, f"the test on '{name}' needs an operator such as eq or in")
            f = self.mapping(value, OPS_BY_TYPE["int"], f"the test on '{name}'")
            allowed = OPS_BY_TYPE[kind]
            for op, (op_node, _) in f.items():
                if op not in allowed:
                    self.problem(
                        op_node,
                        f"'{op}' does not apply to '{name}', which is {_KIND_WORDS[kind]} "
                        f"(use {', '.join(allowed)})",
                    )
            if len(f) != len(value.value) or any(op not in allowed for op in f):
                raise _Invalid()
            tests = [self.compare(name, kind, op, v) for op, (_, v) in f.items()]
            return tests[0] if len(tests) == 1 else All(tuple(tests))
        if isinstance(value, yaml.SequenceNode):
            return self.compare(name, kind, "in", value)
        return self.compare(name, kind, "eq", value)

    def compare(self, name: str, kind: str, op: str, node: yaml.Node) -> Compare:
        read = self.field_reader(kind, name)
        if name == "tier":
            read = self.tier_ref
        if op in ("in", "not_in"):
            values = [read(n) for n in self.sequence(node, f"'{op}' on '{name}'")]
            if not values:
                raise self.fail(node, f"'{op}' on '{name}' needs at least one value")
            return Compare(name, op, frozenset(values))
        if op == "between":
            bounds = self.sequence(node, f"'between' on '{name}'")
            if len(bounds) != 2:
                raise self.fail(node, f"'between' on '{name}' needs [low, high]")
            low, high = read(bounds[0]), read(bounds[1])
            if high < low:  # type: ignore[operator]
                raise self.fail(node, f"'between' on '{name}' has high ({high}) below low ({low})")
            return Compare(name, op, (low, high))
        return Compare(name, op, read(node))

    def field_reader(self, kind: str, name: str) -> Callable[[yaml.Node], object]:
        readers: dict[str, Callable[[yaml.Node], object]] = {
            "str": lambda n: self.text(n).casefold(),  # conditions compare text without case
            "int": lambda n: self.integer(n, f"'{name}'"),
            "decimal": lambda n: self.decimal(n, f"'{name}'"),
            "bool": lambda n: self.boolean(n, f"'{name}'"),
        }
        return readers[kind]


def _shape(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return "value"
