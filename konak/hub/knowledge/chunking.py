"""Long text into passages of about ``size`` characters, cut at sentence boundaries (or word
boundaries inside a sentence too long for one passage), each passage starting with the end
of the one before it (``overlap`` characters at most) so no fact is cut in two."""

from __future__ import annotations

import re
from typing import Final

# A sentence ends at . ! ? (or their full-width forms) before white space, or at a blank line.
_SENTENCE: Final = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+|\n\s*\n")
_WORD: Final = re.compile(r"(?<=\s)(?=\S)")


def chunk(text: str, size: int, overlap: int) -> list[str]:
    """The passages of ``text``; one passage when it fits in ``size`` characters."""
    text = text.strip()
    if len(text) <= size:
        return [text]
    pieces = [p for s in _pieces(text, _SENTENCE) for p in _fit(s, size)]
    passages: list[str] = []
    start = 0
    while start < len(pieces):
        end, length = start, 0
        while end < len(pieces) and (end == start or length + len(pieces[end]) <= size):
            length += len(pieces[end])
            end += 1
        passages.append("".join(pieces[start:end]).strip())
        if end == len(pieces):
            break
        # The next passage starts with the last pieces of this one that fit in ``overlap``.
        back, tail = end, 0
        while back - 1 > start and tail + len(pieces[back - 1]) <= overlap:
            back -= 1
            tail += len(pieces[back])
        start = back
    return passages


def _pieces(text: str, pattern: re.Pattern[str]) -> list[str]:
    """``text`` cut after each match of ``pattern``, the separator kept with the piece."""
    out, last = [], 0
    for match in pattern.finditer(text):
        if match.end() > last:
            out.append(text[last : match.end()])
            last = match.end()
    if last < len(text):
        out.append(text[last:])
    return out


def _fit(sentence: str, size: int) -> list[str]:
    """A sentence as pieces no longer than ``size``: words, or slices of a giant word."""
    if len(sentence) <= size:
        return [sentence]
    out: list[str] = []
    for word in _pieces(sentence, _WORD):
        out.extend(word[i : i + size] for i in range(0, len(word), size))
    return out
