"""Request bodies and queries of the knowledge API (a document is the bulk formats' record,
so an upsert and an import line are checked by one model)."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field, model_validator

from konak.hub.api.schemas import Body, Query
from konak.hub.knowledge.formats import NO_NUL, DocumentRecord, FieldName, Value, Vector
from konak.hub.knowledge.job_store import MAX_JOBS_PAGE

MAX_BATCH_DOCUMENTS: Final = 500  # more go through an import job
MAX_BODY_BYTES: Final = 4 << 20  # a batch of documents with their vectors
MAX_EMBED_TEXTS: Final = 256
MAX_EMBED_CHARS: Final = 4096  # the model reads 256 word pieces; more is wasted
MAX_QUERY_CHARS: Final = 2000
MAX_K: Final = 100

QUERY: Final = r"^[^\x00]*[^\x00\s][^\x00]*$"  # something to search for, no NUL
COLLECTION_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,62}$"
CollectionName = Annotated[str, Field(min_length=1, max_length=63, pattern=COLLECTION_PATTERN)]
FilterOp = Literal["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in"]
Condition = Value | Annotated[dict[FilterOp, Value], Field(min_length=1, max_length=7)]
Filter = Annotated[dict[FieldName, Condition], Field(max_length=20)]


class CollectionBody(Body):
    """Create a collection of the tenant."""

    name: CollectionName
    description: Annotated[str, Field(max_length=1000, pattern=NO_NUL)] = ""


class DocumentsBody(Body):
    """Upsert documents by id (all of them or, on any error, none)."""

    documents: Annotated[list[DocumentRecord], Field(min_length=1, max_length=MAX_BATCH_DOCUMENTS)]


class SearchBody(Body):
    """Search the tenant's collections (all of them unless ``collections`` names some) by
    text or by vector, exactly one of them; ``filter`` is on the documents' metadata."""

    text: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=QUERY)] | None = (
        None
    )
    vector: Vector | None = None
    k: Annotated[int, Field(ge=1, le=MAX_K)] = 10
    filter: Filter | None = None
    collections: Annotated[list[CollectionName], Field(min_length=1, max_length=50)] | None = None

    @model_validator(mode="after")
    def _one_query(self) -> SearchBody:
        if (self.text is None) == (self.vector is None):
            raise ValueError("give exactly one of 'text' or 'vector'")
        return self


class EmbedBody(Body):
    """Texts to turn into vectors (the collections' model; nothing is stored)."""

    texts: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=MAX_EMBED_CHARS, pattern=NO_NUL)]],
        Field(min_length=1, max_length=MAX_EMBED_TEXTS),
    ]


class JobsQuery(Query):
    """How many of the newest jobs."""

    limit: Annotated[int, Field(ge=1, le=MAX_JOBS_PAGE)] = 50
