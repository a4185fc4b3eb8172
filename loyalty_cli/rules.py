"""Rules file (YAML) -> validated `Ruleset`.

The only module that imports PyYAML. We compose the YAML into nodes and read
values from the node tree ourselves, instead of constructing Python objects,
for three reasons: every value keeps its line and column for error messages;
no tag can construct an arbitrary object (`!!python/object` is refused); and
YAML 1.1's surprises stay out (the key `on` would otherwise become `True`,
and `0.1` would become a float). Every problem in the file is collected before
failing, so the owner fixes them all in one pass.

A rules file is bounded before any of that (see "Limits of a rules file" in the
README): at most 1 MiB is read; an event scan, linear in the file's size,
refuses anchors and aliases and deep nesting before anything is composed; and
every count, text and number has a limit, chosen so that nothing a valid file
says can overflow SQLite's 64-bit integers or the evaluator's Decimal arithmetic.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import zoneinfo
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import yaml

from .errors import InputMissing, Location, LoyaltyError, Problem, RulesInvalid, did_you_mean
from .games.model import Games
from .games.section import read_badges, read_games
from .models import (
    All,
    Any_,
    Cap,
    Compare,
    Condition,
    Line,
    Not,
    PointsPolicy,
    Program,
    Reward,
    Rule,
    RuleCase,
    Ruleset,
    RuleUsage,
    TierLevel,
    TierPolicy,
)
from .values import MAX_AMOUNT

T = TypeVar("T")

# libyaml's loader when PyYAML was built with it: 17x faster, same nodes and marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_LOCALE = re.compile(r"^([a-z]{2,3})(?:[_-]([A-Za-z]{2}))?$")
# Numbers as a person writes them. YAML 1.1 also reads 0x10, 0b11, 010 (octal 8),
# 1_000 and 1:30 (sexagesimal 90) as integers, and 1.0e+3 as a float. We refuse
# those forms: YAML 1.2 and other tools read 010 and 1:30 differently, so the
# file would mean different things to different readers; and in a points file
# they are far more often a slip (a pasted id, a time) than a wish for hex.
_PLAIN_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)", re.ASCII)
_PLAIN_DECIMAL = re.compile(r"[-+]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
_EXPONENT = re.compile(r"[-+]?(?:[0-9_]+(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+", re.ASCII)
# What YAML allows in a file (its c-printable set); anything else is refused by
# the parser with a message that has no line, so we find it first.
_NOT_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# --- limits of a rules file (the README's "Limits of a rules file") -----------
# Far above what any real programme needs, and low enough that nothing a valid
# file says can overflow SQLite's 64-bit integers (9.2 x 10^18) or Decimal's 28
# digits, however the rules combine: see MAX_AWARD.
MAX_BYTES = 1024 * 1024  # the whole file; at most this plus one byte is ever read
MAX_DEPTH = 32  # mappings and lists inside each other; the example needs 7
# Keys, values and lists in all (YAML nodes). Composing one costs ~0.5 KB and ~3 us,
# so no file costs more than ~120 MB and ~2 s to refuse (the worst: 100,000 unknown
# keys, each its own problem). 1,000 rules with every key take ~50,000 values; the
# rest is room for long in: lists.
MAX_VALUES = 200_000
MAX_RULES = 1000
MAX_REWARDS = 1000
MAX_TIERS = 50
MAX_ITEMS = 1000  # any other list: in/not_in values, all/any conditions, weekdays, tiers
MAX_TEXT = 1000  # characters in a text value (names, descriptions, categories)
MAX_ID = 64  # characters in a rule, reward or tier id and in an event name
MAX_PLACES = 6  # decimal places in any number
EARLIEST = date(1900, 1, 1)  # rule and reward windows
LATEST = date(2999, 12, 31)
# The most points one activity could ever earn, adding up every rule for its
# kind as if all fired on a purchase of values.MAX_AMOUNT, multipliers and the
# best tier included. One rule at its own limits (1,000,000 per unit) reaches it
# exactly; 9,000 such awards still fit in a 64-bit balance.
MAX_AWARD = 10**15


class Bound(NamedTuple):
    """The values a number in the rules file may take, both ends included
    unless `above_low` (then it must be greater than `low`)."""

    low: int
    high: int
    above_low: bool = False
    hint: str = ""  # how to fix a value above `high`, when lowering it is not the whole story


BILLION = 1_000_000_000
TRILLION = 1_000_000_000_000
BOUNDS: dict[str, Bound] = {
    "points": Bound(0, BILLION),
    "points_per_unit": Bound(0, 1_000_000, above_low=True),
    "multiply": Bound(1, 100, hint="for a higher rate, raise points_per_unit instead"),
    "multiplier": Bound(1, 100),
    "cost": Bound(1, BILLION),
    "cap count": Bound(1, BILLION),
    "cap points": Bound(1, BILLION),
    "limit count": Bound(1, BILLION),
    "budget": Bound(1, TRILLION),
    "pending_days": Bound(0, 365, hint="a return window of a year at most"),
    "expire_after_months": Bound(
        1, 1200, hint="100 years; leave expire_after_months out for points that never expire"
    ),
    "threshold": Bound(0, TRILLION),
    "priority": Bound(-1_000_000, 1_000_000, hint="only the order of priorities matters"),
    "min_amount": Bound(0, TRILLION, above_low=True),
    "point_value": Bound(0, 1_000_000, above_low=True),
    "decimal condition": Bound(0, TRILLION),  # amount, spend
    "whole-number condition": Bound(-TRILLION, TRILLION),  # quantity, purchases, balance...
}
CASE_POINTS = Bound(0, TRILLION)
CASE_SIGNED = Bound(-TRILLION, TRILLION)
CASE_MONEY = Bound(0, int(MAX_AMOUNT))  # spend so far
CASE_AMOUNT = Bound(0, int(MAX_AMOUNT), above_low=True)  # a purchase's, a refund's

TOP_KEYS = ("program", "points", "tiers", "earn", "rewards", "badges", "games", "tests")
# A test case (`loyalty rules test`) and the customer it is about.
CASE_KEYS = ("name", "at", "customer", "purchase", "event", "refund", "expect", "total")
CUSTOMER_KEYS = (
    "tier", "enrolled", "purchases", "spend", "balance", "referred", "used", "budget_used",
)  # fmt: skip
MAX_CASES = 1000
MAX_RECEIPT_LINES = 1000  # as receipts.MAX_LINES: a test's receipt is a till's
TIER_KEYS = ("metric", "window", "downgrade", "levels")
LEVEL_KEYS = ("id", "name", "threshold", "multiplier", "perks")
METRICS = ("spend", "points")
WINDOWS = ("calendar_year", "rolling_12_months", "lifetime")
DOWNGRADES = ("keep_next_window", "reevaluate")
POINTS_KEYS = ("pending_days", "expire_after_months", "expire_at", "refund_shortfall")
EXPIRE_AT = ("end_of_month", "same_day")
SHORTFALLS = ("within_balance", "allow_negative")
PROGRAM_KEYS = ("name", "currency", "timezone", "rounding", "point_value", "locale")
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
    "per",
    "exclude",
)
AWARD_KEYS = ("points", "points_per_unit", "multiply", "reward", "exclude")
SCOPES = ("line", "receipt")
# Fields that describe one line of a receipt: a rule testing one is judged per line.
LINE_FIELDS = frozenset({"category", "sku", "quantity"})
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
    "items": ("int", True),
    "store": ("str", True),
    "customer_id": ("str", False),
    "purchases": ("int", False),
    "spend": ("decimal", False),
    "balance": ("int", False),
    "enrolled_days": ("int", False),
    "referred": ("bool", False),
    "tier": ("str", False),
    "badge": ("str", False),  # a badge the customer holds (see games.section)
}
OPS_BY_TYPE = {
    "str": ("eq", "ne", "in", "not_in"),
    "bool": ("eq", "ne"),
    "int": ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between"),
    "decimal": ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between"),
}
COMBINATORS = ("all", "any", "not")
_KIND_WORDS = {"str": "text", "int": "a whole number", "decimal": "a number", "bool": "true/false"}


class _Mark(Protocol):
    """Where a node or event starts: PyYAML's Mark or libyaml's."""

    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...


class _Invalid(Exception):
    """A value that could not be read; its problem is already recorded."""


def rules_version(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_rules(path: Path) -> Ruleset:
    """Read and validate a rules file. Raises InputMissing or RulesInvalid."""
    data = _read(path, missing_ok=False)
    assert data is not None
    return _decode_and_parse(data, path)


def load_rules_if_present(path: Path) -> Ruleset | None:
    """The default rules file for a command that can do without one (reports):
    None when nothing is there (no file, a dangling link, a parent that is not a
    folder), else `load_rules`. A file that is there but cannot be read is an
    error, never quietly skipped: the reports would use the wrong time zone."""
    data = _read(path, missing_ok=True)
    return None if data is None else _decode_and_parse(data, path)


def _read(path: Path, *, missing_ok: bool) -> bytes | None:
    """At most MAX_BYTES + 1 bytes of the file, so /dev/zero, a FIFO or a huge
    file costs a bounded read. Every failure is one InputMissing line (exit 66)."""
    # O_NONBLOCK: opening a FIFO that has no writer would otherwise wait forever.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError) as exc:
        if missing_ok:
            return None
        if isinstance(exc, NotADirectoryError):
            raise InputMissing(
                f"rules file {path} cannot be read: a folder on its path is a file"
            ) from None
        if os.path.islink(path):
            raise InputMissing(
                f"rules file {path} is a symbolic link to {_link_target(path)}, which does not "
                "exist; fix the link or pass --rules PATH"
            ) from None
        raise InputMissing(
            f"rules file {path} not found (pass --rules PATH or set LOYALTY_RULES; "
            "rules.example.yaml is a starting point)"
        ) from None
    except IsADirectoryError:  # where opening a folder is refused (not Linux)
        raise InputMissing(f"rules file {path} is a directory, not a file") from None
    except OSError as exc:
        raise InputMissing(f"rules file {path} cannot be read: {_reason(exc)}") from None
    except ValueError:  # an embedded NUL byte: no file can have that name
        raise InputMissing(
            f"rules file {str(path)!r} cannot be read: a NUL byte in its name"
        ) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):  # os.fdopen would refuse it with an exception of its own
            raise InputMissing(f"rules file {path} is a directory, not a file")
        regular = stat.S_ISREG(mode)
        if not regular:
            os.set_blocking(fd, True)  # a pipe with a writer: wait for its text
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputMissing(f"rules file {path} cannot be read: {_reason(exc)}") from None
    finally:
        os.close(fd)
    if not data and not regular:
        raise InputMissing(
            f"rules file {path} is not a regular file and gave nothing to read "
            "(a FIFO with no writer, or a device?)"
        )
    return data


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "a missing file"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _decode_and_parse(data: bytes, path: Path) -> Ruleset:
    source = str(path)
    if len(data) > MAX_BYTES:
        raise RulesInvalid([_too_big(data, source)])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RulesInvalid(
            [Problem(Location(source, line), "not valid UTF-8 text; save the file as UTF-8")]
        ) from None
    return parse_rules(text, source)


def _too_big(data: bytes, source: str) -> Problem:
    """Located at the first byte past the limit."""
    line = data.count(b"\n", 0, MAX_BYTES) + 1
    col = MAX_BYTES - (data.rfind(b"\n", 0, MAX_BYTES) + 1) + 1
    return Problem(
        Location(source, line, col),
        f"the rules file is larger than 1 MiB ({MAX_BYTES:,} bytes), the most a rules file "
        "may be; check that this is the right file, or shorten descriptions and lists",
    )


def parse_rules(text: str, source: str = "rules.yaml") -> Ruleset:
    if len(text) > MAX_BYTES // 4:  # a character is at most 4 bytes: short texts pass at once
        data = text.encode("utf-8", "replace")
        if len(data) > MAX_BYTES:
            raise RulesInvalid([_too_big(data, source)])
    reader = _Reader(source)
    ruleset = reader.read(text)
    if reader.problems or ruleset is None:
        problems = sorted(
            reader.problems, key=lambda p: (p.location.line, p.location.col or 0, p.message)
        )
        raise RulesInvalid(problems or [Problem(Location(source, 1), "file is empty")])
    return ruleset


def _show(value: str, limit: int = 40) -> str:
    """A value from the file, cut short for a message."""
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value):,} characters)"


class _Reader:
    """Walks the YAML node tree, recording every problem instead of stopping."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.tier_ids: tuple[str, ...] = ()  # known once the tiers section is read
        self.badge_ids: tuple[str, ...] = ()  # known once the badges section is read

    # What the games' section reader (games.section) uses besides the methods below.
    Invalid = _Invalid

    def is_mapping(self, node: yaml.Node) -> bool:
        return isinstance(node, yaml.MappingNode)

    def is_sequence(self, node: yaml.Node) -> bool:
        return isinstance(node, yaml.SequenceNode)

    def line_of(self, node: yaml.Node) -> int:
        return int(node.start_mark.line) + 1

    def bound(self, low: int, high: int, above_low: bool = False) -> Bound:
        return Bound(low, high, above_low)

    # --- locating and reporting --------------------------------------------

    def at(self, node: yaml.Node) -> Location:
        return self.at_mark(node.start_mark)

    def problem(self, node: yaml.Node, message: str) -> None:
        self.problems.append(Problem(self.at(node), message))

    def suggest(self, word: str, known: tuple[str, ...] | list[str]) -> str:
        """A "did you mean", while there are few problems: past a thousand the owner has
        plenty to fix, and difflib on each of 100,000 more unknown keys takes seconds."""
        return did_you_mean(word, known) if len(self.problems) < 1000 else ""

    def fail(self, node: yaml.Node, message: str) -> _Invalid:
        self.problem(node, message)
        return _Invalid()

    # --- structure ---------------------------------------------------------

    def read(self, text: str) -> Ruleset | None:
        if not self.scan(text):
            return None
        try:
            root = yaml.compose(text, Loader=_LOADER)
        except yaml.YAMLError as exc:
            self.yaml_error(exc)
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
        badges = self.optional(top, "badges", lambda n: read_badges(self, n)) or ()
        self.badge_ids = tuple(b.id for b in badges)
        rules = self.optional(top, "earn", lambda n: self.rules(n, rewards)) or ()
        games = self.optional(top, "games", lambda n: read_games(self, n, rewards, badges))
        if games is None and badges:
            games = Games((), badges)
        self.check_worst_award(rules, tiers)
        cases = self.optional(top, "tests", lambda n: self.cases(n, program, rules, tiers)) or ()
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
            games=games,
            cases=cases,
        )

    def check_worst_award(self, rules: tuple[Rule, ...], tiers: TierPolicy | None) -> None:
        """Each number has its limit, but a thousand rules at their limits could still
        add up past a 64-bit integer in one earn. Refuse rules whose worst case for one
        activity is over MAX_AWARD, at the rule (in file order) that takes it past."""
        best_tier = max((level.multiplier for level in tiers.levels), default=1) if tiers else 1
        by_event: dict[str, list[Rule]] = {}
        for rule in rules:
            by_event.setdefault(rule.on, []).append(rule)
        for event, group in by_event.items():
            tier_extra = Decimal(best_tier - 1 if event == "purchase" else 0)
            worst = _worst_award(group, tier_extra)
            if worst <= MAX_AWARD:
                continue
            low, high = 1, len(group)  # the shortest prefix over the limit: worst grows with it
            while low < high:
                mid = (low + high) // 2
                if _worst_award(group[:mid], tier_extra) > MAX_AWARD:
                    high = mid
                else:
                    low = mid + 1
            what = f"a purchase of {MAX_AMOUNT:,.2f}" if event == "purchase" else "one activity"
            self.problems.append(
                Problem(
                    group[low - 1].location,
                    f"the rules on '{event}' up to this one could give {what} up to {worst:,} "
                    f"points, more than the {MAX_AWARD:,} one activity may earn; lower "
                    "points, points_per_unit or multiply, or add a cap on points",
                )
            )

    def yaml_error(self, exc: yaml.YAMLError) -> None:
        if isinstance(exc, yaml.MarkedYAMLError):
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, None)
            what = exc.problem or exc.context or "invalid YAML"
            self.problems.append(Problem(Location(self.source, line, col), f"YAML syntax: {what}"))
            return
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.problems.append(Problem(Location(self.source, 1), f"YAML: {first}"))

    def scan(self, text: str) -> bool:
        """The file's shape, from the parser's events, before anything is composed:
        no anchors or aliases (so no alias bomb or self-reference is ever expanded
        or walked), at most MAX_DEPTH levels of nesting (so the composer's and our
        own recursion stay shallow) and MAX_VALUES nodes (so composing stays cheap).
        One pass, linear in the file's size.
        False if the file must not be composed; the problems are recorded."""
        bad = _NOT_PRINTABLE.search(text)
        if bad is not None:
            at = bad.start()
            line = text.count("\n", 0, at) + 1
            col = at - (text.rfind("\n", 0, at) + 1) + 1
            self.problems.append(
                Problem(
                    Location(self.source, line, col),
                    f"character U+{ord(bad.group()):04X} is not allowed in a YAML file "
                    "(control characters are not text); remove it",
                )
            )
            return False
        depth = nodes = anchors = 0
        first_anchor: yaml.Event | None = None
        too_deep: yaml.Event | None = None
        too_many: yaml.Event | None = None
        try:
            for event in yaml.parse(text, Loader=_LOADER):
                if isinstance(event, yaml.NodeEvent):  # a scalar, a collection or an alias
                    nodes += 1
                    if nodes > MAX_VALUES:
                        too_many = event
                        break
                    if event.anchor is not None:  # an alias's anchor is the name it uses
                        anchors += 1
                        first_anchor = first_anchor or event
                    if isinstance(event, yaml.CollectionStartEvent):
                        depth += 1
                        if depth > MAX_DEPTH and too_deep is None:
                            too_deep = event
                elif isinstance(event, yaml.CollectionEndEvent):
                    depth -= 1
        except yaml.YAMLError as exc:
            self.yaml_error(exc)
            return False
        if first_anchor is not None:
            more = f" ({anchors} in this file)" if anchors > 1 else ""
            self.problems.append(
                Problem(
                    self.at_mark(first_anchor.start_mark),
                    "YAML anchors and aliases (&a, *a) are not supported; write the values out"
                    + more,
                )
            )
        if too_deep is not None:
            self.problems.append(
                Problem(
                    self.at_mark(too_deep.start_mark),
                    f"nested more than {MAX_DEPTH} levels deep, the most a rules file may be; "
                    "flatten it (a condition rarely needs more than three levels)",
                )
            )
        if too_many is not None:
            self.problems.append(
                Problem(
                    self.at_mark(too_many.start_mark),
                    f"more than {MAX_VALUES:,} values (keys, values and lists) in the file, the "
                    "most a rules file may have; check that this is the right file",
                )
            )
        return first_anchor is None and too_deep is None and too_many is None

    def at_mark(self, mark: _Mark | None) -> Location:
        if mark is None:
            return Location(self.source, 1)
        return Location(self.source, mark.line + 1, mark.column + 1)

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
                self.problem(
                    key, f"duplicate key '{_show(name)}' in {what} (first given at line {first})"
                )
                continue
            if known and name not in known:
                self.problem(
                    key, f"unknown key '{_show(name)}' in {what}{self.suggest(name, known)}"
                )
                continue
            out[name] = (key, value)
        return out

    def sequence(
        self,
        node: yaml.Node,
        what: str,
        limit: int = MAX_ITEMS,
        fix: str = "",
        noun: str = "items",
    ) -> list[yaml.Node]:
        """The list's items; past `limit`, one problem at the first item too many,
        and only the first `limit` items are read."""
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list (items starting with '- ')")
        if len(node.value) > limit:
            self.problem(
                node.value[limit],
                f"{what} has {len(node.value):,} {noun}, more than the {limit:,} allowed"
                + (f"; {fix}" if fix else ""),
            )
        return list(node.value[:limit])

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
        if len(value) > MAX_TEXT:
            raise self.fail(
                node,
                f"text of {len(value):,} characters is longer than the {MAX_TEXT:,} "
                "a value may have; shorten it",
            )
        return str(value)

    def identifier(self, node: yaml.Node, what: str) -> str:
        value = self.text(node)
        if len(value) > MAX_ID:
            raise self.fail(
                node,
                f"{what} '{_show(value)}' is longer than {MAX_ID} characters; shorten it",
            )
        if not _ID.match(value):
            raise self.fail(
                node,
                f"{what} '{value}' must be lowercase letters, digits, '-', '_' or '.', "
                "starting with a letter or digit",
            )
        return value

    def integer(self, node: yaml.Node, what: str, bound: Bound) -> int:
        scalar = self.scalar(node, f"a whole number for {what}")
        raw = scalar.value
        if scalar.tag != _TAG + "int":
            if _EXPONENT.fullmatch(raw):
                raise self.fail(
                    node, f"{what} must be written out without an exponent, like 1000, got '{raw}'"
                )
            raise self.fail(node, f"{what} must be a whole number, got '{_show(raw)}'")
        if not _PLAIN_INT.fullmatch(raw):
            raise self.fail(
                node,
                f"{what} must be a plain whole number like 1000 (no '_', 0x, 0b, ':' or "
                f"leading zero), got '{_show(raw)}'",
            )
        if len(raw.lstrip("+-")) > 19:  # past any bound; int() would refuse 4,300 digits
            value = (bound.low - 1) if raw.startswith("-") else (bound.high + 1)
        else:
            value = int(raw)
        self.check_bound(node, what, value, raw, bound)
        return value

    def decimal(self, node: yaml.Node, what: str, bound: Bound | None) -> Decimal:
        """A plain number with at most MAX_PLACES places, within `bound` (None: the
        caller checks it)."""
        scalar = self.scalar(node, f"a number for {what}")
        raw = scalar.value
        if scalar.tag not in (_TAG + "int", _TAG + "float"):
            if _EXPONENT.fullmatch(raw):
                raise self.fail(
                    node,
                    f"{what} must be written out without an exponent, like 1000 or 0.25, "
                    f"got '{raw}'",
                )
            raise self.fail(node, f"{what} must be a number, got '{_show(raw)}'")
        if raw.lower().lstrip("+-") in (".inf", ".nan"):
            raise self.fail(node, f"{what} must be a finite number, got '{raw}'")
        if _EXPONENT.fullmatch(raw):
            raise self.fail(
                node,
                f"{what} must be written out without an exponent, like 1000 or 0.25, got '{raw}'",
            )
        if not _PLAIN_DECIMAL.fullmatch(raw):
            raise self.fail(
                node,
                f"{what} must be a plain number like 12.5 (no '_', ':', 0x or leading zero), "
                f"got '{_show(raw)}'",
            )
        whole, _, places = raw.partition(".")
        if len(places) > MAX_PLACES:
            raise self.fail(
                node, f"{what} has more than {MAX_PLACES} decimal places, got {_show(raw)}"
            )
        if len(whole.lstrip("+-")) <= 19:
            value = Decimal(raw)
        else:  # past any bound: no need to carry all its digits
            value = Decimal("-1e20" if raw.startswith("-") else "1e20")
        if bound is not None:
            self.check_bound(node, what, value, raw, bound)
        return value

    def check_bound(
        self, node: yaml.Node, what: str, value: int | Decimal, raw: str, bound: Bound
    ) -> None:
        shown = _show(raw)
        if bound.above_low and value <= bound.low:
            low = "zero" if bound.low == 0 else f"{bound.low:,}"
            raise self.fail(node, f"{what} must be greater than {low}, got {shown}")
        if value < bound.low:
            if bound.low == 0:
                raise self.fail(node, f"{what} must not be negative, got {shown}")
            raise self.fail(node, f"{what} must be at least {bound.low:,}, got {shown}")
        if value > bound.high:
            hint = f" ({bound.hint})" if bound.hint else ""
            raise self.fail(node, f"{what} must be at most {bound.high:,}{hint}, got {shown}")

    def boolean(self, node: yaml.Node, what: str) -> bool:
        scalar = self.scalar(node, f"true or false for {what}")
        if scalar.tag != _TAG + "bool":
            raise self.fail(node, f"{what} must be true or false, got '{_show(scalar.value)}'")
        return scalar.value.lower() in ("true", "yes", "on", "y")

    def day(self, node: yaml.Node, what: str) -> date:
        scalar = self.scalar(node, f"a date for {what}")
        try:
            value = date.fromisoformat(scalar.value)
        except ValueError:
            raise self.fail(
                node, f"{what} must be a date like 2026-11-27, got '{_show(scalar.value)}'"
            ) from None
        if not EARLIEST <= value <= LATEST:
            raise self.fail(
                node, f"{what} must be between {EARLIEST} and {LATEST}, got {scalar.value}"
            )
        return value

    def choice(self, node: yaml.Node, what: str, options: tuple[str, ...]) -> str:
        value = self.text(node)
        if value not in options:
            raise self.fail(
                node,
                f"{what} must be one of {', '.join(options)}, got '{value}'"
                f"{self.suggest(value, options)}",
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
            fields, "point_value", lambda n: self.decimal(n, "point_value", BOUNDS["point_value"])
        )
        locale = self.optional(fields, "locale", self.locale)
        if name is None or tz is None:
            return None
        return Program(
            name=name,
            currency=currency,
            timezone=tz,
            rounding=rounding or "floor",  # type: ignore[arg-type]
            point_value=point_value,
            locale=locale,
        )

    def points_policy(self, node: yaml.Node) -> PointsPolicy:
        f = self.mapping(node, POINTS_KEYS, "points")
        pending = self.optional(
            f, "pending_days", lambda n: self.integer(n, "pending_days", BOUNDS["pending_days"])
        )
        months = self.optional(
            f,
            "expire_after_months",
            lambda n: self.integer(n, "expire_after_months", BOUNDS["expire_after_months"]),
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
        items = self.sequence(
            node, "levels", MAX_TIERS, "a programme needs a handful of tiers", "tiers"
        )
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
                f,
                "threshold",
                lambda n: self.decimal(n, "threshold", BOUNDS["threshold"]),
                item,
                f"tier '{tid}'",
            )
            multiplier = self.optional(f, "multiplier", lambda n: self.multiplier(n, "multiplier"))
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

    def locale(self, node: yaml.Node) -> str:
        """A language, optionally with its country (en, en_GB, de-DE), as en_GB."""
        value = self.text(node)
        found = _LOCALE.match(value)
        if not found:
            raise self.fail(
                node,
                f"locale must be a language code, optionally with a country, like en_GB or "
                f"de_DE, got '{value}'",
            )
        language, country = found.groups()
        return language if country is None else f"{language}_{country.upper()}"

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
        for item in self.sequence(
            node, "rewards", MAX_REWARDS, "remove the rewards no longer offered", "rewards"
        ):
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
                lambda n: self.integer(n, "cost", BOUNDS["cost"]),
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
        items = self.sequence(
            node,
            "earn",
            MAX_RULES,
            "combine rules that differ only in a value into one with a condition such as "
            "sku: {in: [...]}",
            "rules",
        )
        for order, item in enumerate(items):
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
                f"{what} needs exactly one of points, points_per_unit, multiply, reward or "
                "exclude" + (f" (it has {', '.join(awards)})" if awards else ""),
            )
        points = self.optional(f, "points", lambda n: self.integer(n, "points", BOUNDS["points"]))
        per_unit = self.optional(
            f,
            "points_per_unit",
            lambda n: self.decimal(n, "points_per_unit", BOUNDS["points_per_unit"]),
        )
        multiply = self.optional(f, "multiply", lambda n: self.multiplier(n, "multiply"))
        reward = self.optional(f, "reward", lambda n: self.reward_ref(n, rewards))
        exclude = self.optional(f, "exclude", lambda n: self.boolean(n, "exclude"))
        if exclude is False:
            self.problem(
                f["exclude"][0],
                f"{what}: exclude can only be true (leave it out for a rule that earns)",
            )
        per = self.optional(f, "per", lambda n: self.choice(n, "per", SCOPES))
        purchase_only = [k for k in ("points_per_unit", "min_amount", "exclude", "per") if k in f]
        if on and on != "purchase" and purchase_only:
            self.problem(
                f[purchase_only[0]][0],
                f"'{purchase_only[0]}' only applies to purchase rules, and {what} is on '{on}'",
            )
        when = self.optional(f, "when", lambda n: self.condition(n, on == "purchase"))
        window = self.optional(f, "window", self.window)
        weekdays = self.optional(f, "weekdays", self.weekdays)
        min_amount = self.optional(
            f, "min_amount", lambda n: self.decimal(n, "min_amount", BOUNDS["min_amount"])
        )
        priority = self.optional(
            f, "priority", lambda n: self.integer(n, "priority", BOUNDS["priority"])
        )
        stop = self.optional(f, "stop", lambda n: self.boolean(n, "stop"))
        cap = self.optional(f, "cap", self.cap)
        budget = self.optional(f, "budget", lambda n: self.integer(n, "budget", BOUNDS["budget"]))
        description = self.optional(f, "description", self.text)
        scope = per or _default_scope(per_unit, bool(exclude), when)
        if exclude and scope != "line":
            self.problem(f["per"][1], f"{what} excludes lines, so it is judged per line")
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
            exclude=bool(exclude),
            scope=scope,  # type: ignore[arg-type]
        )

    def multiplier(self, node: yaml.Node, what: str) -> Decimal:
        """A rule's `multiply` or a tier's `multiplier`: 1 to 100."""
        bound = BOUNDS[what]
        value = self.decimal(node, what, None)
        if value < bound.low:
            hint = (
                " (for fewer points, use a lower points_per_unit with a higher priority and "
                "stop: true)"
                if what == "multiply"
                else ""
            )
            raise self.fail(node, f"{what} must be at least 1, got {_show(node.value)}{hint}")
        self.check_bound(node, what, value, node.value, bound)
        return value

    def reward_ref(self, node: yaml.Node, rewards: dict[str, Reward]) -> str:
        value = self.text(node)
        if value not in rewards:
            known = sorted(rewards)
            raise self.fail(
                node,
                f"unknown reward '{value}'{self.suggest(value, known)}; rewards are: "
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
            f,
            "count",
            lambda n: self.integer(n, "limit count", BOUNDS["limit count"]),
            node,
            "limit",
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
                f"unknown tier '{value}'{self.suggest(value, known)}; tiers are: "
                + (", ".join(known) or "none (add a tiers: section)"),
            )
        return value

    def badge_ref(self, node: yaml.Node) -> str:
        value = self.text(node)
        if value not in self.badge_ids:
            known = list(self.badge_ids)
            raise self.fail(
                node,
                f"unknown badge '{value}'{self.suggest(value, known)}; badges are: "
                + (", ".join(known) or "none (add a badges: section)"),
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
        count = self.optional(
            f, "count", lambda n: self.integer(n, "cap count", BOUNDS["cap count"])
        )
        points = self.optional(
            f, "points", lambda n: self.integer(n, "cap points", BOUNDS["cap points"])
        )
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
        if name == "badge":
            read = self.badge_ref
        if op in ("in", "not_in"):
            items = self.sequence(
                node, f"'{op}' on '{name}'", fix="test a category instead of listing every value"
            )
            values = [read(n) for n in items]
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
            "int": lambda n: self.integer(n, f"'{name}'", BOUNDS["whole-number condition"]),
            "decimal": lambda n: self.decimal(n, f"'{name}'", BOUNDS["decimal condition"]),
            "bool": lambda n: self.boolean(n, f"'{name}'"),
        }
        return readers[kind]

    # --- tests (`loyalty rules test`) ---------------------------------------

    def cases(
        self,
        node: yaml.Node,
        program: Program | None,
        rules: tuple[Rule, ...],
        tiers: TierPolicy | None,
    ) -> tuple[RuleCase, ...]:
        out: list[RuleCase] = []
        seen: dict[str, int] = {}
        for item in self.sequence(
            node, "tests", MAX_CASES, "keep the cases that guard what changes", "tests"
        ):
            try:
                case = self.case(item, program, rules, tiers)
            except _Invalid:
                continue
            if case is not None and self.first_use(seen, case.name, "test", item, item):
                out.append(case)
        return tuple(out)

    def case(
        self,
        node: yaml.Node,
        program: Program | None,
        rules: tuple[Rule, ...],
        tiers: TierPolicy | None,
    ) -> RuleCase | None:
        f = self.mapping(node, CASE_KEYS, "a test")
        name = self.required(f, "name", self.text, node, "a test")
        what = f"test '{_show(name)}'" if name else "a test"
        tz = zoneinfo.ZoneInfo(program.timezone) if program is not None else None
        at = self.required(f, "at", lambda n: self.moment(n, "at", tz), node, what)
        activities = [k for k in ("purchase", "event", "refund") if k in f]
        if len(activities) != 1:
            self.problem(node, f"{what} needs exactly one of purchase, event or refund")
        customer = self.optional(f, "customer", lambda n: self.case_customer(n, tz, rules, tiers))
        expect = self.required(f, "expect", self.case_expect, node, what)
        total = self.optional(f, "total", lambda n: self.integer(n, "total", CASE_POINTS))
        event, refund = "purchase", None
        bought: dict[str, Any] | None = None
        if "purchase" in f:
            bought = self.optional(f, "purchase", self.case_purchase)
        elif "refund" in f:
            event = "refund"
            rf = self.optional(f, "refund", lambda n: self.mapping(n, ("amount", "of"), "refund"))
            if rf is not None:
                refund = self.optional(rf, "amount", lambda n: self.money(n, "refund amount"))
                bought = self.required(rf, "of", self.case_purchase, f["refund"][1], "refund")
        elif "event" in f:
            event = self.optional(f, "event", lambda n: self.identifier(n, "event")) or ""
            event = EVENT_ALIASES.get(event, event)
            if event == "purchase":
                self.problem(f["event"][1], "a purchase is given as purchase: {amount: ...}")
        if expect is not None:
            self.check_expect(expect, event, rules, tiers)
        if name is None or at is None or expect is None or len(activities) != 1:
            return None
        if event != "purchase" and event != "refund" and bought is None:
            bought = {}
        if bought is None:
            return None
        if refund is not None and bought.get("amount") is not None and refund > bought["amount"]:
            self.problem(f["refund"][1], f"{what} refunds more than the purchase came to")
            return None
        amount = bought.get("amount")
        if event in ("purchase", "refund") and amount is None:
            self.problem(node, f"{what}: the purchase needs an amount")
            return None
        facts = customer or {}
        expected = {rule: points for rule, (points, _) in expect.items()}
        return RuleCase(
            name=name,
            location=self.at(node),
            at=at,
            event=event,
            expect=expected,
            expect_location=self.at(f["expect"][1]),
            amount=amount,
            category=bought.get("category"),
            sku=bought.get("sku"),
            quantity=bought.get("quantity"),
            lines=bought.get("lines", ()),
            refund=refund,
            total=total,
            **facts,
        )

    def moment(self, node: yaml.Node, what: str, tz: zoneinfo.ZoneInfo | None) -> datetime:
        """A date and time, shop-local unless it names its offset; a date alone is noon."""
        raw = self.scalar(node, f"a date and time for {what}").value
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise self.fail(
                node, f"{what} must be a date and time like 2026-11-24T12:00, got '{_show(raw)}'"
            ) from None
        if len(raw) == 10:
            value = value.replace(hour=12)
        if not EARLIEST <= value.date() <= LATEST:
            raise self.fail(node, f"{what} must be between {EARLIEST} and {LATEST}, got {raw}")
        if value.tzinfo is None:
            value = value.replace(tzinfo=tz or UTC)
        return value.astimezone(UTC)

    def money(self, node: yaml.Node, what: str) -> Decimal:
        value = self.decimal(node, what, CASE_AMOUNT)
        if value != value.quantize(Decimal("0.01")):
            raise self.fail(node, f"{what} has more than 2 decimal places, got {value}")
        return value.quantize(Decimal("0.01"))

    def case_purchase(self, node: yaml.Node) -> dict[str, Any]:
        keys = ("amount", "category", "sku", "quantity", "lines")
        f = self.mapping(node, keys, "a test's purchase")
        if "lines" in f:
            return self.case_receipt(f)
        out: dict[str, Any] = {}
        out["amount"] = self.required(
            f, "amount", lambda n: self.money(n, "amount"), node, "a test's purchase"
        )
        for key in ("category", "sku"):
            out[key] = self.optional(f, key, self.text)
        out["quantity"] = self.optional(
            f, "quantity", lambda n: self.integer(n, "quantity", Bound(1, BILLION))
        )
        return out

    def case_receipt(self, f: dict[str, tuple[yaml.Node, yaml.Node]]) -> dict[str, Any]:
        """A purchase given as a receipt's lines, each as `earn --line` takes it
        (receipts.parse_line): its amount is their total; one line is a purchase
        of that line, as at the till."""
        from .receipts import check_receipt, parse_line, total

        for key in ("category", "sku", "quantity"):
            if key in f:
                self.problem(f[key][0], f"{key} goes in each line when a purchase has lines")
        lines: list[Line] = []
        items = self.sequence(f["lines"][1], "lines", MAX_RECEIPT_LINES, "split it", "lines")
        for item in items:
            with suppress(_Invalid):
                try:
                    lines.append(parse_line(self.text(item), "line"))
                except LoyaltyError as exc:
                    self.problem(item, exc.message)
        amount = self.optional(f, "amount", lambda n: self.money(n, "amount"))
        if not items:
            raise self.fail(f["lines"][1], "a test's purchase needs at least one line")
        if len(lines) != len(items):
            raise _Invalid()  # each bad line is a problem already
        try:
            receipt = check_receipt(lines, "the test's lines")
        except LoyaltyError as exc:
            raise self.fail(f["lines"][1], exc.message) from None
        came_to = total(receipt)
        if came_to <= 0:
            raise self.fail(f["lines"][1], "the lines come to 0.00; a purchase earns on more")
        if amount is not None and amount != came_to:
            raise self.fail(
                f["amount"][1], f"amount {amount} is not the lines' total {came_to}; leave it out"
            )
        if len(receipt) == 1:
            (only,) = receipt
            return {"amount": came_to, "category": only.category, "sku": only.sku,
                    "quantity": only.quantity}  # fmt: skip
        return {"amount": came_to, "lines": receipt}

    def case_customer(
        self,
        node: yaml.Node,
        tz: zoneinfo.ZoneInfo | None,
        rules: tuple[Rule, ...],
        tiers: TierPolicy | None,
    ) -> dict[str, Any]:
        f = self.mapping(node, CUSTOMER_KEYS, "a test's customer")
        out: dict[str, Any] = {}
        if "tier" in f:
            tier = self.optional(f, "tier", lambda n: self.identifier(n, "tier"))
            known = tuple(level.id for level in tiers.levels) if tiers else ()
            if tier is not None and tier not in known:
                self.problem(
                    f["tier"][1],
                    f"unknown tier '{tier}'{self.suggest(tier, known)}; tiers: "
                    f"{', '.join(known) or 'none (add a tiers: section)'}",
                )
            out["tier"] = tier
        if "enrolled" in f:
            out["enrolled"] = self.optional(f, "enrolled", lambda n: self.moment(n, "enrolled", tz))
        for count in ("purchases", "balance"):
            if count in f:
                with suppress(_Invalid):  # recorded as a problem already
                    out[count] = self.integer(f[count][1], count, CASE_POINTS)
        spend = self.optional(f, "spend", lambda n: self.decimal(n, "spend", CASE_MONEY))
        if spend is not None:
            out["spend"] = spend
        referred = self.optional(f, "referred", lambda n: self.boolean(n, "referred"))
        if referred is not None:
            out["referred"] = referred
        ids = tuple(rule.id for rule in rules)
        capped = tuple(rule.id for rule in rules if rule.cap is not None)
        budgeted = tuple(rule.id for rule in rules if rule.budget is not None)
        if "used" in f:
            used: dict[str, RuleUsage] = {}
            given = self.optional(f, "used", lambda n: self.mapping(n, (), "used")) or {}
            for rule, (key, value) in given.items():
                if rule not in capped:
                    self.problem(key, f"'{rule}' is not a rule with a cap{self.suggest(rule, ids)}")
                    continue
                try:
                    used[rule] = self.usage(value)
                except _Invalid:
                    continue
            out["used"] = used
        if "budget_used" in f:
            spent: dict[str, int] = {}
            for rule, (key, value) in (
                self.optional(f, "budget_used", lambda n: self.mapping(n, (), "budget_used")) or {}
            ).items():
                if rule not in budgeted:
                    self.problem(
                        key, f"'{rule}' is not a rule with a budget{self.suggest(rule, ids)}"
                    )
                    continue
                try:
                    spent[rule] = self.integer(value, "budget_used", CASE_POINTS)
                except _Invalid:
                    continue
            out["budget_used"] = spent
        return out

    def usage(self, node: yaml.Node) -> RuleUsage:
        """How much a capped rule was used in its period: N (times), or {count, points}."""
        if isinstance(node, yaml.MappingNode):
            f = self.mapping(node, ("count", "points"), "used")
            count = self.optional(f, "count", lambda n: self.integer(n, "count", CASE_POINTS))
            points = self.optional(f, "points", lambda n: self.integer(n, "points", CASE_POINTS))
            return RuleUsage(count or 0, points or 0)
        return RuleUsage(self.integer(node, "used", CASE_POINTS), 0)

    def case_expect(self, node: yaml.Node) -> dict[str, tuple[int, yaml.Node]]:
        f = self.mapping(node, (), "expect")
        out: dict[str, tuple[int, yaml.Node]] = {}
        for rule, (key, value) in f.items():
            try:
                out[rule] = (self.integer(value, f"points of '{rule}'", CASE_SIGNED), key)
            except _Invalid:
                continue
        return out

    def check_expect(
        self,
        expect: dict[str, tuple[int, yaml.Node]],
        event: str,
        rules: tuple[Rule, ...],
        tiers: TierPolicy | None,
    ) -> None:
        """Every key names a rule on this kind of activity (a tier's multiplier line
        as tier:ID on a purchase, a refund's clawback as `refund`)."""
        on = "purchase" if event == "refund" else event
        known = [rule.id for rule in rules if rule.on == on]
        if on == "purchase" and tiers is not None:
            known += [f"tier:{level.id}" for level in tiers.levels]
        if event == "refund":
            known.append("refund")
        for rule, (_, key) in expect.items():
            if rule not in known:
                other = next((r for r in rules if r.id == rule), None)
                why = f" (it is on '{other.on}', not '{on}')" if other else ""
                self.problem(
                    key,
                    f"expect names '{_show(rule)}', which is not a rule on '{on}'{why}"
                    f"{self.suggest(rule, known) if other is None else ''}; "
                    f"rules on '{on}': {', '.join(known) or 'none'}",
                )


