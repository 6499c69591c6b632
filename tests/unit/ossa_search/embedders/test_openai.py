"""The OpenAI-compatible embedder against a tiny local HTTP server speaking `POST /v1/embeddings`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from ossa_runtime.errors import Unavailable
from ossa_search.embedders.openai import OpenAIEmbedder


class Fake:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any], str]] = []
        self.status = 200
        self.dim = 4
        self.scramble = False


def _vector(text: str, dim: int) -> list[float]:
    return [float(len(text)), 2.0, 0.0, 1.0][:dim] + [0.5] * max(0, dim - 4)


@pytest.fixture
def server() -> Iterator[tuple[str, Fake]]:
    fake = Fake()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append((self.path, body, self.headers.get("Authorization", "")))
            if fake.status != 200:
                payload = b'{"error": {"message": "quota exceeded"}}'
            else:
                data = [
                    {"object": "embedding", "index": i, "embedding": _vector(t, fake.dim)}
                    for i, t in enumerate(body["input"])
                ]
                if fake.scramble:
                    data.reverse()
                payload = json.dumps({"object": "list", "data": data, "model": body["model"]}).encode()
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", fake
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


async def test_posts_batches_and_returns_normalised_rows_in_order(server: tuple[str, Fake]) -> None:
    url, fake = server
    fake.scramble = True  # servers may return items in any order: "index" says which is which
    embedder = OpenAIEmbedder(url + "/", "my-model", api_key="sk-test", dim=4, batch=2)
    try:
        out = await embedder.embed(["a", "bbb", "cc"], query=True)
    finally:
        await embedder.close()
    assert out.shape == (3, 4) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)
    expected = np.array([_vector(t, 4) for t in ["a", "bbb", "cc"]], dtype=np.float32)
    assert np.allclose(out, expected / np.linalg.norm(expected, axis=1, keepdims=True))
    assert [(path, body["input"]) for path, body, _ in fake.requests] == [
        ("/v1/embeddings", ["a", "bbb"]),
        ("/v1/embeddings", ["cc"]),
    ]
    assert all(auth == "Bearer sk-test" for _, _, auth in fake.requests)
    assert all(body["model"] == "my-model" and "dimensions" not in body for _, body, _ in fake.requests)


async def test_shortenable_models_are_asked_for_the_dimension(server: tuple[str, Fake]) -> None:
    url, fake = server
    fake.dim = 768
    embedder = OpenAIEmbedder(url, "text-embedding-3-small", dim=768)
    try:
        assert (await embedder.embed(["x"])).shape == (1, 768)
    finally:
        await embedder.close()
    assert fake.requests[0][1]["dimensions"] == 768 and fake.requests[0][2] == ""


async def test_failures_are_unavailable_with_the_reason(server: tuple[str, Fake]) -> None:
    url, fake = server
    embedder = OpenAIEmbedder(url, "m", dim=4)
    try:
        fake.status = 429
        with pytest.raises(Unavailable, match=r"HTTP 429.*quota exceeded"):
            await embedder.embed(["x"])
        fake.status, fake.dim = 200, 3
        with pytest.raises(Unavailable, match="expected 1 vectors of 4 dimensions"):
            await embedder.embed(["x"])
    finally:
        await embedder.close()
    closed = OpenAIEmbedder("http://127.0.0.1:9", "m", dim=4)  # nothing listens on the discard port
    try:
        with pytest.raises(Unavailable, match="embeddings endpoint"):
            await closed.embed(["x"])
    finally:
        await closed.close()
