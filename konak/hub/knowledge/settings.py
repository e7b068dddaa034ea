"""``[knowledge]`` of hub.toml: where each tenant's vectors live and how text is embedded."""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Final

from pydantic.dataclasses import dataclass

from konak.config import SETTINGS, Bool, FilePath, Float, Int, one_of, require, secrets
from konak.protocol.topics import is_identifier

BACKENDS: Final = ("sqlite", "postgres")
DEFAULT_MODEL: Final = "all-minilm-l6-v2"


@dataclass(frozen=True, slots=True, config=SETTINGS)
class KnowledgeSettings:
    """Vector knowledge per tenant (docs/knowledge.md)."""

    enabled: Bool = True
    backend: Annotated[str, one_of(BACKENDS)] = "sqlite"
    # sqlite: one file per tenant here; None: a "knowledge" folder beside the hub database.
    directory: FilePath | None = None
    # postgres: from postgres_dsn_env or postgres_dsn_file (a secret: never logged).
    postgres_dsn: str = field(default="", repr=False)
    # None: the daemon's default (/var/lib/konak/models for root).
    models_dir: FilePath | None = None
    model: str = DEFAULT_MODEL
    int8: Bool = False
    chunk_chars: Int = 800
    chunk_overlap_chars: Int = 100
    answer_threshold: Float = 0.5
    routing_threshold: Float = 0.45
    cache_ttl_seconds: Float = 300.0
    cache_threshold: Float = 0.92
    max_import_bytes: Int = 1 << 30
    jobs_per_tenant: Int = 2

    _secrets = secrets("postgres_dsn", inline=False)

    def __post_init__(self) -> None:
        require(
            self.backend != "postgres" or bool(self.postgres_dsn),
            'knowledge: backend "postgres" needs postgres_dsn_env or postgres_dsn_file',
        )
        require(is_identifier(self.model), f"knowledge.model {self.model!r} is not a model id")
        require(self.chunk_chars >= 50, "knowledge.chunk_chars must be >= 50")
        require(
            0 <= self.chunk_overlap_chars <= self.chunk_chars // 2,
            "knowledge.chunk_overlap_chars must be between 0 and half of chunk_chars",
        )
        for name in ("answer_threshold", "routing_threshold", "cache_threshold"):
            value = getattr(self, name)
            require(-1.0 <= value <= 1.0, f"knowledge.{name} must be between -1 and 1")
        require(self.cache_ttl_seconds >= 0, "knowledge.cache_ttl_seconds must be >= 0")
        require(self.max_import_bytes >= 1, "knowledge.max_import_bytes must be >= 1")
        require(self.jobs_per_tenant >= 1, "knowledge.jobs_per_tenant must be >= 1")
