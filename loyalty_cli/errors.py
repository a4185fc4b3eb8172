"""The LoyaltyError family: every failure a user can cause, each with its exit code.

Core code raises these; the CLI has one boundary that prints `error: ...` to
stderr and exits with `exit_code`. Anything else that escapes is a bug.
The codes follow sysexits(3) where one fits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

OK = 0
REFUSED = 1
USAGE = 2
DATA_REJECTED = 65
INPUT_MISSING = 66
BUSY = 75
RULES_INVALID = 78

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 refused (unknown customer, insufficient points, key conflict, "
    "failed verify); 2 usage or bad argument; 65 input data rejected; "
    "66 input file or database missing, unreadable or not a ledger; "
    "75 database busy or mail server unreachable, retry later; 78 rules file invalid."
)


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for the closest known word, or "": the one hint every
    refusal of a misspelt name (a rule key, an event, a reward, a report) gives."""
    import difflib

    match = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


class Location(NamedTuple):
    """A place in an input file, 1-based, printed as `file:line:col`."""

    file: str
    line: int
    col: int | None = None

    def __str__(self) -> str:
        if self.col is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.col}"


class Problem(NamedTuple):
    """One thing wrong with an input file, located so the owner can fix it."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


Fact = str | int | None


class LoyaltyError(Exception):
    """Base of every error meant for a user. Subclasses fix the exit code and the
    default `code`, a stable snake_case word scripts can branch on.

    `field` names the option or argument at fault (`--amount`), `facts` carries
    what a script needs to act on the refusal (a redemption's `balance` and
    `shortfall`; an input's `file` and `line`). All of it reaches JSON output."""

    exit_code = REFUSED
    code = "refused"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        **facts: Fact,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        self.facts: dict[str, Fact] = facts

    def lines(self) -> list[str]:
        """What the CLI prints, one `error:` line each."""
        return [self.message]

    def to_json(self) -> dict[str, object]:
        """`{"error": {...}}`: the document a script that asked for JSON reads."""
        doc: dict[str, object] = {
            "code": self.code,
            "exit": self.exit_code,
            "message": self.message,
        }
        if self.field is not None:
            doc["field"] = self.field
        doc.update(self.facts)
        return {"error": doc}


class Refused(LoyaltyError):
    """A valid request the ledger will not carry out: unknown customer,
    insufficient points, idempotency key conflict, duplicate enrollment."""

    exit_code = REFUSED


def unknown_customer(customer_id: str, what: str = "customer") -> Refused:
    """The refusal of an id the ledger does not know (a customer, or a referrer)."""
    return Refused(
        f"unknown {what} {customer_id!r} (enroll them first: loyalty enroll ID)",
        code="unknown_customer",
        field="--referred-by" if what == "referrer" else "CUSTOMER_ID",
        customer_id=customer_id,
    )


class BadArgument(LoyaltyError):
    """A command-line value that cannot be used (an amount of 'abc', a bad --at)."""

    exit_code = USAGE
    code = "usage"


class DataRejected(LoyaltyError):
    exit_code = DATA_REJECTED
    code = "data_rejected"


class InputMissing(LoyaltyError):
    """A file we need is missing or unreadable, or the database cannot be opened."""

    exit_code = INPUT_MISSING
    code = "input_missing"


class Busy(LoyaltyError):
    exit_code = BUSY
    code = "busy"


class Contended(Busy):
    """A write met another at the same moment and was rolled back whole (on
    PostgreSQL: a deadlock, a serialization failure, or the same new key or
    customer written by two tills at once). Running it again decides afresh on
    what the other committed; the CLI does, a few times, before exiting 75."""


class RulesInvalid(LoyaltyError):
    """Every problem found in a rules file, collected before failing."""

    exit_code = RULES_INVALID
    code = "rules_invalid"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        summary = f"{count} problem{'s' if count != 1 else ''} in the rules file"
        first = problems[0].location
        super().__init__(
            f"{problems[0]}" if count == 1 else summary, file=first.file, line=first.line
        )

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]

    def to_json(self) -> dict[str, object]:
        doc = super().to_json()
        error = doc["error"]
        assert isinstance(error, dict)
        error["problems"] = [
            {
                "file": p.location.file,
                "line": p.location.line,
                "col": p.location.col,
                "message": p.message,
            }
            for p in self.problems
        ]
        return doc


class TamperDetected(LoyaltyError):
    """`verify` found the ledger altered or inconsistent. The one error line names
    the most telling problem (the first bad entry comes first); `--json` lists all."""

    exit_code = REFUSED
    code = "tampered"

    def __init__(self, problems: list[str]) -> None:
        more = len(problems) - 1
        suffix = f" (+{more} more problem{'s' if more > 1 else ''}: loyalty verify --json)"
        super().__init__(problems[0] + (suffix if more else ""))
