"""CSV till exports -> purchases, events and refunds, row by row, with file:line.

Each file is read twice, in blocks: once to hash it (its SHA-256 keys the rows
that have no txn_id) and check it decodes, then row by row, so memory stays flat.
Reading is forgiving of what tills write (a byte-order mark, semicolons or
tabs, varying column names, quoted newlines, currency signs) and
strict about what would change points (an amount of '1,234.50' is refused
unless the decimal or thousands convention is given). Every row then goes
through the same use cases as `loyalty earn` and `loyalty refund`, so an
imported purchase and a typed one give the same points.
"""

from __future__ import annotations

import codecs
import csv
import functools
import gc
import hashlib
import itertools
import json
import os
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import IO, NamedTuple, ParamSpec, TypeVar

from .bloom import Bloom
from .cancellations import NoSaleYet, Waiting
from .clock import stamp
from .engine import awards, refunds
from .engine.book import Book
from .engine.records import Recorded
from .engine.requests import EarnRequest, EnrollRequest, RefundRequest
from .errors import BadArgument, DataRejected, InputMissing, LoyaltyError, Refused
from .evaluator import shop_zone
from .exports import CsvWriter, OutputFile
from .models import Line, Ruleset
from .operations import older_rules
from .receipts import check_receipt, total
from .store import Store, queries
from .values import (
    CUSTOMER_ID_MAX,
    MAX_AMOUNT,
    MAX_QUANTITY,
    check_customer_id,
    check_text,
    latest_write,
    parse_amount,
    parse_at,
)

FIELDS = (
    "txn_id",
    "customer_id",
    "amount",
    "date",
    "category",
    "event",
    "sku",
    "quantity",
    "refund_of",
    "unit_price",
    "discount",
    "store",
)
# Column names tills use for each field, compared without case, spaces or underscores.
ALIASES: dict[str, tuple[str, ...]] = {
    "txn_id": (
        "txn_id",
        "txn",
        "transaction",
        "transaction_id",
        "receipt",
        "receipt_no",
        "receipt_number",
        "order",
        "order_id",
        "invoice",
        "invoice_no",
        "ticket",
    ),
    "customer_id": (
        "customer_id",
        "customer",
        "member",
        "member_id",
        "card",
        "card_no",
        "card_number",
        "loyalty_id",
        "client",
        "client_id",
    ),
    "amount": (
        "amount",
        "total",
        "value",
        "sum",
        "gross",
        "net",
        "grand_total",
        "price",
        "sale_amount",
    ),
    "date": (
        "date",
        "datetime",
        "timestamp",
        "time",
        "created_at",
        "sold_at",
        "occurred_at",
        "sale_date",
        "date_time",
    ),
    "category": ("category", "department", "dept", "product_type", "type", "group"),
    "event": ("event", "action"),
    "sku": ("sku", "product", "product_id", "item", "item_code", "article"),
    "quantity": ("quantity", "qty", "units", "count"),
    "refund_of": ("refund_of", "return_of", "refund_for", "original_txn", "original_receipt"),
    "unit_price": ("unit_price", "price_each", "each", "item_price"),
    "discount": ("discount", "line_discount", "discount_amount"),
    "store": ("store", "store_id", "branch", "location", "till", "till_id", "register"),
}
DELIMITERS = (",", ";", "\t", "|")
_CURRENCY_MARKS = re.compile(r"^[\s$€£¥]*|[\s$€£¥]*$")


