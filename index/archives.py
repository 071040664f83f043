"""News archives to articles: JSON Lines (plain or gzipped) and CSV, streamed row by row.

Most news datasets and scrapers write one article per row with its text, title, date and URL under
some field names; `ArchiveFields` says which (each default also tries the common alternatives:
"content", "body" for the text, "headline" for the title, "published" for the date, "link" for the
URL). Rows are read one at a time, so a multi-gigabyte archive never sits in memory. A row is known
by its URL when it has one (the same article in two exports is one article), otherwise by
"<archive path>#L<line>" (JSON Lines) or "#R<record>" (CSV). A bad row is rejected with its line
number and the rest of the archive is read.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, RejectedFile
from .loading import to_document
from .sources import Pending

_ALTERNATIVES = {
    "text": ("text", "content", "body", "article", "maintext", "full_text", "article_text", "story"),
    "title": ("title", "headline", "name"),
    "date": ("date", "published", "publish_date", "published_at", "date_publish", "pubdate", "datetime",
             "timestamp", "created_at"),
    "url": ("url", "link", "source_url", "article_url", "href"),
}


@dataclass(frozen=True)
class ArchiveFields:
    """Field (column) names of an archive. A name left at its default also tries the usual alternatives."""

    text: str = "text"
    title: str = "title"
    date: str = "date"
    url: str = "url"

    def candidates(self, role: str) -> tuple[str, ...]:
        name = getattr(self, role)
        return _ALTERNATIVES[role] if name == _ALTERNATIVES[role][0] else (name,)


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith((".jsonl", ".jsonl.gz", ".csv"))


def archive_items(path: Path, fields: ArchiveFields, max_bytes: int) -> Iterator[Pending]:
    """The rows of the archive at `path` as articles, read lazily; `max_bytes` limits one row."""
    name = path.name.lower()
    try:
        if name.endswith(".csv"):
            yield from _csv_rows(path, fields, max_bytes)
        else:
            yield from _jsonl_rows(path, fields, max_bytes)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise RejectedFile(str(path), f"cannot be read past this point: {e}") from None


def _jsonl_rows(path: Path, fields: ArchiveFields, max_bytes: int) -> Iterator[Pending]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as raw:
        for number, line in enumerate(raw, 1):
            if not line.strip():
                continue
            where = f"{path}#L{number}"
            if len(line) > max_bytes:
                yield _rejected(where, f"a row of {len(line) / 1e6:.1f} MB is over the "
                                       f"{max_bytes / 1e6:g} MB limit for one article (QA_MAX_FILE_MB)")
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                yield _rejected(where, f"not a JSON object ({e.__class__.__name__}: {str(e)[:80]})")
                continue
            if not isinstance(row, dict):
                yield _rejected(where, "not a JSON object (one article per line: {\"text\": ..., \"title\": ...})")
                continue
            yield _row_item(row, where, fields)


def _csv_rows(path: Path, fields: ArchiveFields, max_bytes: int) -> Iterator[Pending]:
    csv.field_size_limit(min(max_bytes, sys.maxsize))  # the default (128 kB) is less than some articles
    with open(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.DictReader(text)
        if not reader.fieldnames:
            raise RejectedFile(str(path), "an empty CSV file: the first line should name the columns")
        if not any(n in reader.fieldnames for n in fields.candidates("text")):
            raise RejectedFile(str(path), f"no text column: the columns are {', '.join(reader.fieldnames)[:200]}; "
                                          "name the one with the article text with --text-field")
        number = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield _rejected(f"{path}#R{number + 1}", f"not valid CSV ({e}); the rest of the file is skipped")
                return
            number += 1
            yield _row_item(row, f"{path}#R{number}", fields)


def _row_item(row: dict, where: str, fields: ArchiveFields) -> Pending:
    def field(role: str) -> str | None:
        for name in fields.candidates(role):
            value = row.get(name)
            if value not in (None, ""):
                return value if isinstance(value, str) else str(value)
        return None

    text, url = field("text"), field("url")
    source = url.strip() if url and url.strip().lower().startswith(("http://", "https://")) else where
    if text is None:
        names = ", ".join(fields.candidates("text"))
        return _rejected(source, f"{where}: no article text in field(s) {names}; name it with --text-field")
    title, date = field("title"), field("date")
    return Pending(source, lambda: to_document(text, source, title=title, date=date))


def _rejected(source: str, reason: str) -> Pending:
    def load():
        raise RejectedFile(source, reason)
    return Pending(source, load)


def check_fields(fields: ArchiveFields) -> None:
    for role in ("text", "title", "date", "url"):
        if not getattr(fields, role).strip():
            raise InputError(f"--{role}-field needs a field name")
