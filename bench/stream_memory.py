"""Peak memory while streaming a large JSON Lines archive through reading, cleaning and chunking.

    python bench/stream_memory.py SOURCE_FOLDER ARCHIVE [--gb 1.0] [--chunk-rows N] [--keep]

Writes a synthetic archive of about --gb gigabytes under ARCHIVE (the articles of SOURCE_FOLDER over
and over, each row made distinct by its id), then reads it as `qa ingest` does (index/archives.py:
row by row, cleaned, chunked with the project's chunker) and prints rows, passages, seconds and the
peak RSS of this process. With --chunk-rows N only the first N rows are chunked (pysbd is the slow
part: about 100 articles/s on a free core) and the rest are read and cleaned. No embedding and no store: this measures the streaming side only (the
index itself grows with what it holds, whatever the input's shape). Deletes the archive unless --keep.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from index import chunk_document, iter_files
from index.archives import ArchiveFields, archive_items
from index.errors import RejectedFile


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_archive(source: Path, target: Path, size: int) -> int:
    articles = [p.read_text(encoding="utf-8", errors="replace") for p in iter_files([source])]
    written = rows = 0
    with open(target, "w", encoding="utf-8") as out:
        while written < size:
            text = articles[rows % len(articles)]
            title, _, body = text.partition("\n")
            line = json.dumps({"id": rows, "title": title, "date": "2025-07-01",
                               "url": f"https://example.com/a/{rows}", "text": f"{body}\n\n(Row {rows}.)"}) + "\n"
            out.write(line)
            written += len(line.encode())
            rows += 1
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("archive")
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--chunk-rows", type=int, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    archive = Path(args.archive)
    rows = write_archive(Path(args.source), archive, int(args.gb * 1e9))
    print(f"archive {archive}: {archive.stat().st_size / 1e9:.2f} GB, {rows} rows; peak RSS after writing "
          f"{peak_mb():.0f} MB", flush=True)
    start = time.perf_counter()
    done = passages = rejected = 0
    try:
        for item in archive_items(archive, ArchiveFields(), 20_000_000):
            try:
                doc = item.load()
                if args.chunk_rows is None or done < args.chunk_rows:
                    passages += len(chunk_document(doc))
            except RejectedFile:
                rejected += 1
            done += 1
            if done % 20_000 == 0:
                print(f"  {done} rows, {passages} passages, {time.perf_counter() - start:.0f} s, "
                      f"peak RSS {peak_mb():.0f} MB", flush=True)
    finally:
        if not args.keep:
            archive.unlink()
    seconds = time.perf_counter() - start
    chunked = done if args.chunk_rows is None else min(done, args.chunk_rows)
    print(f"read and cleaned {done} rows ({rejected} rejected), chunked {chunked} into {passages} passages "
          f"in {seconds:.0f} s "
          f"({done / seconds:.0f} articles/s); peak RSS {peak_mb():.0f} MB")


if __name__ == "__main__":
    main()
