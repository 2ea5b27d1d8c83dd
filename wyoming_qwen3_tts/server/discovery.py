"""Zeroconf (mDNS) announcement as a `_wyoming._tcp.local.` service, for Home Assistant.

Home Assistant skips a discovered service whose address is 0.0.0.0, so a server bound to all
interfaces (0.0.0.0 or ::) announces the machine's real addresses instead: first the one the
kernel would use towards the mDNS group (the LAN interface), then any other non-loopback IPv4
address.  A server bound to one address announces that address.  The service is withdrawn
(mDNS goodbye) on shutdown.
"""

from __future__ import annotations

import ipaddress
import logging
import socket

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
MDNS_GROUP = "224.0.0.251"
WILDCARDS = ("", "0.0.0.0", "::")


def _route_address() -> str | None:
    """The local IPv4 address used to reach the mDNS group (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((MDNS_GROUP, 5353))
            address = sock.getsockname()[0]
    except OSError:
        return None
    return None if address in ("0.0.0.0", "") else address


def _interface_addresses() -> list[str]:
    import ifaddr  # a dependency of zeroconf

    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):  # IPv4 (IPv6 entries are tuples)
                address = ipaddress.ip_address(ip.ip)
                if not (address.is_loopback or address.is_link_local or address.is_unspecified):
                    found.append(ip.ip)
    return found


def announced_addresses(host: str) -> list[str]:
    """The addresses to announce for a server bound to `host`."""
    if host not in WILDCARDS:
        return [host]
    addresses = [a for a in [_route_address(), *_interface_addresses()] if a]
    addresses = list(dict.fromkeys(addresses))
    return addresses or ["127.0.0.1"]


class Announcement:
    """One registered `_wyoming._tcp` service; `start` then `stop`."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name = name
        self.port = port
        self.addresses = announced_addresses(host)
        self._zeroconf: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None

    async def start(self) -> None:
        self._zeroconf = AsyncZeroconf(ip_version=IPVersion.V4Only)
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self.name}.{SERVICE_TYPE}",
            port=self.port,
            parsed_addresses=self.addresses,
            server=f"{self.name}.local.",
        )
        announced = await self._zeroconf.async_register_service(self._info,
                                                                 allow_name_change=True)
        await announced
        _LOGGER.info("Zeroconf: announced %s at %s port %d", self._info.name,
                     ", ".join(self.addresses), self.port)

    async def stop(self) -> None:
        if self._zeroconf is None:
            return
        try:
            if self._info is not None:
                withdrawn = await self._zeroconf.async_unregister_service(self._info)
                await withdrawn
                _LOGGER.info("Zeroconf: withdrew %s", self._info.name)
        finally:
            await self._zeroconf.async_close()
            self._zeroconf = None
