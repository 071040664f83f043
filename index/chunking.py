"""Documents to passages: runs of whole sentences, located by exact character offsets.

Sentences come from pysbd, paragraph by paragraph, and are then found again in the text so that
every span is exact (`text[start:end]` is the sentence, trimmed). A chunk grows sentence by
sentence up to `max_words`, closes early at a paragraph break once it has `min_words`, and the next
chunk repeats the previous one's last sentences (up to `overlap_words`) for context. Words are
whitespace-separated tokens: a cheap, model-free stand-in for the embedder's word pieces
(80 words is about 110 pieces for all-MiniLM-L6-v2, under its 256 limit).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from .types import Chunk, Document

_WORD = re.compile(r"\S+")
_LINE_END = re.compile(r"[.!?:;\"'”’)\]…]\s*$")
# Where pysbd could cut a paragraph: sentence punctuation or a list item's ")" anywhere but in the final run
# of stops (it also cuts a closing quote after the last stop off as a sentence of its own).
_MAY_CUT = re.compile(r"[.!?…)。！？؟।](?![\s.!?…]*$)")


@dataclass(frozen=True)
class ChunkingParams:
    max_words: int = 80       # a chunk never has more words than this
    overlap_words: int = 20   # at most this many words of the previous chunk start the next one
    min_words: int = 25       # a paragraph break closes a chunk only once it has this many new words

    def __post_init__(self) -> None:
        if not 0 <= self.overlap_words < self.max_words or not 0 <= self.min_words <= self.max_words:
            raise ValueError(f"inconsistent chunking parameters: {self}")

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkingParams:
        return cls(**{k: int(data[k]) for k in ("max_words", "overlap_words", "min_words") if k in data})


@dataclass(frozen=True)
class _Sentence:
    start: int
    end: int
    words: int
    paragraph: int


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def paragraphs(text: str) -> list[tuple[int, int]]:
    """Spans of paragraphs: blocks between line breaks, trimmed.

    A single line break counts as a paragraph break (one paragraph per line is how most scraped
    articles come) unless it looks like hard wrapping: the line does not end a sentence and is
    long, or the next line goes on in lower case. Those spans include their inner newlines.
    """
    lines = [(m.start(), m.end()) for m in re.finditer(r"[^\n]+", text) if m.group().strip()]
    spans: list[tuple[int, int]] = []
    for start, end in lines:
        if spans and _is_wrapped(text, spans[-1], start):
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return [_trim(text, s, e) for s, e in spans]


def _is_wrapped(text: str, previous: tuple[int, int], start: int) -> bool:
    if "\n\n" in text[previous[1]:start].replace(" ", "").replace("\t", ""):
        return False
    last_line = text[text.rfind("\n", 0, previous[1]) + 1:previous[1]]
    if _LINE_END.search(last_line):
        return False
    return len(last_line.strip()) >= 60 or text[start:start + 40].lstrip()[:1].islower()


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _sentences_in(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans of one paragraph, found back in the text by searching forward.

    pysbd may hand back text that differs from its input (spacing); a sentence that cannot be found
    is merged with the next one, so the spans still cover the whole paragraph exactly.
    """
    # Newlines inside a wrapped paragraph would be sentence breaks to pysbd; spaces keep offsets.
    para = text[start:end].replace("\n", " ")
    if not _MAY_CUT.search(para):  # one sentence (most news paragraphs): pysbd is the slow part of ingest
        return [_trim(text, start, end)] if start < end else []
    cuts, cursor = [], 0
    for sentence in _segmenter().segment(para):
        sentence = sentence.strip()
        at = para.find(sentence, cursor) if sentence else -1
        if at < 0:
            pattern = r"\s+".join(map(re.escape, sentence.split()))
            found = re.compile(pattern).search(para, cursor) if pattern else None
            if found is None:
                continue
            at, sentence = found.start(), found.group()
        cursor = at + len(sentence)
        cuts.append(cursor)
    if not cuts or cuts[-1] != len(para):
        cuts.append(len(para))
    spans, previous = [], 0
    for cut in cuts:
        s, e = _trim(text, start + previous, start + cut)
        if s < e:
            spans.append((s, e))
        previous = cut
    return spans


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Exact (start, end) spans of the sentences of `text`, in order; never crossing a paragraph."""
    return [span for p in paragraphs(text) for span in _sentences_in(text, *p)]


def _units(text: str, max_words: int) -> list[_Sentence]:
    """Sentences with their paragraph number; one longer than `max_words` is cut at word boundaries."""
    units = []
    for number, paragraph in enumerate(paragraphs(text)):
        for start, end in _sentences_in(text, *paragraph):
            words = list(_WORD.finditer(text, start, end))
            for i in range(0, len(words), max_words):
                piece = words[i:i + max_words]
                units.append(_Sentence(piece[0].start(), piece[-1].end(), len(piece), number))
    return units


def _overlap(sentences: list[_Sentence], words: int) -> list[_Sentence]:
    """The trailing sentences totalling at most `words`, never all of them (chunks must differ)."""
    tail: list[_Sentence] = []
    for sentence in reversed(sentences[1:]):
        if sum(s.words for s in tail) + sentence.words > words:
            break
        tail.insert(0, sentence)
    return tail


def chunk_document(doc: Document, params: ChunkingParams = ChunkingParams()) -> list[Chunk]:
    """Split a document into overlapping chunks of whole sentences, by exact offsets."""
    groups: list[list[_Sentence]] = []
    current: list[_Sentence] = []
    fresh = 0  # words in `current` that are not overlap from the previous chunk
    for unit in _units(doc.text, params.max_words):
        size = sum(s.words for s in current)
        new_paragraph = bool(current) and unit.paragraph != current[-1].paragraph
        if fresh and (size + unit.words > params.max_words or (new_paragraph and fresh >= params.min_words)):
            groups.append(current)
            current = _overlap(current, min(params.overlap_words, params.max_words - unit.words))
            fresh = 0
        current.append(unit)
        fresh += unit.words
    if fresh:
        groups.append(current)

    return [
        Chunk(doc_id=doc.doc_id, index=i, start=g[0].start, end=g[-1].end, text=doc.text[g[0].start:g[-1].end])
        for i, g in enumerate(groups)
    ]