def _default_scope(per_unit: Decimal | None, exclude: bool, when: Condition | None) -> str:
    """A rule is judged per line when it earns by the amount spent, excludes, or
    tests what a line is (category, sku, quantity); else once per receipt."""
    if per_unit is not None or exclude:
        return "line"
    return "line" if when is not None and _tested(when) & LINE_FIELDS else "receipt"


def _tested(condition: Condition) -> set[str]:
    if isinstance(condition, Compare):
        return {condition.field}
    if isinstance(condition, Not):
        return _tested(condition.item)
    return set().union(*(_tested(c) for c in condition.items))


def _worst_award(rules: list[Rule], tier_extra: Decimal) -> int:
    """The most these rules could give one activity, as if every one fired on a
    purchase of MAX_AMOUNT and each line were rounded up (see evaluator.evaluate)."""
    base = sum(_capped(rule, _base_most(rule)) for rule in rules if rule.multiply is None)
    total = base
    for rule in rules:
        if rule.multiply is not None:
            total += _capped(rule, _ceil(base * (rule.multiply - 1)))
    return total + _ceil(base * tier_extra)


def _base_most(rule: Rule) -> int:
    if rule.points is not None:
        return rule.points
    if rule.points_per_unit is not None:
        return _ceil(MAX_AMOUNT * rule.points_per_unit)
    return 0  # a free reward


def _capped(rule: Rule, points: int) -> int:
    for most in (rule.cap.points if rule.cap else None, rule.budget):
        if most is not None:
            points = min(points, most)
    return points


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(ROUND_CEILING))


def _shape(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return "value"
