"""Access JWTs (short-lived, signed with a key chosen by ``kid``) and rotating refresh tokens.

A refresh token is used once: refreshing returns a new one of the same family. Presenting
a used one again means it was stolen (or replayed), so the whole family is revoked, which
also invalidates the family's access tokens at once.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from konak.hub.errors import ConfigError
from konak.hub.security.errors import Unauthenticated
from konak.hub.security.settings import AuthSettings, SigningKey

logger = logging.getLogger(__name__)

ACCESS_TYPE: Final = "access"
LEEWAY_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or refresh returns; shown once."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of a login/refresh response."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": int(self.expires_in_seconds),
        }


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """A verified access token."""

    user_id: str
    family_id: str


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    """Issues and checks tokens; refresh-token state lives in the hub database."""

    def __init__(self, settings: AuthSettings, db: sqlite3.Connection) -> None:
        self._settings = settings
        self._db = db
        self._keys: dict[str, tuple[SigningKey, Any, Any]] = {}
        for key in settings.keys:
            self._keys[key.kid] = (key, *_material(key))

    # -- access tokens -----------------------------------------------------------------
    def _access(self, user_id: str, family_id: str, now: float) -> str:
        import jwt

        kid = self._settings.active_kid
        assert kid is not None
        key, signing, _ = self._keys[kid]
        claims = {
            "iss": self._settings.issuer,
            "sub": user_id,
            "fam": family_id,
            "typ": ACCESS_TYPE,
            "iat": int(now),
            "exp": int(now + self._settings.access_token_seconds),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, signing, algorithm=key.algorithm, headers={"kid": kid})

    def verify_access(self, token: str) -> AccessClaims:
        """Check signature (with the key its ``kid`` names), expiry, issuer and that its family
        is not revoked; raise Unauthenticated otherwise."""
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("malformed access token", code="token_invalid") from exc
        entry = self._keys.get(str(header.get("kid")))
        if entry is None:
            raise Unauthenticated("access token signed with an unknown key", code="token_invalid")
        key, _, verifying = entry
        try:
            claims = jwt.decode(
                token,
                verifying,
                algorithms=[key.algorithm],
                issuer=self._settings.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "iss", "fam", "typ"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("access token expired", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("invalid access token", code="token_invalid") from exc
        if claims.get("typ") != ACCESS_TYPE:
            raise Unauthenticated("not an access token", code="token_invalid")
        family = str(claims["fam"])
        row = self._db.execute(
            "SELECT revoked_at FROM token_families WHERE family_id = ?", (family,)
        ).fetchone()
        if row is None or row[0] is not None:
            raise Unauthenticated("this session was signed out", code="token_revoked")
        return AccessClaims(str(claims["sub"]), family)

    # -- refresh tokens ----------------------------------------------------------------
    def issue(self, user_id: str, now: float | None = None) -> tuple[TokenPair, str]:
        """Start a session: a new family with its first refresh token; returns (pair, family)."""
        now = time.time() if now is None else now
        family = uuid.uuid4().hex
        self._db.execute(
            "INSERT INTO token_families (family_id, user_id, created_at) VALUES (?, ?, ?)",
            (family, user_id, now),
        )
        return self._pair(user_id, family, now), family

    def _pair(self, user_id: str, family: str, now: float) -> TokenPair:
        refresh = secrets.token_urlsafe(32)
        self._db.execute(
            "INSERT INTO refresh_tokens (token_sha256, family_id, issued_at, expires_at) "
            "VALUES (?, ?, ?, ?)",
            (_sha256(refresh), family, now, now + self._settings.refresh_token_seconds),
        )
        access = self._access(user_id, family, now)
        return TokenPair(access, refresh, self._settings.access_token_seconds)

    def rotate(self, refresh_token: str, now: float | None = None) -> tuple[TokenPair, str]:
        """Exchange a refresh token for a new pair; reuse revokes the family. Returns the
        pair and the user id."""
        now = time.time() if now is None else now
        row = self._db.execute(
            """SELECT r.family_id, r.expires_at, r.used_at, f.user_id, f.revoked_at
               FROM refresh_tokens r JOIN token_families f ON f.family_id = r.family_id
               WHERE r.token_sha256 = ?""",
            (_sha256(refresh_token),),
        ).fetchone()
        if row is None:
            raise Unauthenticated("unknown refresh token", code="token_invalid")
        family, expires_at, used_at, user_id, revoked_at = row
        if revoked_at is not None:
            raise Unauthenticated("this session was signed out", code="token_revoked")
        if used_at is not None:
            self.revoke_family(family, "refresh_reuse", now)
            logger.warning("refresh token reused: session family %s revoked", family)
            raise Unauthenticated("refresh token reused; session revoked", code="token_reused")
        if expires_at <= now:
            raise Unauthenticated("refresh token expired", code="token_expired")
        cur = self._db.execute(
            "UPDATE refresh_tokens SET used_at = ? WHERE token_sha256 = ? AND used_at IS NULL",
            (now, _sha256(refresh_token)),
        )
        if cur.rowcount != 1:  # lost a race with a concurrent use of the same token
            self.revoke_family(family, "refresh_reuse", now)
            raise Unauthenticated("refresh token reused; session revoked", code="token_reused")
        return self._pair(user_id, family, now), user_id

    def revoke_family(self, family_id: str, reason: str, now: float | None = None) -> None:
        """Sign a session out: its refresh and access tokens stop working."""
        self._db.execute(
            "UPDATE token_families SET revoked_at = ?, revoked_reason = ? "
            "WHERE family_id = ? AND revoked_at IS NULL",
            (time.time() if now is None else now, reason, family_id),
        )

    def revoke_user(self, user_id: str, reason: str) -> int:
        """Sign a user out everywhere; returns how many sessions were open."""
        cur = self._db.execute(
            "UPDATE token_families SET revoked_at = ?, revoked_reason = ? "
            "WHERE user_id = ? AND revoked_at IS NULL",
            (time.time(), reason, user_id),
        )
        return cur.rowcount


def _material(key: SigningKey) -> tuple[Any, Any]:
    """(signing, verifying) key objects for PyJWT."""
    if key.algorithm == "HS256":
        return key.secret, key.secret
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.serialization import (
        load_pem_private_key,
        load_pem_public_key,
    )

    try:
        private = (
            load_pem_private_key(key.private_key_pem.encode(), password=None)
            if key.private_key_pem
            else None
        )
        public = (
            load_pem_public_key(key.public_key_pem.encode())
            if key.public_key_pem
            else private.public_key()
            if private is not None
            else None
        )
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"auth.keys.{key.kid}: not a usable PEM key: {exc}") from exc
    if not isinstance(public, Ed25519PublicKey) or not (
        private is None or isinstance(private, Ed25519PrivateKey)
    ):
        raise ConfigError(f"auth.keys.{key.kid}: EdDSA keys must be Ed25519")
    return private, public
