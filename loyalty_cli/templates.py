"""The owner's message templates: Jinja2, in its sandbox (a template is text from
a file, not code: it can read the figures it is given and format them, and
nothing else). The only module that imports jinja2, and lazily: only `messages`
pays for it.

A template is a mail: header lines (`Subject:` is required), a blank line, then
the body. Both are rendered per customer. Filters write figures in the shop's
locale: `{{ balance | number }}`, `{{ notice.date | day }}`, `{{ 12.5 | money }}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import formats
from .errors import DataRejected, InputMissing

MAX_BYTES = 100_000


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


class Template:
    """A template file, compiled once, rendered per customer."""

    def __init__(self, path: Path, locale: str | None, currency: str) -> None:
        from jinja2 import StrictUndefined, TemplateSyntaxError
        from jinja2.sandbox import SandboxedEnvironment

        self.path = path
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InputMissing(f"template {path} cannot be read: {exc.strerror}") from None
        if len(raw) > MAX_BYTES:
            raise DataRejected(f"{path}: a template may hold at most {MAX_BYTES:,} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise DataRejected(f"{path}:{line}: not UTF-8 text") from None
        env = SandboxedEnvironment(
            undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        env.filters["number"] = lambda value: formats.number(_figure(value, "number"), locale)
        env.filters["money"] = lambda value: formats.money(
            _figure(value, "money", Decimal), currency, locale
        )
        env.filters["day"] = lambda value: formats.day(_as_day(value), locale)
        try:
            self.template = env.from_string(text)
        except TemplateSyntaxError as exc:
            raise DataRejected(f"{path}:{exc.lineno}: {exc.message}") from None

    def render(self, context: dict[str, Any], who: str) -> Rendered:
        """The mail for one customer: its Subject header and its body."""
        from jinja2 import TemplateError

        try:
            text = self.template.render(context)
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            where = f"{self.path}:{line}" if line else str(self.path)
            raise DataRejected(f"{where}: {exc} (rendering for {who})") from None
        except (ValueError, ArithmeticError, TypeError) as exc:  # a filter given a non-figure
            raise DataRejected(f"{self.path}: {exc} (rendering for {who})") from None
        head, sep, body = text.replace("\r\n", "\n").partition("\n\n")
        subject = None
        for line in head.splitlines():
            name, colon, value = line.partition(":")
            if not colon or name.strip().lower() != "subject":
                raise DataRejected(
                    f"{self.path}: the header lines before the first blank line may only be "
                    f"'Subject: ...'; found {line[:60]!r} (rendering for {who})"
                )
            subject = " ".join(value.split())
        if not sep or not subject:
            raise DataRejected(
                f"{self.path}: a template starts with 'Subject: ...', then a blank line, "
                f"then the body (rendering for {who})"
            )
        return Rendered(subject, body)


def _figure(value: object, name: str, kind: Any = int) -> Any:
    try:
        return kind(str(value))
    except (ValueError, ArithmeticError):
        raise ValueError(f"the filter '{name}' was given {value!r}, not a figure") from None


def _as_day(value: object) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"the filter 'day' was given {value!r}, not a YYYY-MM-DD day") from None
