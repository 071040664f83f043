"""Question latency with the model in this process against the same model behind an HTTP server.

    python bench/remote.py [--questions FILE] [--limit 4] [--model NAME] [--url URL]

Unless --url names a running OpenAI-compatible server, this starts llama-cpp-python's
(`python -m llama_cpp.server`) on loopback with the same GGUF, context size and threads as the
in-process model. The sample articles are indexed in a temporary folder; each question is asked of
both backends in turn (in-process, then server), after one warm-up each, so that load on the machine
falls on both alike. Prints the median and worst first-token and total times, the answers that
differ, and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from index import Store, default_embedder, ingest
from qa import Assistant, Settings
from qa.evaluation import load_questions
from qa.llm import LlamaGenerator
from qa.models import resolve_model
from qa.remote import RemoteGenerator

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "eval" / "dev.jsonl"


def start_server(model: Path, context: int, threads: int, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "qa.native", "server", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", str(context), "--n_threads", str(threads),
               "--n_threads_batch", str(threads), "--verbose", "False"]
    print("starting:", " ".join(command), flush=True)
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    sys.exit(f"the server did not start:\n{log.read_text()[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", default=str(DEV))
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--model", default=None, help="packaged model name or GGUF path (default: QA_MODEL or 1.5B)")
    ap.add_argument("--url", default=None, help="an already running server (default: start one here)")
    ap.add_argument("--context", type=int, default=2048)
    args = ap.parse_args()

    questions = [q for q in load_questions(args.questions) if len(q.conversation) == 1][: args.limit]
    threads = os.cpu_count() or 1
    model = resolve_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        embedder = default_embedder()
        ingest([ROOT / "data" / "articles"], Path(tmp) / "index", embedder, progress=False)
        store = Store.open(Path(tmp) / "index", embedder)
        settings = Settings(index_dir=Path(tmp) / "index", context_size=args.context)
        server = None
        url = args.url
        if not url:
            server, url = start_server(model, args.context, threads, Path(tmp) / "server.log")
        try:
            bots = {
                "in-process": Assistant(store, LlamaGenerator(model, context_size=args.context, threads=threads,
                                                              progress=False), settings),
                "server": Assistant(store, RemoteGenerator(url, context_size=args.context), settings),
            }
            for bot in bots.values():
                bot.warm_up()
            timings: dict[str, list] = {name: [] for name in bots}
            differ = []
            for q in questions:
                texts = {}
                for name, bot in bots.items():
                    answer = bot.ask(q.question)
                    timings[name].append(answer.timings)
                    texts[name] = answer.text
                    print(f"{name:10} {q.id:6} first {answer.timings.first_token:5.2f}s "
                          f"total {answer.timings.total:5.2f}s | {answer.text[:80]}", flush=True)
                if len(set(texts.values())) > 1:
                    differ.append(q.id)
        finally:
            if server:
                server.terminate()
                server.wait(20)

    print(f"\nmodel {model.name}, {threads} threads, context {args.context}, {len(questions)} questions, "
          f"server {url if args.url else 'llama-cpp-python on loopback'}")
    print(f"{'backend':12} {'first token median':>19} {'max':>7} {'total median':>13} {'max':>7}")
    for name, ts in timings.items():
        first = [t.first_token for t in ts]
        total = [t.total for t in ts]
        print(f"{name:12} {statistics.median(first):18.2f}s {max(first):6.2f}s "
              f"{statistics.median(total):12.2f}s {max(total):6.2f}s")
    print(f"answers that differ between the backends: {', '.join(differ) or 'none'}")


if __name__ == "__main__":
    main()
