"""The on-disk index: passages, their vectors and the articles they come from.

Layout of an index folder (nothing is pickled):

    manifest.json             format version, embedder name and dimension, chunking parameters,
                              generation, documents (metadata and content hashes), sha256 of each data file
    vectors-000003.faiss      FAISS index over L2-normalized vectors (inner product is cosine): exact
                              (IndexFlatIP) up to `ann_threshold` passages, IVF past it (see ann.py)
    passages-000003.sqlite    tables `documents` (with full texts) and `passages` (row -> chunk)
    keyword-000003.*.npy|json the BM25 index (bm25s's arrays and vocabulary), unless the save skipped it

A save writes a new generation beside the old one, then atomically replaces the manifest, then
deletes what the manifest no longer names: a crash at any point leaves a loadable index. The
manifest carries a sha256 of each data file and one of its own body, so a damaged file is found on
open; the damaged index is then moved into a `broken-<time>` folder and the error says where.
Saves, and whatever moves or deletes files, hold an exclusive lock (the lock file `save.lock`); an
ingest holds another (`write.lock`) from start to end, so that one writer at a time changes the index
(index/ingest.py). Readers take no lock. Passage
metadata lives in memory; document texts are read from SQLite when asked for. Search is exact
below `ann_threshold` passages (default 50,000, or QA_ANN_THRESHOLD) and approximate past it, tuned
to a recall@10 of 0.95; the switch happens when the store is saved. One writer at a time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import ann
from .chunking import ChunkingParams
from .embedding import Embedder
from .errors import CorruptIndexError, IndexMismatchError, IndexNotFoundError, IndexWriteError, QAError
from .files import fsync as _fsync
from .files import is_temporary, locked, write_atomic
from .filters import SearchFilter
from .files import sha256_file as _sha256_file
from .keyword import KeywordIndex
from .types import Chunk, Document, DocumentInfo, Passage
from .ann import VectorIndexInfo

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SAVE_LOCK = "save.lock"  # held while a save, a move aside or a cleanup changes the folder's files
WRITE_LOCK = "write.lock"  # held by a writer over a whole ingest (index.ingest.writing)
LOCK_FILES = (SAVE_LOCK, WRITE_LOCK)
LOCK_WAIT = 30.0  # seconds an open waits for another process's save before judging a damaged-looking index
# Files this module owns in an index folder (with leftovers of interrupted saves); others are left alone.
_DATA_FILE = re.compile(r"(vectors-(\d{6})\.faiss|passages-(\d{6})\.sqlite|keyword-(\d{6})\.\w+\.(?:npy|json))"
                        r"(-journal|-wal|-shm)?(\.tmp)?")
_SCHEMA = """
CREATE TABLE documents (doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, title TEXT NOT NULL,
                        date TEXT, sha256 TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE passages (row INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, chunk INTEGER NOT NULL,
                       start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL);
"""


def _rebuild_hint(index_dir: Path) -> str:
    return f"rebuild it with `qa ingest PATH --rebuild`, or delete the folder {index_dir}"


class _Damaged(CorruptIndexError):
    """What `Store.open` moves aside: content that is wrong, as opposed to a file it may not read."""


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
        self.created = self.updated = _now()
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
        if (Path(index_dir) / MANIFEST).exists():
            return cls.open(index_dir, embedder, ann_threshold=ann_threshold)
        return cls.create(index_dir, embedder, chunking, ann_threshold=ann_threshold)

    @classmethod
    def open(cls, index_dir: str | os.PathLike[str], embedder: Embedder, *,
             ann_threshold: int | None = None) -> Store:
        """Load an index, checking its format, its embedder, its manifest's and every file's checksum.

        A damaged index is moved aside (nothing is deleted) and `CorruptIndexError` says where, so that
        the next `qa ingest` builds a fresh one: never a silently wrong answer. Before that verdict the
        index is read once more under the writer lock, as a save in another process may have switched
        generations between our reads. Leftovers of interrupted saves go when no save is running.
        The vector index is used as saved; `ann_threshold` applies from the next `save`.
        """
        index_dir = Path(index_dir)
        try:
            store = cls._load(index_dir, embedder, ann_threshold)
        except _Damaged as first:
            with _writer_lock(index_dir, wait=LOCK_WAIT) as locked:
                if not locked:
                    raise CorruptIndexError(f"{first}; another process has been saving this index for "
                                            f"{LOCK_WAIT:.0f} s: try again when it is done") from None
                try:
                    store = cls._load(index_dir, embedder, ann_threshold)
                except _Damaged as damaged:
                    raise CorruptIndexError(f"{damaged}. {_move_aside(index_dir)}") from None
        store._remove_leftovers()
        return store

    @classmethod
    def _load(cls, index_dir: Path, embedder: Embedder, ann_threshold: int | None = None) -> Store:
        import faiss

        manifest = _read_manifest(index_dir)
        manifest_path = index_dir / MANIFEST
        if "checksum" in manifest and manifest["checksum"] != _manifest_checksum(manifest):
            raise _Damaged(f"the index file {manifest_path} was altered (its checksum does not match its content)")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexMismatchError(
                f"the index at {index_dir} has format version {manifest.get('format_version')!r}, "
                f"this program reads version {FORMAT_VERSION}; {_rebuild_hint(index_dir)}")
        try:
            name, dim = str(manifest["embedder"]["name"]), int(manifest["embedder"]["dim"])
            chunking = ChunkingParams.from_dict(manifest["chunking"])
            files = {str(k): str(v) for k, v in manifest["files"].items()}
            docs = {doc_id: DocumentInfo(doc_id=doc_id, source=d["source"], title=d["title"], date=d["date"],
                                         sha256=d["sha256"], passages=int(d["passages"]),
                                         also_at=tuple(d.get("also_at", ())))
                    for doc_id, d in manifest["documents"].items()}
            vectors_name = next(f for f in files if f.endswith(".faiss"))
            db_name = next(f for f in files if f.endswith(".sqlite"))
            generation = int(manifest["generation"])
            passages = int(manifest.get("passages", sum(d.passages for d in docs.values())))
            if not all(_DATA_FILE.fullmatch(f) for f in files):  # only our own files, never a path
                raise ValueError(f"it names files that are not index files: {sorted(files)}")
            vector_index = VectorIndexInfo.from_dict(manifest.get("vectors"))
        except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as e:
            raise _Damaged(f"the index file {manifest_path} is incomplete ({type(e).__name__}: {e})") from None
        if name != embedder.name or dim != int(embedder.dim):
            raise IndexMismatchError(
                f"the index at {index_dir} was built with the embedder {name!r} ({dim} dimensions), "
                f"not {embedder.name!r} ({embedder.dim} dimensions); use that embedder (a server's: "
                f"QA_EMBED_URL and QA_EMBED_MODEL), "
                f"or {_rebuild_hint(index_dir)}")
        for filename, digest in files.items():
            path = index_dir / filename
            try:
                actual = _sha256_file(path)
            except FileNotFoundError:
                raise _Damaged(f"the index file {path} is missing") from None
            except OSError as e:  # not evidence of damage (permissions, a failing disk): nothing is moved
                raise CorruptIndexError(f"the index file {path} cannot be read ({e.strerror or e}); "
                                        "check its permissions and the disk") from None
            if actual != digest:
                raise _Damaged(f"the index file {path} was altered or truncated (checksum mismatch)")

        store = cls(index_dir, embedder, chunking, dim, ann_threshold)
        store.generation, store._docs, store.vector_index = generation, docs, vector_index
        store.created, store.updated = manifest.get("created", ""), manifest.get("updated", "")
        try:
            store._vectors = faiss.read_index(str(index_dir / vectors_name))
            store._db = _connect(index_dir / db_name)
            rows = store._db.execute('SELECT row, doc_id, chunk, start, "end", text FROM passages ORDER BY row')
            store._chunks = [Chunk(doc_id, chunk, start, end, text) for _, doc_id, chunk, start, end, text in rows]
        except (RuntimeError, sqlite3.Error) as e:
            raise _Damaged(f"cannot read the index at {index_dir} ({e})") from None
        if (store._vectors.ntotal != len(store._chunks) or store._vectors.d != dim or passages != len(store._chunks)
                or ann.kind_of(store._vectors) != vector_index.kind
                or Counter(c.doc_id for c in store._chunks) != Counter({i: d.passages for i, d in docs.items()})):
            raise _Damaged(f"the files of the index at {index_dir} do not agree with each other")
        keyword_prefix = next((f.split(".")[0] for f in files if f.startswith("keyword-")), None)
        if keyword_prefix is not None:
            try:
                store._keyword = KeywordIndex.load(index_dir, keyword_prefix, len(store._chunks))
            except (OSError, ValueError, KeyError) as e:
                raise _Damaged(f"cannot read the keyword index {index_dir / keyword_prefix}.* ({e})") from None
        return store

    def _remove_leftovers(self) -> None:
        """Delete files of interrupted saves, unless a save is running (then they are its work in progress)."""
        with _writer_lock(self.index_dir, wait=0) as locked:
            if not locked:
                return
            try:  # read again: a save may have finished since this store was loaded
                named = _read_manifest(self.index_dir)["files"]
            except (QAError, KeyError, TypeError):
                return
            if isinstance(named, dict):
                _remove_stale(self.index_dir, keep={MANIFEST, *map(str, named)})

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
            (text,) = self._db.execute("SELECT text FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        return text

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
            with _writer_lock(folder):
                before = {p.name for p in folder.iterdir()}
                try:
                    self._save(folder, keyword_index)
                except BaseException:
                    _remove_new_leftovers(folder, before)
                    raise
        except (OSError, sqlite3.Error, RuntimeError) as e:  # RuntimeError: faiss's failed write
            reason = (e.strerror if isinstance(e, OSError) else None) or e
            raise IndexWriteError(f"cannot save the index in {folder} ({reason}): free some disk space or "
                                  "check the folder's permissions, then try again") from e

    def _save(self, folder: Path, keyword_index: bool) -> None:
        import faiss

        self._vectors, self.vector_index = ann.fit(self._vectors, self.vector_index, self.ann_threshold)
        # Past every generation on disk, so that files left by an interrupted save are never reused.
        generation = max([self.generation, *_generations(folder)]) + 1
        vectors_path = folder / f"vectors-{generation:06d}.faiss"
        db_path = folder / f"passages-{generation:06d}.sqlite"
        faiss.write_index(self._vectors, str(vectors_path))
        _fsync(vectors_path)
        self._write_db(db_path)
        _fsync(db_path)
        written = [vectors_path, db_path]
        if keyword_index:
            written += self._keyword_index().save(folder, f"keyword-{generation:06d}")
            for path in written[2:]:
                _fsync(path)

        updated = _now()
        manifest = {
            "format_version": FORMAT_VERSION,
            "embedder": {"name": self.embedder.name, "dim": self.dim},
            "chunking": self.chunking.as_dict(),
            "generation": generation,
            "created": self.created,
            "updated": updated,
            "passages": len(self._chunks),
            "vectors": self.vector_index.as_dict(),
            "files": {p.name: _sha256_file(p) for p in written},
            "documents": {d.doc_id: {"source": d.source, "title": d.title, "date": d.date, "sha256": d.sha256,
                                     "passages": d.passages, "also_at": list(d.also_at)}
                          for d in self._docs.values()},
        }
        manifest["checksum"] = _manifest_checksum(manifest)  # a bit flip that still parses is caught too
        # Indented for people to read, unless large: json's indenting encoder is pure Python (seconds at 10,000s).
        indent = 1 if len(self._docs) <= 1000 else None
        write_atomic(folder / MANIFEST, json.dumps(manifest, indent=indent, ensure_ascii=False).encode("utf-8"))
        if self._db is not None:
            self._db.close()
        self.generation, self.updated, self._db = generation, updated, _connect(db_path)
        self._texts.clear()
        _remove_stale(folder, keep={MANIFEST, *manifest["files"]})
        log.info("saved %s", self)

    def _write_db(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        con = sqlite3.connect(path)
        try:
            # A fresh file nobody reads before the manifest names it: no journal needed; we fsync it.
            con.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" + _SCHEMA)
            insert = "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)"
            if self._db is not None and len(self._texts) < len(self._docs):
                # Texts saved before, streamed in one scan (a query per document takes seconds at 100,000s).
                with self._lock:
                    saved = self._db.execute("SELECT doc_id, text FROM documents")
                    con.executemany(insert, ((d.doc_id, d.source, d.title, d.date, d.sha256, text)
                                             for doc_id, text in saved
                                             if doc_id not in self._texts and (d := self._docs.get(doc_id))))
            con.executemany(insert, ((d.doc_id, d.source, d.title, d.date, d.sha256, self._texts[d.doc_id])
                                     for d in self._docs.values() if d.doc_id in self._texts))
            (count,) = con.execute("SELECT count(*) FROM documents").fetchone()
            assert count == len(self._docs), "a document neither in memory nor saved"
            con.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?)",
                            ((row, c.doc_id, c.index, c.start, c.end, c.text) for row, c in enumerate(self._chunks)))
            con.commit()
        finally:
            con.close()


def _read_manifest(index_dir: Path) -> dict:
    path = index_dir / MANIFEST
    if not path.is_file():
        raise IndexNotFoundError(f"no index at {index_dir}; build one with `qa ingest PATH`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:  # not evidence of damage: nothing is moved
        raise CorruptIndexError(f"the index file {path} cannot be read ({e.strerror or e}); "
                                "check its permissions and the disk") from None
    except ValueError as e:
        raise _Damaged(f"the index file {path} is not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise _Damaged(f"the index file {path} is not an index manifest")
    return manifest


def _manifest_checksum(manifest: dict) -> str:
    """sha256 of the manifest without its "checksum" key, in one canonical JSON spelling."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                          .encode("utf-8")).hexdigest()


def _connect(path: Path) -> sqlite3.Connection:
    """A read-only connection, shared by threads (calls are serialized by the store's lock).

    `immutable`: a generation's file never changes once the manifest names it, so SQLite takes no
    locks and never looks at a journal or WAL file beside it (a stale one cannot alter what we read).
    """
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False)


