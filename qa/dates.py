"""The time a question names, so that articles of that time can rank higher.

"in October", "October 2025", "in 2024", "this week", "last month", "yesterday": a period of dates,
relative ones counted back from `today`. A month without a year means that month of any year
(an archive may span several). Only the first time expression counts; a question naming none
gets no period, and so no preference. Articles without a date are never in a period.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
# "May" is also a verb and a name: only with a day or year, or after "in"/"since"/"during", is it the month.
_MONTH = re.compile(r"\b(?:(in|since|during|of|early|late|mid-?)\s+)?(" + "|".join(MONTHS) + r")\b"
                    r"(?:\s+(\d{1,2})(?:st|nd|rd|th)?\b)?(?:,?\s+((?:19|20)\d\d)\b)?", re.IGNORECASE)
_YEAR = re.compile(r"\b(?:in|of|during|since)\s+((?:19|20)\d\d)\b", re.IGNORECASE)
_RELATIVE = re.compile(r"\b(this|last|past|previous)\s+(week|month|year)\b|\b(today|yesterday)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Period:
    """Dates `start` to `end` (ISO, inclusive), or, when `month` is set, that month in any year."""

    start: str | None = None
    end: str | None = None
    month: int | None = None

    def holds(self, date: str | None) -> bool:
        if not date:
            return False
        if self.month is not None:
            return date[5:7] == f"{self.month:02d}"
        return (self.start or "") <= date[:10] <= (self.end or "9999")


def named_period(question: str, today: dt.date | None = None) -> Period | None:
    """The period the question's first time expression names, or None."""
    today = today or dt.date.today()
    found = []
    for m in _MONTH.finditer(question):
        preposition, month, day, year = m.groups()
        if month.lower() == "may" and not (preposition or day or year):
            continue
        found.append((m.start(), _month_period(MONTHS.index(month.lower()) + 1, day, year)))
        break
    if (m := _YEAR.search(question)):
        found.append((m.start(), Period(f"{m[1]}-01-01", f"{m[1]}-12-31")))
    if (m := _RELATIVE.search(question)):
        found.append((m.start(), _relative(m, today)))
    return min(found, key=lambda f: f[0])[1] if found else None


def in_period(date: str | None, period: Period | None) -> bool:
    return period is not None and period.holds(date)


def _month_period(month: int, day: str | None, year: str | None) -> Period:
    if not year:
        return Period(month=month)
    if day and 1 <= int(day) <= 31:
        try:
            exact = dt.date(int(year), month, int(day))
        except ValueError:  # "February 30, 2025": the month, then
            exact = None
        if exact:
            return Period(exact.isoformat(), exact.isoformat())
    first = dt.date(int(year), month, 1)
    following = dt.date(int(year) + month // 12, month % 12 + 1, 1)
    return Period(first.isoformat(), (following - dt.timedelta(days=1)).isoformat())


def _relative(m: re.Match, today: dt.date) -> Period:
    which, unit, day = (m[1] or "").lower(), (m[2] or "").lower(), (m[3] or "").lower()
    if day:
        date = today - dt.timedelta(days=1 if day == "yesterday" else 0)
        return Period(date.isoformat(), date.isoformat())
    back = 0 if which == "this" else 1
    if unit == "week":
        monday = today - dt.timedelta(days=today.weekday() + 7 * back)
        return Period(monday.isoformat(), (monday + dt.timedelta(days=6)).isoformat())
    if unit == "month":
        year, month = (today.year, today.month) if not back else \
            (today.year - (today.month == 1), (today.month - 2) % 12 + 1)
        return _month_period(month, None, str(year))
    year = today.year - back
    return Period(f"{year}-01-01", f"{year}-12-31")


def spelled(date: str | None) -> str:
    """An article's ISO date as words ("2023-11-07" -> "7 November 2023"; "2023-11" -> "November 2023"),
    so that a question naming the time of a report ("the November report") finds it the way it finds a
    name; "" for no date or one not in ISO form."""
    m = re.fullmatch(r"((?:19|20)\d\d)(?:-(\d\d)(?:-(\d\d))?)?", (date or "")[:10])
    if not m or (m[2] and not 1 <= int(m[2]) <= 12):
        return ""
    year, month, day = m.groups()
    words = [str(int(day))] if day else []
    words += [MONTHS[int(month) - 1].capitalize()] if month else []
    return " ".join([*words, year])
