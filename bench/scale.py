"""Large corpora: streamed ingest, resuming after a kill, BM25 and exact vs approximate search at scale.

    python bench/scale.py --passages 100000 --embedder hash     # ingest mechanics at 100k passages
    python bench/scale.py --passages 2000 --embedder default    # the real embedder's throughput
    python bench/scale.py --vectors 100000 1000000              # exact vs IVF on realistic vectors

Corpus mode writes a synthetic corpus (bench/corpus.py) to a temporary folder and ingests it in a
child process (so that its peak RSS is the ingest's own), timing every save. Then it ingests it
again into a fresh index, kills that child with SIGKILL half-way, and runs the ingest once more to
show what the resumed run re-embeds. Last, it opens the index and times dense search (exact and
as stored) and BM25. `--embedder hash` is a bag-of-words hash into 384 dimensions (tests/fakes.py):
it costs almost nothing, so the figures are those of everything but the model; its vectors are not
like a real model's, so search quality is measured in vectors mode, not here.

Vectors mode draws vectors clustered like real sentence embeddings: a mixture of Gaussians around
the real all-MiniLM-L6-v2 embeddings of the sample articles' sentences (loads the real embedder
once), with the spread of the real embeddings along their principal directions. For each size it
builds the exact and the IVF index the store would use and reports recall@10 against exact search
(on held-out stored vectors and on fresh query vectors from the same mixture), median single-query
latency, build time and size on disk.

Prints tables and the command line; asserts nothing. Timings on a busy machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import corpus  # noqa: E402

HASH_NOTE = "hash (bag-of-words hash, 384 dims: no model; figures are the pipeline without embedding cost)"


def make_embedder(kind: str):
    if kind == "hash":
        from fakes import HashEmbedder

        return HashEmbedder(dim=384, name="bench-hash-384")
    from index import default_embedder

    return default_embedder()


def table(title: str, rows: list[tuple[str, object]]) -> None:
    print(f"\n{title}")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 2**20


def median_ms(func, items) -> float:
    times = []
    for item in items:
        start = time.perf_counter()
        func(item)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


# -- corpus mode ------------------------------------------------------------------------------------

def child_ingest(corpus_dir: str, index_dir: str, embedder_kind: str) -> None:
    """Run in a child process: one ingest, then its figures as JSON on the last line of stdout."""
    from index import Store, ingest

    embedder = make_embedder(embedder_kind)
    embedder.embed(["warm up"])  # a real model loads here, outside the timing
    saves = []
    save = Store.save

    def timed_save(store, **kwargs):
        start = time.perf_counter()
        save(store, **kwargs)
        saves.append({"passages": len(store), "seconds": round(time.perf_counter() - start, 2),
                      "vectors": store.vector_index.kind})
        print(json.dumps({"saved": saves[-1]}), flush=True)

    Store.save = timed_save
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    report = ingest([corpus_dir], index_dir, embedder, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - start
    print(json.dumps({"report": {k: getattr(report, k) for k in ("added", "unchanged", "chunks_embedded",
                                                                   "total_chunks", "embed_seconds")},
                      "seconds": seconds, "saves": saves, "rss_before_mb": rss_before,
                      "peak_rss_mb": peak_rss_mb()}), flush=True)


def spawn(corpus_dir: Path, index_dir: Path, embedder: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--child-ingest", str(corpus_dir), str(index_dir),
                             "--embedder", embedder], stdout=subprocess.PIPE, text=True)


def last_json(output: str) -> dict:
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


def corpus_mode(args) -> None:
    from index import KeywordIndex, Store
    from index.ann import all_vectors, flat_index

    tmp = Path(tempfile.mkdtemp(prefix="qa-scale-", dir=args.tmp))
    try:
        docs_dir, index_dir = tmp / "corpus", tmp / "index"
        start = time.perf_counter()
        files = corpus.write_corpus(docs_dir, args.passages, seed=args.seed)
        corpus_s = time.perf_counter() - start

        child = spawn(docs_dir, index_dir, args.embedder)
        result = last_json(child.communicate()[0])
        r, saves = result["report"], result["saves"]
        n = r["total_chunks"]
        table(f"Ingest of a synthetic corpus, embedder: {HASH_NOTE if args.embedder == 'hash' else args.embedder}", [
            ("articles (files) / passages", f"{files:,} / {n:,}  (written in {corpus_s:.0f} s)"),
            ("ingest seconds", f"{result['seconds']:.0f}  (embedding {r['embed_seconds']:.0f})"),
            ("throughput, passages/s", f"{n / result['seconds']:.0f}"),
            ("peak RSS, MB", f"{result['peak_rss_mb']:.0f}  (after imports and model load: "
                             f"{result['rss_before_mb']:.0f})"),
            ("saves (checkpoints + final)", f"{len(saves)}, {sum(s['seconds'] for s in saves):.1f} s in all"),
            ("each save: passages -> seconds", ", ".join(f"{s['passages']:,}->{s['seconds']}s"
                                                         + ("" if s["vectors"] == "flat" else " (ivf)")
                                                         for s in saves)),
            ("index on disk, MB", f"{folder_mb(index_dir):.0f}"),
        ])

        if not args.no_resume:
            resume_demo(docs_dir, tmp / "index-killed", args.embedder, n)

        embedder = make_embedder(args.embedder)
        embedder.embed(["warm up"])
        import faiss  # noqa: F401 - libraries loaded before measuring what the index itself takes

        from index.keyword import _bm25s
        _bm25s()
        rss_before = rss_mb()
        start = time.perf_counter()
        store = Store.open(index_dir, embedder)
        open_s = time.perf_counter() - start
        open_mb = rss_mb() - rss_before
        rng = random.Random(args.seed)
        rows = rng.sample(range(len(store)), 200)
        texts = [store._chunks[row].text for row in rows]  # noqa: SLF001
        query_vectors = store.embedder.embed(texts)
        exact = flat_index(store.dim)
        exact.add(all_vectors(store._vectors))  # noqa: SLF001
        stored = store._vectors  # noqa: SLF001
        words = [s.split() for s in corpus._sentences()]
        keyword_queries = [" ".join(w[i:i + rng.randint(3, 8)]) for w in rng.choices(words, k=200)
                           for i in [rng.randrange(max(1, len(w) - 8))]]
        start = time.perf_counter()
        KeywordIndex().build([c.text for c in store._chunks])  # noqa: SLF001 - what the final save does
        bm25_build_s = time.perf_counter() - start
        vector_mb = n * store.dim * 4 / 2**20
        exact_ms = median_ms(lambda q: exact.search(q[None], 10), query_vectors)
        stored_ms = median_ms(lambda q: stored.search(q[None], 10), query_vectors)
        store_ms = median_ms(lambda q: store.search_vector(q, 20), query_vectors)
        bm25_ms = median_ms(lambda q: store.keyword_search(q, 20), keyword_queries)
        table(f"Searching the {n:,}-passage index", [
            ("open (checksums, passages, BM25 into memory), s", f"{open_s:.1f}"),
            ("resident memory of the open index, MB", f"{open_mb:.0f}  (vectors alone: {vector_mb:.0f})"),
            ("dense search as stored", f"{store.vector_index.kind}, {store.vector_index.as_dict()}"),
            ("median ms per query: exact (flat)", f"{exact_ms:.1f}"),
            ("median ms per query: as stored", f"{stored_ms:.1f}"),
            ("median ms per query: Store.search_vector, k=20", f"{store_ms:.1f}"),
            ("BM25 build (done by the final save, loaded by open), s", f"{bm25_build_s:.1f}"),
            ("BM25 median ms per query, k=20", f"{bm25_ms:.1f}"),
            ("peak RSS of this process, MB", f"{peak_rss_mb():.0f}"),
        ])
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def resume_demo(docs_dir: Path, index_dir: Path, embedder: str, total: int) -> None:
    """Kill an ingest with SIGKILL once a checkpoint holds about half the corpus, then run it again."""
    child = spawn(docs_dir, index_dir, embedder)
    checkpoint = None
    for line in child.stdout:
        if line.startswith('{"saved"'):
            checkpoint = json.loads(line)["saved"]
            if checkpoint["passages"] >= total // 2:
                break
    time.sleep(5)  # into the next group: work that the kill loses
    child.send_signal(signal.SIGKILL)
    child.wait()
    rerun = spawn(docs_dir, index_dir, embedder)
    result = last_json(rerun.communicate()[0])
    r = result["report"]
    table("Resume: ingest killed with SIGKILL, then run again", [
        ("last checkpoint before the kill, passages", f"{checkpoint['passages']:,}" if checkpoint else "none"),
        ("rerun: files unchanged (skipped) / added", f"{r['unchanged']:,} / {r['added']:,}"),
        ("rerun: passages embedded / in the index", f"{r['chunks_embedded']:,} / {r['total_chunks']:,}"),
        ("rerun: seconds", f"{result['seconds']:.0f}"),
    ])


# -- vectors mode -----------------------------------------------------------------------------------

def centers() -> np.ndarray:
    """Real embeddings: the sample articles' sentences and passages, and short made-up articles."""
    import itertools

    from index import chunk_document, default_embedder, iter_files, load_file

    texts = corpus._sentences() + [c.text for p in iter_files([corpus.SAMPLES]) for c in chunk_document(load_file(p))]
    texts += list(itertools.islice(corpus.articles(seed=1, words=(30, 60)), 200))
    return default_embedder().embed(texts)


