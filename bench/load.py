"""Many questions at once against one running app: from the browser API and from the Python API together.

    python bench/load.py [--model fake|default|NAME] [--clients 16] [--python 16] [--index DIR]

Serves the app on 127.0.0.1 over an index of data/articles (real embedder), then starts `--clients`
gradio_client users and `--python` threads calling `Assistant.ask`, all at the same moment, one question
each (the dev questions in turn). Prints, per side, how many were answered, turned away (the queue holds
16 waiting questions) or failed, p50/p95/max latency from submitting to the answer, and the most
generations that ran at once (1: the model answers one question at a time). `--model fake` is
bench/quoting_model.py's stand-in taking `--fake-seconds` per answer; `default` is the packaged 1.5B
model (about 9 s a question on 2 cores), `qwen2.5-coder-0.5b` the smaller one. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from quoting_model import Overlap, QuotingModel, model_name

from index import default_embedder, ingest
from qa import Assistant
from qa.evaluation import load_questions

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "eval" / "dev.jsonl"
FALLBACK = ["In which city did Viktor Orban and Vladimir Putin hold their talks?",
            "Has Serbia joined the EU sanctions against Moscow?",
            "Why has Budapest blocked an EU military aid package for Kyiv?"]


def questions(n: int) -> list[str]:
    pool = [q.question for q in load_questions(DEV) if len(q.conversation) <= 1] if DEV.is_file() else FALLBACK
    return [pool[i % len(pool)] for i in range(n)]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="fake", help="fake, default, a packaged model's name (or prefix), or a path")
    ap.add_argument("--fake-seconds", type=float, default=0.5, help="seconds per answer of the fake model")
    ap.add_argument("--clients", type=int, default=16, help="gradio_client users asking at once")
    ap.add_argument("--python", type=int, default=16, help="threads calling Assistant.ask at the same time")
    ap.add_argument("--threads", type=int, help="CPU threads for the real model (default: all cores)")
    ap.add_argument("--index", help="an existing index (default: a fresh one over data/articles)")
    args = ap.parse_args()

    import gradio_client
    from gradio_client.utils import QueueError

    from ui.app import QUEUE_SIZE, serve

    with tempfile.TemporaryDirectory() as tmp:
        index_dir = args.index
        if not index_dir:
            index_dir = Path(tmp) / "index"
            ingest([ROOT / "data" / "articles"], index_dir, default_embedder(), progress=False)
        fake = args.model == "fake"
        generator = QuotingModel(args.fake_seconds) if fake else None
        bot = Assistant.load(index_dir, model=None if fake else model_name(args.model), generator=generator,
                             threads=args.threads, progress=False)
        overlap = Overlap(bot.generator)
        port = _free_port()
        app = serve(bot, port=port, block=False, uploads_dir=Path(tmp) / "uploads")
        url = f"http://127.0.0.1:{port}/"
        clients = [gradio_client.Client(url, verbose=False) for _ in range(args.clients)]
        start = threading.Barrier(args.clients + args.python)
        results: dict[str, list[tuple[str, float]]] = {"browser": [], "python": []}

        def browser(i: int, question: str):
            start.wait()
            t = time.perf_counter()
            try:
                clients[i].predict(question, api_name="/ask")
                outcome = "answered"
            except QueueError:
                outcome = "turned away"
            except Exception as e:  # noqa: BLE001 - a bench counts failures, it does not stop at one
                print(f"browser {i}: {type(e).__name__}: {e}", file=sys.stderr)
                outcome = "failed"
            results["browser"].append((outcome, time.perf_counter() - t))

        def python(i: int, question: str):
            start.wait()
            t = time.perf_counter()
            try:
                bot.ask(question)
                outcome = "answered"
            except Exception as e:  # noqa: BLE001
                print(f"python {i}: {type(e).__name__}: {e}", file=sys.stderr)
                outcome = "failed"
            results["python"].append((outcome, time.perf_counter() - t))

        asked = questions(args.clients + args.python)
        began = time.perf_counter()
        try:
            with ThreadPoolExecutor(args.clients + args.python) as pool:
                for i in range(args.clients):
                    pool.submit(browser, i, asked[i])
                for i in range(args.python):
                    pool.submit(python, i, asked[args.clients + i])
        finally:
            app.close()
        wall = time.perf_counter() - began

    model = bot.generator.name + (f" ({args.fake_seconds:g} s per answer)" if fake else "")
    print(f"\nmodel {model}; {args.clients} browser clients + {args.python} Python threads at once; "
          f"queue {QUEUE_SIZE}; {wall:.1f} s in all")
    print(f"{'side':8} {'asked':>5} {'answered':>8} {'turned away':>11} {'failed':>6} "
          f"{'p50 s':>7} {'p95 s':>7} {'max s':>7}")
    for side, rows in results.items():
        if not rows:
            continue
        answered = [s for outcome, s in rows if outcome == "answered"]
        count = {o: sum(1 for outcome, _ in rows if outcome == o) for o in ("answered", "turned away", "failed")}
        p50, p95, top = ((percentile(answered, 50), percentile(answered, 95), max(answered)) if answered
                         else (float("nan"),) * 3)
        print(f"{side:8} {len(rows):5d} {count['answered']:8d} {count['turned away']:11d} {count['failed']:6d} "
              f"{p50:7.2f} {p95:7.2f} {top:7.2f}")
    print(f"generations: {overlap.total}, at most {overlap.peak} at once")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
