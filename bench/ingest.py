"""Ingest throughput against raw `SentenceTransformer.encode` on the same chunks, and re-ingest time.

    python bench/ingest.py [FOLDER] [--copies N] [--repeats N]

The embedder is loaded before timing starts, so both figures measure the work per chunk; each ingest
(into a fresh index) alternates with a raw encode of the same chunks, and the best of each is kept. With
--copies N the folder's articles are written N times (each copy made distinct by a line naming it),
for a corpus large enough that fixed costs do not dominate. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from index import chunk_document, default_embedder, ingest, iter_files, load_file

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", nargs="?", default=str(ROOT / "data" / "articles"))
    ap.add_argument("--copies", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="ingest and raw encode alternated this many times")
    args = ap.parse_args()

    embedder = default_embedder()
    embedder.embed(["warm up"])
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for copy in range(args.copies):
            for path in iter_files([args.folder]):
                text = path.read_text(encoding="utf-8", errors="replace")
                suffix = f"\n\n(Copy {copy} of this article.)" if args.copies > 1 else ""
                (corpus / f"{copy:04d}_{path.name}").write_text(text + suffix, encoding="utf-8")

        chunks = [c.text for p in iter_files([corpus]) for c in chunk_document(load_file(p))]
        model = embedder._load()  # noqa: SLF001 - the raw SentenceTransformer, for the baseline
        ingest_s, raw_s = [], []
        for run in range(args.repeats):  # alternated, so both see the same machine; the best of each is kept
            index_dir = Path(tmp) / f"index-{run}"
            start = time.perf_counter()
            report = ingest([corpus], index_dir, embedder, progress=False)
            ingest_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            model.encode(chunks, batch_size=embedder.batch_size, normalize_embeddings=True)
            raw_s.append(time.perf_counter() - start)

        start = time.perf_counter()
        again = ingest([corpus], index_dir, embedder, progress=False)
        reingest_s = time.perf_counter() - start

    ingest_s, raw_s = min(ingest_s), min(raw_s)
    rows = [
        ("articles", f"{report.added}"),
        ("chunks", f"{report.total_chunks}"),
        ("ingest seconds (load, chunk, embed, save), best", f"{ingest_s:.2f}"),
        ("ingest throughput, chunks/s", f"{report.total_chunks / ingest_s:.1f}"),
        ("raw encode throughput, chunks/s", f"{len(chunks) / raw_s:.1f}"),
        ("ingest / raw", f"{(report.total_chunks / ingest_s) / (len(chunks) / raw_s):.2f}"),
        ("re-ingest unchanged: seconds", f"{reingest_s:.3f}"),
        ("re-ingest unchanged: chunks embedded", f"{again.chunks_embedded}"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>10}")


if __name__ == "__main__":
    main()