def _writer_lock(folder: Path, wait: float | None = None):
    """The lock a save holds on the index folder (the lock file SAVE_LOCK); yields whether it was had
    within `wait` seconds (None: as long as it takes). See `index.files.locked`."""
    return locked(folder / SAVE_LOCK, wait)


def _move_aside(index_dir: Path) -> str:
    """Move the index's files into a new `broken-<time>` folder inside `index_dir`; the sentence saying so.

    A subfolder rather than renaming `index_dir`: that needs no rights on the parent folder and keeps
    whatever else the user put in `index_dir` where it was. Nothing is deleted.
    """
    target = index_dir / f"broken-{dt.datetime.now():%Y%m%d-%H%M%S}"
    n = 1
    while target.exists():
        target, n = index_dir / f"broken-{dt.datetime.now():%Y%m%d-%H%M%S}-{n}", n + 1
    ours = sorted(p for p in index_dir.iterdir() if _ours(p.name))
    try:
        target.mkdir()
        # The manifest first: from then on the folder holds no index, rather than one naming moved files.
        for path in [index_dir / MANIFEST, *ours]:
            if path.exists():
                os.replace(path, target / path.name)
        _fsync(index_dir)
    except OSError as e:
        return f"It could not be moved aside ({e.strerror or e}): {_rebuild_hint(index_dir)}"
    log.info("moved the damaged index at %s to %s", index_dir, target)
    return (f"The damaged index was moved to {target}: build a new one with `qa ingest PATH` "
            "(delete that folder once you no longer need it)")


def _ours(name: str) -> bool:
    """A data file of any generation, or a manifest being written (`manifest.json.tmp`: by earlier versions)."""
    return bool(_DATA_FILE.fullmatch(name)) or name == MANIFEST + ".tmp" or is_temporary(name, MANIFEST)


def _generations(folder: Path) -> list[int]:
    return [int(m[2] or m[3] or m[4]) for p in folder.iterdir() if (m := _DATA_FILE.fullmatch(p.name))]


def _remove_new_leftovers(folder: Path, before: set[str]) -> None:
    """After a failed save: delete the files of ours it created, unless the manifest names them."""
    try:
        named = set(_read_manifest(folder).get("files") or ())
    except QAError:
        named = set()
    _remove_stale(folder, keep=before | named | {MANIFEST})


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete earlier generations and leftovers of interrupted saves; other files are not ours."""
    for path in folder.iterdir():
        if path.name not in keep and _ours(path.name):
            try:
                path.unlink()
            except OSError as e:  # a reader may still hold it open on some systems; next save retries
                log.warning("could not delete %s: %s", path, e)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
