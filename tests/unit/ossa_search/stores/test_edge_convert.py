"""The search parameters qdrant-edge gets: HNSW breadth per kind of search, exact searches untouched."""

from __future__ import annotations

from ossa_search.stores.edge_convert import HNSW_EF, HNSW_EF_FILTERED, search_params


def test_an_unfiltered_search_walks_the_graph_at_the_default_breadth_over_the_int8_copy() -> None:
    params = search_params(exact=False, filtered=False)
    assert (params.hnsw_ef, params.exact) == (HNSW_EF, False)
    assert params.quantization is not None
    assert (params.quantization.ignore, params.quantization.rescore, params.quantization.oversampling) == (
        False,
        True,
        2.0,
    )


def test_a_filtered_search_goes_wider_because_the_filter_rejects_candidates() -> None:
    assert search_params(exact=False, filtered=True).hnsw_ef == HNSW_EF_FILTERED
    assert HNSW_EF_FILTERED > HNSW_EF


def test_an_explicit_breadth_overrides_both() -> None:
    assert search_params(exact=False, filtered=False, hnsw_ef=200).hnsw_ef == 200
    assert search_params(exact=False, filtered=True, hnsw_ef=32).hnsw_ef == 32


def test_an_exact_search_ignores_the_breadth_and_the_quantized_copy() -> None:
    params = search_params(exact=True, filtered=True, hnsw_ef=200)
    assert params.exact is True
    assert params.hnsw_ef is None
    assert params.quantization is not None and params.quantization.ignore is True
