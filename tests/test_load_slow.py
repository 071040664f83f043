"""Questions at once with the real packaged models: two from the browser API, two from Python threads,
against one running app (slow: four answers of the default model, about 40 s on 2 cores)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from index import default_embedder, ingest
import qa.llm
from qa import Assistant
from test_load import Overlap
from test_ui_api import running_app

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:::gradio.queueing")]
gradio_client = pytest.importorskip("gradio_client")

QUESTIONS = ["In which city did Viktor Orban and Vladimir Putin hold their talks?",
             "Which agency quoted Putin's remarks at the meeting?",
             "Has Serbia joined the EU sanctions against Moscow?",
             "Who is the US ambassador to Hungary?"]


def test_the_real_model_answers_browser_and_python_questions_one_at_a_time(tmp_path, sample_corpus):
    ingest([sample_corpus], tmp_path / "index", default_embedder(), progress=False)
    bot = Assistant.load(tmp_path / "index", progress=False)
    overlap = Overlap()
    decode = qa.llm.decode

    def counted(*args, **kwargs):
        with overlap:
            yield from decode(*args, **kwargs)

    qa.llm.decode = counted
    app, url = running_app(bot, tmp_path / "uploads")
    try:
        client = gradio_client.Client(url, verbose=False)
        with ThreadPoolExecutor(4) as pool:
            browser = [pool.submit(client.predict, q, api_name="/ask") for q in QUESTIONS[:2]]
            python = [pool.submit(bot.ask, q) for q in QUESTIONS[2:]]
            browser = [f.result(timeout=600) for f in browser]
            python = [f.result(timeout=600) for f in python]
    finally:
        app.close()
        qa.llm.decode = decode
    # Which question reaches the model first varies, and with it what llama.cpp's prompt cache holds, so a
    # greedy answer may change: each answer must be its own question's (no crossed streams), most of them right.
    texts = [b["text"] for b in browser] + [a.text for a in python]
    assert all(b["citations"] or b["refused"] for b in browser) and all(a.citations or a.refused for a in python)
    assert sum(fact in text for fact, text in zip(["Beijing", "Interfax", "Serbia", "Pressman"], texts)) >= 3, texts
    assert overlap.peak == 1 and overlap.total >= 4
