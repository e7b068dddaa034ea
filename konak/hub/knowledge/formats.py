"""The bulk formats of a tenant's knowledge: one document per JSON line (JSONL) or per CSV
record, read from a stream of byte chunks one line at a time (never the whole upload), and
each passage written back the same way for an export.

JSONL: ``{"id": str, "text": str, "metadata": {..}?, "vector": [float, ..]?}`` per line;
blank lines are skipped. CSV: a header naming ``id`` and ``text`` (and optionally
``metadata``, a JSON object, and ``vector``, a JSON array); every other column is a string
metadata field (an empty cell leaves it out). Errors name the line (the first line of a CSV
record) so a user can fix the file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from konak.hub.knowledge.types import DocumentIn, KnowledgeError, Passage

Format = Literal["jsonl", "csv"]
MAX_LINE_BYTES: Final = 1 << 20  # one document (a JSON line or a CSV record)
MAX_TEXT_CHARS: Final = 200_000  # the service splits long text into passages
MAX_VECTOR_DIM: Final = 4096
MAX_METADATA_FIELDS: Final = 32
MAX_CSV_COLUMNS: Final = 64
CSV_COLUMNS: Final = ("id", "text", "metadata", "vector")  # what an export writes

MAX_ID_CHARS: Final = 200
DocumentId = Annotated[
    str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=r"^[^\x00-\x1f]+$")
]
FieldName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
NO_NUL: Final = r"^[^\x00]*$"  # PostgreSQL's text cannot hold NUL: refused on every backend
Integer = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]  # what SQL stores and compares
Scalar = Annotated[str, Field(max_length=2000, pattern=NO_NUL)] | Integer | float | bool | None
Value = Scalar | Annotated[list[Scalar], Field(max_length=100)]
Metadata = Annotated[dict[FieldName, Value], Field(max_length=MAX_METADATA_FIELDS)]
# A vector is normalised, so its scale means nothing; bounded so float32 never overflows.
MAX_COMPONENT: Final = 1e6
Vector = Annotated[
    list[Annotated[float, Field(allow_inf_nan=False, ge=-MAX_COMPONENT, le=MAX_COMPONENT)]],
    Field(min_length=1, max_length=MAX_VECTOR_DIM),
]


class DocumentRecord(BaseModel):
    """One document: its id (an upsert replaces the document with this id), its text, flat
    metadata (scalars or lists of scalars) and, optionally, its vector (then used as is)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: DocumentId
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS, pattern=NO_NUL)]
    metadata: Metadata = Field(default_factory=dict)
    vector: Vector | None = None

    def document(self) -> DocumentIn:
        """The service's document."""
        return DocumentIn(id=self.id, text=self.text, metadata=self.metadata, vector=self.vector)


