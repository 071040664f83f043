"""Texts to vectors on another machine: an `Embedder` over an OpenAI-compatible `POST /v1/embeddings`.

Embedding is the slow step of an ingest (about 28 passages/s with all-MiniLM-L6-v2 on 2 CPU cores,
some 10 hours for a million passages). `RemoteEmbedder` sends the texts to a server instead:
llama.cpp's `llama-server --embedding`, llama-cpp-python's server, text-embeddings-inference, vLLM,
Infinity, or several of them behind a load balancer. `default_embedder()` picks it when
`QA_EMBED_URL` is set; then every passage ingested and every question asked goes to that URL, and
nowhere else (no proxy from the environment).

An index records the model's name and dimension, not where the model ran. The name is the one the
server knows the model by (`QA_EMBED_MODEL`, else the first model it lists), so a server that
serves all-MiniLM-L6-v2 as `sentence-transformers/all-MiniLM-L6-v2` builds indexes that the local
embedder reads and updates, and the other way round: they hold the same model's vectors (llama.cpp's
agree with PyTorch's to a cosine of 0.99999). Served under any other name, it builds indexes of
that name, which the local embedder refuses. The server is trusted to serve what it names.

Texts go `batch_size` to a request and `parallel` requests at once (a GPU server batches across
requests; a balancer spreads them over replicas). A failure that may pass (connection refused or
reset, a timeout, HTTP 408, 429 or 5xx) is retried `retries` times with exponential backoff,
honouring Retry-After up to `_MAX_DELAY`; any other failure, and a reply that is not one finite
vector of the expected dimension per text, is a `ModelError` naming the URL and what to change.
Vectors are L2-normalized here, since servers differ on whether they do.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from .errors import InputError, ModelError
from .openai_http import error_detail, http_client, split_url

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_MAX_DELAY = 30.0   # seconds: the longest wait between two tries, whatever Retry-After asks
_PROBE = "dimension"  # embedded once to learn the model's dimension


class RemoteEmbedder:
    """The embedding model `model` served at `url` (`http://host:port`, with or without `/v1`).

    `model` is the name sent with each request and recorded in the index (None: the first model the
    server lists); `api_key` is sent as a bearer token; `batch_size` texts go in one request and
    `parallel` requests at once; `timeout` is seconds to wait for one reply; a failure that may pass
    is tried again `retries` times, waiting `backoff`, then twice that, and so on.
    """

    def __init__(self, url: str, *, model: str | None = None, api_key: str | None = None,
                 batch_size: int = 32, parallel: int = 4, timeout: float = 60.0, retries: int = 4,
                 backoff: float = 0.5):
        for label, value, least in (("batch size", batch_size, 1), ("parallel requests", parallel, 1),
                                    ("retries", retries, 0)):
            if not isinstance(value, int) or value < least:
                raise InputError(f"the embedding server's {label} must be a whole number of at least {least}, "
                                 f"not {value!r}")
        self._root, self._api, self.url = split_url(url, "embedding server", "/embeddings")
        self._client = http_client(api_key, httpx.Timeout(timeout, connect=min(timeout, 10.0)))
        self.batch_size, self.parallel, self.retries = batch_size, parallel, retries
        self._timeout, self._backoff = timeout, backoff
        self._dim: int | None = None
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.name = model or self._first_model()

    @classmethod
    def from_env(cls) -> RemoteEmbedder:
        """The server of `QA_EMBED_URL`, with `QA_EMBED_MODEL`, `QA_EMBED_KEY`, `QA_EMBED_BATCH`, `QA_EMBED_PARALLEL`."""
        def number(variable: str, default: int) -> int:
            raw = os.environ.get(variable) or str(default)
            try:
                return int(raw)
            except ValueError:
                raise InputError(f"{variable} must be a whole number, not {raw!r}") from None

        return cls(os.environ.get("QA_EMBED_URL", ""), model=os.environ.get("QA_EMBED_MODEL") or None,
                   api_key=os.environ.get("QA_EMBED_KEY") or None,
                   batch_size=number("QA_EMBED_BATCH", 32), parallel=number("QA_EMBED_PARALLEL", 4))

    @property
    def texts_per_call(self) -> int:
        """How many texts one `embed` call should carry to keep `parallel` requests busy (ingest asks)."""
        return self.batch_size * self.parallel

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._embed_batch([_PROBE])   # sets it
        assert self._dim is not None
        return self._dim

    def embed(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches = [texts[i:i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        if len(batches) == 1 or self.parallel == 1:
            return np.concatenate([self._embed_batch(b) for b in batches])
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="embed-request")
        return np.concatenate(list(self._pool.map(self._embed_batch, batches)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._client.close()

    def __repr__(self) -> str:
        return f"RemoteEmbedder({self.name!r}, url={self.url!r}, batch_size={self.batch_size}, parallel={self.parallel})"

    # -- talking to the server ---------------------------------------------------------------------

    def _first_model(self) -> str:
        response = self._send("GET", self._api + "/models", None, "listing its models")
        try:
            models = [m["id"] for m in response.json()["data"] if isinstance(m, dict) and m.get("id")]
        except (ValueError, KeyError, TypeError):
            raise ModelError(f"{self.url}/models did not answer with a list of models: is it an OpenAI-compatible "
                             "server? Give its address like http://host:8080 or http://host:8080/v1") from None
        if not models:
            raise ModelError(f"the embedding server at {self.url} lists no models: name one in QA_EMBED_MODEL")
        return str(models[0])

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        body = {"model": self.name, "input": texts, "encoding_format": "float"}
        response = self._send("POST", self._api + "/embeddings", body, f"embedding {len(texts)} texts")
        return self._vectors(response, len(texts))

    def _send(self, method: str, url: str, body: dict | None, doing: str) -> httpx.Response:
        """The server's reply to one request, trying again (bounded) while the failure may pass."""
        for attempt in range(self.retries + 1):
            retry_after = None
            try:
                response = self._client.request(method, url, json=body)
            except httpx.TransportError as e:    # refused, reset, timed out: a server restarting or overloaded
                failure: httpx.Response | httpx.TransportError = e
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in _RETRY_STATUSES:
                    raise self._refused(response, doing)
                failure, retry_after = response, _seconds(response.headers.get("retry-after"))
            if attempt == self.retries:
                break
            delay = min(retry_after if retry_after is not None else self._backoff * 2 ** attempt, _MAX_DELAY)
            log.warning("the embedding server at %s failed while %s (%s): trying again in %.1f s",
                        self.url, doing, _describe(failure), delay)
            time.sleep(delay)
        raise self._gave_up(failure, doing)

    def _gave_up(self, failure: httpx.Response | httpx.TransportError, doing: str) -> ModelError:
        tries = f"{self.retries + 1} tries" if self.retries else "1 try"
        if isinstance(failure, httpx.ConnectError):
            return ModelError(f"cannot reach the embedding server at {self.url} ({failure}; {tries}): start it, or fix "
                              "QA_EMBED_URL (unset it to embed on this machine)")
        if isinstance(failure, httpx.TimeoutException):
            return ModelError(f"the embedding server at {self.url} did not answer within {self._timeout:g} s while "
                              f"{doing} ({tries}): is it overloaded? Lower QA_EMBED_BATCH or QA_EMBED_PARALLEL")
        return ModelError(f"the embedding server at {self.url} failed while {doing} ({_describe(failure)}; {tries}); "
                          "check the server's log")

    def _refused(self, response: httpx.Response, doing: str) -> ModelError:
        status, detail = response.status_code, error_detail(response)
        if status in (401, 403):
            return ModelError(f"the embedding server at {self.url} refused the request (HTTP {status}: {detail}): "
                              "set its API key in QA_EMBED_KEY")
        if status == 404:
            return ModelError(f"the embedding server at {self.url} answered HTTP 404 while {doing} ({detail}): give its "
                              "address like http://host:8080 or http://host:8080/v1, and a model it serves in "
                              "QA_EMBED_MODEL")
        if status == 413:
            return ModelError(f"the embedding server at {self.url} found the request too large (HTTP 413: {detail}): "
                              f"lower QA_EMBED_BATCH (now {self.batch_size} texts a request)")
        return ModelError(f"the embedding server at {self.url} rejected the request while {doing} "
                          f"(HTTP {status}: {detail})")

    def _vectors(self, response: httpx.Response, count: int) -> np.ndarray:
        """One unit vector per text, in the order sent, or a ModelError saying what is wrong with the reply."""
        def bad(what: str) -> ModelError:
            return ModelError(f"the embedding server at {self.url} sent {what}: is it an OpenAI-compatible "
                              "embeddings server?")

        try:
            data = response.json()["data"]
        except ValueError:
            raise bad(f"a reply that is not JSON ({response.headers.get('content-type', 'no content type')})") from None
        except (KeyError, TypeError):
            raise bad("JSON without a \"data\" list of embeddings") from None
        if not isinstance(data, list) or not all(isinstance(d, dict) and "embedding" in d for d in data):
            raise bad("a \"data\" field that is not a list of embeddings")
        if len(data) != count:
            raise ModelError(f"the embedding server at {self.url} sent {len(data)} vectors for {count} texts")
        if all(isinstance(d.get("index"), int) for d in data):
            data = sorted(data, key=lambda d: d["index"])
        try:
            rows = [_decode(d["embedding"]) for d in data]
            vectors = np.stack(rows) if len({len(r) for r in rows}) == 1 else None
        except (TypeError, ValueError):
            raise bad("an embedding that is not a list of numbers") from None
        if vectors is None:
            raise ModelError(f"the embedding server at {self.url} sent vectors of different lengths "
                             f"({sorted({len(r) for r in rows})}) in one reply")
        with self._lock:
            if self._dim is None:
                self._dim = vectors.shape[1]
        if vectors.shape[1] != self._dim:
            raise ModelError(f"the embedding server at {self.url} sent {vectors.shape[1]}-dimensional vectors, "
                             f"after {self._dim}-dimensional ones: has it changed model? ({self.name!r} expected)")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise ModelError(f"the embedding server at {self.url} sent a vector that is zero, infinite or not a "
                             "number: check the server's model")
        return (vectors / norms).astype(np.float32)


def _decode(embedding) -> np.ndarray:
    """A vector from a JSON list of numbers, or from base64 float32 (what some servers send regardless)."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding, validate=True), dtype="<f4").astype(np.float64)
    if not isinstance(embedding, list) or not embedding or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in embedding):
        raise TypeError("not a list of numbers")
    return np.asarray(embedding, dtype=np.float64)


def _seconds(retry_after: str | None) -> float | None:
    try:
        return max(0.0, float(retry_after)) if retry_after else None
    except ValueError:
        return None   # an HTTP date: rare from these servers; the backoff applies


def _describe(failure: httpx.Response | httpx.TransportError) -> str:
    if isinstance(failure, httpx.Response):
        return f"HTTP {failure.status_code}: {error_detail(failure)}"
    return f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__

