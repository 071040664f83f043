"""End to end in headless Chromium: ask, watch the answer stream in, follow a citation, add an article,
get a refusal, stop an answer, copy and export, and check that HTML inside an article or an answer never
runs and never fetches anything.

Debian's chromium (`apt-get install chromium`) driven by Playwright's Python package; no browser is
downloaded. Skipped, saying why, when /usr/bin/chromium (or QA_CHROMIUM) is missing. Screenshots of
an answer with its sources, a refusal and the upload flow go to tests/artifacts/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from fakes import write_article
from test_ui_api import SlowGenerator, best_sentence, fake_bot, running_app

CHROMIUM = Path(os.environ.get("QA_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ANSWER_WAIT = 20_000  # ms

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium "
                                                     "(or point QA_CHROMIUM at one)"),
    pytest.mark.filterwarnings("ignore:::gradio.queueing"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
expect = sync_api.expect

# An article whose text is full of markup that must be shown, never run or fetched.
HARBOUR = (
    "Harbour notice <script>window.__pwned = 'title'</script>\n\n"
    "date 2024-05-01\n\n"
    "The harbour office posted a new timetable on Monday <script>window.__pwned = 'body'</script>. "
    "The ferry to Kelpie Island now leaves at nine <img src=x onerror=\"window.__pwned = 'img'\">. "
    "![tracker](http://127.0.0.1:9/pixel.png) [prize](javascript:window.__pwned='link')"
)
LIGHTHOUSE = (
    "Glimmerton lighthouse repainted\n\n"
    "date 2024-06-14\n\n"
    "Volunteers repainted the Glimmerton lighthouse teal on Friday, the first new colour in sixty years. "
    "The work took eleven days and was paid for by a bake sale."
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui-browser")
    # ~1 s to stream an answer: long enough to be seen streaming on a loaded CI machine (at 0.01 s a
    # piece the status line was once gone before the test looked for it)
    generator = SlowGenerator(reply=best_sentence, delay=0.03)
    bot = fake_bot(folder, generator, {"harbour.txt": HARBOUR})
    app, url = running_app(bot, folder / "uploads")
    yield SimpleNamespace(bot=bot, url=url, folder=folder, generator=generator)
    app.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, site):
    context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site.url)
    page.wait_for_selector("#qa-question textarea")
    yield page
    context.close()
    assert errors == [], "the page raised JavaScript errors"


def ask(page, question: str, timeout: float = ANSWER_WAIT):
    """Ask and wait for the finished answer (sources, refusal or error); its message element."""
    answers = page.locator('#qa-chat [data-testid="bot"]')
    before = answers.count()
    page.fill("#qa-question textarea", question)
    page.click("#qa-ask")
    expect(answers).to_have_count(before + 1)
    answer = answers.nth(before)
    expect(answer.locator(".qa-sources, .qa-refused, .qa-error").first).to_be_visible(timeout=timeout)
    return answer


def screenshot(page, name: str):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_an_answer_streams_in_and_its_citation_leads_to_the_marked_passage(page, site):
    page.fill("#qa-question textarea", "When did the Druzhba pipeline deliveries resume?")
    page.click("#qa-ask")
    streaming = page.locator("#qa-chat .qa-streaming")
    expect(streaming).to_be_visible(timeout=ANSWER_WAIT)
    expect(page.locator("#qa-chat .qa-status")).to_contain_text("Writing the answer")
    partial = streaming.inner_text()
    expect(page.locator("#qa-question textarea")).to_have_value("")

    answer = page.locator('#qa-chat [data-testid="bot"]').first
    expect(answer.locator(".qa-sources")).to_be_visible(timeout=ANSWER_WAIT)
    text = answer.locator(".qa-answer").inner_text()
    assert "resumed on Saturday" in text and len(partial) < len(text)
    assert answer.locator(".qa-status").count() == 0

    source = page.locator("#src-1-1")
    expect(source.locator(".qa-source-title")).to_have_text("Druzhba pipeline deliveries resume")
    expect(source.locator(".qa-source-meta")).to_have_text("2024-03-02 · pipeline.txt")
    expect(source.locator("mark")).to_contain_text("resumed on Saturday after a two-day halt")
    expect(source.locator(".qa-around").last).to_contain_text("The pipeline carries Russian crude oil")

    # long enough to stand alone: a short follow-up is searched together with the question before it
    follow_up = ask(page, "Which mayor won a second term in the election of the river town on Sunday, and how?")
    expect(follow_up.locator("#src-2-1 .qa-source-title")).to_have_text("Mayor wins second term")
    screenshot(page, "answered-with-sources.png")

    page.set_viewport_size({"width": 1400, "height": 600})  # a short chat, scrolled to its top
    # once it has stopped growing (the chat scrolls itself to the bottom whenever its content changes):
    page.wait_for_function("""() => new Promise(done => {
        const log = document.querySelector('#qa-chat [role=log]'), height = log.scrollHeight;
        setTimeout(() => done(log.scrollHeight === height), 500); })""")
    page.locator("#qa-chat [role=log]").evaluate("log => log.scrollTop = 0")
    second = page.locator("#src-2-1")  # the second answer's source is out of view, below
    expect(second).not_to_be_in_viewport()
    page.locator('#qa-chat a[href="#src-2-1"]').evaluate("link => link.click()")  # where it is, unscrolled
    expect(second).to_be_in_viewport(ratio=0.9)
    assert page.evaluate("location.hash") == "#src-2-1"
    assert "Earlier question: When did the Druzhba pipeline deliveries resume?" in site.generator.prompts[-1]


def test_a_refusal_says_so_and_lists_what_was_searched(page):
    answer = ask(page, "What did Napoleon say about Zanzibar?")
    expect(answer.locator(".qa-refused")).to_contain_text("The articles don't say")
    expect(answer.locator(".qa-searched summary")).to_contain_text("Searched 4 passages")
    assert answer.locator(".qa-searched li").count() >= 2 and answer.locator("a.qa-cite").count() == 0
    screenshot(page, "refusal.png")


def test_fewer_passages_from_the_settings(page):
    page.fill("#qa-passages input[type=number]", "1")
    page.press("#qa-passages input[type=number]", "Enter")
    answer = ask(page, "What did Napoleon say about Zanzibar?")
    expect(answer.locator(".qa-searched summary")).to_have_text("Searched 1 passage from 1 article")


def test_an_added_article_can_be_asked_about_at_once(page, site):
    lighthouse = write_article(site.folder / "to-upload", "lighthouse.txt", LIGHTHOUSE)
    broken = write_article(site.folder / "to-upload", "broken.txt", b"\x00\x01\x02 binary \x00")
    page.locator("#qa-upload input[type=file]").set_input_files([str(lighthouse), str(broken)])
    report = page.locator("#qa-upload-report")
    expect(report).to_contain_text("1 added, 1 rejected", timeout=ANSWER_WAIT)
    expect(report.locator(".qa-rejected li")).to_contain_text("broken.txt")
    expect(page.locator("#qa-library")).to_contain_text("Glimmerton lighthouse repainted")
    expect(page.locator("#qa-library")).to_contain_text("6 articles")
    screenshot(page, "upload-report.png")

    answer = ask(page, "What colour is the Glimmerton lighthouse now?")
    expect(answer.locator(".qa-answer")).to_contain_text("teal")
    expect(answer.locator(".qa-source-meta")).to_have_text("2024-06-14 · lighthouse.txt")
    screenshot(page, "upload-then-answer.png")


def test_html_inside_an_article_is_shown_not_run(page):
    answer = ask(page, "When does the ferry to Kelpie Island leave? <b>today</b>")
    # the model is not shown the article's markup, so the answer has none; the source shows it as text
    expect(answer.locator(".qa-answer")).to_contain_text("leaves at nine")
    expect(answer.locator(".qa-answer")).not_to_contain_text("<img")
    expect(answer.locator(".qa-context")).to_contain_text("leaves at nine <img src=x onerror=")
    expect(answer.locator(".qa-context")).to_contain_text("<script>window.__pwned = 'body'</script>")
    expect(answer.locator(".qa-context")).to_contain_text("![tracker](http://127.0.0.1:9/pixel.png)")
    expect(page.locator('#qa-chat [data-testid="user"]').last).to_contain_text("<b>today</b>")
    expect(page.locator("#qa-library")).to_contain_text("Harbour notice <script>")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#qa-chat img, #qa-chat script, #qa-library script").count() == 0
    hrefs = page.locator("#qa-chat a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs and all(re.fullmatch(r"#src-\d+-\d+", h) for h in hrefs)


# A model answer full of markup (the draft streams it, the final answer carries it): shown as text, inert.
HOSTILE_ANSWER = (
    "The ferry leaves at nine <script>window.__pwned = 'answer'</script><script src=https://evil.example/s.js>"
    "</script> <img src=https://evil.example/a.png onerror=\"window.__pwned = 'answer-img'; alert(1)\"> "
    "![x](https://evil.example/b.png) [prize](javascript:window.__pwned='answer-link') "
    "<a href=\"https://evil.example/c\" id=lure>more</a> <iframe src=\"javascript:alert(2)\"></iframe> "
    "<svg onload=\"alert(3)\"></svg> <style>@import url(https://evil.example/x.css)</style>"
)


def test_markup_in_a_model_answer_never_runs_or_fetches(browser, site, monkeypatch):
    """The draft as it streams and the final answer both carry the markup; nothing runs, nothing is fetched.

    The final answer skips the assistant's checks (they would refuse it) to test the page on its own.
    """
    import json

    from qa import Answer, Citation

    ferry = next(p for p in site.bot.search("ferry Kelpie Island nine", 4) if "Kelpie" in p.text)
    lo = ferry.text.index("The ferry")
    citation = Citation(n=1, passage_id=ferry.id, doc_id=ferry.doc_id, source=ferry.source, title=ferry.title,
                        date=ferry.date, text=ferry.text, start=ferry.start, end=ferry.end,
                        quote_start=ferry.start + lo, quote_end=ferry.end, score=ferry.score)
    monkeypatch.setattr(site.generator, "reply", "Evidence: 1\n[1] " + HOSTILE_ANSWER.replace("[", "(").replace("]", ")"))
    monkeypatch.setattr(site.generator, "delay", 0.03)
    monkeypatch.setattr(site.bot, "check", lambda question, *_: Answer(question, HOSTILE_ANSWER + " [1].",
                                                                           (citation,)))
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    requests, dialogs, errors = [], [], []
    context.on("request", lambda r: requests.append(r.url))
    page = context.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(site.url)
        page.fill("#qa-question textarea", "When does the ferry to Kelpie Island leave?")
        page.click("#qa-ask")
        streaming = page.locator("#qa-chat .qa-streaming")
        expect(streaming).to_contain_text("<script>window.__pwned", timeout=ANSWER_WAIT)
        answer = page.locator('#qa-chat [data-testid="bot"]').last
        expect(answer.locator(".qa-sources")).to_be_visible(timeout=ANSWER_WAIT)
        expect(answer.locator(".qa-answer")).to_contain_text("<img src=https://evil.example/a.png onerror=")
        expect(answer.locator(".qa-answer")).to_contain_text("[prize](javascript:window.__pwned='answer-link')")
        expect(answer.locator(".qa-context")).to_contain_text("<script>window.__pwned = 'body'</script>")
        for link in page.locator("#qa-chat a").all():  # clicking every link on the page runs nothing
            link.click()
        page.wait_for_timeout(300)

        assert page.evaluate("window.__pwned") is None and dialogs == [] and errors == []
        messages = page.locator('#qa-chat [data-testid="bot"], #qa-chat [data-testid="user"]')
        planted = messages.locator("img, script, iframe, svg, style, object, embed, #lure").evaluate_all(
            "els => els.map(e => e.outerHTML.slice(0, 120))")
        assert planted == []
        hrefs = page.locator("#qa-chat a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert hrefs and all(re.fullmatch(r"#src-\d+-\d+", h) for h in hrefs)
        outside = [url for url in requests if not url.startswith(site.url)]
        assert outside == [], "the page asked for something outside the app"
    finally:
        context.close()


def test_stop_ends_an_answer_and_a_question_asked_right_away_is_answered(page, site):
    site.generator.delay = 0.06
    try:
        page.fill("#qa-question textarea", "When did the Druzhba pipeline deliveries resume?")
        page.click("#qa-ask")
        expect(page.locator("#qa-chat .qa-streaming")).to_be_visible(timeout=ANSWER_WAIT)
        page.click("#qa-stop")
        # asked while the stopped answer may still be winding down: it must wait its turn, not vanish
        page.fill("#qa-question textarea", "Who won the election in the river town?")
        page.click("#qa-ask")
        site.generator.delay = 0.01
        expect(page.locator("#qa-chat .qa-stopped")).to_be_visible(timeout=ANSWER_WAIT)
        answers = page.locator('#qa-chat [data-testid="bot"]')
        expect(answers).to_have_count(2)
        expect(answers.nth(1).locator(".qa-answer")).to_contain_text("won a second term", timeout=ANSWER_WAIT)
    finally:
        site.generator.delay = 0.01
    expect(answers.nth(0)).to_contain_text("Stopped: this answer was not finished.")
    expect(answers.nth(0).locator(".qa-sources")).to_have_count(0)


def test_copy_export_and_clear(page, site):
    ask(page, "When did the Druzhba pipeline deliveries resume?")
    page.click("#qa-copy")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "resumed on Saturday" in copied and "[1] Druzhba pipeline deliveries resume, 2024-03-02" in copied
    assert "<" not in copied, "the copy is Markdown, not the page's HTML"

    with page.expect_download() as download:
        page.click("#qa-export")
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert "## 1. When did the Druzhba pipeline deliveries resume?" in exported
    assert "[1] Druzhba pipeline deliveries resume, 2024-03-02" in exported

    # the button and the chat's own bin icon both start a new conversation
    for clear in ("#qa-clear", '#qa-chat button[aria-label="Clear"]'):
        page.click(clear)
        expect(page.locator('#qa-chat [data-testid="bot"]')).to_have_count(0)
        expect(page.locator("#qa-export")).to_be_disabled()
        answer = ask(page, "Who won the election in the river town?")
        expect(answer.locator("#src-1-1")).to_have_count(1)
        expect(page.locator('#qa-chat [data-testid="bot"]')).to_have_count(1)
        assert "Earlier question" not in site.generator.prompts[-1]


@pytest.mark.slow
def test_the_real_model_answers_in_the_browser_with_a_marked_source(browser, tmp_path):
    """The packaged embedder and chat model over data/articles, asked from the page (about a minute)."""
    from conftest import SAMPLE_ARTICLES
    from index import default_embedder, ingest
    from index import Store
    from qa import Assistant
    from qa.llm import LlamaGenerator

    ingest([SAMPLE_ARTICLES], tmp_path / "index", default_embedder(), progress=False)
    # A model of its own, so that the answer does not depend on the prompts other test files left in its cache.
    bot = Assistant(Store.open(tmp_path / "index", default_embedder()), LlamaGenerator(progress=False))
    app, url = running_app(bot, tmp_path / "uploads")
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(url)
        answer = ask(page, "Which agency quoted Putin's remarks at the meeting?", timeout=120_000)
        expect(answer.locator(".qa-answer")).to_contain_text("Interfax")
        expect(answer.locator(".qa-source mark").first).to_contain_text("Interfax")
        screenshot(page, "real-model-answer.png")
        context.close()
    finally:
        app.close()
