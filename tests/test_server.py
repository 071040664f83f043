"""Who can reach the server, with what: the address it listens on, the password, request sizes.

Served from a fake assistant (`test_ui_api.py`'s helpers). Tests that need an address of this machine
other than loopback skip when it has none.
"""

from __future__ import annotations

import socket

import pytest

from qa import InputError, QAError, cli
from test_ui_api import fake_bot, free_port, running_app

gradio_client = pytest.importorskip("gradio_client")
httpx = pytest.importorskip("httpx")
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")

QUESTION = "When did the Druzhba pipeline deliveries resume?"
PASSWORD = ("reader", "correct horse battery")


def outside_address() -> str:
    """An IPv4 address of this machine that is not loopback: what another machine would connect to."""
    psutil = pytest.importorskip("psutil")
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    pytest.skip("this machine has no address besides loopback")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app as `qa serve` starts it by default: (bot, url, port)."""
    folder = tmp_path_factory.mktemp("server")
    bot = fake_bot(folder)
    app, url = running_app(bot, folder / "uploads")
    yield bot, url, int(url.rstrip("/").rsplit(":", 1)[1])
    app.close()


def serve_on(tmp_path, host: str, **options):
    from ui.app import serve

    port = free_port()
    return serve(fake_bot(tmp_path), host=host, port=port, block=False, uploads_dir=tmp_path / "uploads",
                 **options), port


# -- the address -----------------------------------------------------------------------------------------

def test_by_default_another_machine_is_refused_a_connection(served):
    """What a request from outside loopback gets by default: the connection is refused (nothing listens
    on the machine's other addresses), while this machine gets the page."""
    _, url, port = served
    assert httpx.get(url).status_code == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((outside_address(), port), timeout=5).close()


def test_other_machines_without_a_password_are_refused_before_anything_is_loaded(tmp_path):
    from ui.app import serve

    bot = fake_bot(tmp_path)
    with pytest.raises(QAError, match=r"refusing to serve on 0\.0\.0\.0 without a password.*--auth.*--no-auth"):
        serve(bot, host="0.0.0.0", port=free_port(), block=False)
    assert bot.generator.calls == [], "the model was warmed up for nothing"


def test_no_auth_lets_other_machines_in_with_a_warning(tmp_path, capsys):
    host = outside_address()
    app, port = serve_on(tmp_path, host, no_auth=True)
    try:
        assert "WARNING: listening on" in capsys.readouterr().err
        result = gradio_client.Client(f"http://{host}:{port}/", verbose=False).predict(QUESTION, api_name="/ask")
    finally:
        app.close()
    assert "resumed on Saturday" in result["text"]


# -- the password ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def protected(tmp_path_factory):
    """The app with a password, exposed on an outside address when there is one: (url, what it printed)."""
    from ui.app import serve

    folder = tmp_path_factory.mktemp("protected")
    try:
        host = outside_address()
    except pytest.skip.Exception:
        host = "127.0.0.1"
    port = free_port()
    app = serve(fake_bot(folder), host=host, port=port, auth=PASSWORD, block=False, uploads_dir=folder / "up")
    yield f"http://{host}:{port}/", app
    app.close()


def test_with_a_password_the_api_answers_only_after_logging_in(protected):
    url, _ = protected
    with pytest.raises(gradio_client.exceptions.AuthenticationError, match="login"):
        gradio_client.Client(url, verbose=False)
    with pytest.raises(ValueError, match="Could not login"):
        gradio_client.Client(url, auth=(PASSWORD[0], "guess"), verbose=False)
    client = gradio_client.Client(url, auth=PASSWORD, verbose=False)
    assert "resumed on Saturday" in client.predict(QUESTION, api_name="/ask")["text"]


@pytest.mark.parametrize("method, path", [
    ("GET", "config"), ("GET", "gradio_api/info"), ("POST", "gradio_api/call/ask"), ("POST", "gradio_api/upload"),
    ("POST", "gradio_api/queue/join"),
])
def test_with_a_password_nothing_is_served_without_it(protected, method, path):
    url, _ = protected
    response = httpx.request(method, url + path, json={"data": [QUESTION, 0]} if method == "POST" else None)
    assert response.status_code == 401, response.text


def test_with_a_password_the_page_shows_no_article(protected, served):
    """The page itself loads (it holds the login form), but none of the app: no article titles."""
    url, _ = protected
    assert "Druzhba" not in httpx.get(url).text
    assert "Druzhba" in httpx.get(served[1] + "config").text, "the check above would never find a title"


@pytest.mark.parametrize("text, pair", [
    ("reader:secret", ("reader", "secret")), ("reader:pass:with:colons", ("reader", "pass:with:colons")),
    (" reader :secret", ("reader", "secret")),
])
def test_a_password_is_given_as_user_colon_password(text, pair):
    from ui.app import parse_auth

    assert parse_auth(text) == pair


@pytest.mark.parametrize("text", ["reader", "reader:", ":secret", " :secret"])
def test_a_malformed_password_is_a_clear_error(text):
    from ui.app import parse_auth

    with pytest.raises(InputError, match="USER:PASSWORD"):
        parse_auth(text)


# -- the command line ------------------------------------------------------------------------------------

@pytest.fixture
def fake_serve(monkeypatch, tmp_path):
    """`qa serve` with a fake assistant and a serve() that records its arguments."""
    import ui.app

    calls = []
    monkeypatch.setattr(cli, "_assistant", lambda args: fake_bot(tmp_path))
    monkeypatch.setattr(ui.app, "serve", lambda bot, **kwargs: calls.append(kwargs))
    monkeypatch.delenv("QA_AUTH", raising=False)
    return calls


def test_qa_serve_refuses_other_machines_without_a_password_before_loading(monkeypatch, capsys, fake_serve):
    monkeypatch.setattr(cli, "_assistant", lambda args: pytest.fail("the model was loaded"))
    assert cli.main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qa: refusing to serve on 0.0.0.0") and "--auth" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, env, auth, no_auth", [
    ([], None, None, False),
    (["--auth", "reader:secret"], None, ("reader", "secret"), False),
    ([], "reader:from-env", ("reader", "from-env"), False),
    (["--auth", "reader:flag"], "reader:from-env", ("reader", "flag"), False),
    (["--host", "0.0.0.0", "--no-auth"], "reader:from-env", None, True),
    (["--host", "0.0.0.0"], "reader:from-env", ("reader", "from-env"), False),
])
def test_qa_serve_takes_the_password_from_auth_or_qa_auth(monkeypatch, fake_serve, argv, env, auth, no_auth):
    if env:
        monkeypatch.setenv("QA_AUTH", env)
    assert cli.main(["serve", *argv]) == 0
    [kwargs] = fake_serve
    assert (kwargs["auth"], kwargs["no_auth"]) == (auth, no_auth)


