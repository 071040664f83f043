"""Loading files: decoding, rejection reasons, headline and date of the sample articles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fakes import ARTICLES, write_article
from index import InputError, RejectedFile, iter_files, load_file
from index.loading import header_date, headline


@pytest.mark.parametrize("name, title", [
    ("000_ca59ae6da1aa856b.txt", "Hungary is deepening its relations with Russia, despite the brutal war against Ukraine."),
    ("001_f06e6a34230dbb8f.txt", "NATO Diplomats Discuss Growing Concern Over Hungary's 'Deepening Relationship "
                                 "With Russia' At Budapest Meeting"),
    ("004_374a4539e936311e.txt", "Hungarian Prime Minister Viktor Orban and Russian President Vladimir Putin"),
])
def test_title_is_the_headline_not_the_dateline(sample_corpus, name, title):
    assert load_file(sample_corpus / name).title == title


def test_title_of_an_article_that_starts_with_a_long_sentence_is_shortened(sample_corpus):
    """003 starts "date 2023-11-07 In a reaffirmation of ...": the title is that sentence, cut near 90 chars."""
    title = load_file(sample_corpus / "003_b0f1806591561c29.txt").title
    assert title.startswith("In a reaffirmation of their commitment to bilateral ties")
    assert title.endswith("…") and len(title) <= 92 and "date" not in title


@pytest.mark.parametrize("name, date", [
    ("000_ca59ae6da1aa856b.txt", "2023-10-19"),
    ("001_f06e6a34230dbb8f.txt", None),
    ("002_3ffedc4987192e79.txt", None),
    ("003_b0f1806591561c29.txt", "2023-11-07"),
    ("004_374a4539e936311e.txt", None),
])
def test_date_comes_from_the_header_only(sample_corpus, name, date):
    assert load_file(sample_corpus / name).date == date


@pytest.mark.parametrize("header, date", [
    ("Oleg Davigora19:20, 19.10.23\n\nText.", "2023-10-19"),
    ("Published October 19, 2023 by Staff\n\nText.", "2023-10-19"),
    ("Berlin, 7 Nov 2023 - Text.", "2023-11-07"),
    ("Posted 2023-02-30, not a date; then 2023-03-01.", "2023-03-01"),
    ("Talks began on October 17 in Beijing.", None),
    ("Headline\n\n" + "Filler words. " * 40 + "On 19 October 2023 it ended.", None),
])
def test_header_date(header, date):
    assert header_date(header) == date


@pytest.mark.parametrize("text, title", [
    ("By Jane Doe\n\nFloods hit the valley\n\nBody text.", "Floods hit the valley"),
    ("# Markdown headline\n\nBody.", "Markdown headline"),
    ("\n\n  date 2023-01-02   \n\nReal headline here\n", "Real headline here"),
])
def test_headline_skips_bylines_and_marks(text, title):
    assert headline(text) == title


def test_document_identity_is_the_content_hash(sample_corpus):
    doc = load_file(sample_corpus / "002_3ffedc4987192e79.txt")
    import hashlib

    assert doc.sha256 == hashlib.sha256(doc.text.encode()).hexdigest()
    assert doc.doc_id == doc.sha256[:16]
    assert doc.source.endswith("002_3ffedc4987192e79.txt")


def test_html_gives_article_text_title_and_no_page_furniture(tmp_path):
    doc = load_file(write_article(tmp_path, "election.html", ARTICLES["election.html"]))
    assert doc.title == "Mayor wins second term"
    assert "sixty percent of the vote" in doc.text and "bigger library" in doc.text
    for furniture in ("SCRIPT_TEXT", "NAV_TEXT", "tracker", "<p>"):
        assert furniture not in doc.text


def test_html_page_that_is_not_an_article_still_gives_its_text(tmp_path):
    doc = load_file(write_article(tmp_path, "notice.html", "<html><body><div>Short notice: the library "
                                                           "closes early today.</div></body></html>"))
    assert doc.text == "Short notice: the library closes early today." and doc.title == doc.text


def test_html_date_from_metadata(tmp_path):
    page = ("<html><head><title>T</title><meta property='article:published_time' content='2023-10-18T10:00:00Z'>"
            "</head><body><article><p>" + "The council met and voted on the budget. " * 10 + "</p></article></body></html>")
    assert load_file(write_article(tmp_path, "a.htm", page)).date == "2023-10-18"


BODY = "The old bridge over the river closed on Monday for six months of repairs, the city said.\n"


@pytest.mark.parametrize("name, header", [
    ("front-matter.md", '---\ntitle: "Bridge closes for repairs"\ndate: 2024-09-10\nauthor: Sam Lee\n'
                        "tags: [transport]\n---\n\n"),
    ("fields.txt", "Title: Bridge closes for repairs\nPublished: September 10, 2024\nAuthor: Sam Lee\n"
                   "URL: https://example.org/b\n\n"),
    ("headline-only.txt", "Headline: Bridge closes for repairs\n\n"),
])
def test_a_metadata_header_gives_the_title_and_date_and_is_not_article_text(tmp_path, name, header):
    """What scrapers, newsletters and note apps write above an article (YAML front matter, "Title:" and
    "Date:" lines) is its title and date, not its first sentences."""
    doc = load_file(write_article(tmp_path, name, header + BODY))
    assert doc.title == "Bridge closes for repairs"
    assert doc.date == (None if name == "headline-only.txt" else "2024-09-10")
    assert doc.text == "Bridge closes for repairs\n\n" + BODY


@pytest.mark.parametrize("text", [
    "BREAKING: Floods in the valley\n\nHeavy rain flooded the valley on Sunday.\n",   # a headline with a colon
    "Source: Reuters\n\nHeavy rain flooded the valley on Sunday.\n",                 # one field that is no title
    "Title: Floods\nHeavy rain flooded the valley on Sunday, officials said.\n",        # no blank line after it
    "---\ntitle: [unclosed\n---\nHeavy rain flooded the valley on Sunday.\n",          # front matter that is not YAML
])
def test_text_that_only_looks_like_a_header_is_kept(tmp_path, text):
    doc = load_file(write_article(tmp_path, "a.txt", text))
    first = next(line for line in text.split("\n") if line.strip("-"))
    assert first in doc.text and "Heavy rain flooded the valley on Sunday" in doc.text and doc.date is None


def test_text_is_normalized(tmp_path):
    path = write_article(tmp_path, "a.txt", "\ufeffHeadline\r\n\r\nLine one.\rLine\x07 two.\n".encode())
    assert load_file(path).text == "Headline\n\nLine one.\nLine two.\n"


def test_latin1_text_is_decoded(tmp_path):
    text = "Le café du village a rouvert ses portes. Les habitués sont revenus dès le matin, ravis."
    doc = load_file(write_article(tmp_path, "cafe.txt", text.encode("latin-1")))
    assert "café" in doc.text and "habitués" in doc.text


def test_utf16_with_bom_is_decoded(tmp_path):
    doc = load_file(write_article(tmp_path, "u.txt", "Bonjour café\n".encode("utf-16")))
    assert doc.text == "Bonjour café\n"


BAD_FILES = {
    "zero bytes": ("empty.txt", b"", "empty"),
    "whitespace only": ("blank.txt", b"  \n\t\n  \r\n", "whitespace"),
    "binary renamed .txt": ("image.txt", bytes.fromhex("89504e470d0a1a0a0000000d49484452") + bytes(range(256)), "binary"),
    "NUL bytes": ("nul.md", b"Some text\x00with a NUL byte", "NUL"),
    "control characters": ("ctrl.txt", bytes(range(1, 9)) * 50 + b"ab", "non-printable"),
    "unsupported extension": ("report.xlsx", b"PK\x03\x04 ...", "unsupported"),
    "empty HTML page": ("blank.html", b"<html><body><script>x=1</script></body></html>", "no article text"),
}


@pytest.mark.parametrize("name, content, reason", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_files_are_rejected_with_a_reason(tmp_path, name, content, reason):
    path = write_article(tmp_path, name, content)
    with pytest.raises(RejectedFile) as caught:
        load_file(path)
    assert reason in caught.value.reason
    assert caught.value.source == str(path)


def test_too_large_file_is_rejected(tmp_path):
    path = write_article(tmp_path, "big.txt", "word " * 300)
    with pytest.raises(RejectedFile, match="over the .* limit"):
        load_file(path, max_bytes=1000)


def test_folder_and_unreadable_file_are_rejected(tmp_path, monkeypatch):
    (tmp_path / "folder.txt").mkdir()
    with pytest.raises(RejectedFile, match="folder"):
        load_file(tmp_path / "folder.txt")
    locked = write_article(tmp_path, "locked.txt", "Secret text.")

    def denied(path, *args, **kwargs):  # chmod 000 does not stop root, so fake the refusal
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(RejectedFile, match="permission denied"):
        load_file(locked)


def test_iter_files_walks_folders_sorted_and_skips_hidden_and_unsupported(tmp_path):
    for name in ["b.txt", "a.md", "sub/c.html", "sub/d.htm", "e.markdown", "notes.xlsx", ".hidden.txt",
                 ".git/config.txt", "sub/image.png"]:
        write_article(tmp_path, name, "x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path])]
    assert found == ["a.md", "b.txt", "e.markdown", "sub/c.html", "sub/d.htm"]


def test_iter_files_yields_a_named_file_once_even_if_unsupported(tmp_path):
    pdf = write_article(tmp_path, "notes.xlsx", "x")
    txt = write_article(tmp_path, "a.txt", "x")
    assert list(iter_files([pdf, txt, tmp_path])) == [pdf, txt]


def test_iter_files_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(iter_files([tmp_path / "nope"]))


def test_sample_titles_are_never_datelines(sample_corpus):
    for path in sorted(Path(sample_corpus).glob("*.txt")):
        doc = load_file(path)
        assert doc.title and not doc.title.lower().startswith("date"), path
