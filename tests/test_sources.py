"""Feeds, archives, PDFs and Word documents into the index: every article with its source, title and date."""

from __future__ import annotations

import gzip
import json

import pytest

from fakes import write_article
from index import Store, ingest
from index.archives import ArchiveFields
from index.fetch import FetchPolicy
from webfakes import LocalWeb, make_pdf

LOCAL = FetchPolicy(enabled=True, allow_private=True, timeout=2.0)
LONG = " ".join(["The council approved the new budget for schools and roads after a long debate."] * 20)


def rss(items: str) -> str:
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Local news</title>{items}</channel></rss>'


def item(title: str, link: str, text: str, date: str = "Thu, 03 Jul 2025 10:00:00 GMT") -> str:
    return (f"<item><title>{title}</title><link>{link}</link><pubDate>{date}</pubDate>"
            f"<description><![CDATA[{text}]]></description></item>")


def page(title: str, body: str) -> bytes:
    return f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>{body}</article></body></html>".encode()


@pytest.fixture
def web():
    server = LocalWeb()
    yield server
    server.close()


def documents(index_dir, embedder):
    return {d.source: d for d in Store.open(index_dir, embedder).documents()}


def test_feed_entries_with_full_text_are_articles_with_link_title_and_date(tmp_path, embedder):
    feed = write_article(tmp_path, "news.rss", rss(
        item("Budget approved", "https://example.com/budget", f"<p>{LONG}</p><p>Share this article</p>")
        + item("Bridge closed", "https://example.com/bridge", f"<p>The old bridge closed. {LONG}</p>",
               "Fri, 04 Jul 2025 09:00:00 GMT")))
    report = ingest([feed], tmp_path / "index", embedder, progress=False)
    assert report.added == 2
    docs = documents(tmp_path / "index", embedder)
    assert (docs["https://example.com/budget"].title, docs["https://example.com/budget"].date) == \
        ("Budget approved", "2025-07-03")
    assert docs["https://example.com/bridge"].date == "2025-07-04"
    store = Store.open(tmp_path / "index", embedder)
    assert "Share this" not in store.document(docs["https://example.com/budget"].doc_id).text


def test_summary_entries_keep_their_summary_without_fetch_and_get_the_page_with_it(tmp_path, embedder, web):
    web.pages["/full"] = ("text/html", page("Budget approved", f"<p>{LONG}</p><p>Fire crews cheered.</p>"))
    feed = write_article(tmp_path, "news.xml", rss(item("Budget approved", web.url("/full"), "Council passes budget.")))
    ingest([feed], tmp_path / "index", embedder, progress=False)
    assert web.requests == [], "no fetching unless asked for"
    (doc,) = documents(tmp_path / "index", embedder).values()
    assert Store.open(tmp_path / "index", embedder).document(doc.doc_id).text == "Council passes budget."

    report = ingest([feed], tmp_path / "index", embedder, progress=False, fetch=LOCAL)
    assert report.updated == 1 and web.paths() == ["/full"]
    (doc,) = documents(tmp_path / "index", embedder).values()
    assert "Fire crews cheered." in Store.open(tmp_path / "index", embedder).document(doc.doc_id).text


def test_watching_a_feed_skips_known_links_and_adds_new_ones(tmp_path, embedder, web):
    """What `qa ingest --watch URL` does each round: known entries are neither downloaded nor embedded."""
    web.pages["/a"] = ("text/html", page("First", f"<p>{LONG}</p>"))
    web.pages["/b"] = ("text/html", page("Second", f"<p>A storm closed the port. {LONG}</p>"))
    web.pages["/feed"] = ("application/rss+xml", rss(item("First", web.url("/a"), "Teaser.")).encode())
    assert ingest([web.url("/feed")], tmp_path / "index", embedder, progress=False, fetch=LOCAL).added == 1
    web.pages["/feed"] = ("application/rss+xml",
                          rss(item("Second", web.url("/b"), "Teaser two.") + item("First", web.url("/a"), "Teaser."))
                          .encode())
    web.requests.clear()
    embedder.calls.clear()
    report = ingest([web.url("/feed")], tmp_path / "index", embedder, progress=False, fetch=LOCAL)
    assert (report.added, report.unchanged) == (1, 1)
    assert sorted(web.paths()) == ["/b", "/feed"], "the known article is not downloaded again"
    assert set(documents(tmp_path / "index", embedder)) == {web.url("/a"), web.url("/b")}


