"""Device enrolment over the API: claim tokens, enrolment, the enrolled devices, revocation."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from konak.hub.auth.errors import (
    Conflict,
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
    claim = state.claims.mint(
        tenant, identity_of(request).subject, float(ttl), device_id=body.device
    )
    note(request, target="claim")
    answer = {"token": claim.token, "tenant": tenant, "expires_at": claim.expires_at}
    if body.device is not None:
        answer["device"] = body.device
    return web.json_response(answer, status=201)


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


def enrolled_check(app: web.Application) -> Callable[[str, str], bool] | None:
    """Whether a tenant's device is enrolled and not revoked, for MQTT ingest; None when
    this hub does not enrol devices (its broker's static logins are then the registry)."""
    if AUTH not in app or app[AUTH].provisioner is None:
        return None
    return app[AUTH].claims.is_active


@declare(Action.ENROLL)
async def enroll(request: web.Request) -> web.Response:
    """A device redeems a claim token and receives its own broker login."""
    state = request.app[AUTH]
    provisioner = _provisioner(state)
    body = await read_json(request, EnrollBody)
    try:
        device = body.device or device_id_for(body.name)
        redeemed = state.claims.redeem(body.token, device)
    except ClaimError as exc:
        raise Unauthenticated(exc.message, code=exc.code) from exc
    tenant = redeemed.tenant_id
    note(request, tenant=tenant, actor=f"device:{device}", target=f"device:{device}")
    async with state.enrol_lock:  # the device count is checked and raised atomically
        _refuse_takeover(state, tenant, device, body.token, for_device=redeemed.for_device)
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
                "client_id": login.client_id,
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
