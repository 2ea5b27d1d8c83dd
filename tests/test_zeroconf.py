"""Zeroconf: a server bound to 0.0.0.0 is found by browsing `_wyoming._tcp.local.`, with a real
address and its port, and withdraws its service when it stops."""

from __future__ import annotations

import asyncio
import ipaddress
import os

import pytest
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from wyoming_qwen3_tts.server.discovery import SERVICE_TYPE, Announcement, announced_addresses


class Browser:
    """Collects added/removed `_wyoming._tcp` service names."""

    def __init__(self) -> None:
        self.zeroconf = AsyncZeroconf(ip_version=IPVersion.V4Only)
        self.events: asyncio.Queue = asyncio.Queue()
        self._browser = AsyncServiceBrowser(self.zeroconf.zeroconf, SERVICE_TYPE,
                                            handlers=[self._changed])

    def _changed(self, zeroconf, service_type, name, state_change) -> None:
        self.events.put_nowait((state_change, name))

    async def wait_for(self, state: ServiceStateChange, name: str, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                change, found = await asyncio.wait_for(self.events.get(), left)
            except asyncio.TimeoutError:
                return False
            if change == state and found == name:
                return True
        return False

    async def resolve(self, name: str) -> AsyncServiceInfo:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        assert await info.async_request(self.zeroconf.zeroconf, 5000), f"cannot resolve {name}"
        return info

    async def close(self) -> None:
        await self._browser.async_cancel()
        await self.zeroconf.async_close()


async def multicast_works() -> bool:
    """Whether this machine can see its own mDNS announcements at all."""
    name = f"probe-{os.getpid()}"
    browser = Browser()
    probe = Announcement(name, "0.0.0.0", 9)
    try:
        await probe.start()
        return await browser.wait_for(ServiceStateChange.Added, f"{name}.{SERVICE_TYPE}", 10)
    except OSError:
        return False
    finally:
        await probe.stop()
        await browser.close()


def test_wildcard_binding_announces_real_addresses():
    for host in ("0.0.0.0", "::"):
        addresses = announced_addresses(host)
        assert addresses and "0.0.0.0" not in addresses
        for address in addresses:
            ipaddress.IPv4Address(address)
    assert announced_addresses("192.168.1.20") == ["192.168.1.20"]


async def test_server_is_discovered_and_withdrawn(start_server, tiny_custom_voice, tmp_path):
    browser = Browser()
    try:
        name = f"qwen3-tts-test-{os.getpid()}"
        server = start_server("--model", str(tiny_custom_voice), "--data-dir", str(tmp_path),
                              "--no-warmup", "--threads", "1", "--zeroconf", name,
                              host="0.0.0.0")
        service = f"{name}.{SERVICE_TYPE}"
        if not await browser.wait_for(ServiceStateChange.Added, service, 60):
            if not await multicast_works():
                pytest.skip("multicast DNS does not work on this machine (own announcements "
                            "are not seen)")
            raise AssertionError(f"{service} was not discovered:\n{server.log}")
        info = await browser.resolve(service)
        assert info.port == server.port
        addresses = info.parsed_addresses()
        assert addresses and "0.0.0.0" not in addresses
        assert all(not ipaddress.ip_address(a).is_unspecified for a in addresses)

        assert server.stop() == 0
        assert await browser.wait_for(ServiceStateChange.Removed, service, 10), server.log
        assert "Zeroconf: withdrew" in server.log
    finally:
        await browser.close()
