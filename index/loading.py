"""Files on disk to `Document`s: decoding, HTML extraction, headline and date.

A file is either loaded whole or rejected with a reason a user can act on (`RejectedFile`); nothing
here guesses silently past a bad file. Plain text and Markdown are decoded (UTF-8 first, then
whatever charset-normalizer finds) with newlines normalized, and a metadata header above them is
read (`read_header`); HTML goes through trafilatura, PDF through index/pdf.py, Word documents
through index/word.py. Markdown is kept as written: no rendering, only a `#` in front of the
headline is dropped. Every source (files here, feeds, archives, web pages) makes its `Document`
with `to_document`, which drops page furniture (index/cleaning.py) and settles the title and date.

Files come from users and from folders anyone may have put things in, so: a file over the size
limit (`QA_MAX_FILE_MB`, 20 MB by default: a news article is a few kB) is rejected from its size
before anything is read, and at most the limit is ever read; pipes and devices are refused; in a
folder, a symbolic link to a file outside that folder is not followed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .cleaning import clean_article
from .errors import InputError, RejectedFile
from .types import Document

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
PDF_SUFFIXES = (".pdf",)
WORD_SUFFIXES = (".docx",)
FEED_SUFFIXES = (".rss", ".atom", ".xml")            # index/feeds.py reads them
ARCHIVE_SUFFIXES = (".jsonl", ".jsonl.gz", ".csv")   # index/archives.py streams them
ARTICLE_SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + PDF_SUFFIXES + WORD_SUFFIXES   # one file, one article: `load_file`
SUPPORTED_SUFFIXES = ARTICLE_SUFFIXES + FEED_SUFFIXES + ARCHIVE_SUFFIXES
DEFAULT_MAX_BYTES = 20_000_000   # QA_MAX_FILE_MB overrides it
TITLE_CHARS = 90
HEADER_CHARS = 300

# C0 controls other than tab and newline, and DEL: they only come from broken conversions.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_MONTH = r"(?P<month>jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE_PATTERNS = (  # each yields named groups year, month, day
    re.compile(r"\b(?P<year>(?:19|20)\d\d)-(?P<month>\d\d)-(?P<day>\d\d)\b"),
    re.compile(r"(?<!\d)\d{1,2}:\d\d,?\s*(?P<day>\d{1,2})\.(?P<month>\d{1,2})\.(?P<year>\d{2}|\d{4})\b"),
    re.compile(_MONTH + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<year>(?:19|20)\d\d)\b", re.I),
    re.compile(r"\b(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+" + _MONTH + r",?\s+(?P<year>(?:19|20)\d\d)\b", re.I),
)
# "date 2023-10-19 " in front of the first line of the sample articles.
_DATELINE = re.compile(r"^\s*date\s+\d{4}-\d\d-\d\d\b\s*", re.I)
_TIME = re.compile(r"\d{1,2}:\d\d")
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)]*\s+(?=\S)")


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """The files to load under `paths`: named files as they are, folders searched recursively.

    In folders only supported extensions count; hidden files and folders, symbolic links that lead
    outside the folder and links that lead nowhere sensible (loops) are skipped with a warning; a file
    named explicitly is always yielded, so that `load_file` can say why it is not supported.
    Raises `InputError` for a path that does not exist or that the system refuses (a name too long).
    """
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        try:
            exists, is_dir = path.exists(), path.is_dir()
        except OSError as e:  # e.g. ENAMETOOLONG: over 255 bytes in one name
            raise InputError(f"{_shortened(path)}: {e.strerror or e}") from None
        if not exists:
            raise InputError(f"{path}: no such file or folder")
        if is_dir:
            root = path.resolve()
            found = []
            for folder, dirs, files in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                found += [Path(folder, f) for f in files
                          if not f.startswith(".") and f.lower().endswith(SUPPORTED_SUFFIXES)]
            found = [f for f in found if _inside(f, root)]
        else:
            found = [path]
        for file in sorted(found):
            try:
                resolved = file.resolve()
            except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop, before Python 3.13
                raise InputError(f"{file}: {e}") from None
            if resolved not in seen:
                seen.add(resolved)
                yield file


def _inside(file: Path, root: Path) -> bool:
    """Whether `file`, found in the folder `root`, really is in it (a link may lead anywhere)."""
    try:
        resolved = file.resolve(strict=True)
    except (OSError, RuntimeError) as e:
        if not file.is_symlink():
            return True  # gone since the walk: load_file reports it
        log.warning("skipped %s: a symbolic link that leads nowhere (%s)", file, e)
        return False
    if resolved.is_relative_to(root):
        return True
    log.warning("skipped %s: a symbolic link to %s, outside %s (name that file itself to index it)",
                file, resolved, root)
    return False


def _shortened(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 200 else f"{text[:120]}…{text[-60:]} ({len(text):,} characters)"


def max_file_bytes() -> int:
    """The largest article file accepted: QA_MAX_FILE_MB megabytes, or `DEFAULT_MAX_BYTES`."""
    raw = os.environ.get("QA_MAX_FILE_MB")
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        limit = float(raw)
    except ValueError:
        raise InputError(f"QA_MAX_FILE_MB must be a number of megabytes, not {raw!r}") from None
    if not limit > 0:
        raise InputError(f"QA_MAX_FILE_MB must be more than 0, not {raw!r}")
    return int(limit * 1_000_000)


def load_file(path: str | os.PathLike[str], max_bytes: int | None = None) -> Document:
    """Load one article; raises `RejectedFile` saying why it cannot be indexed.

    `max_bytes` defaults to `max_file_bytes()`; a larger file is rejected without being read.
    """
    path = Path(path)
    source = str(path)
    max_bytes = max_file_bytes() if max_bytes is None else max_bytes

    def reject(reason: str) -> RejectedFile:
        return RejectedFile(source, reason)

    suffix = path.suffix.lower()
    if suffix not in ARTICLE_SUFFIXES:
        raise reject(f"unsupported file type {suffix or '(no extension)'}; "
                     f"supported: {' '.join(SUPPORTED_SUFFIXES)}")
    try:
        data = _read_at_most(path, max_bytes, reject)
    except PermissionError:
        raise reject("cannot be read: permission denied") from None
    except OSError as e:
        raise reject(f"cannot be read: {e.strerror or e}") from None
    if not data:
        raise reject("empty file")

    if suffix in HTML_SUFFIXES:
        if b"\x00" in data:
            raise reject("binary file (contains NUL bytes), not HTML")
        text, title, date = extract_html(data)
    elif suffix in PDF_SUFFIXES:
        from .pdf import pdf_text

        text, title, date = pdf_text(data, reject)
    elif suffix in WORD_SUFFIXES:
        from .word import docx_text

        text, title, date = docx_text(data, reject)
    else:
        text, title, date = read_header(_decode(data, reject))
    if not text.strip():
        raise reject("no article text found in the page" if suffix in HTML_SUFFIXES
                     else "contains only whitespace")
    return to_document(text, source, title=title, date=date, fallback_title=path.stem)


def to_document(text: str, source: str, *, title: str | None = None, date: str | None = None,
                fallback_title: str = "") -> Document:
    """The `Document` of an article's text from any source: cleaned, with its headline and date.

    `title` and `date` are what the source's metadata says (a feed entry, an archive row, a page's
    meta tags); without them the headline and the dateline's or header's date are taken from the
    text. Raises `RejectedFile` when nothing is left once page furniture is dropped.
    """
    text = _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    cleaned = clean_article(text)
    if not cleaned.text.strip():
        raise RejectedFile(source, "no article text: empty, or only datelines, bylines and links")
    digest = hashlib.sha256(cleaned.text.encode("utf-8")).hexdigest()
    return Document(
        doc_id=digest[:16],
        source=source,
        title=_CONTROLS.sub("", " ".join((title or "").split()))[:300] or headline(cleaned.text) or fallback_title,
        date=iso_date(date) or cleaned.date or header_date(text),
        text=cleaned.text,
        sha256=digest,
    )


def iso_date(value: object) -> str | None:
    """An ISO date (YYYY-MM-DD) from what feeds and archives write: ISO 8601, RFC 822, "March 2, 2024"."""
    if value is None:
        return None
    text = str(value).strip()[:100]
    if not text:
        return None
    if re.fullmatch(r"\d{9,10}(\.\d+)?", text):  # a Unix timestamp
        try:
            return dt.datetime.fromtimestamp(float(text), dt.timezone.utc).date().isoformat()
        except (OverflowError, OSError, ValueError):
            return None
    try:
        from email.utils import parsedate_to_datetime

        return parsedate_to_datetime(text).date().isoformat()
    except (TypeError, ValueError, IndexError):
        pass
    return header_date(text)


def _read_at_most(path: Path, max_bytes: int, reject: Callable[[str], RejectedFile]) -> bytes:
    """The file's bytes, checked on the open file itself (no swap between check and read).

    O_NONBLOCK so that opening a named pipe does not wait for a writer; reading stops one byte past
    the limit, so a file that grew since its size was taken (or lies about it) is never read whole.
    """
    too_big = f"over the {max_bytes / 1e6:g} MB limit for one file (QA_MAX_FILE_MB)"
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with open(fd, "rb", closefd=True) as f:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise reject("is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise reject("not a regular file (a pipe, device or socket)")
        if info.st_size > max_bytes:
            raise reject(f"{info.st_size / 1e6:.1f} MB is {too_big}")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise reject(f"grew while being read: {too_big}")
    return data


def _decode(data: bytes, reject: Callable[[str], RejectedFile]) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):   # UTF-16 has NUL bytes: check its BOM first
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise reject("starts like UTF-16 text but does not decode as UTF-16") from None
    if b"\x00" in data:
        raise reject("binary file (contains NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = _decode_legacy(data)
        if text is None:
            raise reject("not UTF-8 text and no encoding fits; save it as UTF-8") from None
    sample = text[:100_000]  # enough to tell text from binary, and quick on a 20 MB file
    printable = sum(c.isprintable() or c.isspace() for c in sample)
    if printable < 0.9 * len(sample):
        raise reject("mostly non-printable characters: looks binary, not text")
    return text


def _decode_legacy(data: bytes) -> str | None:
    """Text in a single-byte encoding: charset-normalizer's guess, unless Windows-1252 fits as well.

    charset-normalizer reads French and Italian Latin-1 as Baltic (Windows-1257: "déją" for "déjà"),
    since both decode without errors and its language check is weak on news-sized texts. Windows-1252
    (in practice a superset of Latin-1) is the most common legacy encoding of news text, so it wins
    when charset-normalizer rates it nearly as clean as its pick and the text reads as a Western
    European language (`_reads_as_western`); Central European, Turkish, Cyrillic and Greek texts fail
    that test and keep charset-normalizer's answer.
    """
    from charset_normalizer import from_bytes

    results = from_bytes(data)
    best = results.best()
    if best is None:
        return None
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if best.encoding != "cp1252" and western is not None and _reads_as_western(western):
        for match in results:
            if (("cp1252" in match.could_be_from_charset or match.encoding == "cp1252")
                    and match.chaos <= best.chaos + 0.1):
                log.info("decoded as cp1252, not UTF-8 (charset-normalizer guessed %s)", best.encoding)
                return western
    log.info("decoded as %s, not UTF-8", best.encoding)
    return str(best)


# A sign, superscript or fraction between two letters: another encoding read as Windows-1252
# (Polish "ruroci¹giem", "mo¿na").
_WEDGED = re.compile(r"[^\W\d_][\u00a3\u00a4\u00a5\u00a6\u00a8\u00ac\u00af\u00b2\u00b3\u00b4\u00b8\u00b9"
                     r"\u00bc-\u00bf\u02c6\u02dc][^\W\d_]")


def _reads_as_western(text: str) -> bool:
    """Whether Windows-1252 text looks like French, German, Spanish, Italian, Portuguese, Dutch or a
    Scandinavian language: a few accented letters among plain ones (Cyrillic or Greek read as
    Windows-1252 is nearly all accented letters), no sign wedged between letters (Polish), none of ý þ ð
    (Czech and Turkish read as Windows-1252 have them), and no ø beside ì ò ù è ï (Czech "ř", "č", "ď")."""
    sample = text[:100_000]
    letters = [c for c in sample if c.isalpha()]
    accented = {c for c in letters if ord(c) > 127}
    share = sum(ord(c) > 127 for c in letters) / max(len(letters), 1)
    return (bool(letters) and share < 0.3 and not _WEDGED.search(sample) and not accented & set("ýÝþÞðÐ")
            and not ("ø" in accented and accented & set("ìòùèï")))


def extract_html(data: bytes) -> tuple[str, str | None, str | None]:
    """Article text, title and date of a page; falls back to all visible text for odd pages."""
    import trafilatura

    found = trafilatura.bare_extraction(data, with_metadata=True, include_comments=False)
    text = (found.text or "") if found is not None else ""
    if len(text.split()) < 20:  # trafilatura drops short pages it does not see as articles
        plain = trafilatura.html2txt(data)
        if len(plain.split()) > len(text.split()):
            text = plain
    if found is None:
        return text, None, None
    return text, (found.title or "").strip() or None, (found.date or "")[:10] or None


# The metadata block that scrapers, newsletters and note apps write above an article: YAML front matter
# between "---" lines (Hugo, Jekyll, Obsidian), or "Title: …", "Date: …" lines ended by a blank line.
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FIELD = re.compile(r"\s*([A-Za-z][A-Za-z _-]{0,20}?)\s*:\s*(.*)")
HEADER_FIELDS = frozenset("""
title headline date published updated modified author authors by byline source url link section category
categories tags keywords publisher site language lang description summary id slug image
""".split())
TITLE_FIELDS = ("title", "headline")
DATE_FIELDS = ("date", "published", "updated", "modified")


def read_header(text: str) -> tuple[str, str | None, str | None]:
    """(the article with its metadata header replaced by its title line, title, date); the text as it
    is, and no title or date, when it has no such header.

    A header is YAML front matter, or a run of "Key: value" lines whose keys are all known ones
    (`HEADER_FIELDS`) followed by a blank line, with at least two of them or a title: so an article
    that opens "BREAKING: Floods in the valley" keeps that line as its headline.
    """
    fields: dict[str, object] = {}
    body = text
    if m := _FRONT_MATTER.match(text):
        import yaml

        try:
            found = yaml.safe_load(m.group(1))
        except (yaml.YAMLError, RecursionError):
            found = None
        if isinstance(found, dict):
            fields, body = {str(k).strip().lower(): v for k, v in found.items()}, text[m.end():]
    else:
        lines = text.split("\n")
        n = 0
        while n < len(lines) and (m := _FIELD.fullmatch(lines[n])) and m[1].strip().lower() in HEADER_FIELDS:
            fields.setdefault(m[1].strip().lower(), m[2].strip())
            n += 1
        ended = n == len(lines) or not lines[n].strip()
        if ended and (len(fields) >= 2 or any(k in fields for k in TITLE_FIELDS)):
            body = "\n".join(lines[n:])
        else:
            fields = {}
    # Only plain values: YAML may nest lists and aliases where a title is expected.
    plain = {k: v for k, v in fields.items() if isinstance(v, (str, int, float, dt.date)) and str(v).strip()}
    title = next((" ".join(str(plain[k]).split()) for k in TITLE_FIELDS if k in plain), None)
    date = next((iso_date(plain[k]) for k in DATE_FIELDS if k in plain), None)
    return (f"{title}\n\n{body.lstrip()}" if title else body), title, date


def header_date(text: str) -> str | None:
    """The ISO date given in the article's header (its first few hundred characters), if any.

    Only the header counts: a date deep in the body is what the article is about, not its date.
    """
    head = text[:HEADER_CHARS]
    matches = [m for p in _DATE_PATTERNS for m in p.finditer(head)]
    for m in sorted(matches, key=lambda m: m.start()):
        month = m["month"].lower()
        month_no = int(month) if month.isdigit() else _MONTHS[month[:3]]
        year = int(m["year"]) + (2000 if len(m["year"]) == 2 else 0)
        try:
            return dt.date(year, month_no, int(m["day"])).isoformat()
        except ValueError:
            continue
    return None


def headline(text: str) -> str:
    """The article's headline: its first line that is not a dateline or byline.

    A line on its own is kept whole; when the article starts straight into a paragraph, its first
    sentence is the title, cut at a word boundary near `TITLE_CHARS`.
    """
    for line in text.split("\n"):
        line = _DATELINE.sub("", line).strip().lstrip("#").strip()
        if not line or _is_byline(line):
            continue
        first = _SENTENCE_END.split(line, maxsplit=1)[0]
        if len(first) <= TITLE_CHARS or (first == line and line[-1] not in ".!?" and len(line) <= 150):
            return first
        cut = first[:TITLE_CHARS + 1].rsplit(" ", 1)[0].rstrip(",;:-–— ")
        return cut + "…"
    return ""


def _is_byline(line: str) -> bool:
    words = line.split()
    if len(words) > 8:
        return False
    return bool(re.match(r"(by|from|updated|published)\b", line, re.I) or _TIME.search(line)
                or any(p.fullmatch(line) for p in _DATE_PATTERNS))
