"""Attacks on accounts (issue 12, rows 1, 5, 8, 9, 10 and the fuzzed integer bounds), each
against a running API on a real SQLite file, with a real SMTP server (aiosmtpd) receiving
the mail and clients connecting from real loopback source addresses (127.0.0.x)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from email.message import Message
from typing import Any

import aiohttp
import pytest

from konak.hub.security.ratelimit import Lockout
from konak.hub.security.rbac import Role
from konak.hub.security.settings import AuthSettings, SmtpSettings
from tests.hub.api.conftest import PASSWORD, Api, ApiFactory
from tests.hub.api.test_password_reset import Inbox, smtp_server  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
]

ATTACKER_PASSWORD = "globex-owns-this-one-9"
NEW_PASSWORD = "violet-harbour-engine-42"
WRONG = "wrong-guess-123456"
# The mail opens the console's page, which checks the token with the API's GET route.
INVITATION = re.compile(r"http://\S+/invitation(\?token=(\S+))")
ADD_ANSWER = (202, {"message": "an invitation is on its way to the address"})


@pytest.fixture
async def mail_api(make_api: ApiFactory, smtp_server: tuple[Inbox, int]) -> Api:  # noqa: F811
    """acme and globex admins, an acme member and the superadmin, with mail configured."""
    _, port = smtp_server
    api: Api = await make_api(
        smtp=SmtpSettings(host="127.0.0.1", port=port, sender="hub@konak.test"),
        public_url="http://hub.konak.test:8380",
    )
    api.user("admin@acme.test", {"acme": Role.ADMIN})
    api.user("member@acme.test", {"acme": Role.MEMBER})
    api.user("admin@globex.test", {"globex": Role.ADMIN})
    api.user("root@konak.test", {}, superadmin=True)
    return api


async def _mails(api: Api, inbox: Inbox) -> list[Message]:
    """Every mail sent so far (the hub sends after answering: wait for its tasks)."""
    await asyncio.gather(*api.state.background)
    found = []
    while not inbox.mail.empty():
        found.append(inbox.mail.get_nowait())
    return found


def _invitation(mail: Message) -> tuple[str, str]:
    body = mail.get_payload(decode=True)
    assert isinstance(body, bytes)
    found = INVITATION.search(body.decode())
    assert found is not None, body
    return "/api/auth/invitation" + found.group(1), found.group(2)


async def _call(
    api: Api,
    method: str,
    path: str,
    *,
    source: str = "127.0.0.1",
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """One request from a given loopback source address."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.request(method, api.client.make_url(path), json=json, headers=headers) as resp,
    ):
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body, dict(resp.headers)


async def _login(
    api: Api, email: str, password: str, source: str = "127.0.0.1", **headers: str
) -> tuple[int, str]:
    status, body, _ = await _call(
        api,
        "POST",
        "/api/auth/login",
        source=source,
        json={"email": email, "password": password},
        headers=headers or None,
    )
    return status, (body.get("error", {}).get("code", "ok") if body else "")


async def _add(api: Api, tenant: str, email: str, role: str, admin: str) -> tuple[int, Any]:
    resp = await api.client.post(
        f"/api/tenants/{tenant}/users",
        json={"email": email, "role": role},
        headers=await api.token(admin),
    )
    return resp.status, await resp.json()


async def _roles(api: Api, email: str, password: str = PASSWORD) -> dict[str, str]:
    tokens = await api.login(email, password)
    me = await api.client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    roles: dict[str, str] = (await me.json())["roles"]
    return roles


# -- row 1: cross-tenant account takeover through add-user ----------------------------------
async def test_a_tenant_admin_cannot_create_an_account_with_a_password_of_their_choosing(
    mail_api: Api,
) -> None:
    resp = await mail_api.client.post(
        "/api/tenants/globex/users",
        json={"email": "cfo@acme.example", "role": "member", "password": ATTACKER_PASSWORD},
        headers=await mail_api.token("admin@globex.test"),
    )

    assert resp.status == 400
    assert mail_api.state.users.by_email("cfo@acme.example") is None
    assert await _login(mail_api, "cfo@acme.example", ATTACKER_PASSWORD) == (
        401,
        "bad_credentials",
    )


