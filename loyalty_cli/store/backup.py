"""`loyalty backup DEST`: a consistent copy of a live ledger, verified before it
takes DEST's name.

- The copy is read inside one read transaction on the ledger (see
  Connection.snapshot), so every page comes from the same moment even though it
  is copied in steps: SQLite's backup uses an open read transaction instead of
  starting its own per step, and so never restarts when a till writes. In WAL
  mode a reader does not hold writers up: tills keep earning while it runs.
- It is copied `pages` at a time with a short pause between steps, so a large
  ledger's copy shares the disk with the tills instead of monopolising it.
- The copy is written to a hidden file beside DEST, checked with every check of
  `loyalty verify` (and the heads earlier verifies remembered), flushed to disk,
  and only then renamed over DEST: DEST is never a half-written or unverified
  file, and a failed copy never replaces yesterday's good backup.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadArgument, Busy, InputMissing
from . import verify as checks
from .connection import Connection

# 1,024 pages (4 MiB at SQLite's default page size) per step, then a pause.
PAGES_PER_STEP = 1024
PAUSE = 0.005


@dataclass
class BackupResult:
    ledger: Path
    backup: Path
    size: int
    pages: int
    report: checks.VerifyReport

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "ok": self.report.ok,
            "ledger": str(self.ledger),
            "backup": str(self.backup),
            "bytes": self.size,
            "pages": self.pages,
        }
        verified = self.report.to_json()
        del verified["ok"]
        doc.update(verified)
        return doc


def target(ledger: Path, dest: Path, force: bool) -> Path:
    """Where the copy goes: DEST with its links followed, refused if it is the
    ledger (or one of its companion files) or, without `force`, any existing file."""
    real = Path(os.path.realpath(dest))
    kept = Path(os.path.realpath(ledger))
    companions = [kept] + [Path(f"{kept}{s}") for s in ("-wal", "-shm", "-journal", ".heads")]
    for guarded in companions:
        same = real == guarded
        if not same and real.exists() and guarded.exists():
            try:
                same = os.path.samefile(real, guarded)  # a hard link
            except OSError:
                same = False
        if same:
            raise BadArgument(
                f"backup destination {dest} is {guarded}, part of the ledger itself; "
                "name a file elsewhere",
                field="DEST",
            )
    if real.is_dir():
        raise BadArgument(f"backup destination {dest} is a directory; name a file", field="DEST")
    if (real.exists() or dest.is_symlink()) and not force:
        raise BadArgument(
            f"backup destination {dest} already exists; pass --force to replace it "
            "(it is replaced only by a copy that verifies)",
            field="DEST",
        )
    if not real.parent.is_dir():
        raise BadArgument(
            f"backup destination folder {real.parent} does not exist; create it first",
            field="DEST",
        )
    if not os.access(real.parent, os.W_OK):
        raise BadArgument(
            f"cannot write the backup to {real.parent}: permission denied", field="DEST"
        )
    return real


def backup(
    connection: Connection,
    dest: Path,
    *,
    force: bool = False,
    pages: int = PAGES_PER_STEP,
    pause: float = PAUSE,
) -> BackupResult:
    """Copy the open ledger to `dest` (see the module's notes); the result says
    whether the copy verified. A copy that does not verify is discarded: the
    caller reports its problems, and DEST is left as it was."""
    real = target(connection.path, dest, force)
    partial = real.with_name(f".{real.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    copied = 0
    try:
        copy = sqlite3.connect(partial, isolation_level=None)
        try:

            def step(status: int, remaining: int, total: int) -> None:
                nonlocal copied
                copied = total
                if remaining:
                    time.sleep(pause)

            with connection.snapshot():
                try:
                    connection.conn.backup(copy, pages=pages, progress=step)
                except sqlite3.Error as exc:
                    error = connection.classify(exc)
                    if error is not None and error.exit_code == Busy.exit_code:
                        raise error from None
                    # Anything else is the copy's (a full disk where DEST is).
                    raise InputMissing(
                        f"cannot write the backup to {real}: {exc}; nothing was replaced",
                        field="DEST",
                    ) from None
            # One self-contained file: a restore is a copy of it, nothing beside it.
            copy.execute("PRAGMA journal_mode = DELETE")
            with connection.translate():
                report = checks.verify(copy)
                checks.remembered(copy, connection.path, report)
        finally:
            copy.close()
        if report.ok:
            with partial.open("rb") as done:
                os.fsync(done.fileno())
            size = partial.stat().st_size
            os.replace(partial, real)
            _sync_folder(real.parent)
        else:
            size = partial.stat().st_size
    except OSError as exc:
        raise InputMissing(
            f"cannot write the backup to {real}: {exc.strerror}; nothing was replaced",
            field="DEST",
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(connection.path, real, size, copied, report)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (a crash right after must not lose it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