def _squash(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


@dataclass(frozen=True)
class Options:
    """How to read the files: everything a till export may need said about it."""

    mapping: Mapping[str, str] = field(default_factory=dict)  # field -> column, from --map
    encoding: str = "utf-8-sig"
    delimiter: str | None = None  # None: sniffed
    decimal_comma: bool = False
    thousands: str | None = None
    date_format: str | None = None
    cancel_prefix: str | None = None  # a receipt number starting with it is a cancellation
    reject_guests: bool = False  # rows with no customer: rejected, not skipped


class Row(NamedTuple):
    """One data row, located, with its values by field (None when absent or empty).
    `error` says why the row could not even be read as CSV (bad quoting, a field
    beyond FIELD_MAX); such a row is rejected like any other bad row."""

    line: int
    values: dict[str, str | None]
    raw: list[str]
    error: str | None = None


class Parsed(NamedTuple):
    """A row read into what the use cases take. `kind` is purchase, event, refund
    (of the receipt in refund_of), return (items back from a cancellation, or a
    negative quantity, with no link to their sale) or guest (no customer: skipped)."""

    kind: str
    customer_id: str
    at: datetime
    amount: Decimal | None
    txn: str
    category: str | None = None
    event: str | None = None
    sku: str | None = None
    quantity: int | None = None
    refund_of: str | None = None
    store: str | None = None


@dataclass(frozen=True)
class Source:
    """An input file, hashed (the key of rows without a txn_id) and checked to
    decode, without ever being held in memory whole."""

    name: str
    path: Path
    sha256: str
    lines: int


def read_source(
    name: str, encoding: str, stdin: IO[bytes] | None = None, spool: Path | None = None
) -> Source:
    """Hash a file in blocks and check that it decodes; standard input ('-') is
    copied to `spool` on the way, to be read again. A missing file is exit 66."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
    except LookupError:
        raise BadArgument(f"--encoding {encoding}: unknown encoding") from None
    if name == "-":
        assert stdin is not None and spool is not None
        with spool.open("wb") as copy:
            digest, lines = _scan("<stdin>", stdin, decoder, copy)
        return Source("<stdin>", spool, digest, lines)
    path = Path(name)
    try:
        with path.open("rb") as stream:
            digest, lines = _scan(name, stream, decoder, None)
    except FileNotFoundError:
        raise InputMissing(f"{name}: no such file", file=name) from None
    except IsADirectoryError:
        raise InputMissing(f"{name}: is a directory, not a CSV file", file=name) from None
    except OSError as exc:
        raise InputMissing(f"{name}: cannot be read: {exc.strerror}", file=name) from None
    return Source(name, path, digest, lines)


def _scan(
    name: str, stream: IO[bytes], decoder: codecs.IncrementalDecoder, copy: IO[bytes] | None
) -> tuple[str, int]:
    digest = hashlib.sha256()
    lines = 0
    blocks = iter(lambda: stream.read(1 << 20), b"")
    # The last, empty block asks the decoder to finish: a character cut off by
    # the end of the file is as unreadable as a wrong byte in the middle.
    for block in itertools.chain(blocks, [b""]):
        digest.update(block)
        try:
            decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            line = lines + block[: exc.start].count(b"\n") + 1
            raise DataRejected(
                f"{name}:{line}: not valid text in this encoding "
                "(pass --encoding, e.g. --encoding latin-1)",
                file=name,
                line=line,
            ) from None
        lines += block.count(b"\n")
        if copy is not None:
            copy.write(block)
    return digest.hexdigest(), lines


# A field longer than this is not something a till wrote (the csv module's own
# limit, 128 KiB, raised an error that stopped the whole import): it is
# rejected, and so is an unclosed quote, which would otherwise swallow every
# later row into one field.
FIELD_MAX = 65536


def rows(source: Source, options: Options) -> tuple[dict[str, int], list[str], Iterator[Row]]:
    """(column index by field, the header as written, the data rows, streamed).
    Raises DataRejected, naming file:1, when a required column is missing."""
    csv.field_size_limit(FIELD_MAX)
    handle = source.path.open(encoding=options.encoding, newline="")
    first_line = handle.readline(FIELD_MAX)
    handle.seek(0)
    delimiter = options.delimiter or max(DELIMITERS, key=first_line.count)
    reader = csv.reader(handle, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise DataRejected(
                f"{source.name}:1: the file is empty (expected a header row)",
                file=source.name,
                line=1,
            )
        columns = _columns(source.name, header, options.mapping)
    except csv.Error as exc:
        handle.close()
        raise DataRejected(
            f"{source.name}:1: the header row cannot be read: {exc}", file=source.name, line=1
        ) from None
    except DataRejected:
        handle.close()
        raise

    def data() -> Iterator[Row]:
        with handle:
            line = reader.line_num + 1
            while True:
                start = line
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    line = reader.line_num + 1
                    yield Row(start, {}, [], _unreadable(str(exc), start, line - 1))
                    continue
                line = reader.line_num + 1
                if not record or not any(cell.strip() for cell in record):
                    continue
                values = {
                    name: (record[index].strip() or None) if index < len(record) else None
                    for name, index in columns.items()
                }
                yield Row(start, values, record)

    return columns, header, data()


def _unreadable(error: str, first: int, last: int) -> str:
    span = f"lines {first}-{last} were read as one row" if last > first else "the row"
    if "field larger than field limit" in error:
        return (
            f"a field is longer than {FIELD_MAX:,} characters, or a quote is never closed "
            f"({span}); nothing of it was imported"
        )
    if "unexpected end of data" in error:
        return (
            f"a quote opened in this row is never closed ({span}, to the end of the "
            "file); close the quote and import again"
        )
    return f"the row is not valid CSV ({error}; {span}); fix its quoting"


def _columns(name: str, header: Sequence[str], mapping: Mapping[str, str]) -> dict[str, int]:
    squashed = [_squash(column) for column in header]
    # A column --map gives to one field is not another's by its name too
    # (`--map unit_price=Price` leaves no amount, though "price" names one).
    claimed = {_squash(column) for column in mapping.values()}
    found: dict[str, int] = {}
    for fld in FIELDS:
        wanted = [mapping[fld]] if fld in mapping else list(ALIASES[fld])
        for alias in wanted:
            key = _squash(alias)
            if fld not in mapping and key in claimed:
                continue
            if key in squashed:
                index = squashed.index(key)
                if squashed.count(key) > 1:
                    again = squashed.index(key, index + 1)
                    raise DataRejected(
                        f"{name}:1: columns {index + 1} and {again + 1} are both named "
                        f"'{header[index]}', so which one is the {fld} is not clear; "
                        "rename one",
                        file=name,
                        line=1,
                    )
                found[fld] = index
                break
        else:
            if fld in mapping:
                raise DataRejected(
                    f"{name}:1: --map {fld}={mapping[fld]}: no such column "
                    f"(columns are: {', '.join(header)})",
                    field="--map",
                    file=name,
                    line=1,
                )
    priced = "event" in found or "unit_price" in found
    required = ["customer_id", "date"] + ([] if priced else ["amount"])
    for fld in required:
        if fld not in found:
            raise DataRejected(
                f"{name}:1: missing column '{fld}' (columns are: {', '.join(header)}); "
                f"name it, or map it with --map {fld}=COLUMN",
                file=name,
                line=1,
            )
    return found


def parse_row(row: Row, source: Source, options: Options, shop_tz: tzinfo, now: datetime) -> Parsed:
    """A row into a purchase line, an event, a refund or a return; BadArgument
    says what is wrong."""
    if row.error is not None:
        raise BadArgument(row.error)
    v = row.values
    # Without a txn_id, the key is the file's content hash and the line: re-importing
    # the same file is safe; an edited file is a new file.
    txn = _field(v, "txn_id") or f"csv:{source.sha256[:16]}:{row.line}"
    customer = v.get("customer_id")
    if customer is None:
        if options.reject_guests:
            raise BadArgument("customer_id is empty")
        return Parsed("guest", "", _NEVER, None, txn)
    customer_id = check_customer_id(customer, what="customer_id")
    when = v.get("date")
    if when is None:
        raise BadArgument("date is empty")
    at = _date(when, options, shop_tz, latest_write(now))
    event, refund_of = _field(v, "event"), _field(v, "refund_of")
    if event is not None:
        return Parsed("event", customer_id, at, None, txn, event=event)
    quantity, negative = _quantity(v.get("quantity"))
    cancelled = options.cancel_prefix is not None and txn.startswith(options.cancel_prefix)
    returning = negative or cancelled or refund_of is not None
    amount = _line_amount(v, quantity, returning, options)
    category, sku = _field(v, "category"), _field(v, "sku")
    store = _field(v, "store")
    if refund_of is not None and quantity is None:
        return Parsed("refund", customer_id, at, amount, txn, refund_of=refund_of)
    if returning:
        if quantity is None or (sku is None and category is None):
            raise BadArgument(
                "a returned line needs a quantity and a sku or category, to know what it "
                "returns (or a refund_of column and an amount, to refund by amount)"
            )
        kind = "refund" if refund_of is not None else "return"
        return Parsed(kind, customer_id, at, amount, txn, category, None, sku, quantity, refund_of)
    return Parsed(
        "purchase",
        customer_id,
        at,
        amount,
        txn,
        category=category,
        sku=sku,
        quantity=quantity,
        store=store,
    )


_NEVER = datetime(1970, 1, 1, tzinfo=UTC)  # a guest row's time: it is never used


def _quantity(text: str | None) -> tuple[int | None, bool]:
    """(units, whether written negative: a line given back)."""
    if text is None:
        return None, False
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    if not _WHOLE.fullmatch(digits):
        raise BadArgument(f"quantity {text[:40]!r} is not a whole number")
    quantity = int(digits)
    if not 1 <= quantity <= MAX_QUANTITY:
        raise BadArgument(
            f"quantity {text[:40]} must be from 1 to {MAX_QUANTITY:,} (or -1 to "
            f"-{MAX_QUANTITY:,} for a return)"
        )
    return quantity, negative


def _line_amount(
    values: Mapping[str, str | None], quantity: int | None, returning: bool, options: Options
) -> Decimal:
    """The row's amount, what it earns on: its amount column (what the line cost
    after its discount), else quantity x unit_price less its discount. Given
    both, they must agree. A return may write them negative."""
    raw_amount, raw_price = values.get("amount"), values.get("unit_price")
    if raw_amount is None and raw_price is None:
        raise BadArgument("amount is empty" if "amount" in values else "unit_price is empty")
    total = None if raw_amount is None else _amount(raw_amount, options, returning, "amount")
    raw_off = values.get("discount")
    off = None if raw_off is None else _amount(raw_off, options, returning, "discount")
    if raw_price is None:
        assert total is not None
        return total
    price = _amount(raw_price, options, returning, "unit_price")
    product = price * (quantity or 1)
    if product > MAX_AMOUNT:
        raise BadArgument(f"quantity x unit_price is {product}, more than {MAX_AMOUNT:,}")
    if off is not None:
        if off > product:
            raise BadArgument(f"discount {raw_off} is more than quantity x unit_price ({product})")
        product -= off
    if total is not None and total != product:
        less = "" if off is None else f" less discount {raw_off}"
        raise BadArgument(
            f"amount {raw_amount} is not quantity {quantity or 1} x unit_price {raw_price}"
            f"{less} ({product}); map only one of them"
        )
    return product


_WHOLE = re.compile(r"[0-9]{1,12}", re.ASCII)


def _field(values: Mapping[str, str | None], name: str) -> str | None:
    """A text field, checked like the same option on the command line."""
    value = values.get(name)
    return None if value is None else check_text(value, name, CUSTOMER_ID_MAX)


def _amount(text: str, options: Options, returning: bool = False, what: str = "amount") -> Decimal:
    cleaned = _CURRENCY_MARKS.sub("", text)
    if options.thousands:
        cleaned = cleaned.replace(options.thousands, "")
    if options.decimal_comma:
        cleaned = cleaned.replace(".", "").replace(" ", "").replace(",", ".")
    if cleaned.startswith("-"):
        if not returning:
            raise BadArgument(
                f"{what} '{text}' is negative (a return needs a refund_of column, a negative "
                "quantity, or --cancel-prefix)"
            )
        cleaned = cleaned[1:]
    try:
        # A line may cost nothing (a free item); unit prices too.
        return parse_amount(cleaned, what=what, allow_zero=what in ("unit_price", "discount"))
    except LoyaltyError as error:
        hint = ""
        if "," in cleaned and not options.decimal_comma:
            hint = " (for 1.234,50 pass --decimal-comma; for 1,234.50 pass --thousands ,)"
        raise BadArgument(error.message.replace(f"'{cleaned}'", f"'{text}'") + hint) from None


def _date(text: str, options: Options, shop_tz: tzinfo, latest: datetime) -> datetime:
    if options.date_format is None:
        return parse_at(text, shop_tz, what="date", latest=latest)
    try:
        moment = datetime.strptime(text, options.date_format)
    except ValueError:
        raise BadArgument(
            f"date {text[:60]!r} does not match --date-format {options.date_format}"
        ) from None
    # An aware moment keeps its offset; a naive one is read as shop-local.
    return parse_at(moment.isoformat(), shop_tz, what="date", latest=latest)


# --- importing -------------------------------------------------------------------

# Rows per committed transaction: small enough that a till's `earn`, waiting
# for the write lock, waits a fraction of a second, not the whole import.
CHUNK = 2000
CHUNK_SECONDS = 0.25  # or fewer rows, on a machine slow enough to take longer than this
CHUNK_PAUSE = 0.01  # seconds without the lock between chunks (writers poll every 2 ms)
# What accounts may hold between chunks while nobody else writes, in lots, tier
# inputs and uses (store.kept.Kept), about 140 bytes each: 6 MB. A file of
# a thousand regulars is read once; one of 50,000 customers reads most accounts
# again in each chunk (1.7x slower at 10,000 customers than keeping them all,
# which took 70 MB more: memory that grows with the file is what we refuse).
KEPT_BUDGET = 40_000
# The page cache of an import (Store.widen_cache): what a big import's index
# inserts need, within the memory target (peak at 1M rows <= 1.5x at 10k).
CACHE_MB = 16
# The cyclic garbage collector's thresholds while an import runs. An import
# makes millions of short-lived objects (every account read builds its lots,
# uses and plays), which reference counting frees; at CPython's default (a
# collection every 700 objects made and not yet freed, and every tenth of
# those a wider one) the collector ran some 12,000 times per 100,000 rows at
# 50,000 customers, each time traversing the accounts kept: 15% of the
# import's CPU, and more with games, whose plays are more objects. At these
# thresholds it runs a few times per 100,000 rows; the import makes no
# reference cycles to speak of, so nothing waits longer to be freed.
COLLECT_EVERY = (50_000, 20, 20)

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _collecting_rarely(function: Callable[_P, _T]) -> Callable[_P, _T]:
    """`function` run with the collector's thresholds at COLLECT_EVERY, put back
    after it, whether it returns or raises."""

    @functools.wraps(function)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        threshold = gc.get_threshold()
        gc.set_threshold(*COLLECT_EVERY)
        try:
            return function(*args, **kwargs)
        finally:
            gc.set_threshold(*threshold)

    return run


@dataclass
class ImportSummary:
    files: list[str]
    rows_read: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    rows_skipped: int = 0  # rows with no customer (guest sales)
    receipt_count: int = 0  # purchases, refunds and events imported: a receipt's rows are one
    points: int = 0
    customers: int = 0
    seconds: float = 0.0
    dry_run: bool = False

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class Rejection(NamedTuple):
    source: str
    line: int
    reason: str
    raw: list[str]


# Columns a rejects file adds in front of the input's own: names no till uses,
# so a fixed rejects file imports as it is (the import ignores them).
REJECT_COLUMNS = ("rejected_file", "rejected_line", "rejected_reason")


class RejectsFile:
    """`--rejects PATH`: the rejected rows, as a CSV that can be fixed in a
    spreadsheet and imported again. Its columns are REJECT_COLUMNS, then the
    input's own header (all inputs' columns by name, when their headers differ).
    Written to a temporary file and renamed into place by `commit()`; never the
    ledger or an input (see exports.OutputFile)."""

    def __init__(self, path: Path, protected: Sequence[Path]) -> None:
        self.path = path
        self._out = OutputFile(path, "--rejects", protected)
        self._writer = CsvWriter(self._out.file)
        self._layouts: dict[str, list[int | None]] = {}  # source -> input index per column
        self._widths: dict[str, int] = {}
        self._same = True

    def start(self, headers: Mapping[str, Sequence[str]]) -> None:
        """Lay out the columns from every input's header, and write the header row."""
        kept = {name: _without_rejects(header) for name, header in headers.items()}
        shapes = {tuple(headers[name][i] for i in indices) for name, indices in kept.items()}
        self._same = len(shapes) <= 1
        self._widths = {name: len(header) for name, header in headers.items()}
        if self._same:
            columns = list(next(iter(shapes), ()))
            self._layouts = {name: list(indices) for name, indices in kept.items()}
        else:
            columns = list(
                dict.fromkeys(headers[n][i] for n, indices in kept.items() for i in indices)
            )
            self._layouts = {
                name: [next((i for i in indices if headers[name][i] == c), None) for c in columns]
                for name, indices in kept.items()
            }
        self._writer.row([*REJECT_COLUMNS, *columns])

    def write(self, rejection: Rejection) -> None:
        raw = rejection.raw
        layout = self._layouts.get(rejection.source, [])
        cells: list[object] = [
            "" if index is None or index >= len(raw) else raw[index] for index in layout
        ]
        if self._same:  # a ragged row's extra cells, after the header's columns
            cells += raw[self._widths.get(rejection.source, len(raw)) :]
        self._writer.row([rejection.source, rejection.line, rejection.reason, *cells])

    def commit(self) -> None:
        self._out.commit()

    def discard(self) -> None:
        self._out.discard()


