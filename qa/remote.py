"""A chat model behind an OpenAI-compatible HTTP server, for users who outgrow one machine.

`RemoteGenerator` is the `Generator` of `llm.py` over `POST /v1/chat/completions` with streaming
(server-sent events): llama.cpp's `llama-server`, llama-cpp-python's server, vLLM, Ollama, or a cluster
of them behind a load balancer (any of them is just a URL). It is used only when `QA_LLM_URL` (or
`--llm-url`) is set, and then the prompt, meaning the retrieved passages and the question, goes to that
URL and nowhere else: no environment proxy is used, no other host is contacted.

The small models we ship need their reply held to one shape (evidence ids, then cited sentences: see
`prompt.py`). What holds it
depends on what the server understands, found out once when connecting:

- llama.cpp's `llama-server` (it answers `GET /props`): the GBNF grammar as is; tokens counted exactly
  with the server's own chat template and tokenizer; the context size from `/props`.
- llama-cpp-python's server (it answers `POST /extras/tokenize/count`): the grammar; tokens counted by
  the server on a ChatML rendering of the messages (exact for Qwen, an overestimate for other templates).
- anything else (vLLM, Ollama, gateways): `response_format` with a JSON schema equivalent to the
  grammar (such a reply is read whole: no draft streams before the checked answer); tokens estimated from the UTF-8 length, on the high side, so that trimmed prompts fit;
  the context size from vLLM's `max_model_len` when given, else the `QA_CONTEXT` setting.

A server that rejects the constraint it was sent is asked again with the next one (grammar, then JSON
schema, then none), and that choice is kept. Whatever comes back is read by `prompt.parse_reply`,
which tolerates a reply that is not quite the shape asked for. Every failure (server down, timeout,
HTTP error, a broken stream) is a `ModelError` naming the URL.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterator
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import httpx

from index.errors import InputError, ModelError
from index.openai_http import error_detail, error_message, http_client, split_url

from . import prompt
from .llm import ContextOverflowError, Message

log = logging.getLogger(__name__)

CONSTRAINTS = ("grammar", "json_schema", "none")
_BYTES_PER_TOKEN = 3  # English BPE averages about 4 characters a token: 3 bytes overestimates, as it should
_MESSAGE_OVERHEAD = 8  # role markers and separators a chat template adds around each message
_CONSTRAINT_WORDS = ("grammar", "response_format", "json_schema", "schema")
_QUICK = 30.0  # seconds for the calls that are not a generation: listing models, counting tokens


def _schema_for(grammar: str) -> dict | None:
    shown = prompt.shown_in(grammar)
    return prompt.reply_schema(shown) if shown else None


def _chatml(messages: list[Message]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + \
        "<|im_start|>assistant\n"


def estimate_tokens(messages: list[Message]) -> int:
    """A token count that errs high: for servers that cannot count tokens for us."""
    return sum(math.ceil(len(m["content"].encode("utf-8")) / _BYTES_PER_TOKEN) + _MESSAGE_OVERHEAD
               for m in messages) + _MESSAGE_OVERHEAD


class RemoteGenerator:
    """A chat model served over HTTP by an OpenAI-compatible server at `url`.

    `model` is the name the server knows the model by (default: the first it lists); `api_key` is sent
    as a bearer token; `context_size` is used when the server does not tell its own; `constraint` is
    "auto" (by server, see the module docstring) or one of "grammar", "json_schema", "none";
    `timeout` is how long to wait for the server's next bytes while it answers, in seconds (a question
    may wait in the server's queue); questions about the server itself get at most `_QUICK` seconds.
    """

    def __init__(self, url: str, *, model: str | None = None, api_key: str | None = None,
                 context_size: int = 2048, constraint: str = "auto", timeout: float = 300.0):
        if constraint != "auto" and constraint not in CONSTRAINTS:
            raise InputError(f"constraint must be auto or one of {', '.join(CONSTRAINTS)}, not {constraint!r}")
        self._root, self._api, self.url = split_url(url, "LLM server", "/chat/completions")
        self._client = http_client(api_key, httpx.Timeout(min(timeout, _QUICK), connect=10.0))
        self._timeout = timeout
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._warned_estimate = False

        listed = self._list_models()
        self.model = model or (listed[0]["id"] if listed else None)
        props = self._get_json(self._root + "/props")
        if isinstance(props, dict) and "default_generation_settings" in props:
            self.kind = "llama.cpp"
            n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
        elif self._post_json(self._root + "/extras/tokenize/count", {"input": "hello"}, quiet=True) is not None:
            self.kind = "llama-cpp-python"
            n_ctx = None
        else:
            self.kind = "openai"
            n_ctx = next((m.get("max_model_len") for m in listed if m.get("id") == self.model), None)
        self.context_size = int(n_ctx) if isinstance(n_ctx, int) and n_ctx > 0 else context_size
        self.constraint = constraint if constraint != "auto" else \
            ("json_schema" if self.kind == "openai" else "grammar")
        self._auto = constraint == "auto"
        short = self.model or "default model"
        if short.endswith(".gguf"):
            short = PurePosixPath(short).stem
        self.name = f"{short} at {urlsplit(self.url).netloc}"
        log.info("LLM server %s (%s): model %s, context %d, constraint %s",
                 self.url, self.kind, self.model, self.context_size, self.constraint)

    def __repr__(self) -> str:
        return f"RemoteGenerator({self.url!r}, model={self.model!r}, kind={self.kind!r})"

    def close(self) -> None:
        self._client.close()

    # -- talking to the server ---------------------------------------------------------------------

    def _fail(self, e: Exception, doing: str) -> ModelError:
        if isinstance(e, httpx.TimeoutException):
            waited = self._timeout if doing == "answering" else min(self._timeout, _QUICK)
            return ModelError(f"the LLM server at {self.url} did not answer within {waited:g} s "
                              f"while {doing}: is it overloaded? ({type(e).__name__})")
        if isinstance(e, httpx.ConnectError):
            return ModelError(f"cannot reach the LLM server at {self.url} ({e}): start it, or fix QA_LLM_URL "
                              "(unset it to use the local model)")
        return ModelError(f"the connection to the LLM server at {self.url} failed while {doing}: "
                          f"{e or type(e).__name__}")

    def _status_error(self, response: httpx.Response, doing: str) -> ModelError:
        status = response.status_code
        detail = error_detail(response)
        if status in (401, 403):
            return ModelError(f"the LLM server at {self.url} refused the request (HTTP {status}: {detail}): "
                              "set its API key in QA_LLM_KEY")
        if status == 404 and doing == "listing its models":
            return ModelError(f"{self.url} has no /v1/models (HTTP 404): is it an OpenAI-compatible server? "
                              "Give its address like http://host:8080 or http://host:8080/v1")
        return ModelError(f"the LLM server at {self.url} answered HTTP {status} while {doing}: {detail}")

    def _list_models(self) -> list[dict]:
        try:
            response = self._client.get(self._api + "/models")
        except httpx.HTTPError as e:
            raise self._fail(e, "listing its models") from None
        if response.status_code >= 400:
            raise self._status_error(response, "listing its models")
        try:
            data = response.json().get("data") or []
        except (ValueError, AttributeError):
            raise ModelError(f"{self.url}/models did not answer with JSON: is it an OpenAI-compatible "
                             "server?") from None
        return [m for m in data if isinstance(m, dict) and m.get("id")]

    def _get_json(self, url: str):
        """The JSON at `url`, or None where the server has no such endpoint (probing what it is)."""
        try:
            response = self._client.get(url)
            return response.json() if response.status_code == 200 else None
        except ValueError:
            return None
        except httpx.HTTPError as e:
            raise self._fail(e, "finding out what it is") from None

    def _post_json(self, url: str, body: dict, quiet: bool = False):
        try:
            response = self._client.post(url, json=body)
        except httpx.HTTPError as e:
            raise self._fail(e, "counting tokens" if not quiet else "finding out what it is") from None
        if response.status_code != 200:
            if not quiet:
                log.warning("%s answered HTTP %d: %s", url, response.status_code, error_detail(response))
            return None
        try:
            return response.json()
        except ValueError:
            return None

    # -- the Generator protocol --------------------------------------------------------------------

    def count_tokens(self, messages: list[Message]) -> int:
        key = json.dumps(messages, ensure_ascii=False)
        with self._lock:
            if key in self._counts:
                return self._counts[key]
        count = None
        if self.kind == "llama.cpp":
            rendered = self._post_json(self._root + "/apply-template", {"messages": messages})
            text = rendered.get("prompt") if isinstance(rendered, dict) else None
            if isinstance(text, str):
                tokens = self._post_json(self._root + "/tokenize", {"content": text, "add_special": True})
                if isinstance(tokens, dict) and isinstance(tokens.get("tokens"), list):
                    count = len(tokens["tokens"])
        elif self.kind == "llama-cpp-python":
            counted = self._post_json(self._root + "/extras/tokenize/count", {"input": _chatml(messages)})
            if isinstance(counted, dict) and isinstance(counted.get("count"), int):
                count = counted["count"]
        if count is None:
            if self.kind != "openai" and not self._warned_estimate:
                log.warning("the LLM server at %s did not count tokens: estimating them", self.url)
                self._warned_estimate = True
            count = estimate_tokens(messages)
        with self._lock:
            if len(self._counts) > 256:
                self._counts.clear()
            self._counts[key] = count
        return count

    def generate(self, messages: list[Message], *, max_tokens: int = 256,
                 grammar: str | None = None) -> Iterator[str]:
        needed = self.count_tokens(messages) + max_tokens
        if needed > self.context_size:
            raise ContextOverflowError(
                f"the prompt needs {needed} tokens but the model's context at {self.url} holds "
                f"{self.context_size}: ask a shorter question or use fewer passages")
        while True:
            constraint = self.constraint if grammar else "none"
            body = self._body(messages, max_tokens, grammar, constraint)
            rejected = yield from self._stream(body, constrained=constraint != "none")
            if not rejected:
                return
            with self._lock:
                if self.constraint == constraint:
                    self.constraint = CONSTRAINTS[CONSTRAINTS.index(constraint) + 1]
                    log.warning("the LLM server at %s rejected the %s constraint (%s): using %s from now on",
                                self.url, constraint, rejected, self.constraint)

    def _body(self, messages: list[Message], max_tokens: int, grammar: str | None, constraint: str) -> dict:
        body: dict = {"messages": messages, "max_tokens": max_tokens, "temperature": 0.0, "seed": 0,
                      "stream": True}
        if self.model:
            body["model"] = self.model
        if self.kind != "openai":
            # llama-cpp-python's server penalizes repeats by default (1.1); the reply must repeat the
            # passage's words to quote them, and the local model does not penalize them either.
            body["repeat_penalty"] = 1.0
        if grammar and constraint == "grammar":
            body["grammar"] = grammar
        elif grammar and constraint == "json_schema":
            schema = _schema_for(grammar)
            if schema is not None:
                body["response_format"] = {"type": "json_schema",
                                           "json_schema": {"name": "cited_answer", "schema": schema}}
            else:
                log.debug("no JSON schema is known for this grammar: sending none")
        return body

    def _stream(self, body: dict, constrained: bool):
        """Yield the reply's text; return the server's reason when it rejected the constraint (to retry)."""
        doing = "answering"
        try:
            with self._client.stream("POST", self._api + "/chat/completions", json=body,
                                     timeout=httpx.Timeout(self._timeout, connect=10.0)) as response:
                if response.status_code >= 400:
                    response.read()
                    detail = error_detail(response)
                    if constrained and self._auto and response.status_code in (400, 422, 500, 501) and \
                            any(word in detail.lower() for word in _CONSTRAINT_WORDS):
                        return detail
                    raise self._status_error(response, doing)
                kind = response.headers.get("content-type", "")
                if "text/event-stream" not in kind:
                    # A server (or a proxy in front of it) that ignored "stream": the whole reply at once.
                    response.read()
                    yield self._whole_reply(response)
                    return None
                yield from self._events(response)
        except httpx.HTTPError as e:
            raise self._fail(e, doing) from None
        return None

    def _whole_reply(self, response: httpx.Response) -> str:
        try:
            return response.json()["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            raise ModelError(f"the LLM server at {self.url} sent neither a stream nor a chat completion "
                             f"({response.headers.get('content-type', 'no content type')})") from None

    def _events(self, response: httpx.Response) -> Iterator[str]:
        from httpx_sse import EventSource

        finished = False
        for event in EventSource(response).iter_sse():
            data = event.data.strip()
            if not data:
                continue
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError:
                raise ModelError(f"the LLM server at {self.url} sent a malformed stream: {data[:100]!r}") from None
            if not isinstance(chunk, dict):
                raise ModelError(f"the LLM server at {self.url} sent a malformed stream: {data[:100]!r}")
            if chunk.get("error"):
                raise ModelError(f"the LLM server at {self.url} failed while answering: "
                                 f"{error_message(chunk['error'])}")
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict):
                    raise ModelError(f"the LLM server at {self.url} sent a malformed stream: {data[:100]!r}")
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text
                finished = finished or bool(choice.get("finish_reason"))
        if not finished:
            raise ModelError(f"the LLM server at {self.url} ended the stream before the reply was complete")
