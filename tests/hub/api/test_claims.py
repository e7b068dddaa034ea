"""Claim tokens as the console manages them: minted with an id and the command that uses
it, listed by id (never the token), revoked before use."""

from __future__ import annotations

import hashlib
import shlex

from tests.hub.api.conftest import Api

CLAIMS = "/api/tenants/acme/claims"


async def mint(api: Api, headers: dict[str, str], **body: object) -> dict[str, object]:
    resp = await api.client.post(CLAIMS, json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    answer: dict[str, object] = await resp.json()
    return answer


async def test_a_minted_claim_has_an_id_and_a_copyable_enroll_command(api: Api) -> None:
    operator = await api.token("operator@acme.test")

    claim = await mint(api, operator)
    pinned = await mint(api, operator, device="hall-pi")

    token = str(claim["token"])
    assert claim["claim_id"] == hashlib.sha256(token.encode()).hexdigest()[:12]
    assert shlex.split(str(claim["enroll_command"])) == [
        "konak", "daemon", "enroll", "--hub", "http://127.0.0.1:8380", "--token", token,
        "--name", "Device name",
    ]  # fmt: skip
    assert shlex.split(str(pinned["enroll_command"]))[-2:] == ["--name", "hall-pi"]


async def test_claims_are_listed_by_id_without_their_tokens(api: Api) -> None:
    operator = await api.token("operator@acme.test")
    first = await mint(api, operator)
    second = await mint(api, operator, device="hall-pi")
    used = await api.client.post("/api/enroll", json={"token": first["token"], "name": "Kitchen"})
    assert used.status == 201

    resp = await api.client.get(CLAIMS, headers=operator)
    text = await resp.text()
    claims = (await resp.json())["claims"]

    assert resp.status == 200
    assert str(first["token"]) not in text
    assert str(second["token"]) not in text
    assert [c["claim_id"] for c in claims] == [second["claim_id"], first["claim_id"]]
    assert set(claims[0]) == {
        "claim_id", "created_at", "created_by", "expires_at", "used_at", "device", "for_device",
    }  # fmt: skip
    assert (claims[0]["for_device"], claims[0]["used_at"]) == ("hall-pi", None)
    assert claims[1]["device"] == "kitchen"
    assert claims[1]["used_at"] is not None


async def test_a_revoked_claim_no_longer_enrols_and_a_used_one_cannot_be_revoked(
    api: Api,
) -> None:
    operator = await api.token("operator@acme.test")
    claim = await mint(api, operator)
    other = await mint(api, operator)

    revoked = await api.client.delete(f"{CLAIMS}/{claim['claim_id']}", headers=operator)
    enrol = await api.client.post("/api/enroll", json={"token": claim["token"], "name": "Hall"})
    ok = await api.client.post("/api/enroll", json={"token": other["token"], "name": "Attic"})
    again = await api.client.delete(f"{CLAIMS}/{other['claim_id']}", headers=operator)

    assert revoked.status == 204
    assert enrol.status == 401
    assert (await enrol.json())["error"]["code"] == "claim_invalid"
    assert ok.status == 201
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "claim_used"
    assert api.provisioner.created == [("acme", "attic")]


async def test_claims_of_another_tenant_are_invisible_and_unrevokable(api: Api) -> None:
    operator = await api.token("operator@acme.test")
    claim = await mint(api, operator)
    intruder = await api.token("admin@globex.test")

    listed = await api.client.get(CLAIMS, headers=intruder)
    own = await api.client.get("/api/tenants/globex/claims", headers=intruder)
    through_own = await api.client.delete(
        f"/api/tenants/globex/claims/{claim['claim_id']}", headers=intruder
    )
    direct = await api.client.delete(f"{CLAIMS}/{claim['claim_id']}", headers=intruder)

    assert listed.status == 404
    assert (await own.json())["claims"] == []
    assert through_own.status == 404
    assert direct.status == 404
    enrol = await api.client.post("/api/enroll", json={"token": claim["token"], "name": "Hall"})
    assert enrol.status == 201  # still good in its own tenant


async def test_members_and_readonly_users_neither_list_nor_revoke_claims(api: Api) -> None:
    operator = await api.token("operator@acme.test")
    claim = await mint(api, operator)
    for who in ("member@acme.test", "readonly@acme.test"):
        headers = await api.token(who)
        listed = await api.client.get(CLAIMS, headers=headers)
        revoked = await api.client.delete(f"{CLAIMS}/{claim['claim_id']}", headers=headers)
        assert (listed.status, revoked.status) == (403, 403), who


async def test_a_made_up_or_malformed_claim_id_is_not_found(api: Api) -> None:
    operator = await api.token("operator@acme.test")
    await mint(api, operator)
    for claim_id in ("000000000000", "%25", "abc", "a" * 200, "'%20OR%201=1--"):
        resp = await api.client.delete(f"{CLAIMS}/{claim_id}", headers=operator)
        assert resp.status == 404, claim_id
        assert (await resp.json())["error"]["code"] == "claim_not_found"