def _without_rejects(header: Sequence[str]) -> list[int]:
    """The indices of a header's columns, less those of an earlier rejects file."""
    ours = {_squash(column) for column in REJECT_COLUMNS}
    return [i for i, column in enumerate(header) if _squash(column) not in ours]


@_collecting_rarely
def import_sources(
    store: Store,
    ruleset: Ruleset,
    sources: Sequence[Source],
    options: Options,
    now: datetime,
    *,
    enroll_unknown: bool = False,
    dry_run: bool = False,
    on_reject: Callable[[Rejection], None] = lambda _: None,
    on_row: Callable[[], None] = lambda: None,
    rejects: RejectsFile | None = None,
    finished_at: Callable[[], datetime] | None = None,
) -> ImportSummary:
    """Import every row of every source through the same decisions as `earn` and
    `refund`, a chunk at a time: the chunk's rows are read and parsed, then its
    accounts and txns are read in one go under the write lock, every row is
    decided on them in order, and what was decided is appended and committed.
    Headers are all checked before anything is written. Each row is keyed (its
    txn_id, or the file's hash and its line), so a killed import re-run from the
    start finishes the job without duplicates."""
    import time as clock

    started = clock.monotonic()
    tz = shop_zone(ruleset)
    store.keep_accounts(KEPT_BUDGET)
    store.widen_cache(CACHE_MB)
    prepared = [(source, *rows(source, options)) for source in sources]
    if rejects is not None:
        rejects.start({source.name: header for source, _, header, _ in prepared})
    summary = ImportSummary([s.name for s in sources], dry_run=dry_run)
    touched: set[str] = set()
    files = [{"name": s.name, "sha256": s.sha256} for s in sources]
    if not dry_run:
        with store.transaction():
            queries.add_run(
                store.conn, "import-started", None, now, now, json.dumps({"files": files})
            )

    def reject(source: Source, row: Row, error: LoyaltyError) -> None:
        summary.rejected += 1
        rejection = Rejection(source.name, row.line, error.message, row.raw)
        if rejects is not None:
            rejects.write(rejection)
        on_reject(rejection)

    size = CHUNK
    counts = _receipt_sizes(sources, options) if _keyed(prepared) else {}
    versions: dict[str, Ruleset] = {}  # older rules texts, parsed once for all chunks
    # A return that finds no sale yet waits for the rest of the import.
    waiting: Waiting[Group] = Waiting()
    groups = itertools.chain(_groups(prepared, counts, options, tz, now), waiting)
    exhausted = False
    while not exhausted:
        chunk: list[Group] = []
        exhausted = True
        rows_in = 0
        for group in groups:
            for _ in () if waiting.draining else group.rows:  # a waiting return was counted
                summary.rows_read += 1
                on_row()
            chunk.append(group)
            rows_in += len(group.rows)
            if rows_in >= size:
                exhausted = False
                break
        if not chunk:
            break
        locked = clock.monotonic()
        outcomes = _chunk(store, ruleset, now, chunk, enroll_unknown, versions)
        # Keep the lock for about CHUNK_SECONDS at most: a slow machine takes
        # fewer rows at a time, so a till waits no longer.
        held = clock.monotonic() - locked
        fits = int(rows_in * CHUNK_SECONDS / held) if held > 0 else CHUNK
        size = max(1, min(CHUNK, fits, size * 2))
        for group, outcome in zip(chunk, outcomes, strict=True):
            if outcome is None:
                summary.rows_skipped += len(group.rows)
                continue
            if isinstance(outcome, NoSaleYet) and not waiting.draining:
                waiting.put(group)
                continue
            if isinstance(outcome, LoyaltyError):
                for source, row, parsed in zip(
                    group.sources, group.rows, group.parsed, strict=True
                ):
                    reject(source, row, parsed if isinstance(parsed, LoyaltyError) else outcome)
                continue
            points, duplicate = outcome
            if duplicate:
                summary.duplicates += len(group.rows)
            else:
                summary.imported += len(group.rows)
                summary.receipt_count += 1
                summary.points += points
                first = group.parsed[0]
                assert isinstance(first, Parsed)
                touched.add(first.customer_id)
        if not exhausted and not dry_run:
            clock.sleep(CHUNK_PAUSE)  # let a waiting till in between two chunks
    summary.customers = len(touched)
    summary.seconds = round(clock.monotonic() - started, 3)
    if not dry_run:
        with store.transaction():
            record = {**summary.to_json(), "files": files}
            finished = now if finished_at is None else finished_at()  # the caller's clock
            queries.add_run(
                store.conn, "import", None, now, finished, json.dumps(record, sort_keys=True)
            )
    return summary


