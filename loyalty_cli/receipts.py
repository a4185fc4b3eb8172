"""Receipts with lines, as they come in: a `--line` written on the command line,
or JSON lines from a till (`--lines FILE|-`). Each line is bounded and checked
where it enters, and becomes a `Line` with the amount it earns on (quantity x
unit price, or the line's total, less its discount)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import IO

from .errors import BadArgument, DataRejected, InputMissing
from .models import Line
from .values import CUSTOMER_ID_MAX, MAX_AMOUNT, MAX_QUANTITY, check_text, parse_amount

# Lines on one receipt: a till's longest receipts are a few hundred lines.
MAX_LINES = 1000
# Bytes of a `--lines` document.
MAX_LINES_BYTES = 1_000_000

_SPEC = re.compile(r"(?P<what>[^:]*):(?:(?P<qty>[0-9]+)x)?(?P<price>[^-]+)(?:-(?P<discount>.+))?")
LINE_KEYS = ("sku", "category", "quantity", "unit_price", "amount", "discount")


def line_amount(
    quantity: int,
    unit_price: Decimal | None,
    total: Decimal | None,
    discount: Decimal | None,
    what: str,
) -> Decimal:
    """What a line earns on: its total (quantity x unit price when no total is
    given) less its discount. Both forms given must agree."""
    if unit_price is None and total is None:
        raise BadArgument(f"{what} needs a unit price or a line amount", field=what)
    if unit_price is not None:
        product = unit_price * quantity
        if total is not None and total != product:
            raise BadArgument(
                f"{what}: amount {total} is not quantity {quantity} x unit price "
                f"{unit_price} ({product}); give one of them",
                field=what,
            )
        total = product
    assert total is not None
    if discount is not None and discount > total:
        raise BadArgument(
            f"{what}: discount {discount} is more than the line's {total}", field=what
        )
    return total - (discount or 0)


def parse_line(spec: str, what: str = "--line") -> Line:
    """`[CATEGORY][/SKU]:[QTYx]PRICE[-DISCOUNT]`: `shoes:59.90`,
    `food/SKU-123:2x4.50`, `/SKU-9:3x1.00-0.50` (PRICE is the unit price when a
    quantity is given, else the line's amount for one unit)."""
    match = _SPEC.fullmatch(spec.strip())
    shown = f"{what} {spec!r}"
    if match is None:
        raise BadArgument(
            f"{shown} is not CATEGORY[/SKU]:[QTYx]PRICE[-DISCOUNT] "
            "(e.g. shoes:59.90 or food/SKU-123:2x4.50)",
            field=what,
        )
    category, _, sku = match["what"].partition("/")
    category_code = _code(category, f"{shown}: category")
    sku_code = _code(sku, f"{shown}: sku")
    if category_code is None and sku_code is None:
        raise BadArgument(f"{shown} names neither a category nor a SKU", field=what)
    quantity = _quantity(int(match["qty"]) if match["qty"] else 1, shown)
    price = parse_amount(match["price"], what=f"{shown}: price", allow_zero=True)
    discount = match["discount"]
    off = None if discount is None else parse_amount(discount, what=f"{shown}: discount")
    amount = line_amount(quantity, price, None, off, shown)
    return Line(amount=amount, quantity=quantity, sku=sku_code, category=category_code)


def read_lines(text: str, source: str) -> tuple[Line, ...]:
    """JSON lines, one object per receipt line: {"sku", "category", "quantity",
    "unit_price" or "amount", "discount"}. Every problem is collected, each as
    `source:line: ...`, before failing (exit 65)."""
    if len(text.encode("utf-8", "replace")) > MAX_LINES_BYTES:
        raise DataRejected(f"{source}: more than {MAX_LINES_BYTES:,} bytes of lines")
    lines: list[Line] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            lines.append(_json_line(raw, f"{source}:{number}"))
        except BadArgument as exc:
            problems.append(exc.message)
    if problems:
        first = problems[0]
        more = (
            f" (and {len(problems) - 1} more: {'; '.join(problems[1:4])})" if problems[1:] else ""
        )
        raise DataRejected(first + more, file=source)
    if not lines:
        raise DataRejected(f"{source}: no receipt lines (one JSON object per line)", file=source)
    return check_receipt(lines, source)


def _json_line(raw: str, where: str) -> Line:
    try:
        doc = json.loads(raw, parse_float=str, parse_int=str)
    except json.JSONDecodeError as exc:
        raise BadArgument(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(doc, dict):
        raise BadArgument(f'{where}: a line is a JSON object such as {{"sku": "A1", ...}}')
    unknown = sorted(set(doc) - set(LINE_KEYS))
    if unknown:
        raise BadArgument(f"{where}: unknown key '{unknown[0]}' (keys: {', '.join(LINE_KEYS)})")
    sku = _code(_string(doc.get("sku"), where, "sku"), f"{where}: sku")
    category = _code(_string(doc.get("category"), where, "category"), f"{where}: category")
    if sku is None and category is None:
        raise BadArgument(f"{where}: a line needs a sku or a category")
    qty_text = _string(doc.get("quantity"), where, "quantity")
    if qty_text is not None and not qty_text.isdigit():
        raise BadArgument(f"{where}: quantity '{qty_text}' is not a whole number of 1 or more")
    quantity = _quantity(int(qty_text) if qty_text else 1, where)
    money = {
        key: None
        if (value := _string(doc.get(key), where, key)) is None
        else parse_amount(value, what=f"{where}: {key}", allow_zero=key != "discount")
        for key in ("unit_price", "amount", "discount")
    }
    amount = line_amount(quantity, money["unit_price"], money["amount"], money["discount"], where)
    return Line(amount=amount, quantity=quantity, sku=sku, category=category)


def check_receipt(lines: list[Line], source: str) -> tuple[Line, ...]:
    """A receipt's lines, bounded in number and total."""
    if len(lines) > MAX_LINES:
        raise BadArgument(
            f"{source}: {len(lines):,} lines on one receipt, more than the {MAX_LINES:,} "
            "allowed; split it"
        )
    total = sum((line.amount for line in lines), Decimal("0.00"))
    if total > MAX_AMOUNT:
        raise BadArgument(
            f"{source}: the receipt's total {total} is larger than the maximum of {MAX_AMOUNT:,}"
        )
    return tuple(lines)


def total(lines: tuple[Line, ...]) -> Decimal:
    return sum((line.amount for line in lines), Decimal("0.00"))


def given_lines(specs: list[str], path: str | None, stdin: IO[bytes]) -> tuple[Line, ...]:
    """The receipt `earn` was given: its --line specs, or the JSON lines of
    --lines FILE (or - for `stdin`); () when neither. A receipt of 0.00 is refused."""
    if specs:
        lines = check_receipt([parse_line(spec) for spec in specs], "--line")
    elif path is not None:
        lines = read_lines(read_input(path, "--lines", stdin), input_name(path))
    else:
        return ()
    if total(lines) <= 0:
        raise BadArgument("the receipt's lines come to 0.00: a purchase must cost something")
    return lines


def input_name(path: str) -> str:
    return "<stdin>" if path == "-" else path


def read_input(path: str, what: str, stdin: IO[bytes]) -> str:
    """A small text input named on the command line (FILE, or - for stdin), as
    UTF-8; a missing or unreadable file is exit 66, bad bytes exit 65."""
    try:
        if path == "-":
            data = stdin.read(MAX_LINES_BYTES + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(MAX_LINES_BYTES + 1)
    except OSError as exc:
        raise InputMissing(
            f"{what} {path}: cannot read it ({exc.strerror or exc})", field=what
        ) from None
    if len(data) > MAX_LINES_BYTES:
        raise DataRejected(f"{input_name(path)}: more than {MAX_LINES_BYTES:,} bytes", field=what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataRejected(
            f"{input_name(path)}: not UTF-8 (byte {exc.start + 1}); save it as UTF-8", field=what
        ) from None


def parse_return(spec: str) -> tuple[str, int | None]:
    """`SKU[:QTY]` of `refund --line` (or a category, or #N): what to return, and
    how many units (None: all that are left)."""
    key, colon, units = spec.strip().rpartition(":")
    if not colon:
        key = spec.strip()
    code = _code(key, "--line")
    if code is None:
        raise BadArgument(f"--line {spec!r} names no SKU, category or #N", field="--line")
    if not colon:
        return code, None
    if not units.isdigit() or not 1 <= int(units) <= MAX_QUANTITY:
        raise BadArgument(
            f"--line {spec!r}: quantity {units!r} must be a whole number from 1 to "
            f"{MAX_QUANTITY:,}",
            field="--line",
        )
    return code, int(units)


def _string(value: object, where: str, key: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str):
        raise BadArgument(f"{where}: {key} must be a string or a number")
    return value


def _quantity(quantity: int, where: str) -> int:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise BadArgument(f"{where}: quantity {quantity} must be 1 to {MAX_QUANTITY:,}")
    return quantity


def _code(value: str | None, what: str) -> str | None:
    if value is None or not value.strip():
        return None
    return check_text(value.strip(), what, CUSTOMER_ID_MAX)
