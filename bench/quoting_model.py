"""Shared by bench/load.py and bench/memory.py: choosing the chat model, a fast stand-in for it, and
counting how many generations run at once.

`QuotingModel` answers like the packaged model does (the reply the grammar allows), picking and quoting
the shown sentence that shares most words with the question, after `seconds` per answer, one
answer at a time as `LlamaGenerator` does. With it, a run exercises the server, retrieval, the real
embedder and the citation checks, everything but llama.cpp, in minutes instead of hours.
"""

from __future__ import annotations

import re
import threading
import time

import qa.llm
from qa.models import PACKAGED_MODELS

_WORD = re.compile(r"\w+")
_SENTENCE = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)


def model_name(name: str) -> str | None:
    """--model as given: "default" (None), a packaged model's name or its unique prefix, or a path."""
    if name == "default":
        return None
    matches = [m for m in PACKAGED_MODELS if m.startswith(name)]
    return matches[0] if len(matches) == 1 else name


class QuotingModel:
    def __init__(self, seconds: float = 0.0, name: str = "fake-quoting-model", context_size: int = 2048):
        self.seconds = seconds
        self.name = name
        self.context_size = context_size
        self._lock = threading.Lock()

    def count_tokens(self, messages: list[dict]) -> int:
        return sum(len(m["content"]) // 4 + 4 for m in messages)

    def generate(self, messages, *, max_tokens: int = 256, grammar: str | None = None):
        with self._lock:
            yield from self._complete(messages[-1]["content"])

    def _complete(self, prompt: str):
        sentences = dict(_SENTENCE.findall(prompt))
        asked = re.search(r"^Question: (.+)$", prompt, re.MULTILINE)
        if not sentences or not asked:  # the warm-up
            yield "Evidence: none"
            return
        words = set(_WORD.findall(asked[1].lower()))
        n = max(sentences, key=lambda i: len(words & set(_WORD.findall(sentences[i].lower()))))
        reply = f"Evidence: {n}\n[{n}] {sentences[n]}"
        pieces = [reply[i:i + 8] for i in range(0, len(reply), 8)]
        for piece in pieces:
            if self.seconds:
                time.sleep(self.seconds / len(pieces))
            yield piece


class Overlap:
    """How many generations run at once (`peak`), counted around the model's innermost call: `qa.llm.decode`
    for the real model, `_complete` for the stand-in. Waiting for the model's lock does not count as running."""

    def __init__(self, generator) -> None:
        self.running = self.peak = self.total = 0
        self._lock = threading.Lock()
        owner, attribute = (qa.llm, "decode") if hasattr(generator, "_llm") else (generator, "_complete")
        inner = getattr(owner, attribute)

        def counted(*args, **kwargs):
            with self._lock:
                self.running += 1
                self.total += 1
                self.peak = max(self.peak, self.running)
            try:
                yield from inner(*args, **kwargs)
            finally:
                with self._lock:
                    self.running -= 1

        setattr(owner, attribute, counted)