class Group(NamedTuple):
    """The rows of one receipt (rows sharing a txn, wherever they are in the
    files), or one row: decided together, never split across chunks."""

    sources: list[Source]  # each row's file
    rows: list[Row]
    parsed: list[Parsed | LoyaltyError]


def _keyed(prepared: Sequence[tuple[Source, dict[str, int], list[str], Iterator[Row]]]) -> bool:
    return any("txn_id" in columns for _, columns, _, _ in prepared)


def _receipt_sizes(sources: Sequence[Source], options: Options) -> dict[str, int]:
    """How many rows each txn has across the files, for the txns with more than
    one, so a receipt's rows are gathered wherever they are. Two passes over the
    txn column: the first finds the txns that may repeat (a Bloom filter, two
    bytes a row), the second counts those. Memory: one entry per receipt of
    several rows, and the few txns the filter mistook, not one per row."""
    seen = Bloom(sum(source.lines for source in sources))
    counts = {txn: 0 for txn in _txns(sources, options) if seen.add(txn)}
    if counts:
        for txn in _txns(sources, options):
            if txn in counts:
                counts[txn] += 1
    return {txn: n for txn, n in counts.items() if n > 1}


def _txns(sources: Sequence[Source], options: Options) -> Iterator[str]:
    for source in sources:
        columns, _, data = rows(source, options)
        if "txn_id" not in columns:
            for _ in data:  # read to its end, which closes it
                pass
            continue
        for row in data:
            txn = row.values.get("txn_id")
            if txn is not None:
                yield txn


