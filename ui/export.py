"""Answers for outside the page: a conversation as Markdown (export and copy) and an answer as JSON (the API).

Answers are written with `Answer.to_markdown()` (text with [n] markers, then the numbered sources and
their quotes), so an export reads the same as `qa ask`. A Markdown file is rendered by whatever the user
opens it with, so every text from an article, the model or the question is made inert first: it reads
the same, but cannot turn into a link, an image or HTML there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from qa import Answer
from qa.answer import inert


def answer_markdown(answer: Answer) -> str:
    """One answer with its sources, or the refusal with what was searched."""
    if not answer.refused:
        return answer.to_markdown()
    searched = list(dict.fromkeys(f"{inert(p.title)}{f', {p.date}' if p.date else ''}" for p in answer.passages))
    lines = [inert(answer.text)] + (["", "Searched:"] + [f"- {t}" for t in searched] if searched else [])
    return "\n".join(lines)


def conversation_markdown(turns: Sequence[tuple[str, Answer]], model: str = "", when: datetime | None = None) -> str:
    """The questions and their answers, in order, under a heading that says when and with which model."""
    when = when or datetime.now()
    head = f"# Questions about the news, {when:%Y-%m-%d %H:%M}"
    lines = [head, "", f"Answered by {model}, from the indexed articles only." if model else ""]
    for i, (question, answer) in enumerate(turns, 1):
        lines += ["", f"## {i}. {inert(' '.join(question.split()))}", "", answer_markdown(answer)]
    return "\n".join(lines).strip() + "\n"


def answer_record(answer: Answer) -> dict:
    """The answer as plain JSON data: text, refusal flag, citations with their quotes, what was searched."""
    return {
        "question": answer.question,
        "text": answer.text,
        "refused": answer.refused,
        "citations": [{
            "n": c.n, "title": c.title, "date": c.date, "source": c.source, "doc_id": c.doc_id,
            "passage_id": c.passage_id, "passage": c.text, "start": c.start, "end": c.end,
            "quote": c.text[max(c.quote_start - c.start, 0):max(c.quote_end - c.start, 0)],
            "quote_start": c.quote_start, "quote_end": c.quote_end, "score": c.score,
        } for c in answer.citations],
        "searched": list(dict.fromkeys(p.title for p in answer.passages)),
        "notes": list(answer.notes),
        "seconds": round(answer.timings.total, 3),
    }
