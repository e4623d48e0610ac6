"""Headers a proxy must not forward (RFC 9110 §7.6.1 hop-by-hop, plus ``host``, which is per hop too)."""

from __future__ import annotations

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
