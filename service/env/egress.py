"""The egress proxy: the only way out of a fetch box.

One internal network (`docker network create --internal`: no route, no DNS out) per service
instance, and one squid box (sandbox-images/proxy) attached to it and to the default bridge. squid
refuses loopback, RFC 1918, CGNAT, IPv6 ULA, link-local / metadata and other special destinations
AFTER resolving the name, so a registry name pointed at an inside address is refused as well. Made
on the first build, removed at shutdown.
"""

from __future__ import annotations

import asyncio

from service.sandbox.backend import SandboxBackend
from service.settings import Limits

PROXY_PORT = 3128
PROXY_LIMITS = Limits(memory_mb=256, cpus=1.0, pids=128, disk_mb=16, tool_timeout_s=1)


class Egress:
    def __init__(self, backend: SandboxBackend, *, instance: str, labels: dict[str, str]):
        self.backend = backend
        self.network = f"dockyard-env-net-{instance}"
        self.proxy_name = f"dockyard-env-proxy-{instance}"
        self.labels = labels
        self._lock = asyncio.Lock()

    @property
    def proxy_url(self) -> str:
        return f"http://{self.proxy_name}:{PROXY_PORT}"

    async def ensure(self, proxy_image: str) -> None:
        """The network and a running proxy (idempotent; a proxy that died is started again)."""
        async with self._lock:
            await self.backend.env_network(self.network, self.labels)
            await self.backend.env_proxy(
                self.proxy_name, proxy_image, self.network, self.labels, PROXY_LIMITS
            )

    async def close(self, label: str) -> None:
        await self.backend.env_cleanup(label, network=self.network)
