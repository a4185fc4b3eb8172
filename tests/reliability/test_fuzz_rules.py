"""Fuzzing rules files: random text, random YAML, random valid rule sets and hostile
ones (deep nesting, anchors and aliases, billion laughs, huge numbers, dates out of
range, huge files).

`loyalty rules check FILE` either exits 0 with one JSON document, or exits 78 (66 for
a file it cannot read) with `error:` lines only on stderr and nothing on stdout:
never a traceback, a hang (every call has a time limit) or runaway memory (real
processes run under a 1 GiB address-space limit). Whatever it accepts must then
work: enrolling, earning, redeeming, the nightly run and every report under those
rules give a documented outcome too, never a traceback.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from .conftest import (
    REPORTS,
    Outcome,
    assert_contract,
    fuzz_settings,
    inprocess_env,
    loyalty_env,
    record,
    run_inprocess,
    run_process,
    time_limit,
)

TIMEZONES = [
    "Europe/London",
    "UTC",
    "America/New_York",
    "Asia/Kathmandu",
    "Pacific/Kiritimati",
    "Australia/Lord_Howe",
    "America/St_Johns",
]
RESERVED_EVENTS = ("enroll", "signup", "referral", "birthday")
HANG = 10  # seconds: 60x what any command takes on a sane rules file
_counter = itertools.count()


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(doc: object) -> str:
    return yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, allow_unicode=True)


def write(folder: Path, text: str | bytes) -> Path:
    path = folder / f"rules-{next(_counter)}.yaml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(text)
    return path


def check(path: Path, *, real: bool = False, home: Path | None = None) -> Outcome:
    args = ["rules", "check", str(path), "--json"]
    if real:
        assert home is not None
        return run_process(args, loyalty_env(home, None, None), timeout=HANG)
    return run_inprocess(args, inprocess_env(None, None), timeout=HANG)


def use(rules: Path, folder: Path, *, real: bool = False, budget: float = 60) -> list[Outcome]:
    """Rules that `rules check` accepted, put to work on a fresh ledger: every outcome
    must be documented, and the commands that cannot be refused must succeed, all
    within `budget` seconds (a rules file must not make every command slow)."""
    started = time.monotonic()
    db = folder / f"ledger-{next(_counter)}.db"
    from loyalty_cli.rules import load_rules

    with time_limit(HANG):
        ruleset = load_rules(rules)
    events = sorted({r.on for r in ruleset.rules} - {"purchase", *RESERVED_EVENTS})
    rewards = sorted(ruleset.rewards)
    steps: list[tuple[list[str], set[int]]] = [
        (["enroll", "C1", "--birthday", "1990-06-15", "--json"], {0}),
        (["enroll", "C2", "--referred-by", "C1", "--json"], {0}),
        (
            ["earn", "C1", "--amount", "42.50", "--category", "shoes", "--quantity", "2", "--json"],
            {0},
        ),
        (["earn", "C2", "--amount", "0.01", "--json"], {0}),
        (["adjust", "C1", "500", "--reason", "fuzz", "--json"], {0}),
    ]
    steps += [(["earn", "C1", "--event", e, "--json"], {0}) for e in events[:2]]
    steps += [(["redeem", "C1", "--reward", r, "--json"], {0, 1}) for r in rewards[:2]]
    steps += [
        (["redeem", "C1", "--points", "1", "--json"], {0, 1}),
        (["nightly", "--json"], {0}),
        (["balance", "C1", "--json"], {0}),
        (["history", "C1", "--json"], {0}),
        (["tier", "C1", "--json"], {0} if ruleset.tiers else {2}),
        (["rewards", "C1", "--json"], {0}),
        (["verify", "--json"], {0}),
    ]
    steps += [
        (["report", name, "--json"], {0} if (name != "tiers" or ruleset.tiers) else {2})
        for name in REPORTS
    ]
    if real:  # a shorter walk: each real process costs ~0.15 s
        wanted = ("enroll", "earn", "adjust", "redeem", "nightly", "balance", "verify")
        steps = [s for s in steps if s[0][0] in wanted and s[0][1] != "C2"]
        steps += [(["report", "summary", "--json"], {0}), (["report", "liability", "--json"], {0})]
    outcomes = []
    for args, expected in steps:
        if real:
            outcome = run_process(args, loyalty_env(folder, db, rules), timeout=HANG)
        else:
            outcome = run_inprocess(args, inprocess_env(db, rules), timeout=HANG)
        assert_contract(outcome, expected)
        outcomes.append(outcome)
        spent = time.monotonic() - started
        assert spent < budget, (
            f"hang: under these rules {len(outcomes)} commands took {spent:.0f} s "
            f"(the last, {args[:2]}, {outcome.seconds:.1f} s); a rules file must be bounded"
        )
    return outcomes


def check_any(path: Path, folder: Path) -> Outcome:
    """The contract for any rules file: accepted (then usable), or refused cleanly."""
    outcome = check(path)
    assert_contract(outcome, {0, 66, 78})
    if outcome.code == 0:
        use(path, folder)
    return outcome


# --- random text and random YAML -------------------------------------------------------

WORDS = st.sampled_from(
    [
        "program",
        "earn",
        "rewards",
        "points",
        "tiers",
        "name",
        "timezone",
        "currency",
        "rounding",
        "id",
        "on",
        "points_per_unit",
        "multiply",
        "reward",
        "when",
        "window",
        "cap",
        "budget",
        "priority",
        "stop",
        "levels",
        "threshold",
        "purchase",
        "review",
        "Europe/London",
        "floor",
        "month",
        "from",
        "to",
        "cost",
        "count",
        "per",
        "all",
        "any",
        "not",
        "category",
        "amount",
        "in",
        "between",
        "pending_days",
        "expire_after_months",
        "weekdays",
        "min_amount",
        "metric",
        "spend",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.floats(),
    st.text(max_size=12),
    WORDS,
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
)
DOCS = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(WORDS | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=30,
)


@fuzz_settings(60)
@given(data=st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_random_text_as_a_rules_file_is_accepted_or_refused_cleanly(
    tmp_path: Path, data: str | bytes
) -> None:
    record("fuzz: rules files", cases=1)
    check_any(write(tmp_path, data), tmp_path)


@fuzz_settings(60)
@given(doc=st.dictionaries(WORDS, DOCS, max_size=6))
def test_random_yaml_documents_are_accepted_or_refused_cleanly(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    record("fuzz: rules files", cases=1)
    check_any(write(tmp_path, dump(doc)), tmp_path)


# --- random valid rule sets --------------------------------------------------------------

NAMES = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20
).filter(lambda s: s.strip() == s and s.strip())
DAYS = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))
PERIODS = st.sampled_from(["day", "week", "month", "year", "lifetime"])
MONEY = st.integers(min_value=1, max_value=100_000).map(lambda c: round(c / 100, 2))


@st.composite
def valid_rule_sets(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "program": {
            "name": draw(NAMES),
            "currency": draw(st.sampled_from(["USD", "EUR", "GBP", "JPY"])),
            "timezone": draw(st.sampled_from(TIMEZONES)),
            "rounding": draw(st.sampled_from(["floor", "nearest", "ceil"])),
        }
    }
    if draw(st.booleans()):
        doc["program"]["point_value"] = draw(st.sampled_from([0.01, 0.005, 1, 0.1]))
    if draw(st.booleans()):
        policy: dict[str, Any] = {"pending_days": draw(st.integers(0, 60))}
        if draw(st.booleans()):
            policy["expire_after_months"] = draw(st.integers(1, 36))
            policy["expire_at"] = draw(st.sampled_from(["end_of_month", "same_day"]))
        policy["refund_shortfall"] = draw(st.sampled_from(["within_balance", "allow_negative"]))
        doc["points"] = policy
    tier_ids: list[str] = []
    if draw(st.booleans()):
        count = draw(st.integers(1, 4))
        thresholds = sorted(
            draw(st.sets(st.integers(1, 5000), min_size=count - 1, max_size=count - 1))
        )
        tier_ids = [f"t{n}" for n in range(count)]
        doc["tiers"] = {
            "metric": draw(st.sampled_from(["spend", "points"])),
            "window": draw(st.sampled_from(["calendar_year", "rolling_12_months", "lifetime"])),
            "downgrade": draw(st.sampled_from(["keep_next_window", "reevaluate"])),
            "levels": [
                {
                    "id": tid,
                    "name": draw(NAMES),
                    "threshold": ([0, *thresholds])[n],
                    "multiplier": draw(st.sampled_from([1, 1.25, 1.5, 2, 3])),
                }
                for n, tid in enumerate(tier_ids)
            ],
        }
    rewards = []
    for n in range(draw(st.integers(0, 3))):
        reward: dict[str, Any] = {
            "id": f"gift-{n}",
            "name": draw(NAMES),
            "cost": draw(st.integers(1, 10_000)),
        }
        if draw(st.booleans()):
            reward["limit"] = {"count": draw(st.integers(1, 5)), "per": draw(PERIODS)}
        if tier_ids and draw(st.booleans()):
            reward["tiers"] = draw(
                st.lists(st.sampled_from(tier_ids), min_size=1, max_size=2, unique=True)
            )
        if draw(st.booleans()):
            start = draw(DAYS)
            reward["window"] = {
                "from": start,
                "to": draw(st.dates(min_value=start, max_value=date(2031, 1, 1))),
            }
        rewards.append(reward)
    if rewards:
        doc["rewards"] = rewards
    rules = []
    for n in range(draw(st.integers(0, 6))):
        on = draw(
            st.sampled_from(
                [
                    "purchase",
                    "purchase",
                    "review",
                    "visit",
                    "enroll",
                    "signup",
                    "referral",
                    "birthday",
                ]
            )
        )
        rule: dict[str, Any] = {"id": f"rule-{n}", "on": on}
        awards = (
            ["points", "multiply"]
            + (["points_per_unit"] if on == "purchase" else [])
            + (["reward"] if rewards else [])
        )
        award = draw(st.sampled_from(awards))
        if award == "points":
            rule["points"] = draw(st.integers(0, 10_000))
        elif award == "multiply":
            rule["multiply"] = draw(st.sampled_from([1, 1.5, 2, 3, 5]))
        elif award == "points_per_unit":
            rule["points_per_unit"] = draw(st.sampled_from([0.01, 0.5, 1, 2, 10, 100]))
        else:
            rule["reward"] = draw(st.sampled_from([r["id"] for r in rewards]))
        if draw(st.booleans()):
            if on == "purchase":
                rule["when"] = draw(
                    st.sampled_from(
                        [
                            {"category": {"in": ["shoes", "bags"]}},
                            {"amount": {"gte": 10}},
                            {"any": [{"sku": "x1"}, {"quantity": {"between": [2, 5]}}]},
                            {"not": {"category": "books"}},
                        ]
                    )
                )
            else:
                rule["when"] = draw(
                    st.sampled_from(
                        [{"purchases": {"gte": 1}}, {"referred": True}, {"balance": {"lt": 1000}}]
                    )
                )
            if tier_ids and draw(st.booleans()):
                rule["when"] = {"all": [rule["when"], {"tier": {"in": tier_ids[:1]}}]}
        if draw(st.booleans()):
            start = draw(DAYS)
            rule["window"] = {
                "from": start,
                "to": draw(st.dates(min_value=start, max_value=date(2031, 1, 1))),
            }
        if draw(st.booleans()):
            rule["weekdays"] = draw(
                st.lists(
                    st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
                    min_size=1,
                    max_size=7,
                    unique=True,
                )
            )
        if on == "purchase" and draw(st.booleans()):
            rule["min_amount"] = draw(MONEY)
        if draw(st.booleans()):
            rule["priority"] = draw(st.integers(-10, 10))
        if draw(st.booleans()):
            rule["stop"] = draw(st.booleans())
        if draw(st.booleans()):
            cap: dict[str, Any] = {"per": draw(PERIODS)}
            cap[draw(st.sampled_from(["count", "points"]))] = draw(st.integers(1, 1000))
            rule["cap"] = cap
        if draw(st.booleans()):
            rule["budget"] = draw(st.integers(1, 1_000_000))
        rules.append(rule)
    if rules or draw(st.booleans()):
        doc["earn"] = rules
    return doc


@fuzz_settings(20)
@given(doc=valid_rule_sets())
def test_valid_rule_sets_are_accepted_and_every_command_works_under_them(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    record("fuzz: rules files", cases=1)
    path = write(tmp_path, dump(doc))
    outcome = check(path)
    assert_contract(outcome, {0})
    assert len(json.loads(outcome.stdout)["rules"]) == len(doc.get("earn", []))
    use(path, tmp_path)


# --- hostile rules files -----------------------------------------------------------------

BASE = """\
program: {name: Shop, timezone: Europe/London}
rewards:
  - {id: coffee, name: Coffee, cost: 100}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