def realistic_vectors(n: int, real: np.ndarray, seed: int = 0, per_topic: int = 50) -> np.ndarray:
    """`n` unit vectors in topics around the `real` embeddings, spread like them.

    Two levels: topic centres around the real vectors, passages around the topics. Both offsets
    follow the real embeddings' principal directions and spreads (plus a little isotropic noise).
    With the spreads used, a vector's nearest neighbour has a cosine of about 0.7 at 100,000
    vectors and a random pair about 0.13, as in a varied news corpus.
    """
    rng = np.random.default_rng(seed)
    _, spread, directions = np.linalg.svd(real - real.mean(axis=0), full_matrices=False)
    spread = (spread / np.sqrt(len(real))).astype(np.float32)
    directions = directions.astype(np.float32)

    def noise(m: int) -> np.ndarray:
        along = rng.standard_normal((m, len(spread)), dtype=np.float32) * spread
        return along @ directions + rng.standard_normal((m, real.shape[1]), dtype=np.float32) * spread.min()

    topics = real[rng.integers(len(real), size=max(1, n // per_topic))] + 1.5 * noise(max(1, n // per_topic))
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = topics[rng.integers(len(topics), size=m)] + 1.2 * noise(m)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def vectors_mode(args) -> None:
    import faiss

    from index.ann import build_ivf, exact_neighbours, flat_index, recall_at_k, search_leave_one_out

    real = centers()
    print(f"threads: faiss {faiss.omp_get_max_threads()}, cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    rows = []
    for n in args.vectors:
        all_vectors = realistic_vectors(n + 1000, real, seed=args.seed)
        x, fresh = all_vectors[:n], all_vectors[n:]   # fresh: queries from the same mixture, not in the index
        start = time.perf_counter()
        flat = flat_index(x.shape[1])
        flat.add(x)
        flat_s = time.perf_counter() - start
        ivf, info = build_ivf(x, seed=args.seed)
        held_out = np.random.default_rng(args.seed + 1).choice(n, 1000, replace=False)
        recall_held = recall_at_k(exact_neighbours(x, held_out, 10), search_leave_one_out(ivf, x, held_out, 10))
        exact_fresh, _ = flat.search(fresh, 10)
        recall_fresh = recall_at_k(exact_fresh, ivf.search(fresh, 10)[0])
        nn, _ = flat.search(fresh[:200], 10)
        latency_queries = fresh[:max(20, min(200, 20_000_000 // n))]
        flat_ms = median_ms(lambda q: flat.search(q[None], 10), latency_queries)
        ivf_ms = median_ms(lambda q: ivf.search(q[None], 10), fresh[:200])
        sizes = []
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            for name, index in (("flat", flat), ("ivf", ivf)):
                path = Path(tmp) / f"{name}.faiss"
                faiss.write_index(index, str(path))
                sizes.append(path.stat().st_size / 2**20)
        rows.append((n, info, recall_held, recall_fresh, flat_ms, ivf_ms, flat_s, sizes, nn))
        print(f"{n:,} vectors done: {info}", flush=True)
        del flat, ivf, x, all_vectors

    print("\nExact (IndexFlatIP) vs approximate (IVF-Flat, nprobe tuned to recall@10 >= 0.95) on realistic vectors")
    head = ("vectors", "nlist", "nprobe", "recall@10 held-out", "recall@10 fresh", "exact ms", "ivf ms",
            "speed-up", "build s (ivf)", "build s (flat)", "MB on disk flat / ivf", "cos nn1 / nn10")
    print("  " + " | ".join(head))
    for n, info, held, fresh, flat_ms, ivf_ms, flat_s, sizes, nn in rows:
        print("  " + " | ".join(str(v) for v in (
            f"{n:,}", info.nlist, info.nprobe, f"{held:.3f}", f"{fresh:.3f}", f"{flat_ms:.1f}", f"{ivf_ms:.2f}",
            f"{flat_ms / ivf_ms:.0f}x", f"{info.build_seconds:.0f}", f"{flat_s:.1f}",
            f"{sizes[0]:.0f} / {sizes[1]:.0f}", f"{nn[:, 0].mean():.2f} / {nn[:, 9].mean():.2f}")))
    print(f"  peak RSS {peak_rss_mb():.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passages", type=int, default=100_000, help="corpus mode: passages in the synthetic corpus")
    ap.add_argument("--embedder", choices=("hash", "default"), default="hash")
    ap.add_argument("--vectors", type=int, nargs="+", help="vectors mode: index sizes to compare")
    ap.add_argument("--no-resume", action="store_true", help="skip the kill-and-resume run")
    ap.add_argument("--keep", action="store_true", help="keep the corpus and index folder")
    ap.add_argument("--tmp", help="where to write the temporary corpus and index (default: the system's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child-ingest", nargs=2, metavar=("CORPUS", "INDEX"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_ingest:
        child_ingest(*args.child_ingest, args.embedder)
        return
    print("$ " + " ".join([Path(sys.executable).name, *sys.argv]))
    if args.vectors:
        vectors_mode(args)
    else:
        corpus_mode(args)


if __name__ == "__main__":
    main()
