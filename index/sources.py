"""What `ingest` is given, to a stream of articles to index: files, folders, feeds, archives and URLs.

Each article comes as a `Pending`: the key it is indexed under (`source`: an absolute path, a URL,
or "<archive>#L<line>") and a function that loads it. Loading is put off so that the ingest can skip
an article it already holds before paying for it: a feed entry whose link is indexed is not
downloaded again. Archives and feeds are read lazily, one article at a time.

Inputs: a path (a file of any supported type, or a folder searched for them), or an http(s) URL,
which is downloaded (giving a URL is asking for it to be fetched) and read as a feed or an article
page by what it holds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputError, RejectedFile
from .loading import FEED_SUFFIXES, iter_files, load_file, max_file_bytes, to_document
from .types import Document, DocumentInfo

if TYPE_CHECKING:
    from .archives import ArchiveFields
    from .fetch import FetchPolicy


@dataclass(frozen=True)
class Pending:
    """An article to index, not loaded yet. `load` raises `RejectedFile` for one that cannot be indexed."""

    source: str
    load: Callable[[], Document]
    fetches: bool = False        # loading downloads a page: skipped when `source` is indexed already
    updated: str | None = None   # when the feed says the article last changed (ISO date), if it says
    teaser_sha256: str | None = None  # the content hash of the feed's summary: indexed as that, fetch the page

    def worth_loading(self, indexed: DocumentInfo | None) -> bool:
        """Whether to load an article whose source is indexed as `indexed` (None: not indexed)."""
        if indexed is None or not self.fetches:
            return True
        return bool(self.updated and self.updated > (indexed.date or "")) or indexed.sha256 == self.teaser_sha256


def is_url(value: str | os.PathLike[str]) -> bool:
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


def source_file(source: str) -> Path | None:
    """The local file an indexed source comes from (an archive for its rows); None for a web article."""
    if is_url(source):
        return None
    path, _, row = source.rpartition("#")
    if path and row[:1] in ("L", "R", "e") and not Path(source).exists():
        return Path(path)
    return Path(source)


def check_inputs(inputs: Iterable[str | os.PathLike[str]]) -> tuple[list[str], list[Path]]:
    """URLs and files to read; `InputError` for a path that does not exist or a URL of another scheme."""
    urls, paths = [], []
    for raw in inputs:
        if is_url(raw):
            urls.append(str(raw).strip())
        elif isinstance(raw, str) and "://" in raw[:12] or str(raw).lower().startswith(("file:", "ftp:")):
            raise InputError(f"{raw}: only http:// and https:// addresses are fetched")
        else:
            paths.append(raw)
    return urls, list(iter_files(paths)) if paths else []


def pending(urls: list[str], files: list[Path], fields: ArchiveFields, policy: FetchPolicy) -> Iterator[Pending]:
    """Every article in `urls` and `files`, in order, loaded lazily."""
    from dataclasses import replace

    for url in urls:
        yield from _url_items(url, replace(policy, enabled=True))
    for path in files:
        yield from _file_items(path, fields, policy)


def _file_items(path: Path, fields: ArchiveFields, policy: FetchPolicy) -> Iterator[Pending]:
    from .archives import archive_items, is_archive
    from .feeds import feed_items

    source = str(path.resolve())
    try:
        if is_archive(path):
            yield from archive_items(Path(source), fields, max_file_bytes())
        elif path.suffix.lower() in FEED_SUFFIXES:
            yield from feed_items(_read_file(path), source, policy)
        else:
            yield Pending(source, lambda: load_file(source))
    except RejectedFile as e:
        yield _failed(e)


def _read_file(path: Path) -> bytes:
    limit = max_file_bytes()
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise RejectedFile(str(path), f"cannot be read: {e.strerror or e}") from None
    if len(data) > limit:
        raise RejectedFile(str(path), f"over the {limit / 1e6:g} MB limit for one file (QA_MAX_FILE_MB)")
    return data


def _url_items(url: str, policy: FetchPolicy) -> Iterator[Pending]:
    from .feeds import article_of, feed_items, looks_like_feed
    from .fetch import fetch

    try:
        page = fetch(url, policy)
        if looks_like_feed(page.body, page.content_type):
            yield from feed_items(page.body, url, policy)
            return
    except RejectedFile as e:
        yield _failed(e)
        return

    def load() -> Document:
        text, title, date = article_of(page)
        return to_document(text, url, title=title, date=date)
    yield Pending(url, load)


def _failed(error: RejectedFile) -> Pending:
    def load() -> Document:
        raise error
    return Pending(error.source, load)
