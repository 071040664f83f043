"""A PDF of printed or e-paper pages to article text: pages in order, running headers and footers dropped.

pypdf (pure Python) gives each page's text in the order of its content stream, which for pages
made by a word processor or a newspaper's export is reading order. A line that starts or ends most
pages with the same words (the paper's name, the section, "Page 3 of 8" with its number changed)
is a running header or footer and is dropped, and so is a line that is only a page number. Words
hyphenated at a line end are joined again. What this leaves out: OCR (a scanned page without a text
layer is rejected, saying so), and multi-column pages whose content stream is not in reading order.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Callable

from .errors import RejectedFile

_EDGE_LINES = 2          # lines at the top and at the bottom of a page that may be a header or footer
_PAGE_NUMBER = re.compile(r"^(?:page\s*)?\d{1,4}(?:\s*(?:/|of)\s*\d{1,4})?$|^[-–]\s*\d{1,4}\s*[-–]$", re.I)
_HYPHENATED = re.compile(r"(\w)-\n(\w)")


def pdf_text(data: bytes, reject: Callable[[str], RejectedFile]) -> tuple[str, str | None, str | None]:
    """Text, title and date (from the PDF's metadata) of a PDF file's bytes."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise reject("an encrypted PDF: save a copy without a password first")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta = reader.metadata
    except RejectedFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise reject(f"not a readable PDF ({e})") from None
    text = join_pages(pages)
    if not text.strip():
        raise reject("a PDF without a text layer (a scan?): run OCR on it first, e.g. with ocrmypdf")
    title = date = None
    if meta is not None:
        title = (meta.title or "").strip() or None
        created = meta.get("/CreationDate")
        if isinstance(created, str) and re.match(r"D:\d{8}", created):
            date = f"{created[2:6]}-{created[6:8]}-{created[8:10]}"
    return text, title, date


def join_pages(pages: list[str]) -> str:
    """The pages' text as one article, without running headers, footers and page numbers."""
    split = [[line.strip() for line in page.splitlines() if line.strip()] for page in pages]
    running = _running_lines(split)
    kept = []
    for lines in split:
        body = [line for i, line in enumerate(lines)
                if not ((i < _EDGE_LINES or i >= len(lines) - _EDGE_LINES)
                        and (_shape(line) in running or _PAGE_NUMBER.match(line)))]
        kept.append("\n".join(body))
    return _HYPHENATED.sub(r"\1\2", "\n\n".join(page for page in kept if page))


def _running_lines(pages: list[list[str]]) -> set[str]:
    """Shapes of lines found at the top or bottom of at least half the pages (and at least two)."""
    if len(pages) < 2:
        return set()
    seen: Counter[str] = Counter()
    for lines in pages:
        seen.update({_shape(line) for line in lines[:_EDGE_LINES] + lines[-_EDGE_LINES:]})
    needed = max(2, (len(pages) + 1) // 2)
    return {shape for shape, n in seen.items() if n >= needed}


def _shape(line: str) -> str:
    """A line with its numbers blanked, so that "Page 3" and "Page 4" are the same running footer."""
    return re.sub(r"\d+", "#", line.lower())
