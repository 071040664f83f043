"""The on-disk format of an index folder: the manifest, checksums, generations, locks and cleanup.

Layout of an index folder (nothing is pickled):

    manifest.json             format version, embedder name and dimension, chunking parameters,
                              generation, documents (metadata and content hashes), sha256 of each data file
    vectors-000003.faiss      FAISS index over L2-normalized vectors (inner product is cosine): exact
                              (IndexFlatIP) up to `ann_threshold` passages, IVF past it (see ann.py)
    passages-000003.sqlite    tables `documents` (with full texts) and `passages` (row -> chunk)
    keyword-000003.*.npy|json the BM25 index (bm25s's arrays and vocabulary), unless the save skipped it
    save.lock, write.lock     lock files, left in place on purpose

A save writes a new generation beside the old one, then atomically replaces the manifest, then
deletes what the manifest no longer names: a crash at any point leaves a loadable index. The
manifest carries a sha256 of each data file and one of its own body, so a damaged file is found on
open; the damaged index is then moved into a `broken-<time>` folder and the error says where.

Two locks, both filelock lock files: a save, and whatever moves or deletes files, holds `save.lock`
(`save_lock`; a reader takes it only to judge a damaged-looking index or to delete leftovers); an
ingest holds `write.lock` from start to end (`index.ingest.writing`), so that one writer at a time
changes the index. Two locks because a reader that waits for a save must not wait for a whole ingest.
The in-memory index that reads and writes these files is `index.store.Store`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .ann import VectorIndexInfo
from .chunking import ChunkingParams
from .errors import CorruptIndexError, IndexMismatchError, IndexNotFoundError, QAError
from .files import fsync, is_temporary, locked, sha256_file, write_atomic
from .types import Chunk, DocumentInfo

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SAVE_LOCK = "save.lock"    # held while a save, a move aside or a cleanup changes the folder's files
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


class Damaged(CorruptIndexError):
    """What `Store.open` moves aside: content that is wrong, as opposed to a file it may not read."""


def rebuild_hint(index_dir: Path) -> str:
    return f"rebuild it with `qa ingest PATH --rebuild`, or delete the folder {index_dir}"


def save_lock(folder: Path, wait: float | None = None):
    """The lock a save holds on the index folder; yields whether it was had within `wait` seconds
    (None: as long as it takes). See `index.files.locked`."""
    return locked(folder / SAVE_LOCK, wait)


def file_names(generation: int) -> tuple[str, str, str]:
    """The vectors file, the SQLite file and the prefix of the BM25 files of a generation."""
    return f"vectors-{generation:06d}.faiss", f"passages-{generation:06d}.sqlite", f"keyword-{generation:06d}"


# -- the manifest ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """What manifest.json says of the generation it names."""

    embedder_name: str
    dim: int
    chunking: ChunkingParams
    generation: int
    documents: dict[str, DocumentInfo]
    passages: int
    vectors: VectorIndexInfo
    files: dict[str, str]          # file name -> sha256
    created: str = ""
    updated: str = ""

    @property
    def vectors_file(self) -> str:
        return next(f for f in self.files if f.endswith(".faiss"))

    @property
    def database_file(self) -> str:
        return next(f for f in self.files if f.endswith(".sqlite"))

    @property
    def keyword_prefix(self) -> str | None:
        """The prefix of the BM25 files, None if the save skipped them."""
        return next((f.split(".")[0] for f in self.files if f.startswith("keyword-")), None)


def read_manifest(index_dir: Path) -> dict:
    """The manifest's JSON as it is, unchecked."""
    path = index_dir / MANIFEST
    if not path.is_file():
        raise IndexNotFoundError(f"no index at {index_dir}; build one with `qa ingest PATH`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:  # not evidence of damage: nothing is moved
        raise CorruptIndexError(f"the index file {path} cannot be read ({e.strerror or e}); "
                                "check its permissions and the disk") from None
    except ValueError as e:
        raise Damaged(f"the index file {path} is not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise Damaged(f"the index file {path} is not an index manifest")
    return manifest


def read(index_dir: Path) -> Manifest:
    """The manifest, checked against its own checksum and this program's format version (`Damaged`,
    `IndexMismatchError`); the files it names are checked by `verify`."""
    manifest = read_manifest(index_dir)
    path = index_dir / MANIFEST
    if "checksum" in manifest and manifest["checksum"] != manifest_checksum(manifest):
        raise Damaged(f"the index file {path} was altered (its checksum does not match its content)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatchError(
            f"the index at {index_dir} has format version {manifest.get('format_version')!r}, "
            f"this program reads version {FORMAT_VERSION}; {rebuild_hint(index_dir)}")
    try:
        name, dim = str(manifest["embedder"]["name"]), int(manifest["embedder"]["dim"])
        chunking = ChunkingParams.from_dict(manifest["chunking"])
        files = {str(k): str(v) for k, v in manifest["files"].items()}
        docs = {doc_id: DocumentInfo(doc_id=doc_id, source=d["source"], title=d["title"], date=d["date"],
                                     sha256=d["sha256"], passages=int(d["passages"]),
                                     also_at=tuple(d.get("also_at", ())))
                for doc_id, d in manifest["documents"].items()}
        next(f for f in files if f.endswith(".faiss"))   # StopIteration unless both are named
        next(f for f in files if f.endswith(".sqlite"))
        generation = int(manifest["generation"])
        passages = int(manifest.get("passages", sum(d.passages for d in docs.values())))
        if not all(_DATA_FILE.fullmatch(f) for f in files):  # only our own files, never a path
            raise ValueError(f"it names files that are not index files: {sorted(files)}")
        vectors = VectorIndexInfo.from_dict(manifest.get("vectors"))
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as e:
        raise Damaged(f"the index file {path} is incomplete ({type(e).__name__}: {e})") from None
    return Manifest(embedder_name=name, dim=dim, chunking=chunking, generation=generation, documents=docs,
                    passages=passages, vectors=vectors, files=files,
                    created=manifest.get("created", ""), updated=manifest.get("updated", ""))


def verify(index_dir: Path, files: dict[str, str]) -> None:
    """Check each file against its sha256: `Damaged` if missing or different, `CorruptIndexError` if unreadable."""
    for filename, digest in files.items():
        path = index_dir / filename
        try:
            actual = sha256_file(path)
        except FileNotFoundError:
            raise Damaged(f"the index file {path} is missing") from None
        except OSError as e:  # not evidence of damage (permissions, a failing disk): nothing is moved
            raise CorruptIndexError(f"the index file {path} cannot be read ({e.strerror or e}); "
                                    "check its permissions and the disk") from None
        if actual != digest:
            raise Damaged(f"the index file {path} was altered or truncated (checksum mismatch)")


def checksums(paths: Iterable[Path]) -> dict[str, str]:
    """File name -> sha256, as the manifest names the data files."""
    return {p.name: sha256_file(p) for p in paths}


def write(folder: Path, manifest: Manifest) -> None:
    """Replace the manifest in `folder` by `manifest`, atomically."""
    body = {
        "format_version": FORMAT_VERSION,
        "embedder": {"name": manifest.embedder_name, "dim": manifest.dim},
        "chunking": manifest.chunking.as_dict(),
        "generation": manifest.generation,
        "created": manifest.created,
        "updated": manifest.updated,
        "passages": manifest.passages,
        "vectors": manifest.vectors.as_dict(),
        "files": manifest.files,
        "documents": {d.doc_id: {"source": d.source, "title": d.title, "date": d.date, "sha256": d.sha256,
                                 "passages": d.passages, "also_at": list(d.also_at)}
                      for d in manifest.documents.values()},
    }
    body["checksum"] = manifest_checksum(body)  # a bit flip that still parses is caught too
    # Indented for people to read, unless large: json's indenting encoder is pure Python (seconds at 10,000s).
    indent = 1 if len(manifest.documents) <= 1000 else None
    write_atomic(folder / MANIFEST, json.dumps(body, indent=indent, ensure_ascii=False).encode("utf-8"))


def manifest_checksum(manifest: dict) -> str:
    """sha256 of the manifest without its "checksum" key, in one canonical JSON spelling."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                          .encode("utf-8")).hexdigest()


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# -- the SQLite file -------------------------------------------------------------------------------


def connect(path: Path) -> sqlite3.Connection:
    """A read-only connection, shared by threads (calls are serialized by the store's lock).

    `immutable`: a generation's file never changes once the manifest names it, so SQLite takes no
    locks and never looks at a journal or WAL file beside it (a stale one cannot alter what we read).
    """
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False)


def read_chunks(db: sqlite3.Connection) -> list[Chunk]:
    """The passages, in row order."""
    rows = db.execute('SELECT row, doc_id, chunk, start, "end", text FROM passages ORDER BY row')
    return [Chunk(doc_id, chunk, start, end, text) for _, doc_id, chunk, start, end, text in rows]


def saved_text(db: sqlite3.Connection, doc_id: str) -> str:
    (text,) = db.execute("SELECT text FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
    return text


def saved_texts(db: sqlite3.Connection) -> Iterator[tuple[str, str]]:
    """(doc_id, text) of every document, in one scan (a query per document takes seconds at 100,000s)."""
    return db.execute("SELECT doc_id, text FROM documents")


def write_database(path: Path, documents: Iterable[tuple[DocumentInfo, str]], chunks: list[Chunk]) -> int:
    """Write a new SQLite file of `documents` (with their texts) and `chunks` (row i is chunks[i]);
    the number of documents written."""
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        # A fresh file nobody reads before the manifest names it: no journal needed; the caller fsyncs it.
        con.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" + _SCHEMA)
        con.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)",
                        ((d.doc_id, d.source, d.title, d.date, d.sha256, text) for d, text in documents))
        (count,) = con.execute("SELECT count(*) FROM documents").fetchone()
        con.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?)",
                        ((row, c.doc_id, c.index, c.start, c.end, c.text) for row, c in enumerate(chunks)))
        con.commit()
    finally:
        con.close()
    return count


# -- damage and leftovers --------------------------------------------------------------------------


def move_aside(index_dir: Path) -> str:
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
        fsync(index_dir)
    except OSError as e:
        return f"It could not be moved aside ({e.strerror or e}): {rebuild_hint(index_dir)}"
    log.info("moved the damaged index at %s to %s", index_dir, target)
    return (f"The damaged index was moved to {target}: build a new one with `qa ingest PATH` "
            "(delete that folder once you no longer need it)")


def _ours(name: str) -> bool:
    """A data file of any generation, or a manifest being written (`manifest.json.tmp`: by earlier versions)."""
    return bool(_DATA_FILE.fullmatch(name)) or name == MANIFEST + ".tmp" or is_temporary(name, MANIFEST)


def generations(folder: Path) -> list[int]:
    """The generations of the data files in `folder`, leftovers included."""
    return [int(m[2] or m[3] or m[4]) for p in folder.iterdir() if (m := _DATA_FILE.fullmatch(p.name))]


def remove_leftovers(folder: Path) -> None:
    """Delete files of interrupted saves, unless a save is running (then they are its work in progress)."""
    with save_lock(folder, wait=0) as held:
        if not held:
            return
        try:  # read again: a save may have finished since the caller read the manifest
            named = read_manifest(folder)["files"]
        except (QAError, KeyError, TypeError):
            return
        if isinstance(named, dict):
            remove_stale(folder, keep={MANIFEST, *map(str, named)})


def remove_new_leftovers(folder: Path, before: set[str]) -> None:
    """After a failed save: delete the files of ours it created, unless the manifest names them."""
    try:
        named = set(read_manifest(folder).get("files") or ())
    except QAError:
        named = set()
    remove_stale(folder, keep=before | named | {MANIFEST})


def remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete earlier generations and leftovers of interrupted saves; other files are not ours."""
    for path in folder.iterdir():
        if path.name not in keep and _ours(path.name):
            try:
                path.unlink()
            except OSError as e:  # a reader may still hold it open on some systems; next save retries
                log.warning("could not delete %s: %s", path, e)
