from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from konak.hub.database import connect
from konak.provisioning.claims import ClaimError, Claims, Redeemed, device_id_for


@pytest.fixture
def store(tmp_path: Path) -> Claims:
    db: sqlite3.Connection = connect(tmp_path / "hub.sqlite3")
    return Claims(db)


def test_a_claim_token_is_redeemed_once_for_its_tenant(store: Claims) -> None:
    claim = store.mint("acme", "op", 60)
    assert claim.token.startswith("kc_")
    assert store.redeem(claim.token, "kitchen") == Redeemed("acme", for_device=False)
    with pytest.raises(ClaimError) as info:
        store.redeem(claim.token, "kitchen")
    assert info.value.code == "claim_invalid"


def test_an_expired_claim_token_is_refused(store: Claims) -> None:
    claim = store.mint("acme", "op", -1)
    with pytest.raises(ClaimError):
        store.redeem(claim.token, "kitchen")


def test_an_unknown_claim_token_is_refused(store: Claims) -> None:
    with pytest.raises(ClaimError):
        store.redeem("kc_made-up", "kitchen")


def test_a_released_claim_token_can_be_used_again(store: Claims) -> None:
    claim = store.mint("acme", "op", 60)
    store.redeem(claim.token, "kitchen")
    store.release(claim.token)
    assert store.redeem(claim.token, "kitchen").tenant_id == "acme"


def test_only_the_hash_of_a_claim_token_is_stored(store: Claims, tmp_path: Path) -> None:
    claim = store.mint("acme", "op", 60)
    assert claim.token.encode() not in (tmp_path / "hub.sqlite3").read_bytes()
    assert claim.token.encode() not in (tmp_path / "hub.sqlite3-wal").read_bytes()


def test_enrolled_devices_are_listed_per_tenant_and_revoked_once(store: Claims) -> None:
    store.record("acme", "kitchen", "Kitchen", "kitchen", "acme.kitchen")
    store.record("globex", "kitchen", "Kitchen", None, "globex.kitchen")
    assert [d["device"] for d in store.devices("acme")] == ["kitchen"]
    assert store.count_active("acme") == 1
    assert not store.mark_revoked("acme", "hall")
    assert store.mark_revoked("acme", "kitchen")
    assert not store.mark_revoked("acme", "kitchen")
    assert store.devices("acme")[0]["revoked"]
    assert store.is_active("globex", "kitchen")


@pytest.mark.parametrize(
    ("name", "device"),
    [("Kitchen Pi", "kitchen-pi"), ("  Büro 2 ", "b-ro-2"), ("a/b#c+d", "a-b-c-d")],
)
def test_a_device_id_is_a_topic_safe_slug_of_its_name(name: str, device: str) -> None:
    assert device_id_for(name) == device


@pytest.mark.parametrize("name", ["", "   ", "###", "ü"])
def test_a_name_without_usable_characters_is_refused(name: str) -> None:
    with pytest.raises(ClaimError) as info:
        device_id_for(name)
    assert info.value.code == "bad_device_name"


def test_a_claim_token_minted_for_a_device_enrols_only_that_device(store: Claims) -> None:
    claim = store.mint("acme", "op", 60, device_id="kitchen")
    with pytest.raises(ClaimError) as info:
        store.redeem(claim.token, "hall")
    assert info.value.code == "claim_invalid"
    assert store.redeem(claim.token, "kitchen") == Redeemed("acme", for_device=True)
