"""Is the evidence among the sentences the model reads? Measured without the chat model.

    python bench/shown.py --news-index DIR --sample-index DIR [--passages 4,8,12] [--keep 12,16]

The model reads the dozen sentences of the retrieved passages most about the question
(`qa.prompt.choose_sentences`), not whole passages, so the figure that bounds its answers is whether an
answer-bearing sentence is among those shown: a sentence from a file in `sources` holding an
`evidence_any` string ("shown hit"); for questions with `expect_all`, the share of its groups that
the shown sentences hold ("shown recall"). For each number of passages retrieved (the wider net) and
of sentences kept (the cut), it prints both for every set and for the even and odd halves of each,
with the mean length of what is shown and the time to choose. Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from index import Store, default_embedder  # noqa: E402
from qa import prompt  # noqa: E402
from qa.evaluation import Question, load_questions  # noqa: E402
from qa.matching import fold  # noqa: E402
from qa.retrieval import retrieve, standalone_query  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"


def shown_hit(q: Question, shown: list[tuple[str, str]]) -> bool:
    needles = [fold(e) for e in q.evidence_any]
    return any(Path(source).name in q.sources and any(n in fold(text) for n in needles) for source, text in shown)


def shown_recall(q: Question, shown: list[tuple[str, str]]) -> float | None:
    if not q.expect_all:
        return None
    text = fold(" ".join(t for _, t in shown))
    return sum(any(fold(s) in text for s in group) for group in q.expect_all) / len(q.expect_all)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--news-index", type=Path)
    parser.add_argument("--sample-index", type=Path)
    parser.add_argument("--passages", default="4,8,12", help="passages retrieved (comma-separated)")
    parser.add_argument("--keep", default=str(prompt.MAX_SENTENCES), help="sentences shown (comma-separated)")
    parser.add_argument("--budget", default=str(prompt.MAX_CHARS), help="characters shown (comma-separated)")
    args = parser.parse_args()
    embedder = default_embedder()
    sets = []
    if args.news_index:
        sets.append(("news", args.news_index, load_questions(EVAL / "news-2025" / "questions.jsonl")))
    if args.sample_index:
        for name in ("dev", "dev-synthesis"):
            sets.append((name, args.sample_index, load_questions(EVAL / f"{name}.jsonl")))
    counts = [int(n) for n in args.passages.split(",")]
    keeps = [(int(n), int(b)) for n in args.keep.split(",") for b in args.budget.split(",")]
    for set_name, index_dir, every in sets:
        store = Store.open(index_dir, embedder)
        store.search("warm up", 1)
        even = {q.id for q in every[0::2]}
        questions = [q for q in every if q.answerable]
        for k in counts:
            found = {q.id: retrieve(store, standalone_query(q.question, [(t, "") for t in q.conversation[:-1]]), k)
                     for q in questions}
            for keep, budget in keeps:
                hits, recalls, chars, took, top = {}, {}, [], [], {1: 0, 3: 0}
                for q in questions:
                    started = time.perf_counter()
                    sentences = prompt.choose_sentences(q.question, prompt.number_sentences(found[q.id]),
                                                        embedder.embed, keep, budget)
                    took.append(time.perf_counter() - started)
                    shown = [(found[q.id][s.passage].source, s.text) for s in sentences]
                    hits[q.id] = shown_hit(q, shown)
                    ranked = prompt.rank_sentences(q.question, sentences, embedder.embed)
                    for n in top:
                        top[n] += shown_hit(q, [(found[q.id][s.passage].source, s.text) for s in ranked[:n]])
                    recalls[q.id] = shown_recall(q, shown)
                    chars.append(sum(len(t) for _, t in shown))
                parts = {"all": [q.id for q in questions], "even": [q.id for q in questions if q.id in even],
                         "odd": [q.id for q in questions if q.id not in even]}
                cells = []
                for part, ids in parts.items():
                    rec = [recalls[i] for i in ids if recalls[i] is not None]
                    cells.append(f"{part} {sum(hits[i] for i in ids)}/{len(ids)}"
                                 + (f" recall {statistics.mean(rec):.2f}" if rec else ""))
                print(f"{set_name:<14} passages {k:2d} keep {keep:2d} budget {budget:5d} | " + " | ".join(cells)
                      + f" | ranked first {top[1]}, in top 3 {top[3]} | {statistics.mean(chars):.0f} chars, choose {1000 * statistics.median(took):.0f} ms",
                      flush=True)


if __name__ == "__main__":
    main()
