"""Device enrolment: claim tokens, redeeming one for the device's own broker login, the
device quota, and revocation."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from konak.hub.security.errors import (
    Conflict,
    NotEnabled,
    NotFound,
    QuotaExceeded,
    Unauthenticated,
    Unavailable,
)
from konak.hub.security.state import AuthState
from konak.provisioning.claims import Claim, ClaimError, Provisioner, Redeemed, device_id_for
from konak.provisioning.dynsec import DeviceLogin, DynsecError

logger = logging.getLogger(__name__)


def provisioner_of(state: AuthState) -> Provisioner:
    """The hub's provisioner; NotEnabled when it enrols no devices."""
    if state.provisioner is None:
        raise NotEnabled("device provisioning is not enabled on this hub")
    return state.provisioner


def mint_claim(
    state: AuthState, tenant: str, by: str, ttl_seconds: int | None, device: str | None
) -> Claim:
    """A one-time claim token for ``tenant`` (for one device id when ``device`` is given)."""
    ttl = ttl_seconds or state.settings.claim_token_seconds
    return state.claims.mint(tenant, by, float(ttl), device_id=device)


def revoke_claim(state: AuthState, tenant: str, claim_id: str) -> None:
    """Make an unused claim token of ``tenant`` unusable; NotFound or Conflict otherwise."""
    try:
        state.claims.revoke_claim(tenant, claim_id)
    except ClaimError as exc:
        error = Conflict if exc.code == "claim_used" else NotFound
        raise error(exc.message, code=exc.code) from exc
    logger.info("claim token %s of %s revoked", claim_id, tenant)


@dataclass(frozen=True, slots=True)
class Redemption:
    """A claim token redeemed for a device id (the login is not created yet)."""

    token: str
    tenant: str
    device: str
    for_device: bool


def redeem(state: AuthState, token: str, name: str, device: str | None) -> Redemption:
    """Redeem a claim token for ``device`` (by default the id derived from ``name``)."""
    try:
        device_id = device or device_id_for(name)
        redeemed: Redeemed = state.claims.redeem(token, device_id)
    except ClaimError as exc:
        raise Unauthenticated(exc.message, code=exc.code) from exc
    return Redemption(token, redeemed.tenant_id, device_id, redeemed.for_device)


async def enrol(state: AuthState, redeemed: Redemption, name: str, area: str | None) -> DeviceLogin:
    """Create the redeemed device's broker login and record it; a refusal keeps the token."""
    provisioner = provisioner_of(state)
    tenant, device, token = redeemed.tenant, redeemed.device, redeemed.token
    async with state.enrol_lock:  # the device count is checked and raised atomically
        _refuse_takeover(state, tenant, device, token, for_device=redeemed.for_device)
        _check_device_quota(state, tenant, device, token)
        try:
            login = await provisioner.create_device(tenant, device)
        except DynsecError as exc:
            state.claims.release(token)  # the token stays usable for a retry
            logger.warning("enrolment of %s/%s failed at the broker: %s", tenant, device, exc.code)
            raise Unavailable("the broker could not create the device's login") from exc
        state.claims.record(tenant, device, name, area, login.username)
    logger.info("device %s/%s enrolled", tenant, device)
    return login


def _check_device_quota(state: AuthState, tenant: str, device: str, token: str) -> None:
    max_devices = state.quotas.of(tenant).max_devices
    if (
        max_devices is not None
        and not state.claims.is_active(tenant, device)  # re-enrolment replaces, not adds
        and state.claims.count_active(tenant) >= max_devices
    ):
        state.claims.release(token)  # usable once a device is revoked
        logger.info("enrolment of %s/%s refused: max_devices %d", tenant, device, max_devices)
        raise QuotaExceeded(f"this tenant may enrol at most {max_devices} devices")


def _refuse_takeover(
    state: AuthState, tenant: str, device: str, token: str, *, for_device: bool
) -> None:
    """Any claim token of a tenant would otherwise replace the login of any of its enrolled
    devices (a leaked token takes a device over): only a token minted for that device may
    re-enrol it while it is active; otherwise it must be revoked first."""
    if for_device or not state.claims.is_active(tenant, device):
        return
    state.claims.release(token)  # still good for a device id that is free
    logger.warning("enrolment of %s/%s refused: the device is enrolled", tenant, device)
    raise Conflict(
        f"device {device!r} is already enrolled in this tenant; revoke it first, or use a "
        "claim token minted for it",
        code="device_enrolled",
    )


async def revoke(state: AuthState, tenant: str, device: str) -> None:
    """Revoke a device: its broker login is deleted (the broker closes its connection)."""
    provisioner = provisioner_of(state)
    if not state.claims.is_active(tenant, device):
        raise NotFound("no such enrolled device in this tenant")
    try:
        await provisioner.revoke_device(tenant, device)
    except DynsecError as exc:
        logger.warning("revocation of %s/%s failed at the broker: %s", tenant, device, exc.code)
        raise Unavailable("the broker could not delete the device's login") from exc
    state.claims.mark_revoked(tenant, device)
    logger.info("device %s/%s revoked", tenant, device)
