"""The small, frozen records that travel between loading, chunking, the store and the answering layer."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Document:
    """One article as loaded: its full text is what every offset refers to."""

    doc_id: str          # short content hash: the same text always gets the same id
    source: str          # path of the file it came from
    title: str           # the headline (never a dateline or a byline)
    date: str | None     # ISO date (YYYY-MM-DD) when the text gives one
    text: str
    sha256: str          # of `text`, for change detection


@dataclass(frozen=True)
class Chunk:
    """A passage of a document, by character offsets into `Document.text`."""

    doc_id: str
    index: int           # position within its document, from 0
    start: int
    end: int
    text: str            # == document.text[start:end]


@dataclass(frozen=True)
class Passage:
    """A chunk as the store returns it: with its article's metadata and a search score."""

    id: str              # "<doc_id>:<chunk index>", stable while the document is unchanged
    doc_id: str
    source: str
    title: str
    date: str | None
    text: str
    start: int
    end: int
    score: float = 0.0


@dataclass(frozen=True)
class DocumentInfo:
    """What the store knows about one indexed article, without its text."""

    doc_id: str
    source: str
    title: str
    date: str | None
    sha256: str
    passages: int
    also_at: tuple[str, ...] = field(default_factory=tuple)   # exact duplicates found under other names


@dataclass(frozen=True)
class Rejection:
    source: str
    reason: str


@dataclass(frozen=True)
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    duplicates: int = 0
    rejected: tuple[Rejection, ...] = ()
    chunks_embedded: int = 0
    total_chunks: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
