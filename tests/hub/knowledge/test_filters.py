"""The metadata filter: parsing, and both backends agreeing with the reference evaluator
(``filters.matches``) on any metadata and any filter."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from konak.hub.knowledge.filters import Condition, Filter, matches, parse_filter
from konak.hub.knowledge.types import InvalidFilter, Limits, Passage, VectorBackend

SCALARS = st.sampled_from([None, True, False, 0, 1, -1, 1.5, 2, 10**12, "", "x", "xy", "y", "é"])
ORDERED = st.sampled_from([0, 1, -1, 1.5, 2, "", "x", "xy", "é", "z"])
FIELDS = st.sampled_from(["a", "b", "c d"])
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3))
METADATA = st.dictionaries(FIELDS, VALUES, max_size=3)
OPERATORS = st.one_of(
    st.fixed_dictionaries({"$eq": SCALARS}),
    st.fixed_dictionaries({"$ne": SCALARS}),
    st.fixed_dictionaries({"$in": st.lists(SCALARS, min_size=1, max_size=3)}),
    st.dictionaries(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), ORDERED, min_size=1),
)
FILTERS = st.dictionaries(FIELDS, st.one_of(SCALARS, OPERATORS), max_size=3)
_names = (f"c{n}" for n in itertools.count())


def test_a_plain_value_is_equality_and_operators_on_one_field_are_anded() -> None:
    parsed = parse_filter({"room": "hall", "floor": {"$gte": 1, "$lt": 3}})

    assert parsed == Filter(
        (
            Condition("room", "$eq", ("hall",)),
            Condition("floor", "$gte", (1,)),
            Condition("floor", "$lt", (3,)),
        )
    )
    assert parse_filter({}) is None
    assert parse_filter(None) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"a": {"$regex": "x"}}, "filter.a: unknown operator '$regex'"),
        ({"a": [1]}, 'filter.a: a list needs an operator: {"$in": [...]}'),
        ({"a": {"$in": []}}, "filter.a.$in: must be a non-empty list of values"),
        ({"a": {"$gt": None}}, "filter.a.$gt: ranges compare numbers or strings, not null"),
        ({"a": {"$eq": {"b": 1}}}, "filter.a.$eq: must be a string, number, boolean or null"),
        ({"$and": 1}, "filter: key '$and' must not start with '$'"),
        ("a", "filter: must be a JSON object, not str"),
    ],
)
def test_an_invalid_filter_names_the_field_and_the_problem(raw: Any, message: str) -> None:
    with pytest.raises(InvalidFilter) as err:
        parse_filter(raw)

    assert err.value.message.startswith(message)


def test_the_reference_treats_lists_as_any_element_and_types_as_distinct() -> None:
    tags = {"tags": ["a", "b"], "n": 1}

    assert matches(parse_filter({"tags": "b"}), tags)
    assert not matches(parse_filter({"tags": {"$ne": "b"}}), tags)
    assert matches(parse_filter({"missing": {"$ne": 1}}), tags)
    assert not matches(parse_filter({"n": True}), tags)
    assert not matches(parse_filter({"n": {"$gt": "0"}}), tags)


def test_a_fields_range_bounds_hold_for_one_and_the_same_value() -> None:
    years = {"years": [2019, 2025]}
    assert not matches(parse_filter({"years": {"$gt": 2020, "$lt": 2024}}), years)
    assert matches(parse_filter({"years": {"$gt": 2020, "$lt": 2026}}), years)
    # other conditions on a list hold for any of its values
    assert matches(parse_filter({"years": 2019, "tags": {"$ne": "x"}}), years)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(METADATA, min_size=1, max_size=12), raw=FILTERS)
# a fresh seed found these: a list whose elements each meet one bound but none meets all
@example(docs=[{"a": ["", "x"]}], raw={"a": {"$gt": "", "$gte": "", "$lt": "x"}})
@example(docs=[{"n": [5, 20]}], raw={"n": {"$gte": 10, "$lt": 15}})
@example(docs=[{"n": [5, "m"]}], raw={"n": {"$gte": 1, "$lt": "z"}})
def test_both_backends_select_exactly_what_the_reference_selects(
    backend: VectorBackend, docs: list[dict[str, Any]], raw: dict[str, Any]
) -> None:
    where = parse_filter(raw)
    name = next(_names)
    backend.create_collection("acme", name, "", 4, "m")
    rng = np.random.default_rng(0)
    passages = []
    for i, meta in enumerate(docs):
        vec = rng.standard_normal(4).astype(np.float32)
        passages.append(Passage(f"d{i}", f"d{i}", "text", meta, vec / np.linalg.norm(vec)))
    writer = backend.begin("acme", name)
    writer.upsert(passages, [p.doc_id for p in passages], Limits())
    writer.commit()

    hits = backend.search("acme", [name], np.ones(4, np.float32) / 2, 100, where)

    expected = {p.doc_id for p in passages if matches(where, p.metadata)}
    assert {h.doc_id for h in hits} == expected
    assert [h.metadata for h in hits] == [docs[int(h.doc_id[1:])] for h in hits]
