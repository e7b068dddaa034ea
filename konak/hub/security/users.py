"""Tenants, users and their role in each tenant."""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

from konak.hub.security.errors import Conflict, NotFound
from konak.hub.security.passwords import Hasher, PasswordPolicy
from konak.hub.security.rbac import Identity, Role

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class User:
    """A user account (the hash never leaves this module's callers' process)."""

    user_id: str
    email: str
    password_hash: str
    superadmin: bool
    disabled: bool

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view without the hash."""
        return {"user_id": self.user_id, "email": self.email, "superadmin": self.superadmin}


def normalise_email(email: str) -> str:
    """The form e-mail addresses are stored and compared in."""
    return email.strip().lower()


class Users:
    """Accounts, tenants and memberships in the hub database."""

    def __init__(self, db: sqlite3.Connection, hasher: Hasher, policy: PasswordPolicy) -> None:
        self._db = db
        self.hasher = hasher
        self.policy = policy

    # -- tenants ---------------------------------------------------------------------
    def ensure_tenant(self, tenant_id: str, name: str | None = None) -> bool:
        """Create a tenant unless it exists; True when created."""
        cur = self._db.execute(
            "INSERT INTO tenants (tenant_id, name, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (tenant_id, name or tenant_id, time.time()),
        )
        return cur.rowcount == 1

    def create_tenant(self, tenant_id: str, name: str) -> None:
        """Create a tenant; Conflict when the id is taken."""
        if not self.ensure_tenant(tenant_id, name):
            raise Conflict(f"tenant {tenant_id!r} exists already")

    def tenants(self, only: list[str] | None = None) -> list[dict[str, Any]]:
        """All tenants, or those named in ``only``."""
        rows = self._db.execute("SELECT tenant_id, name FROM tenants ORDER BY tenant_id")
        return [{"tenant_id": r[0], "name": r[1]} for r in rows if only is None or r[0] in only]

    def tenant_exists(self, tenant_id: str) -> bool:
        """Whether the tenant exists."""
        row = self._db.execute("SELECT 1 FROM tenants WHERE tenant_id = ?", (tenant_id,))
        return row.fetchone() is not None

    # -- users -----------------------------------------------------------------------
    def create_user(self, email: str, password: str, *, superadmin: bool = False) -> User:
        """Create an account after checking the password policy; Conflict if the e-mail is
        taken."""
        email = normalise_email(email)
        self.policy.check(password, email=email)
        user = User(uuid.uuid4().hex, email, self.hasher.hash(password), superadmin, False)
        try:
            self._db.execute(
                "INSERT INTO users (user_id, email, password_hash, superadmin, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (user.user_id, email, user.password_hash, int(superadmin), time.time()),
            )
        except sqlite3.IntegrityError as exc:
            raise Conflict("a user with this e-mail exists already") from exc
        logger.info("user %s created", user.user_id)
        return user

    def by_email(self, email: str) -> User | None:
        """The account with this e-mail, or None."""
        row = self._db.execute(
            "SELECT * FROM users WHERE email = ?", (normalise_email(email),)
        ).fetchone()
        return _user(row) if row is not None else None

    def by_id(self, user_id: str) -> User | None:
        """The account with this id, or None."""
        row = self._db.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone()
        return _user(row) if row is not None else None

    def set_password(self, user_id: str, password: str) -> None:
        """Replace a password (policy checked)."""
        user = self.by_id(user_id)
        if user is None:
            raise NotFound("no such user")
        self.policy.check(password, email=user.email)
        self._db.execute(
            "UPDATE users SET password_hash = ? WHERE user_id = ?",
            (self.hasher.hash(password), user_id),
        )

    def rehash(self, user_id: str, password: str) -> None:
        """Store a fresh hash of a verified password (after a parameter change)."""
        self._db.execute(
            "UPDATE users SET password_hash = ? WHERE user_id = ?",
            (self.hasher.hash(password), user_id),
        )

    # -- memberships -----------------------------------------------------------------
    def require_tenant(self, tenant_id: str) -> None:
        """Raise NotFound unless the tenant exists."""
        if not self.tenant_exists(tenant_id):
            raise NotFound(f"no tenant {tenant_id!r}")

    def assign(self, tenant_id: str, user_id: str, role: Role) -> None:
        """Give a user ``role`` in a tenant (replacing the one they had)."""
        self.require_tenant(tenant_id)
        self._db.execute(
            "INSERT INTO memberships (tenant_id, user_id, role) VALUES (?, ?, ?) "
            "ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role",
            (tenant_id, user_id, role.value),
        )

    def set_role(self, tenant_id: str, user_id: str, role: Role) -> None:
        """Change the role of an existing member; NotFound when not a member."""
        cur = self._db.execute(
            "UPDATE memberships SET role = ? WHERE tenant_id = ? AND user_id = ?",
            (role.value, tenant_id, user_id),
        )
        if cur.rowcount != 1:
            raise NotFound("no such member in this tenant")

    def remove(self, tenant_id: str, user_id: str) -> None:
        """Take a user's role in a tenant away; NotFound when not a member."""
        cur = self._db.execute(
            "DELETE FROM memberships WHERE tenant_id = ? AND user_id = ?", (tenant_id, user_id)
        )
        if cur.rowcount != 1:
            raise NotFound("no such member in this tenant")

    def members(self, tenant_id: str) -> list[dict[str, Any]]:
        """The users of a tenant with their role."""
        rows = self._db.execute(
            """SELECT u.user_id, u.email, m.role FROM memberships m
               JOIN users u ON u.user_id = m.user_id WHERE m.tenant_id = ? ORDER BY u.email""",
            (tenant_id,),
        )
        return [{"user_id": r[0], "email": r[1], "role": r[2]} for r in rows]

    def roles(self, user_id: str) -> dict[str, Role]:
        """tenant id -> the user's role there."""
        rows = self._db.execute(
            "SELECT tenant_id, role FROM memberships WHERE user_id = ?", (user_id,)
        )
        return {r[0]: Role(r[1]) for r in rows}

    def identity(self, user: User, family_id: str | None = None) -> Identity:
        """The identity requests of this user act as (roles read fresh from the database)."""
        return Identity(
            subject=user.user_id,
            roles=self.roles(user.user_id),
            superadmin=user.superadmin,
            email=user.email,
            family_id=family_id,
        )


def _user(row: sqlite3.Row) -> User:
    return User(
        row["user_id"],
        row["email"],
        row["password_hash"],
        bool(row["superadmin"]),
        bool(row["disabled"]),
    )
