"""BM25 keyword search over passage texts, with bm25s.

The complement of dense search: exact names, rare words and numbers that an embedding blurs.
English stopwords are dropped and words are stemmed with PyStemmer when it is installed. The index
lives in memory only; it is quick to rebuild from the stored passages, so it is never saved.
"""

from __future__ import annotations

import logging
from functools import lru_cache

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
