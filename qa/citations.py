"""Turning a model's answer into sentences whose every citation is checked.

Markers like [2] or [1, 3] are parsed, mapped to the passages the model was shown, and renumbered in
order of first use; a marker that points at no passage is dropped. Each cited passage is then checked
against the sentence that cites it: most of the sentence's content words (those it does not simply
repeat from the question) must appear in the passage, and every number it states must. A citation
that fails is replaced by the shown passage that supports the sentence best, or dropped. A sentence
left without a supporting citation is removed; an answer left with none is a refusal.

The check is lexical on purpose: it is fast, explainable, and it catches what small models get wrong
most often (a right-sounding sentence cited to an unrelated passage, or a detail from nowhere).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from index import Passage

MIN_SUPPORT = 0.6

_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
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


def _stem(word: str) -> str:
    # A light stemmer is enough to let "sanctions" support "sanction"; the check is a ratio anyway.
    for suffix in ("ies", "es", "s", "ed", "ing"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(fold(text)) if w not in _STOP and not w.isdigit()}


def support(sentence: str, passage: str, question: str = "") -> float:
    """How well `passage` supports `sentence`: the share of its new content words found in the passage.

    Words the sentence repeats from the question count only if the passage has them too, so a sentence
    that merely restates the question is not "supported" by any passage. Numbers must all appear.
    """
    folded = fold(passage)
    numbers = _NUMBER.findall(sentence)
    if any(n not in folded for n in numbers):
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


def locate(quote: str, passage: Passage) -> tuple[int, int]:
    """The span of `passage` (article offsets) that `quote` copies, widened to whole words.

    Falls back to the whole passage when the quote cannot be found: a citation always points at
    text that exists, never at an invented span.
    """
    from rapidfuzz import fuzz

    quote = quote.strip().strip(".").strip()
    if len(quote) < 8:
        return passage.start, passage.end
    text = passage.text
    hit = text.find(quote)
    if hit >= 0:
        start, end = hit, hit + len(quote)
    else:
        align = fuzz.partial_ratio_alignment(fold(quote), fold(text), score_cutoff=85)
        if align is None:
            return passage.start, passage.end
        start, end = align.dest_start, align.dest_end
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return passage.start + start, passage.start + end


def names_in(question: str) -> list[str]:
    """Proper names the question asks about: capitalised words after its first word ("Xi Jinping")."""
    words = re.findall(r"[^\W\d_][\w'’.-]*", question)
    return [w.strip(".'’") for w in words[1:] if w[0].isupper() and len(w) > 1 and w.lower() not in _STOP]


def missing_names(question: str, text: str) -> list[str]:
    """Names from the question that the given text never mentions."""
    folded = fold(text)
    return [n for n in names_in(question) if fold(n) not in folded]
