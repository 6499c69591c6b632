"""ossa_search.stores.base: the checks every store runs on what it is given."""

from __future__ import annotations

import numpy as np
import pytest

from ossa_runtime.errors import InvalidArgument
from ossa_search.stores.base import COLLECTIONS, check_vector

SPEC = COLLECTIONS["knowledge"]


def vector(*values: float) -> np.ndarray:
    out = np.zeros(SPEC.dim, dtype=np.float32)
    out[: len(values)] = values
    return out


@pytest.mark.parametrize(
    "given",
    [
        vector(0.6, 0.8),
        vector(1e-30),  # its square underflows to 0 in float32: still a non-zero vector
        vector(1e30, 1.0),  # its square overflows float32: still finite values
        vector(-3.0, 0.0, 4.0),
    ],
)
def test_a_valid_vector_comes_back_as_floats(given: np.ndarray) -> None:
    values = check_vector(SPEC, given)
    assert len(values) == SPEC.dim and all(isinstance(v, float) for v in values)
    assert values == given.tolist()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (vector(), "must not be all zeros"),
        (vector(0.5, np.nan), "must hold finite numbers"),
        (vector(np.inf, 1.0), "must hold finite numbers"),
        (vector(-np.inf), "must hold finite numbers"),
        (np.ones(SPEC.dim - 1, dtype=np.float32), f"must have {SPEC.dim} dimensions"),
        (np.ones((2, SPEC.dim), dtype=np.float32), f"must have {SPEC.dim} dimensions"),
    ],
)
def test_a_bad_vector_is_refused_naming_the_field(given: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as err:
        check_vector(SPEC, given, name="points[3].vector")
    assert err.value.violations[0].field == "points[3].vector"
