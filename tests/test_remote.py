"""The remote generator against a tiny fake OpenAI-compatible server (stdlib http.server in a thread).

The fake plays three kinds of server: llama.cpp's llama-server ("llama.cpp": /props, /apply-template,
/tokenize), llama-cpp-python's ("llama-cpp-python": /extras/tokenize/count) and a plain OpenAI-style
one ("openai": vLLM, Ollama), and can misbehave on request.
"""

from __future__ import annotations

import html
import json
import threading
import time
from dataclasses import dataclass, field

import pytest

from fakes import quoting
from index import InputError, ModelError
from qa import Assistant, Settings, prompt
from qa.llm import ContextOverflowError
from qa.remote import RemoteGenerator, estimate_tokens
from servers import FakeOpenAIHandler, free_port, serving

REPLY = "Evidence: 1\n[1] Oil deliveries resumed on Saturday."


@dataclass
class FakeServer:
    """What the fake server does; `requests` records (method, path, headers, JSON body) of every call."""

    kind: str = "llama.cpp"
    reply: object = REPLY             # a string, or a function of the request body
    n_ctx: int | None = 4096          # what /props (llama.cpp) or max_model_len (openai) tells
    models: tuple = ("tiny-model",)
    key: str | None = None            # the API key it wants
    chat_status: int = 200
    chat_error: str = "model exploded"
    reject: str | None = None         # "grammar" or "response_format": a 400 when the request has it
    stream: str = "good"              # good | malformed | cut | error-event | no-stream | slow
    requests: list = field(default_factory=list)

    def tokens(self, text: str) -> int:
        return len(text.split())


