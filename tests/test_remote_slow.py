"""The remote backend against a real server: llama-cpp-python's OpenAI-compatible one, started here on
loopback with a packaged GGUF (the 0.5B model when installed, else the default), asked one real question
about the sample articles (slow: the server loads the model, then answers)."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

from index import Store, default_embedder, ingest
from qa import Assistant, Settings
from qa.models import DEFAULT_MODEL, PACKAGED_MODELS, resolve_model
from qa.remote import RemoteGenerator
from servers import free_port, running

pytestmark = pytest.mark.slow

SMALL_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"
START_TIMEOUT = 180  # seconds for the server to load the model on a busy 2-core machine


def _installed(name: str) -> bool:
    return all(importlib.util.find_spec(p) is not None for p in PACKAGED_MODELS[name].packages)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    """A llama-cpp-python server on a free loopback port, killed when the module's tests are done."""
    model = resolve_model(SMALL_MODEL if _installed(SMALL_MODEL) else DEFAULT_MODEL, progress=False)
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    command = [sys.executable, "-m", "qa.native", "server", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", "2048", "--n_threads", str(os.cpu_count() or 1),
               "--verbose", "False"]
    url = f"http://127.0.0.1:{port}"
    with running(command, f"{url}/v1/models", log, START_TIMEOUT):
        yield url


@pytest.fixture(scope="module")
def bot(server_url, tmp_path_factory):
    from conftest import SAMPLE_ARTICLES

    index_dir = tmp_path_factory.mktemp("index")
    embedder = default_embedder()
    ingest([SAMPLE_ARTICLES], index_dir, embedder, progress=False)
    generator = RemoteGenerator(server_url)
    yield Assistant(Store.open(index_dir, embedder), generator, Settings(index_dir=index_dir))
    generator.close()


def test_the_server_is_recognised_and_counts_tokens(bot):
    generator = bot.generator
    assert generator.kind == "llama-cpp-python" and generator.constraint == "grammar"
    short = [{"role": "user", "content": "Hello"}]
    long = [{"role": "user", "content": "Hello " * 100}]
    assert 0 < generator.count_tokens(short) < 20 and generator.count_tokens(long) >= 100


@pytest.mark.xfail(strict=True, reason="known gap (issue 12): through the server the model picks the photo caption 'Putin meets Orban in Beijing' instead of the Interfax sentence")
def test_a_real_question_gets_a_cited_answer_streamed_from_the_server(bot):
    events = list(bot.stream("Which agency quoted Putin's remarks at the meeting?"))
    answer = events[-1]
    drafts = [e for e in events[:-1] if isinstance(e, str)]
    assert len(drafts) > 1, "the answer arrives in pieces"
    assert not answer.refused
    assert "Interfax" in answer.text
    assert answer.citations and all("Interfax" in c.text for c in answer.citations)
    c = answer.citations[0]
    assert bot.store.document(c.doc_id).text[c.start:c.end] == c.text
    assert 0 < answer.timings.first_token <= answer.timings.total
