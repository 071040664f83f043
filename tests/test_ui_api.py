"""The app's API from gradio_client: the "ask" endpoint, served from a fake assistant on 127.0.0.1.

`best_sentence`, `SlowGenerator`, `fake_bot` and `running_app` are shared with test_ui_browser.py
and test_ui_render.py.
"""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fakes import FakeGenerator, HashEmbedder, best_sentence, write_article, write_articles
from index import Store, ingest
from qa import Assistant, Settings

gradio_client = pytest.importorskip("gradio_client")
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")  # Gradio's own use of pandas

_WORD = re.compile(r"\w+")


@dataclass
class SlowGenerator(FakeGenerator):
    """A FakeGenerator whose pieces arrive `delay` seconds apart, to watch an answer stream in."""

    delay: float = 0.0

    def generate(self, messages, *, max_tokens=256, grammar=None):
        for piece in super().generate(messages, max_tokens=max_tokens, grammar=grammar):
            time.sleep(self.delay)
            yield piece

    @property
    def prompts(self) -> list[str]:
        """The user messages seen, in order."""
        return [messages[-1]["content"] for messages, _ in self.calls]


def fake_bot(folder: Path, generator: FakeGenerator | None = None, articles: dict[str, str] | None = None) -> Assistant:
    """An assistant over the made-up articles of fakes.py (and `articles`), with the hashing embedder."""
    write_articles(folder / "articles")
    for name, text in (articles or {}).items():
        write_article(folder / "articles", name, text)
    ingest([folder / "articles"], folder / "index", HashEmbedder(), progress=False)
    store = Store.open(folder / "index", HashEmbedder())
    generator = generator or SlowGenerator(reply=best_sentence)
    return Assistant(store, generator, Settings(index_dir=folder / "index", passages=4))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def running_app(bot: Assistant, uploads_dir: Path):
    """The app serving `bot` on a free port (of 127.0.0.1: the default), in a thread; (app, url).

    Close the app when done.
    """
    from ui.app import serve

    port = free_port()
    app = serve(bot, port=port, block=False, uploads_dir=uploads_dir)
    return app, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui-api")
    bot = fake_bot(folder)
    app, url = running_app(bot, folder / "uploads")
    client = gradio_client.Client(url, verbose=False)
    yield bot, client, folder, app
    app.close()


def test_the_server_listens_on_this_machine_only_by_default(served):
    *_, app = served
    assert app.server_name == "127.0.0.1"


def test_uploads_over_10_mb_are_refused(served):
    import httpx

    _, client, *_ = served
    big = b"word " * (11 * 1024 * 1024 // 5)
    response = httpx.post(client.src + "gradio_api/upload", files={"files": ("big.txt", big, "text/plain")})
    assert response.status_code == 413, response.text


def test_ask_returns_the_answer_and_its_citation(served):
    _, client, *_ = served
    result = client.predict("When did the Druzhba pipeline deliveries resume?", api_name="/ask")
    assert result["refused"] is False
    assert "resumed on Saturday" in result["text"] and result["text"].rstrip(".").endswith("[1]")
    (citation,) = result["citations"]
    assert citation["n"] == 1
    assert citation["title"] == "Druzhba pipeline deliveries resume"
    assert citation["date"] == "2024-03-02" and Path(citation["source"]).name == "pipeline.txt"
    assert "resumed on Saturday after a two-day halt" in citation["quote"]
    assert citation["quote"] in citation["passage"]


def test_ask_refuses_plainly_and_says_what_was_searched(served):
    _, client, *_ = served
    result = client.predict("What did Napoleon say about Zanzibar?", api_name="/ask")
    assert result["refused"] is True and result["citations"] == []
    assert "don't say" in result["text"]
    assert result["searched"] and "Druzhba pipeline deliveries resume" in result["searched"]


def test_passages_are_set_per_request(served):
    bot, client, *_ = served
    result = client.predict("Who won the election in the river town?", 1, api_name="/ask")
    assert result["searched"] == ["Mayor wins second term"]
    assert bot.settings.passages == 4, "a request's setting must not change the server's"


@pytest.mark.parametrize("question, message", [
    ("   ", "the question is empty"),
    ("?!", "no words"),
    ("x" * 2001, "the limit is 2,000"),
])
def test_a_bad_question_is_a_message_not_a_traceback(served, question, message):
    _, client, *_ = served
    with pytest.raises(gradio_client.exceptions.AppError, match=message) as caught:
        client.predict(question, api_name="/ask")
    assert "Traceback" not in str(caught.value)


def test_only_the_ask_endpoint_is_public(served):
    _, client, *_ = served
    assert list(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == ["/ask"]


def test_an_uploaded_article_is_searchable_without_a_restart(served):
    from ui import uploads

    bot, client, folder, _ = served
    upload = write_article(folder / "browser-cache", "lighthouse.txt",
                           "Glimmerton lighthouse repainted\n\nVolunteers repainted the Glimmerton lighthouse "
                           "teal on Friday, the first new colour in sixty years.")
    report = uploads.add(bot, [upload], folder / "uploads", progress=False)
    assert (report.added, report.rejected) == (1, ())
    assert (folder / "uploads" / "lighthouse.txt").is_file(), "the upload is kept beside the index"
    result = client.predict("What colour is the Glimmerton lighthouse now?", api_name="/ask")
    assert "teal" in result["text"]
    assert Path(result["citations"][0]["source"]) == folder / "uploads" / "lighthouse.txt"


def test_serve_says_what_to_do_when_the_port_is_taken(served, tmp_path):
    from qa import QAError
    from ui.app import serve

    bot, client, *_ = served
    port = int(client.src.rstrip("/").rsplit(":", 1)[1])
    with pytest.raises(QAError, match="--port"):
        serve(bot, port=port, block=False, uploads_dir=tmp_path)


def test_serve_prints_where_to_open_the_app(tmp_path, capsys):
    from ui.app import serve

    port = free_port()
    app = serve(fake_bot(tmp_path), port=port, block=False, uploads_dir=tmp_path / "uploads")
    try:
        out = capsys.readouterr().out
    finally:
        app.close()
    assert f"News QA is running at http://127.0.0.1:{port}/ with 4 articles" in out
    assert "Ctrl-C" in out and "other machines" not in out


@pytest.mark.parametrize("host, local", [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False), ("192.168.1.5", False),
    ("example.org", False),
])
def test_only_loopback_addresses_count_as_this_machine(host, local):
    from ui.app import _is_loopback

    assert _is_loopback(host) is local