def _groups(
    prepared: Sequence[tuple[Source, dict[str, int], list[str], Iterator[Row]]],
    counts: Mapping[str, int],
    options: Options,
    tz: tzinfo,
    now: datetime,
) -> Iterator[Group]:
    """Each file's rows, parsed, as groups: a row on its own, or a receipt's rows
    (so a receipt spread over the file, or over several files, is one group).
    Groups come in the order of their first row, as typing the rows would
    record them, once complete; when more than WAITING rows wait behind a
    receipt still open, the complete ones go ahead (memory stays bounded)."""
    open_: dict[str, Group] = {}
    queue: deque[tuple[str | None, Group]] = deque()
    stuck = 0  # rows of complete groups waiting behind an open one
    for source, _columns, _header, data in prepared:
        for row in data:
            try:
                parsed: Parsed | LoyaltyError = parse_row(row, source, options, tz, now)
            except LoyaltyError as error:
                parsed = error
            txn = row.values.get("txn_id")
            wanted = counts.get(txn, 1) if txn is not None else 1
            if wanted == 1:
                queue.append((None, Group([source], [row], [parsed])))
                stuck += 1
            else:
                assert txn is not None
                group = open_.get(txn)
                if group is None:
                    group = open_[txn] = Group([], [], [])
                    queue.append((txn, group))
                group.sources.append(source)
                group.rows.append(row)
                group.parsed.append(parsed)
                if len(group.rows) == wanted:
                    del open_[txn]
                    stuck += wanted
            while queue and (queue[0][0] is None or queue[0][0] not in open_):
                done = queue.popleft()[1]
                stuck -= len(done.rows)
                yield done
            if stuck > WAITING:
                kept: deque[tuple[str | None, Group]] = deque()
                for key, group in queue:
                    if key is not None and key in open_:
                        kept.append((key, group))
                    else:
                        yield group
                queue, stuck = kept, 0
    # What is still open (only if a file changed between the two passes) is
    # still a receipt.
    for _, group in queue:
        yield group


