"""Password reset by e-mail, end to end: a real SMTP server (aiosmtpd) receives the mail,
the test follows its link and sets a new password."""

from __future__ import annotations

import asyncio
import gc
import queue
import re
import threading
import warnings
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest

from konak.devtools.mosquitto import free_port
from konak.hub.security.audit import PLATFORM_TENANT, AuditQuery
from konak.hub.security.settings import SmtpSettings
from tests.hub.api.conftest import PASSWORD, Api, ApiFactory

NEW_PASSWORD = "a-brand-new-passphrase-7"
MAIL_WAIT_SECONDS = 20.0
# The mail opens the console's page, which checks the token with the API's GET route.
LINK = re.compile(r"http://\S+/reset-password\?token=(\S+)")


class Inbox:
    """Collects every message the SMTP server accepts."""

    def __init__(self) -> None:
        self.mail: queue.Queue[Message] = queue.Queue()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mail.put(message_from_bytes(envelope.original_content))
        return "250 OK"

    async def next(self) -> Message:
        """The next mail (bounded wait)."""
        return await asyncio.to_thread(self.mail.get, timeout=MAIL_WAIT_SECONDS)


# aiosmtpd's sessions leave the server side of their sockets for the garbage collector,
# which may run in the middle of any test here; only that warning is ignored in this module
# (and collected away in the fixture's teardown, so it cannot land in another module).
pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server (aiosmtpd's protocol) on its own loop in a thread. Not aiosmtpd's
    Controller: its start-up probe connection leaves a socket for the garbage collector,
    whose ResourceWarning then lands in whatever test is running."""
    from aiosmtpd.smtp import SMTP

    inbox = Inbox()
    port = free_port()
    loop = asyncio.new_event_loop()
    sessions: list[SMTP] = []

    def session() -> SMTP:
        sessions.append(SMTP(inbox))
        return sessions[-1]

    server = loop.run_until_complete(loop.create_server(session, "127.0.0.1", port))
    thread = threading.Thread(target=loop.run_forever, name="smtp", daemon=True)
    thread.start()
    yield inbox, port

    async def shut_down() -> None:
        server.close()
        for smtp in sessions:
            if smtp.transport is not None:
                smtp.transport.close()
        await server.wait_closed()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run_coroutine_threadsafe(shut_down(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()
    del sessions[:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
async def reset_api(make_api: ApiFactory, smtp_server: tuple[Inbox, int]) -> Api:
    _, port = smtp_server
    api: Api = await make_api(
        smtp=SmtpSettings(host="127.0.0.1", port=port, sender="hub@konak.test"),
        public_url="http://hub.konak.test:8380",
    )
    api.user("member@acme.test", {})
    return api


def link_of(mail: Message) -> tuple[str, str]:
    body = mail.get_payload(decode=True)
    assert isinstance(body, bytes)
    found = LINK.search(body.decode())
    assert found is not None, body
    return found.group(0), found.group(1)


def check_path(link: str) -> str:
    """What the console's reset page asks the API with the link's token."""
    return "/api/auth/password-reset/confirm?" + link.partition("?")[2]


async def ask(api: Api, email: str) -> tuple[int, Any]:
    resp = await api.client.post("/api/auth/password-reset", json={"email": email})
    return resp.status, await resp.json()


@pytest.mark.integration
async def test_a_user_resets_the_password_by_following_the_mailed_link(
    reset_api: Api, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp_server
    session = await reset_api.login("member@acme.test")
    assert (await ask(reset_api, "Member@ACME.test"))[0] == 202
    mail = await inbox.next()
    assert mail["To"] == "member@acme.test"
    assert mail["From"] == "hub@konak.test"
    link, token = link_of(mail)
    assert link.startswith("http://hub.konak.test:8380/reset-password?token=")
    followed = await reset_api.client.get(check_path(link))
    assert followed.status == 200, await followed.text()
    confirm = await reset_api.client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert confirm.status == 204, await confirm.text()
    assert (await reset_api.login("member@acme.test", NEW_PASSWORD))["token_type"] == "Bearer"
    old = await reset_api.client.post(
        "/api/auth/login", json={"email": "member@acme.test", "password": PASSWORD}
    )
    assert old.status == 401
    refreshed = await reset_api.client.post(
        "/api/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refreshed.status == 401  # every earlier session is signed out
    again = await reset_api.client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert again.status == 400
    assert (await again.json())["error"]["code"] == "invalid_reset_token"
    entries, _ = reset_api.state.audit.page(
        AuditQuery(tenant_id=PLATFORM_TENANT, action="auth.reset")
    )
    assert [(e.actor, e.outcome, e.status) for e in reversed(entries)] == [
        ("member@acme.test", "ok", 202),
        ("member@acme.test", "ok", 204),
        ("anonymous", "error", 400),
    ]


@pytest.mark.integration
async def test_an_unknown_address_gets_the_same_answer_and_no_mail(
    reset_api: Api, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp_server
    unknown = await ask(reset_api, "nobody@acme.test")
    known = await ask(reset_api, "member@acme.test")
    assert unknown == known
    assert (await inbox.next())["To"] == "member@acme.test"  # the first mail is the known one
    await asyncio.gather(*reset_api.state.background)
    assert inbox.mail.empty()


@pytest.mark.integration
async def test_a_weak_new_password_is_refused_and_the_link_still_works(
    reset_api: Api, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp_server
    await ask(reset_api, "member@acme.test")
    _, token = link_of(await inbox.next())
    weak = await reset_api.client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": "password1234"}
    )
    assert weak.status == 400
    assert (await weak.json())["error"]["code"] == "weak_password"
    ok = await reset_api.client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert ok.status == 204


@pytest.mark.integration
async def test_a_newer_link_replaces_an_older_one(
    reset_api: Api, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp_server
    await ask(reset_api, "member@acme.test")
    _, first = link_of(await inbox.next())
    await ask(reset_api, "member@acme.test")
    _, second = link_of(await inbox.next())
    assert (await reset_api.client.get(f"/api/auth/password-reset/confirm?token={first}")).status
    stale = await reset_api.client.post(
        "/api/auth/password-reset/confirm", json={"token": first, "new_password": NEW_PASSWORD}
    )
    assert stale.status == 400
    fresh = await reset_api.client.post(
        "/api/auth/password-reset/confirm", json={"token": second, "new_password": NEW_PASSWORD}
    )
    assert fresh.status == 204


@pytest.mark.integration
async def test_an_expired_link_is_refused(reset_api: Api, smtp_server: tuple[Inbox, int]) -> None:
    inbox, _ = smtp_server
    await ask(reset_api, "member@acme.test")
    link, token = link_of(await inbox.next())
    reset_api.state.db.execute("UPDATE password_resets SET expires_at = 0")
    followed = await reset_api.client.get(check_path(link))
    assert followed.status == 400
    used = await reset_api.client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert (await used.json())["error"]["code"] == "invalid_reset_token"


@pytest.mark.parametrize(
    "token", ["", "not-a-token", "'; DROP TABLE password_resets; --", "%_\\", "x" * 2000]
)
async def test_forged_and_malformed_reset_tokens_are_refused(reset_api: Api, token: str) -> None:
    resp = await reset_api.client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] in ("invalid_reset_token", "invalid_body")
    assert (await reset_api.login("member@acme.test"))["token_type"] == "Bearer"


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'{"email": 5}', b'{"email": "a@b.c", "admin": true}', b'{"email": "nope"}'],
)
async def test_malformed_reset_requests_get_a_clear_400(reset_api: Api, body: bytes) -> None:
    resp = await reset_api.client.post(
        "/api/auth/password-reset", data=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_body"


async def test_sql_metacharacters_in_the_address_are_only_data(reset_api: Api) -> None:
    status, body = await ask(reset_api, "x');DELETE/**/FROM/**/users;--%_@a.b")
    assert status == 202
    assert body == (await ask(reset_api, "member@acme.test"))[1]
    assert reset_api.state.users.by_email("member@acme.test") is not None


async def test_an_unreachable_mail_server_still_answers_and_logs(
    make_api: ApiFactory, caplog: pytest.LogCaptureFixture
) -> None:
    api: Api = await make_api(smtp=SmtpSettings(host="127.0.0.1", port=free_port()))
    api.user("member@acme.test", {})
    assert (await ask(api, "member@acme.test"))[0] == 202
    await asyncio.gather(*api.state.background)
    assert any("reset mail for user" in r.getMessage() for r in caplog.records)


async def test_without_smtp_settings_there_is_no_reset_route(api: Api) -> None:
    resp = await api.client.post("/api/auth/password-reset", json={"email": "a@b.cd"})
    assert resp.status == 404
    doc = await (await api.client.get("/api/openapi.json")).json()
    assert "/api/auth/password-reset" not in doc["paths"]
