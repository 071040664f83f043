"""Turning a model's answer into sentences whose every citation is checked.

Markers like [2] or [1, 3] are parsed, mapped to the passages the model was shown, and renumbered in
order of first use; a marker that points at no passage is dropped. Each cited passage is then checked
against the sentence that cites it: most of the sentence's content words (those it does not simply
repeat from the question) must appear in the passage, and every number and name it states must. A citation
that fails is replaced by the shown passage that supports the sentence best, or dropped. A sentence
left without a supporting citation is removed; an answer left with none is a refusal.

The check is lexical on purpose: it is fast, explainable, and it catches what small models get wrong
most often (a right-sounding sentence cited to an unrelated passage, or a detail from nowhere).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from index import Passage

MIN_SUPPORT = 0.6

_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_MONTH = re.compile(r"\b(January|February|March|April|May|June|July|August|September|October|November|December)\b")
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“‘'(])")
_STOP = frozenset("""
a an and are as at be been being but by can could did do does for from had has have he her his how i if in into
is it its of on or our she so such than that the their them then there these they this those to was we were
what when where which who whom whose why will with would you your not no yes also about after before over
said says say told according
""".split())


def fold(text: str) -> str:
    """Lowercase without accents, so "Orbán" matches "Orban"."""
    text = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in text if not unicodedata.combining(c)).replace("’", "'")


@functools.lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # PyStemmer, already used by the keyword index

    return Stemmer.Stemmer("english")


def content_words(text: str) -> set[str]:
    """Stemmed words that carry meaning, so "asked" matches "ask" and "sanctions" matches "sanction"."""
    words = [w for w in _WORD.findall(fold(text)) if w not in _STOP and not w.isdigit()]
    return set(_stemmer().stemWords(words))


def support(sentence: str, passage: str, question: str = "") -> float:
    """How well `passage` supports `sentence`: the share of its new content words found in the passage.

    Words the sentence repeats from the question count only if the passage has them too, so a sentence
    that merely restates the question is not "supported" by any passage. Numbers must all appear.
    """
    folded = fold(passage)
    numbers = _NUMBER.findall(sentence)
    if any(n not in folded for n in numbers):
        return 0.0
    # A name the sentence states must be in the passage even when the question asked about it:
    # otherwise "Xi Jinping said …" passes on the strength of what the passage says Putin said.
    if missing_names(sentence, passage):
        return 0.0
    words = content_words(sentence)
    if not words:
        return 0.0
    in_passage = content_words(passage)
    new = words - content_words(question)
    if not new:
        return 0.0
    return len(new & in_passage) / len(new)


@dataclass(frozen=True)
class Cited:
    """One sentence of the final answer and the passages (positions in the shown list) that support it."""

    text: str
    sources: tuple[int, ...]


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def parse(text: str, shown: int) -> list[tuple[str, list[int]]]:
    """Sentences with the 0-based passage positions their markers name; out-of-range markers vanish."""
    out = []
    for sentence in split_sentences(text):
        positions: list[int] = []
        for group in _MARKER.findall(sentence):
            for n in re.split(r"\s*,\s*", group):
                if 1 <= int(n) <= shown and int(n) - 1 not in positions:
                    positions.append(int(n) - 1)
        clean = _MARKER.sub("", sentence).strip()
        if clean and not re.fullmatch(r"[\W_]+", clean):
            out.append((clean, positions))
    return out


def check(text: str, passages: Sequence[Passage], question: str,
          min_support: float = MIN_SUPPORT) -> list[Cited]:
    """The supported sentences of `text`, each with the passages that really support it."""
    result = []
    for sentence, positions in parse(text, len(passages)):
        scores = [support(sentence, p.text, question) for p in passages]
        kept = tuple(i for i in positions if scores[i] >= min_support)
        if not kept and len(positions) > 1:
            # A sentence may join facts from several passages: check it against them together, and
            # keep each one that contributes.
            joined = " ".join(passages[i].text for i in positions)
            if support(sentence, joined, question) >= min_support:
                new = content_words(sentence) - content_words(question)
                kept = tuple(i for i in positions if new & content_words(passages[i].text))
        if not kept and scores:
            best = max(range(len(scores)), key=scores.__getitem__)
            kept = (best,) if scores[best] >= min_support else ()
        if kept:
            result.append(Cited(sentence, kept))
    return result


def render(cited: Sequence[Cited]) -> tuple[str, list[int]]:
    """The answer text with markers numbered by first use, and the passage positions in that order."""
    order: list[int] = []
    sentences = []
    for c in cited:
        for i in c.sources:
            if i not in order:
                order.append(i)
        marks = "".join(f"[{order.index(i) + 1}]" for i in c.sources)
        body = c.text.rstrip()
        end = body[-1] if body[-1] in ".!?" else "."
        body = body.rstrip(".!?").rstrip()
        sentences.append(f"{body} {marks}{end}")
    return " ".join(sentences), order


def find_quote(quote: str, passage: Passage) -> tuple[int, int] | None:
    """The span of `passage` (article offsets) that `quote` copies, widened to whole words; None if absent."""
    from rapidfuzz import fuzz

    quote = quote.strip().strip(".").strip()
    if len(quote) < 8:
        return None
    text = passage.text
    hit = text.find(quote)
    if hit >= 0:
        start, end = hit, hit + len(quote)
    else:
        # Small models drop or change a character while copying; fold case and accents and allow a little.
        align = fuzz.partial_ratio_alignment(fold(quote), fold(text), score_cutoff=85)
        if align is None:
            return None
        start, end = align.dest_start, align.dest_end
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return passage.start + start, passage.start + end


def locate(quote: str, passage: Passage) -> tuple[int, int]:
    """Where `quote` stands in `passage`, or the whole passage: a citation never points at invented text."""
    return find_quote(quote, passage) or (passage.start, passage.end)


def names_in(text: str) -> list[str]:
    """Proper names in a question or an answer: capitalised words after its first word ("Xi Jinping")."""
    words = [re.sub(r"['’]s$", "", w).strip(".'’-") for w in re.findall(r"[^\W\d_][\w'’.-]*", text)]
    return [w for w in words[1:] if w[:1].isupper() and len(w) > 1 and w.lower() not in _STOP]


def relevance(question: str, text: str) -> float:
    """Share of the question's content words that `text` contains: does it speak about what was asked?"""
    asked = content_words(question)
    return len(asked & content_words(text)) / len(asked) if asked else 0.0


