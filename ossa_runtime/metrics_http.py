"""A service's `/metrics` endpoint: plain HTTP/1.1 served on the service's own event loop.

No thread: the sampled gauges (ossa_runtime.metrics.SampledGauges) await PostgreSQL and Redis
with the service's own pool and client right before the exposition is rendered. One request per
connection (`Connection: close`); anything but `GET|HEAD /metrics` gets 404/405. `stop()` closes
the listener and the connections in flight, then waits for samples in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ossa_runtime.metrics import SampledGauges, exposition_registry, render

log = logging.getLogger("ossa.metrics")
READ_TIMEOUT = 10.0
MAX_HEADERS = 100
PATH = "/metrics"
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 431: "Too Many Headers"}


class MetricsEndpoint:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = exposition_registry()
        self.gauges: list[SampledGauges] = []
        self.address: tuple[str, int] | None = None
        self.port: int | None = None  # the bound port once started
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def add_gauges(self, gauges: SampledGauges) -> None:
        self.registry.register(gauges)
        self.gauges.append(gauges)

    def listen(self, host: str, port: int) -> None:
        """Serve on host:port (0: a free port) once started; without this the endpoint stays off."""
        self.address = (host, port)

    @property
    def where(self) -> str:
        host, port = self.address or ("", 0)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def start(self) -> None:
        """Bind and serve (raises OSError when the port is busy); a no-op without `listen()`."""
        if self.address is None or self._server is not None:
            return
        host, port = self.address
        self._server = await asyncio.start_server(self._handle, host, port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("serving metrics", extra={"metadata": {"address": self.where, "port": self.port, "path": PATH}})

    async def stop(self) -> None:
        """Idempotent: stop listening, end connections in flight, wait for samples in flight."""
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        for gauges in self.gauges:
            await gauges.close()

    async def scrape(self, accept: str = "") -> tuple[bytes, str]:
        """Sample the gauges, then render everything (what a GET /metrics answers)."""
        await asyncio.gather(*(g.refresh() for g in self.gauges))
        return render(self.registry, accept)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                status, content_type, body, head = await self._respond(reader)
            reason = _REASONS.get(status, "Error")
            lines = [
                f"HTTP/1.1 {status} {reason}",
                f"Content-Type: {content_type}",
                f"Content-Length: {len(body)}",
                "Connection: close",
            ]
            if status == 405:
                lines.append("Allow: GET, HEAD")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            if not head:
                writer.write(body)
            await writer.drain()
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            pass  # the client went away, was too slow or sent garbage: just close
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes, bool]:
        request_line = (await reader.readline()).decode("latin-1")
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            if len(headers) >= MAX_HEADERS:
                return _text(431, "too many headers\n")
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _text(400, "bad request\n")
        method, target = parts[0], parts[1]
        if target.split("?", 1)[0] != PATH:
            return _text(404, f"not found; metrics are at {PATH}\n")
        if method not in ("GET", "HEAD"):
            return _text(405, "use GET\n")
        body, content_type = await self.scrape(headers.get("accept", ""))
        return 200, content_type, body, method == "HEAD"


def _text(status: int, message: str) -> tuple[int, str, bytes, bool]:
    return status, "text/plain; charset=utf-8", message.encode(), False
