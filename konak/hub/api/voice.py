"""The tenant's voice config over the API: read, save a revision (validated by hassil), list
the revisions, publish one to every device (the rules are ``konak.hub.voice_config``'s)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Final

from aiohttp import web
from pydantic import Field

from konak.hub.api.errors import Unprocessable
from konak.hub.api.http import declare, identity_of, note, read_json, tenant_state
from konak.hub.api.openapi import ApiRoute
from konak.hub.api.schemas import Body, Query, parse_query
from konak.hub.errors import PublishError
from konak.hub.keys import AUTH, INGEST, STORE
from konak.hub.security.errors import Unavailable
from konak.hub.security.rbac import Action
from konak.hub.security.state import AuthState
from konak.hub.voice_config import (
    MAX_REVISIONS_PAGE,
    Draft,
    Revision,
    TemplatesInvalid,
    VoiceConfigs,
    validate,
)

logger = logging.getLogger(__name__)

IntentName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
ListName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
Template = Annotated[str, Field(min_length=1, max_length=500)]
SlotValue = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
ModelName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]
Language = Annotated[
    str, Field(min_length=2, max_length=16, pattern=r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")
]
Revision_ = Annotated[int, Field(ge=0, le=2**62)]


class WakeWordBody(Body):
    """One wake word model and its detection threshold, strictly between 0 and 1."""

    model: ModelName
    threshold: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]


class VoiceConfigBody(Body):
    """A new revision of the tenant's voice config, made from ``base_revision`` (the latest
    one the editor saw: 409 when another was saved since)."""

    base_revision: Revision_
    language: Language = "en"
    sentences: Annotated[
        dict[IntentName, Annotated[list[Template], Field(min_length=1, max_length=100)]],
        Field(max_length=100),
    ] = Field(default_factory=dict)
    slot_lists: Annotated[
        dict[ListName, Annotated[list[SlotValue], Field(max_length=1000)]], Field(max_length=50)
    ] = Field(default_factory=dict)
    wake_words: Annotated[list[WakeWordBody], Field(max_length=10)] = Field(default_factory=list)


class PublishBody(Body):
    """The revision to publish (by default the latest)."""

    revision: Annotated[int, Field(ge=1, le=2**62)] | None = None


class RevisionsQuery(Query):
    """Paging of the revisions list."""

    limit: Annotated[int, Field(ge=1, le=MAX_REVISIONS_PAGE)] = 50


def _configs(request: web.Request) -> tuple[AuthState, VoiceConfigs, str]:
    state, tenant = tenant_state(request)
    return state, VoiceConfigs(state.db), tenant


@declare(Action.VOICE_READ)
async def get_voice_config(request: web.Request) -> web.Response:
    """The tenant's latest voice config revision (revision 0: none saved yet)."""
    _, configs, tenant = _configs(request)
    return web.json_response(configs.latest(tenant).as_dict())


@declare(Action.VOICE_WRITE)
async def put_voice_config(request: web.Request) -> web.Response:
    """Save a new revision (not yet published); every template must load on the device."""
    _, configs, tenant = _configs(request)
    body = await read_json(request, VoiceConfigBody)
    note(request, target=f"voice-config:{body.base_revision + 1}")
    draft = Draft(
        language=body.language,
        sentences=body.sentences,
        slot_lists=body.slot_lists,
        wake_words=tuple((w.model, w.threshold) for w in body.wake_words),
    )
    try:
        await asyncio.to_thread(validate, draft)  # hassil parses: keep the loop free
    except TemplatesInvalid as exc:
        raise Unprocessable(exc.message, exc.details, code=exc.code) from exc
    saved = configs.save(tenant, body.base_revision, draft, identity_of(request).email)
    return web.json_response(saved.as_dict())


@declare(Action.VOICE_READ)
async def list_revisions(request: web.Request) -> web.Response:
    """The tenant's voice config revisions, newest first."""
    _, configs, tenant = _configs(request)
    query = parse_query(request.query, RevisionsQuery)
    revisions = configs.revisions(tenant, query.limit)
    return web.json_response(
        {"revisions": [{"revision": r.revision, **r.stamp()} for r in revisions]}
    )


def devices_of(request: web.Request, state: AuthState, tenant: str) -> list[tuple[str, Any, Any]]:
    """(device, name, area) of each device a config goes to: the enrolled, unrevoked ones;
    on a hub that enrols none (the broker's static logins), the devices that reported."""
    if state.provisioner is not None:
        return [
            (d["device"], d["name"], d["area"])
            for d in state.claims.devices(tenant)
            if not d["revoked"]
        ]
    store = request.app.get(STORE)
    return [(d.device_id, d.name, d.area) for d in store.devices(tenant)] if store else []


async def send(app: web.Application, revision: Revision, device: str, name: Any, area: Any) -> None:
    """Publish ``revision`` as the retained config of one device (PublishError on failure)."""
    ingest = app.get(INGEST)
    if ingest is None:
        raise PublishError("this hub has no broker link")
    await ingest.publish(revision.message(device, name, area))


@declare(Action.VOICE_WRITE)
async def publish(request: web.Request) -> web.Response:
    """Publish a revision (by default the latest) to every device of the tenant, retained."""
    state, configs, tenant = _configs(request)
    body = await read_json(request, PublishBody)
    if body.revision is None:
        revision = configs.latest(tenant)
        if revision.revision == 0:
            raise Unprocessable("no voice config revision saved yet", code="nothing_to_publish")
    else:
        revision = configs.get(tenant, body.revision)
    note(request, target=f"voice-config:{revision.revision}")
    if request.app.get(INGEST) is None:
        raise Unavailable("this hub has no broker link to publish on")
    sent: list[str] = []
    for device, name, area in devices_of(request, state, tenant):
        try:
            await send(request.app, revision, device, name, area)
        except PublishError as exc:
            logger.warning("voice config to %s/%s not published: %s", tenant, device, exc)
            raise Unavailable(
                f"the broker did not take the config for {device} ({len(sent)} sent); publish "
                "again once it is reachable"
            ) from exc
        sent.append(device)
    configs.mark_published(revision)
    logger.info(
        "tenant %s published voice config %d to %d device(s)", tenant, revision.revision, len(sent)
    )
    return web.json_response({"revision": revision.revision, "devices": sent})


async def send_published(
    app: web.Application, tenant: str, device: str, name: str, area: str | None
) -> None:
    """Give a device enrolled just now the tenant's published revision (when there is one
    and a broker link); a failure is logged, the enrolment stands."""
    state = app[AUTH]
    revision = VoiceConfigs(state.db).published(tenant)
    if revision is None or app.get(INGEST) is None:
        return
    try:
        await send(app, revision, device, name, area)
    except PublishError as exc:
        logger.warning("voice config to enrolled %s/%s not published: %s", tenant, device, exc)


T: Final = "/api/tenants/{tenant}"
ROUTES: Final = (
    ApiRoute("GET", f"{T}/voice-config", get_voice_config, "voice_config"),
    ApiRoute("PUT", f"{T}/voice-config", put_voice_config, "save_voice_config", VoiceConfigBody),
    ApiRoute(
        "GET",
        f"{T}/voice-config/revisions",
        list_revisions,
        "voice_revisions",
        None,
        200,
        RevisionsQuery,
    ),
    ApiRoute("POST", f"{T}/voice-config/publish", publish, "publish_voice_config", PublishBody),
)
