"""Time to the first visible answer text: in the browser (Enter pressed → text on the page) against the
Python API (`Assistant.stream` called → first piece of answer text), same questions, same loaded model.

    python bench/ui_latency.py [QUESTIONS.jsonl] [--limit N] [--index DIR]

Needs Chromium (/usr/bin/chromium or QA_CHROMIUM) and Playwright's Python package. The index defaults to
a fresh one over data/articles. All questions go through the API first, then through the browser, so
no question follows itself and llama.cpp's prompt cache helps both sides equally (the fixed system
prompt only). The browser time is read in the page itself: a keydown listener stamps the Enter press,
a check every 10 ms stamps the first answer text on the page. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
from pathlib import Path

from index import default_embedder, ingest
from qa import Assistant
from qa.evaluation import load_questions

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("QA_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

# Stamps the Enter press; the first answer text in a new bot message is stamped by FIRST_TEXT.
WATCH = """() => {
  window.__pressed = null; window.__shown = null;
  document.querySelector('#qa-question textarea').addEventListener(
    'keydown', e => { if (e.key === 'Enter') window.__pressed = performance.now(); }, {once: true, capture: true});
}"""
FIRST_TEXT = """() => {
  const bot = document.querySelector('#qa-chat [data-testid="bot"]');
  const text = bot && bot.querySelector('.qa-streaming, .qa-sources, .qa-refused, .qa-error');
  if (!text || !text.textContent.trim()) return false;
  window.__shown = performance.now();
  return true;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _record_server_side(bot: Assistant) -> list[float]:
    """The first-text times `bot.stream` itself measures while the app serves, to tell the model's time
    from the page's."""
    times: list[float] = []
    stream = bot.stream

    def recording(*args, **kwargs):
        for event in stream(*args, **kwargs):
            if not isinstance(event, str):
                times.append(event.timings.first_text)
            yield event

    bot.stream = recording
    return times


def api_first_text(bot: Assistant, question: str) -> float:
    answer = None
    for event in bot.stream(question):
        if not isinstance(event, str):
            answer = event
    return answer.timings.first_text


def browser_first_text(page, question: str) -> float:
    page.click("#qa-clear")  # each question stands alone, as in the API run
    page.locator('#qa-chat [data-testid="bot"]').first.wait_for(state="detached")
    page.evaluate(WATCH)
    page.fill("#qa-question textarea", question)
    page.press("#qa-question textarea", "Enter")
    page.wait_for_function(FIRST_TEXT, polling=10, timeout=180_000)
    seconds = page.evaluate("(window.__shown - window.__pressed) / 1000")
    # wait for the finished answer before the next question
    last = page.locator('#qa-chat [data-testid="bot"]').last
    last.locator(".qa-sources, .qa-refused, .qa-error").first.wait_for(timeout=180_000)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("questions", nargs="?", default=str(ROOT.parent / "shared" / "eval" / "dev.jsonl"))
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--index", help="an existing index (default: a fresh one over data/articles)")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from ui.app import serve

    questions = [q.question for q in load_questions(args.questions) if len(q.conversation) == 1][:args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = args.index
        if not index_dir:
            index_dir = Path(tmp) / "index"
            ingest([ROOT / "data" / "articles"], index_dir, default_embedder(), progress=False)
        bot = Assistant.load(index_dir, progress=False)
        served = _record_server_side(bot)
        app = serve(bot, port=free_port(), block=False, uploads_dir=Path(tmp) / "uploads")
        try:
            api = [api_first_text(bot, q) for q in questions]
            del served[:]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page()
                page.goto(app.local_url)
                page.wait_for_selector("#qa-question textarea")
                shown = []
                for q in questions:
                    shown.append(browser_first_text(page, q))
                browser.close()
        finally:
            app.close()

    # "served": the same first-text time as measured inside the server during the browser run.
    print(f"{'question':50} {'API s':>7} {'browser s':>10} {'served s':>9} {'ratio':>6}")
    for q, a, b, s in zip(questions, api, shown, served):
        print(f"{q[:50]:50} {a:7.2f} {b:10.2f} {s:9.2f} {b / a:6.2f}")
    a50, b50, s50 = statistics.median(api), statistics.median(shown), statistics.median(served)
    print(f"{'median':50} {a50:7.2f} {b50:10.2f} {s50:9.2f} {b50 / a50:6.2f}")


if __name__ == "__main__":
    main()
