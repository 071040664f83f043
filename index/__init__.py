"""Articles to a searchable index: loading, chunking, embedding, storage and ingest.

`ingest(paths, index_dir)` builds or updates an index; `Store.open(index_dir, embedder)` loads it
for dense (`search`) and keyword (`keyword_search`) retrieval. Heavy libraries (torch,
sentence-transformers, faiss, bm25s, trafilatura) load on first use, so importing this is cheap.
"""

from .chunking import ChunkingParams, chunk_document, split_sentences
from .embedding import Embedder, SentenceTransformerEmbedder, default_embedder
from .errors import (
    CorruptIndexError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexWriteError,
    InputError,
    ModelError,
    QAError,
    RejectedFile,
)
from .ingest import ingest, writing
from .filters import SearchFilter
from .keyword import KeywordIndex
from .loading import iter_files, load_file
from .store import Store
from .types import Chunk, Document, DocumentInfo, IngestReport, Passage, Rejection

__all__ = [
    "Chunk", "ChunkingParams", "CorruptIndexError", "Document", "DocumentInfo", "Embedder",
    "IndexMismatchError", "IndexNotFoundError", "IndexWriteError", "IngestReport", "InputError", "KeywordIndex",
    "ModelError", "Passage", "QAError", "Rejection", "RejectedFile", "SearchFilter", "SentenceTransformerEmbedder",
    "Store", "chunk_document", "default_embedder", "ingest", "iter_files", "load_file", "split_sentences",
    "writing",
]