def test_qa_serve_says_how_to_write_the_password(capsys, fake_serve):
    assert cli.main(["serve", "--auth", "reader"]) == 2
    assert "USER:PASSWORD" in capsys.readouterr().err and not fake_serve


# -- request sizes ---------------------------------------------------------------------------------------

def declared(port: int, path: str, length: int) -> str:
    """The status line the server answers a request that announces `length` bytes of body and sends none."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {length}\r\n\r\n".encode())
        return s.recv(4096).decode("latin-1").split("\r\n", 1)[0]


@pytest.mark.parametrize("path, length", [
    ("/gradio_api/call/ask", 2 * 2**20), ("/gradio_api/queue/join", 2 * 2**20), ("/gradio_api/upload", 65 * 2**20),
])
def test_a_body_over_the_limit_is_refused_before_it_is_sent(served, path, length):
    """The answer comes at once, without the server waiting for (and keeping) a body it would refuse."""
    _, _, port = served
    assert declared(port, path, length).startswith("HTTP/1.1 413")


def test_a_question_of_a_megabyte_is_refused(served):
    _, url, _ = served
    response = httpx.post(url + "gradio_api/call/ask", json={"data": ["why " * 2**18, 0]})
    assert response.status_code == 413 and "Too Large" in response.text


def test_a_body_without_a_length_is_cut_off_at_the_limit(served):
    _, url, _ = served

    def body():
        yield b'{"data": ["'
        for _ in range(8):
            yield b"why " * 2**16  # 256 KB at a time, 2 MB in all, sent without a Content-Length
        yield b'", 0]}'

    response = httpx.post(url + "gradio_api/call/ask", content=body(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_a_long_question_under_the_body_limit_gets_the_question_limit_message(served):
    _, url, _ = served
    client = gradio_client.Client(url, verbose=False)
    with pytest.raises(gradio_client.exceptions.AppError, match="the limit is 2,000"):
        client.predict("why " * 50_000, api_name="/ask")


def test_uploads_are_limited_per_file_not_to_one_file_per_request(served):
    _, url, _ = served
    six_mb = b"word " * (6 * 2**20 // 5)
    files = [("files", (f"{name}.txt", six_mb, "text/plain")) for name in ("a", "b")]
    response = httpx.post(url + "gradio_api/upload", files=files)
    assert response.status_code == 200 and len(response.json()) == 2

