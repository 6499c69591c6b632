"""An HTTP/1.1 upload that reads an early reply: a server refusing a large body (413) answers
before the body is sent, then closes; a client that insists on sending all of it sees a reset
instead of the answer. This one stops sending as soon as a reply arrives, as curl does."""

from __future__ import annotations

import http.client
import json
import select
import socket
import time
from typing import Any

CHUNK = 256 * 1024


def upload(
    target: str,
    path: str,
    size: int,
    *,
    field: str = "name",
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], Any, int]:
    """POST a JSON body of `size` bytes, {"<field>": "yyyy..."}, to `target` (host:port).

    Returns (status, lower-cased headers, parsed JSON or text, bytes of the body sent)."""
    prefix, suffix = f'{{"{field}": "'.encode(), b'"}'
    filler = size - len(prefix) - len(suffix)
    assert filler >= 0
    host, port = target.rsplit(":", 1)
    lines = [f"POST {path} HTTP/1.1", f"Host: {target}", f"Content-Length: {size}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head)
        pending = [prefix]
        sent = 0
        while sent < size and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], max(0.0, deadline - time.monotonic()))
            if readable:
                break  # the reply came before the whole body: stop sending, read it
            if not writable:
                continue
            if not pending:
                left = size - sent - len(suffix)
                pending = [b"y" * min(CHUNK, left)] if left > 0 else [suffix]
            try:
                n = sock.send(pending[0])
            except OSError:
                break  # closed on us: the reply, if any, is waiting to be read
            sent += n
            pending[0] = pending[0][n:]
            if not pending[0]:
                pending.pop()
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        response = http.client.HTTPResponse(sock)
        response.begin()
        data = response.read()
        found = {k.lower(): v for k, v in response.getheaders()}
        try:
            body: Any = json.loads(data)
        except ValueError:
            body = data.decode(errors="replace")
        return response.status, found, body, sent