def test_a_hostile_feed_entry_is_refused_and_the_others_indexed(tmp_path, embedder, web):
    web.pages["/secret"] = ("text/html", page("Internal", "<p>internal admin page</p>" * 30))
    entries = (item("Local link", web.url("/secret"), "Short teaser.")      # private address: not fetched
               + item("File link", "file:///etc/passwd", f"<p>{LONG}</p>")  # kept as text, link ignored
               + item("Script", "https://example.com/s",
                      f"<script>alert(1)</script><p>Mayor re-elected. {LONG}</p><iframe src='x'></iframe>")
               + item("A" * 5000, "javascript:alert(1)", f"<p>Harbour news. {LONG}</p>"))
    feed = write_article(tmp_path, "hostile.rss", rss(entries))
    report = ingest([feed], tmp_path / "index", embedder, progress=False,
                    fetch=FetchPolicy(enabled=True, allow_private=False, timeout=2.0))
    assert web.requests == [], "a link to this network is refused without --allow-private"
    assert report.added == 3 and "private or local" in report.rejected[0].reason
    docs = documents(tmp_path / "index", embedder)
    store = Store.open(tmp_path / "index", embedder)
    assert not any(s.startswith(("file:", "javascript:")) for s in docs)
    assert all("alert" not in store.document(d.doc_id).text for d in docs.values())
    assert max(len(d.title) for d in docs.values()) <= 300


def test_a_feed_file_that_is_not_a_feed_is_rejected(tmp_path, embedder, articles_dir):
    bad = write_article(tmp_path, "notes.xml", "<notes><note>hello</note></notes>")
    report = ingest([bad, articles_dir], tmp_path / "index", embedder, progress=False)
    assert report.added == 4 and "not an RSS or Atom feed" in report.rejected[0].reason


def rows(n: int = 3):
    return [{"title": f"Story {i}", "date": f"2025-07-0{i + 1}", "url": f"https://example.com/{i}",
             "text": f"Story number {i} is about the harbour. {LONG}"} for i in range(n)]


@pytest.mark.parametrize("name", ["news.jsonl", "news.jsonl.gz"])
def test_jsonl_archive_rows_are_articles_known_by_url(tmp_path, embedder, name):
    lines = [json.dumps(r) for r in rows()] + ["{not json", "[1, 2]", json.dumps({"title": "no text"})]
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    report = ingest([path], tmp_path / "index", embedder, progress=False)
    assert report.added == 3
    assert [r.source.rsplit("#", 1)[1] for r in report.rejected] == ["L4", "L5", "L6"]
    assert "--text-field" in report.rejected[2].reason
    docs = documents(tmp_path / "index", embedder)
    assert (docs["https://example.com/1"].title, docs["https://example.com/1"].date) == ("Story 1", "2025-07-02")
    embedder.calls.clear()
    assert ingest([path], tmp_path / "index", embedder, progress=False).unchanged == 3 and embedder.calls == []


def test_csv_archive_with_a_field_mapping_and_rows_without_url(tmp_path, embedder):
    import csv

    path = tmp_path / "export.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["headline", "published", "bodytext"])
        for r in rows(2):
            writer.writerow([r["title"], "Thu, 03 Jul 2025 10:00:00 GMT", r["text"] + "\n\nAdvertisement\n\nEnd."])
    report = ingest([path], tmp_path / "index", embedder, progress=False, fields=ArchiveFields(text="bodytext"))
    assert report.added == 2, report.rejected
    docs = documents(tmp_path / "index", embedder)
    first = docs[f"{path}#R1"]
    assert (first.title, first.date) == ("Story 0", "2025-07-03")
    assert "Advertisement" not in Store.open(tmp_path / "index", embedder).document(first.doc_id).text
    wrong = ingest([path], tmp_path / "index2", embedder, progress=False)
    assert wrong.added == 0 and "--text-field" in wrong.rejected[0].reason


def test_prune_drops_the_rows_of_a_deleted_archive_but_keeps_web_articles(tmp_path, embedder):
    archive = tmp_path / "a.jsonl"
    archive.write_text(json.dumps({"text": LONG, "title": "No URL"}) + "\n" + json.dumps(rows(1)[0]) + "\n")
    other = write_article(tmp_path / "more", "x.txt", "Other story\n\n" + LONG.replace("council", "club"))
    ingest([archive, other.parent], tmp_path / "index", embedder, progress=False)
    archive.unlink()
    report = ingest([other.parent], tmp_path / "index", embedder, progress=False, prune=True)
    assert report.removed == 1
    assert set(documents(tmp_path / "index", embedder)) == {"https://example.com/0", str(other.resolve())}


