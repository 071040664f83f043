"""Time to the first visible answer text: in the browser (Enter pressed → text on the page) against the
Python API (`Assistant.stream` called → first piece of answer text), same questions, same loaded model.

    python bench/ui_latency.py [QUESTIONS.jsonl] [--limit N] [--index DIR]

Needs Chromium (/usr/bin/chromium or QA_CHROMIUM) and Playwright's Python package. The index defaults to
a fresh one over data/articles. All questions go through the API first, then through the browser, so
no question follows itself and llama.cpp's prompt cache helps both sides equally (the fixed system
prompt only). The browser time is read in the page itself: a keydown listener stamps the Enter press,
a MutationObserver stamps the first text of the streaming answer. Prints a table; asserts nothing.
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

# Stamps the Enter press and the first moment answer text shows in a new streaming message.
WATCH = """() => {
  window.__pressed = null; window.__shown = null;
  const box = document.querySelector('#qa-question textarea');
  box.addEventListener('keydown', e => { if (e.key === 'Enter') window.__pressed = performance.now(); },
                       {once: true, capture: true});
  const chat = document.querySelector('#qa-chat');
  const seen = chat.querySelectorAll('[data-testid="bot"]').length;
  const observer = new MutationObserver(() => {
    const bots = chat.querySelectorAll('[data-testid="bot"]');
    if (bots.length <= seen) return;
    const text = bots[bots.length - 1].querySelector('.qa-streaming, .qa-sources, .qa-refused');
    if (text && text.textContent.trim()) { window.__shown = performance.now(); observer.disconnect(); }
  });
  observer.observe(chat, {childList: true, subtree: true, characterData: true});
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_first_text(bot: Assistant, question: str) -> float:
    answer = None
    for event in bot.stream(question):
        if not isinstance(event, str):
            answer = event
    return answer.timings.first_text


def browser_first_text(page, question: str) -> float:
    page.evaluate(WATCH)
    page.fill("#qa-question textarea", question)
    page.press("#qa-question textarea", "Enter")
    page.wait_for_function("window.__shown !== null", timeout=180_000)
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
        app = serve(bot, port=free_port(), block=False, uploads_dir=Path(tmp) / "uploads")
        try:
            api = [api_first_text(bot, q) for q in questions]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page()
                page.goto(app.local_url)
                page.wait_for_selector("#qa-question textarea")
                shown = []
                for q in questions:
                    page.click("#qa-clear")  # each question stands alone, as in the API run
                    shown.append(browser_first_text(page, q))
                browser.close()
        finally:
            app.close()

    print(f"{'question':60} {'API s':>7} {'browser s':>10} {'ratio':>6}")
    for q, a, b in zip(questions, api, shown):
        print(f"{q[:60]:60} {a:7.2f} {b:10.2f} {b / a:6.2f}")
    a50, b50 = statistics.median(api), statistics.median(shown)
    print(f"{'median':60} {a50:7.2f} {b50:10.2f} {b50 / a50:6.2f}")


if __name__ == "__main__":
    main()