# Rows held behind a receipt whose rows are not all read yet, at most.
WAITING = 10 * CHUNK


Outcome = tuple[int, bool] | LoyaltyError | None  # None: skipped (no customer)


def _chunk(
    store: Store,
    ruleset: Ruleset,
    now: datetime,
    chunk: Sequence[Group],
    enroll_unknown: bool,
    versions: dict[str, Ruleset],
) -> list[Outcome]:
    """Decide a chunk's receipts on one Book and append them in one transaction:
    (points, already imported) per receipt, None if skipped, or why it was
    rejected."""
    parsed = [p for g in chunk for p in g.parsed if isinstance(p, Parsed) and p.kind != "guest"]
    keys = {p.txn for p in parsed}
    refunded = {p.refund_of for p in parsed if p.refund_of is not None}
    # Cancellations with no link to their sale: the customer's earlier purchases
    # of what they return.
    lookups = sorted(
        {
            (p.customer_id, what, stamp(p.at))
            for p in parsed
            if p.kind == "return"
            for what in [p.sku or p.category]
            if what is not None
        }
    )
    sales = queries.sales_of(store.conn, lookups) if lookups else {}
    candidates = {txn for txns in sales.values() for txn in txns}

    def customers(recorded: Mapping[str, object]) -> list[str]:
        # Rows already imported need no account: a re-run reads only their keys.
        return [p.customer_id for p in parsed if p.txn not in recorded]

    outcomes: list[Outcome] = [None] * len(chunk)
    detailed = sorted(refunded | candidates)
    # Cancellations go after the chunk's sales: one listed before the sale it
    # returns (a file sorted by nothing) still finds it.
    order = sorted(range(len(chunk)), key=lambda n: _cancels(chunk[n]))
    with store.writing(ruleset, now, customers, [*keys, *detailed], lines_for=detailed) as book:
        if refunded or lookups:
            # A return judges a receipt by the rules it was made with: each read once.
            book.versions.update(versions)
            older_rules(store, book)
            versions.update(book.versions)
        decided: dict[tuple[str, str], list[str]] = {}  # sales decided in this chunk
        for n in order:
            group = chunk[n]
            bad = next((p for p in group.parsed if isinstance(p, LoyaltyError)), None)
            if bad is not None:
                outcomes[n] = _rejected_receipt(group, bad)
                continue
            rows_ = [p for p in group.parsed if isinstance(p, Parsed)]
            try:
                with book.row():
                    outcomes[n] = _apply_group(book, rows_, enroll_unknown, sales, decided)
            except LoyaltyError as error:
                outcomes[n] = error
    return outcomes


