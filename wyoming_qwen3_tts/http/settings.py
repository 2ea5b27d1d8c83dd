"""The HTTP front door's options."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class HttpSettings:
    """The HTTP front door's options (cli.py: --http-api-key, --http-trusted-proxy)."""

    api_key: str | None = None
    trusted_proxies: frozenset[str] = frozenset()
    max_connections: int = 16
    write_grace_seconds: float = 30.0  # a client may stop reading this long, then is dropped
    configured_voice: str | None = None  # --voice

    def describe_access(self) -> str:
        parts = []
        if self.trusted_proxies:
            parts.append("no key needed from " + ", ".join(sorted(self.trusted_proxies)))
        if self.api_key:
            parts.append("API key required" + (" from elsewhere" if self.trusted_proxies
                                                else ""))
        elif self.trusted_proxies:
            parts.append("other addresses refused (no API key set)")
        else:
            parts.append("open: no API key set")
        return "; ".join(parts)