def sentence_around(passage: Passage, start: int, end: int) -> tuple[int, int]:
    """Widen an article span inside `passage` to the whole sentence(s) it falls in (article offsets)."""
    text, base = passage.text, passage.start
    lo, hi = max(start - base, 0), min(max(end - base, 0), len(text))
    before = max(text.rfind(". ", 0, lo), text.rfind("\n", 0, lo), text.rfind("? ", 0, lo), text.rfind("! ", 0, lo))
    lo = 0 if before < 0 else before + 1
    while lo < len(text) and text[lo].isspace():
        lo += 1
    ends = [i for i in (text.find(". ", hi), text.find("\n", hi), text.find("? ", hi), text.find("! ", hi)) if i >= 0]
    hi = min(ends) + 1 if ends else len(text)
    while hi > lo and text[hi - 1].isspace():
        hi -= 1
    return base + lo, base + hi


def missing_names(question: str, text: str) -> list[str]:
    """Names from the question that the given text never mentions."""
    folded = fold(text)
    return [n for n in names_in(question) if fold(n) not in folded]


def dates_in(text: str) -> set[str]:
    """The months and years `text` names ("September", "2022")."""
    return set(_MONTH.findall(text)) | set(_YEAR.findall(text))


def date_conflict(question: str, text: str) -> bool:
    """True when the question asks about a month (or a year) and `text` names other months (years) but not it.

    Articles often tell several dated events in one paragraph ("In July 2022 … In September of the same
    year …"); a small model easily answers from the sentence next to the one asked about.
    """
    for pattern in (_MONTH, _YEAR):
        asked, named = set(pattern.findall(question)), set(pattern.findall(text))
        if asked and named and not asked & named:
            return True
    return False
