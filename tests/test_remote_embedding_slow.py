"""The remote embedder against a real server: llama-cpp-python's OpenAI-compatible one, started here on
loopback, serving the packaged all-MiniLM-L6-v2 (converted to GGUF by `minilm_gguf`) under its own name.

What a user relies on: the server's vectors are the local model's, an index built through the server is
one the local embedder opens and searches alike, and a server that stops is a message, not a traceback.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from index import ModelError, SentenceTransformerEmbedder, Store, chunk_document, ingest, iter_files, load_file
from index.embedding import DEFAULT_MODEL_NAME
from index.remote_embedding import RemoteEmbedder

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="the gguf package is not installed: "
                       "pip install -e '.[test]' brings it (it writes the GGUF the server loads)"),
    pytest.mark.skipif(importlib.util.find_spec("sse_starlette") is None, reason="llama-cpp-python's server "
                       "extra is not installed: pip install -e '.[test]' brings it"),
]

START_TIMEOUT = 120  # seconds for the server to load a 90 MB model on a busy 2-core machine
QUERIES = ["Which agency quoted Putin's remarks at the meeting?", "Why has Budapest blocked EU military aid?",
           "Has Serbia joined the EU sanctions against Moscow?", "Where did Orban and Putin meet?",
           "What did Orban say about the war in Ukraine?", "Who hosted the Belt and Road Forum?"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from minilm_gguf import convert, serve_command
    from servers import free_port, running

    folder = tmp_path_factory.mktemp("embedding-server")
    gguf_path = convert(folder / "all-MiniLM-L6-v2.gguf")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(serve_command(gguf_path, port, os.cpu_count() or 1), f"{url}/v1/models", folder / "server.log",
                 START_TIMEOUT) as process_:
        yield url, process_


@pytest.fixture(scope="module")
def remote(server):
    embedder = RemoteEmbedder(server[0], batch_size=16, parallel=2)
    yield embedder
    embedder.close()


@pytest.fixture(scope="module")
def local():
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="module")
def passages(sample_corpus_dir):
    return [c.text for path in iter_files([sample_corpus_dir]) for c in chunk_document(load_file(path))]


@pytest.fixture(scope="module")
def sample_corpus_dir():
    from conftest import SAMPLE_ARTICLES

    return SAMPLE_ARTICLES


def test_the_server_names_the_model_as_the_local_embedder_does(remote, local):
    assert remote.name == local.name == DEFAULT_MODEL_NAME
    assert remote.dim == local.dim == 384


def test_the_servers_vectors_are_the_local_models(remote, local, passages):
    texts = passages + QUERIES + ["Café déjà vu — “naïve” 1,234!", "a"]
    cosines = np.sum(remote.embed(texts) * local.embed(texts), axis=1)
    assert cosines.min() > 0.9999, f"lowest cosine {cosines.min():.6f} at {texts[int(cosines.argmin())]!r}"


def test_an_index_built_through_the_server_is_searched_like_a_local_one(remote, local, sample_corpus_dir,
                                                                        tmp_path):
    ingest([sample_corpus_dir], tmp_path / "remote", remote, progress=False)
    ingest([sample_corpus_dir], tmp_path / "local", local, progress=False)
    built_remotely = Store.open(tmp_path / "remote", local)   # the local embedder opens it: same name
    built_locally = Store.open(tmp_path / "local", local)
    for query in QUERIES:
        assert [p.id for p in built_remotely.search(query, 5)] == [p.id for p in built_locally.search(query, 5)]


def test_a_server_that_went_away_is_a_message(server, tmp_path):
    url, process_ = server
    embedder = RemoteEmbedder(url, retries=1, backoff=0.1)
    process_.terminate()
    process_.wait(timeout=20)
    with pytest.raises(ModelError, match=f"cannot reach the embedding server at {url}"):
        embedder.embed(["a text"])
