"""A fault-injecting TCP proxy for the hostile-network tests (asyncio, in its own thread).

Kernel netem is not available here (no root in CI, no ``tc``), so faults are injected in user
space, between the devices and mosquitto on loopback::

    device ──▶ FaultProxy(127.0.0.1:port) ──▶ mosquitto

What it can do, per direction and per byte chunk (a read of up to 4 KiB):

* ``latency_s`` + uniform ``jitter_s`` delay, order preserved (a chunk never overtakes another);
* ``bytes_per_s`` bandwidth cap (a token-free pacing: after writing n bytes it waits n / rate);
* :meth:`blackhole` — every open connection silently stops forwarding in both directions, its
  sockets stay open: a half-open connection as both ends see it (nothing arrives, no FIN, no RST);
* :meth:`reset` — the next chunk of every open connection is cut in the middle and both sockets
  are closed with an RST (SO_LINGER 0): a connection reset mid-packet;
* :meth:`partition` / :meth:`heal` — a blackhole for open connections *and* for new ones (they
  are accepted, then hear nothing, as through a dead link) until healed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"
CHUNK = 4096


@dataclass(eq=False)  # identity: links live in a set
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None
    dead: bool = False  # blackholed: data is read and dropped, nothing is closed
    reset_pending: bool = False
    tasks: list[asyncio.Task] = field(default_factory=list)


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Forward 127.0.0.1:``port`` to ``upstream_port`` with injectable faults (thread-safe)."""

    def __init__(self, upstream_port: int, *, seed: int = 0) -> None:
        self.upstream_port = upstream_port
        self.latency_s = 0.0
        self.jitter_s = 0.0
        self.bytes_per_s: float | None = None
        self.forwarded_bytes = 0
        self.accepted = 0
        self.resets = 0
        self._rng = random.Random(seed)
        self._partitioned = False
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, HOST, 0))
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    def close(self) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for link in list(self._links):
                self._drop(link)
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    # -- faults -----------------------------------------------------------------------------------
    def blackhole(self) -> int:
        """Silently stop every open connection (half-open); returns how many."""
        return self._call(self._blackhole())

    async def _blackhole(self) -> int:
        live = [link for link in self._links if not link.dead]
        for link in live:
            link.dead = True
        return len(live)

    def reset(self) -> None:
        """Cut every open connection mid-chunk with an RST (at its next chunk)."""

        async def mark() -> None:
            for link in self._links:
                link.reset_pending = True

        self._call(mark())

    def partition(self) -> None:
        """No traffic gets through, on open or new connections, until :meth:`heal`."""
        self._partitioned = True
        self.blackhole()

    def heal(self) -> None:
        self._partitioned = False

    @property
    def open_links(self) -> int:
        return sum(1 for link in self._links if not link.dead)

    # -- forwarding -------------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._partitioned:  # accepted, then silence: the client's CONNECT goes nowhere
            link = _Link(writer, None, dead=True)
            self._links.add(link)
            with contextlib.suppress(Exception):
                while await reader.read(CHUNK):
                    pass
            self._drop(link)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.upstream_port)
        except OSError:
            _abort_with_rst(writer)
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.ensure_future(self._pump(link, reader, up_writer)),
            asyncio.ensure_future(self._pump(link, up_reader, writer)),
        ]

    def _drop(self, link: _Link) -> None:
        self._links.discard(link)
        for writer in (link.client, link.upstream):
            if writer is not None:
                writer.transport.abort()
        for task in link.tasks:
            task.cancel()

    async def _pump(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Read chunks as they come; deliver each after its delay, in order, paced."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        delivery = asyncio.ensure_future(self._deliver(link, queue, writer))
        last_due = 0.0
        try:
            while True:
                data = await reader.read(CHUNK)
                now = time.monotonic()
                due = max(last_due, now + self.latency_s + self._rng.uniform(0, self.jitter_s))
                last_due = due
                await queue.put((due, data))
                if not data:
                    break
        except (ConnectionError, OSError):
            await queue.put((last_due, b""))
        await delivery

    async def _deliver(
        self, link: _Link, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                due, data = await queue.get()
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if link.dead:
                    if not data:
                        return  # the sender gave up; a dead link tells the other side nothing
                    continue
                if not data:
                    writer.close()  # a clean FIN passes through
                    self._drop(link)
                    return
                if link.reset_pending:
                    writer.write(data[: max(1, len(data) // 2)])
                    with contextlib.suppress(ConnectionError, OSError):
                        await writer.drain()
                    self.resets += 1
                    self._links.discard(link)
                    for end in (link.client, link.upstream):
                        if end is not None:
                            _abort_with_rst(end)
                    return
                writer.write(data)
                self.forwarded_bytes += len(data)
                await writer.drain()
                if self.bytes_per_s:
                    await asyncio.sleep(len(data) / self.bytes_per_s)
        except (ConnectionError, OSError):
            self._drop(link)
        except asyncio.CancelledError:
            pass
