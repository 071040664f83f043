"""Scoring the assistant on a question file (the format of shared/eval/README.md).

Every metric the README lists is computed from real answers: accuracy, citation precision and
coverage, refusals, retrieval hit@k (for the fused retrieval the assistant uses, and for dense and
keyword search alone), plus latency percentiles and the share of time spent outside the model.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from index import InputError, Passage

from .answer import Answer
from .assistant import Assistant
from .retrieval import standalone_query


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    conversation: tuple[str, ...]
    expect_any: tuple[str, ...]
    evidence_any: tuple[str, ...]
    sources: tuple[str, ...]
    answerable: bool


@dataclass
class Result:
    question: Question
    answer: Answer
    correct: bool
    supporting: int          # citations that support it
    hits: dict[str, bool] = field(default_factory=dict)   # retrieval hit@k by method


def load_questions(path: str | Path) -> list[Question]:
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append(Question(
                id=str(row.get("id", number)), question=row["question"],
                conversation=tuple(row.get("conversation") or (row["question"],)),
                expect_any=tuple(row.get("expect_any", ())), evidence_any=tuple(row.get("evidence_any", ())),
                sources=tuple(row.get("sources", ())), answerable=bool(row.get("answerable", True))))
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}, line {number}: not a question record ({e})") from None
    return rows


def _has(text: str, needles: Sequence[str]) -> bool:
    return any(n.lower() in text.lower() for n in needles)


def _supports(passage_source: str, passage_text: str, q: Question) -> bool:
    return Path(passage_source).name in q.sources and _has(passage_text, q.evidence_any)


def _hit(passages: Sequence[Passage], q: Question) -> bool:
    return any(_supports(p.source, p.text, q) for p in passages)


def run(bot: Assistant, questions: Sequence[Question], k: int = 5,
        on_result: Callable[[Result], None] | None = None) -> list[Result]:
    results = []
    for q in questions:
        history: list[tuple[str, str]] = []
        for turn in q.conversation[:-1]:
            history.append((turn, bot.ask(turn, history).text))
        answer = bot.ask(q.question, history)
        supporting = sum(_supports(c.source, c.text, q) for c in answer.citations)
        correct = q.answerable and not answer.refused and _has(answer.text, q.expect_any)
        hits = {}
        if q.answerable:
            query = standalone_query(q.question, history)
            hits = {"fused": _hit(bot.search(query, k), q),
                    "dense": _hit(bot.store.search(query, k), q),
                    "bm25": _hit(bot.store.keyword_search(query, k), q)}
        result = Result(q, answer, correct, supporting, hits)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def _percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summarize(results: Sequence[Result], k: int = 5) -> dict:
    answerable = [r for r in results if r.question.answerable]
    unanswerable = [r for r in results if not r.question.answerable]
    cited = [c for r in answerable for c in r.answer.citations]
    first = [r.answer.timings.first_token for r in results]
    first_text = [r.answer.timings.first_text for r in results]
    total = [r.answer.timings.total for r in results]
    outside = [(r.answer.timings.total - r.answer.timings.llm) / r.answer.timings.total
               for r in results if r.answer.timings.total > 0]

    def share(n: int, d: int) -> dict:
        return {"n": n, "of": d, "rate": round(n / d, 3) if d else None}

    return {
        "questions": len(results),
        "answer_accuracy": share(sum(r.correct for r in answerable), len(answerable)),
        "citation_precision": share(sum(r.supporting for r in answerable), len(cited)),
        "citation_coverage": share(sum(r.supporting > 0 for r in answerable), len(answerable)),
        "unanswerable_refused": share(sum(r.answer.refused for r in unanswerable), len(unanswerable)),
        "answerable_refused": share(sum(r.answer.refused for r in answerable), len(answerable)),
        **{f"retrieval_hit@{k}_{m}": share(sum(r.hits.get(m, False) for r in answerable), len(answerable))
           for m in ("fused", "dense", "bm25")},
        "first_token_s": {"p50": round(statistics.median(first), 2) if first else 0,
                          "p90": round(_percentile(first, 90), 2), "max": round(max(first, default=0), 2)},
        "first_answer_text_s": {"p50": round(statistics.median(first_text), 2) if first_text else 0,
                                "p90": round(_percentile(first_text, 90), 2)},
        "total_s": {"p50": round(statistics.median(total), 2) if total else 0,
                    "p90": round(_percentile(total, 90), 2), "max": round(max(total, default=0), 2)},
        "outside_llm_share_p50": round(statistics.median(outside), 3) if outside else 0,
    }
