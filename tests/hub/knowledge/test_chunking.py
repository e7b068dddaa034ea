"""Long text into passages: sentence boundaries, size bound, overlap, nothing lost."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from konak.hub.knowledge.chunking import chunk


def test_short_text_is_one_passage() -> None:
    assert chunk("  The bin goes out on Tuesday.  ", 100, 20) == ["The bin goes out on Tuesday."]


def test_passages_end_at_sentences_and_the_next_repeats_the_last_one() -> None:
    text = " ".join(f"Sentence {i} is here." for i in range(12))

    passages = chunk(text, 60, 25)

    assert all(p.endswith(".") for p in passages)
    assert passages[0] == "Sentence 0 is here. Sentence 1 is here. Sentence 2 is here."
    assert passages[1].startswith("Sentence 2 is here.")


def test_a_giant_word_is_cut_to_the_size() -> None:
    passages = chunk("x" * 250, 100, 10)

    assert [len(p) for p in passages] == [100, 100, 50]


@given(
    words=st.lists(st.text(alphabet="abcé. \n!?", min_size=1, max_size=30), min_size=1),
    size=st.integers(50, 400),
    overlap_share=st.floats(0, 0.5),
)
def test_every_passage_fits_and_every_word_survives_in_order(
    words: list[str], size: int, overlap_share: float
) -> None:
    text = " ".join(words)
    overlap = int(size * overlap_share)

    passages = chunk(text, size, overlap)

    assert all(len(p) <= size for p in passages)
    # Overlap repeats text, never drops any: the original (without white space) is a
    # subsequence of the passages'.
    seen = iter(re.sub(r"\s", "", "".join(passages)))
    assert all(char in seen for char in re.sub(r"\s", "", text))
