"""Embedding throughput and agreement of the three backends: torch, onnx (fp32) and onnx-int8.

    python bench/embed.py [--passages 512] [--repeats 3] [--threads N] [--questions ../shared/eval/dev.jsonl]

The passages are ~120-word runs of sentences drawn (with a fixed seed) from the sample articles.
Each backend starts from an empty cache, so its first load includes the one-time ONNX export; a
second load shows what later processes pay. Throughput is timed `--repeats` times, backends taking
turns so a busy machine slows them alike; the table gives the best and the median run in passages
per second, and passages per CPU-second (the work itself, less sensitive to other processes on a
shared machine; `--threads 1` compares one core against one core, the least disturbed by other
processes). Agreement is the cosine between a backend's vector and PyTorch's for the same
text, over the sample articles' chunks and over other texts (sentences, questions, the passages).
Retrieval hit@5 is the dev set's, as `qa eval` computes it but without the LLM: a follow-up
question is searched with the previous question (`qa eval` adds the model's previous answer).
Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index import SentenceTransformerEmbedder, Store, chunk_document, ingest, iter_files, load_file  # noqa: E402
from index import split_sentences  # noqa: E402

BACKENDS = ("torch", "onnx", "onnx-int8")


def passages(count: int, words: int = 120, seed: int = 0) -> list[str]:
    """`count` texts of `words` words: runs of consecutive sentences from a random place in a random article."""
    docs = [load_file(p) for p in iter_files([ROOT / "data" / "articles"])]
    sentences = [[d.text[s:e] for s, e in split_sentences(d.text)] for d in docs]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        article = rng.choice(sentences)
        at = rng.randrange(len(article))
        taken: list[str] = []
        while sum(len(s.split()) for s in taken) < words:
            taken.append(article[at % len(article)])
            at += 1
        out.append(" ".join(" ".join(taken).split()[:words]))
    return out


def cpu_info() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = re.search(r"model name\s*:\s*(.*)", text)
    flags = set(re.search(r"flags\s*:\s*(.*)", text).group(1).split()) if "flags" in text else set()
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{model.group(1) if model else 'unknown CPU'}; {os.cpu_count()} cores; {' '.join(simd) or 'no AVX2'}"


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def timed_load(backend: str, threads: int | None) -> tuple[SentenceTransformerEmbedder, float]:
    started = time.perf_counter()
    embedder = SentenceTransformerEmbedder(backend=backend, progress=False, threads=threads)
    embedder.embed(["warm up"])
    return embedder, time.perf_counter() - started


def hit_at_5(embedder, questions_file: Path, workdir: Path) -> dict[str, str]:
    from qa import evaluation
    from qa.retrieval import retrieve, standalone_query

    questions = [q for q in evaluation.load_questions(questions_file) if q.answerable]
    index_dir = workdir / f"index-{embedder.backend}"
    ingest([ROOT / "data" / "articles"], index_dir, embedder, progress=False)
    store = Store.open(index_dir, embedder)
    hits = {"fused": 0, "dense": 0, "bm25": 0}
    for q in questions:
        query = standalone_query(q.question, [(turn, "") for turn in q.conversation[:-1]])
        found = {"fused": retrieve(store, query, 5), "dense": store.search(query, 5),
                 "bm25": store.keyword_search(query, 5)}
        for method, passages_found in found.items():
            hits[method] += evaluation.hit(passages_found, q)  # the scorer `qa eval` uses
    return {m: f"{n}/{len(questions)}" for m, n in hits.items()}


def agreement(vectors: np.ndarray, reference: np.ndarray) -> str:
    cosines = np.sum(vectors * reference, axis=1)
    return f"{cosines.mean():.4f} / {cosines.min():.4f}"


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passages", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, help="cores to use (torch threads, ONNX texts at once); default all")
    ap.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated, torch first")
    ap.add_argument("--questions", type=Path, default=ROOT.parent / "shared" / "eval" / "dev.jsonl",
                    help="dev question file for retrieval hit@5 (skipped if missing)")
    args = ap.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if backends[0] != "torch":
        backends.insert(0, "torch")

    print("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_info()}; load average at start {load_average()}")
    texts = passages(args.passages)
    docs = [load_file(p) for p in iter_files([ROOT / "data" / "articles"])]
    chunks = [c.text for d in docs for c in chunk_document(d)]
    others = [d.text[s:e] for d in docs for s, e in split_sentences(d.text)] + texts
    if args.questions.is_file():
        from qa.evaluation import load_questions

        others += [q.question for q in load_questions(args.questions)]

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["QA_CACHE_DIR"] = str(Path(tmp) / "cache")    # every export is made afresh, and timed
        embedders, first_load, second_load = {}, {}, {}
        for backend in backends:
            embedders[backend], first_load[backend] = timed_load(backend, args.threads)
            _, second_load[backend] = timed_load(backend, args.threads)

        runs: dict[str, list[tuple[float, float]]] = {b: [] for b in backends}
        for _ in range(args.repeats):
            for backend in backends:
                wall, cpu = time.perf_counter(), time.process_time()
                embedders[backend].embed(texts)
                runs[backend].append((time.perf_counter() - wall, time.process_time() - cpu))

        vectors = {b: (e.embed(chunks), e.embed(others)) for b, e in embedders.items()}
        hits = ({b: hit_at_5(e, args.questions, Path(tmp)) for b, e in embedders.items()}
                if args.questions.is_file() else {})

    n = len(texts)
    words = statistics.mean(len(t.split()) for t in texts)
    print(f"{n} passages of {words:.0f} words; batch size {embedders['torch'].batch_size}; "
          f"{args.threads or 'all'} core(s); "
          f"best and median of {args.repeats} runs; load average at end {load_average()}\n")
    base = max(n / wall for wall, _ in runs["torch"])
    rows = []
    for b in backends:
        best = max(n / wall for wall, _ in runs[b])
        rows.append([b, f"{best:.1f}", f"{statistics.median(n / wall for wall, _ in runs[b]):.1f}",
                     f"{max(n / cpu for _, cpu in runs[b]):.1f}", f"{best / base:.2f}x",
                     f"{first_load[b]:.1f}", f"{second_load[b]:.1f}"])
    table(["backend", "passages/s best", "median", "per CPU-s", "speed-up", "first load s", "later load s"], rows)
    print(f"\ncosine with torch's vector of the same text (mean / min): {len(chunks)} sample chunks, "
          f"{len(others)} other texts")
    rows = [[b, agreement(vectors[b][0], vectors["torch"][0]), agreement(vectors[b][1], vectors["torch"][1])]
            for b in backends if b != "torch"]
    table(["backend", "sample chunks", "other texts"], rows)
    if hits:
        print(f"\nretrieval hit@5 on {args.questions} (answerable questions)")
        table(["backend", "fused", "dense", "bm25"], [[b, *hits[b].values()] for b in backends])
    print(f"\nembedder names: " + ", ".join(f"{b}: {e.name}" for b, e in embedders.items()))


if __name__ == "__main__":
    main()
