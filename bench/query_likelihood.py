"""Would the chat model's likelihood of the question pick the evidence better than the model does?

    python bench/query_likelihood.py RECORDING.pkl... [--model NAME_OR_GGUF]

Query likelihood reranking (UPR, Sachan et al. 2022): each shown sentence is scored by the model's
log-probability of the question written after it ("Article: TITLE / SENTENCE / A question this
sentence answers: QUESTION"); the sentence that best explains the question ranks first. For every
recorded reply (`bench/replay.py record`) of an answerable question whose answer's words are in a
shown sentence, this counts how often an answer-bearing sentence is the model's first evidence id,
any of its ids, the query-likelihood top 1, 3 and 5, and the top 1 and 3 of the sentence ranking
that chose what to show (`prompt.rank_sentences`), by half. It also times the scoring: one model pass
per shown sentence. Asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import pickle
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from qa import evaluation  # noqa: E402
from qa.models import resolve_model  # noqa: E402


class QueryLikelihood:
    """log P(question | a sentence and its article's title) from a GGUF chat model."""

    def __init__(self, model: str | None, threads: int | None = None):
        import llama_cpp

        self.llm = llama_cpp.Llama(str(resolve_model(model)), n_ctx=512, n_threads=threads, logits_all=True,
                                   verbose=False)

    def _tokens(self, text: str, bos: bool = False) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=bos, special=False)

    def __call__(self, title: str, sentence: str, question: str) -> float:
        prefix = self._tokens(f"Article: {title}\n{sentence}\nA question this sentence answers:", bos=True)
        asked = self._tokens(" " + question)
        self.llm.reset()
        self.llm.eval(prefix + asked)
        logits = np.asarray(self.llm.scores[len(prefix) - 1:len(prefix) + len(asked) - 1], dtype=np.float64)
        top = logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
        return float(sum(logits[i, t] - log_norm[i] for i, t in enumerate(asked)))


def count(score: QueryLikelihood, records: list[dict]) -> tuple[dict[str, collections.Counter], list[float]]:
    """Per half, how often each way of choosing puts an answer-bearing sentence first (or in its top k)."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    seen: collections.Counter = collections.Counter()
    spent = []
    for r in records:
        q, file = r["question"], r["file"]
        position = seen[file]
        seen[file] += 1
        if "reply" not in r or not q.answerable:
            continue
        needles = q.expect_any or [s for group in q.expect_all for s in group]
        sentences = r["sentences"]
        bearing = {s.id for s in sentences if evaluation._has(s.text, needles)}  # noqa: SLF001
        if not bearing:
            continue
        started = time.perf_counter()
        likelihood = {s.id: score(r["passages"][s.passage].title, s.text, r["asked"]) for s in sentences}
        spent.append(time.perf_counter() - started)
        by_likelihood = sorted(likelihood, key=lambda i: -likelihood[i])
        by_rank = [s.id for s in sorted(sentences, key=lambda s: -(s.score or 0.0))]
        picked = r["reply"].evidence
        half = r["half"] if r["half"] != "all" else ("even" if position % 2 == 0 else "odd")
        for key in (half, "all"):
            c = counts[key]
            c["evidence shown"] += 1
            c["model's first id"] += bool(picked[:1] and picked[0] in bearing)
            c["any of the model's ids"] += bool(set(picked) & bearing)
            for k in (1, 3, 5):
                c[f"likelihood top {k}"] += bool(set(by_likelihood[:k]) & bearing)
            for k in (1, 3):
                c[f"ranking top {k}"] += bool(set(by_rank[:k]) & bearing)
    return counts, spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recordings", nargs="+", type=Path)
    parser.add_argument("--model", help="GGUF file or packaged model name (default: the packaged default)")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    score = QueryLikelihood(args.model, args.threads)
    for path in args.recordings:
        counts, spent = count(score, pickle.loads(path.read_bytes()))
        for half, c in counts.items():
            print(f"{path.name} {half}: " + ", ".join(f"{k} {v}" for k, v in c.items()))
        if spent:
            print(f"{path.name}: scoring the shown sentences took {statistics.median(spent):.1f} s a question (median)")


if __name__ == "__main__":
    main()
