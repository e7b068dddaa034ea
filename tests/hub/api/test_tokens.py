from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from konak.hub.errors import ConfigError
from konak.hub.security.settings import SigningKey
from tests.hub.api.conftest import SECRET, Api, ApiFactory

EMAIL = "admin@acme.test"


async def me_status(api: Api, token: str) -> tuple[int, dict[str, Any]]:
    resp = await api.client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    return resp.status, await resp.json()


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


async def test_a_login_gives_a_short_lived_access_token_with_a_key_id_and_me_works(
    api: Api,
) -> None:
    tokens = await api.login(EMAIL)
    assert jwt.get_unverified_header(tokens["access_token"])["kid"] == "k1"
    claims = claims_of(tokens["access_token"])
    assert claims["exp"] - claims["iat"] == 300
    status, me = await me_status(api, tokens["access_token"])
    assert status == 200
    assert me["email"] == EMAIL
    assert me["roles"] == {"acme": "admin"}


async def test_an_expired_access_token_is_refused(api: Api) -> None:
    claims = claims_of((await api.login(EMAIL))["access_token"])
    claims.update(iat=int(time.time()) - 3600, exp=int(time.time()) - 60)
    token = jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "k1"})
    status, body = await me_status(api, token)
    assert (status, body["error"]["code"]) == (401, "token_expired")


async def test_a_tampered_access_token_is_refused(api: Api) -> None:
    token = (await api.login("readonly@acme.test"))["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = claims_of((await api.login("root@konak.test"))["access_token"])["sub"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    status, body = await me_status(api, f"{header}.{forged}.{signature}")
    assert (status, body["error"]["code"]) == (401, "token_invalid")


async def test_a_token_signed_with_another_key_under_our_kid_is_refused(api: Api) -> None:
    claims = claims_of((await api.login(EMAIL))["access_token"])
    token = jwt.encode(claims, "x" * 40, algorithm="HS256", headers={"kid": "k1"})
    status, body = await me_status(api, token)
    assert (status, body["error"]["code"]) == (401, "token_invalid")


async def test_a_token_with_an_unknown_kid_is_refused(api: Api) -> None:
    claims = claims_of((await api.login(EMAIL))["access_token"])
    token = jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "k9"})
    assert (await me_status(api, token))[0] == 401


async def test_an_unsigned_alg_none_token_is_refused(api: Api) -> None:
    claims = claims_of((await api.login(EMAIL))["access_token"])
    token = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})
    status, body = await me_status(api, token)
    assert (status, body["error"]["code"]) == (401, "token_invalid")


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic abc", "Bearer not.a.jwt"])
async def test_missing_or_malformed_authorization_is_a_401(api: Api, header: str) -> None:
    resp = await api.client.get("/api/auth/me", headers={"Authorization": header})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_after_logout_the_access_and_refresh_tokens_are_revoked(api: Api) -> None:
    tokens = await api.login(EMAIL)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await api.client.post("/api/auth/logout", headers=headers)).status == 204
    status, body = await me_status(api, tokens["access_token"])
    assert (status, body["error"]["code"]) == (401, "token_revoked")
    resp = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert resp.status == 401


async def test_a_refresh_rotates_the_refresh_token(api: Api) -> None:
    first = await api.login(EMAIL)
    resp = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert resp.status == 200
    second = await resp.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await me_status(api, second["access_token"]))[0] == 200


async def test_reusing_a_refresh_token_revokes_the_whole_family(api: Api) -> None:
    first = await api.login(EMAIL)
    other_session = await api.login(EMAIL)
    resp = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    second = await resp.json()

    replay = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status == 401
    assert (await replay.json())["error"]["code"] == "token_reused"
    for token in (first["access_token"], second["access_token"]):
        assert (await me_status(api, token))[0] == 401
    later = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert later.status == 401
    assert (await me_status(api, other_session["access_token"]))[0] == 200, "other sessions live"


async def test_an_unknown_refresh_token_is_refused(api: Api) -> None:
    resp = await api.client.post("/api/auth/refresh", json={"refresh_token": "made-up"})
    assert resp.status == 401


def ed25519_pem() -> tuple[str, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


async def test_eddsa_keys_rotate_by_kid_without_signing_anyone_out(make_api: ApiFactory) -> None:
    old_private, old_public = ed25519_pem()
    new_private, _ = ed25519_pem()
    old = SigningKey("2026-01", "EdDSA", private_key_pem=old_private)
    api: Api = await make_api(keys=(old,), active_kid="2026-01")
    api.user("ops@acme.test", {})
    old_token = (await api.login("ops@acme.test"))["access_token"]
    assert jwt.get_unverified_header(old_token)["alg"] == "EdDSA"

    # The next hub start signs with a new key and keeps the old public key to verify.
    retired = SigningKey("2026-01", "EdDSA", public_key_pem=old_public)
    new = SigningKey("2026-02", "EdDSA", private_key_pem=new_private)
    rotated: Api = await make_api(keys=(retired, new), active_kid="2026-02")
    assert (await me_status(rotated, old_token))[0] == 200
    new_token = (await rotated.login("ops@acme.test"))["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == "2026-02"

    dropped: Api = await make_api(keys=(new,), active_kid="2026-02")
    assert (await me_status(dropped, old_token))[0] == 401


async def test_an_hs256_token_is_refused_where_the_kid_names_an_eddsa_key(
    make_api: ApiFactory,
) -> None:
    private, public = ed25519_pem()
    api: Api = await make_api(
        keys=(SigningKey("ed", "EdDSA", private_key_pem=private),), active_kid="ed"
    )
    api.user("ops@acme.test", {})
    claims = claims_of((await api.login("ops@acme.test"))["access_token"])

    # The classic confusion attack: the public key used as an HMAC secret (built by hand:
    # PyJWT itself refuses to use a PEM key as an HMAC secret).
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        b64(json.dumps({"alg": "HS256", "kid": "ed", "typ": "JWT"}).encode())
        + "."
        + b64(json.dumps(claims).encode())
    )
    mac = hmac.new(public.encode(), signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{b64(mac)}"
    assert (await me_status(api, forged))[0] == 401


def test_a_retired_key_cannot_be_the_active_one() -> None:
    from tests.hub.api.conftest import auth_settings

    _, public = ed25519_pem()
    with pytest.raises(ConfigError, match="cannot sign"):
        auth_settings(keys=(SigningKey("old", "EdDSA", public_key_pem=public),), active_kid="old")


def test_a_short_hs256_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="32"):
        SigningKey("k", "HS256", secret="short")
