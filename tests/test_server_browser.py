"""The server's limits as a person in Chromium meets them: the login form, and a full queue.

Same setup as test_ui_browser.py (Debian's chromium through Playwright; skipped when missing).
"""

from __future__ import annotations

import pytest

from test_load import QUESTIONS, CountingGenerator
from test_ui_api import SlowGenerator, best_sentence, fake_bot, free_port, running_app
from test_ui_browser import browser, pytestmark  # noqa: F401 - the same Chromium, skip and warning filter

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
gradio_client = pytest.importorskip("gradio_client")


def ask(page, question: str):
    page.fill("#qa-question textarea", question)
    page.click("#qa-ask")


def test_the_login_form_lets_the_right_password_in(browser, tmp_path):
    from ui.app import serve

    port = free_port()
    app = serve(fake_bot(tmp_path), port=port, auth=("reader", "correct horse"), block=False,
                uploads_dir=tmp_path / "uploads")
    page = browser.new_page()
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        for password in ("wrong", "correct horse"):  # a failed login empties the form
            page.get_by_label("username").fill("reader")
            page.get_by_label("password").fill(password)
            page.get_by_role("button", name="Login").click()
            if password == "wrong":
                expect(page.get_by_text("Incorrect Credentials")).to_be_visible()
                expect(page.locator("#qa-question")).to_have_count(0)
        ask(page, QUESTIONS[0])
        expect(page.locator("#qa-chat .qa-sources")).to_contain_text("Druzhba", timeout=20_000)
    finally:
        page.close()
        app.close()


def test_a_question_past_a_full_queue_is_told_the_app_is_busy(browser, tmp_path):
    """16 questions wait behind one being answered; a question asked in the page now gets a message,
    and once the queue has emptied the next one is answered."""
    generator = CountingGenerator(reply=best_sentence)
    app, url = running_app(fake_bot(tmp_path, generator=generator), tmp_path / "uploads")
    page = browser.new_page()
    generator.gate.clear()
    try:
        page.goto(url)
        page.wait_for_selector("#qa-question textarea")
        client = gradio_client.Client(url, verbose=False)
        jobs = [client.submit(QUESTIONS[0], api_name="/ask")]
        assert generator.started.wait(30)
        jobs += [client.submit(QUESTIONS[i % 4], api_name="/ask") for i in range(16)]
        expect_queue(app, 16)
        ask(page, QUESTIONS[1])
        expect(page.get_by_text("This application is currently busy")).to_be_visible(timeout=10_000)
        expect(page.locator("#qa-question textarea")).to_have_value(QUESTIONS[1])
        generator.gate.set()
        for job in jobs:
            job.result(timeout=60)
        ask(page, QUESTIONS[1])
        expect(page.locator("#qa-chat .qa-sources")).to_contain_text("Mayor wins second term", timeout=20_000)
    finally:
        generator.gate.set()
        page.close()
        app.close()


def expect_queue(app, size: int, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while len(app._queue) != size:
        assert time.monotonic() < deadline, f"the queue never held {size}"
        time.sleep(0.02)


def test_clearing_an_answer_being_written_does_not_bring_the_question_back(browser, tmp_path):
    """A cancelled answer also ends its event in failure; only a question the queue turned away returns
    to the box."""
    app, url = running_app(fake_bot(tmp_path, SlowGenerator(reply=best_sentence, delay=0.2)), tmp_path / "up")
    page = browser.new_page()
    try:
        page.goto(url)
        ask(page, QUESTIONS[1])
        expect(page.locator("#qa-chat .qa-streaming")).to_be_visible(timeout=20_000)
        page.click("#qa-clear")
        page.wait_for_timeout(2000)  # the cancelled event's failure handler has run by now
        expect(page.locator("#qa-question textarea")).to_have_value("")
    finally:
        page.close()
        app.close()
