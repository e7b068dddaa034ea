"""Claim tokens and the enrolled devices of each tenant.

An operator mints a one-time claim token for a tenant (stored as its SHA-256, shown once);
a device presents it once to enrol and receives its own broker login. Revoking a device
deletes its broker identity, which disconnects it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Protocol

from konak.errors import KonakError
from konak.protocol.topics import is_identifier
from konak.provisioning.dynsec import DeviceLogin

_NOT_ID = re.compile(r"[^a-z0-9-]+")
CLAIM_ID_CHARS = 12  # a claim's public id: the first hex digits of its token's SHA-256
MAX_CLAIMS_LISTED = 500


class ClaimError(KonakError):
    """A claim token is unknown, used or expired (one code for all: no oracle)."""

    code = "claim_invalid"


class Provisioner(Protocol):
    """Creates and deletes per-device broker identities."""

    async def create_device(self, tenant: str, device: str) -> DeviceLogin:
        """A fresh login allowed exactly the device's own topics."""
        ...

    async def revoke_device(self, tenant: str, device: str) -> None:
        """Delete the identity; a connected device is disconnected."""
        ...


@dataclass(frozen=True, slots=True)
class Claim:
    """A minted claim token; ``token`` is shown once."""

    tenant_id: str
    token: str
    expires_at: float

    @property
    def claim_id(self) -> str:
        """The id the token is listed and revoked by (never the token itself)."""
        return _sha256(self.token)[:CLAIM_ID_CHARS]


@dataclass(frozen=True, slots=True)
class Redeemed:
    """A redeemed claim: its tenant, and whether it was minted for the device redeeming it
    (only such a token may replace an enrolled, unrevoked device)."""

    tenant_id: str
    for_device: bool


