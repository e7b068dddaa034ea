"""Mailed links: password reset and tenant invitations. Single-use, expiring tokens (stored
as SHA-256 only) and the mail that carries the link.

Asking for a reset, or adding a user to a tenant, answers the same whether or not the
address has an account, and the mail is sent after the answer, so neither the body nor the
timing tells accounts apart. An invitation gives its role only to whoever holds the mailbox:
a new account is created by following the link and choosing a password, an existing one
joins only when its owner, signed in, accepts the link.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import smtplib
import sqlite3
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Final
from urllib.parse import quote

from konak.hub.security.errors import SecurityError
from konak.hub.security.rbac import Role
from konak.hub.security.settings import SmtpSettings

logger = logging.getLogger(__name__)

CONFIRM_PATH: Final = "/api/auth/password-reset/confirm"
INVITATION_PATH: Final = "/api/auth/invitation"
# The console's pages the mailed links open (the API routes above stay where they are).
CONSOLE_RESET_PAGE: Final = "/reset-password"
CONSOLE_INVITATION_PAGE: Final = "/invitation"


class InvalidResetToken(SecurityError):
    """The reset token is unknown, used or expired."""

    code = "invalid_reset_token"


class InvalidInvitation(SecurityError):
    """The invitation is unknown, used, expired, or for another account."""

    code = "invalid_invitation"


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class PasswordResets:
    """Issues and redeems reset tokens in the hub database; ``invitations`` the same for
    invitations into a tenant."""

    def __init__(
        self, db: sqlite3.Connection, ttl_seconds: float, invitation_seconds: float = 7 * 86400.0
    ) -> None:
        self._db = db
        self._ttl_seconds = ttl_seconds
        self.invitations = Invitations(db, invitation_seconds)

    def issue(self, user_id: str) -> str:
        """A new token for ``user_id``; the user's earlier unused tokens stop working."""
        now = time.time()
        token = secrets.token_urlsafe(32)
        self._db.execute(
            "UPDATE password_resets SET used_at = ? WHERE user_id = ? AND used_at IS NULL",
            (now, user_id),
        )
        self._db.execute(
            "INSERT INTO password_resets (token_sha256, user_id, issued_at, expires_at) "
            "VALUES (?, ?, ?, ?)",
            (_sha256(token), user_id, now, now + self._ttl_seconds),
        )
        return token

    def peek(self, token: str) -> str:
        """The user a still-valid token belongs to (not using it up)."""
        row = self._db.execute(
            "SELECT user_id FROM password_resets WHERE token_sha256 = ? AND used_at IS NULL "
            "AND expires_at > ?",
            (_sha256(token), time.time()),
        ).fetchone()
        if row is None:
            raise InvalidResetToken("this reset link is invalid, used or expired")
        return str(row[0])

    def consume(self, token: str) -> str:
        """Use a token up (atomically: of two concurrent uses one wins); its user id."""
        user_id = self.peek(token)
        cur = self._db.execute(
            "UPDATE password_resets SET used_at = ? WHERE token_sha256 = ? AND used_at IS NULL "
            "AND expires_at > ?",
            (time.time(), _sha256(token), time.time()),
        )
        if cur.rowcount != 1:
            raise InvalidResetToken("this reset link is invalid, used or expired")
        return user_id


@dataclass(frozen=True, slots=True)
class Invitation:
    """An invitation of an e-mail address into a tenant with a role."""

    tenant_id: str
    email: str
    role: Role


class Invitations:
    """Issues and redeems invitation tokens in the hub database."""

    def __init__(self, db: sqlite3.Connection, ttl_seconds: float) -> None:
        self._db = db
        self._ttl_seconds = ttl_seconds

    def issue(self, tenant_id: str, email: str, role: Role, invited_by: str) -> str:
        """A new token; earlier unused invitations of ``email`` into the tenant stop working."""
        now = time.time()
        token = secrets.token_urlsafe(32)
        self._db.execute(
            "UPDATE invitations SET used_at = ? WHERE tenant_id = ? AND email = ? "
            "AND used_at IS NULL",
            (now, tenant_id, email),
        )
        self._db.execute(
            "INSERT INTO invitations (token_sha256, tenant_id, email, role, invited_by, "
            "issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                _sha256(token),
                tenant_id,
                email,
                role.value,
                invited_by,
                now,
                now + self._ttl_seconds,
            ),
        )
        return token

    def peek(self, token: str) -> Invitation:
        """The still-valid invitation of a token (not using it up)."""
        row = self._db.execute(
            "SELECT tenant_id, email, role FROM invitations WHERE token_sha256 = ? "
            "AND used_at IS NULL AND expires_at > ?",
            (_sha256(token), time.time()),
        ).fetchone()
        if row is None:
            raise InvalidInvitation("this invitation is invalid, used or expired")
        return Invitation(str(row[0]), str(row[1]), Role(row[2]))

    def consume(self, token: str) -> Invitation:
        """Use a token up (atomically: of two concurrent uses one wins)."""
        invitation = self.peek(token)
        now = time.time()
        cur = self._db.execute(
            "UPDATE invitations SET used_at = ? WHERE token_sha256 = ? AND used_at IS NULL "
            "AND expires_at > ?",
            (now, _sha256(token), now),
        )
        if cur.rowcount != 1:
            raise InvalidInvitation("this invitation is invalid, used or expired")
        return invitation


def reset_link(public_url: str, token: str) -> str:
    """The link a reset mail carries: the console's page, which checks the token and posts
    the new password to ``CONFIRM_PATH``."""
    return f"{public_url.rstrip('/')}{CONSOLE_RESET_PAGE}?token={quote(token, safe='')}"


def invitation_link(public_url: str, token: str) -> str:
    """The link an invitation mail carries: the console's page, which uses
    ``INVITATION_PATH``."""
    return f"{public_url.rstrip('/')}{CONSOLE_INVITATION_PAGE}?token={quote(token, safe='')}"


@dataclass(frozen=True, slots=True)
class Mailer:
    """Sends mail through the configured SMTP server (blocking: call it in a thread)."""

    settings: SmtpSettings

    def send_reset(self, to: str, link: str, ttl_seconds: float) -> None:
        """Send the reset mail; raises OSError/SMTPException when the server refuses."""
        minutes = max(1, round(ttl_seconds / 60))
        self._send(
            to,
            "Reset your Konak password",
            "Someone asked to reset the password of your Konak account.\n\n"
            f"To choose a new password, open this link within {minutes} minutes:\n\n"
            f"{link}\n\n"
            "The link works once. If you did not ask for this, ignore this mail.\n",
        )

    def send_invitation(self, to: str, tenant: str, link: str, ttl_seconds: float) -> None:
        """Send an invitation; raises OSError/SMTPException when the server refuses."""
        days = max(1, round(ttl_seconds / 86400))
        self._send(
            to,
            f"You are invited to {tenant} on Konak",
            f"An administrator of {tenant} invited this address to it on Konak.\n\n"
            f"To accept, open this link within {days} day(s):\n\n{link}\n\n"
            "If you have a Konak account, sign in first; otherwise you choose a password "
            "there. The link works once. If you do not want to join, ignore this mail.\n",
        )

    def _send(self, to: str, subject: str, text: str) -> None:
        msg = EmailMessage()
        msg["From"] = self.settings.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg.set_content(text)
        s = self.settings
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds) as smtp:
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.username:
                smtp.login(s.username, s.password)
            smtp.send_message(msg)
