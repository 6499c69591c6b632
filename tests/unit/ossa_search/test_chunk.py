"""chunk(): paragraph- and sentence-aware splitting with overlap."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ossa_runtime.errors import InvalidArgument
from ossa_search.chunk import chunk


def test_short_text_is_one_chunk_and_blank_text_none() -> None:
    assert chunk("  Hello   world.\n") == ["Hello world."]
    assert chunk("") == [] and chunk(" \n\n \t") == []


def test_paragraphs_are_kept_whole_when_they_fit() -> None:
    paras = ["First paragraph about agents.", "Second one about workflows.", "Third about knowledge."]
    text = "\n\n".join(paras)
    assert chunk(text, max_chars=1000) == [text]
    out = chunk(text, max_chars=60, overlap=0)
    assert out == [paras[0] + "\n\n" + paras[1], paras[2]]


def test_long_paragraphs_split_at_sentences_with_word_overlap() -> None:
    sentences = [f"Sentence number {i} talks about topic {i}." for i in range(30)]
    out = chunk(" ".join(sentences), max_chars=200, overlap=50)
    assert len(out) > 3 and all(len(c) <= 200 for c in out)
    for prev, nxt in itertools.pairwise(out):
        first_word = nxt.split(" ")[0]
        assert first_word in prev[-60:]  # the next chunk starts with words from the end of the previous
    # Apart from the overlap, chunks end on sentence boundaries.
    assert all(c.endswith(".") for c in out)
    for s in sentences:
        assert any(s in c for c in out)


def test_huge_words_are_cut_hard() -> None:
    out = chunk("x" * 250, max_chars=100, overlap=10)
    assert [len(c) for c in out] == [100, 100, 50]


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(InvalidArgument, match="max_chars"):
        chunk("x", max_chars=0)
    with pytest.raises(InvalidArgument, match="overlap"):
        chunk("x", max_chars=10, overlap=10)
    with pytest.raises(InvalidArgument, match="text"):
        chunk(None)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab .!?\n"), max_size=600),
    st.integers(min_value=5, max_value=120),
    st.integers(min_value=0, max_value=60),
)
def test_chunks_fit_and_cover_every_word(text: str, max_chars: int, overlap: int) -> None:
    overlap = min(overlap, max_chars - 1)
    out = chunk(text, max_chars=max_chars, overlap=overlap)
    assert all(0 < len(c) <= max_chars for c in out)
    words = [w for w in text.split() if len(w) <= max_chars]
    joined = " ".join(out)
    assert all(w in joined for w in words)
