"""Scoring the assistant on question files (the format of shared/eval/README.md).

Every metric the README lists is computed from real answers: accuracy (`expect_any`, and every group
of `expect_all`), fact recall, citation precision and coverage, multi-source answers (`min_sources`),
refusals, retrieval hit@k for the passages the model reads and for wider nets (fused, dense and
keyword search), and latency: the first thing a reader sees (the evidence, or the text), and the end.
Each figure is also given for the even and the odd half of a set, so what was tuned on one half can
be checked on the other.

`prepare` finds or builds the index a set is asked against: a `questions.jsonl` beside a `corpus.tgz`
(news-2025) gets an index of that archive, any other file an index of the `corpus/` folder next to its
folder (the sample articles); both are built once into the cache folder and reused.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from index import InputError, Passage

from .answer import Answer
from .assistant import Assistant
from .matching import fold
from .retrieval import retrieve, standalone_query

WIDER = (10, 20)  # hit@k beyond the passages the model reads


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    conversation: tuple[str, ...]
    expect_any: tuple[str, ...]
    expect_all: tuple[tuple[str, ...], ...]
    evidence_any: tuple[str, ...]
    sources: tuple[str, ...]
    answerable: bool
    min_sources: int = 0


@dataclass
class Result:
    question: Question
    answer: Answer
    correct: bool
    recall: float | None        # share of expect_all groups matched; None without expect_all
    supporting: int             # citations that support it
    articles: int               # distinct articles among the supporting citations
    hits: dict[str, bool] = field(default_factory=dict)   # retrieval hit@k by method and k


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
                expect_any=tuple(row.get("expect_any", ())),
                expect_all=tuple(tuple(group) for group in row.get("expect_all", ())),
                evidence_any=tuple(row.get("evidence_any", ())), sources=tuple(row.get("sources", ())),
                answerable=bool(row.get("answerable", True)), min_sources=int(row.get("min_sources") or 0)))
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}, line {number}: not a question record ({e})") from None
    return rows


def _has(text: str, needles: Sequence[str]) -> bool:
    """Case-insensitive, accents ignored (README)."""
    folded = fold(text)
    return any(fold(n) in folded for n in needles)


def _supports(passage_source: str, passage_text: str, q: Question) -> bool:
    return Path(passage_source).name in q.sources and _has(passage_text, q.evidence_any)


def hit(passages: Sequence[Passage], q: Question) -> bool:
    return any(_supports(p.source, p.text, q) for p in passages)


def judge(q: Question, answer: Answer) -> tuple[bool, float | None]:
    """(correct, fact recall) of an answer."""
    recall = None
    if q.expect_all:
        recall = sum(_has(answer.text, group) for group in q.expect_all) / len(q.expect_all)
    correct = q.answerable and not answer.refused and (not q.expect_any or _has(answer.text, q.expect_any)) \
        and (recall is None or recall == 1.0)
    return correct, recall


def score(q: Question, answer: Answer, hits: dict[str, bool] | None = None) -> Result:
    """The judged answer: correct or not, fact recall, and its citations that support it."""
    supporting = [c for c in answer.citations if _supports(c.source, c.text, q)]
    correct, recall = judge(q, answer)
    return Result(q, answer, correct, recall, len(supporting), len({c.doc_id for c in supporting}), hits or {})


def half(questions: Sequence[Question], which: str) -> list[Question]:
    """The questions at even or odd positions of a set ("all": every one): tune on one, check on the other."""
    return list(questions) if which == "all" else list(questions[0 if which == "even" else 1::2])


def ask(bot: Assistant, q: Question) -> tuple[Answer, list[tuple[str, str]]]:
    """The answer to `q`, asked after the earlier turns of its conversation, and those turns."""
    history: list[tuple[str, str]] = []
    for turn in q.conversation[:-1]:
        history.append((turn, bot.ask(turn, history).text))
    return bot.ask(q.question, history), history


def run(bot: Assistant, questions: Sequence[Question], on_result: Callable[[Result], None] | None = None) -> list[Result]:
    results = []
    k = bot.settings.passages
    for q in questions:
        answer, history = ask(bot, q)
        hits = {}
        if q.answerable:
            query = standalone_query(q.question, history)
            fused = retrieve(bot.store, query, max(WIDER))
            hits = {f"fused@{n}": hit(fused[:n], q) for n in (k, *WIDER)}
            hits[f"dense@{k}"] = hit(bot.store.search(query, k), q)
            hits[f"bm25@{k}"] = hit(bot.store.keyword_search(query, k), q)
        result = score(q, answer, hits)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def _percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _share(n: int, d: int) -> dict:
    return {"n": n, "of": d, "rate": round(n / d, 3) if d else None}


def _latency(values: Sequence[float]) -> dict:
    return {"p50": round(statistics.median(values), 2) if values else 0, "p90": round(_percentile(values, 90), 2)}


def summarize(results: Sequence[Result]) -> dict:
    answerable = [r for r in results if r.question.answerable]
    unanswerable = [r for r in results if not r.question.answerable]
    cited = [c for r in answerable for c in r.answer.citations]
    recalls = [r.recall for r in answerable if r.recall is not None]
    multi = [r for r in answerable if r.question.min_sources]
    methods = sorted({m for r in answerable for m in r.hits}, key=lambda m: (m.split("@")[0], int(m.split("@")[1])))
    timings = [r.answer.timings for r in results]
    return {
        "questions": len(results),
        "answer_accuracy": _share(sum(r.correct for r in answerable), len(answerable)),
        "fact_recall": round(statistics.mean(recalls), 3) if recalls else None,
        "citation_precision": _share(sum(r.supporting for r in answerable), len(cited)),
        "citation_coverage": _share(sum(r.supporting > 0 for r in answerable), len(answerable)),
        "multi_source": _share(sum(r.articles >= r.question.min_sources for r in multi), len(multi)),
        "unanswerable_refused": _share(sum(r.answer.refused for r in unanswerable), len(unanswerable)),
        "answerable_refused": _share(sum(r.answer.refused for r in answerable), len(answerable)),
        **{f"hit@{m.split('@')[1]}_{m.split('@')[0]}": _share(sum(r.hits.get(m, False) for r in answerable),
                                                             len(answerable)) for m in methods},
        "first_visible_s": _latency([t.first_text for t in timings]),
        "evidence_s": _latency([t.evidence for t in timings]),
        "total_s": _latency([t.total for t in timings]),
        "prompt_tokens_p50": statistics.median([t.prompt_tokens for t in timings]) if timings else 0,
    }


def by_half(results: Sequence[Result]) -> dict[str, dict]:
    """The summary of all questions, and of the even and the odd positions in the file."""
    return {"all": summarize(results), "even": summarize(results[0::2]), "odd": summarize(results[1::2])}


# -- which index a set is asked against -----------------------------------------------------------------------

def question_files(paths: Sequence[str | Path]) -> list[Path]:
    """The question files named, a folder standing for every set in it (`*.jsonl`, `*/questions.jsonl`)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(path.glob("*.jsonl")) + sorted(path.glob("*/questions.jsonl"))
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"no question file or folder at {path}")
    if not files:
        raise InputError(f"no question files (*.jsonl) in {', '.join(map(str, paths))}")
    return files


