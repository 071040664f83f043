"""The searchable index in memory: passages, their vectors and the articles they come from.

`Store` adds and removes articles, searches by meaning (FAISS) and by keyword (BM25, keyword.py),
filters by article, and reads the full texts back. Opening and saving go through index/disk.py,
which owns the folder's format: manifest, checksums, generations, locks, moving a damaged index
aside and deleting leftovers. Passage metadata lives in memory; document texts are read from
SQLite when asked for. Search is exact below `ann_threshold` passages (default 50,000, or
QA_ANN_THRESHOLD) and approximate past it, tuned to a recall@10 of 0.95; the switch happens when
the store is saved. One writer at a time.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import ann, disk
from .ann import VectorIndexInfo
from .chunking import ChunkingParams
from .embedding import Embedder
from .errors import CorruptIndexError, IndexMismatchError, IndexWriteError
from .files import fsync
from .filters import SearchFilter
from .keyword import KeywordIndex
from .types import Chunk, Document, DocumentInfo, Passage

log = logging.getLogger(__name__)


class Store:
    """A searchable index of passages; build it with `create` or load it with `open`."""

    def __init__(self, index_dir: Path, embedder: Embedder, chunking: ChunkingParams, dim: int,
                 ann_threshold: int | None = None):
        # Use Store.create / Store.open: this only sets up an empty store.
        self.index_dir = Path(index_dir)
        self.embedder = embedder
        self.chunking = chunking
        self.dim = dim
        # From this many passages on, saving switches search to an approximate index.
        self.ann_threshold = ann.ann_threshold(ann_threshold)
        self.generation = 0
        self.created = self.updated = disk.now()
        self._docs: dict[str, DocumentInfo] = {}
        self._chunks: list[Chunk] = []           # row i of the FAISS index is self._chunks[i]
        self._vectors = ann.flat_index(dim)
        self.vector_index = VectorIndexInfo()    # what self._vectors is, as the manifest records it
        self._texts: dict[str, str] = {}         # texts not yet saved to the current SQLite file
        # Read-only connection to the SQLite file of the loaded generation. Held open so that texts
        # stay readable (on POSIX) even after another process saves and deletes that generation.
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        # Lookups built on first use and dropped on every change:
        self._keyword: KeywordIndex | None = None
        self._rows: dict[str, int] | None = None          # passage id -> row
        self._by_source: dict[str, str] | None = None     # source (also duplicates) -> doc_id
        self._masks: dict[SearchFilter, np.ndarray] = {}   # passages each recent filter allows

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def create(cls, index_dir: str | os.PathLike[str], embedder: Embedder,
               chunking: ChunkingParams | None = None, *, ann_threshold: int | None = None) -> Store:
        """A new, empty index; nothing is written (an existing index there is replaced) until `save`.

        `ann_threshold`: passages from which search is approximate (None: QA_ANN_THRESHOLD or 50,000).
        """
        return cls(Path(index_dir), embedder, chunking or ChunkingParams(), int(embedder.dim), ann_threshold)

    @classmethod
    def open_or_create(cls, index_dir: str | os.PathLike[str], embedder: Embedder,
                       chunking: ChunkingParams | None = None, *, ann_threshold: int | None = None) -> Store:
        if (Path(index_dir) / disk.MANIFEST).exists():
            return cls.open(index_dir, embedder, ann_threshold=ann_threshold)
        return cls.create(index_dir, embedder, chunking, ann_threshold=ann_threshold)

    @classmethod
    def open(cls, index_dir: str | os.PathLike[str], embedder: Embedder, *,
             ann_threshold: int | None = None) -> Store:
        """Load an index, checking its format, its embedder, its manifest's and every file's checksum.

        A damaged index is moved aside (nothing is deleted) and `CorruptIndexError` says where, so that
        the next `qa ingest` builds a fresh one: never a silently wrong answer. Before that verdict the
        index is read once more under the save lock, as a save in another process may have switched
        generations between our reads. Leftovers of interrupted saves go when no save is running.
        The vector index is used as saved; `ann_threshold` applies from the next `save`.
        """
        index_dir = Path(index_dir)
        try:
            store = cls._load(index_dir, embedder, ann_threshold)
        except disk.Damaged as first:
            with disk.save_lock(index_dir, wait=disk.LOCK_WAIT) as held:
                if not held:
                    raise CorruptIndexError(f"{first}; another process has been saving this index for "
                                            f"{disk.LOCK_WAIT:.0f} s: try again when it is done") from None
                try:
                    store = cls._load(index_dir, embedder, ann_threshold)
                except disk.Damaged as damaged:
                    raise CorruptIndexError(f"{damaged}. {disk.move_aside(index_dir)}") from None
        disk.remove_leftovers(index_dir)
        return store

    @classmethod
    def _load(cls, index_dir: Path, embedder: Embedder, ann_threshold: int | None = None) -> Store:
        import faiss

        saved = disk.read(index_dir)
        if saved.embedder_name != embedder.name or saved.dim != int(embedder.dim):
            raise IndexMismatchError(
                f"the index at {index_dir} was built with the embedder {saved.embedder_name!r} ({saved.dim} "
                f"dimensions), not {embedder.name!r} ({embedder.dim} dimensions); use that embedder (a server's: "
                f"QA_EMBED_URL and QA_EMBED_MODEL), "
                f"or {disk.rebuild_hint(index_dir)}")
        disk.verify(index_dir, saved.files)

        store = cls(index_dir, embedder, saved.chunking, saved.dim, ann_threshold)
        store.generation, store._docs, store.vector_index = saved.generation, saved.documents, saved.vectors
        store.created, store.updated = saved.created, saved.updated
        try:
            store._vectors = faiss.read_index(str(index_dir / saved.vectors_file))
            store._db = disk.connect(index_dir / saved.database_file)
            store._chunks = disk.read_chunks(store._db)
        except (RuntimeError, sqlite3.Error) as e:
            raise disk.Damaged(f"cannot read the index at {index_dir} ({e})") from None
        if (store._vectors.ntotal != len(store._chunks) or store._vectors.d != saved.dim
                or saved.passages != len(store._chunks) or ann.kind_of(store._vectors) != saved.vectors.kind
                or Counter(c.doc_id for c in store._chunks)
                != Counter({i: d.passages for i, d in saved.documents.items()})):
            raise disk.Damaged(f"the files of the index at {index_dir} do not agree with each other")
        if saved.keyword_prefix is not None:
            try:
                store._keyword = KeywordIndex.load(index_dir, saved.keyword_prefix, len(store._chunks))
            except (OSError, ValueError, KeyError) as e:
                raise disk.Damaged(f"cannot read the keyword index {index_dir / saved.keyword_prefix}.* ({e})") from None
        return store

    # -- reading ---------------------------------------------------------------------------------

    @property
    def embedder_name(self) -> str:
        return self.embedder.name

    def __len__(self) -> int:
        return len(self._chunks)

    def __repr__(self) -> str:
        return (f"Store({str(self.index_dir)!r}, {len(self._docs)} documents, {len(self)} passages, "
                f"generation {self.generation})")

    def search(self, query: str, k: int = 5, filters: SearchFilter | None = None) -> list[Passage]:
        """The `k` passages closest in meaning to `query` (among those `filters` allows); score is the cosine."""
        if not query.strip() or k <= 0 or not self._chunks:
            return []
        return self.search_vector(self.embedder.embed([query])[0], k, filters)

    def search_vector(self, vector: np.ndarray, k: int = 5, filters: SearchFilter | None = None) -> list[Passage]:
        if k <= 0 or not self._chunks:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.dim:
            raise ValueError(f"query vector has {query.shape[1]} dimensions, the index {self.dim}")
        allowed = self.allowed_rows(filters)
        if allowed is None:
            scores, rows = self._vectors.search(query, min(k, len(self._chunks)))
        else:
            scores, rows = ann.search_rows(self._vectors, query, min(k, int(allowed.sum())), np.flatnonzero(allowed))
        return [self._passage(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]

    def allowed_rows(self, filters: SearchFilter | None) -> np.ndarray | None:
        """A boolean mask over passages: those of the articles `filters` allows; None for no filter."""
        if not filters:
            return None
        with self._lock:
            if filters not in self._masks:
                allowed = {d.doc_id for d in self._docs.values() if filters.allows(d)}
                if len(self._masks) > 32:
                    self._masks.clear()
                self._masks[filters] = np.fromiter((c.doc_id in allowed for c in self._chunks), dtype=bool,
                                                   count=len(self._chunks))
            return self._masks[filters]

    def count(self, filters: SearchFilter | None = None) -> int:
        """How many articles `filters` allows (all of them for no filter)."""
        return sum(1 for d in self._docs.values() if not filters or filters.allows(d))

    @property
    def has_keyword_index(self) -> bool:
        """Whether the BM25 index is in memory, loaded with the index or built since the last change."""
        return self._keyword is not None

    def keyword_search(self, query: str, k: int = 5, filters: SearchFilter | None = None, *,
                       fuzzy_names: bool = False) -> list[Passage]:
        """The `k` best BM25 matches for `query`'s words; passages sharing no word are left out.

        `fuzzy_names`: also search the index's spellings of the names in `query` (index/names.py).
        """
        found = self._keyword_index().search(query, k, fuzzy_names=fuzzy_names, rows=self.allowed_rows(filters))
        return [self._passage(row, score) for row, score in found]

    def query_terms(self, query: str, fuzzy_names: bool = False) -> dict[str, float]:
        """The index terms keyword search looks for in `query`, each with its idf (how rare it is)."""
        index = self._keyword_index()
        return index.idf(index.query_terms(query, fuzzy_names))

    def _keyword_index(self) -> KeywordIndex:
        """The BM25 index as loaded, or built now (a while for a large store) if it was not saved."""
        with self._lock:
            if self._keyword is None:
                log.info("building the keyword index of %d passages", len(self._chunks))
                self._keyword = KeywordIndex().build([c.text for c in self._chunks])
            return self._keyword

    def passages(self, ids: list[str]) -> list[Passage]:
        """Passages by id, in the order asked, with score 0.

        Unknown ids are skipped (a passage id goes away when its document changes), so the result
        can be shorter than `ids`.
        """
        with self._lock:
            if self._rows is None:
                self._rows = {f"{c.doc_id}:{c.index}": row for row, c in enumerate(self._chunks)}
            rows = self._rows
        return [self._passage(rows[i]) for i in ids if i in rows]

    def documents(self) -> list[DocumentInfo]:
        return sorted(self._docs.values(), key=lambda d: d.source)

    def document(self, doc_id: str) -> Document:
        """The full article, e.g. to show a passage in context; KeyError for an unknown id."""
        info = self._docs[doc_id]
        text = self._texts.get(doc_id)
        if text is None:
            text = self._saved_text(doc_id)
        return Document(doc_id, info.source, info.title, info.date, text, info.sha256)

    def _saved_text(self, doc_id: str) -> str:
        assert self._db is not None, "a document neither in memory nor saved"
        with self._lock:
            return disk.saved_text(self._db, doc_id)

    def document_info(self, doc_id: str) -> DocumentInfo | None:
        return self._docs.get(doc_id)

    def document_for(self, source: str) -> DocumentInfo | None:
        """The document indexed from `source`, as its main source or as an exact duplicate."""
        if self._by_source is None:
            self._by_source = {s: d.doc_id for d in self._docs.values() for s in (d.source, *d.also_at)}
        doc_id = self._by_source.get(source)
        return None if doc_id is None else self._docs[doc_id]

    def _passage(self, row: int, score: float = 0.0) -> Passage:
        c = self._chunks[row]
        d = self._docs[c.doc_id]
        return Passage(id=f"{c.doc_id}:{c.index}", doc_id=c.doc_id, source=d.source, title=d.title,
                       date=d.date, text=c.text, start=c.start, end=c.end, score=score)

    # -- changing --------------------------------------------------------------------------------

    def add_document(self, doc: Document, chunks: list[Chunk], vectors: np.ndarray) -> None:
        """Add an article with its chunks and their vectors (row i embeds chunks[i])."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if doc.doc_id in self._docs:
            raise ValueError(f"document {doc.doc_id} ({doc.source}) is already in the index")
        if vectors.shape != (len(chunks), self.dim):
            raise ValueError(f"expected vectors of shape {(len(chunks), self.dim)}, got {vectors.shape}")
        if [(c.doc_id, c.index) for c in chunks] != [(doc.doc_id, i) for i in range(len(chunks))]:
            raise ValueError(f"chunks do not belong to document {doc.doc_id} in order")
        if len(chunks):
            self._vectors.add(vectors)
        self._chunks.extend(chunks)
        self._docs[doc.doc_id] = DocumentInfo(doc.doc_id, doc.source, doc.title, doc.date, doc.sha256, len(chunks))
        self._texts[doc.doc_id] = doc.text
        self._changed()

    def remove_document(self, doc_id: str) -> None:
        """Remove an article and its passages; KeyError for an unknown id."""
        del self._docs[doc_id]
        rows = [row for row, c in enumerate(self._chunks) if c.doc_id == doc_id]
        if rows:
            ann.remove_rows(self._vectors, np.asarray(rows, dtype=np.int64))  # the others keep their order
            self._chunks = [c for c in self._chunks if c.doc_id != doc_id]
        self._texts.pop(doc_id, None)
        self._changed()

    def record_duplicate(self, doc_id: str, source: str) -> None:
        """Note that `source` holds exactly the text of an indexed document."""
        info = self._docs[doc_id]
        if source != info.source and source not in info.also_at:
            self._docs[doc_id] = replace(info, also_at=(*info.also_at, source))
            self._changed(search=False)

    def remove_source(self, source: str) -> bool:
        """Forget `source`; its document goes too unless a duplicate elsewhere keeps it.

        Returns True if a document was removed. KeyError if `source` is not in the index.
        """
        info = self.document_for(source)
        if info is None:
            raise KeyError(source)
        if info.source == source and not info.also_at:
            self.remove_document(info.doc_id)
            return True
        if info.source == source:
            info = replace(info, source=info.also_at[0], also_at=info.also_at[1:])
        else:
            info = replace(info, also_at=tuple(s for s in info.also_at if s != source))
        self._docs[info.doc_id] = info
        self._changed(search=False)
        return False

    def _changed(self, search: bool = True) -> None:
        self._by_source = None
        self._masks = {}
        if search:
            self._keyword = self._rows = None

    # -- saving ----------------------------------------------------------------------------------

    def save(self, keyword_index: bool = True) -> None:
        """Write a new generation of the index; the previous one stays valid until the last step.

        First the vector index is fitted to the store's size: past `ann_threshold` it becomes (or
        is retrained as) an approximate index, which takes a while for large stores. The BM25 index
        is built if needed and saved too, unless `keyword_index` is False (a quicker save, e.g. a
        checkpoint of an ingest): then whoever opens this generation builds it on first use.

        Holds the writer lock throughout. A save that fails (a full disk, Ctrl-C) deletes what it had
        written, so the index on disk stays as it was; files left by a save killed outright are
        ignored by `open` and deleted by the next open or save.
        """
        folder = self.index_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with disk.save_lock(folder):
                before = {p.name for p in folder.iterdir()}
                try:
                    self._save(folder, keyword_index)
                except BaseException:
                    disk.remove_new_leftovers(folder, before)
                    raise
        except (OSError, sqlite3.Error, RuntimeError) as e:  # RuntimeError: faiss's failed write
            reason = (e.strerror if isinstance(e, OSError) else None) or e
            raise IndexWriteError(f"cannot save the index in {folder} ({reason}): free some disk space or "
                                  "check the folder's permissions, then try again") from e

    def _save(self, folder: Path, keyword_index: bool) -> None:
        import faiss

        self._vectors, self.vector_index = ann.fit(self._vectors, self.vector_index, self.ann_threshold)
        # Past every generation on disk, so that files left by an interrupted save are never reused.
        generation = max([self.generation, *disk.generations(folder)]) + 1
        vectors_name, db_name, keyword_prefix = disk.file_names(generation)
        vectors_path, db_path = folder / vectors_name, folder / db_name
        faiss.write_index(self._vectors, str(vectors_path))
        fsync(vectors_path)
        count = disk.write_database(db_path, self._document_texts(), self._chunks)
        assert count == len(self._docs), "a document neither in memory nor saved"
        fsync(db_path)
        written = [vectors_path, db_path]
        if keyword_index:
            written += self._keyword_index().save(folder, keyword_prefix)
            for path in written[2:]:
                fsync(path)

        updated = disk.now()
        manifest = disk.Manifest(
            embedder_name=self.embedder.name, dim=self.dim, chunking=self.chunking, generation=generation,
            documents=self._docs, passages=len(self._chunks), vectors=self.vector_index,
            files=disk.checksums(written), created=self.created, updated=updated)
        disk.write(folder, manifest)
        if self._db is not None:
            self._db.close()
        self.generation, self.updated, self._db = generation, updated, disk.connect(db_path)
        self._texts.clear()
        disk.remove_stale(folder, keep={disk.MANIFEST, *manifest.files})
        log.info("saved %s", self)

    def _document_texts(self) -> Iterator[tuple[DocumentInfo, str]]:
        """Every document with its text: those saved before streamed in one scan of the loaded SQLite file
        (under the lock, which that connection needs), then those added since."""
        if self._db is not None and len(self._texts) < len(self._docs):
            with self._lock:
                for doc_id, text in disk.saved_texts(self._db):
                    if doc_id not in self._texts and (d := self._docs.get(doc_id)):
                        yield d, text
        for d in self._docs.values():
            if d.doc_id in self._texts:
                yield d, self._texts[d.doc_id]
