"""Tiny stand-ins for the real models, shared by the index and qa tests.

`HashEmbedder` gives texts that share words a high cosine similarity, which is all retrieval tests
need, in microseconds and without torch. `write_article` puts a made-up article on disk.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_WORD = re.compile(r"\w+")


@dataclass
class HashEmbedder:
    """Bag of lowercase words hashed (crc32, stable across runs) into `dim` buckets, L2-normalized.

    `calls` counts texts embedded, so tests can check that nothing was embedded.
    """

    dim: int = 64
    name: str = "fake-hash-64"
    calls: list[int] = field(default_factory=list)

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                vectors[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)

    @property
    def embedded(self) -> int:
        return sum(self.calls)


ARTICLES = {
    "pipeline.txt": (
        "Druzhba pipeline deliveries resume\n\n"
        "date 2024-03-02\n\n"
        "Oil deliveries through the Druzhba pipeline to Hungary resumed on Saturday after a two-day halt, "
        "the operator MOL said. Engineers repaired a damaged pumping station near the border.\n\n"
        "The pipeline carries Russian crude oil to refineries in Hungary and Slovakia. Both countries "
        "depend on it for most of their supply."
    ),
    "summit.txt": (
        "Leaders meet in Beijing for the Belt and Road forum\n\n"
        "Heads of government from thirty countries met in Beijing on Tuesday for the Belt and Road forum. "
        "The host promised new loans for railways and ports across Asia and Africa.\n\n"
        "Several European leaders stayed away from the forum, citing the war in Ukraine."
    ),
    "harvest.md": (
        "# Record wheat harvest in the plains\n\n"
        "Farmers in the plains brought in a record wheat harvest this summer, helped by a mild spring "
        "and late rains. Grain prices fell for the third month in a row as silos filled up.\n\n"
        "Exporters expect shipments through the Black Sea ports to rise in the autumn."
    ),
    "election.html": (
        "<html><head><title>Mayor wins second term</title><script>var tracker = 'SCRIPT_TEXT';</script></head>"
        "<body><nav><a href='/'>Home</a> <a href='/news'>NAV_TEXT News</a></nav><article>"
        "<h1>Mayor wins second term</h1>"
        "<p>The mayor of the river town won a second term on Sunday with sixty percent of the vote, "
        "the election commission said after all ballots were counted.</p>"
        "<p>Turnout was the highest in two decades. The mayor promised a new bridge and a bigger library.</p>"
        "</article><footer>All rights reserved</footer></body></html>"
    ),
}


def write_article(folder: Path, name: str, text: str | bytes) -> Path:
    """Write one article (text as UTF-8, or raw bytes) and return its path."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_articles(folder: Path, articles: dict[str, str] = ARTICLES) -> Path:
    """Write several articles into `folder` (made-up news by default) and return the folder."""
    for name, text in articles.items():
        write_article(folder, name, text)
    return Path(folder)


_SENTENCE = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)


def shown_sentences(messages: list[dict]) -> dict[int, str]:
    """The numbered sentences the assistant put in its prompt: {1: text, ...}."""
    return {int(n): text for n, text in _SENTENCE.findall(messages[-1]["content"])}


@dataclass
class FakeGenerator:
    """A chat model that replies with `reply(messages)` (a string, or a function of the messages).

    The reply streams in pieces of a few characters, like a real model's tokens. Every call's
    messages and grammar are kept in `calls`.
    """

    reply: object = "Evidence: none"
    context_size: int = 2048
    name: str = "fake-model"
    calls: list[tuple[list[dict], str | None]] = field(default_factory=list)

    def count_tokens(self, messages: list[dict]) -> int:
        return sum(len(m["content"].split()) + 4 for m in messages)

    def generate(self, messages, *, max_tokens=256, grammar=None):
        self.calls.append((messages, grammar))
        text = self.reply(messages) if callable(self.reply) else str(self.reply)
        for i in range(0, len(text), 4):
            yield text[i:i + 4]


def quoting(find: str, answer: str | None = None, cite: int | None = None):
    """A reply function: pick the first shown sentence containing `find` as evidence, and answer with that
    sentence (or with `answer`), citing it (or the sentence numbered `cite`). Nothing found: "none"."""

    def reply(messages):
        for n, text in shown_sentences(messages).items():
            if find.lower() in text.lower():
                return f"Evidence: {n}\n[{cite or n}] {answer if answer is not None else text}"
        return "Evidence: none"

    return reply


def best_sentence(messages: list[dict]) -> str:
    """A reply like the packaged model's: the shown sentence that shares most words with the question, as
    the evidence and, word for word, as the answer; "none" when nothing was shown (the warm-up)."""
    shown = shown_sentences(messages)
    asked = re.search(r"^Question: (.+)$", messages[-1]["content"], re.M)
    if not shown or not asked:
        return "Evidence: none"
    words = set(_WORD.findall(asked[1].lower()))
    n = max(shown, key=lambda i: len(words & set(_WORD.findall(shown[i].lower()))))
    return f"Evidence: {n}\n[{n}] {shown[n]}"


def indexed_store(folder: Path, embedder, articles: dict[str, str]):
    """An index of `articles` (written to `folder`/a, indexed in `folder`/ix), opened."""
    from index import Store, ingest

    ingest([write_articles(Path(folder) / "a", articles)], Path(folder) / "ix", embedder, progress=False)
    return Store.open(Path(folder) / "ix", embedder)
