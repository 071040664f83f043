"""One conversation in the browser: what is shown, what the model is told, and answering as a stream.

Each browser session has one `Conversation` (Gradio keeps a copy of the initial one per session and
hands the same object to every event of that session). `respond` adds the question with "Searching
the articles…", then shows the articles being read, the sentences the model picked as evidence and
the answer as it is written, then the finished answer with its sources, yielding the chat to draw
after each step. Stop and Clear act at once, from another thread:
they take the answer's ticket away, so a stream still winding down (the model is only told to stop
between two pieces) can no longer change the page. A stopped or failed answer stays on the page but
never enters the history that follow-up questions carry. No Gradio here: `app.py` wires it up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from qa import Answer, Assistant, Evidence, QAError, SearchFilter, Searched

from . import render

log = logging.getLogger(__name__)

UNEXPECTED = "something went wrong while answering (the server log has the details). Try again."


@dataclass(frozen=True)
class Exchange:
    question: str
    html: str                        # the assistant's message as shown
    answer: Answer | None = None     # the checked answer; None while pending, after an error or a stop
    partial: str | None = None       # the text streamed so far, while the answer is being made

    @property
    def pending(self) -> bool:
        return self.partial is not None


def waiting(question: str) -> Exchange:
    return Exchange(question, render.pending_html(render.SEARCHING), partial="")


def messages(exchanges: list[Exchange]) -> list[dict]:
    """The chat in Gradio's messages format: a user and an assistant message per exchange, both HTML."""
    out = []
    for e in exchanges:
        out += [{"role": "user", "content": render.question_html(e.question)},
                {"role": "assistant", "content": e.html}]
    return out


class Conversation:
    """The exchanges of one session, changed only under its lock and only by the answer holding the ticket."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self.sent: str | None = None   # a question on its way to the model, until its answer begins
        self._ticket = 0
        self._lock = threading.Lock()

    def __deepcopy__(self, memo) -> Conversation:  # Gradio's per-session copy of the initial value
        return Conversation()

    @property
    def pending(self) -> bool:
        return bool(self.exchanges) and self.exchanges[-1].pending

    def answered(self) -> list[tuple[str, Answer]]:
        return [(e.question, e.answer) for e in self.exchanges if e.answer is not None]

    def history(self) -> list[tuple[str, str]]:
        """(question, final answer text) pairs, as `Assistant.stream` takes them for follow-up questions."""
        return [(q, a.text) for q, a in self.answered()]

    def messages(self) -> list[dict]:
        return messages(self.exchanges)

    def begin(self, question: str) -> int:
        """Show `question` as being answered; the ticket that lets its answer change the conversation."""
        with self._lock:
            self._ticket += 1
            self.sent = None
            if self.pending:  # an answer whose stream was cancelled without Stop (a closed tab)
                self.exchanges[-1] = _stopped(self.exchanges[-1])
            self.exchanges.append(waiting(question))
            return self._ticket

    def update(self, ticket: int, exchange: Exchange) -> bool:
        """Put `exchange` in place of the one being answered, unless Stop or Clear came first."""
        with self._lock:
            if ticket != self._ticket or not self.pending:
                return False
            self.exchanges[-1] = exchange
            return True

    def stop(self) -> None:
        """End the answer being made, keeping what was written of it."""
        with self._lock:
            self._ticket += 1
            self.sent = None
            if self.pending:
                self.exchanges[-1] = _stopped(self.exchanges[-1])

    def clear(self) -> None:
        with self._lock:
            self._ticket += 1
            self.sent = None
            self.exchanges = []


def _stopped(e: Exchange) -> Exchange:
    return Exchange(e.question, render.stopped_html(e.partial or ""))


def articles_for(bot: Assistant, answer: Answer) -> dict[str, str]:
    """The full text of each cited article, to show the passages in context."""
    texts = {}
    for c in answer.citations:
        if c.doc_id not in texts:
            try:
                texts[c.doc_id] = bot.store.document(c.doc_id).text
            except KeyError:  # replaced by an upload since: the passage is shown alone
                pass
    return texts


def respond(bot: Assistant, question: str, conversation: Conversation, passages: int | None = None,
            since: str = "", until: str = "", sources: str = "") -> Iterator[list[dict]]:
    """Answer `question` as the next turn of `conversation`, yielding the chat after every step.

    `since`, `until`, `sources`: the filter boxes as typed (dates, comma-separated parts of file paths).

    Ends early, without a last word, when the user stops the answer or clears the conversation.
    """
    history = conversation.history()
    ticket = conversation.begin(question)
    turn = len(conversation.exchanges)
    yield conversation.messages()
    partial, status, evidence = "", render.SEARCHING, ()
    try:
        filters = SearchFilter.parse(since, until, sources)
        answer = None
        for event in bot.stream(question, history, filters, passages=int(passages) if passages else None):
            if isinstance(event, Answer):
                answer = event
                continue
            if isinstance(event, Searched):
                status = render.reading_status(event.titles)
            elif isinstance(event, Evidence):
                status, evidence = render.WRITING, event.quotes
            else:
                status, partial = render.WRITING, partial + event
            shown = Exchange(question, render.pending_html(status, partial, evidence), partial=partial)
            if not conversation.update(ticket, shown):
                return
            yield conversation.messages()
        assert answer is not None, "Assistant.stream ended without an answer"
        done = Exchange(question, render.answer_html(answer, turn, articles_for(bot, answer)), answer)
    except QAError as e:
        done = Exchange(question, render.error_html(str(e)))
    except Exception:  # the user gets a message, the log gets the traceback
        log.exception("answering %r failed", question)
        done = Exchange(question, render.error_html(UNEXPECTED))
    if conversation.update(ticket, done):
        yield conversation.messages()
