"""Fetching a feed or an article over HTTP, treating every URL as untrusted input.

A feed names links that anyone may have written, so a fetch: takes `http`/`https` only (no `file:`,
`ftp:`, `javascript:`); refuses hosts that resolve to private, loopback, link-local, multicast or
reserved addresses (the router, a cloud's metadata service at 169.254.169.254, a database on
localhost) unless `FetchPolicy.allow_private`; follows at most `max_redirects` redirects, checking
each target the same way; gives up after `timeout` seconds in all (not per read: a server that
trickles a byte a second is cut off too); reads at most `max_bytes` (streamed, stopping past the
limit, whatever Content-Length says); and says who it is with a User-Agent.

What this leaves out: the address is checked when the name is resolved, and httpx resolves it again
to connect; a DNS server that answers differently the second time (DNS rebinding) could slip past
the check. Run behind an egress firewall where that matters.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from .errors import RejectedFile

USER_AGENT = "news-qa/0.1 (local news question answering; fetches articles a user asked for)"


@dataclass(frozen=True)
class FetchPolicy:
    """What fetching may do. `enabled` False: no request at all (the default for feed files)."""

    enabled: bool = False
    allow_private: bool = False   # QA_FETCH_ALLOW_PRIVATE / --allow-private: reach hosts on this network
    timeout: float = 20.0         # seconds for the whole fetch, redirects included
    max_bytes: int = 5_000_000    # a news page is a few hundred kB; a feed rarely more than 1 MB
    max_redirects: int = 5
    user_agent: str = USER_AGENT


@dataclass(frozen=True)
class Fetched:
    url: str                # after redirects
    content_type: str       # without parameters, lower case ("text/html")
    body: bytes


def check_url(url: str, policy: FetchPolicy) -> None:
    """Raise `RejectedFile` unless `url` is an http(s) URL whose host may be reached under `policy`."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise RejectedFile(url, f"only http and https links are fetched, not {parts.scheme or 'a relative link'}:")
    if not parts.hostname:
        raise RejectedFile(url, "a link without a host name")
    if policy.allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise RejectedFile(url, f"cannot resolve {parts.hostname}: {e}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global or address.is_multicast:
            raise RejectedFile(url, f"{parts.hostname} is a private or local address ({address}); "
                                    "pass --allow-private (QA_FETCH_ALLOW_PRIVATE=1) to fetch from this network")


def fetch(url: str, policy: FetchPolicy) -> Fetched:
    """GET `url` under `policy`; raises `RejectedFile` (with the URL) for anything the policy refuses."""
    import httpx

    if not policy.enabled:
        raise RejectedFile(url, "fetching is off: pass --fetch to download linked articles")
    deadline = time.monotonic() + policy.timeout
    headers = {"User-Agent": policy.user_agent, "Accept": "text/html, application/xhtml+xml, "
               "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"}
    with httpx.Client(follow_redirects=False, headers=headers, trust_env=False) as client:
        for _ in range(policy.max_redirects + 1):
            check_url(url, policy)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RejectedFile(url, f"no answer within {policy.timeout:g} s")
            try:
                with client.stream("GET", url, timeout=httpx.Timeout(remaining)) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise RejectedFile(url, f"the server answered {response.status_code} "
                                                f"{response.reason_phrase}")
                    body = _read_body(response, url, policy, deadline)
                    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    return Fetched(url, kind, body)
            except httpx.TimeoutException:
                raise RejectedFile(url, f"no answer within {policy.timeout:g} s") from None
            except httpx.HTTPError as e:
                raise RejectedFile(url, f"cannot be fetched: {e}") from None
    raise RejectedFile(url, f"more than {policy.max_redirects} redirects")


def _read_body(response, url: str, policy: FetchPolicy, deadline: float) -> bytes:
    too_big = f"over the {policy.max_bytes / 1e6:g} MB limit for one download"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise RejectedFile(url, f"{int(declared) / 1e6:.1f} MB is {too_big}")
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > policy.max_bytes:
            raise RejectedFile(url, f"{too_big} (stopped reading)")
        if time.monotonic() > deadline:
            raise RejectedFile(url, f"not fully received within {policy.timeout:g} s")
        chunks.append(chunk)
    return b"".join(chunks)
