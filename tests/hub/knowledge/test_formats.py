"""The bulk formats: JSON lines and CSV read one line at a time, every error naming its line."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from konak.hub.knowledge.formats import (
    DocumentRecord,
    InvalidImport,
    csv_header,
    csv_lines,
    jsonl_lines,
    lines,
    read_documents,
)
from konak.hub.knowledge.types import Passage


async def chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read(fmt: str, data: bytes) -> list[DocumentRecord]:
    return [d async for d in read_documents(fmt, lines(chunks(data)))]  # type: ignore[arg-type]


async def test_lines_are_numbered_across_chunk_boundaries_and_crlf_is_dropped() -> None:
    got = [x async for x in lines(chunks(b"one\r\ntwo\n\nthree"))]

    assert got == [(1, b"one"), (2, b"two"), (3, b""), (4, b"three")]


async def test_a_line_longer_than_the_limit_is_refused_with_its_number() -> None:
    with pytest.raises(InvalidImport) as caught:
        _ = [x async for x in lines(chunks(b"ok\n" + b"x" * 100), max_line_bytes=50)]

    assert caught.value.line == 2


async def test_jsonl_documents_are_read_and_blank_lines_skipped() -> None:
    data = (
        b'{"id": "a", "text": "alpha", "metadata": {"n": 1, "tags": ["x", "y"]}}\n\n'
        b'{"id": "b", "text": "beta", "vector": [1, 0.5]}\n'
    )

    docs = await read("jsonl", data)

    assert [(d.id, d.text, d.metadata, d.vector) for d in docs] == [
        ("a", "alpha", {"n": 1, "tags": ["x", "y"]}, None),
        ("b", "beta", {}, [1.0, 0.5]),
    ]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (b"{not json", "Invalid JSON"),
        (b'{"id": "c"}', "text"),
        (b'{"id": "c", "text": "t", "metadata": {"deep": {"x": 1}}}', "metadata.deep"),
        (b'{"id": "c", "text": "t", "extra": 1}', "extra"),
        (b'{"id": 3, "text": "t"}', "id"),
        (b'{"id": "c", "text": "t", "vector": [1, "x"]}', "vector"),
        (b'{"id": "c", "text": "\xff\xfe"}', "not UTF-8"),
        (b"[" * 10_000, "Invalid JSON"),
    ],
)
async def test_a_bad_jsonl_line_is_reported_with_its_number_and_problem(
    bad: bytes, problem: str
) -> None:
    data = b'{"id": "a", "text": "alpha"}\n\n' + bad + b"\n"

    with pytest.raises(InvalidImport) as caught:
        await read("jsonl", data)

    assert caught.value.line == 3
    assert problem in caught.value.message
    assert caught.value.message.startswith("line 3: ")


async def test_csv_records_may_span_lines_and_extra_columns_become_metadata() -> None:
    data = (
        "\ufeffid,text,room,metadata,vector\r\n"
        'wifi,"The guest wifi is ""konak-guest"",\nthe password is on the fridge",kitchen,'
        '"{""floor"": 1}",\n'
        'bins,Bins go out on Tuesday,,,"[1, 0]"\n'
    ).encode()

    docs = await read("csv", data)

    assert [(d.id, d.text, d.metadata, d.vector) for d in docs] == [
        (
            "wifi",
            'The guest wifi is "konak-guest",\nthe password is on the fridge',
            {"floor": 1, "room": "kitchen"},
            None,
        ),
        ("bins", "Bins go out on Tuesday", {}, [1.0, 0.0]),
    ]


@pytest.mark.parametrize(
    ("data", "line", "problem"),
    [
        (b"name,body\nx,y\n", 1, "'id' and 'text'"),
        (b"id,text\na,alpha\nb\n", 3, "1 fields where the header has 2"),
        (b'id,text,metadata\na,alpha,"[1]"\n', 2, "not a JSON object"),
        (b"id,text,vector\na,alpha,[1\n", 2, "not valid JSON"),
        (b'id,text\na,"never closed\nmore\n', 2, "not closed"),
        (b"id,text,bad name\na,alpha,1\n", 2, "metadata.bad name"),
        (b"", 1, "no header"),
    ],
)
async def test_a_bad_csv_record_is_reported_with_its_first_line(
    data: bytes, line: int, problem: str
) -> None:
    with pytest.raises(InvalidImport) as caught:
        await read("csv", data)

    assert caught.value.line == line
    assert problem in caught.value.message


async def test_an_export_in_either_format_reads_back_as_the_same_documents() -> None:
    passages = [
        Passage("a", "a", 'say "hi",\nthen go', {"n": 1, "ok": True}, np.array([0.6, 0.8])),
        Passage("b#2", "b", "second part", {}, np.array([1.0, 0.0], dtype=np.float32)),
    ]

    from_jsonl = await read("jsonl", jsonl_lines(passages).encode())
    from_csv = await read("csv", (csv_header() + csv_lines(passages)).encode())

    expected = [
        ("a", 'say "hi",\nthen go', {"n": 1, "ok": True}, [0.6, 0.8]),
        ("b#2", "second part", {}, [1.0, 0.0]),
    ]
    assert [(d.id, d.text, d.metadata, d.vector) for d in from_jsonl] == expected
    assert [(d.id, d.text, d.metadata, d.vector) for d in from_csv] == expected
