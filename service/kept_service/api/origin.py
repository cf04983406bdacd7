"""Where a request comes from, for the keyless access of the built-in page.

The client's address alone is not enough: a browser on the same machine may be made to
send a request to 127.0.0.1 by any web page, under that page's own name (DNS
rebinding: `attacker.example` resolving to 127.0.0.1). So keyless access also asks that
the Host header names a loopback host and that the browser does not say the request
is cross-site.
"""

from __future__ import annotations

from starlette.requests import Request

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# `none`: the user typed the address or opened a bookmark.
_SAME_SITE = frozenset({"same-origin", "none"})


def host_name(host_header: str) -> str:
    """The host of a Host header without its port: `[::1]:8787` → `::1`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def loopback_request(request: Request) -> bool:
    """From the loopback interface, to a loopback name."""
    client = request.client.host if request.client else ""
    return client in LOOPBACK_HOSTS and host_name(request.headers.get("host", "")) in LOOPBACK_HOSTS


def same_origin(request: Request) -> bool:
    """No sign of a cross-site request: `Sec-Fetch-Site` and `Origin`, when the browser
    sends them, name the server itself."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.lower() not in _SAME_SITE:
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin.lower() == own.lower()
