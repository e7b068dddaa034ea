"""Bulk import and export jobs through the whole hub over HTTP: a 10,000-document round trip,
an import embedded by the real model, a corrupt line, cancel (seen on the event stream),
limits."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientPayloadError

from tests.hub.knowledge.test_jobs import Gate
from tests.integration.knowledge.conftest import (
    WAIT_SECONDS,
    Hub,
    HubFactory,
    jsonl,
    next_event,
)

pytestmark = pytest.mark.integration

NDJSON = {"Content-Type": "application/x-ndjson"}
CSV = {"Content-Type": "text/csv"}


async def create(hub: Hub, name: str) -> None:
    await hub.ok("POST", "/collections", json={"name": name})


async def upload(hub: Hub, name: str, data: Any, headers: dict[str, str] = NDJSON) -> Any:
    resp = await hub.call(
        "POST", f"/collections/{name}/import", "operator@acme.test", data=data, headers=headers
    )
    return resp.status, await resp.json()


async def export(hub: Hub, name: str, fmt: str) -> tuple[bytes, Any]:
    resp = await hub.call("GET", f"/collections/{name}/export.{fmt}", "operator@acme.test")
    assert resp.status == 200, await resp.text()
    return await resp.read(), resp.headers


async def test_ten_thousand_documents_round_trip_through_import_and_export(hub: Hub) -> None:
    source = jsonl(10_000)
    await create(hub, "big")
    await create(hub, "copy")

    status, job = await upload(hub, "big", io.BytesIO(source))
    exported, headers = await export(hub, "big", "jsonl")
    csv_exported, csv_headers = await export(hub, "big", "csv")
    csv_status, csv_job = await upload(hub, "copy", io.BytesIO(csv_exported), CSV)
    again_status, again = await upload(hub, "big", io.BytesIO(source))  # idempotent

    assert (status, job["state"], job["documents"], job["written"]) == (
        200,
        "succeeded",
        10_000,
        10_000,
    )
    assert headers["Content-Type"] == "application/x-ndjson"
    assert csv_headers["Content-Type"].startswith("text/csv")
    sent = [json.loads(line) for line in source.splitlines()]
    back = [json.loads(line) for line in exported.splitlines()]
    assert len(back) == 10_000
    by_id = {d["id"]: d for d in back}
    for doc in sent[::997]:
        got = by_id[doc["id"]]
        assert (got["text"], got["metadata"]) == (doc["text"], doc["metadata"])
        norm = sum(x * x for x in doc["vector"]) ** 0.5
        assert got["vector"] == pytest.approx([x / norm for x in doc["vector"]], abs=1e-6)
    assert (csv_status, csv_job["documents"]) == (200, 10_000)
    assert (again_status, again["documents"]) == (200, 10_000)
    for name in ("big", "copy"):
        info = await hub.ok("GET", f"/collections/{name}", "readonly@acme.test")
        assert (info["documents"], info["passages"]) == (10_000, 10_000)
    audit = await hub.client.get(
        "/api/tenants/acme/audit", headers=await hub.headers("admin@acme.test")
    )
    records = [(r["action"], r["target"]) for r in (await audit.json())["entries"]]
    assert ("knowledge.import", "knowledge:big") in records
    assert ("knowledge.export", "knowledge:big/export.jsonl") in records
    assert ("knowledge.export", "knowledge:big/export.csv") in records
    jobs = await hub.ok("GET", "/jobs", "readonly@acme.test")
    assert [(j["kind"], j["state"]) for j in jobs["jobs"]] == [
        ("import", "succeeded"),
        ("import", "succeeded"),
        ("export", "succeeded"),
        ("export", "succeeded"),
        ("import", "succeeded"),
    ]


async def test_an_import_of_text_is_embedded_by_the_real_model_and_found_by_meaning(
    make_hub: HubFactory,
) -> None:
    hub: Hub = await make_hub(model=True)
    await create(hub, "house")
    notes = {
        "wifi": "The guest wifi network is konak-guest and its password is on the fridge.",
        "bins": "The rubbish bins are collected every Tuesday morning.",
        "boiler": "The boiler is in the cellar; reset it with the red button.",
        "plants": "Water the plants on the balcony twice a week in summer.",
    }
    data = "id,text,room\n" + "".join(f'{k},"{v}",home\n' for k, v in notes.items())

    status, job = await upload(hub, "house", data.encode(), CSV)
    hits = await hub.ok(
        "POST", "/search", "readonly@acme.test", json={"text": "when do they take the trash?"}
    )
    vectors = await hub.ok("POST", "/embed", json={"texts": ["guest wifi password"]})
    by_vector = await hub.ok(
        "POST", "/search", "readonly@acme.test", json={"vector": vectors["vectors"][0], "k": 1}
    )

    assert (status, job["documents"], job["passages"]) == (200, 4, 4)
    assert hits["hits"][0]["doc_id"] == "bins"
    assert hits["hits"][0]["metadata"] == {"room": "home"}
    assert (vectors["model"], vectors["dim"], len(vectors["vectors"][0])) == (
        "all-minilm-l6-v2",
        384,
        384,
    )
    assert by_vector["hits"][0]["doc_id"] == "wifi"


async def test_a_corrupt_line_is_reported_with_its_number_and_nothing_is_imported(
    hub: Hub,
) -> None:
    await create(hub, "notes")
    data = jsonl(2500) + b'{"id": "x", "text": "bad", "vector": [1, "two"]}\n' + jsonl(10, 3000)

    status, answer = await upload(hub, "notes", io.BytesIO(data))
    not_utf8, answer2 = await upload(hub, "notes", io.BytesIO(jsonl(3) + b"\xff\xfe\n"))

    assert status == 422
    assert answer["error"]["code"] == "invalid_import"
    assert answer["error"]["details"][0]["line"] == 2501
    assert answer["error"]["message"].startswith("line 2501: vector.1")
    assert (not_utf8, answer2["error"]["details"][0]["line"]) == (422, 4)
    info = await hub.ok("GET", "/collections/notes", "readonly@acme.test")
    assert info["documents"] == 0
    jobs = await hub.ok("GET", "/jobs", "readonly@acme.test")
    assert jobs["jobs"][1]["error"]["line"] == 2501


async def test_a_cancelled_import_ends_on_the_event_stream_and_writes_nothing(hub: Hub) -> None:
    await create(hub, "notes")
    stream = await hub.client.get(
        "/api/tenants/acme/events", headers=await hub.headers("readonly@acme.test")
    )
    assert stream.status == 200
    slow = Gate(jsonl(500))
    importing = asyncio.create_task(upload(hub, "notes", slow.chunks()))

    running = await next_event(stream, "knowledge_job", lambda d: d["state"] == "running")
    job_id = running["job_id"]
    listed = await hub.ok("GET", "/jobs", "member@acme.test")
    refused = await hub.call("DELETE", f"/jobs/{job_id}", "member@acme.test")
    cancelled = await hub.ok("DELETE", f"/jobs/{job_id}")
    ended = await next_event(stream, "knowledge_job", lambda d: d["state"] != "running")
    status, answer = await asyncio.wait_for(importing, WAIT_SECONDS)
    stream.close()

    assert (running["kind"], running["collection"], running["phase"]) == (
        "import",
        "notes",
        "receiving",
    )
    assert listed["jobs"][0]["state"] == "running"
    assert refused.status == 403
    assert cancelled["state"] == "cancelled"
    assert (ended["job_id"], ended["state"]) == (job_id, "cancelled")
    assert (status, answer["error"]["code"]) == (409, "job_cancelled")
    info = await hub.ok("GET", "/collections/notes", "readonly@acme.test")
    assert info["documents"] == 0
    again = await hub.call("DELETE", f"/jobs/{job_id}", "operator@acme.test")
    assert (again.status, (await again.json())["error"]["code"]) == (409, "job_finished")


async def test_a_tenant_runs_at_most_jobs_per_tenant_at_once(make_hub: HubFactory) -> None:
    hub: Hub = await make_hub(jobs_per_tenant=1)
    await create(hub, "notes")
    slow = Gate(jsonl(10))
    stream = await hub.client.get(
        "/api/tenants/acme/events", headers=await hub.headers("readonly@acme.test")
    )
    first = asyncio.create_task(upload(hub, "notes", slow.chunks()))
    await next_event(stream, "knowledge_job", lambda d: d["state"] == "running")
    stream.close()

    status, refused = await upload(hub, "notes", jsonl(1))
    busy = await hub.call("GET", "/collections/notes/export.jsonl", "operator@acme.test")
    slow.opened.set()
    done_status, done = await asyncio.wait_for(first, WAIT_SECONDS)

    assert (status, refused["error"]["code"]) == (429, "too_many_jobs")
    assert busy.status == 429
    assert "Retry-After" in busy.headers
    assert (done_status, done["documents"]) == (200, 10)


async def test_an_upload_over_max_import_bytes_is_refused_declared_or_streamed(
    make_hub: HubFactory,
) -> None:
    hub: Hub = await make_hub(max_import_bytes=50_000)
    await create(hub, "notes")

    async def streamed() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield jsonl(1) * 2

    declared, answer = await upload(hub, "notes", io.BytesIO(jsonl(100)))
    chunked, answer2 = await upload(hub, "notes", streamed())
    info = await hub.ok("GET", "/collections/notes", "readonly@acme.test")

    assert (declared, answer["error"]["code"]) == (413, "body_too_large")
    assert (chunked, answer2["error"]["code"]) == (413, "import_too_large")
    assert info["documents"] == 0


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"Content-Type": "application/json"}, 415, "unsupported_media_type"),
        ({"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ],
)
async def test_an_upload_of_another_media_type_is_refused(
    hub: Hub, headers: dict[str, str], status: int, code: str
) -> None:
    await create(hub, "notes")

    got, answer = await upload(hub, "notes", jsonl(1), headers)

    assert (got, answer["error"]["code"]) == (status, code)


async def test_importing_or_exporting_a_collection_that_does_not_exist_is_not_found(
    hub: Hub,
) -> None:
    status, answer = await upload(hub, "nothing", jsonl(1))
    resp = await hub.call("GET", "/collections/nothing/export.csv", "operator@acme.test")

    assert (status, answer["error"]["code"]) == (404, "collection_not_found")
    assert resp.status == 404
    assert (await hub.ok("GET", "/jobs", "readonly@acme.test")) == {"jobs": []}


async def test_a_client_that_leaves_mid_upload_fails_the_job_and_nothing_is_written(
    hub: Hub,
) -> None:
    await create(hub, "notes")
    stream = await hub.client.get(
        "/api/tenants/acme/events", headers=await hub.headers("readonly@acme.test")
    )
    assert hub.client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.client.port)
    part = jsonl(50)
    head = (
        "POST /api/tenants/acme/knowledge/collections/notes/import HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        f"Authorization: {(await hub.headers('operator@acme.test'))['Authorization']}\r\n"
        "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    writer.write(head.encode() + f"{len(part):x}\r\n".encode() + part + b"\r\n")
    await writer.drain()
    await next_event(stream, "knowledge_job", lambda d: d["state"] == "running")

    writer.close()  # gone, without the last chunk
    ended = await next_event(stream, "knowledge_job", lambda d: d["state"] != "running")
    stream.close()

    assert (ended["state"], ended["error"]["code"]) == ("failed", "client_gone")
    info = await hub.ok("GET", "/collections/notes", "readonly@acme.test")
    assert info["documents"] == 0
    del reader


async def test_a_cancelled_export_breaks_off_so_the_client_knows_it_is_incomplete(
    hub: Hub,
) -> None:
    await create(hub, "notes")
    await upload(hub, "notes", io.BytesIO(jsonl(5000)))
    resp = await hub.call("GET", "/collections/notes/export.jsonl", "operator@acme.test")
    job_id = resp.headers["X-Konak-Job"]  # the client reads nothing more yet

    cancelled = await hub.ok("DELETE", f"/jobs/{job_id}")
    with pytest.raises(ClientPayloadError):
        await resp.read()

    assert cancelled["state"] == "cancelled"
    assert cancelled["documents"] < 5000