def _cancels(group: Group) -> bool:
    return any(isinstance(p, Parsed) and p.kind == "return" for p in group.parsed)


def _rejected_receipt(group: Group, bad: LoyaltyError) -> LoyaltyError:
    """A receipt with a bad row is rejected whole: its other rows say which row."""
    if len(group.rows) == 1:
        return bad
    index = group.parsed.index(bad)
    return BadArgument(
        f"its receipt is rejected whole: line {group.rows[index].line} of it is bad ({bad.message})"
    )


def _apply_group(
    book: Book,
    rows_: list[Parsed],
    enroll_unknown: bool,
    sales: Mapping[tuple[str, str], list[str]],
    decided: dict[tuple[str, str], list[str]],
) -> tuple[int, bool] | None:
    """Carry out one receipt: (points it moved, whether it was already imported),
    or None when it names no customer (a guest sale, skipped)."""
    kinds = {p.kind for p in rows_}
    if kinds == {"guest"}:
        return None
    first = rows_[0]
    if "guest" in kinds or len({p.customer_id for p in rows_}) > 1:
        raise BadArgument(
            f"the rows of receipt {first.txn!r} name different customers "
            "(or some name none); a receipt is one customer's"
        )
    if len(kinds) > 1:
        raise BadArgument(
            f"receipt {first.txn!r} mixes {' and '.join(sorted(kinds))} rows; a receipt "
            "either sells or returns (give returns their own receipt number)"
        )
    (kind,) = kinds
    if len(rows_) == 1 and kind != "return" and (kind != "refund" or first.quantity is None):
        moved, duplicate = _apply(book, first, enroll_unknown)
        if kind == "purchase" and not duplicate:
            what = (first.sku or first.category or "").casefold()
            decided.setdefault((first.customer_id, what), []).insert(0, first.txn)
        return moved, duplicate
    if kind == "event":
        raise BadArgument(f"txn {first.txn!r} is on {len(rows_)} event rows; an event is one row")
    at = min(p.at for p in rows_)
    if kind == "purchase":
        lines = tuple(
            Line(p.amount or Decimal(0), p.quantity or 1, p.sku, p.category) for p in rows_
        )
        receipt = check_receipt(list(lines), f"receipt {first.txn!r}")
        stores = {p.store for p in rows_ if p.store is not None}
        if len(stores) > 1:
            raise BadArgument(
                f"the rows of receipt {first.txn!r} name different stores "
                f"({', '.join(sorted(stores))}); a receipt is one store's"
            )
        request = EarnRequest(
            first.customer_id,
            "purchase",
            amount=total(receipt),
            txn=first.txn,
            at=at,
            lines=receipt,
            store=next(iter(stores), None),
        )
        if request.amount is not None and request.amount <= 0:
            raise BadArgument(f"receipt {first.txn!r} comes to 0.00: nothing was paid")
        points, duplicate = _earn(book, request, enroll_unknown)
        if not duplicate:
            for p in rows_:
                what = (p.sku or p.category or "").casefold()
                decided.setdefault((p.customer_id, what), []).insert(0, first.txn)
        return points, duplicate
    if kind == "refund":
        if len({p.refund_of for p in rows_}) > 1:
            raise BadArgument(
                f"the rows of return {first.txn!r} name different receipts in refund_of; "
                "one return gives back lines of one receipt"
            )
        if any(p.quantity is None for p in rows_):
            raise BadArgument(
                f"return {first.txn!r} has several rows: each needs a quantity and a sku or "
                "category (the lines it gives back), or give each refund its own number"
            )
    wanted = tuple((p.sku or p.category or "", p.quantity) for p in rows_)
    if kind == "refund":
        assert first.refund_of is not None
        return _give_back(book, first, first.refund_of, wanted, at, first.txn)
    found = book.find(first.txn)
    if found is not None:
        if found.kind != "refund" or found.customer_id != first.customer_id:
            raise Refused(
                f"txn {first.txn!r} was already used for a different operation (a "
                f"{found.kind} of {found.customer_id!r}); a cancellation needs its own number"
            )
        # A re-run: the cancellation was imported under its own number (the sales it
        # went back to are no longer the ones with units left, so it is not decided again).
        return 0, True
    return _cancel(book, rows_, at, sales, decided)