def test_pdf_pages_in_order_without_running_headers_and_footers(tmp_path, embedder):
    pages = [["The Daily Bugle - Tuesday", "Storm hits the coast", "Heavy rain flooded the harbour on Monday.",
              "Page 1 of 3"],
             ["The Daily Bugle - Tuesday", "The ferry to the islands was suspended.", "Page 2 of 3"],
             ["The Daily Bugle - Tuesday", "Fishermen said the damage was the worst in a decade.", "Page 3 of 3"]]
    path = tmp_path / "paper.pdf"
    path.write_bytes(make_pdf(pages, title="Storm hits the coast"))
    report = ingest([path], tmp_path / "index", embedder, progress=False)
    assert report.added == 1, report.rejected
    (doc,) = documents(tmp_path / "index", embedder).values()
    text = Store.open(tmp_path / "index", embedder).document(doc.doc_id).text
    assert text.split("\n") == ["Storm hits the coast", "Heavy rain flooded the harbour on Monday.", "",
                                "The ferry to the islands was suspended.", "",
                                "Fishermen said the damage was the worst in a decade."]
    assert (doc.title, doc.date) == ("Storm hits the coast", "2024-03-02")


@pytest.mark.parametrize("data, reason", [
    (b"%PDF-1.4 garbage", "not a readable PDF"),
    (make_pdf([[]]), "without a text layer"),
])
def test_bad_pdfs_are_rejected_with_a_reason(tmp_path, embedder, data, reason):
    path = tmp_path / "bad.pdf"
    path.write_bytes(data)
    report = ingest([path], tmp_path / "index", embedder, progress=False)
    assert reason in report.rejected[0].reason


def make_docx(paragraphs: list[tuple[str, str]], title: str = "") -> bytes:
    """A Word document of (style, text) paragraphs, with a table that is not the story."""
    import io

    import docx

    document = docx.Document()
    document.core_properties.title = title
    for style, text in paragraphs:
        document.add_paragraph(text, style=style)
    document.add_table(rows=1, cols=2).rows[0].cells[0].text = "Figures in the table"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


@pytest.mark.parametrize("title", ["", "Storm hits the coast"])
def test_a_word_document_is_an_article_with_its_heading_as_title(tmp_path, embedder, title):
    path = tmp_path / "story.docx"
    path.write_bytes(make_docx([("Heading 1", "Storm hits the coast"), ("Normal", "By Ann Lee"),
                                ("Normal", "Heavy rain flooded the harbour on Monday, 3 March 2025."),
                                ("List Bullet", "The ferry to the islands was suspended.")], title))
    report = ingest([tmp_path], tmp_path / "index", embedder, progress=False)
    assert report.added == 1, report.rejected
    (doc,) = documents(tmp_path / "index", embedder).values()
    text = Store.open(tmp_path / "index", embedder).document(doc.doc_id).text
    assert text == ("Storm hits the coast\n\nHeavy rain flooded the harbour on Monday, 3 March 2025.\n\n"
                    "The ferry to the islands was suspended.")
    assert (doc.title, doc.date) == ("Storm hits the coast", "2025-03-03")


@pytest.mark.parametrize("data, reason", [
    (b"PK\x03\x04 not really a zip", "not a Word document"),
    (b"\xd0\xcf\x11\xe0 an old binary .doc", "save it as .docx"),
    ("zip without a document", "not a readable Word document"),
])
def test_bad_word_documents_are_rejected_with_a_reason(tmp_path, embedder, data, reason):
    if isinstance(data, str):
        import io
        import zipfile

        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr("notes.txt", "hello")
        data = buffer.getvalue()
    path = tmp_path / "bad.docx"
    path.write_bytes(data)
    report = ingest([path], tmp_path / "index", embedder, progress=False)
    assert reason in report.rejected[0].reason


def test_a_word_document_that_unpacks_to_too_much_is_rejected_unread(tmp_path, embedder, monkeypatch):
    """A .docx is a zip: one that would unpack past the limit (a zip bomb) is refused from its listing."""
    import index.word

    monkeypatch.setattr(index.word, "MAX_UNPACKED", 10_000)   # a real document unpacks to about 40 kB
    path = tmp_path / "big.docx"
    path.write_bytes(make_docx([("Normal", "Heavy rain flooded the harbour on Monday.")]))
    report = ingest([path], tmp_path / "index", embedder, progress=False)
    assert "unpacks to over" in report.rejected[0].reason