class InvalidImport(KnowledgeError):
    """A line of an upload is not a valid document; ``line`` is its number (from 1)."""

    code = "invalid_import"

    def __init__(self, message: str, *, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.problem = message


def problem_of(exc: ValidationError) -> str:
    """The first problem pydantic found, with the field it is in."""
    err = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


async def lines(
    chunks: AsyncIterable[bytes], max_line_bytes: int = MAX_LINE_BYTES
) -> AsyncIterator[tuple[int, bytes]]:
    """(number, line) of each line of a byte stream, without its line ending."""
    pending = bytearray()
    number = 0
    async for chunk in chunks:
        pending += chunk
        while (end := pending.find(b"\n")) >= 0:
            number += 1
            if end > max_line_bytes:
                raise InvalidImport(f"longer than {max_line_bytes} bytes", line=number)
            line = bytes(pending[:end])
            del pending[: end + 1]
            yield number, line.removesuffix(b"\r")
        if len(pending) > max_line_bytes:
            raise InvalidImport(f"longer than {max_line_bytes} bytes", line=number + 1)
    if pending:
        yield number + 1, bytes(pending).removesuffix(b"\r")


def _text(line: bytes, number: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidImport(f"not UTF-8 (byte {exc.start + 1})", line=number) from exc


async def read_jsonl(numbered: AsyncIterable[tuple[int, bytes]]) -> AsyncIterator[DocumentRecord]:
    """The documents of a JSONL stream (blank lines skipped)."""
    async for number, line in numbered:
        text = _text(line, number).strip()
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text:
            continue
        try:
            yield DocumentRecord.model_validate_json(text)
        except ValidationError as exc:
            raise InvalidImport(problem_of(exc), line=number) from exc


def _csv_row(record: str, number: int) -> list[str]:
    try:
        rows = list(csv.reader(io.StringIO(record, newline=""), strict=True))
    except csv.Error as exc:
        raise InvalidImport(f"not valid CSV: {exc}", line=number) from exc
    return rows[0] if rows else []


def _json_cell(cell: str, column: str, number: int) -> Any:
    try:
        return json.loads(cell)
    except (ValueError, RecursionError) as exc:
        raise InvalidImport(f"{column}: not valid JSON ({exc})", line=number) from exc


def _header(row: list[str], number: int) -> list[str]:
    names = [name.strip() for name in row]
    if len(names) > MAX_CSV_COLUMNS:
        raise InvalidImport(f"more than {MAX_CSV_COLUMNS} columns", line=number)
    if "id" not in names or "text" not in names:
        raise InvalidImport("the header must name the columns 'id' and 'text'", line=number)
    if len(set(names)) != len(names):
        raise InvalidImport("the header names a column twice", line=number)
    return names


def _csv_document(header: list[str], row: list[str], number: int) -> DocumentRecord:
    if len(row) != len(header):
        raise InvalidImport(f"{len(row)} fields where the header has {len(header)}", line=number)
    cells = dict(zip(header, row, strict=True))
    fields: dict[str, Any] = {"id": cells.pop("id"), "text": cells.pop("text")}
    metadata: dict[str, Any] = {}
    if cell := cells.pop("metadata", ""):
        metadata = _json_cell(cell, "metadata", number)
        if not isinstance(metadata, dict):
            raise InvalidImport("metadata: not a JSON object", line=number)
    if cell := cells.pop("vector", ""):
        fields["vector"] = _json_cell(cell, "vector", number)
    fields["metadata"] = {**metadata, **{k: v for k, v in cells.items() if v != ""}}
    try:
        return DocumentRecord.model_validate(fields)
    except ValidationError as exc:
        raise InvalidImport(problem_of(exc), line=number) from exc


async def read_csv(numbered: AsyncIterable[tuple[int, bytes]]) -> AsyncIterator[DocumentRecord]:
    """The documents of a CSV stream: a header, then one document per record (a quoted
    field may span lines; the record is numbered by its first line)."""
    header: list[str] | None = None
    record, first, quotes = "", 0, 0
    async for number, line in numbered:
        text = _text(line, number)
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not record:
            first = number
            if not text.strip():
                continue
        record = f"{record}\n{text}" if record else text
        quotes += text.count('"')
        if quotes % 2:
            if len(record) > MAX_LINE_BYTES:
                raise InvalidImport(f"longer than {MAX_LINE_BYTES} bytes", line=first)
            continue  # a quoted field goes on on the next line
        row = _csv_row(record, first)
        record, quotes = "", 0
        if header is None:
            header = _header(row, first)
        else:
            yield _csv_document(header, row, first)
    if record:
        raise InvalidImport("a quoted field is not closed", line=first)
    if header is None:
        raise InvalidImport("no header line", line=1)


def read_documents(
    fmt: Format, numbered: AsyncIterable[tuple[int, bytes]]
) -> AsyncIterator[DocumentRecord]:
    """The documents of an upload in ``fmt``."""
    return read_jsonl(numbered) if fmt == "jsonl" else read_csv(numbered)


def _record(passage: Passage) -> dict[str, Any]:
    return {
        "id": passage.id,
        "text": passage.text,
        "metadata": dict(passage.metadata),
        "vector": [float(x) for x in passage.vector.tolist()],
    }


def jsonl_lines(passages: Iterable[Passage]) -> str:
    """Passages as JSON lines an import reads back (ids: the passages')."""
    return "".join(json.dumps(_record(p), ensure_ascii=False) + "\n" for p in passages)


def csv_header() -> str:
    """The header line of a CSV export."""
    return ",".join(CSV_COLUMNS) + "\r\n"


def csv_lines(passages: Iterable[Passage]) -> str:
    """Passages as CSV records an import reads back (metadata and vector as JSON)."""
    out = io.StringIO()
    writer = csv.writer(out)
    for p in passages:
        record = _record(p)
        writer.writerow(
            [
                record["id"],
                record["text"],
                json.dumps(record["metadata"], ensure_ascii=False),
                json.dumps(record["vector"]),
            ]
        )
    return out.getvalue()
