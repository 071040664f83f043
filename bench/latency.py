"""Where a question's time goes, against the raw llama-cpp-python call on the identical prompt.

    python bench/latency.py [--questions FILE] [--limit N] [--model NAME_OR_GGUF] [--passages K]

For every question (the dev set by default) three runs of the real assistant and model:

- ours, warm: `Assistant.stream`, with the KV cache holding the fixed system prompt (as it does after
  the first question of a session), split into query embedding, search, prompt building, the model's
  prompt processing (to its first token), generation, and the citation check;
- raw: `Llama.create_completion` on the very prompt and grammar ours sent, from the same cache state;
- ours, cold: the KV cache emptied first, as if nothing were reused between questions.

The runs of one question alternate in order, so a busy machine slows them alike. Prints medians and
p95 and two ratios: our end-to-end time over the raw call's, and the first token warm over cold.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from llama_cpp import LlamaGrammar

from index import default_embedder, ingest
from qa import Assistant, Settings
from qa.assistant import shared_generator
from qa.evaluation import load_questions
from qa.prompt import build_messages

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "eval" / "dev.jsonl"


class Recording:
    """The real generator, noting what it was asked and when its first piece came."""

    def __init__(self, generator):
        self.inner = generator
        self.name, self.context_size = generator.name, generator.context_size
        self.messages = self.grammar = None
        self.prefill = 0.0

    def count_tokens(self, messages):
        return self.inner.count_tokens(messages)

    def generate(self, messages, *, max_tokens=256, grammar=None):
        self.messages, self.grammar = messages, grammar
        started = time.perf_counter()
        first = True
        for piece in self.inner.generate(messages, max_tokens=max_tokens, grammar=grammar):
            if first:
                self.prefill, first = time.perf_counter() - started, False
            yield piece


def prime(generator) -> None:
    """Leave exactly the system prompt (and a two-word question) in the KV cache."""
    generator._llm.reset()  # noqa: SLF001 - the bench controls the cache on purpose
    for _ in generator.generate(build_messages("warm up", [], []), max_tokens=1):
        pass


def raw_call(generator, messages, grammar, max_tokens: int) -> tuple[float, float]:
    """First-token and total seconds of llama-cpp-python alone on our prompt."""
    llm = generator._llm  # noqa: SLF001
    prompt = generator.tokens(messages)  # the token ids ours sends, content never read as template
    started = time.perf_counter()
    first = None
    for _ in llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, stream=True,
                                   grammar=LlamaGrammar.from_string(grammar, verbose=False)):
        first = first or time.perf_counter()
    done = time.perf_counter()
    return (first or done) - started, done - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", default=str(DEV))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--model", default=None)
    ap.add_argument("--passages", type=int, default=None)
    args = ap.parse_args()

    questions = [q for q in load_questions(args.questions) if len(q.conversation) == 1]
    questions = questions[:args.limit] if args.limit else questions
    settings = Settings.from_env(model=args.model, passages=args.passages)
    generator = shared_generator(settings, progress=True)
    recording = Recording(generator)
    embedder = default_embedder()
    rows: dict[str, list[float]] = {}
    same = 0
    with tempfile.TemporaryDirectory() as tmp:
        ingest(ROOT / "data" / "articles", tmp, embedder, progress=False)
        assistant = Assistant.load(tmp, embedder=embedder, generator=recording, passages=settings.passages,
                                   model=settings.model)
        assistant.warm_up()
        for i, q in enumerate(questions):
            prime(generator)
            warm = assistant.ask(q.question)
            prefill_warm, messages, grammar = recording.prefill, recording.messages, recording.grammar

            for step in ("cold", "raw") if i % 2 else ("raw", "cold"):
                if step == "raw":
                    prime(generator)
                    raw_first, raw_total = raw_call(generator, messages, grammar, settings.max_tokens)
                else:
                    generator._llm.reset()  # noqa: SLF001 - empty the KV cache
                    cold = assistant.ask(q.question)
            same += cold.text == warm.text
            started = time.perf_counter()
            embedder.embed([q.question])
            t = warm.timings
            for name, value in {
                "query embedding": time.perf_counter() - started,
                "search (incl. embedding)": t.retrieval,
                "prompt building": t.prompt,
                "model prompt processing": prefill_warm,
                "generation": t.llm - prefill_warm,
                "citation check": t.check,
                "first token, ours warm": t.first_token,
                "first token, ours cold": cold.timings.first_token,
                "first token, raw llama": raw_first,
                "total, ours warm": t.total,
                "total, raw llama": raw_total,
                "ours / raw": t.total / raw_total,
                "prompt tokens": t.prompt_tokens,
            }.items():
                rows.setdefault(name, []).append(value)
            print(f"{q.id}: {t.total:.2f} s ours, {raw_total:.2f} s raw, first token {t.first_token:.2f} s warm / "
                  f"{cold.timings.first_token:.2f} s cold", flush=True)

    print(f"\n{len(questions)} questions, model {generator.name}, {settings.passages} passages, "
          f"context {settings.context_size}")
    print(f"{'':28} {'median':>8} {'p95':>8}")
    for name, values in rows.items():
        unit = "" if name in ("ours / raw", "prompt tokens") else " s"
        print(f"{name:28} {statistics.median(values):8.3f} {percentile(values, 95):8.3f}{unit}")
    warm, cold = statistics.median(rows["first token, ours warm"]), statistics.median(rows["first token, ours cold"])
    total_ours, total_raw = sum(rows["total, ours warm"]), sum(rows["total, raw llama"])
    print(f"\nend-to-end over raw llama (sums): {total_ours / total_raw:.3f}")
    print(f"first token with the cached system prompt: {100 * (1 - warm / cold):.0f}% lower than cold "
          f"(median {warm:.2f} s vs {cold:.2f} s); same answer warm and cold: {same}/{len(questions)}")


if __name__ == "__main__":
    main()
