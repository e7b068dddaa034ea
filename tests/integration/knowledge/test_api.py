"""The knowledge API through the whole hub over HTTP, on real sqlite-vec files: collections,
documents, filtered search, roles, another tenant as an attacker, hostile bodies."""

from __future__ import annotations

import io
from typing import Any

import pytest

from tests.integration.knowledge.conftest import TINY_QUOTA, Hub, jsonl, vector

pytestmark = pytest.mark.integration

ROOMS = {"wifi": "hall", "bins": "kitchen", "oven": "kitchen", "boiler": "cellar"}


async def seed(hub: Hub, tenant: str = "acme", email: str = "operator@acme.test") -> None:
    """A collection "house" with four documents, each with its room and floor."""
    resp = await hub.call("POST", "/collections", email, tenant, json={"name": "house"})
    assert resp.status == 201, await resp.text()
    docs = [
        {
            "id": doc_id,
            "text": f"about the {doc_id}",
            "metadata": {"room": room, "floor": n, "tags": ["home", doc_id]},
            "vector": vector(n),
        }
        for n, (doc_id, room) in enumerate(ROOMS.items())
    ]
    resp = await hub.call(
        "POST", "/collections/house/documents", email, tenant, json={"documents": docs}
    )
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"documents": 4, "passages": 4}


async def search(hub: Hub, body: dict[str, Any], email: str = "readonly@acme.test") -> list[Any]:
    result = await hub.ok("POST", "/search", email, json=body)
    hits: list[Any] = result["hits"]
    return hits


async def test_collections_and_documents_are_created_read_and_deleted(hub: Hub) -> None:
    await seed(hub)

    listed = await hub.ok("GET", "/collections", "readonly@acme.test")
    info = await hub.ok("GET", "/collections/house", "member@acme.test")
    doc = await hub.ok("GET", "/collections/house/documents/oven", "readonly@acme.test")
    await hub.ok("DELETE", "/collections/house/documents/oven")
    gone = await hub.call("GET", "/collections/house/documents/oven", "readonly@acme.test")
    again = await hub.call("DELETE", "/collections/house/documents/oven", "operator@acme.test")
    twice = await hub.call("POST", "/collections", "operator@acme.test", json={"name": "house"})
    await hub.ok("DELETE", "/collections/house")
    missing = await hub.call("GET", "/collections/house", "readonly@acme.test")

    assert [c["name"] for c in listed["collections"]] == ["house"]
    assert (info["documents"], info["passages"], info["dim"]) == (4, 4, 384)
    assert doc == {
        "id": "oven",
        "collection": "house",
        "passages": [
            {
                "id": "oven",
                "text": "about the oven",
                "metadata": {"room": "kitchen", "floor": 2, "tags": ["home", "oven"]},
            }
        ],
    }
    assert (gone.status, (await gone.json())["error"]["code"]) == (404, "document_not_found")
    assert again.status == 404
    assert (twice.status, (await twice.json())["error"]["code"]) == (409, "collection_exists")
    assert (missing.status, (await missing.json())["error"]["code"]) == (
        404,
        "collection_not_found",
    )


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        (None, {"wifi", "bins", "oven", "boiler"}),
        ({"room": "kitchen"}, {"bins", "oven"}),
        ({"room": {"$ne": "kitchen"}}, {"wifi", "boiler"}),
        ({"floor": {"$gte": 1, "$lt": 3}}, {"bins", "oven"}),
        ({"room": {"$in": ["hall", "cellar"]}}, {"wifi", "boiler"}),
        ({"room": "kitchen", "floor": {"$gt": 1}}, {"oven"}),
        ({"room": "attic"}, set()),
    ],
)
async def test_search_over_http_honours_the_metadata_filter_and_ranks_by_score(
    hub: Hub, filter_: Any, expected: set[str]
) -> None:
    await seed(hub)

    hits = await search(hub, {"vector": vector(1), "k": 10, "filter": filter_})

    assert {h["doc_id"] for h in hits} == expected
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    if "bins" in expected:
        assert (hits[0]["doc_id"], hits[0]["collection"]) == ("bins", "house")
        assert hits[0]["score"] == pytest.approx(1.0, abs=1e-5)


async def test_search_takes_k_and_names_collections(hub: Hub) -> None:
    await seed(hub)
    await hub.ok("POST", "/collections", json={"name": "empty"})

    top = await search(hub, {"vector": vector(0), "k": 2})
    only_empty = await search(hub, {"vector": vector(0), "collections": ["empty"]})
    unknown = await hub.call(
        "POST", "/search", "readonly@acme.test", json={"vector": vector(0), "collections": ["x"]}
    )

    assert [h["doc_id"] for h in top][:1] == ["wifi"]
    assert len(top) == 2
    assert only_empty == []
    assert unknown.status == 404


