"""The console's live events as server-sent events (``text/event-stream``).

Each event is an ``event:`` line and a JSON ``data:`` line; a ``: ping`` comment every
``PING_SECONDS`` keeps proxies from closing an idle stream and lets the hub notice a
client that left. The stream ends when the access token it was opened with expires, when
its session is signed out or the caller's role changes (checked at each ping), when the
subscriber falls behind, and when the hub stops; the client reconnects with a current
token.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Final

from aiohttp import web

from konak.hub.api.fleet import actions_of, held_actions, tenant_of
from konak.hub.api.http import declare, identity_of
from konak.hub.events import Event, Subscription, TooManySubscribers
from konak.hub.keys import AUTH, EVENTS
from konak.hub.security.errors import RateLimited, Unauthenticated, Unavailable
from konak.hub.security.rbac import Action

logger = logging.getLogger(__name__)

PING_SECONDS: Final = 15.0
RETRY_MILLISECONDS: Final = 3000  # how soon an EventSource-like client reconnects
STREAM_HEADERS: Final = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx: pass each event on at once
}


def encode(event: Event) -> bytes:
    """One event in the text/event-stream format."""
    data = json.dumps(event.data, separators=(",", ":"))
    return f"event: {event.name}\ndata: {data}\n\n".encode()


@declare(Action.DEVICES_READ)
async def events(request: web.Request) -> web.StreamResponse:
    """The tenant's live events (server-sent events) until the access token expires."""
    state = request.app[AUTH]
    tenant = tenant_of(request)
    broker = request.app.get(EVENTS)
    if broker is None:
        raise Unavailable("live events are not running on this hub")
    authorization = request.headers.get("Authorization", "")
    expires_at = state.tokens.verify_access(authorization.partition(" ")[2].strip()).expires_at
    actions = actions_of(request, tenant)
    try:
        sub = broker.subscribe(tenant, actions, identity_of(request).subject)
    except TooManySubscribers as exc:
        raise RateLimited(
            "too many event streams are open (close another tab)",
            retry_after_seconds=PING_SECONDS,
        ) from exc
    response = web.StreamResponse(headers=STREAM_HEADERS)
    try:
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MILLISECONDS}\n\n".encode())
        await _pump(request, response, sub, expires_at, authorization)
        await response.write_eof()
    except ConnectionResetError:
        logger.debug("event stream of tenant %s: the client left", tenant)
    finally:
        sub.end()
    return response


async def _pump(
    request: web.Request,
    response: web.StreamResponse,
    sub: Subscription,
    expires_at: float,
    authorization: str,
) -> None:
    """Write the subscriber's events and the pings until the stream is to end."""
    while (left := expires_at - time.time()) > 0:
        try:
            event = await sub.get(min(PING_SECONDS, left))
        except TimeoutError:
            if not _still_allowed(request, sub, authorization):
                return
            await response.write(b": ping\n\n")
            continue
        if event is None:  # fell behind, or the hub is stopping
            return
        await response.write(encode(event))


def _still_allowed(request: web.Request, sub: Subscription, authorization: str) -> bool:
    """Whether the stream's session is still signed in, with the same actions."""
    try:
        identity = request.app[AUTH].authenticate(authorization)
    except Unauthenticated:
        return False
    return held_actions(identity, sub.tenant) == sub.actions
