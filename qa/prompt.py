"""What the chat model is asked, and the output format it is held to.

The models we ship are small (0.5-1.5B parameters). Left free, they answer from memory, cite at
random or answer with a bare "[1]". So the task is narrowed: the model picks one numbered passage,
copies the words that answer the question from it, then writes a short answer. A llama.cpp grammar
forces exactly that JSON shape, so there is always a passage number and a quote we can check against
the passage; the checking itself lives in `citations.py`.

The system message never changes, so llama.cpp keeps it in its KV cache between questions; the
passages and the question come after it, in the user message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from index import Passage

from . import injection
from .llm import Message

SYSTEM = (
    "You answer questions about news articles using only the numbered passages you are given. "
    'Reply in JSON. "passage": the number of the passage that answers the question. '
    '"quote": copy the exact words of that passage that answer it. '
    '"answer": a short answer to the question, in one sentence, based only on the quote. '
    "Never use knowledge from outside the passages."
)

QUOTE_CHARS = 200
ANSWER_CHARS = 200


def grammar(passages: int) -> str:
    """GBNF for {"passage": n, "quote": "...", "answer": "..."} with n in 1..passages."""
    numbers = " | ".join(f'"{n}"' for n in range(1, passages + 1))
    return (
        'root ::= "{\\"passage\\": " num ", \\"quote\\": \\"" quote "\\", \\"answer\\": \\"" answer "\\"}"\n'
        f"num ::= {numbers}\n"
        f'quote ::= [^"\\\\\\n]{{1,{QUOTE_CHARS}}}\n'
        f'answer ::= [^"\\\\\\n]{{1,{ANSWER_CHARS}}}\n'
    )


_MARKERS = re.compile(r"\s*\[\d+(?:,\s*\d+)*\]")


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def build_messages(question: str, passages: Sequence[Passage],
                   history: Sequence[tuple[str, str]] = ()) -> list[Message]:
    # What an article says to the model (injected instructions, fake chat turns, markup) is not shown to it.
    numbered = "\n\n".join(f"[{n}] {_one_line(injection.blank(p.text))}" for n, p in enumerate(passages, 1))
    earlier = ""
    if history:
        last_q, last_a = history[-1]
        last_a = _MARKERS.sub("", last_a)
        earlier = f"Earlier question: {_one_line(last_q)}\nEarlier answer: {_one_line(last_a)}\n\n"
    user = f"Passages:\n{numbered}\n\n{earlier}Question: {_one_line(question)}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


@dataclass(frozen=True)
class Reply:
    """The model's structured reply; fields are empty where the model broke off."""

    passage: int = 0
    quote: str = ""
    answer: str = ""


_FIELD = re.compile(r'"(passage|quote|answer)"\s*:\s*("((?:[^"\\]|\\.)*)"?|\d+)')


def parse_reply(raw: str) -> Reply:
    """Read the reply, tolerating a truncated or slightly malformed one (a fake or another backend)."""
    try:
        data = json.loads(raw)
        if isinstance(data, dict):
            return Reply(int(data.get("passage") or 0), str(data.get("quote") or ""), str(data.get("answer") or ""))
    except (ValueError, TypeError):
        pass
    fields: dict[str, str] = {}
    for name, value, text in _FIELD.findall(raw):
        fields.setdefault(name, text if value.startswith('"') else value)
    number = fields.get("passage", "0")
    return Reply(int(number) if number.isdigit() else 0, fields.get("quote", ""), fields.get("answer", ""))


class AnswerStream:
    """Pulls the characters of the "answer" field out of the JSON as it streams, for display."""

    _OPEN = re.compile(r'"answer"\s*:\s*"')

    def __init__(self) -> None:
        self.raw = ""
        self._shown = 0
        self._start: int | None = None

    def feed(self, piece: str) -> str:
        self.raw += piece
        if self._start is None:
            m = self._OPEN.search(self.raw)
            if not m:
                return ""
            self._start = self._shown = m.end()
        end = self.raw.find('"', self._shown)
        upto = len(self.raw) if end < 0 else end
        if upto > self._shown and self.raw[upto - 1] == "\\":
            upto -= 1  # wait for the escaped character
        new = self.raw[self._shown:upto]
        self._shown = upto
        return new
