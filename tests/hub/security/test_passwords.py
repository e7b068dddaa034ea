from __future__ import annotations

from pathlib import Path

import pytest

from konak.hub.security.passwords import Hasher, PasswordPolicy, PasswordRejected


@pytest.mark.parametrize(
    "password",
    ["short", "password1234", "QWERTY123456", "aaaaaaaaaaaaaaaa", "alice-is-my-name-ok"],
)
def test_the_policy_refuses_short_common_repetitive_and_name_based_passwords(
    password: str,
) -> None:
    with pytest.raises(PasswordRejected) as info:
        PasswordPolicy(12).check(password, email="alice@example.com")
    assert info.value.code == "weak_password"


def test_the_policy_accepts_a_long_uncommon_password() -> None:
    PasswordPolicy(12).check("violet-harbour-engine-42", email="alice@example.com")


def test_a_deployment_list_of_common_passwords_is_refused_too(tmp_path: Path) -> None:
    common = tmp_path / "common.txt"
    common.write_text("Our-Company-2026\n\n")
    policy = PasswordPolicy.load(12, common)
    with pytest.raises(PasswordRejected):
        policy.check("our-company-2026")


def test_hashes_are_argon2id_and_verify_only_the_right_password() -> None:
    hasher = Hasher(time_cost=1, memory_cost_kib=64)
    hashed = hasher.hash("violet-harbour-engine-42")
    assert hashed.startswith("$argon2id$")
    assert hasher.verify(hashed, "violet-harbour-engine-42")
    assert not hasher.verify(hashed, "violet-harbour-engine-43")
    assert not hasher.verify("not a hash", "violet-harbour-engine-42")


def test_an_unknown_user_never_verifies_even_with_the_dummy_password() -> None:
    hasher = Hasher(time_cost=1, memory_cost_kib=64)
    assert not hasher.verify(None, "konak-dummy-password")


def test_changed_hash_parameters_ask_for_a_rehash() -> None:
    old = Hasher(time_cost=1, memory_cost_kib=64).hash("violet-harbour-engine-42")
    assert Hasher(time_cost=2, memory_cost_kib=64).needs_rehash(old)
    assert not Hasher(time_cost=1, memory_cost_kib=64).needs_rehash(old)
