"""BM25 keyword search over passage texts, with bm25s.

The complement of dense search: exact names, rare words and numbers that an embedding blurs.
English stopwords are dropped and words are stemmed with PyStemmer when it is installed. Building
the index is pure-Python work in bm25s (about 2 s per 10,000 passages on one core), so the store
saves it beside the vectors and loads it with them (`save`/`load`, bm25s's own files: numpy arrays
and JSON, no pickle).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _stemmer():
    try:
        import Stemmer
    except ImportError:
        log.info("PyStemmer is not installed: keyword search matches exact word forms only")
        return None
    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _bm25s():
    import bm25s

    # bm25s sets its own logger to DEBUG on import, which floods any app logging at INFO.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def _file_names(prefix: str) -> dict[str, str]:
    return {f"{part}_name": f"{prefix}.{part}.{ext}"
            for part, ext in (("data", "npy"), ("indices", "npy"), ("indptr", "npy"), ("vocab", "json"),
                              ("params", "json"))}


def _tokenize(texts: list[str]) -> list[list[str]]:
    return _bm25s().tokenize(texts, stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)


class KeywordIndex:
    """BM25 over a list of texts; search returns (row, score) pairs, best first."""

    def __init__(self) -> None:
        self._bm25 = None
        self._size = 0

    def build(self, texts: list[str]) -> KeywordIndex:
        self._size = len(texts)
        tokens = _tokenize(list(texts)) if texts else []
        self._bm25 = None
        if any(tokens):  # bm25s cannot index a corpus without a single word
            self._bm25 = _bm25s().BM25()
            self._bm25.index(tokens, show_progress=False)
        return self

    def __len__(self) -> int:
        return self._size

    def save(self, folder: Path, prefix: str) -> list[Path]:
        """Write the index as files `prefix`.*.npy|json in `folder`; none for an index without a word."""
        if self._bm25 is None:
            return []
        names = _file_names(prefix)
        self._bm25.save(folder, **names, show_progress=False)
        return [Path(folder) / name for name in names.values()]

    @classmethod
    def load(cls, folder: Path, prefix: str, size: int) -> KeywordIndex:
        """The index `save` wrote for `size` texts; ValueError if the files do not hold that."""
        index = cls()
        index._bm25 = _bm25s().BM25.load(folder, **_file_names(prefix), show_progress=False)
        index._size = size
        if index._bm25.scores["num_docs"] != size:
            raise ValueError(f"the keyword index holds {index._bm25.scores['num_docs']} passages, not {size}")
        return index

    def search(self, query: str, k: int = 5) -> list[tuple[int, float]]:
        """Rows of the best `k` texts sharing a word with the query; only positive scores."""
        if self._bm25 is None or k <= 0 or not query.strip():
            return []
        vocab = self._bm25.vocab_dict
        terms = [t for t in _tokenize([query])[0] if t and t in vocab]
        if not terms:
            return []
        scores = self._bm25.get_scores(terms)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]
