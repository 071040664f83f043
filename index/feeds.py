"""RSS and Atom feeds to articles: each entry one article, with its link, title and date.

feedparser reads the feed from bytes we hand it (never from a URL: it would fetch it without our
limits) and sanitizes the HTML in entries. An entry that carries the whole article (`content`, or a
long summary) is indexed as it is; one that carries only a summary has its full text fetched from
its link when fetching is on (`FetchPolicy`), and keeps its summary otherwise. An entry is known by
its link: ingesting the feed again skips the entries already indexed without downloading them,
unless the entry says it was updated after the date the index holds.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator

from .errors import RejectedFile
from .fetch import Fetched, FetchPolicy, check_url, fetch
from .loading import extract_html, to_document
from .sources import Pending
from .types import Document

log = logging.getLogger(__name__)

FULL_TEXT_WORDS = 150     # an entry's text this long is the article, not a teaser
_BLOCKS = {"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr", "section", "article",
           "figure", "pre", "ul", "ol", "table"}
_FEED_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:rss|feed|rdf:RDF)\b",
                         re.S | re.I)


def looks_like_feed(data: bytes, content_type: str = "") -> bool:
    """Whether a download or file is an RSS/Atom feed rather than a page."""
    if content_type in ("application/rss+xml", "application/atom+xml", "application/rdf+xml"):
        return True
    return bool(_FEED_START.match(data[:4096]))


def feed_items(data: bytes, source: str, policy: FetchPolicy) -> Iterator[Pending]:
    """The entries of the feed in `data` (read from `source`) as articles to ingest."""
    import feedparser

    parsed = feedparser.parse(data)
    if not parsed.entries:
        problem = f" ({parsed.bozo_exception})" if parsed.get("bozo") else ""
        raise RejectedFile(source, f"not an RSS or Atom feed, or a feed without entries{problem}")
    for number, entry in enumerate(parsed.entries, 1):
        link = _link(entry)
        title = " ".join(str(entry.get("title") or "").split()) or None
        date = _date(entry, "published_parsed") or _date(entry, "updated_parsed")
        text = _entry_text(entry)
        entry_source = link or f"{source}#entry-{number}"
        needs_page = link is not None and len(text.split()) < FULL_TEXT_WORDS and policy.enabled
        yield Pending(entry_source, _loader(entry_source, link if needs_page else None, text, title, date, policy),
                      fetches=needs_page, updated=_date(entry, "updated_parsed"),
                      teaser_sha256=_teaser_sha256(text, entry_source) if needs_page else None)


def _loader(source: str, link: str | None, text: str, title: str | None, date: str | None, policy: FetchPolicy):
    def load() -> Document:
        body = text
        if link is not None:
            page_text, page_title, page_date = page_article(link, policy)
            body = page_text if len(page_text.split()) > len(text.split()) else text
            return to_document(body, source, title=title or page_title, date=date or page_date)
        if not body.strip():
            raise RejectedFile(source, "a feed entry without text (turn on --fetch to download its page)")
        return to_document(body, source, title=title, date=date)
    return load


def _teaser_sha256(text: str, source: str) -> str | None:
    """The content hash the entry's summary has as an article: indexed like that, it is worth fetching the page."""
    try:
        return to_document(text, source).sha256
    except RejectedFile:
        return None


def page_article(url: str, policy: FetchPolicy) -> tuple[str, str | None, str | None]:
    """Text, title and date of the article at `url` (an HTML page or a PDF)."""
    return article_of(fetch(url, policy))


def article_of(page: Fetched) -> tuple[str, str | None, str | None]:
    """Text, title and date of a downloaded article page (HTML or PDF)."""
    url = page.url
    if page.content_type == "application/pdf" or page.body.startswith(b"%PDF-"):
        from .pdf import pdf_text

        return pdf_text(page.body, lambda reason: RejectedFile(url, reason))
    if page.content_type and not any(t in page.content_type for t in ("html", "xml", "text/plain")):
        raise RejectedFile(url, f"not an article page but {page.content_type}")
    return extract_html(page.body)


def _link(entry) -> str | None:
    link = str(entry.get("link") or "").strip()
    if not link:
        return None
    try:
        check_url(link, FetchPolicy(allow_private=True))   # the scheme only: the address is checked on fetching
    except RejectedFile:
        log.warning("ignored the link %r of a feed entry: not http(s)", link[:200])
        return None
    return link


def _date(entry, key: str) -> str | None:
    parsed = dict.get(entry, key)   # not entry.get: feedparser maps a missing "updated" to "published"
    if not parsed:
        return None
    try:
        return time.strftime("%Y-%m-%d", parsed)
    except (TypeError, ValueError):
        return None


def _entry_text(entry) -> str:
    """The longest text an entry carries (its content or its summary), as plain text."""
    values = [c.get("value", "") for c in entry.get("content") or []] + [entry.get("summary") or ""]
    texts = [html_fragment_text(v) if "<" in v else v for v in values if v]
    return max(texts, key=len, default="")


def html_fragment_text(fragment: str) -> str:
    """Plain text of an HTML fragment, a paragraph per block element; scripts and styles dropped."""
    from lxml import etree, html

    try:
        root = html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, ValueError):
        return re.sub(r"<[^>]*>", " ", fragment)
    for bad in root.xpath("//script|//style|//iframe|//object|//noscript|//template"):
        bad.drop_tree()
    for element in root.iter():
        if element.tag in _BLOCKS:
            element.tail = "\n\n" + (element.tail or "")
        elif element.tag == "br":
            element.tail = "\n" + (element.tail or "")
    lines = (" ".join(line.split()) for line in root.text_content().split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
