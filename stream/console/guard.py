"""What keeps a console with no login to its own host: on loopback it answers only
requests addressed to a loopback name (so a web page elsewhere cannot reach it through a
DNS name rebound to 127.0.0.1), and a button's POST must be JSON from the page itself (so
another site's form cannot press it)."""

from __future__ import annotations

from urllib.parse import urlsplit

from stream.console.settings import is_loopback


def _host_name(host_header: str) -> str:
    """The name of a Host header, without its port ([::1]:8770 -> ::1)."""
    h = host_header.strip()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def host_allowed(host_header: str | None, loopback: bool) -> bool:
    """Whether to answer a request with this Host header; a console bound elsewhere
    answers any (its operator chose to expose it)."""
    if not loopback:
        return True
    return host_header is not None and is_loopback(_host_name(host_header))


def post_allowed(content_type: str | None, origin: str | None, host_header: str | None) -> bool:
    """A JSON body, and no Origin or one naming this very host."""
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        return False
    if origin is None:
        return True
    return urlsplit(origin).netloc == (host_header or "")
