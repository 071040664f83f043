"""How sure the model is that none of the shown sentences answers: its probability of "none" at the evidence line.

    python bench/none_probability.py RECORDING.pkl... [--calibrate] [--thresholds 0.02,0.03,0.05] [--index DIR]

The reply grammar lets the model start with `Evidence: none` (a refusal) or with a sentence id
(`qa/prompt.py`). For every recorded reply (`bench/replay.py record`), the prompt the model was shown
is read again up to "Evidence:", and its next-token scores give P(none): the probability of " none"
against " ", the two tokens the grammar allows there (an id is " " and then its digits). With
`--calibrate`, the same is read for the question alone, without sentences, and P(none) is taken from
the difference of the two log-odds (contextual calibration: what the sentences, rather than the
question's wording, make the model doubt).

`--index`: the index the replies were recorded on, for recordings whose sentences lack their article's
share of the question (`retrieval.topic_shares`, which `grounding.near_the_question` reads): it is
computed again from there.

Prints, for each set and half, the median P(none) of the answers that were right, wrong and refused
by the checks, and what refusing every answer at or above each threshold would change. Asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import math
import pickle
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from index import Store, default_embedder  # noqa: E402
from qa import evaluation, prompt, retrieval  # noqa: E402
from qa.assistant import checked_answer  # noqa: E402
from qa.llm import LlamaGenerator, _read  # noqa: E402


def none_probability(generator: LlamaGenerator, messages: list) -> float:
    """P(" none") against P(" ") as the model's next token after the reply's "Evidence:"."""
    import llama_cpp

    llm = generator._llm  # noqa: SLF001 - the scores of one position, which the generator does not expose

    def tokenize(text: str) -> list[int]:
        return llm.tokenize(text.encode(), add_bos=False, special=False)

    _read(llm, generator.tokens(messages) + tokenize("Evidence:"))
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),))  # noqa: SLF001
    (none,), (space,) = tokenize(" none"), tokenize(" ")
    return 1 / (1 + math.exp(float(logits[space] - logits[none])))


def log_odds(p: float) -> float:
    return math.log(p / (1 - p))


def outcomes(generator: LlamaGenerator, records: list[dict], calibrate: bool,
             store: Store | None = None) -> list[tuple[str, str, str, float, float | None]]:
    """(set, half, outcome, P(none), calibrated P(none) or None) for each recorded reply; outcome: right, wrong
    or refused, after "unanswerable " for a question the articles do not answer."""
    rows, seen = [], collections.Counter()
    for r in records:
        file = Path(r["file"]).name
        position = seen[file]
        seen[file] += 1
        if "reply" not in r:  # refused before the model was asked: nothing to read
            continue
        half = r["half"] if r["half"] != "all" else ("even" if position % 2 == 0 else "odd")
        sentences = r["sentences"]
        if store is not None and sentences and sentences[0].topic is None:
            shares = retrieval.topic_shares(store, r["asked"], r["passages"])
            sentences = [replace(s, topic=shares.get(r["passages"][s.passage].doc_id)) for s in sentences]
        answer = checked_answer(r["asked"], r["reply"], r["passages"], sentences)
        outcome = ("refused" if answer.refused else
                   "right" if evaluation.score(r["question"], answer).correct else "wrong")
        if not r["question"].answerable:
            outcome = f"unanswerable {outcome}"
        p = none_probability(generator, prompt.build_messages(r["asked"], r["passages"], sentences))
        calibrated = None
        if calibrate:
            alone = none_probability(generator, prompt.build_messages(r["asked"], [], []))
            calibrated = 1 / (1 + math.exp(log_odds(alone) - log_odds(p)))
        rows.append((file, half, outcome, p, calibrated))
    return rows


def report(rows: list[tuple[str, str, str, float]], thresholds: list[float]) -> None:
    """Per set and half: the median P(none) by outcome, and the answers refusing at each threshold would refuse."""
    for file, half in dict.fromkeys((f, h) for f, h, _, _ in rows):
        group = [(outcome, p) for f, h, outcome, p in rows if (f, h) == (file, half)]
        by_outcome = collections.defaultdict(list)
        for outcome, p in group:
            by_outcome[outcome].append(p)
        medians = ", ".join(f"{o} {statistics.median(ps):.3f} (n={len(ps)})" for o, ps in sorted(by_outcome.items()))
        print(f"{file} {half}: median P(none): {medians}")
        for t in thresholds:
            changed = collections.Counter(o for o, p in group if p >= t and not o.endswith("refused"))
            print(f"    refusing at P(none) >= {t}: would refuse {dict(changed) or 'nothing more'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recordings", nargs="+", type=Path)
    parser.add_argument("--model", default=None, help="the model the replies were recorded with (default: packaged)")
    parser.add_argument("--calibrate", action="store_true",
                        help="also P(none) with the question alone's divided out")
    parser.add_argument("--thresholds", default="0.02,0.03,0.05,0.1")
    parser.add_argument("--index", help="the recordings' index, to compute their sentences' topic shares again")
    args = parser.parse_args()
    generator = LlamaGenerator(args.model)
    store = Store.open(args.index, default_embedder()) if args.index else None
    thresholds = [float(t) for t in args.thresholds.split(",")]
    rows = []
    for path in args.recordings:
        rows += outcomes(generator, pickle.loads(path.read_bytes()), args.calibrate, store)
    report([(f, h, o, p) for f, h, o, p, _ in rows], thresholds)
    if args.calibrate:
        print("\ncalibrated (the question alone's log-odds taken away):")
        report([(f, h, o, c) for f, h, o, _, c in rows], thresholds)


if __name__ == "__main__":
    main()
