"""What the two clients of OpenAI-compatible servers share: reading the server's URL, the HTTP client
that talks to it and nothing else, and the server's own words about an error.

The chat client is `qa/remote.py` (`QA_LLM_URL`), the embeddings client `index/remote_embedding.py`
(`QA_EMBED_URL`); this module lives in `index/` because imports go `qa -> index`, never back.
"""

from __future__ import annotations

import json
import os
import ssl
from urllib.parse import urlsplit, urlunsplit

import httpx

from .errors import InputError


def split_url(url: str, what: str, endpoint: str) -> tuple[str, str, str]:
    """(server root, API root, the URL as shown to the user) for `http://host:port[/prefix][/v1][endpoint]`.

    `what` names the server in messages ("LLM server"); `endpoint` ("/chat/completions") may end the
    URL given, as people copy it from a server's docs.
    """
    example = "http://127.0.0.1:8080"
    if not isinstance(url, str) or not url.strip():
        raise InputError(f"the {what} URL is empty: give one like {example}")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"the {what} URL must start with http:// or https:// and name a host, "
                         f"like {example}, not {url!r}")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise InputError(f"the {what} URL {url!r} has an invalid port") from None
    path = parts.path.rstrip("/")
    if path.endswith(endpoint):
        path = path[: -len(endpoint)]
    if path.endswith("/v1"):
        root, api = path[: -len("/v1")], path
    else:
        root, api = path, path + "/v1"
    netloc = parts.netloc.rpartition("@")[2]  # credentials in the URL are not shown in messages
    shown = urlunsplit((parts.scheme, netloc, path, "", ""))
    base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    return base + root, base + api, shown


def http_client(api_key: str | None, timeout: httpx.Timeout) -> httpx.Client:
    """A client that sends `api_key` as a bearer token, and sends it only where it is told.

    trust_env=False: article text goes to the server's URL only, never through a proxy from the
    environment; a certificate authority of one's own (SSL_CERT_FILE) is still honoured.
    """
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    cafile = os.environ.get("SSL_CERT_FILE")
    return httpx.Client(headers=headers, timeout=timeout, trust_env=False,
                        verify=ssl.create_default_context(cafile=cafile) if cafile else True)


def error_message(error) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or error)
    return str(error)


def error_detail(response: httpx.Response) -> str:
    """The server's own words about an error, from the JSON shapes servers use, else the body's start."""
    try:
        data = response.json()
    except ValueError:
        return " ".join(response.text.split())[:300] or response.reason_phrase
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            if data.get(key):
                return error_message(data[key])[:300]
    return json.dumps(data)[:300]
