"""Claim tokens over the API: the tenant's claims (by id, never the token) and revoking an
unused one (the rules are ``konak.hub.security.enrolment``'s)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from konak.hub.api.http import declare, note, tenant_state
from konak.hub.api.openapi import ApiRoute
from konak.hub.security import enrolment
from konak.hub.security.rbac import Action


@declare(Action.DEVICES_CLAIM)
async def list_claims(request: web.Request) -> web.Response:
    """The tenant's claim tokens, newest first: when, by whom, until when, used by whom."""
    state, tenant = tenant_state(request)
    return web.json_response({"claims": state.claims.claims(tenant)})


@declare(Action.DEVICES_CLAIM)
async def revoke_claim(request: web.Request) -> web.Response:
    """Revoke an unused claim token: no device can enrol with it any more."""
    state, tenant = tenant_state(request)
    claim_id = request.match_info["claim_id"]
    note(request, target=f"claim:{claim_id[:12]}")
    enrolment.revoke_claim(state, tenant, claim_id)
    return web.Response(status=204)


T: Final = "/api/tenants/{tenant}"
ROUTES: Final = (
    ApiRoute("GET", f"{T}/claims", list_claims, "claims"),
    ApiRoute("DELETE", f"{T}/claims/{{claim_id}}", revoke_claim, "revoke_claim", None, 204),
)