"""


def billion_laughs(levels: int) -> str:
    lines = ["program: {name: Shop, timezone: Europe/London}", "a0: &a0 [lol]"]
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    lines.append(f"earn: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def nested_condition(depth: int) -> str:
    condition = "{category: shoes}"
    for _ in range(depth):
        condition = "{not: " + condition + "}"
    return BASE + f"  - {{id: deep, on: purchase, points: 1, when: {condition}}}\n"


HOSTILE: dict[str, str | bytes] = {
    "alias to itself": "program: {name: Shop, timezone: Europe/London}\nearn: &a [*a]\n",
    "billion laughs (9 levels)": billion_laughs(9),
    "billion laughs (6 levels, 531441 leaves)": billion_laughs(6),
    "alias of a scalar": "program: {name: &n Shop, timezone: Europe/London}\nrewards:\n  - {id: c, name: *n, cost: 1}\n",
    "merge key": "base: &b {on: purchase, points: 1}\nprogram: {name: Shop, timezone: Europe/London}\nearn:\n  - {<<: *b, id: x}\n",
    "list nested 100,000 deep": BASE
    + "  - {id: deep, on: purchase, points: 1, when: "
    + "[" * 100_000
    + "]" * 100_000
    + "}\n",
    "mapping nested 5,000 deep": BASE
    + "  - {id: deep, on: purchase, points: 1, when: "
    + "{a: " * 5000
    + "1"
    + "}" * 5000
    + "}\n",
    "condition nested 2,000 deep (not: not: ...)": nested_condition(2000),
    "points 10^22": BASE + "  - {id: huge, on: purchase, points: 10000000000000000000000}\n",
    "points 2^63": BASE + "  - {id: huge, on: purchase, points: 9223372036854775808}\n",
    "points_per_unit 1e100": BASE + "  - {id: huge, on: purchase, points_per_unit: 1e100}\n",
    "multiply 1e100": BASE + "  - {id: huge, on: purchase, multiply: 1e100}\n",
    "multiply 1.0e+100": BASE + "  - {id: huge, on: purchase, multiply: 1.0e+100}\n",
    "points_per_unit 1.0e+100": BASE + "  - {id: huge, on: purchase, points_per_unit: 1.0e+100}\n",
    "points_per_unit 10^100 (digits)": BASE
    + "  - {id: huge, on: purchase, points_per_unit: 1"
    + "0" * 100
    + "}\n",
    "multiply 10^30": BASE
    + "  - {id: huge, on: purchase, multiply: 1000000000000000000000000000000}\n",
    "cost 10^30": BASE.replace("cost: 100", "cost: 1000000000000000000000000000000"),
    "budget and cap 10^30": BASE
    + "  - {id: capped, on: purchase, points: 5, budget: 1000000000000000000000000000000, cap: {points: 1000000000000000000000000000000, per: day}}\n",
    "priority 10^30": BASE
    + "  - {id: first, on: purchase, points: 5, priority: 1000000000000000000000000000000}\n",
    "pending_days 10^30": BASE + "points: {pending_days: 1000000000000000000000000000000}\n",
    "expire_after_months 100000": BASE + "points: {expire_after_months: 100000}\n",
    "tier threshold and multiplier 1e100": BASE
    + "tiers:\n  metric: spend\n  window: lifetime\n  levels:\n    - {id: a, name: A, threshold: 0}\n    - {id: b, name: B, threshold: 1e100, multiplier: 1e100}\n",
    "point_value 1e100": BASE.replace(
        "timezone: Europe/London", "timezone: Europe/London, point_value: 1e100"
    ),
    "window from year 1 to 9999": BASE
    + "  - {id: always, on: purchase, points: 1, window: {from: 0001-01-01, to: 9999-12-31}}\n",
    "reward window from year 999": BASE.replace(
        "cost: 100}", "cost: 100, window: {from: 0999-01-01, to: 0999-12-31}}"
    ),
    "2 MiB of comments": BASE + ("# " + "x" * 1000 + "\n") * 2100,
    "100,000 rules": BASE
    + "".join(f"  - {{id: r{n}, on: purchase, points: 1}}\n" for n in range(100_000)),
    "NUL bytes": BASE.replace("Shop", "Sh\x00op"),
    "UTF-16 with a BOM": BASE.encode("utf-16"),
    "python tag": "!!python/object/apply:os.system [echo pwned]\n",
    "empty": "",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_rules_files_are_refused_or_work_without_a_traceback_hang_or_runaway_memory(
    tmp_path: Path, name: str
) -> None:
    path = write(tmp_path, HOSTILE[name])
    outcome = check(path, real=True, home=tmp_path)
    record("fuzz: rules files (hostile, real processes)", cases=1, accepted=int(outcome.code == 0))
    assert_contract(outcome, {0, 66, 78})
    if outcome.code == 0:
        use(path, tmp_path, real=True, budget=HANG)


@pytest.mark.parametrize(
    "args",
    [
        ["rules", "check", "/dev/zero"],
        ["earn", "C1", "--amount", "5", "--rules", "/dev/zero"],
        ["rules", "check", "/dev/null"],
        ["rules", "check", "."],
    ],
    ids=["check /dev/zero", "earn --rules /dev/zero", "check /dev/null", "check a folder"],
)
def test_a_rules_path_that_is_not_a_rules_file_is_refused_in_bounded_time_and_memory(
    tmp_path: Path, args: list[str]
) -> None:
    record("fuzz: rules files (hostile, real processes)", cases=1)
    outcome = run_process(args, loyalty_env(tmp_path, tmp_path / "l.db", None), timeout=HANG)
    assert_contract(outcome, {66, 78} if args[0] == "rules" else {1, 66, 78})
    assert outcome.code != 0, outcome.brief()


# --- hostile, generated (in-process, small enough not to hang a correct reader) ---------

NUMBERS = st.sampled_from(
    [
        "10000000000000000000000",
        "1e100",
        "1.0e+100",
        "-1.0e+100",
        "1.0e+308",
        "9223372036854775807",
        "18446744073709551616",
        "1e308",
        ".inf",
        ".nan",
        "0x7fffffffffffffff",
        "1_000_000_000_000",
        "-0",
        "0.000000001",
    ]
)
FAR_DATES = st.sampled_from(["0001-01-01", "0999-12-31", "1899-12-31", "3000-01-01", "9999-12-31"])


@st.composite
def hostile_rule_sets(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["number", "date", "nesting", "aliases"]))
    if kind == "number":
        where = draw(
            st.sampled_from(
                [
                    "  - {{id: x, on: purchase, points: {n}}}\n",
                    "  - {{id: x, on: purchase, points_per_unit: {n}}}\n",
                    "  - {{id: x, on: purchase, multiply: {n}}}\n",
                    "  - {{id: x, on: purchase, points: 1, min_amount: {n}}}\n",
                    "  - {{id: x, on: purchase, points: 1, cap: {{count: {n}, per: day}}}}\n",
                    "  - {{id: x, on: purchase, points: 1, when: {{amount: {{gte: {n}}}}}}}\n",
                    "  - {{id: x, on: review, points: 1, when: {{balance: {{lt: {n}}}}}}}\n",
                    "points: {{pending_days: {n}}}\n",
                    "points: {{expire_after_months: {n}}}\n",
                ]
            )
        )
        return BASE + where.format(n=draw(NUMBERS))
    if kind == "date":
        start, end = sorted([draw(FAR_DATES), draw(FAR_DATES)])
        return (
            BASE + f"  - {{id: x, on: purchase, points: 1, window: {{from: {start}, to: {end}}}}}\n"
        )
    if kind == "nesting":
        depth = draw(st.integers(10, 3000))
        return (
            nested_condition(depth)
            if draw(st.booleans())
            else BASE + "x: " + "[" * depth + "]" * depth + "\n"
        )
    return _small_aliases(draw(st.integers(1, 3)), draw(st.integers(1, 4)))


def _small_aliases(fan: int, levels: int) -> str:
    lines = [
        "program: {name: Shop, timezone: Europe/London}",
        "a0: &a0 {id: base, on: purchase, points: 1}",
    ]
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * fan) + "]")
    lines.append("earn: [*a0]")
    return "\n".join(lines) + "\n"


@fuzz_settings(30)
@given(text=hostile_rule_sets())
def test_generated_hostile_rules_files_are_refused_or_work_without_a_traceback(
    tmp_path: Path, text: str
) -> None:
    record("fuzz: rules files", cases=1)
    check_any(write(tmp_path, text), tmp_path)