# (method, path after /knowledge, body) of every knowledge route, and the action it takes.
ROUTES: list[tuple[str, str, Any, str]] = [
    ("GET", "/collections", None, "read"),
    ("GET", "/collections/house", None, "read"),
    ("GET", "/collections/house/documents/oven", None, "read"),
    ("POST", "/search", {"vector": vector(0)}, "read"),
    ("GET", "/jobs", None, "read"),
    ("POST", "/collections", {"name": "more"}, "write"),
    (
        "POST",
        "/collections/house/documents",
        {"documents": [{"id": "x", "text": "x", "vector": vector(9)}]},
        "write",
    ),
    ("DELETE", "/collections/house/documents/wifi", None, "write"),
    ("DELETE", "/collections/house", None, "write"),
    ("POST", "/embed", {"texts": ["hello"]}, "write"),
    ("POST", "/collections/house/import", b"", "import"),
    ("DELETE", "/jobs/0123456789abcdef", None, "import"),
    ("GET", "/collections/house/export.jsonl", None, "export"),
    ("GET", "/collections/house/export.csv", None, "export"),
]
MAY = {
    "readonly": {"read"},
    "member": {"read"},
    "operator": {"read", "write", "import", "export"},
    "admin": {"read", "write", "import", "export"},
}


async def request(hub: Hub, route: tuple[str, str, Any, str], email: str, tenant: str) -> Any:
    method, path, body, _ = route
    if isinstance(body, bytes):
        kw: dict[str, Any] = {"data": body, "headers": {"Content-Type": "application/x-ndjson"}}
    else:
        kw = {"json": body} if body is not None else {}
    return await hub.call(method, path, email, tenant, **kw)


@pytest.mark.parametrize("role", list(MAY))
async def test_each_role_takes_exactly_the_knowledge_actions_of_the_role_table(
    hub: Hub, role: str
) -> None:
    await seed(hub)
    statuses = {}
    for route in ROUTES:
        resp = await request(hub, route, f"{role}@acme.test", "acme")
        statuses[(route[0], route[1])] = (resp.status, route[3])

    for (method, path), (status, needs) in statuses.items():
        if needs in MAY[role]:
            assert status not in (401, 403), f"{role} may {method} {path}"
        else:
            assert status == 403, f"{role} may not {method} {path}: {status}"


async def test_an_attacker_with_an_account_in_another_tenant_sees_and_touches_nothing(
    hub: Hub,
) -> None:
    await seed(hub)
    imported = await hub.ok(
        "POST",
        "/collections/house/import",
        data=jsonl(3, start=100),
        headers={"Content-Type": "application/x-ndjson"},
    )
    before = await hub.ok("GET", "/collections/house", "admin@acme.test")
    attacker = "admin@globex.test"

    # Through acme's URLs: every route, as if acme did not exist.
    for route in ROUTES:
        resp = await request(hub, route, attacker, "acme")
        assert resp.status == 404, f"{route[0]} {route[1]}: {resp.status}"
    job = await hub.call("GET", f"/jobs/{imported['job_id']}", attacker, "acme")
    assert job.status == 404
    # Through the attacker's own tenant, guessing acme's names and ids.
    for route in ROUTES:
        resp = await request(hub, route, attacker, "globex")
        if route[1] not in ("/collections", "/search", "/jobs", "/embed"):
            assert resp.status == 404, f"{route[0]} {route[1]}: {resp.status}"
    assert (await hub.call("GET", f"/jobs/{imported['job_id']}", attacker, "globex")).status == 404
    cancel = await hub.call("DELETE", f"/jobs/{imported['job_id']}", attacker, "globex")
    assert cancel.status == 404
    own = await hub.ok("GET", "/collections", attacker, tenant="globex")
    jobs = await hub.ok("GET", "/jobs", attacker, tenant="globex")
    hits = await hub.ok("POST", "/search", attacker, tenant="globex", json={"vector": vector(1)})
    assert [c["name"] for c in own["collections"]] == ["more"]  # made by the loop above
    assert (jobs, hits) == ({"jobs": []}, {"hits": []})
    await hub.ok("POST", "/collections", attacker, tenant="globex", json={"name": "house"})
    hits = await hub.ok("POST", "/search", attacker, tenant="globex", json={"vector": vector(1)})
    assert hits == {"hits": []}  # the same collection name is another tenant's store
    after = await hub.ok("GET", "/collections/house", "admin@acme.test")
    assert (after["documents"], after["passages"]) == (before["documents"], before["passages"])


