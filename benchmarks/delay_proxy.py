"""A UDP proxy on loopback that holds every DNS answer for a fixed delay, to measure how lookups
scale with concurrency when each answer is slow.

    python benchmarks/delay_proxy.py LISTEN_PORT UPSTREAM_PORT DELAY_MS SECONDS

It stops by itself after SECONDS.
"""

from __future__ import annotations

import asyncio
import sys


class Upstream(asyncio.DatagramProtocol):
    def __init__(self, proxy: Proxy, client: tuple[str, int]) -> None:
        self.proxy, self.client = proxy, client
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, _addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(self.proxy.delay, self.proxy.reply, data, self.client)
        if self.transport:
            self.transport.close()


class Proxy(asyncio.DatagramProtocol):
    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port, self.delay = upstream_port, delay
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def reply(self, data: bytes, client: tuple[str, int]) -> None:
        if self.transport:
            self.transport.sendto(data, client)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()

        async def forward() -> None:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: Upstream(self, addr), remote_addr=("127.0.0.1", self.upstream_port)
            )
            transport.sendto(data)
            loop.call_later(10, transport.close)

        loop.create_task(forward())


async def main(listen: int, upstream: int, delay_ms: float, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: Proxy(upstream, delay_ms / 1000), local_addr=("127.0.0.1", listen)
    )
    try:
        await asyncio.sleep(seconds)
    finally:
        transport.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])))
