"""The semantic cache: per tenant, near questions hit, TTL, invalidation on a write."""

from __future__ import annotations

import numpy as np

from konak.hub.knowledge.cache import SemanticCache

from .voice_fakes import fake_vector


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


WIFI = fake_vector("what is the guest wifi password")


def _cache(clock: Clock | None = None, **kw: int) -> SemanticCache:
    return SemanticCache(clock or Clock(), **kw)


def test_a_near_question_gets_the_cached_reply_and_a_different_one_does_not() -> None:
    cache = _cache()
    cache.put("acme", WIFI, "It is blue-otter-42.", 60, cache.generation("acme"))

    # cosine 0.926
    assert cache.get("acme", fake_vector("what is the guest wifi password please"), 0.93) is None
    assert cache.get("acme", fake_vector("what is the guest wifi password please"), 0.92) == (
        "It is blue-otter-42."
    )
    assert cache.get("acme", WIFI, 0.99) == "It is blue-otter-42."
    assert cache.get("acme", fake_vector("when is the bin collected"), 0.8) is None


def test_a_reply_is_never_given_to_another_tenant() -> None:
    cache = _cache()
    cache.put("acme", WIFI, "It is blue-otter-42.", 60, cache.generation("acme"))

    assert cache.get("globex", WIFI, 0.5) is None
    assert cache.size("globex") == 0


def test_a_reply_expires_after_its_ttl() -> None:
    clock = Clock()
    cache = _cache(clock)
    cache.put("acme", WIFI, "It is blue-otter-42.", 60, cache.generation("acme"))

    clock.now += 59.9
    assert cache.get("acme", WIFI, 0.9) == "It is blue-otter-42."
    clock.now += 0.2
    assert cache.get("acme", WIFI, 0.9) is None
    assert cache.size("acme") == 0


def test_a_write_drops_the_tenants_replies_and_only_theirs() -> None:
    cache = _cache()
    cache.put("acme", WIFI, "a", 60, cache.generation("acme"))
    cache.put("globex", WIFI, "g", 60, cache.generation("globex"))

    cache.invalidate("acme", "notes")

    assert cache.get("acme", WIFI, 0.9) is None
    assert cache.get("globex", WIFI, 0.9) == "g"


def test_an_answer_found_before_a_write_is_not_cached_after_it() -> None:
    cache = _cache()
    before = cache.generation("acme")
    cache.invalidate("acme", "notes")

    assert not cache.put("acme", WIFI, "stale", 60, before)
    assert cache.get("acme", WIFI, 0.5) is None


def test_a_zero_ttl_caches_nothing_and_the_oldest_go_beyond_the_bound() -> None:
    cache = _cache(max_entries=2)
    assert not cache.put("acme", WIFI, "x", 0, 0)
    for n in range(3):
        vec = np.zeros(384, dtype=np.float32)
        vec[n] = 1.0
        cache.put("acme", vec, f"reply {n}", 60, 0)

    assert cache.size("acme") == 2
    first = np.zeros(384, dtype=np.float32)
    first[0] = 1.0
    assert cache.get("acme", first, 0.9) is None
