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

from . import names

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def stemmer():
    """PyStemmer's English (Snowball) stemmer, shared by keyword search and qa/matching.py; None without PyStemmer."""
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


def tokenize(texts: list[str]) -> list[list[str]]:
    """The terms BM25 sees in each text: lowercased words, English stopwords dropped, stemmed."""
    return _bm25s().tokenize(texts, stopwords="en", stemmer=stemmer(), return_ids=False, show_progress=False)


class KeywordIndex:
    """BM25 over a list of texts; search returns (row, score) pairs, best first."""

    def __init__(self) -> None:
        self._bm25 = None
        self._size = 0
        self._vocabulary: names.Vocabulary | None = None   # folded terms, built on the first fuzzy query

    def build(self, texts: list[str]) -> KeywordIndex:
        self._size = len(texts)
        tokens = tokenize(list(texts)) if texts else []
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

    def query_terms(self, query: str, fuzzy_names: bool = False) -> list[str]:
        """The index terms a query searches for; with `fuzzy_names`, also the index's spellings of its names.

        Fuzzy matching (index/names.py) applies to the words written as names and to long words the
        index does not hold; known abbreviations ("US") are spelled out first.
        """
        if self._bm25 is None or not query.strip():
            return []
        vocab = self._bm25.vocab_dict
        if not fuzzy_names:
            return list(dict.fromkeys(t for t in tokenize([query])[0] if t in vocab))
        terms = [t for t in tokenize([names.spell_out(query)])[0] if t]
        name_terms = {t for ts in tokenize(names.written_as_names(query)) for t in ts}
        if self._vocabulary is None:
            self._vocabulary = names.Vocabulary(vocab)
        expanded = names.expand(terms, self._vocabulary, fuzzy=name_terms | {t for t in terms if t not in vocab and len(t) >= names.MIN_UNKNOWN})
        return [t for t in expanded if t in vocab]

    def idf(self, terms: list[str]) -> dict[str, float]:
        """BM25's inverse document frequency of each index term: how much finding it tells."""
        if self._bm25 is None:
            return {}
        ids = self._bm25.get_tokens_ids(terms)
        frequency = np.diff(self._bm25.scores["indptr"])[ids]
        n = self._size
        return {t: float(np.log(1 + (n - f + 0.5) / (f + 0.5))) for t, f in zip(terms, frequency)}

    def search(self, query: str, k: int = 5, *, fuzzy_names: bool = False,
               rows: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Rows of the best `k` texts sharing a term with the query; only positive scores.

        `rows`: a boolean mask over the texts; only those where it is True are returned.
        """
        if self._bm25 is None or k <= 0:
            return []
        terms = self.query_terms(query, fuzzy_names)
        if not terms:
            return []
        scores = self._bm25.get_scores(terms)
        if rows is not None:
            scores = np.where(rows, scores, 0.0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]
