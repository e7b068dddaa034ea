"""The handlers of mailed links: a password reset (ask for a mail, check the link, set the
new password) and an invitation into a tenant (sent when an admin adds a user; checked,
then accepted by choosing the new account's password or by its signed-in owner)."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Callable
from typing import Final

from aiohttp import web

from konak.hub.api.http import client_address, declare, identity_of, note, read_json
from konak.hub.api.schemas import (
    InvitationAcceptBody,
    InvitationJoinBody,
    ResetConfirmBody,
    ResetRequestBody,
    TokenQuery,
    parse_query,
)
from konak.hub.keys import AUTH
from konak.hub.security.errors import Conflict, NotEnabled, Unavailable
from konak.hub.security.rbac import Action, Role
from konak.hub.security.reset import InvalidInvitation, invitation_link, reset_link
from konak.hub.security.state import AuthState
from konak.hub.security.users import normalise_email

logger = logging.getLogger(__name__)

ACCEPTED: Final = 202
NO_CONTENT: Final = 204
ASKED: Final = {"message": "if the address has an account, a reset link is on its way"}
INVITED: Final = {"message": "an invitation is on its way to the address"}


def _parts(state: AuthState) -> AuthState:
    if state.resets is None or state.mailer is None:
        raise NotEnabled(
            "mailed links (password reset, invitations) need [auth.smtp]; without it the "
            "operator adds users with 'konak hub add-user'"
        )
    return state


def _after_answer(
    state: AuthState, prepare: Callable[[], Callable[[], None]], what: str, user: str
) -> None:
    """Issue the link (``prepare``) and send its mail (what ``prepare`` returns, blocking)
    after the answer: the response time must not tell accounts apart."""

    async def run() -> None:
        send = prepare()
        try:
            await asyncio.to_thread(send)
        except (OSError, smtplib.SMTPException) as exc:
            logger.warning("%s mail for %s not sent: %s", what, user, type(exc).__name__)
            return
        logger.info("%s mail sent for %s", what, user)

    task = asyncio.get_running_loop().create_task(run())
    state.background.add(task)
    task.add_done_callback(state.background.discard)


async def _may_mail(state: AuthState, email: str) -> bool:
    """Whether another mail may go to ``email`` (``[auth] mail_limit``, whoever asks)."""
    if await state.limiter.may_mail(email):
        return True
    logger.info("mail limit reached for an address: no mail sent")
    return False


@declare(Action.RESET)
async def request_reset(request: web.Request) -> web.Response:
    """Ask for a reset link by e-mail; the answer is the same for unknown addresses."""
    state = _parts(request.app[AUTH])
    assert state.resets is not None
    assert state.mailer is not None
    body = await read_json(request, ResetRequestBody)
    email = normalise_email(body.email)
    note(request, actor=email, target=f"user:{email}")
    may_mail = await _may_mail(state, email)  # counted for every address alike
    user = state.users.by_email(email)
    if user is not None and not user.disabled and may_mail:
        resets, mailer, settings = state.resets, state.mailer, state.settings
        user_id = user.user_id

        def prepare() -> Callable[[], None]:
            link = reset_link(settings.public_url, resets.issue(user_id))
            return lambda: mailer.send_reset(email, link, settings.reset_token_seconds)

        _after_answer(state, prepare, "reset", f"user {user_id}")
    return web.json_response(ASKED, status=ACCEPTED)


@declare(Action.RESET)
async def check_reset(request: web.Request) -> web.Response:
    """Where the mailed link leads: whether its token is still valid (not using it up)."""
    state = _parts(request.app[AUTH])
    assert state.resets is not None
    state.resets.peek(parse_query(request.query, TokenQuery).token)
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
        await state.lockout.succeeded(user.email, client_address(request, state.settings))
    except Unavailable:
        # The password is set and the sessions are gone; a lock-out left in place is the
        # safe side (it ends on its own), so the reset still succeeds.
        logger.warning("could not clear the login lock-out after a password reset")
    return web.Response(status=NO_CONTENT)


# -- invitations -----------------------------------------------------------------------------
async def invite(state: AuthState, tenant: str, email: str, role: Role, invited_by: str) -> None:
    """Mail ``email`` an invitation into ``tenant`` unless it is a member already, its
    account is disabled or the address had its mails; the caller answers the same in every
    case."""
    _parts(state)
    assert state.resets is not None
    assert state.mailer is not None
    if not await _may_mail(state, email):
        return
    user = state.users.by_email(email)
    if user is not None and (user.disabled or tenant in state.users.roles(user.user_id)):
        return
    invitations, mailer, settings = state.resets.invitations, state.mailer, state.settings

    def prepare() -> Callable[[], None]:
        link = invitation_link(
            settings.public_url, invitations.issue(tenant, email, role, invited_by)
        )
        ttl = settings.invitation_token_seconds
        return lambda: mailer.send_invitation(email, tenant, link, ttl)

    _after_answer(state, prepare, "invitation", f"tenant {tenant}")


@declare(Action.RESET)
async def check_invitation(request: web.Request) -> web.Response:
    """Where an invitation link leads: its tenant and role, and how to accept it."""
    state = _parts(request.app[AUTH])
    assert state.resets is not None
    invitation = state.resets.invitations.peek(parse_query(request.query, TokenQuery).token)
    exists = state.users.by_email(invitation.email) is not None
    return web.json_response(
        {
            "valid": True,
            "tenant_id": invitation.tenant_id,
            "role": invitation.role.value,
            "email": invitation.email,
            "accept_with": (
                "sign in as this address, then POST {token} to /api/auth/invitation/join"
                if exists
                else "POST {token, new_password} to this URL's path"
            ),
        }
    )


@declare(Action.RESET)
async def accept_invitation(request: web.Request) -> web.Response:
    """Accept an invitation of an address without an account: create the account with the
    password chosen here and give it the role. An existing account must join signed in."""
    state = _parts(request.app[AUTH])
    assert state.resets is not None
    body = await read_json(request, InvitationAcceptBody)
    invitations = state.resets.invitations
    invitation = invitations.peek(body.token)
    note(request, actor=invitation.email, target=f"user:{invitation.email}")
    if state.users.by_email(invitation.email) is not None:
        raise Conflict(
            "this address has an account: sign in and accept at /api/auth/invitation/join",
            code="sign_in_to_accept",
        )
    state.users.policy.check(body.new_password, email=invitation.email)  # before using it up
    invitation = invitations.consume(body.token)
    user = await asyncio.to_thread(state.users.create_user, invitation.email, body.new_password)
    state.users.assign(invitation.tenant_id, user.user_id, invitation.role)
    logger.info("user %s joined tenant %s by invitation", user.user_id, invitation.tenant_id)
    return web.json_response(
        {**user.as_dict(), "tenant_id": invitation.tenant_id, "role": invitation.role.value},
        status=201,
    )


@declare(Action.SELF)
async def join_invitation(request: web.Request) -> web.Response:
    """Accept an invitation as the signed-in owner of the account it was mailed to."""
    state = _parts(request.app[AUTH])
    assert state.resets is not None
    identity = identity_of(request)
    body = await read_json(request, InvitationJoinBody)
    invitations = state.resets.invitations
    if invitations.peek(body.token).email != identity.email:
        # The same answer as an unknown token: the link says nothing about other accounts.
        raise InvalidInvitation("this invitation is invalid, used or expired")
    invitation = invitations.consume(body.token)
    note(request, target=f"tenant:{invitation.tenant_id}")
    state.users.assign(invitation.tenant_id, identity.subject, invitation.role)
    logger.info("user %s joined tenant %s by invitation", identity.subject, invitation.tenant_id)
    return web.json_response(
        {"tenant_id": invitation.tenant_id, "role": invitation.role.value}, status=201
    )