def device_id_for(name: str) -> str:
    """A topic-safe device id from a human name ("Kitchen Pi" -> "kitchen-pi")."""
    slug = _NOT_ID.sub("-", name.strip().lower()).strip("-")[:48]
    if not slug or not is_identifier(slug):
        raise ClaimError(f"cannot make a device id from {name!r}", code="bad_device_name")
    return slug


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Claims:
    """Claim tokens and enrolled devices, tenant-scoped, in the hub database (whose schema,
    these tables included, is ``konak.hub.database``'s)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def mint(
        self, tenant_id: str, created_by: str, ttl_seconds: float, device_id: str | None = None
    ) -> Claim:
        """A new one-time claim token for a tenant; with ``device_id`` it enrols only that
        device, and may replace it while it is enrolled (a re-enrolment)."""
        if device_id is not None and not is_identifier(device_id):
            raise ClaimError(f"invalid device id {device_id!r}", code="bad_device_name")
        token = "kc_" + secrets.token_urlsafe(24)
        now = time.time()
        self._db.execute(
            """INSERT INTO claim_tokens (token_sha256, tenant_id, created_by, created_at,
                   expires_at, for_device) VALUES (?, ?, ?, ?, ?, ?)""",
            (_sha256(token), tenant_id, created_by, now, now + ttl_seconds, device_id),
        )
        return Claim(tenant_id, token, now + ttl_seconds)

    def redeem(self, token: str, device_id: str) -> Redeemed:
        """Use a claim token once for ``device_id``. ClaimError when unknown, used, expired
        or minted for another device (one answer for all: no oracle)."""
        now = time.time()
        row = self._db.execute(
            """UPDATE claim_tokens SET used_at = ?, device_id = ?
               WHERE token_sha256 = ? AND used_at IS NULL AND expires_at > ?
                   AND (for_device IS NULL OR for_device = ?)
               RETURNING tenant_id, for_device""",
            (now, device_id, _sha256(token), now, device_id),
        ).fetchone()
        if row is None:
            raise ClaimError("the claim token is unknown, used or expired")
        return Redeemed(str(row[0]), row[1] is not None)

    def claims(self, tenant_id: str) -> list[dict[str, Any]]:
        """The tenant's claim tokens, newest first (by id: the token is never shown again)."""
        rows = self._db.execute(
            """SELECT token_sha256, created_at, created_by, expires_at, used_at, device_id,
                   for_device FROM claim_tokens WHERE tenant_id = ?
               ORDER BY created_at DESC LIMIT ?""",
            (tenant_id, MAX_CLAIMS_LISTED),
        )
        return [
            {
                "claim_id": r[0][:CLAIM_ID_CHARS],
                "created_at": r[1],
                "created_by": r[2],
                "expires_at": r[3],
                "used_at": r[4],
                "device": r[5],
                "for_device": r[6],
            }
            for r in rows
        ]

    def revoke_claim(self, tenant_id: str, claim_id: str) -> None:
        """Make an unused claim token of the tenant unusable (it expires now). ClaimError
        ``claim_not_found`` when the tenant has no such token, ``claim_used`` when a device
        redeemed it already (revoke the device instead)."""
        if len(claim_id) != CLAIM_ID_CHARS or not all(c in "0123456789abcdef" for c in claim_id):
            raise ClaimError("no such claim token in this tenant", code="claim_not_found")
        now = time.time()
        cur = self._db.execute(
            """UPDATE claim_tokens SET expires_at = min(expires_at, ?)
               WHERE tenant_id = ? AND substr(token_sha256, 1, ?) = ? AND used_at IS NULL""",
            (now, tenant_id, CLAIM_ID_CHARS, claim_id),
        )
        if cur.rowcount:
            return
        used = self._db.execute(
            "SELECT 1 FROM claim_tokens WHERE tenant_id = ? AND substr(token_sha256, 1, ?) = ?",
            (tenant_id, CLAIM_ID_CHARS, claim_id),
        ).fetchone()
        if used is None:
            raise ClaimError("no such claim token in this tenant", code="claim_not_found")
        raise ClaimError(
            "this claim token was used already: revoke the device it enrolled instead",
            code="claim_used",
        )

    def release(self, token: str) -> None:
        """Make a redeemed token usable again (its enrolment failed half-way)."""
        self._db.execute(
            "UPDATE claim_tokens SET used_at = NULL, device_id = NULL WHERE token_sha256 = ?",
            (_sha256(token),),
        )

    def is_active(self, tenant_id: str, device_id: str) -> bool:
        """Whether the tenant has this device enrolled and not revoked."""
        row = self._db.execute(
            """SELECT 1 FROM enrolled_devices
               WHERE tenant_id = ? AND device_id = ? AND revoked_at IS NULL""",
            (tenant_id, device_id),
        ).fetchone()
        return row is not None

    def record(
        self, tenant_id: str, device_id: str, name: str, area: str | None, user: str
    ) -> None:
        """Note an enrolment (a re-enrolment replaces the earlier one)."""
        self._db.execute(
            """INSERT INTO enrolled_devices (tenant_id, device_id, name, area, username,
                   enrolled_at) VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (tenant_id, device_id) DO UPDATE SET name = excluded.name,
                   area = excluded.area, username = excluded.username,
                   enrolled_at = excluded.enrolled_at, revoked_at = NULL""",
            (tenant_id, device_id, name, area, user, time.time()),
        )

    def devices(self, tenant_id: str) -> list[dict[str, Any]]:
        """The enrolled devices of a tenant."""
        rows = self._db.execute(
            """SELECT device_id, name, area, enrolled_at, revoked_at FROM enrolled_devices
               WHERE tenant_id = ? ORDER BY device_id""",
            (tenant_id,),
        )
        return [
            {
                "device": r[0],
                "name": r[1],
                "area": r[2],
                "enrolled_at": r[3],
                "revoked": r[4] is not None,
            }
            for r in rows
        ]

    def count_active(self, tenant_id: str) -> int:
        """Enrolled, unrevoked devices of a tenant."""
        row = self._db.execute(
            "SELECT count(*) FROM enrolled_devices WHERE tenant_id = ? AND revoked_at IS NULL",
            (tenant_id,),
        ).fetchone()
        return int(row[0])

    def mark_revoked(self, tenant_id: str, device_id: str) -> bool:
        """Mark a device revoked; False when the tenant has no such active device."""
        cur = self._db.execute(
            """UPDATE enrolled_devices SET revoked_at = ?
               WHERE tenant_id = ? AND device_id = ? AND revoked_at IS NULL""",
            (time.time(), tenant_id, device_id),
        )
        return cur.rowcount == 1


class DynsecProvisioner:
    """The Provisioner on Mosquitto's dynamic-security plugin (one admin session per call)."""

    def __init__(self, host: str, port: int, username: str, password: str) -> None:
        self._host, self._port = host, port
        self._username, self._password = username, password

    def _admin(self) -> Any:
        from konak.provisioning.dynsec import DynsecAdmin

        return DynsecAdmin(self._host, self._port, self._username, self._password)

    async def create_device(self, tenant: str, device: str) -> DeviceLogin:
        """Create (or re-create with a new password) a device's broker identity."""
        import asyncio

        def run() -> DeviceLogin:
            with self._admin() as admin:
                login: DeviceLogin = admin.create_device(tenant, device)
                return login

        return await asyncio.to_thread(run)

    async def revoke_device(self, tenant: str, device: str) -> None:
        """Delete a device's broker identity (disconnecting it)."""
        import asyncio

        def run() -> None:
            with self._admin() as admin:
                admin.revoke_device(tenant, device)

        await asyncio.to_thread(run)
