"""The reply cache: a repeated reply is not synthesised again; the cache stays bounded."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from konak.daemon.audio import Samples
from konak.daemon.tts import ReplyCache


class CountingVoice:
    def __init__(self, samples_per_sentence: int = 1000) -> None:
        self.calls: list[str] = []
        self.size = samples_per_sentence

    def sentences(self, text: str) -> Iterator[tuple[Samples, int]]:
        self.calls.append(text)
        for i, _sentence in enumerate(text.split(". ")):
            yield np.full(self.size, i, np.int16), 22_050


def test_a_repeated_reply_comes_from_the_cache_with_the_same_audio() -> None:
    voice = CountingVoice()
    cache = ReplyCache(voice)  # type: ignore[arg-type]
    first = list(cache.sentences("Turned on the light. It is bright"))
    again = list(cache.sentences("Turned on the light. It is bright"))
    assert voice.calls == ["Turned on the light. It is bright"]
    assert len(again) == len(first) == 2
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert (cache.hits, cache.misses) == (1, 1)


def test_the_cache_forgets_the_least_recently_used_reply_past_its_size() -> None:
    voice = CountingVoice(samples_per_sentence=1000)  # 2000 bytes a reply
    cache = ReplyCache(voice, max_bytes=8000)  # type: ignore[arg-type]
    for text in ("a", "b", "c", "d"):
        list(cache.sentences(text))
    list(cache.sentences("a"))  # a is now the most recently used
    list(cache.sentences("e"))  # pushes out b
    voice.calls.clear()
    for text in ("a", "c", "d", "e", "b"):
        list(cache.sentences(text))
    assert voice.calls == ["b"]


def test_a_reply_interrupted_half_way_is_not_cached() -> None:
    voice = CountingVoice()
    cache = ReplyCache(voice)  # type: ignore[arg-type]
    stream = cache.sentences("One. Two. Three")
    next(stream)
    stream.close()  # barge-in: playback stopped after the first sentence
    list(cache.sentences("One. Two. Three"))
    assert voice.calls == ["One. Two. Three", "One. Two. Three"]
