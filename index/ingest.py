"""Bring an index up to date with files on disk: load, chunk, embed, save.

A document is known by its source path (resolved, absolute). Unchanged files cost a hash and no
embedding; changed files are re-embedded; an exact copy of an indexed text under another name is
recorded as a duplicate, not indexed twice. Bad files are reported, never fatal. The index is
saved once at the end, and only if something changed. One ingest at a time writes to an index
folder, in this process or another (a lock file in the folder): two writers at once would both build
on the same generation, and the second save would drop what the first added.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .chunking import ChunkingParams, chunk_document
from .embedding import Embedder, default_embedder
from .errors import IndexMismatchError, InputError, ModelError, RejectedFile
from .loading import SUPPORTED_SUFFIXES, iter_files, load_file
from .store import Store
from .types import Chunk, Document, IngestReport, Rejection

log = logging.getLogger(__name__)

WRITE_LOCK = "write.lock"


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
) -> IngestReport:
    """Add the articles under `paths` to the index in `index_dir`, creating it if needed.

    `embedder` defaults to the packaged all-MiniLM-L6-v2; `chunking` to the index's own parameters
    (or the defaults for a new index). `prune` drops documents whose file is gone; `rebuild`
    starts a fresh index, replacing whatever is there (also an incompatible or corrupt one).
    """
    started = time.perf_counter()
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise InputError("no files or folders given to ingest")
    files = list(iter_files(paths))
    if not files:
        raise InputError(f"no {' '.join(SUPPORTED_SUFFIXES)} files in {', '.join(map(str, paths))}")
    with writing(index_dir):
        return _update(files, index_dir, embedder, chunking, prune, rebuild, progress, batch_size, started)


def _update(files: list[Path], index_dir: str | os.PathLike[str], embedder: Embedder | None,
            chunking: ChunkingParams | None, prune: bool, rebuild: bool, progress: bool, batch_size: int,
            started: float) -> IngestReport:
    embedder = embedder or default_embedder()
    if rebuild:
        store = Store.create(index_dir, embedder, chunking)
    else:
        store = Store.open_or_create(index_dir, embedder, chunking)
        if chunking is not None and chunking != store.chunking:
            raise IndexMismatchError(
                f"the index at {index_dir} was built with {store.chunking}, not {chunking}; "
                "ingest with --rebuild to chunk everything again")

    counts: Counter[str] = Counter()
    rejected: list[Rejection] = []
    todo: list[tuple[Document, list[Chunk]]] = []
    waiting: set[str] = set()                    # doc_ids in todo
    duplicates: list[tuple[str, str]] = []       # (doc_id, source), recorded once todo is added
    changed = rebuild
    for path in files:
        source = str(path.resolve())
        try:
            doc = load_file(source)
        except RejectedFile as e:
            log.warning("skipped %s", e)
            rejected.append(Rejection(e.source, e.reason))
            continue
        known = store.document_for(source)
        if known is not None and known.sha256 == doc.sha256:
            counts["unchanged"] += 1
            continue
        if known is not None:
            store.remove_source(source)
            changed = True
        if store.document_info(doc.doc_id) is not None or doc.doc_id in waiting:
            duplicates.append((doc.doc_id, source))
            counts["duplicates"] += 1
            continue
        todo.append((doc, chunk_document(doc, store.chunking)))
        waiting.add(doc.doc_id)
        counts["updated" if known is not None else "added"] += 1

    texts = [c.text for _, chunks in todo for c in chunks]
    embed_started = time.perf_counter()
    vectors = _embed(embedder, texts, store.dim, batch_size, progress)
    embed_seconds = time.perf_counter() - embed_started
    row = 0
    for doc, chunks in todo:
        store.add_document(doc, chunks, vectors[row:row + len(chunks)])
        row += len(chunks)
    for doc_id, source in duplicates:
        store.record_duplicate(doc_id, source)
    changed = changed or bool(todo or duplicates)

    if prune:  # after adding, so that a moved file becomes the new home of its text, not a re-embed
        for info in store.documents():
            for source in (info.source, *info.also_at):
                if not Path(source).exists():
                    counts["removed"] += store.remove_source(source)
                    changed = True

    if changed:
        store.save()
    report = IngestReport(
        added=counts["added"], updated=counts["updated"], unchanged=counts["unchanged"],
        removed=counts["removed"], duplicates=counts["duplicates"], rejected=tuple(rejected),
        chunks_embedded=len(texts), total_chunks=len(store),
        seconds=time.perf_counter() - started, embed_seconds=embed_seconds,
    )
    log.info("ingest into %s: %s", index_dir, report)
    return report


def _embed(embedder: Embedder, texts: list[str], dim: int, batch_size: int, progress: bool) -> np.ndarray:
    """Embed in batches across documents, with a progress bar over chunks.

    Texts are embedded in order of length, as sentence-transformers does within one call, so each
    batch pads to similar lengths: with small batches for a live progress bar, this keeps ingest as
    fast as one big `encode` call.
    """
    from tqdm.auto import tqdm

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    with tqdm(total=len(texts), desc="embedding", unit="chunk", disable=not progress or not texts) as bar:
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            block = np.asarray(embedder.embed([texts[i] for i in rows]), dtype=np.float32)
            if block.shape != (len(rows), dim):
                raise ModelError(f"the embedder {embedder.name!r} returned shape {block.shape} "
                                 f"for {len(rows)} texts, expected ({len(rows)}, {dim})")
            vectors[rows] = block
            bar.update(len(rows))
    return vectors
