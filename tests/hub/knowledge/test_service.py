"""KnowledgeService on both real backends (sqlite-vec and PostgreSQL + pgvector): isolation,
filters, upsert, chunking, delete, transactions, quotas and dimensions."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from konak.hub.knowledge.service import KnowledgeService
from konak.hub.knowledge.types import (
    BackendUnavailable,
    CollectionExists,
    CollectionNotFound,
    DocumentIn,
    InvalidDocument,
    InvalidFilter,
    QuotaExceeded,
)
from konak.hub.quotas import TenantQuota

from .conftest import DIM

NOTES = [
    DocumentIn("wifi", "The guest wifi password is tulip42.", {"room": "hall", "floor": 0}),
    DocumentIn("bin", "The bin is collected on Tuesday morning.", {"room": "kitchen", "floor": 0}),
    DocumentIn(
        "boiler", "The boiler code is 1234.", {"room": "cellar", "floor": -1, "tags": ["x"]}
    ),
]


def unit(seed: int) -> list[float]:
    vec = np.random.default_rng(seed).standard_normal(DIM)
    return list(vec / np.linalg.norm(vec))


async def test_a_tenant_never_sees_another_tenants_documents_even_with_the_same_ids(
    service: KnowledgeService,
) -> None:
    for tenant in ("acme", "globex"):
        await service.create_collection(tenant, "notes")
    await service.upsert("acme", "notes", NOTES)
    await service.upsert("globex", "notes", [DocumentIn("wifi", "Globex wifi is secret9.")])

    acme = await service.search("acme", ["notes"], text="guest wifi password", k=10)
    globex = await service.search("globex", None, text="guest wifi password", k=10)

    assert {h.doc_id for h in acme} == {"wifi", "bin", "boiler"}
    assert [(h.doc_id, h.text) for h in globex] == [("wifi", "Globex wifi is secret9.")]
    assert [p.text for p in await service.get_document("globex", "notes", "wifi")] == [
        "Globex wifi is secret9."
    ]
    assert (await service.usage("globex")).vectors == 1
    assert await service.search("initech", None, text="wifi") == []
    assert await service.list_collections("initech") == []
    with pytest.raises(CollectionNotFound):
        await service.search("initech", ["notes"], text="wifi")


async def test_search_ranks_the_nearest_passage_first_with_a_cosine_score(
    service: KnowledgeService,
) -> None:
    await service.create_collection("acme", "notes", "house notes")
    await service.upsert("acme", "notes", NOTES)

    hits = await service.search("acme", ["notes"], text="what is the guest wifi password", k=2)

    assert next(h.doc_id for h in hits) == "wifi"
    assert hits[0].collection == "notes"
    assert hits[0].metadata == {"room": "hall", "floor": 0}
    assert 0 < hits[0].score <= 1.0
    assert hits[0].score > hits[1].score
    info = await service.get_collection("acme", "notes")
    assert (info.documents, info.passages, info.dim, info.description) == (3, 3, DIM, "house notes")


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"room": "hall"}, {"wifi"}),
        ({"room": {"$eq": "kitchen"}}, {"bin"}),
        ({"room": {"$ne": "hall"}}, {"bin", "boiler"}),
        ({"floor": {"$gt": -1}}, {"wifi", "bin"}),
        ({"floor": {"$gte": -1}}, {"wifi", "bin", "boiler"}),
        ({"floor": {"$lt": 0}}, {"boiler"}),
        ({"floor": {"$lte": 0, "$gt": -5}}, {"wifi", "bin", "boiler"}),
        ({"room": {"$in": ["hall", "cellar", "attic"]}}, {"wifi", "boiler"}),
        ({"room": {"$gte": "h"}}, {"wifi", "bin"}),
        ({"tags": "x"}, {"boiler"}),
        ({"tags": {"$ne": "x"}}, {"wifi", "bin"}),
        ({"room": "hall", "floor": 0}, {"wifi"}),
        ({"room": "hall", "floor": 1}, set()),
        ({"floor": False}, set()),
        ({}, {"wifi", "bin", "boiler"}),
    ],
)
async def test_every_filter_operator_selects_the_matching_documents(
    service: KnowledgeService, where: dict[str, Any], expected: set[str]
) -> None:
    await service.create_collection("acme", "notes")
    await service.upsert("acme", "notes", NOTES)

    hits = await service.search("acme", ["notes"], text="wifi", k=10, filter=where)

    assert {h.doc_id for h in hits} == expected


@pytest.mark.parametrize(
    "where",
    [
        [1, 2],
        "room",
        {"room": {"$regex": ".*"}},
        {"room": {"$in": []}},
        {"room": {"$in": "hall"}},
        {"room": ["hall"]},
        {"room": {"nested": {"$eq": 1}}},
        {"$or": [{"room": "hall"}]},
        {"": 1},
        {"room": {"$gt": True}},
        {"room": {"$lt": None}},
        {"room": {"$eq": {"a": 1}}},
        {"room": float("nan")},
        {"room": 2**70},
        {"room": "x" * 5000},
        {"room": "a\x00b"},
        {"room'; DROP TABLE passages; --": 1} | {"$x": 1},
        {"room": {}},
        {f"k{i}": i for i in range(40)},
    ],
)
async def test_a_hostile_filter_is_refused_with_a_clear_message(
    service: KnowledgeService, where: Any
) -> None:
    await service.create_collection("acme", "notes")
    await service.upsert("acme", "notes", NOTES)

    with pytest.raises(InvalidFilter) as err:
        await service.search("acme", ["notes"], text="wifi", filter=where)

    assert "\n" not in err.value.message
    assert err.value.message.startswith("filter")
    assert len(await service.search("acme", ["notes"], text="wifi")) == 3  # nothing broken


async def test_a_quoted_field_name_is_data_not_sql(service: KnowledgeService) -> None:
    await service.create_collection("acme", "notes")
    odd = "room'\"); DROP TABLE passages; --"
    await service.upsert("acme", "notes", [DocumentIn("a", "alpha", {odd: "x\"'"})])

    hits = await service.search("acme", ["notes"], text="alpha", filter={odd: "x\"'"})

    assert [h.doc_id for h in hits] == ["a"]


async def test_upsert_by_id_replaces_the_document_and_all_its_old_passages(
    service: KnowledgeService,
) -> None:
    await service.create_collection("acme", "notes")
    long = " ".join(f"Sentence {i} talks about the garden shed." for i in range(20))
    assert await service.upsert("acme", "notes", [DocumentIn("doc", long, {"v": 1})]) > 2

    written = await service.upsert("acme", "notes", [DocumentIn("doc", "Short now.", {"v": 2})])

    passages = await service.get_document("acme", "notes", "doc")
    assert written == 1
    assert [(p.id, p.text, p.metadata) for p in passages] == [("doc", "Short now.", {"v": 2})]
    assert (await service.usage("acme")).vectors == 1
    info = await service.get_collection("acme", "notes")
    assert (info.documents, info.passages) == (1, 1)


async def test_long_text_is_chunked_into_numbered_overlapping_passages(
    service: KnowledgeService,
) -> None:
    await service.create_collection("acme", "notes")
    text = " ".join(f"Fact number {i} is about item {i}." for i in range(30))

    written = await service.upsert("acme", "notes", [DocumentIn("facts", text, {"k": 1})])

    passages = await service.get_document("acme", "notes", "facts")
    assert written == len(passages) > 1
    assert [p.id for p in passages] == [f"facts#{n}" for n in range(1, written + 1)]
    assert all(len(p.text) <= 200 and p.metadata == {"k": 1} for p in passages)
    assert all(p.vector.dtype == np.float32 and p.vector.shape == (DIM,) for p in passages)
    for before, after in itertools.pairwise(passages):
        assert after.text.split(".")[0] in before.text  # the next starts with the last sentence
    hits = await service.search("acme", ["notes"], text="fact number 27 item 27", k=1)
    assert "Fact number 27" in hits[0].text


async def test_delete_documents_removes_them_from_search_and_counts(
    service: KnowledgeService,
) -> None:
    await service.create_collection("acme", "notes")
    await service.upsert("acme", "notes", NOTES)

    assert await service.delete_documents("acme", "notes", ["wifi", "nothing"]) == 1

    assert {h.doc_id for h in await service.search("acme", ["notes"], text="wifi")} == {
        "bin",
        "boiler",
    }
    assert await service.get_document("acme", "notes", "wifi") == []
    assert (await service.usage("acme")).vectors == 2
    await service.delete_collection("acme", "notes")
    assert await service.list_collections("acme") == []
    assert (await service.usage("acme")).vectors == 0
    with pytest.raises(CollectionNotFound):
        await service.delete_collection("acme", "notes")


async def test_an_exception_inside_a_transaction_leaves_nothing_written(
    service: KnowledgeService,
) -> None:
    await service.create_collection("acme", "notes")
    await service.upsert("acme", "notes", NOTES[:1])
    changes: list[tuple[str, str]] = []
    service.on_change(lambda tenant, collection: changes.append((tenant, collection)))

    async def import_then_fail() -> None:
        async with service.transaction("acme", "notes") as writer:
            await writer.upsert(NOTES[1:])
            await writer.delete(["wifi"])
            raise RuntimeError("line 3 is corrupt")

    with pytest.raises(RuntimeError, match="line 3 is corrupt"):
        await import_then_fail()

    assert {h.doc_id for h in await service.search("acme", ["notes"], text="bin")} == {"wifi"}
    assert (await service.usage("acme")).vectors == 1
    assert changes == []
    async with service.transaction("acme", "notes") as writer:
        assert await writer.upsert(NOTES[1:]) == 2
    assert changes == [("acme", "notes")]
    assert (await service.usage("acme")).vectors == 3


@pytest.mark.parametrize(
    ("quota", "name"),
    [
        (TenantQuota(max_vectors=3), "max_vectors"),
        (TenantQuota(max_vector_bytes=3 * (DIM * 4 + 100)), "max_vector_bytes"),
    ],
)
async def test_a_write_over_quota_is_refused_with_nothing_written(
    service: KnowledgeService, quotas: dict[str, TenantQuota], quota: TenantQuota, name: str
) -> None:
    quotas["acme"] = quota
    await service.create_collection("acme", "notes")
    await service.create_collection("globex", "notes")
    await service.upsert("acme", "notes", NOTES[:2])
    before = await service.usage("acme")
    docs = [DocumentIn(f"n{i}", f"note {i}", vector=unit(i)) for i in range(2)]

    with pytest.raises(QuotaExceeded) as err:
        await service.upsert("acme", "notes", docs)

    assert err.value.quota == name
    assert err.value.code == "quota_exceeded"
    assert await service.usage("acme") == before
    assert await service.get_document("acme", "notes", "n0") == []

    async def delete_then_overflow() -> None:
        async with service.transaction("acme", "notes") as writer:
            await writer.delete(["wifi"])
            await writer.upsert([*docs, DocumentIn("n2", "two", vector=unit(2))])

    with pytest.raises(QuotaExceeded):  # inside a transaction, the earlier write is undone too
        await delete_then_overflow()
    assert await service.usage("acme") == before
    # Replacing a document in place stays within the quota; other tenants are not limited.
    await service.upsert("acme", "notes", [DocumentIn("wifi", "The wifi is tulip43.")])
    assert await service.upsert("globex", "notes", docs * 1) == 2


async def test_a_vector_of_the_wrong_dimension_is_refused(service: KnowledgeService) -> None:
    await service.create_collection("acme", "notes")

    with pytest.raises(InvalidDocument, match=r"documents\[0\]\.vector: 3 dimensions"):
        await service.upsert("acme", "notes", [DocumentIn("a", "x", vector=[1.0, 0.0, 0.0])])
    with pytest.raises(InvalidDocument, match="vector: 3 dimensions"):
        await service.search("acme", ["notes"], vector=[1.0, 0.0, 0.0])

    assert await service.search("acme", None, vector=[1.0, 0.0, 0.0]) == []  # none of that size


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (DocumentIn("", "x"), r"documents\[1\]\.id"),
        (DocumentIn("a#1", "x"), r"documents\[1\]\.id"),
        (DocumentIn("x" * 201, "x"), r"documents\[1\]\.id"),
        (DocumentIn("a", "  "), r"documents\[1\]\.text"),
        (DocumentIn("a", "nul\x00"), r"documents\[1\]\.text"),
        (DocumentIn("a", "x", {"k": {"nested": 1}}), r"documents\[1\]\.metadata\.k"),
        (DocumentIn("a", "x", {"$k": 1}), r"documents\[1\]\.metadata"),
        (DocumentIn("a", "x", {"k": float("inf")}), r"documents\[1\]\.metadata\.k"),
        (DocumentIn("a", "x", vector=[0.0] * DIM), r"documents\[1\]\.vector"),
        (DocumentIn("a", "x", vector=[float("nan")] * DIM), r"documents\[1\]\.vector"),
    ],
)
async def test_an_invalid_document_is_refused_naming_its_field(
    service: KnowledgeService, doc: DocumentIn, field: str
) -> None:
    await service.create_collection("acme", "notes")

    with pytest.raises(InvalidDocument, match=field):
        await service.upsert("acme", "notes", [NOTES[0], doc])

    assert (await service.usage("acme")).vectors == 0


async def test_given_vectors_are_stored_normalised_and_searchable_by_vector(
    service: KnowledgeService,
) -> None:
    await service.create_collection("acme", "vecs")
    docs = [
        DocumentIn(f"v{i}", f"vector {i}", {"i": i}, [x * 3 for x in unit(i)]) for i in range(20)
    ]

    assert await service.upsert("acme", "vecs", docs) == 20

    hits = await service.search("acme", ["vecs"], vector=unit(7), k=3, filter={"i": {"$lt": 10}})
    assert hits[0].doc_id == "v7"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert all(h.metadata["i"] < 10 for h in hits)
    exported = [p async for batch in service.export("acme", "vecs", batch=6) for p in batch]
    assert [p.id for p in exported] == [f"v{i}" for i in range(20)]
    assert np.allclose(np.linalg.norm(np.stack([p.vector for p in exported]), axis=1), 1.0)


async def test_collections_are_created_once_and_named_safely(service: KnowledgeService) -> None:
    info = await service.create_collection("acme", "notes", "about the house")

    with pytest.raises(CollectionExists):
        await service.create_collection("acme", "notes")
    with pytest.raises(InvalidDocument, match="name"):
        await service.create_collection("acme", "../etc")
    assert [c.name for c in await service.list_collections("acme")] == ["notes"]
    assert info.model == "all-minilm-l6-v2"
    assert info.dim == DIM
    with pytest.raises(CollectionNotFound):
        await service.upsert("acme", "other", NOTES)


async def test_without_a_model_text_search_is_unavailable_but_vectors_work(
    open_service: Callable[..., Any],
) -> None:
    service = await open_service(None)
    try:
        await service.create_collection("acme", "notes")
        with pytest.raises(BackendUnavailable, match="konak models pull all-minilm-l6-v2"):
            await service.search("acme", ["notes"], text="wifi")
        with pytest.raises(BackendUnavailable):
            await service.upsert("acme", "notes", [DocumentIn("a", "needs embedding")])
        await service.upsert("acme", "notes", [DocumentIn("a", "given", vector=unit(1))])
        hits = await service.search("acme", ["notes"], vector=unit(1))
        assert [h.doc_id for h in hits] == ["a"]
    finally:
        await service.close()


@pytest.mark.expect_error_log(match="subscriber bug")
async def test_a_change_callback_that_fails_is_logged_and_the_write_stands(
    service: KnowledgeService,
) -> None:
    await service.create_collection("acme", "notes")
    seen: list[tuple[str, str]] = []

    def broken(tenant: str, collection: str) -> None:
        raise ValueError("subscriber bug")

    service.on_change(broken)
    service.on_change(lambda tenant, collection: seen.append((tenant, collection)))
    await service.upsert("acme", "notes", NOTES[:1])

    assert seen == [("acme", "notes")]
    assert (await service.usage("acme")).vectors == 1
