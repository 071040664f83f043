"""Ingest throughput per input format (articles/s), next to raw embedding of the same passages.

    python bench/formats.py SOURCE_FOLDER [--articles 60]

Takes the first N articles of SOURCE_FOLDER (title on the first line) and writes them as a folder of
.txt files, a .jsonl and a .jsonl.gz archive, a .csv archive, an RSS feed with the full text in each
entry, one PDF per article, and HTML pages served by a local HTTP server (a feed of summaries whose
links are fetched). Each is ingested into a fresh index with the real embedder (loaded once, before
timing); "raw embedding" encodes the passages of the .txt run with the embedder alone. Prints a table;
asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import html
import json
import sys
import tempfile
import time
from pathlib import Path

from index import Store, default_embedder, ingest, iter_files
from index.fetch import FetchPolicy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from webfakes import LocalWeb, make_pdf  # noqa: E402  (the tests' local server and PDF writer)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("--articles", type=int, default=60)
    args = ap.parse_args()
    articles = []
    for i, path in enumerate(sorted(iter_files([args.source]))[:args.articles]):
        title, _, body = path.read_text(encoding="utf-8").partition("\n")
        articles.append({"title": title.strip(), "text": body.strip(), "date": "2025-07-01",
                         "url": f"https://example.com/a/{i}"})
    embedder = default_embedder()
    embedder.embed(["warm up"])
    web = LocalWeb()
    rows = []
    with tempfile.TemporaryDirectory(dir="/work/var/ingest") as tmp:
        tmp = Path(tmp)
        inputs = write_inputs(articles, tmp, web)
        for name, (paths, policy) in inputs.items():
            start = time.perf_counter()
            report = ingest(paths, tmp / f"index-{name}", embedder, progress=False, fetch=policy)
            seconds = time.perf_counter() - start
            rows.append((name, report.added, report.total_chunks, seconds, report.embed_seconds))
        store = Store.open(tmp / "index-txt", embedder)
        texts = [p.text for d in store.documents() for p in store.passages(
            [f"{d.doc_id}:{i}" for i in range(d.passages)])]
        start = time.perf_counter()
        embedder.embed(texts)
        raw = time.perf_counter() - start
    web.close()
    print(f"{'format':12} {'articles':>8} {'passages':>8} {'seconds':>8} {'articles/s':>10} {'embedding share':>15}")
    for name, added, chunks, seconds, embed in rows:
        print(f"{name:12} {added:8d} {chunks:8d} {seconds:8.1f} {added / seconds:10.2f} {embed / seconds:15.0%}")
    print(f"{'raw embed':12} {len(articles):8d} {len(texts):8d} {raw:8.1f} {len(articles) / raw:10.2f}")


def write_inputs(articles: list[dict], tmp: Path, web: LocalWeb) -> dict:
    folder, pdfs = tmp / "txt", tmp / "pdf"
    folder.mkdir()
    pdfs.mkdir()
    for i, a in enumerate(articles):
        (folder / f"{i:04d}.txt").write_text(f"{a['title']}\n\n{a['text']}", encoding="utf-8")
        lines = _wrap(a["title"]) + [w for para in a["text"].split("\n") for w in _wrap(para)]
        pages = [lines[j:j + 50] for j in range(0, len(lines), 50)]
        (pdfs / f"{i:04d}.pdf").write_bytes(make_pdf(pages, title=None))
    jsonl = "".join(json.dumps(a) + "\n" for a in articles).encode()
    (tmp / "a.jsonl").write_bytes(jsonl)
    (tmp / "a.jsonl.gz").write_bytes(gzip.compress(jsonl))
    with open(tmp / "a.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["title", "date", "url", "text"])
        writer.writeheader()
        writer.writerows(articles)
    def entry(a, body, link):
        return (f"<item><title>{html.escape(a['title'])}</title><link>{link}</link>"
                f"<pubDate>Tue, 01 Jul 2025 10:00:00 GMT</pubDate><description>{html.escape(body)}</description></item>")
    full = "".join(entry(a, "".join(f"<p>{html.escape(p)}</p>" for p in a["text"].split("\n") if p), a["url"])
                   for a in articles)
    (tmp / "full.rss").write_text(f"<rss version='2.0'><channel><title>x</title>{full}</channel></rss>")
    for i, a in enumerate(articles):
        body = "".join(f"<p>{html.escape(p)}</p>" for p in a["text"].split("\n") if p)
        web.pages[f"/a/{i}"] = ("text/html", f"<html><head><title>{html.escape(a['title'])}</title></head><body>"
                                f"<article><h1>{html.escape(a['title'])}</h1>{body}</article></body></html>".encode())
    teasers = "".join(entry(a, "A teaser.", web.url(f"/a/{i}")) for i, a in enumerate(articles))
    web.pages["/feed"] = ("application/rss+xml", f"<rss version='2.0'><channel><title>x</title>{teasers}"
                          "</channel></rss>".encode())
    local = FetchPolicy(enabled=True, allow_private=True)
    return {"txt": ([folder], None), "jsonl": ([tmp / "a.jsonl"], None), "jsonl.gz": ([tmp / "a.jsonl.gz"], None),
            "csv": ([tmp / "a.csv"], None), "rss (full)": ([tmp / "full.rss"], None), "pdf": ([pdfs], None),
            "feed+pages": ([web.url("/feed")], local)}


def _wrap(paragraph: str, width: int = 90) -> list[str]:
    """A paragraph as lines of a printed page, ASCII only (the test PDF writer's font is Latin-1)."""
    words, lines, line = paragraph.encode("latin-1", "replace").decode("latin-1").split(), [], ""
    for word in words:
        if line and len(line) + len(word) > width:
            lines.append(line)
            line = ""
        line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


if __name__ == "__main__":
    main()
