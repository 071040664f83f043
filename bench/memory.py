"""Resident memory over many questions in a row: does it stay flat once warmed up?

    python bench/memory.py [--questions 500] [--model fake|default|NAME] [--warm-up 20] [--every 100]

The assistant is the real one over a fresh index of data/articles (real embedder, real store); the
chat model is the packaged one (`default`, about 9 s a question on 2 cores: 500 take over an hour), a
smaller one (`qwen2.5-coder-0.5b`), or `fake` (bench/quoting_model.py: a cited reply at once, so 500
questions take a minute or two and everything but llama.cpp is measured). The dev questions are asked
in turn, each alone. Prints the resident set size (RSS), RSS less file-backed pages ("anon": the
memory-mapped model file comes and goes from RSS with the page cache) and the number of Python
objects, after loading, after the warm-up and every `--every` questions; then the growth per
question after the warm-up (a least-squares slope over a sample every 10 questions). Asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

import psutil
from load import questions
from quoting_model import QuotingModel, model_name

from index import default_embedder, ingest
from qa import Assistant

ROOT = Path(__file__).resolve().parent.parent


def memory() -> tuple[int, int]:
    """(RSS, RSS less file-backed pages) in bytes. The model file is memory-mapped: its pages count in
    RSS while they are cached and leave when the system needs the memory, so RSS moves by tens of MB
    without the process keeping anything; the second figure is what the process itself holds."""
    info = psutil.Process(os.getpid()).memory_info()
    return info.rss, info.rss - getattr(info, "shared", 0)


def slope(points: list[tuple[int, int]]) -> float:
    """Bytes per question: the least-squares slope of RSS against questions asked."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    return sum((x - mx) * (y - my) for x, y in points) / max(sum((x - mx) ** 2 for x, _ in points), 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=500)
    ap.add_argument("--model", default="fake", help="fake, default, a packaged model's name (or prefix), or a path")
    ap.add_argument("--warm-up", type=int, default=20, help="questions before growth is measured")
    ap.add_argument("--every", type=int, default=100, help="print a row every this many questions")
    ap.add_argument("--threads", type=int, help="CPU threads for the real model (default: all cores)")
    args = ap.parse_args()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        embedder = default_embedder()
        ingest([ROOT / "data" / "articles"], index_dir, embedder, progress=False)
        fake = args.model == "fake"
        bot = Assistant.load(index_dir, model=None if fake else model_name(args.model), embedder=embedder,
                             generator=QuotingModel() if fake else None, threads=args.threads, progress=False)
        bot.warm_up()
        asked = questions(args.questions)
        print(f"model {bot.generator.name}; {args.questions} questions, warm-up {args.warm_up}")
        print(f"{'after':>16} {'RSS MB':>8} {'anon MB':>8} {'objects':>9} {'s/question':>10}")
        rows = [row("loading", 0, None)]
        samples: list[tuple[int, int, int]] = []
        refused = 0
        for n, question in enumerate(asked, 1):
            refused += bot.ask(question).refused
            if n >= args.warm_up and (n % 10 == 0 or n == args.warm_up):
                samples.append((n, *memory()))
            if n == args.warm_up or n % args.every == 0 or n == args.questions:
                rows.append(row("warm-up" if n == args.warm_up else f"{n} questions", n, rows[-1]))

    if len(samples) >= 2:
        warm = next(r for r in rows if r[1] == args.warm_up)
        print(f"after the warm-up, per question (least squares over {len(samples)} samples): "
              f"RSS {slope([(n, r) for n, r, _ in samples]) / 1024:+.1f} KB, "
              f"anon {slope([(n, a) for n, _, a in samples]) / 1024:+.1f} KB")
        print(f"over {rows[-1][1] - args.warm_up} questions after the warm-up: RSS "
              f"{(rows[-1][2] - warm[2]) / 2**20:+.1f} MB, anon {(rows[-1][3] - warm[3]) / 2**20:+.1f} MB")
    print(f"{refused} of {args.questions} answers were refusals; {time.perf_counter() - started:.0f} s in all")


def row(label: str, n: int, previous) -> tuple:
    """Print and return (label, questions, RSS, anon, time) for the state after `n` questions."""
    now = time.perf_counter()
    resident, anon = memory()
    per_question = f"{(now - previous[4]) / (n - previous[1]):10.2f}" if previous else ""
    print(f"{label:>16} {resident / 2**20:8.1f} {anon / 2**20:8.1f} {len(gc.get_objects()):9d} {per_question}",
          flush=True)
    return label, n, resident, anon, now


if __name__ == "__main__":
    main()