def _cancel(
    book: Book,
    rows_: list[Parsed],
    at: datetime,
    sales: Mapping[tuple[str, str], list[str]],
    decided: Mapping[tuple[str, str], list[str]],
) -> tuple[int, bool]:
    """A cancellation with no link to its sale: each line goes back to the
    customer's newest purchase of it, at or before the cancellation, with units
    of it left to return (then the next newest, and so on). One refund per sale
    it returns to; the first carries the cancellation's number, the others that
    number and the sale's."""
    first = rows_[0]
    by_sale: dict[str, list[tuple[str, int | None]]] = {}
    left: dict[tuple[str, str], int] = {}  # units left on (sale, what), as this plans
    for p in rows_:
        what = p.sku or p.category or ""
        key = (p.customer_id, what.casefold())
        need = p.quantity or 0
        for txn in [*decided.get(key, []), *sales.get(key, [])]:
            sale = book.find(txn)
            if sale is None or sale.occurred_at > at or sale.customer_id != p.customer_id:
                continue
            if (txn, key[1]) not in left:
                left[(txn, key[1])] = _units_left(sale, what)
            take = min(need, left[(txn, key[1])])
            if take:
                left[(txn, key[1])] -= take
                by_sale.setdefault(txn, []).append((what, take))
                need -= take
            if not need:
                break
        if need:
            raise NoSaleYet(
                f"cancellation {first.txn!r} returns {p.quantity} x {what!r}, but customer "
                f"{p.customer_id!r} has no earlier purchase of it with "
                f"{'that many' if need != p.quantity else 'any'} units left to return"
            )
    points = 0
    for n, (sale_txn, wanted) in enumerate(by_sale.items()):
        own = first.txn if n == 0 else f"{first.txn}/{sale_txn}"
        moved, _ = _give_back(book, first, sale_txn, tuple(wanted), at, own)
        points += moved
    return points, False


def _units_left(sale: Recorded, what: str) -> int:
    mine = [line for line in sale.lines if line.customer_id == sale.customer_id]
    earned = sum(line.points for line in mine if line.points > 0)
    folded = what.casefold()
    lines = refunds.sold_lines(sale, earned)
    named = [i for i in lines if (i.sku or "").casefold() == folded]
    if not named:
        named = [i for i in lines if (i.category or "").casefold() == folded]
    return sum(i.quantity - i.returned_quantity for i in named)


def _give_back(
    book: Book,
    row: Parsed,
    refund_of: str,
    wanted: tuple[tuple[str, int | None], ...],
    at: datetime,
    txn: str,
) -> tuple[int, bool]:
    purchase = _sale(book, refund_of)
    if purchase.customer_id != row.customer_id:
        raise Refused(
            f"refund_of {refund_of!r} is a purchase of customer "
            f"{purchase.customer_id!r}, not {row.customer_id!r}"
        )
    request = RefundRequest(refund_of, txn=txn, at=at, returns=wanted)
    refunded = refunds.refund(book, request)
    return refunded.points, refunded.duplicate


def _sale(book: Book, txn: str) -> Recorded:
    """The purchase a refund_of row names: not in yet, it may be later in the import."""
    found = book.find(txn)
    if found is None:
        raise NoSaleYet(f"unknown transaction {txn!r}: no purchase has that txn")
    return found


def _earn(book: Book, request: EarnRequest, enroll_unknown: bool) -> tuple[int, bool]:
    """Earn for an imported purchase, enrolling its customer if asked to."""
    # A re-run's rows are mostly duplicates: known by their key alone, without the
    # award and balance that `earn` would work out for a result the import drops.
    if awards.earlier(book, request.txn, request.content(), request.at) is not None:
        return 0, True
    if book.account(request.customer_id) is None:
        if not enroll_unknown:
            raise Refused(
                f"unknown customer {request.customer_id!r} "
                "(enroll them first, or pass --enroll-unknown)"
            )
        enrolled = awards.enroll(
            book, EnrollRequest(request.customer_id, at=request.at, salt=os.urandom(16))
        )
        result = awards.earn(book, request)
        # The summary's points are every point the row moved: the welcome too.
        return enrolled.award.award.points + result.award.points, result.duplicate
    result = awards.earn(book, request)
    return result.award.points, result.duplicate


def _apply(book: Book, row: Parsed, enroll_unknown: bool) -> tuple[int, bool]:
    """Carry out one row: (points it moved, whether it was already imported)."""
    ruleset = book.ruleset
    if row.kind == "refund":
        assert row.refund_of is not None
        purchase = _sale(book, row.refund_of)
        if purchase.customer_id != row.customer_id:
            raise Refused(
                f"refund_of {row.refund_of!r} is a purchase of customer "
                f"{purchase.customer_id!r}, not {row.customer_id!r}"
            )
        giving_back = RefundRequest(row.refund_of, amount=row.amount, txn=row.txn, at=row.at)
        refunded = refunds.refund(book, giving_back)
        return refunded.points, refunded.duplicate
    if row.kind == "event":
        assert row.event is not None
        request = EarnRequest(
            row.customer_id, awards.check_event(ruleset, row.event), txn=row.txn, at=row.at
        )
    else:
        if row.amount is not None and row.amount <= 0:
            raise BadArgument(f"amount {row.amount} must be greater than zero: nothing was paid")
        request = EarnRequest(
            row.customer_id,
            "purchase",
            amount=row.amount,
            category=row.category,
            sku=row.sku,
            quantity=row.quantity,
            txn=row.txn,
            at=row.at,
            store=row.store,
        )
    return _earn(book, request, enroll_unknown)
