"""Device enrolment over the API: claim tokens, enrolment, the enrolled devices, revocation
(the rules are ``konak.hub.security.enrolment``'s)."""

from __future__ import annotations

import shlex

from aiohttp import web

from konak.hub.api import voice
from konak.hub.api.http import declare, identity_of, note, read_json
from konak.hub.api.schemas import ClaimBody, EnrollBody
from konak.hub.keys import AUTH, LIVE
from konak.hub.security import enrolment
from konak.hub.security.rbac import Action


@declare(Action.DEVICES_CLAIM)
async def create_claim(request: web.Request) -> web.Response:
    """Mint a one-time claim token for this tenant (shown once)."""
    state = request.app[AUTH]
    tenant = request.match_info["tenant"]
    state.users.require_tenant(tenant)
    body = await read_json(request, ClaimBody)
    claim = enrolment.mint_claim(
        state, tenant, identity_of(request).subject, body.expires_in_seconds, body.device
    )
    note(request, target="claim")
    answer = {
        "token": claim.token,
        "tenant": tenant,
        "expires_at": claim.expires_at,
        "claim_id": claim.claim_id,
        "enroll_command": enroll_command(state.settings.public_url, claim.token, body.device),
    }
    if body.device is not None:
        answer["device"] = body.device
    return web.json_response(answer, status=201)


def enroll_command(public_url: str, token: str, device: str | None) -> str:
    """The command that enrols a device with ``token`` (its name is the operator's to fill
    in, unless the token is for one device id: that id is a name that derives to itself)."""
    name = device if device is not None else "Device name"
    return shlex.join(
        ["konak", "daemon", "enroll", "--hub", public_url, "--token", token, "--name", name]
    )


@declare(Action.ENROLL)
async def enroll(request: web.Request) -> web.Response:
    """A device redeems a claim token and receives its own broker login."""
    state = request.app[AUTH]
    enrolment.provisioner_of(state)
    body = await read_json(request, EnrollBody)
    redeemed = enrolment.redeem(state, body.token, body.name, body.device)
    tenant, device = redeemed.tenant, redeemed.device
    note(request, tenant=tenant, actor=f"device:{device}", target=f"device:{device}")
    login = await enrolment.enrol(state, redeemed, body.name, body.area)
    await voice.send_published(request.app, tenant, device, body.name, body.area)
    _listed(request, tenant, device)
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
    state.users.require_tenant(tenant)
    return web.json_response({"devices": state.claims.devices(tenant)})


@declare(Action.DEVICES_REVOKE)
async def revoke_device(request: web.Request) -> web.Response:
    """Revoke a device: its broker login is deleted and its connection closed."""
    state = request.app[AUTH]
    enrolment.provisioner_of(state)
    tenant, device = request.match_info["tenant"], request.match_info["device"]
    note(request, target=f"device:{device}")
    await enrolment.revoke(state, tenant, device)
    _listed(request, tenant, device)
    return web.Response(status=204)


def _listed(request: web.Request, tenant: str, device: str) -> None:
    """The consoles watching the fleet see the device (un)enrolled at once."""
    live = request.app.get(LIVE)  # absent from an app serving the API alone
    if live is not None:
        live.device_listed(tenant, device)
