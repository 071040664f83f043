"""A local HTTP server for the fetching tests, and a tiny PDF writer for the PDF tests.

`LocalWeb` serves fixed pages from a dict and a few misbehaving routes (slow, huge, redirects) on
127.0.0.1, records every path requested, and stops with the test. `make_pdf` writes pages of text
lines with the standard Helvetica font: enough for pypdf to read back, no PDF library needed.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalWeb:
    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, bytes]] = {}     # path -> (content type, body)
        self.redirects: dict[str, str] = {}               # path -> Location
        self.requests: list[tuple[str, str]] = []         # (path, User-Agent)
        web = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                web.requests.append((self.path, self.headers.get("User-Agent", "")))
                if self.path in web.redirects:
                    self.send_response(302)
                    self.send_header("Location", web.redirects[self.path])
                    self.end_headers()
                elif self.path == "/slow":
                    time.sleep(3)
                    self._send("text/html", b"<html><body><p>late</p></body></html>")
                elif self.path == "/trickle":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.end_headers()
                    for _ in range(30):
                        self.wfile.write(b"<p>x</p>")
                        self.wfile.flush()
                        time.sleep(0.1)
                elif self.path in ("/huge", "/huge-declared"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    if self.path == "/huge-declared":
                        self.send_header("Content-Length", str(10**9))
                    self.end_headers()
                    try:
                        for _ in range(10_000):   # 100 MB if nobody stops reading
                            self.wfile.write(b"a" * 10_000)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                elif self.path in web.pages:
                    self._send(*web.pages[self.path])
                else:
                    self.send_error(404)

            def _send(self, kind: str, body: bytes):
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A PDF whose pages hold these lines of text, top to bottom."""
    objects: list[bytes] = []
    font = 3
    page_ids = []
    for lines in pages:
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 760 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops += [f"({escaped}) Tj", "T*"]
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        content_id = 4 + len(objects)
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                       b"/Contents %d 0 R >>" % content_id)
        page_ids.append(4 + len(objects) - 1)
    kids = " ".join(f"{i} 0 R" for i in page_ids).encode()
    head = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % len(pages),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    info = [f"<< /Title ({title}) /CreationDate (D:20240302120000) >>".encode()] if title else []
    everything = head + objects + info
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(everything, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(everything) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    trailer = b"<< /Size %d /Root 1 0 R" % (len(everything) + 1)
    if info:
        trailer += b" /Info %d 0 R" % len(everything)
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)
