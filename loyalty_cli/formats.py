"""Figures, money and dates as the shop's people read them, in the shop's locale
(`program.locale`, en_GB, de_DE...): the only module that imports babel, and
lazily, when something is written for people in a locale. Without a locale (or
one babel does not know), plain forms: 1,234 and 1,234.50 USD, 2026-11-27.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=8)
def locale_of(name: str) -> Any:
    """babel's Locale for a name, else for its language alone, else None."""
    from babel import Locale, UnknownLocaleError

    for candidate in (name, name.split("_")[0]):
        try:
            return Locale.parse(candidate)
        except (UnknownLocaleError, ValueError):
            continue
    return None


def known_locale(name: str) -> bool:
    """Whether babel knows the locale itself (not just its language)."""
    found = locale_of(name)
    return found is not None and str(found) == name


def _locale(name: str | None) -> Any:
    return locale_of(name) if name else None


def number(value: int, locale: str | None) -> str:
    found = _locale(locale)
    if found is not None:
        from babel.numbers import format_decimal

        return str(format_decimal(value, locale=found))
    return f"{value:,}"


def money(value: Decimal, currency: str | None, locale: str | None) -> str:
    """`£1,234.50`, `1.234,50 €`; without a locale `1,234.50 USD`."""
    found = _locale(locale)
    if found is not None:
        from babel.numbers import format_currency, format_decimal

        if currency:
            return str(format_currency(value, currency, locale=found))
        return str(format_decimal(value, "#,##0.00", locale=found))
    shown = f"{value:,.2f}"
    return f"{shown} {currency}" if currency else shown


def day(value: date, locale: str | None) -> str:
    """A day in words: `24 December 2026`, `24. Dezember 2026`; plain ISO without a locale."""
    found = _locale(locale)
    if found is not None:
        from babel.dates import format_date

        return str(format_date(value, format="long", locale=found))
    return value.isoformat()


def moment(value: datetime, locale: str | None) -> str:
    """A shop-local time to the minute: `24 Dec 2026, 14:30`; `2026-12-24 14:30`
    without a locale."""
    found = _locale(locale)
    if found is not None:
        from babel.dates import format_date, format_time

        when = format_time(value, format="short", locale=found, tzinfo=value.tzinfo)
        return f"{format_date(value, format='medium', locale=found)}, {when}"
    return value.strftime("%Y-%m-%d %H:%M")
