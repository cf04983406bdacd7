"""How encoded events leave the process: HTTP (:mod:`.http`) or Kafka (:mod:`.kafka`).

:func:`make_transport` picks one by the endpoint's URL scheme; an app may pass its own
:class:`Transport` to the client instead.
"""

from __future__ import annotations

import logging
import os

from .base import Outcome, Rejection, SendResult, Transport
from .http import HttpTransport

__all__ = [
    "HttpTransport",
    "Outcome",
    "Rejection",
    "SendResult",
    "Transport",
    "default_endpoint",
    "endpoint_scheme",
    "make_transport",
]

logger = logging.getLogger("kept")


def default_endpoint() -> str | None:
    """``KEPT_ENDPOINT``, else ``KEPT_KAFKA`` (bootstrap servers, as the server reads them)
    as a kafka:// endpoint."""
    endpoint = os.environ.get("KEPT_ENDPOINT")
    if endpoint:
        return endpoint
    servers = os.environ.get("KEPT_KAFKA", "").strip()
    if not servers:
        return None
    return servers if "://" in servers else "kafka://" + servers


def endpoint_scheme(endpoint: str | None) -> str:
    """The lower-case URL scheme of ``endpoint`` ("" when it has none)."""
    if not endpoint or "://" not in endpoint:
        return ""
    return endpoint.strip().partition("://")[0].lower()


def make_transport(
    endpoint: str | None, api_key: str | None, timeout: float, *, project: str | None = None
) -> Transport | None:
    """The transport for ``endpoint``'s URL scheme, or None (logged) when there is none."""
    if endpoint is None or not endpoint.strip():
        return None
    scheme = endpoint_scheme(endpoint)
    try:
        if scheme in ("http", "https"):
            return HttpTransport(endpoint, api_key, timeout)
        if scheme == "kafka":
            if project is None:
                logger.error(
                    "kept: a kafka:// endpoint needs a project (pass project= or set "
                    "KEPT_PROJECT); events will be dropped"
                )
                return None
            from .kafka import KafkaTransport

            return KafkaTransport.from_endpoint(endpoint, timeout)
    except ValueError as exc:
        # The URL itself is not logged: it may carry credentials.
        logger.error("kept: invalid endpoint (%s); events will be dropped", exc)
        return None
    except ImportError:
        logger.error(
            "kept: the kafka:// endpoint needs kafka-python: pip install 'kept[kafka]'; "
            "events will be dropped"
        )
        return None
    logger.error(
        "kept: unsupported endpoint scheme %r (expected http://, https:// or kafka://); "
        "events will be dropped",
        scheme[:20],
    )
    return None