def corpus_of(questions: Path) -> Path:
    """The articles a question file is about: `corpus.tgz` beside it, else the `corpus/` beside its folder."""
    archive = questions.parent / "corpus.tgz"
    if archive.is_file():
        return archive
    folder = questions.parent.parent / "corpus"
    if folder.is_dir():
        return folder
    raise InputError(f"no articles found for {questions}: expected {archive} or {folder} (or give --index)")


def prepare(questions: Path, cache: Path, build: Callable[[Path, Path], None]) -> Path:
    """The index for `questions`, kept in `cache` and named after its articles' bytes: `build(articles,
    index_dir)` (an ingest) builds it the first time and brings it up to date every other time: a newer
    loader may read the same files differently (a dateline it now strips), and an index kept from an
    older one would be measured instead of the product. The ingest re-embeds only what changed."""
    corpus = corpus_of(questions)
    digest = hashlib.sha256()
    for f in [corpus] if corpus.is_file() else sorted(p for p in corpus.rglob("*") if p.is_file()):
        digest.update(f.name.encode() + f.read_bytes())
    index_dir = cache / f"{questions.parent.name}-{digest.hexdigest()[:12]}"
    articles = corpus
    if corpus.is_file():
        articles = cache / f"{index_dir.name}-articles"
        if not articles.is_dir():
            with tarfile.open(corpus) as tar:
                tar.extractall(articles, filter="data")
    build(articles, index_dir)
    return index_dir