def _handler(server: FakeServer):
    class Handler(FakeOpenAIHandler):
        state = server
        _send = FakeOpenAIHandler.send_json

        def do_GET(self):
            self.received("GET")
            if not self.authorized():
                return
            if self.path == "/v1/models":
                data = self.model_list()
                if server.kind == "openai" and server.n_ctx:
                    for m in data:
                        m["max_model_len"] = server.n_ctx
                return self._send(200, {"object": "list", "data": data})
            if self.path == "/props" and server.kind == "llama.cpp":
                return self._send(200, {"default_generation_settings": {"n_ctx": server.n_ctx}, "total_slots": 1})
            self._send(404, {"detail": "Not Found"})

        def do_POST(self):
            body = self.received("POST")
            if not self.authorized():
                return
            if self.path == "/apply-template" and server.kind == "llama.cpp":
                text = "".join(f"<|{m['role']}|> {m['content']} " for m in body["messages"])
                return self._send(200, {"prompt": text})
            if self.path == "/tokenize" and server.kind == "llama.cpp":
                return self._send(200, {"tokens": list(range(server.tokens(body["content"])))})
            if self.path == "/extras/tokenize/count" and server.kind == "llama-cpp-python":
                return self._send(200, {"count": server.tokens(body["input"])})
            if self.path == "/v1/chat/completions":
                return self._chat(body)
            self._send(404, {"detail": "Not Found"})

        def _chat(self, body: dict) -> None:
            if server.chat_status != 200:
                return self._send(server.chat_status, {"error": {"message": server.chat_error}})
            if server.reject and server.reject in body:
                return self._send(400, {"error": {"message": f"Unrecognized request argument: {server.reject}"}})
            text = server.reply(body) if callable(server.reply) else server.reply
            if server.stream == "no-stream":
                return self._send(200, {"choices": [{"message": {"role": "assistant", "content": text}}]})
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

            def event(data) -> None:
                self.wfile.write(f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode())
                self.wfile.flush()

            if server.stream == "slow":
                time.sleep(1.0)
            self.wfile.write(b": ping\n\n")
            event({"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
            pieces = [text[i:i + 5] for i in range(0, len(text), 5)]
            for n, piece in enumerate(pieces):
                if server.stream == "cut" and n == len(pieces) // 2:
                    return
                if server.stream == "malformed" and n == 2:
                    return event("{not json")
                if server.stream == "error-event" and n == 2:
                    return event({"error": {"message": "slot unavailable"}})
                event({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            event("[DONE]")

    return Handler


@pytest.fixture
def fake():
    """A running fake server: `fake.url`, `fake.server` (its behaviour, changeable during the test)."""
    behaviour = FakeServer()
    with serving(_handler(behaviour)) as url:
        class Running:
            server = behaviour

            def chats(self):
                return [body for method, path, _, body in behaviour.requests if path == "/v1/chat/completions"]

        Running.url = url
        yield Running()


MESSAGES = [{"role": "system", "content": "Reply in JSON."}, {"role": "user", "content": "Where did they meet?"}]


# -- streaming and what is sent ------------------------------------------------------------------------

def test_the_reply_streams_in_pieces_and_nothing_else_is_added(fake):
    gen = RemoteGenerator(fake.url)
    pieces = list(gen.generate(MESSAGES, max_tokens=50, grammar=prompt.grammar(2)))
    assert len(pieces) > 3 and "".join(pieces) == REPLY
    body = fake.chats()[0]
    assert body["stream"] is True and body["messages"] == MESSAGES and body["max_tokens"] == 50
    assert body["temperature"] == 0 and body["model"] == "tiny-model"


@pytest.mark.parametrize("kind, sent, not_sent", [
    ("llama.cpp", "grammar", "response_format"),
    ("llama-cpp-python", "grammar", "response_format"),
    ("openai", "response_format", "grammar"),
])
def test_each_kind_of_server_gets_the_constraint_it_understands(fake, kind, sent, not_sent):
    fake.server.kind = kind
    gen = RemoteGenerator(fake.url)
    "".join(gen.generate(MESSAGES, grammar=prompt.grammar(3)))
    body = fake.chats()[0]
    assert sent in body and not_sent not in body
    # quoting repeats the passage's words: llama.cpp servers must not penalize that (OpenAI has no such field)
    assert body.get("repeat_penalty") == (None if kind == "openai" else 1.0)
    if sent == "grammar":
        assert body["grammar"] == prompt.grammar(3)
    else:
        schema = body["response_format"]["json_schema"]["schema"]
        assert body["response_format"]["type"] == "json_schema"
        assert schema == prompt.reply_schema(3) and schema["properties"]["evidence"]["items"]["enum"] == [1, 2, 3]


def test_no_constraint_is_sent_without_a_grammar(fake):
    gen = RemoteGenerator(fake.url)
    "".join(gen.generate(MESSAGES, max_tokens=1))
    assert "grammar" not in fake.chats()[0] and "response_format" not in fake.chats()[0]


def test_a_reply_held_to_the_json_schema_reads_as_the_grammars_reply():
    reply = {"evidence": [2, 1], "answer": [{"ids": [2], "text": "Oil deliveries resumed."}]}
    assert prompt.parse_reply(json.dumps(reply)) == prompt.parse_reply("Evidence: 2, 1\n[2] Oil deliveries resumed.")


@pytest.mark.parametrize("rejected, then", [("grammar", "response_format"), ("response_format", None)])
def test_a_server_that_rejects_the_constraint_is_asked_again_with_the_next_one(fake, rejected, then):
    fake.server.kind = "llama.cpp" if rejected == "grammar" else "openai"
    fake.server.reject = rejected
    gen = RemoteGenerator(fake.url)
    assert "".join(gen.generate(MESSAGES, grammar=prompt.grammar(2))) == REPLY
    assert "".join(gen.generate(MESSAGES, grammar=prompt.grammar(2))) == REPLY
    first, retried, second = fake.chats()
    assert rejected in first and rejected not in retried
    assert (then in retried) if then else ("grammar" not in retried and "response_format" not in retried)
    assert retried.keys() == second.keys(), "the working choice is kept"


def test_a_chosen_constraint_is_not_silently_dropped(fake):
    fake.server.reject = "grammar"
    gen = RemoteGenerator(fake.url, constraint="grammar")
    with pytest.raises(ModelError, match="HTTP 400.*grammar"):
        "".join(gen.generate(MESSAGES, grammar=prompt.grammar(2)))


def test_a_server_that_ignores_stream_still_answers(fake):
    fake.server.stream = "no-stream"
    assert "".join(RemoteGenerator(fake.url).generate(MESSAGES)) == REPLY


def test_generations_run_side_by_side(fake):
    fake.server.reply = lambda body: "Evidence: 1\n[1] " + body["messages"][-1]["content"]
    gen = RemoteGenerator(fake.url)
    results: dict[int, str] = {}

    def ask(n: int) -> None:
        messages = [{"role": "user", "content": f"question number {n}"}]
        results[n] = "".join(gen.generate(messages))

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == {n: f"Evidence: 1\n[1] question number {n}" for n in range(6)}


def test_closing_a_stream_early_leaves_the_generator_usable(fake):
    gen = RemoteGenerator(fake.url)
    stream = gen.generate(MESSAGES)
    assert next(stream)
    stream.close()
    assert "".join(gen.generate(MESSAGES)) == REPLY


# -- what the server is asked about itself ------------------------------------------------------------

def test_llama_cpp_counts_tokens_with_its_template_and_tells_its_context(fake):
    gen = RemoteGenerator(fake.url)
    assert gen.kind == "llama.cpp" and gen.context_size == 4096
    rendered = "".join(f"<|{m['role']}|> {m['content']} " for m in MESSAGES)
    assert gen.count_tokens(MESSAGES) == len(rendered.split())
    calls = len(fake.server.requests)
    gen.count_tokens(MESSAGES)
    assert len(fake.server.requests) == calls, "the same messages are counted once"


def test_llama_cpp_python_counts_tokens_and_the_setting_gives_the_context(fake):
    fake.server.kind = "llama-cpp-python"
    gen = RemoteGenerator(fake.url, context_size=3000)
    assert gen.kind == "llama-cpp-python" and gen.context_size == 3000
    counted = [b["input"] for _, p, _, b in fake.server.requests if p == "/extras/tokenize/count"]
    assert gen.count_tokens(MESSAGES) == fake.server.tokens(
        "<|im_start|>system\nReply in JSON.<|im_end|>\n<|im_start|>user\nWhere did they meet?<|im_end|>\n"
        "<|im_start|>assistant\n")
    assert len(counted) == 1, "one probe when connecting"


@pytest.mark.parametrize("n_ctx, expected", [(8192, 8192), (None, 2048)])
def test_other_servers_get_an_estimate_that_errs_high(fake, n_ctx, expected):
    fake.server.kind, fake.server.n_ctx = "openai", n_ctx
    gen = RemoteGenerator(fake.url)
    assert gen.kind == "openai" and gen.context_size == expected
    long = [{"role": "user", "content": "The pipeline carries Russian crude oil to refineries in Hungary. " * 20}]
    words = len(long[0]["content"].split())
    assert gen.count_tokens(long) == estimate_tokens(long) > 1.3 * words


def test_a_tokenizer_that_fails_falls_back_to_the_estimate(fake):
    gen = RemoteGenerator(fake.url)
    fake.server.kind = "openai"  # the endpoints vanish, as behind a load balancer to mixed servers
    assert gen.count_tokens(MESSAGES) == estimate_tokens(MESSAGES)


def test_a_prompt_larger_than_the_servers_context_is_refused_before_sending(fake):
    fake.server.n_ctx = 600
    gen = RemoteGenerator(fake.url)
    big = [{"role": "user", "content": "word " * 500}]
    with pytest.raises(ContextOverflowError, match="600"):
        "".join(gen.generate(big, max_tokens=200))
    assert not fake.chats()


@pytest.mark.parametrize("model, expected", [(None, "first-model"), ("second-model", "second-model")])
def test_the_model_is_the_one_named_or_the_first_listed(fake, model, expected):
    fake.server.models = ("first-model", "second-model")
    gen = RemoteGenerator(fake.url, model=model)
    "".join(gen.generate(MESSAGES))
    assert fake.chats()[0]["model"] == expected and gen.name == f"{expected} at {fake.url[7:]}"


def test_a_gguf_path_as_model_name_is_shown_short(fake):
    fake.server.models = ("/models/qwen2.5-0.5b-q4.gguf",)
    assert RemoteGenerator(fake.url).name.startswith("qwen2.5-0.5b-q4 at ")


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/", "/v1/chat/completions"])
def test_the_url_may_name_the_server_or_its_api(fake, suffix):
    gen = RemoteGenerator(fake.url + suffix)
    "".join(gen.generate(MESSAGES))
    assert fake.chats() and gen.kind == "llama.cpp"


def test_the_api_key_is_sent_and_never_shown(fake):
    fake.server.key = "s3cret"
    gen = RemoteGenerator(fake.url, api_key="s3cret")
    "".join(gen.generate(MESSAGES))
    assert all(h.get("Authorization") == "Bearer s3cret" for _, _, h, _ in fake.server.requests)
    assert "s3cret" not in repr(gen) + gen.name
    assert "s3cret" not in repr(Settings(llm_url=fake.url, llm_key="s3cret"))


# -- errors: always a ModelError that names the URL ---------------------------------------------------

def test_a_server_that_is_down_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ModelError, match=f"cannot reach the LLM server at {url}"):
        RemoteGenerator(url)


def test_a_wrong_api_key_says_which_variable_to_set(fake):
    fake.server.key = "right"
    with pytest.raises(ModelError, match="HTTP 401.*QA_LLM_KEY"):
        RemoteGenerator(fake.url, api_key="wrong")


def test_a_server_that_is_not_openai_compatible_says_so(fake):
    with pytest.raises(ModelError, match="OpenAI-compatible"):
        RemoteGenerator(fake.url + "/elsewhere")


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_an_http_error_carries_the_servers_message(fake, status):
    gen = RemoteGenerator(fake.url)
    fake.server.chat_status = status
    with pytest.raises(ModelError, match=f"{fake.url} answered HTTP {status}.*model exploded"):
        "".join(gen.generate(MESSAGES, grammar=prompt.grammar(2)))


@pytest.mark.parametrize("stream, message", [
    ("malformed", "malformed stream"),
    ("cut", "ended the stream before the reply was complete"),
    ("error-event", "failed while answering: slot unavailable"),
])
def test_a_broken_stream_is_a_clear_error(fake, stream, message):
    gen = RemoteGenerator(fake.url)
    fake.server.stream = stream
    with pytest.raises(ModelError, match=message) as e:
        "".join(gen.generate(MESSAGES))
    assert fake.url in str(e.value)


def test_a_server_that_stops_answering_times_out(fake):
    gen = RemoteGenerator(fake.url, timeout=0.3)
    fake.server.stream = "slow"
    with pytest.raises(ModelError, match=f"{fake.url} did not answer within 0.3 s"):
        "".join(gen.generate(MESSAGES))


@pytest.mark.parametrize("url", ["", "localhost:8080", "ftp://example.org", "http://", "http://host:port"])
def test_a_url_that_is_not_http_is_refused(url):
    with pytest.raises(InputError, match="URL"):
        RemoteGenerator(url)


# -- wired into the assistant, the settings and the CLI -------------------------------------------------

def test_the_assistant_answers_with_a_citation_through_the_server(fake, store):
    fake.server.reply = lambda body: quoting("Druzhba")(body["messages"])
    bot = Assistant(store, RemoteGenerator(fake.url), Settings(index_dir=store.index_dir))
    events = list(bot.stream("Which pipeline resumed oil deliveries to Hungary?"))
    answer = events[-1]
    assert any(isinstance(e, str) and e for e in events[:-1]), "the answer streams"
    assert not answer.refused and "Druzhba" in answer.text
    assert answer.citations and "Druzhba" in answer.citations[0].text
    assert answer.timings.prompt_tokens > 0
    sentences = len(prompt.number_sentences(answer.passages))
    sent = prompt.shown_in(fake.chats()[0]["grammar"])  # our grammar, with the ids of the sentences shown
    assert sent and sent <= min(sentences, prompt.MAX_SENTENCES)


def test_qa_llm_url_selects_the_server(fake, monkeypatch, store):
    from qa import assistant

    monkeypatch.setenv("QA_LLM_URL", fake.url)
    monkeypatch.setenv("QA_LLM_MODEL", "named-model")
    monkeypatch.setattr(assistant, "_generators", {})
    bot = Assistant.load(store.index_dir, embedder=store.embedder)
    assert isinstance(bot.generator, RemoteGenerator) and bot.generator.model == "named-model"
    assert Assistant.load(store.index_dir, embedder=store.embedder).generator is bot.generator


def test_the_cli_flag_reports_a_server_that_is_down_in_one_line(tmp_path, articles_dir, embedder, monkeypatch,
                                                                 capsys):
    from qa import assistant, cli

    monkeypatch.setattr(cli, "default_embedder", lambda: embedder)
    monkeypatch.setattr(assistant, "default_embedder", lambda: embedder)
    assert cli.main(["ingest", str(articles_dir), "--index", str(tmp_path / "ix")]) == 0
    capsys.readouterr()
    url = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["ask", "Where?", "--index", str(tmp_path / "ix"), "--llm-url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"qa: cannot reach the LLM server at {url}") and "Traceback" not in err


def test_the_app_says_where_the_model_answers_from(fake, store, tmp_path):
    from ui.app import build_app

    bot = Assistant(store, RemoteGenerator(fake.url), Settings(index_dir=store.index_dir))
    app = build_app(bot, uploads_dir=tmp_path / "uploads")
    header = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "qa-header")
    shown = html.unescape(header.value)
    assert f"answers from {fake.url}" in shown and "this machine" not in shown
