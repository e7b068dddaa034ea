"""Device enrolment over the API: claim tokens, enrolment, the enrolled devices, revocation."""

from __future__ import annotations

import logging

from aiohttp import web

from konak.hub.auth.errors import (
    NotEnabled,
    NotFound,
    QuotaExceeded,
    Unauthenticated,
    Unavailable,
)
from konak.hub.auth.http import AUTH, AuthState, identity_of, note, read_json
from konak.hub.auth.rbac import Action, declare
from konak.hub.auth.schemas import ClaimBody, EnrollBody
from konak.provisioning.claims import ClaimError, Provisioner, device_id_for
from konak.provisioning.dynsec import DynsecError

logger = logging.getLogger(__name__)


def _provisioner(state: AuthState) -> Provisioner:
    if state.provisioner is None:
        raise NotEnabled("device provisioning is not enabled on this hub")
    return state.provisioner


@declare(Action.DEVICES_CLAIM)
async def create_claim(request: web.Request) -> web.Response:
    """Mint a one-time claim token for this tenant (shown once)."""
    state = request.app[AUTH]
    tenant = request.match_info["tenant"]
    if not state.users.tenant_exists(tenant):
        raise NotFound(f"no tenant {tenant!r}")
    body = await read_json(request, ClaimBody)
    ttl = body.expires_in_seconds or state.settings.claim_token_seconds
    claim = state.claims.mint(tenant, identity_of(request).subject, float(ttl))
    note(request, target="claim")
    return web.json_response(
        {"token": claim.token, "tenant": tenant, "expires_at": claim.expires_at}, status=201
    )


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


@declare(Action.ENROLL)
async def enroll(request: web.Request) -> web.Response:
    """A device redeems a claim token and receives its own broker login."""
    state = request.app[AUTH]
    provisioner = _provisioner(state)
    body = await read_json(request, EnrollBody)
    try:
        device = body.device or device_id_for(body.name)
        tenant = state.claims.redeem(body.token, device)
    except ClaimError as exc:
        raise Unauthenticated(exc.message, code=exc.code) from exc
    note(request, tenant=tenant, actor=f"device:{device}", target=f"device:{device}")
    async with state.enrol_lock:  # the device count is checked and raised atomically
        _check_device_quota(state, tenant, device, body.token)
        try:
            login = await provisioner.create_device(tenant, device)
        except DynsecError as exc:
            state.claims.release(body.token)  # the token stays usable for a retry
            logger.warning("enrolment of %s/%s failed at the broker: %s", tenant, device, exc.code)
            raise Unavailable("the broker could not create the device's login") from exc
        state.claims.record(tenant, device, body.name, body.area, login.username)
    logger.info("device %s/%s enrolled", tenant, device)
    host, port = state.broker_address
    return web.json_response(
        {
            "tenant": tenant,
            "device": device,
            "name": body.name,
            "area": body.area,
            "broker": {
                "host": host,
                "port": port,
                "username": login.username,
                "password": login.password,
            },
        },
        status=201,
    )


@declare(Action.DEVICES_READ)
async def list_devices(request: web.Request) -> web.Response:
    """The tenant's enrolled devices."""
    state = request.app[AUTH]
    tenant = request.match_info["tenant"]
    if not state.users.tenant_exists(tenant):
        raise NotFound(f"no tenant {tenant!r}")
    return web.json_response({"devices": state.claims.devices(tenant)})


@declare(Action.DEVICES_REVOKE)
async def revoke_device(request: web.Request) -> web.Response:
    """Revoke a device: its broker login is deleted and its connection closed."""
    state = request.app[AUTH]
    provisioner = _provisioner(state)
    tenant, device = request.match_info["tenant"], request.match_info["device"]
    note(request, target=f"device:{device}")
    if not state.claims.is_active(tenant, device):
        raise NotFound("no such enrolled device in this tenant")
    try:
        await provisioner.revoke_device(tenant, device)
    except DynsecError as exc:
        logger.warning("revocation of %s/%s failed at the broker: %s", tenant, device, exc.code)
        raise Unavailable("the broker could not delete the device's login") from exc
    state.claims.mark_revoked(tenant, device)
    logger.info("device %s/%s revoked", tenant, device)
    return web.Response(status=204)
