"""The password-reset handlers: ask for a mail, check the link, set the new password."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from typing import Final

from aiohttp import web

from konak.hub.auth.errors import Unavailable
from konak.hub.auth.http import AUTH, AuthState, note, read_json
from konak.hub.auth.rbac import Action, declare
from konak.hub.auth.reset import reset_link
from konak.hub.auth.schemas import ResetConfirmBody, ResetRequestBody
from konak.hub.auth.users import normalise_email

logger = logging.getLogger(__name__)

ACCEPTED: Final = 202
NO_CONTENT: Final = 204
ASKED: Final = {"message": "if the address has an account, a reset link is on its way"}


def _parts(state: AuthState) -> AuthState:
    if state.resets is None or state.mailer is None:
        raise Unavailable("password reset by e-mail is not configured")
    return state


async def _send(state: AuthState, email: str, user_id: str) -> None:
    assert state.resets is not None
    assert state.mailer is not None
    token = state.resets.issue(user_id)
    link = reset_link(state.settings.public_url, token)
    try:
        await asyncio.to_thread(
            state.mailer.send_reset, email, link, state.settings.reset_token_seconds
        )
    except (OSError, smtplib.SMTPException) as exc:
        logger.warning("reset mail for user %s not sent: %s", user_id, type(exc).__name__)
        return
    logger.info("reset mail sent for user %s", user_id)


@declare(Action.RESET)
async def request_reset(request: web.Request) -> web.Response:
    """Ask for a reset link by e-mail; the answer is the same for unknown addresses."""
    state = _parts(request.app[AUTH])
    body = await read_json(request, ResetRequestBody)
    email = normalise_email(body.email)
    note(request, actor=email, target=f"user:{email}")
    user = state.users.by_email(email)
    if user is not None and not user.disabled:
        # After the answer: the response time must not tell accounts apart.
        task = asyncio.get_running_loop().create_task(_send(state, email, user.user_id))
        state.background.add(task)
        task.add_done_callback(state.background.discard)
    return web.json_response(ASKED, status=ACCEPTED)


@declare(Action.RESET)
async def check_reset(request: web.Request) -> web.Response:
    """Where the mailed link leads: whether its token is still valid (not using it up)."""
    state = _parts(request.app[AUTH])
    assert state.resets is not None
    state.resets.peek(request.query.get("token", ""))
    return web.json_response({"valid": True, "set_password_with": "POST this URL's path"})


@declare(Action.RESET)
async def confirm_reset(request: web.Request) -> web.Response:
    """Set a new password with a reset token; the token is used up and every session of the
    account is signed out."""
    state = _parts(request.app[AUTH])
    assert state.resets is not None
    body = await read_json(request, ResetConfirmBody)
    user = state.users.by_id(state.resets.peek(body.token))
    assert user is not None  # a foreign key
    note(request, actor=user.email, target=f"user:{user.email}")
    state.users.policy.check(body.new_password, email=user.email)  # before using the token up
    state.resets.consume(body.token)
    await asyncio.to_thread(state.users.set_password, user.user_id, body.new_password)
    state.tokens.revoke_user(user.user_id, "password_reset")
    try:
        await state.lockout.succeeded(f"user:{user.email}")
    except Unavailable:
        # The password is set and the sessions are gone; a lock-out left in place is the
        # safe side (it ends on its own), so the reset still succeeds.
        logger.warning("could not clear the login lock-out after a password reset")
    return web.Response(status=NO_CONTENT)
