"""Split long text into overlapping chunks for the knowledge base, on paragraph and sentence bounds.

Paragraphs (blank-line separated) are kept whole when they fit; longer ones are split into
sentences, and sentences longer than `max_chars` at word boundaries (or hard, for a single huge
word). Pieces are packed greedily into chunks of at most `max_chars` characters; each chunk after
the first starts with up to `overlap` characters (whole words) from the end of the previous one,
so a fact cut by a boundary is still found whole in one chunk.
"""

from __future__ import annotations

import re

from ossa_runtime.errors import InvalidArgument

_PARAGRAPHS = re.compile(r"\n\s*\n")
# A sentence ends with . ! ? (or their CJK forms), optional closing quotes/brackets, then space.
_SENTENCES = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])[\"'\u201d\u2019)\]]*\s+")


def chunk(text: str, *, max_chars: int = 1000, overlap: int = 100) -> list[str]:
    if not isinstance(text, str):
        raise InvalidArgument("text", "must be a string")
    if max_chars < 1:
        raise InvalidArgument("max_chars", f"must be positive, got {max_chars}")
    if not 0 <= overlap < max_chars:
        raise InvalidArgument("overlap", f"must be 0 or more and less than max_chars ({max_chars}), got {overlap}")
    pieces = [piece for para in _PARAGRAPHS.split(text) for piece in _split(_squash(para), max_chars)]
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 2 + len(piece) <= max_chars:
            current += "\n\n" + piece
            continue
        if current:
            chunks.append(current.strip())
            tail = _tail(current, min(overlap, max_chars - len(piece) - 1))
            current = (tail + " " if tail else "") + piece
        else:
            current = piece
    if current.strip():
        chunks.append(current.strip())
    return chunks


def _squash(paragraph: str) -> str:
    """A paragraph's whitespace runs collapsed to single spaces."""
    return " ".join(paragraph.split())


def _split(paragraph: str, max_chars: int) -> list[str]:
    if not paragraph:
        return []
    if len(paragraph) <= max_chars:
        return [paragraph]
    out: list[str] = []
    for sentence in _SENTENCES.split(paragraph):
        if len(sentence) <= max_chars:
            out.append(sentence)
        else:
            out.extend(_split_words(sentence, max_chars))
    return _pack(out, max_chars, " ")


def _split_words(sentence: str, max_chars: int) -> list[str]:
    out: list[str] = []
    for word in sentence.split(" "):
        out.extend(word[i : i + max_chars] for i in range(0, len(word), max_chars))
    return _pack(out, max_chars, " ")


def _pack(parts: list[str], max_chars: int, joiner: str) -> list[str]:
    """Consecutive parts joined while they fit in `max_chars`."""
    out: list[str] = []
    for part in parts:
        if out and len(out[-1]) + len(joiner) + len(part) <= max_chars:
            out[-1] += joiner + part
        else:
            out.append(part)
    return out


def _tail(text: str, size: int) -> str:
    """At most `size` characters from the end of `text`, starting at a word."""
    if size <= 0:
        return ""
    tail = text[-size:]
    if len(text) > size and not text[-size - 1].isspace():
        cut = tail.find(" ")
        tail = tail[cut + 1 :] if cut >= 0 else ""
    return tail.strip()
