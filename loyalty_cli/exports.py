"""Files and streams loyalty writes for people and spreadsheets: CSV that a
spreadsheet cannot run as formulas, and output files that never replace the
ledger or an input.

An output file is written to a temporary file beside it and renamed into place
when complete, so a reader never sees half a file and a crash leaves the old
one. A path that is the ledger (or its -wal and -shm files) or one of the
command's inputs is refused before anything is read or written: the ledger is
append-only, and an import's rejects file given the ledger's own name once
destroyed a ledger.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

from .errors import BadArgument, InputMissing

_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?", re.ASCII)
# An international phone number (+44 20 7946 0958): digits and separators cannot
# call anything, and a mail tool would not read it back with an apostrophe.
_PHONE = re.compile(r"\+[0-9][0-9 ().-]*", re.ASCII)


def neutralise(cell: object) -> object:
    """A text cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first)
    gets a leading apostrophe. Numbers are left alone: -40 is data, not a formula;
    so are phone numbers."""
    if (
        isinstance(cell, str)
        and cell.startswith(_FORMULA)
        and not _NUMBER.fullmatch(cell)
        and not _PHONE.fullmatch(cell)
    ):
        return "'" + cell
    return cell


class CsvWriter:
    """RFC 4180: comma-separated, CRLF line ends, fields quoted when they need it,
    formulas neutralised, None as an empty cell."""

    def __init__(self, out: IO[str]) -> None:
        self._writer = csv.writer(out, lineterminator="\r\n")

    def row(self, cells: Iterable[object]) -> None:
        self._writer.writerow(["" if cell is None else neutralise(cell) for cell in cells])


def write_csv(header: Sequence[str], rows: Iterable[Sequence[object]], out: IO[str]) -> None:
    writer = CsvWriter(out)
    writer.row(header)
    for row in rows:
        writer.row(row)


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_output(path: Path, what: str, protected: Sequence[Path]) -> None:
    """Refuse an output path that is (or links to) the ledger or an input."""
    guarded: list[Path] = []
    for kept in protected:
        guarded += [kept, Path(f"{kept}-wal"), Path(f"{kept}-shm"), Path(f"{kept}-journal")]
    for kept in guarded:
        if _same(path, kept):
            raise BadArgument(f"{what} {path} is {kept}, which this command reads; name a new file")
    if path.is_dir():
        raise BadArgument(f"{what} {path} is a directory; name a file")


class OutputFile:
    """A text file written whole or not at all: a temporary file in the target's
    folder, renamed over the target by `commit()`; `discard()` removes it."""

    def __init__(self, path: Path, what: str, protected: Sequence[Path]) -> None:
        check_output(path, what, protected)
        self.path = path
        folder = path.parent
        try:
            handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        except OSError as exc:
            raise InputMissing(f"{what} {path}: cannot write in {folder}: {exc.strerror}") from None
        self.temp = Path(temp)
        self.file: IO[str] = os.fdopen(handle, "w", newline="", encoding="utf-8")

    def commit(self) -> None:
        try:
            self.file.close()
            os.replace(self.temp, self.path)
        except OSError as exc:
            self.discard()
            raise InputMissing(f"cannot write {self.path}: {exc.strerror}") from None

    def discard(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.temp.unlink(missing_ok=True)
