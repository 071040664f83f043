"""Ingest with the embedder in this process against the same model behind a server (QA_EMBED_URL).

    python bench/remote_embed.py [FOLDER] [--limit N] [--questions F.jsonl ...] [--batch B] [--parallel P]

Starts llama-cpp-python's server on 127.0.0.1 with the packaged all-MiniLM-L6-v2 (converted to GGUF by
tests/minilm_gguf.py), then on the articles of FOLDER (default: the samples; --limit: the first N files):

- ingest passages/s, local (PyTorch in this process) and remote (`RemoteEmbedder`), each into a fresh
  index, alternated --repeats times, the best kept; and the bare embedding of the same passages: PyTorch,
  llama.cpp in this process, and llama.cpp through the server. The server runs on this machine, so the
  remote figure is llama.cpp's speed on these cores less the HTTP transport, not what a GPU would give;
  in-process llama.cpp against the server separates the transport's cost from the engine's.
- agreement of the vectors: cosine of local and remote vectors for every passage and question.
- search: the questions of the --questions files asked of the index built remotely and of the one built
  locally (queries embedded locally, and remotely for the remote index): identical top 5, top 1.

Prints tables; asserts nothing. Run it on an idle machine: both sides use every core.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from minilm_gguf import convert, serve_command  # noqa: E402
from servers import free_port, running  # noqa: E402

from index import SentenceTransformerEmbedder, Store, chunk_document, ingest, iter_files, load_file  # noqa: E402
from index.remote_embedding import RemoteEmbedder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", nargs="?", default=str(ROOT / "data" / "articles"))
    ap.add_argument("--limit", type=int, help="only the first N articles (by file name)")
    ap.add_argument("--questions", nargs="*", default=[str(ROOT.parent / "shared" / "eval" / "dev.jsonl")])
    ap.add_argument("--batch", type=int, default=32, help="texts per request")
    ap.add_argument("--parallel", type=int, default=2, help="requests at once")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    threads = os.cpu_count() or 1

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus"
        corpus.mkdir()
        for path in sorted(iter_files([args.folder]))[:args.limit]:
            shutil.copy(path, corpus / path.name)
        passages = [c.text for p in iter_files([corpus]) for c in chunk_document(load_file(p))]
        questions = [json.loads(line)["question"] for f in args.questions if Path(f).is_file()
                     for line in Path(f).read_text().splitlines() if line.strip()]
        gguf_path = convert(tmp / "all-MiniLM-L6-v2.gguf")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with running(serve_command(gguf_path, port, threads), f"{url}/v1/models", tmp / "server.log", 120):
            local = SentenceTransformerEmbedder()
            remote = RemoteEmbedder(url, batch_size=args.batch, parallel=args.parallel)
            local.embed(["warm up"])
            remote.embed(["warm up"])

            llama = _llama_in_process(gguf_path, threads)
            ingest_s: dict[str, list[float]] = {"local": [], "remote": []}
            embed_s: dict[str, list[float]] = {"local": [], "llama.cpp": [], "remote": []}
            vectors: dict[str, np.ndarray] = {}
            for run in range(args.repeats):   # alternated, so that each sees the same machine; the best is kept
                for kind, embedder in (("local", local), ("remote", remote)):
                    print(f"run {run + 1}: ingest of {len(passages)} passages, {kind}", file=sys.stderr, flush=True)
                    index_dir = tmp / f"{kind}-{run}"
                    start = time.perf_counter()
                    ingest([corpus], index_dir, embedder, progress=False)
                    ingest_s[kind].append(time.perf_counter() - start)
                for kind, embed in (("local", local.embed), ("llama.cpp", llama), ("remote", remote.embed)):
                    print(f"run {run + 1}: bare embedding, {kind}", file=sys.stderr, flush=True)
                    start = time.perf_counter()
                    vectors[kind] = embed(passages)
                    embed_s[kind].append(time.perf_counter() - start)
            one_text = _median_seconds(lambda: remote.embed(["Who met Putin in Beijing?"]), 50)
            one_text_local = _median_seconds(lambda: local.embed(["Who met Putin in Beijing?"]), 50)

            cos_passages = np.sum(vectors["local"] * vectors["remote"], axis=1)
            cos_questions = np.sum(local.embed(questions) * remote.embed(questions), axis=1) if questions else None
            search = _search_agreement(tmp / "local-0", tmp / "remote-0", local, remote, questions)
            remote.close()

    n = len(passages)
    best = {k: min(v) for k, v in ingest_s.items()}
    raw = {k: min(v) for k, v in embed_s.items()}
    rows = [
        ("passages", f"{n}"),
        ("ingest, local PyTorch: passages/s", f"{n / best['local']:.1f}"),
        (f"ingest, remote (batch {args.batch}, {args.parallel} at once): passages/s", f"{n / best['remote']:.1f}"),
        ("bare embed, local PyTorch: passages/s", f"{n / raw['local']:.1f}"),
        ("bare embed, llama.cpp in this process: passages/s", f"{n / raw['llama.cpp']:.1f}"),
        ("bare embed, llama.cpp behind the server: passages/s", f"{n / raw['remote']:.1f}"),
        ("one question: remote / local, ms (median of 50)", f"{one_text * 1000:.1f} / {one_text_local * 1000:.1f}"),
        ("cosine local-remote, passages: mean / min", f"{cos_passages.mean():.6f} / {cos_passages.min():.6f}"),
    ]
    if cos_questions is not None:
        rows.append(("cosine local-remote, questions: mean / min",
                     f"{cos_questions.mean():.6f} / {cos_questions.min():.6f}"))
    rows += search
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def _median_seconds(call, times: int) -> float:
    seconds = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def _search_agreement(local_dir: Path, remote_dir: Path, local, remote, questions: list[str]) -> list[tuple]:
    if not questions:
        return []
    built_locally, built_remotely = Store.open(local_dir, local), Store.open(remote_dir, local)
    through_server = Store.open(remote_dir, remote)
    reference = [[p.id for p in built_locally.search(q, 5)] for q in questions]
    rows = []
    for label, store in (("remote index, local queries", built_remotely),
                         ("remote index, remote queries", through_server)):
        got = [[p.id for p in store.search(q, 5)] for q in questions]
        same5 = sum(g == r for g, r in zip(got, reference))
        same1 = sum(g[:1] == r[:1] for g, r in zip(got, reference))
        overlap = np.mean([len(set(g) & set(r)) / max(len(r), 1) for g, r in zip(got, reference)])
        rows.append((f"{label}: same top 5 / same top 1 / overlap@5 ({len(questions)} questions)",
                     f"{same5} / {same1} / {overlap:.3f}"))
    return rows


def _llama_in_process(gguf_path: Path, threads: int):
    """llama.cpp embedding in this process, in the server's batches (32 texts, 512 tokens at a time)."""
    import llama_cpp

    model = llama_cpp.Llama(str(gguf_path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512,
                            n_threads=threads, n_threads_batch=threads, verbose=False)

    def embed(texts: list[str]) -> None:
        for i in range(0, len(texts), 32):
            model.embed(texts[i:i + 32])

    return embed


if __name__ == "__main__":
    main()
