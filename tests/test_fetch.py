"""Fetching untrusted URLs from a local server: limits, redirects, private addresses, feeds and pages."""

from __future__ import annotations

import time

import pytest

from index import RejectedFile, Store, ingest
from index.fetch import USER_AGENT, FetchPolicy, fetch
from webfakes import LocalWeb

LOCAL = FetchPolicy(enabled=True, allow_private=True, timeout=2.0, max_bytes=200_000)
STORY = ("<html><head><title>Harbour reopens after storm</title>"
         "<meta property='article:published_time' content='2025-07-03T08:00:00Z'></head><body>"
         "<nav>Home | World | Share on Facebook</nav><article><h1>Harbour reopens after storm</h1>"
         + "".join(f"<p>The harbour reopened on Thursday after the storm, paragraph {i}, and the ferries to "
                   f"the islands ran again on their normal timetable, the port authority said.</p>" for i in range(6))
         + "<p>Read more: Other storms this year</p></article><footer>Cookie settings</footer></body></html>")


@pytest.fixture
def web():
    server = LocalWeb()
    yield server
    server.close()


def test_a_page_is_fetched_with_our_user_agent(web):
    web.pages["/a"] = ("text/html; charset=utf-8", STORY.encode())
    page = fetch(web.url("/a"), LOCAL)
    assert page.content_type == "text/html" and b"Harbour reopens" in page.body
    assert web.requests == [("/a", USER_AGENT)]


def test_nothing_is_fetched_while_fetching_is_off(web):
    with pytest.raises(RejectedFile, match="--fetch"):
        fetch(web.url("/a"), FetchPolicy(enabled=False, allow_private=True))
    assert web.requests == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://localhost/x", "http://169.254.169.254/latest/meta-data",
                                 "http://10.0.0.1/", "http://[::1]/"])
def test_private_and_local_addresses_are_refused_unless_allowed(url):
    with pytest.raises(RejectedFile, match="private or local.*--allow-private"):
        fetch(url, FetchPolicy(enabled=True))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a", "javascript:alert(1)", "gopher://x/"])
def test_only_http_and_https(url):
    with pytest.raises(RejectedFile, match="only http and https"):
        fetch(url, LOCAL)


def test_redirects_are_followed_and_each_target_checked(web):
    web.pages["/final"] = ("text/html", STORY.encode())
    web.redirects.update({"/r1": "/r2", "/r2": web.url("/final"), "/to-file": "file:///etc/passwd", "/loop": "/loop"})
    assert fetch(web.url("/r1"), LOCAL).url == web.url("/final")
    with pytest.raises(RejectedFile, match="only http and https"):
        fetch(web.url("/to-file"), LOCAL)
    with pytest.raises(RejectedFile, match="more than 5 redirects"):
        fetch(web.url("/loop"), LOCAL)
    assert web.paths().count("/loop") == 6


def test_a_slow_server_is_given_up_on_within_the_timeout(web):
    started = time.monotonic()
    with pytest.raises(RejectedFile, match="within 0.5 s"):
        fetch(web.url("/slow"), FetchPolicy(enabled=True, allow_private=True, timeout=0.5))
    assert time.monotonic() - started < 2


def test_a_trickling_server_is_cut_off_by_the_overall_deadline(web):
    started = time.monotonic()
    with pytest.raises(RejectedFile, match="within 1 s"):
        fetch(web.url("/trickle"), FetchPolicy(enabled=True, allow_private=True, timeout=1.0))
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("path", ["/huge", "/huge-declared"])
def test_a_huge_response_is_not_read_past_the_limit(web, path):
    with pytest.raises(RejectedFile, match="0.2 MB limit"):
        fetch(web.url(path), LOCAL)


def test_an_article_url_is_ingested_clean_with_its_url_title_and_date(web, tmp_path, embedder):
    web.pages["/story"] = ("text/html", STORY.encode())
    report = ingest([web.url("/story")], tmp_path / "index", embedder, progress=False, fetch=LOCAL)
    assert report.added == 1, report.rejected
    (info,) = Store.open(tmp_path / "index", embedder).documents()
    assert (info.source, info.title, info.date) == (web.url("/story"), "Harbour reopens after storm", "2025-07-03")
    text = Store.open(tmp_path / "index", embedder).document(info.doc_id).text
    assert "Read more" not in text and "Share on Facebook" not in text and "Cookie" not in text


def test_a_url_that_fails_is_a_rejection_not_a_crash(web, tmp_path, embedder):
    web.pages["/story"] = ("text/html", STORY.encode())
    report = ingest([web.url("/missing"), web.url("/story")], tmp_path / "index", embedder, progress=False,
                    fetch=LOCAL)
    assert report.added == 1 and "404" in report.rejected[0].reason
