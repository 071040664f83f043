"""A synthetic news corpus of any size, recombined from the sample articles, for the scale benchmark.

Each made-up article takes sentences from the sample articles in a random order, with the names
(capitalized words inside a sentence) swapped for invented ones, consistently within the article,
and every number replaced by another of the same length. That gives realistic passage lengths,
sentence structure and vocabulary growth (thousands of names), but the topics all stay those of the
five samples: retrieval on it is harder than on a real corpus of the same size. Deterministic for
a given seed. Never committed: the benchmark writes it to a temporary folder.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator
from pathlib import Path

from index import chunk_document, iter_files, load_file, split_sentences
from index.types import Document

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "articles"
_NAME = re.compile(r"(?<=\s)[A-Z][a-zà-ž’']+\b")
_NUMBER = re.compile(r"\d+")
_SYLLABLES = ("ka ro vin del mar tse lo bu gan ri sha pol ten vo ni ze la ter mu dor ba ki fen so "
              "hal rev ul ost ja mi cor lu pen").split()


def _sentences() -> list[str]:
    out = []
    for path in iter_files([SAMPLES]):
        doc = load_file(path)
        for start, end in split_sentences(doc.text):
            sentence = doc.text[start:end]
            if len(sentence.split()) >= 6 and not sentence.lstrip().lower().startswith("date "):
                out.append(sentence)
    return out


def _names(rng: random.Random, count: int) -> list[str]:
    names = set()
    while len(names) < count:
        names.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize())
    return sorted(names)


def articles(seed: int = 0, words: tuple[int, int] = (200, 700)) -> Iterator[str]:
    """An endless stream of made-up article texts (a headline, a dateline, paragraphs)."""
    rng = random.Random(seed)
    pool = _sentences()
    names = _names(rng, 20_000)
    while True:
        mapping: dict[str, str] = {}

        def vary(sentence: str) -> str:
            sentence = _NAME.sub(lambda m: mapping.setdefault(m.group(), rng.choice(names))
                                 if rng.random() < 0.7 else m.group(), sentence)
            return _NUMBER.sub(lambda m: str(rng.randrange(10 ** (len(m.group()) - 1) if len(m.group()) > 1 else 0,
                                                           10 ** len(m.group()))), sentence)

        target, body, paragraph = rng.randint(*words), [], []
        total = 0
        while total < target:
            sentence = vary(rng.choice(pool))
            paragraph.append(sentence)
            total += len(sentence.split())
            if len(paragraph) >= rng.randint(1, 3):
                body.append(" ".join(paragraph))
                paragraph = []
        if paragraph:
            body.append(" ".join(paragraph))
        title = " ".join(vary(rng.choice(pool)).rstrip(".").split()[:rng.randint(6, 12)])
        date = f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        yield f"{title}\n\ndate {date}\n\n" + "\n\n".join(body) + "\n"


def write_corpus(folder: Path, passages: int, seed: int = 0, per_folder: int = 1000) -> int:
    """Write made-up articles into `folder` until they hold about `passages` passages; returns the file count.

    Passages per article are estimated from the first 50 articles, chunked for real (chunking them
    all would cost as much as a third of a hash-embedder ingest).
    """
    folder.mkdir(parents=True, exist_ok=True)
    stream = articles(seed)
    first = [next(stream) for _ in range(50)]
    chunks = sum(len(chunk_document(Document(str(i), "", "", None, t, ""))) for i, t in enumerate(first))
    words_per_passage = sum(len(t.split()) for t in first) / chunks
    written = words = 0
    for text in itertools.chain(first, stream):
        if words / words_per_passage >= passages:
            break
        sub = folder / f"{written // per_folder:04d}"
        sub.mkdir(exist_ok=True)
        (sub / f"{written:07d}.txt").write_text(text, encoding="utf-8")
        written += 1
        words += len(text.split())
    return written
