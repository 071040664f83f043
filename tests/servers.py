"""Servers for tests: a real model server (for a test or a benchmark) on a free loopback port, with a
bounded wait until it answers and a stop at the end whatever happened; and the plumbing of the fake
OpenAI-compatible servers that the fast tests run in a thread."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(command: list[str], ready_url: str, log: Path, timeout: float) -> Iterator[subprocess.Popen]:
    """Run `command` until the block ends; wait up to `timeout` seconds for `ready_url` to answer 200.

    A server that exits or is not ready in time is a RuntimeError carrying the end of its `log`.
    """
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with status {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not ready after {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class FakeOpenAIHandler(BaseHTTPRequestHandler):
    """The plumbing of a fake OpenAI-compatible server, for subclasses that add its routes.

    `state` (set by the subclass) has `key` (the API key it wants, or None), `models` and `requests`,
    where every call is recorded as (method, path, headers, JSON body).
    """

    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, *args):
        pass

    def send_json(self, status: int, body: dict | str, content_type: str = "application/json",
                  headers: dict | None = None) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def received(self, method: str) -> dict | None:
        """Record the request (reading a POST's JSON body) and return the body."""
        body = None
        if method == "POST":
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self.state.requests.append((method, self.path, dict(self.headers), body))
        return body

    def authorized(self) -> bool:
        if self.state.key and self.headers.get("Authorization") != f"Bearer {self.state.key}":
            self.send_json(401, {"error": {"message": "Invalid API key", "type": "auth"}})
            return False
        return True

    def model_list(self) -> list[dict]:
        return [{"id": m, "object": "model"} for m in self.state.models]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that went away (a closed stream, a timeout) is expected here, not worth a traceback
        # printed into a later test's output.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A fake server with `handler` on a free loopback port, in a thread, for the block: yields its URL."""
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