async def test_adding_an_account_whose_password_an_attacker_knows_gives_the_attacker_nothing(
    mail_api: Api,
    smtp_server: tuple[Inbox, int],  # noqa: F811
) -> None:
    inbox, _ = smtp_server
    # The account exists with a password globex's admin chose (as today's hub allowed).
    mail_api.state.users.create_user("cfo@acme.example", ATTACKER_PASSWORD)

    answer = await _add(mail_api, "acme", "cfo@acme.example", "admin", "admin@acme.test")

    assert answer == ADD_ANSWER
    assert await _roles(mail_api, "cfo@acme.example", ATTACKER_PASSWORD) == {}
    [mail] = await _mails(mail_api, inbox)
    assert mail["To"] == "cfo@acme.example"  # the link goes to the mailbox, not the adder
    tokens = await mail_api.login("cfo@acme.example", ATTACKER_PASSWORD)
    guessed = await mail_api.client.post(
        "/api/auth/invitation/join",
        json={"token": "a-guessed-token"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert guessed.status == 400
    assert await _roles(mail_api, "cfo@acme.example", ATTACKER_PASSWORD) == {}


async def test_a_new_address_joins_by_following_its_invitation_and_choosing_a_password(
    mail_api: Api,
    smtp_server: tuple[Inbox, int],  # noqa: F811
) -> None:
    inbox, _ = smtp_server
    assert await _add(mail_api, "acme", "Dana@Acme.test", "operator", "admin@acme.test") == (
        ADD_ANSWER
    )
    [mail] = await _mails(mail_api, inbox)
    assert mail["To"] == "dana@acme.test"
    path, token = _invitation(mail)
    assert mail_api.state.users.by_email("dana@acme.test") is None  # nothing until accepted

    followed = await mail_api.client.get(path)
    assert (await followed.json())["tenant_id"] == "acme"
    weak = await mail_api.client.post(
        "/api/auth/invitation", json={"token": token, "new_password": "password1234"}
    )
    assert (await weak.json())["error"]["code"] == "weak_password"
    accepted = await mail_api.client.post(
        "/api/auth/invitation", json={"token": token, "new_password": NEW_PASSWORD}
    )
    again = await mail_api.client.post(
        "/api/auth/invitation", json={"token": token, "new_password": NEW_PASSWORD}
    )

    assert accepted.status == 201, await accepted.text()
    assert await _roles(mail_api, "dana@acme.test", NEW_PASSWORD) == {"acme": "operator"}
    assert (again.status, (await again.json())["error"]["code"]) == (400, "invalid_invitation")


async def test_an_existing_account_joins_another_tenant_only_signed_in_as_itself(
    mail_api: Api,
    smtp_server: tuple[Inbox, int],  # noqa: F811
) -> None:
    inbox, _ = smtp_server
    await _add(mail_api, "acme", "admin@globex.test", "member", "admin@acme.test")
    [mail] = await _mails(mail_api, inbox)
    _, token = _invitation(mail)

    anonymous = await mail_api.client.post(
        "/api/auth/invitation", json={"token": token, "new_password": NEW_PASSWORD}
    )
    as_another = await mail_api.client.post(
        "/api/auth/invitation/join",
        json={"token": token},
        headers=await mail_api.token("member@acme.test"),
    )
    as_itself = await mail_api.client.post(
        "/api/auth/invitation/join",
        json={"token": token},
        headers=await mail_api.token("admin@globex.test"),
    )

    assert (anonymous.status, (await anonymous.json())["error"]["code"]) == (
        409,
        "sign_in_to_accept",
    )
    assert await _login(mail_api, "admin@globex.test", NEW_PASSWORD) == (401, "bad_credentials")
    assert (as_another.status, (await as_another.json())["error"]["code"]) == (
        400,
        "invalid_invitation",
    )
    assert as_itself.status == 201
    assert await _roles(mail_api, "admin@globex.test") == {"acme": "member", "globex": "admin"}
    assert await _roles(mail_api, "member@acme.test") == {"acme": "member"}


# -- row 8: account enumeration across tenants through add-user -----------------------------
async def test_adding_a_user_answers_the_same_for_new_foreign_and_superadmin_addresses(
    mail_api: Api,
) -> None:
    answers = [
        await _add(mail_api, "acme", email, "admin", "admin@acme.test")
        for email in ("nobody@acme.test", "admin@globex.test", "root@konak.test")
    ]

    assert answers == [ADD_ANSWER] * 3
    assert await _roles(mail_api, "admin@globex.test") == {"globex": "admin"}
    assert await _roles(mail_api, "root@konak.test") == {}


# -- row 5: lock-out as denial of service ---------------------------------------------------
async def test_wrong_passwords_from_one_address_do_not_lock_the_owner_out_elsewhere(
    make_api: ApiFactory,
) -> None:
    api: Api = await make_api()
    api.user("root@konak.test", {}, superadmin=True)

    failures = [await _login(api, "root@konak.test", WRONG, "127.0.0.2") for _ in range(5)]

    assert failures == [(401, "bad_credentials")] * 5
    assert await _login(api, "root@konak.test", PASSWORD, "127.0.0.2") == (429, "locked_out")
    assert await _login(api, "root@konak.test", PASSWORD, "127.0.0.1") == (200, "ok")


async def test_failures_behind_one_address_do_not_lock_out_the_other_users_there(
    make_api: ApiFactory,
) -> None:
    api: Api = await make_api()
    api.user("member@acme.test", {})

    failures = [await _login(api, f"user{i}@acme.test", WRONG) for i in range(8)]

    assert failures == [(401, "bad_credentials")] * 8
    assert await _login(api, "member@acme.test", PASSWORD) == (200, "ok")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_failures_from_many_addresses_only_slow_the_account_down(
    make_api: ApiFactory,
) -> None:
    api: Api = await make_api()
    api.user("root@konak.test", {}, superadmin=True)
    clock = Clock()
    api.state.lockout = Lockout(api.state.settings, clock)

    failures = [await _login(api, "root@konak.test", WRONG, f"127.0.0.{i}") for i in range(2, 12)]
    attacker = await _login(api, "root@konak.test", WRONG, "127.0.0.12")
    held = await _call(
        api,
        "POST",
        "/api/auth/login",
        json={"email": "root@konak.test", "password": PASSWORD},
    )
    clock.now += 31.0  # the slow-down's default maximum is 30 s

    assert failures == [(401, "bad_credentials")] * 10
    assert attacker == (429, "locked_out")  # the slow-down holds every address back
    assert held[0] == 429
    assert 1 <= int(held[2]["Retry-After"]) <= 30  # briefly, not the lock-out's hour
    assert await _login(api, "root@konak.test", PASSWORD) == (200, "ok")


async def test_ipv6_clients_behind_a_trusted_proxy_are_counted_by_their_64(
    make_api: ApiFactory,
) -> None:
    api: Api = await make_api(trusted_proxies=("127.0.0.1",))
    api.user("root@konak.test", {}, superadmin=True)

    rotating = [
        await _login(api, "root@konak.test", WRONG, **{"X-Forwarded-For": f"2001:db8:1:2::{i}"})
        for i in range(1, 6)
    ]
    same_64 = await _login(
        api, "root@konak.test", PASSWORD, **{"X-Forwarded-For": "2001:db8:1:2:ffff::9"}
    )
    other_64 = await _login(
        api, "root@konak.test", PASSWORD, **{"X-Forwarded-For": "2001:db8:1:3::1"}
    )

    assert rotating == [(401, "bad_credentials")] * 5
    assert same_64 == (429, "locked_out")
    assert other_64 == (200, "ok")


async def test_a_forwarding_header_names_the_client_only_when_a_trusted_proxy_sent_it(
    make_api: ApiFactory,
) -> None:
    api: Api = await make_api(trusted_proxies=("127.0.0.1",), slowdown_after_failures=20)
    api.user("root@konak.test", {}, superadmin=True)

    # Straight from 127.0.0.2 (not a proxy): the header is the attacker's, and ignored.
    direct = [
        await _login(
            api, "root@konak.test", WRONG, "127.0.0.2", **{"X-Forwarded-For": f"10.9.9.{i}"}
        )
        for i in range(5)
    ]
    # Through the proxy: only the address the proxy appended counts, not a forged one before.
    proxied = [
        await _login(
            api, "root@konak.test", WRONG, **{"X-Forwarded-For": f"10.8.8.{i}, 203.0.113.9"}
        )
        for i in range(5)
    ]

    assert direct == proxied == [(401, "bad_credentials")] * 5
    assert await _login(api, "root@konak.test", PASSWORD, "127.0.0.2") == (429, "locked_out")
    locked = await _login(api, "root@konak.test", PASSWORD, **{"X-Forwarded-For": "203.0.113.9"})
    assert locked == (429, "locked_out")
    assert await _login(
        api, "root@konak.test", PASSWORD, **{"X-Forwarded-For": "203.0.113.10"}
    ) == (
        200,
        "ok",
    )


# -- row 9: password guessing through the password change -----------------------------------
async def test_wrong_current_passwords_with_a_stolen_token_are_limited_like_logins(
    make_api: ApiFactory,
) -> None:
    api: Api = await make_api()
    api.user("member@acme.test", {})
    stolen = await api.token("member@acme.test")

    guesses = []
    for i in range(6):
        resp = await api.client.post(
            "/api/auth/password",
            json={"current_password": f"guess-number-{i}-xyz", "new_password": NEW_PASSWORD},
            headers=stolen,
        )
        guesses.append((resp.status, (await resp.json())["error"]["code"]))
    right = await api.client.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=stolen,
    )

    assert guesses == [(401, "bad_credentials")] * 5 + [(429, "locked_out")]
    assert right.status == 429
    assert await _login(api, "member@acme.test", PASSWORD, "127.0.0.2") == (200, "ok")


# -- row 10: mail-bombing through password reset --------------------------------------------
async def test_password_reset_requests_are_limited_per_address_and_per_account_by_default(
    make_api: ApiFactory,
    smtp_server: tuple[Inbox, int],  # noqa: F811
) -> None:
    inbox, port = smtp_server
    api: Api = await make_api(
        smtp=SmtpSettings(host="127.0.0.1", port=port, sender="hub@konak.test"),
        route_limits=AuthSettings().route_limits,  # the defaults of a deployment
    )
    api.user("member@acme.test", {})

    async def ask(email: str, source: str) -> tuple[int, Any]:
        status, body, _ = await _call(
            api, "POST", "/api/auth/password-reset", source=source, json={"email": email}
        )
        return status, body

    one_address = [await ask("member@acme.test", "127.0.0.2") for _ in range(10)]
    many_addresses = [await ask("member@acme.test", f"127.0.1.{i}") for i in range(10)]
    unknown = [await ask("nobody@acme.test", f"127.0.2.{i}") for i in range(10)]
    mails = await _mails(api, inbox)

    assert {status for status, _ in one_address} == {202, 429}
    assert many_addresses == unknown  # the answer never tells accounts apart
    assert {status for status, _ in many_addresses} == {202}
    assert 1 <= len(mails) <= 3
    assert {m["To"] for m in mails} == {"member@acme.test"}


# -- the fuzzed integers --------------------------------------------------------------------
def _integers(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "integer":
            yield where, node
        for key, value in node.items():
            yield from _integers(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _integers(value, f"{where}/{i}")


async def test_every_integer_in_the_openapi_document_is_bounded(mail_api: Api) -> None:
    doc = await (await mail_api.client.get("/api/openapi.json")).json()

    integers = list(_integers(doc))
    audit = doc["paths"]["/api/tenants/{tenant}/audit"]["get"]["parameters"]

    assert {p["name"] for p in audit if p["schema"]["type"] == "integer"} == {"before_id", "limit"}
    unbounded = [w for w, s in integers if "minimum" not in s or "maximum" not in s]
    assert unbounded == []
    assert all(s["maximum"] <= 2**63 - 1 for _, s in integers)


@pytest.mark.parametrize(
    "params",
    [
        {"before_id": str(2**63)},
        {"before_id": str(2**64)},
        {"before_id": "0"},
        {"limit": "501"},
        {"limit": "0"},
        {"limit": str(2**70)},
        {"since": "1e400"},
        {"until": "nan"},
    ],
    ids=lambda p: "=".join(next(iter(p.items())))[:30],
)
async def test_an_out_of_range_query_integer_is_a_400(
    mail_api: Api, params: dict[str, str]
) -> None:
    resp = await mail_api.client.get(
        "/api/tenants/acme/audit", params=params, headers=await mail_api.token("admin@acme.test")
    )

    assert resp.status == 400
    assert next(iter(params)) in (await resp.json())["error"]["message"]


async def test_an_out_of_range_body_integer_is_a_400(mail_api: Api) -> None:
    resp = await mail_api.client.post(
        "/api/tenants/acme/claims",
        json={"expires_in_seconds": 2**64},
        headers=await mail_api.token("admin@acme.test"),
    )

    assert resp.status == 400
    assert (await resp.json())["error"]["details"][0]["field"] == "expires_in_seconds"
