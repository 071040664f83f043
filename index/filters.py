"""Which articles a search may return: a date range and sources, as the user states them.

A filter is checked against each article's metadata once and becomes a mask over passages that
both searches apply (FAISS through an ID selector, BM25 by zeroing scores), so a narrow filter
still returns its best `k` passages rather than what is left of the global top `k`. An article
without a date never passes a date range: nothing says it is in it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InputError
from .types import DocumentInfo

_PARTIAL_DATE = re.compile(r"(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?")


@dataclass(frozen=True)
class SearchFilter:
    """Articles dated `since` to `until` (ISO dates, both included) from `sources`; empty parts allow all.

    `sources`: parts of file paths, case-insensitive: "reuters" keeps every article whose path
    contains it, "politics/" a folder, "a1b2.txt" one file.
    """

    since: str | None = None
    until: str | None = None
    sources: tuple[str, ...] = ()

    @classmethod
    def parse(cls, since: str | None = None, until: str | None = None,
              sources: Sequence[str] | str | None = ()) -> SearchFilter:
        """A filter from what a user typed: "2025", "2025-07" or "2025-07-04" (a year or a month means
        all of it), sources as a list or comma-separated. InputError saying what is wrong."""
        if isinstance(sources, str):
            sources = sources.split(",")
        sources = sources or ()  # an empty box of the browser form arrives as None
        start = _date(since, "since", first=True) if since and since.strip() else None
        end = _date(until, "until", first=False) if until and until.strip() else None
        if start and end and start > end:
            raise InputError(f"the date range is empty: since {start} is after until {end}; swap them")
        return cls(start, end, tuple(s.strip() for s in sources if s.strip()))

    def __bool__(self) -> bool:
        return bool(self.since or self.until or self.sources)

    def allows(self, doc: DocumentInfo) -> bool:
        if (self.since or self.until) and not doc.date:
            return False
        if self.since and doc.date < self.since or self.until and doc.date > self.until:
            return False
        if self.sources:
            paths = [p.lower() for p in (doc.source, *doc.also_at)]
            return any(s.lower() in p for s in self.sources for p in paths)
        return True

    def describe(self) -> str:
        """In words, for a message that no article is (dated …, from …)."""
        parts = []
        if self.since or self.until:
            parts.append(f"dated {self.since or 'any time'} to {self.until or 'now'}")
        if self.sources:
            parts.append("from " + " or ".join(repr(s) for s in self.sources))
        return " and ".join(parts) or "in the index"


def _date(text: str, name: str, first: bool) -> str:
    m = _PARTIAL_DATE.fullmatch(text.strip())
    try:
        if not m:
            raise ValueError
        year, month, day = int(m[1]), int(m[2] or (1 if first else 12)), m[3]
        if not 1 <= month <= 12:
            raise ValueError
        if day is None:
            following = dt.date(year + month // 12, month % 12 + 1, 1)
            return (dt.date(year, month, 1) if first else following - dt.timedelta(days=1)).isoformat()
        return dt.date(year, month, int(day)).isoformat()
    except ValueError:
        raise InputError(f"{name} {text!r} is not a date: write it as 2025-07-04, 2025-07 or 2025") from None
