"""Choosing the passages a question is answered from.

Dense search alone misses questions that share few words with their passage, and keyword search
misses paraphrases, so both run and their rankings are fused by reciprocal rank fusion (RRF), which
needs no score calibration between the two. Near-duplicate passages (the same wire story in two
articles, or overlapping chunks of one article) are collapsed so the small context is not spent on
repeats. A follow-up question ("what did he say next?") is made standalone for retrieval by adding the
previous turn, since the pronoun alone retrieves nothing useful.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from index import Passage, Store

RRF_K = 60  # the constant from Cormack et al. (2009); ranks matter, raw scores do not
NEAR_DUPLICATE = 0.85  # token-set overlap above which two passages say the same thing

_WORD = re.compile(r"\w+", re.UNICODE)
_DEPENDENT = re.compile(
    r"\b(he|she|it|they|him|her|them|his|hers|its|their|theirs|this|that|these|those|there|then|"
    r"the same|the other|also|else|more)\b", re.IGNORECASE)


def fuse(rankings: Sequence[Sequence[Passage]], k: int = RRF_K) -> list[Passage]:
    """Reciprocal rank fusion: each passage scores sum(1 / (k + rank)) over the rankings it is in."""
    scores: dict[str, float] = {}
    first: dict[str, Passage] = {}
    for ranking in rankings:
        for rank, passage in enumerate(ranking):
            scores[passage.id] = scores.get(passage.id, 0.0) + 1.0 / (k + rank + 1)
            first.setdefault(passage.id, passage)
    order = sorted(scores, key=lambda pid: -scores[pid])
    return [replace(first[pid], score=scores[pid]) for pid in order]


def _tokens(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2}


def _overlap(a: Passage, b: Passage) -> float:
    """Share of the shorter passage that the other one repeats: by span within an article, by words across."""
    if a.doc_id == b.doc_id:
        shared = min(a.end, b.end) - max(a.start, b.start)
        return max(shared, 0) / max(min(a.end - a.start, b.end - b.start), 1)
    ta, tb = _tokens(a.text), _tokens(b.text)
    return len(ta & tb) / max(min(len(ta), len(tb)), 1)


def collapse_duplicates(passages: Sequence[Passage], threshold: float = NEAR_DUPLICATE) -> list[Passage]:
    """Keep the best-ranked of each group of near-duplicate passages, preserving order."""
    kept: list[Passage] = []
    for passage in passages:
        if all(_overlap(passage, other) < threshold for other in kept):
            kept.append(passage)
    return kept


def standalone_query(question: str, history: Sequence[tuple[str, str]]) -> str:
    """The text to search with: the question, plus the previous turn when the question leans on it."""
    if not history:
        return question
    words = _WORD.findall(question)
    if len(words) > 12 and not _DEPENDENT.search(question):
        return question
    last_question, last_answer = history[-1]
    last_answer = re.sub(r"\[\d+\]", "", last_answer)
    return f"{last_question} {last_answer} {question}"


def retrieve(store: Store, query: str, k: int = 4, candidates: int = 20) -> list[Passage]:
    """The top `k` passages for `query` from dense and keyword search fused, without near-duplicates."""
    if not query.strip() or len(store) == 0:
        return []
    dense = store.search(query, candidates)
    keyword = store.keyword_search(query, candidates)
    return collapse_duplicates(fuse([dense, keyword]))[:k]
