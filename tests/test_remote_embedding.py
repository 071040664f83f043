"""The remote embedder against a tiny fake `/v1/embeddings` server (stdlib http.server in a thread).

The fake embeds with `HashEmbedder`, so a vector that came over HTTP can be compared with the one
made here; it can fail a number of times, answer slowly, or send replies of the wrong shape.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest

from fakes import HashEmbedder
from index import IndexMismatchError, InputError, ModelError, Store, ingest
from index import embedding as embedding_module
from index.remote_embedding import RemoteEmbedder
from qa import cli
from servers import FakeOpenAIHandler, serving


@dataclass
class FakeServer:
    """What the fake does; `requests` records (method, path, headers, JSON body) of every call."""

    models: tuple = ("fake-hash-64",)
    key: str | None = None            # the API key it wants
    failures: list = field(default_factory=list)   # statuses to answer /v1/embeddings with first, in turn
    retry_after: str | None = None
    delay: float = 0.0                # seconds before each embeddings reply
    reply: object = None              # a function (texts, vectors) -> body (dict or str) replacing the good one
    embedder: HashEmbedder = field(default_factory=HashEmbedder)
    requests: list = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(server: FakeServer):
    class Handler(FakeOpenAIHandler):
        state = server

        def do_GET(self):
            self.received("GET")
            if not self.authorized():
                return
            if self.path == "/v1/models":
                return self.send_json(200, {"object": "list", "data": self.model_list()})
            self.send_json(404, {"detail": "Not Found"})

        def do_POST(self):
            body = self.received("POST")
            if not self.authorized():
                return
            if self.path != "/v1/embeddings":
                return self.send_json(404, {"detail": "Not Found"})
            with server.lock:
                server.in_flight += 1
                server.most_in_flight = max(server.most_in_flight, server.in_flight)
                status = server.failures.pop(0) if server.failures else 200
            try:
                time.sleep(server.delay)
                if status != 200:
                    headers = {"Retry-After": server.retry_after} if server.retry_after else None
                    return self.send_json(status, {"error": {"message": f"busy ({status})"}}, headers=headers)
                texts = body["input"]
                vectors = server.embedder.embed(texts) * 3.0   # not normalized: the client must do it
                if server.reply is not None:
                    reply = server.reply(texts, vectors)
                    return self.send_json(200, reply, "application/json" if isinstance(reply, dict) else "text/html")
                data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
                self.send_json(200, {"object": "list", "model": body.get("model"), "data": data[::-1]})
            finally:
                with server.lock:
                    server.in_flight -= 1

    return Handler


@pytest.fixture
def fake():
    server = FakeServer()
    with serving(_handler(server)) as server.url:
        yield server


def embeddings_requests(fake: FakeServer) -> list[dict]:
    return [body for method, path, _, body in fake.requests if path == "/v1/embeddings"]


def remote(fake: FakeServer, **kwargs) -> RemoteEmbedder:
    kwargs.setdefault("backoff", 0.01)
    return RemoteEmbedder(fake.url, **kwargs)


TEXTS = [f"passage {i} about the {word} council budget" for i, word in
         enumerate("city town harbour river county village valley market mill bridge".split())]


def test_vectors_come_back_in_order_normalized_and_equal_to_the_models(fake):
    embedder = remote(fake, batch_size=4, parallel=2)
    vectors = embedder.embed(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (10, 64)
    np.testing.assert_allclose(vectors, HashEmbedder().embed(TEXTS), atol=1e-6)
    assert [len(b["input"]) for b in embeddings_requests(fake)] == [4, 4, 2]
    assert embedder.name == "fake-hash-64" and embedder.dim == 64


def test_the_model_is_the_first_listed_unless_named_and_is_sent_with_each_request(fake):
    fake.models = ("first-model", "second-model")
    assert remote(fake).name == "first-model"
    named = remote(fake, model="second-model")
    named.embed(["one text"])
    assert embeddings_requests(fake)[-1]["model"] == "second-model"


def test_a_url_with_v1_or_the_endpoint_reaches_the_same_server(fake):
    for url in (fake.url + "/v1", fake.url + "/v1/embeddings/"):
        assert RemoteEmbedder(url).embed(["a"]).shape == (1, 64)


@pytest.mark.parametrize("url", ["", "ftp://host", "http://", "http://host:port"])
def test_a_bad_url_is_an_input_error(url):
    with pytest.raises(InputError, match="embedding server URL"):
        RemoteEmbedder(url)


def test_parallel_requests_are_bounded(fake):
    fake.delay = 0.1
    remote(fake, batch_size=2, parallel=3).embed(TEXTS * 2)
    assert len(embeddings_requests(fake)) == 10
    assert 2 <= fake.most_in_flight <= 3


def test_ingest_sends_several_requests_worth_per_call_and_the_index_matches_a_local_one(fake, tmp_path,
                                                                                         articles_dir):
    """An index built remotely holds the same model's vectors: the local embedder opens it and searches
    it exactly as it searches the index it built itself."""
    embedder = remote(fake, batch_size=2, parallel=3)
    ingest([articles_dir], tmp_path / "remote", embedder, progress=False)
    ingest([articles_dir], tmp_path / "local", HashEmbedder(), progress=False)
    sizes = [len(b["input"]) for b in embeddings_requests(fake)]
    assert max(sizes) == 2 and len(sizes) >= 3
    built_remotely = Store.open(tmp_path / "remote", HashEmbedder())
    built_locally = Store.open(tmp_path / "local", HashEmbedder())
    for query in ("council budget", "mayor election", "pipeline oil"):
        got = [(p.id, round(p.score, 5)) for p in built_remotely.search(query, 5)]
        assert got == [(p.id, round(p.score, 5)) for p in built_locally.search(query, 5)]
    assert Store.open(tmp_path / "local", embedder).search("council budget", 1)


def test_a_model_of_another_name_is_refused_by_an_index(fake, tmp_path, articles_dir):
    ingest([articles_dir], tmp_path / "ix", HashEmbedder(), progress=False)
    fake.models = ("other-model",)
    with pytest.raises(IndexMismatchError, match="'fake-hash-64'.*not 'other-model'"):
        Store.open(tmp_path / "ix", remote(fake))


def test_busy_answers_are_retried_with_backoff_until_one_succeeds(fake):
    fake.failures = [429, 503, 502]
    started = time.monotonic()
    vectors = remote(fake, backoff=0.05).embed(["a text"])
    assert vectors.shape == (1, 64) and len(embeddings_requests(fake)) == 4
    assert time.monotonic() - started >= 0.05 + 0.1 + 0.2


def test_retry_after_is_honoured(fake):
    fake.failures, fake.retry_after = [429], "0.3"
    started = time.monotonic()
    remote(fake, backoff=0.0).embed(["a text"])
    assert time.monotonic() - started >= 0.3


def test_a_server_that_stays_busy_is_given_up_after_the_retries(fake):
    fake.failures = [503] * 10
    with pytest.raises(ModelError, match=r"HTTP 503: busy \(503\); 3 tries\); check the server's log"):
        remote(fake, retries=2).embed(["a text"])
    assert len(embeddings_requests(fake)) == 3


@pytest.mark.parametrize("status, message", [
    (400, "rejected the request while embedding 1 texts \\(HTTP 400: busy"),
    (404, "give its address like http://host:8080"),
    (413, "lower QA_EMBED_BATCH \\(now 32 texts a request\\)"),
])
def test_a_request_the_server_rejects_is_not_retried(fake, status, message):
    fake.failures = [status]
    with pytest.raises(ModelError, match=message):
        remote(fake).embed(["a text"])
    assert len(embeddings_requests(fake)) == 1


def test_a_slow_server_times_out_with_a_message(fake):
    fake.delay = 1.0
    embedder = remote(fake, timeout=0.2, retries=1)
    with pytest.raises(ModelError, match="did not answer within 0.2 s while embedding 1 texts \\(2 tries\\)"):
        embedder.embed(["a text"])


def test_a_server_that_is_down_is_named_with_the_fix():
    with pytest.raises(ModelError, match="cannot reach the embedding server at http://127.0.0.1:9.*QA_EMBED_URL"):
        RemoteEmbedder("http://127.0.0.1:9", retries=1, backoff=0.01)


def test_the_key_is_sent_and_a_refusal_says_where_to_set_it(fake):
    fake.key = "s3cret"
    with pytest.raises(ModelError, match="HTTP 401.*QA_EMBED_KEY"):
        remote(fake)
    embedder = remote(fake, api_key="s3cret")
    assert embedder.embed(["a"]).shape == (1, 64)
    assert "s3cret" not in repr(embedder)
    assert fake.requests[-1][2]["Authorization"] == "Bearer s3cret"


def _base64(vectors):
    import base64
    return {"data": [{"index": i, "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode()}
                     for i, v in enumerate(vectors)]}


def test_base64_vectors_are_read_too(fake):
    fake.reply = lambda texts, vectors: _base64(vectors)
    np.testing.assert_allclose(remote(fake).embed(TEXTS[:3]), HashEmbedder().embed(TEXTS[:3]), atol=1e-6)


def _vectors(rows):
    return {"data": [{"index": i, "embedding": row} for i, row in enumerate(rows)]}


@pytest.mark.parametrize("reply, message", [
    (lambda texts, v: "<html>502 Bad Gateway</html>", "a reply that is not JSON"),
    (lambda texts, v: {"object": "list"}, 'JSON without a "data" list'),
    (lambda texts, v: {"data": "nothing"}, '"data" field that is not a list of embeddings'),
    (lambda texts, v: _vectors(v[:-1].tolist()), "sent 1 vectors for 2 texts"),
    (lambda texts, v: _vectors([[0.1, "x"], [0.2, 0.3]]), "an embedding that is not a list of numbers"),
    (lambda texts, v: _vectors([[0.1, 0.2], [0.3]]), "vectors of different lengths"),
    (lambda texts, v: _vectors([[0.0, 0.0], [1.0, 0.0]]), "a vector that is zero, infinite or not a number"),
    (lambda texts, v: '{"data": [{"embedding": [NaN, 1]}, {"embedding": [1, 1]}]}', "zero, infinite or not a"),
])
def test_a_reply_of_the_wrong_shape_is_a_clear_error(fake, reply, message):
    fake.reply = reply
    with pytest.raises(ModelError, match=message):
        remote(fake).embed(["first text", "second text"])


def test_a_change_of_dimension_mid_ingest_is_caught(fake):
    embedder = remote(fake)
    assert embedder.dim == 64
    fake.embedder = HashEmbedder(dim=32)
    with pytest.raises(ModelError, match="sent 32-dimensional vectors, after 64-dimensional ones"):
        embedder.embed(["a text"])


@pytest.mark.parametrize("variable, value, message", [
    ("QA_EMBED_BATCH", "many", "QA_EMBED_BATCH must be a whole number"),
    ("QA_EMBED_PARALLEL", "0", "parallel requests must be a whole number of at least 1"),
])
def test_bad_settings_are_input_errors(fake, monkeypatch, variable, value, message):
    monkeypatch.setenv("QA_EMBED_URL", fake.url)
    monkeypatch.setenv(variable, value)
    with pytest.raises(InputError, match=message):
        RemoteEmbedder.from_env()


def test_qa_embed_url_makes_the_default_embedder_remote(fake, monkeypatch):
    monkeypatch.setenv("QA_EMBED_URL", fake.url + "/v1")
    monkeypatch.setenv("QA_EMBED_MODEL", "served-name")
    monkeypatch.setenv("QA_EMBED_KEY", "k")
    monkeypatch.setenv("QA_EMBED_BATCH", "8")
    embedding_module.default_embedder.cache_clear()
    try:
        embedder = embedding_module.default_embedder()
        assert isinstance(embedder, RemoteEmbedder)
        assert (embedder.name, embedder.batch_size, embedder.parallel) == ("served-name", 8, 4)
    finally:
        embedding_module.default_embedder.cache_clear()


def test_the_cli_reports_a_server_that_is_down_in_one_line(tmp_path, articles_dir, capsys, monkeypatch):
    monkeypatch.setenv("QA_EMBED_URL", "http://127.0.0.1:9")
    monkeypatch.setitem(RemoteEmbedder.__init__.__kwdefaults__, "retries", 0)   # the test stays fast
    embedding_module.default_embedder.cache_clear()
    try:
        assert cli.main(["ingest", str(articles_dir), "--index", str(tmp_path / "ix")]) == 2
    finally:
        embedding_module.default_embedder.cache_clear()
    err = capsys.readouterr().err
    assert err.startswith("qa: cannot reach the embedding server at http://127.0.0.1:9") and "Traceback" not in err