async def test_a_write_over_the_tenants_vector_quota_is_refused_and_writes_nothing(
    hub: Hub,
) -> None:
    await hub.ok("POST", "/collections", "admin@tiny.test", tenant="tiny", json={"name": "n"})
    docs = [{"id": f"d{i}", "text": "t", "vector": vector(i)} for i in range(TINY_QUOTA + 1)]

    resp = await hub.call(
        "POST", "/collections/n/documents", "admin@tiny.test", "tiny", json={"documents": docs}
    )
    upload = await hub.call(
        "POST",
        "/collections/n/import",
        "admin@tiny.test",
        "tiny",
        data=jsonl(TINY_QUOTA + 5),
        headers={"Content-Type": "application/x-ndjson"},
    )
    fits = await hub.call(
        "POST",
        "/collections/n/documents",
        "admin@tiny.test",
        "tiny",
        json={"documents": docs[:TINY_QUOTA]},
    )

    assert (resp.status, (await resp.json())["error"]["code"]) == (429, "quota_exceeded")
    assert (upload.status, (await upload.json())["error"]["code"]) == (429, "quota_exceeded")
    assert fits.status == 200
    info = await hub.ok("GET", "/collections/n", "admin@tiny.test", tenant="tiny")
    assert info["documents"] == TINY_QUOTA


DEEP = ("[" * 5000).encode()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/collections", b'{"name": "Bad Name"}', 400, "invalid_body"),
        ("POST", "/collections", b'{"name": 7}', 400, "invalid_body"),
        ("POST", "/collections", b"\xff\xfe{}", 400, "invalid_body"),
        ("POST", "/collections", DEEP, 400, "invalid_body"),
        ("POST", "/search", b'{"text": "a", "vector": [1]}', 400, "invalid_body"),
        ("POST", "/search", b'{"vector": [1], "filter": {"a": {"$regex": "x"}}}', 400, None),
        ("POST", "/search", b'{"vector": [1], "filter": {"a": {"b": {"c": 1}}}}', 400, None),
        ("POST", "/search", b'{"vector": [1], "k": 1000}', 400, "invalid_body"),
        (
            "POST",
            "/search",
            b'{"vector": [1, 2], "collections": ["house"]}',
            422,
            "invalid_document",
        ),
        ("POST", "/search", b'{"vector": [0, 0, 0]}', 422, "invalid_document"),
        ("POST", "/embed", b'{"texts": []}', 400, "invalid_body"),
        (
            "POST",
            "/collections/house/documents",
            b'{"documents": [{"id": "a", "text": "t", "metadata": {"x": {"y": 1}}}]}',
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/collections/house/documents",
            b'{"documents": [{"id": "a", "text": "t", "vector": [1, 2, 3]}]}',
            422,
            "invalid_document",
        ),
        (
            "POST",
            "/collections/house/documents",
            b'{"documents": [{"id": "a", "text": "t", "vector": ["1"]}]}',
            400,
            "invalid_body",
        ),
        ("POST", "/collections/house/documents", b"x" * (5 << 20), 413, "body_too_large"),
        (
            "POST",
            "/collections/house/documents",
            b'{"documents": [{"id": "a", "text": "nul \\u0000 inside"}]}',
            400,
            "invalid_body",
        ),
        ("POST", "/search", b'{"vector": [1], "filter": {"a": "\\u0000"}}', 400, None),
        ("POST", "/search", b'{"text": "\\u0000 x"}', 400, "invalid_body"),
        ("GET", "/collections/house/documents/a%00b", None, 404, "document_not_found"),
        ("DELETE", "/collections/house/documents/%01", None, 404, "document_not_found"),
        ("GET", "/collections/..%2F..%2Fetc", None, 404, None),
        ("GET", "/collections/%00", None, 404, None),
        ("GET", "/collections/" + "a" * 300, None, 404, None),
        ("GET", "/jobs?limit=0", None, 400, "invalid_query"),
        ("GET", "/jobs/..%2F..", None, 404, "job_not_found"),
    ],
)
async def test_a_hostile_request_gets_a_clear_4xx_never_a_5xx(
    hub: Hub, method: str, path: str, body: bytes | None, status: int, code: str | None
) -> None:
    await seed(hub)
    headers = {"Content-Type": "application/json"}

    data = io.BytesIO(body) if body is not None else None
    resp = await hub.call(method, path, "admin@acme.test", data=data, headers=headers)

    answer = await resp.json()
    assert resp.status == status, answer
    if code is not None:
        assert answer["error"]["code"] == code
    assert answer["error"]["message"]


async def test_without_the_model_embedding_answers_unavailable_and_says_how_to_install_it(
    hub: Hub,
) -> None:
    resp = await hub.call("POST", "/embed", "operator@acme.test", json={"texts": ["x"]})

    answer = await resp.json()
    assert (resp.status, answer["error"]["code"]) == (503, "knowledge_unavailable")
    assert "konak models pull all-minilm-l6-v2" in answer["error"]["message"]
