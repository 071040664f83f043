"""Bring an index up to date with files on disk: load, chunk, embed, save, in a stream of groups.

A document is known by its source: a file's resolved absolute path, a web article's URL, or an
archive row ("<archive>#L<line>" when the row has no URL); index/sources.py turns the inputs into
articles. Unchanged files cost a hash and no embedding; changed files are re-embedded; a feed entry
whose link is indexed is not downloaded again (unless the feed says it was updated since); an exact
copy of an indexed text under another name is recorded as a duplicate, not indexed twice. Bad
files, rows and links are reported, never fatal.

Files are read and chunked one by one and embedded in groups of about `group_chunks` passages, each
group added to the store once embedded: besides the index itself, memory holds one group. The
store is saved as it grows (a checkpoint is an ordinary atomic save) and at the end, if anything
changed. An ingest stopped by a crash or `kill` loses the work since its last checkpoint, one
stopped with Ctrl-C saves what it has embedded first: running it again skips what is indexed.
One ingest at a time writes to an index folder, in this process or another (a lock file in the
folder): two writers at once would both build on the same generation, and the second save would
drop what the first added.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .chunking import ChunkingParams, chunk_document
from .embedding import Embedder, default_embedder
from .errors import IndexMismatchError, InputError, ModelError, RejectedFile
from .archives import ArchiveFields
from .fetch import FetchPolicy
from .loading import ARTICLE_SUFFIXES, SUPPORTED_SUFFIXES
from .sources import Pending, check_inputs, pending, source_file
from .disk import WRITE_LOCK
from .store import Store
from .types import Chunk, Document, IngestReport, Rejection

log = logging.getLogger(__name__)

# A checkpoint is a full save, which takes longer as the index grows (about 3 s at 100,000
# passages): checkpoints are spaced so that saving takes at most a tenth of the ingest's time.
_SAVE_SHARE = 0.1


def writing(index_dir: str | os.PathLike[str]):
    """The lock a writer of the index in `index_dir` holds, across threads and processes.

    Re-entrant within a thread, so a caller can hold it over an ingest and the reload that follows.
    """
    from filelock import FileLock

    folder = Path(index_dir).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(folder / WRITE_LOCK, is_singleton=True)


def ingest(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    index_dir: str | os.PathLike[str],
    embedder: Embedder | None = None,
    *,
    chunking: ChunkingParams | None = None,
    prune: bool = False,
    rebuild: bool = False,
    progress: bool = True,
    batch_size: int = 64,
    group_chunks: int = 512,
    checkpoint_seconds: float = 60.0,
    checkpoint_chunks: int | None = None,
    ann_threshold: int | None = None,
    fields: ArchiveFields | None = None,
    fetch: FetchPolicy | None = None,
) -> IngestReport:
    """Add the articles under `paths` to the index in `index_dir`, creating it if needed.

    `embedder` defaults to the packaged all-MiniLM-L6-v2; `chunking` to the index's own parameters
    (or the defaults for a new index). `prune` drops documents whose file is gone; `rebuild`
    starts a fresh index, replacing whatever is there (also an incompatible or corrupt one).
    Passages are embedded `batch_size` at a time in groups of about `group_chunks`. The index is
    saved at least `checkpoint_seconds` apart (longer when saving gets slow), and also whenever
    `checkpoint_chunks` passages were embedded since the last save, if given. `ann_threshold`: see
    `Store.create`. `paths` may hold http(s) URLs (feeds or article pages, downloaded under `fetch`'s
    limits); `fields` names the fields of JSON Lines and CSV archives; `fetch` says whether the links of
    feed entries that hold only a summary are downloaded (off by default).
    """
    started = time.perf_counter()
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise InputError("no files or folders given to ingest")
    urls, files = check_inputs(paths)
    if not urls and not files:
        raise InputError(f"no {' '.join(SUPPORTED_SUFFIXES)} files in {', '.join(map(str, paths))}")
    # A count known up front only when every input is one article.
    total = len(files) if not urls and all(f.suffix.lower() in ARTICLE_SUFFIXES for f in files) else None
    items = pending(urls, files, fields or ArchiveFields(), fetch or FetchPolicy())

    with writing(index_dir):
        embedder = embedder or default_embedder()
        if rebuild:
            store = Store.create(index_dir, embedder, chunking, ann_threshold=ann_threshold)
        else:
            store = Store.open_or_create(index_dir, embedder, chunking, ann_threshold=ann_threshold)
            if chunking is not None and chunking != store.chunking:
                raise IndexMismatchError(
                    f"the index at {index_dir} was built with {store.chunking}, not {chunking}; "
                    "ingest with --rebuild to chunk everything again")

        run = _Run(store, embedder, batch_size, checkpoint_seconds, checkpoint_chunks, unsaved=rebuild,
                   keyword_index_missing=len(store) > 0 and not store.has_keyword_index)  # e.g. after a Ctrl-C
        try:
            with tqdm(total=total, desc="indexing", unit="article", disable=not progress) as bar:
                for number, item in enumerate(items, 1):
                    if not run.scan(item):
                        bar.update(1)  # nothing to embed: done
                    if run.group.chunks >= group_chunks:  # no checkpoint right before the final save
                        run.flush(bar, checkpoint=total is None or number < total)
                run.flush(bar, checkpoint=False)
                if prune:  # after adding, so that a moved file becomes the new home of its text, not a re-embed
                    run.prune()
                if run.unsaved or run.keyword_index_missing:
                    run.save(bar)
        except KeyboardInterrupt:  # after the bar is closed, so that the message gets a line of its own
            run.save_on_interrupt()
            raise
        report = IngestReport(
            added=run.counts["added"], updated=run.counts["updated"], unchanged=run.counts["unchanged"],
            removed=run.counts["removed"], duplicates=run.counts["duplicates"], rejected=tuple(run.rejected),
            chunks_embedded=run.embedded, total_chunks=len(store),
            seconds=time.perf_counter() - started, embed_seconds=run.embed_seconds,
        )
        log.info("ingest into %s: %s (%d saves, %.1f s saving)", index_dir, report, run.saves, run.save_seconds)
        return report


@dataclass
class _Group:
    """Documents scanned but not yet embedded, and duplicates to record once they are added."""

    docs: list[tuple[Document, list[Chunk]]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)   # (doc_id, source)
    doc_ids: set[str] = field(default_factory=set)
    files: int = 0       # files whose passages are in the group
    chunks: int = 0


@dataclass
class _Run:
    """The state of one ingest: the group being filled, counts, and when the store was last saved."""

    store: Store
    embedder: Embedder
    batch_size: int
    checkpoint_seconds: float
    checkpoint_chunks: int | None
    unsaved: bool = False          # the store differs from what is on disk
    busy: bool = False             # the store is half-way through a change: not a state to save
    keyword_index_missing: bool = False  # the last save skipped the BM25 index
    group: _Group = field(default_factory=_Group)
    counts: Counter = field(default_factory=Counter)
    rejected: list[Rejection] = field(default_factory=list)
    embedded: int = 0
    embed_seconds: float = 0.0
    since_save: int = 0            # passages embedded since the last save
    saved_at: float = field(default_factory=time.monotonic)
    last_save_seconds: float = 0.0
    saves: int = 0
    save_seconds: float = 0.0

    def scan(self, item: Pending) -> bool:
        """Load and chunk one article into the group (True), or count it as unchanged, duplicate or rejected."""
        source = item.source
        known = self.store.document_for(source)
        if not item.worth_loading(known):
            self.counts["unchanged"] += 1   # a web article already indexed: not downloaded again
            return False
        try:
            doc = item.load()
        except RejectedFile as e:
            log.warning("skipped %s", e)
            self.rejected.append(Rejection(e.source, e.reason))
            return False
        if known is not None and known.sha256 == doc.sha256:
            self.counts["unchanged"] += 1
            return False
        if known is not None:
            self._change(self.store.remove_source, source)
        if self.store.document_info(doc.doc_id) is not None or doc.doc_id in self.group.doc_ids:
            self.group.duplicates.append((doc.doc_id, source))
            self.counts["duplicates"] += 1
            return False
        chunks = chunk_document(doc, self.store.chunking)
        self.group.docs.append((doc, chunks))
        self.group.doc_ids.add(doc.doc_id)
        self.group.chunks += len(chunks)
        self.group.files += 1
        self.counts["updated" if known is not None else "added"] += 1
        return True

    def flush(self, bar, checkpoint: bool = True) -> None:
        """Embed the group, add it to the store, and save if a checkpoint is due."""
        group, self.group = self.group, _Group()
        texts = [c.text for _, chunks in group.docs for c in chunks]
        started = time.perf_counter()
        vectors = _embed(self.embedder, texts, self.store.dim, self.batch_size)
        self.embed_seconds += time.perf_counter() - started

        def add() -> None:
            row = 0
            for doc, chunks in group.docs:
                self.store.add_document(doc, chunks, vectors[row:row + len(chunks)])
                row += len(chunks)
            for doc_id, source in group.duplicates:
                self.store.record_duplicate(doc_id, source)

        if group.docs or group.duplicates:
            self._change(add)
        self.embedded += len(texts)
        self.since_save += len(texts)
        bar.update(group.files)
        bar.set_postfix(passages=len(self.store), refresh=False)
        if checkpoint and self.unsaved and self._checkpoint_due():
            self.save(bar, keyword_index=False)  # the BM25 index, rebuilt whole each time, waits for the end

    def prune(self) -> None:
        for info in self.store.documents():
            for source in (info.source, *info.also_at):
                path = source_file(source)   # web articles stay: a page gone from a feed is still news
                if path is not None and not path.exists():
                    self.counts["removed"] += self._change(self.store.remove_source, source)

    def _checkpoint_due(self) -> bool:
        if self.checkpoint_chunks and self.since_save >= self.checkpoint_chunks:
            return True
        wait = max(self.checkpoint_seconds, self.last_save_seconds * (1 - _SAVE_SHARE) / _SAVE_SHARE)
        return time.monotonic() - self.saved_at >= wait

    def save(self, bar=None, keyword_index: bool = True) -> None:
        if bar is not None:
            bar.set_postfix(passages=len(self.store), saving="…")
        started = time.perf_counter()
        self.busy = True
        self.store.save(keyword_index=keyword_index)
        self.busy = self.unsaved = False
        self.keyword_index_missing = not keyword_index
        self.saves += 1
        self.last_save_seconds = time.perf_counter() - started
        self.save_seconds += self.last_save_seconds
        self.saved_at, self.since_save = time.monotonic(), 0
        if bar is not None:
            bar.set_postfix(passages=len(self.store))

    def save_on_interrupt(self) -> None:
        """Keep what was embedded before a Ctrl-C, unless it came in the middle of changing the store."""
        again = "run the same ingest again (without --rebuild) to continue"
        if self.unsaved and not self.busy:
            log.warning("interrupted: saving the %d passages indexed so far in %s; %s",
                        len(self.store), self.store.index_dir, again)
            self.save(keyword_index=False)
        elif self.saves:
            log.warning("interrupted: %s keeps what its last save held; %s", self.store.index_dir, again)

    def _change(self, func, *args):
        """Call `func`, which changes the store, marked as not a state to save if interrupted."""
        self.busy = True
        result = func(*args)
        self.busy, self.unsaved = False, True
        return result


def _embed(embedder: Embedder, texts: list[str], dim: int, batch_size: int) -> np.ndarray:
    """Embed in batches, in order of length.

    sentence-transformers sorts by length within one call, so each batch pads to similar lengths:
    doing the same across the group keeps small batches as fast as one big `encode` call.
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    # A remote embedder asks for calls of several requests' worth, to keep its parallel requests busy.
    batch_size = max(batch_size, getattr(embedder, "texts_per_call", 0))
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        rows = order[start:start + batch_size]
        block = np.asarray(embedder.embed([texts[i] for i in rows]), dtype=np.float32)
        if block.shape != (len(rows), dim):
            raise ModelError(f"the embedder {embedder.name!r} returned shape {block.shape} "
                             f"for {len(rows)} texts, expected ({len(rows)}, {dim})")
        vectors[rows] = block
    return vectors
