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
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from index import Passage, SearchFilter, Store
from index.keyword import tokenize
from index.names import fold

from . import dates, matching

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


@lru_cache(maxsize=4096)
def _tokens(text: str) -> frozenset[str]:
    # Cached: `collapse_duplicates` compares each passage of a 40-passage pool with every one kept (it was
    # a third of a search's time at 51k passages, the words of the same passages split again and again).
    return frozenset(w for w in _WORD.findall(text.lower()) if len(w) > 2)


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


@dataclass(frozen=True)
class Recipe:
    """How `retrieve` picks passages. Each option is measured on its own by bench/retrieval.py."""

    candidates: int = 20     # passages each search (dense, keyword) puts in the pool
    names: bool = False      # keyword search also looks for the index's spellings of the question's names
    sentences: bool = False  # the pool is also ranked by its best sentence's share of the question's terms
    titles: bool = False     # the pool is also ranked by the share of the question's terms in the article title
    stories: bool = False    # a story syndicated under one headline by several outlets is shown from one
    dates: bool = False      # articles dated in the time the question names ("in October") rank higher
    cover: bool = False      # a name of the question that no passage kept holds brings in the best one that does


BASELINE = Recipe()
# names: the index's spellings of the question's names; cover: a name no kept passage holds brings one in
# (news-2025 hit@4 and hit@8 unchanged on both halves, 8 of its 136 questions read other passages; the new
# questions about the sample articles +1 each). The others did not help on news-2025 (bench/RESULTS.md).
DEFAULT = Recipe(names=True, cover=True)


def retrieve(store: Store, query: str, k: int = 4, *, filters: SearchFilter | None = None,
             recipe: Recipe = DEFAULT) -> list[Passage]:
    """The top `k` passages for `query` (among those `filters` allows), without near-duplicates.

    Dense and keyword search each fill a pool of candidates; their rankings, and those the recipe
    adds (by best sentence, by title, by date), are fused; repeats are collapsed.
    """
    if not query.strip() or len(store) == 0:
        return []
    dense = store.search(query, recipe.candidates, filters)
    keyword = store.keyword_search(query, recipe.candidates, filters, fuzzy_names=recipe.names)
    rankings = [dense, keyword]
    pool = list({p.id: p for p in dense + keyword}.values())
    if recipe.sentences or recipe.titles:
        weights = store.query_terms(query, recipe.names)
        if recipe.sentences:
            split = [_sentences(p.text) for p in pool]
            scores = iter(_coverage([s for sentences in split for s in sentences], weights))
            rankings.append(_ranked(pool, [max(next(scores) for _ in sentences) for sentences in split]))
        if recipe.titles:
            rankings.append(_ranked(pool, _coverage([p.title for p in pool], weights)))
    if recipe.dates:
        rankings.append([p for p in pool if dates.in_period(p.date, dates.named_period(query))])
    fused = collapse_duplicates(fuse(rankings))
    fused = _one_copy_per_story(fused) if recipe.stories else fused
    if not recipe.cover:
        return fused[:k]
    # A name the query asks about which none of the first k holds ("Estonian" among passages that all
    # name Orban and Putin, found by keyword search alone) brings in the best-ranked passage naming it.
    return matching.cover_names(fused, fused[:k], matching.names(query), lambda p: f"{p.title}\n{p.text}",
                                size=k, most=COVER_SWAPS)


COVER_SWAPS = 2   # passages at most that a name no passage read holds brings in (`matching.cover_names`)


_SENTENCE_END = re.compile(r"(?<=[.!?…\"”])\s+(?=[\"“'‘(\[]?[A-Z0-9])|\n+")


def _sentences(text: str) -> list[str]:
    """A passage's sentences, roughly: a regular expression is enough to score them (pysbd costs ms)."""
    return [s for s in _SENTENCE_END.split(text) if s.strip()] or [text]


def topic_shares(store: Store, question: str, passages: Sequence[Passage]) -> dict[str, float]:
    """For each article of `passages`: how much of what the question asks it is about, as the share of the
    question's search terms (idf-weighted, names as the index spells them) that its title and its
    passages here hold. A sentence near the question may still come from an article about something
    else, which is what a search returns when the archive does not hold the answer
    (`grounding.near_the_question` weighs both)."""
    texts: dict[str, list[str]] = {}
    for p in passages:
        texts.setdefault(p.doc_id, [p.title]).append(p.text)
    return dict(zip(texts, _coverage([" ".join(t) for t in texts.values()], store.query_terms(question, True))))


def _coverage(texts: list[str], weights: dict[str, float]) -> list[float]:
    """For each text, the idf-weighted share of the query's terms it contains."""
    total = sum(weights.values())
    if not total or not texts:
        return [0.0] * len(texts)
    return [sum(weights.get(t, 0.0) for t in set(terms)) / total for terms in tokenize(texts)]


def _ranked(pool: list[Passage], scores: list[float]) -> list[Passage]:
    """`pool` by descending score (ties keep pool order), without those scoring nothing."""
    order = sorted(range(len(pool)), key=lambda i: -scores[i])
    return [pool[i] for i in order if scores[i] > 0]


def _one_copy_per_story(passages: list[Passage]) -> list[Passage]:
    """Passages of the best-ranked copy of each story: articles under the same headline are copies of one."""
    copy: dict[str, str] = {}   # headline -> the article kept for it
    kept = []
    for p in passages:
        story = " ".join(_WORD.findall(fold(p.title))) or p.doc_id
        if copy.setdefault(story, p.doc_id) == p.doc_id:
            kept.append(p)
    return kept


class Evidence(Protocol):
    """What a scored question says about where its answer is (qa.evaluation.Question has both)."""

    sources: Sequence[str]        # file names of the articles holding the answer
    evidence_any: Sequence[str]   # strings an answer-bearing passage contains (case-insensitive)


def hit_at(passages: Sequence[Passage], question: Evidence) -> bool:
    """Whether one of `passages` bears the answer: from a file in `sources`, containing an `evidence_any` string.

    The retrieval hit@k of a question is `hit_at(retrieved[:k], question)`.
    """
    needles = [e.lower() for e in question.evidence_any]
    return any(Path(p.source).name in question.sources and any(n in p.text.lower() for n in needles)
               for p in passages)
