"""A tenant's voice config: its own sentences, slot lists and wake thresholds, kept as
numbered revisions in the hub database and published to its devices as the retained
``config`` message (one per device, with that device's name and area).

Every template is parsed by hassil here, with the same parser the daemon builds its intents
with (``konak.daemon.intent``), and every ``{list}`` and ``<rule>`` it names must be one the
device will have: so what the hub accepts, the device can load.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from konak.hub.errors import HubError
from konak.hub.security.errors import Conflict, NotFound
from konak.protocol import Config
from konak.storage.sqlite import transaction

logger = logging.getLogger(__name__)

# The lists the daemon always provides, empty unless the config fills them
# (``konak.daemon.intent.BUILTIN_LISTS``; a test keeps the two equal).
DEVICE_LISTS: Final = frozenset({"name", "area", "floor"})
MAX_TEMPLATE_DEPTH: Final = 16  # nested (), [] and {} of one template
MAX_INLINE_RANGE: Final = 1000  # numbers of a {1..100} range (each one is in the grammar)
MAX_REVISIONS_PAGE: Final = 200
DEFAULT_LANGUAGE: Final = "en"
NAME_CHARS: Final = 128  # a Config's name and area (an enrolled name may be longer)


class TemplatesInvalid(HubError):
    """Templates hassil refuses, or that name lists or rules the device will not have;
    ``details`` holds one ``{"path", "message"}`` per template."""

    code = "sentence_invalid"

    def __init__(self, details: list[dict[str, str]]) -> None:
        first = details[0]
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        super().__init__(f"{first['path']}: {first['message']}{more}")
        self.details = details


@dataclass(frozen=True, slots=True)
class Draft:
    """What an editor saves: the config without its revision."""

    language: str = DEFAULT_LANGUAGE
    sentences: Mapping[str, Sequence[str]] = field(default_factory=dict)
    slot_lists: Mapping[str, Sequence[str]] = field(default_factory=dict)
    wake_words: Sequence[tuple[str, float]] = ()

    def as_dict(self) -> dict[str, Any]:
        """The draft as JSON."""
        return {
            "language": self.language,
            "sentences": {k: list(v) for k, v in self.sentences.items()},
            "slot_lists": {k: list(v) for k, v in self.slot_lists.items()},
            "wake_words": [{"model": m, "threshold": t} for m, t in self.wake_words],
        }


@dataclass(frozen=True, slots=True)
class Revision:
    """One stored revision of a tenant's voice config (revision 0: none saved yet)."""

    tenant_id: str
    revision: int
    draft: Draft
    created_at: float | None = None
    created_by: str | None = None
    published_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The revision as the API shows it."""
        return {"revision": self.revision, **self.draft.as_dict(), **self.stamp()}

    def stamp(self) -> dict[str, Any]:
        """When and by whom it was made, and when it was last published."""
        return {
            "created_at": self.created_at,
            "created_by": self.created_by,
            "published_at": self.published_at,
        }

    def message(self, device: str, name: str | None, area: str | None) -> Config:
        """The retained ``config`` message for one device."""
        d = self.draft
        return Config.model_validate(
            {
                "tenant": self.tenant_id,
                "device": device,
                "ts": time.time(),
                "revision": self.revision,
                "name": (name or "")[:NAME_CHARS] or None,
                "area": (area or "")[:NAME_CHARS] or None,
                "language": d.language,
                "sentences": {k: list(v) for k, v in d.sentences.items()},
                "slot_lists": {k: list(v) for k, v in d.slot_lists.items()},
                "wake_words": [{"model": m, "threshold": t} for m, t in d.wake_words],
            }
        )


# ------------------------------------------------------------------ validation
@functools.lru_cache(maxsize=8)
def language_names(language: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """The lists and expansion rules home-assistant-intents gives the device for
    ``language`` (the daemon merges the tenant's sentences into them), or None when it has
    no sentences for the language (the daemon then refuses to start its intents)."""
    import home_assistant_intents

    data = home_assistant_intents.get_intents(language)
    if data is None:
        return None
    return frozenset(data.get("lists", {})), frozenset(data.get("expansion_rules", {}))


def _depth(template: str) -> int:
    depth = deepest = 0
    for char in template:
        if char in "([{<":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}>":
            depth -= 1
    return deepest


def _references(expression: Any) -> Iterator[Any]:
    """The list and rule references of a parsed template."""
    from hassil.expression import Group, ListReference, RuleReference

    stack = [expression]
    while stack:
        item = stack.pop()
        if isinstance(item, ListReference | RuleReference):
            yield item
        elif isinstance(item, Group):
            stack.extend(item.items)


def template_problem(template: str, lists: frozenset[str], rules: frozenset[str]) -> str | None:
    """Why the device could not use ``template`` (hassil's own message), or None."""
    from hassil import parse_sentence
    from hassil.expression import ListReference
    from hassil.parser import ParseError

    if not template.strip():
        return "the template is empty"
    if _depth(template) > MAX_TEMPLATE_DEPTH:
        return f"the template nests more than {MAX_TEMPLATE_DEPTH} groups deep"
    try:
        sentence = parse_sentence(template)
    except (ParseError, AssertionError, ValueError, IndexError, RecursionError) as exc:
        return str(exc) or type(exc).__name__  # hassil's message; its parser asserts too
    for ref in _references(sentence.expression):
        if isinstance(ref, ListReference):
            span = ref.get_inline_range()
            if span is not None:
                start, stop, step = span
                if step < 1 or (stop - start) // step > MAX_INLINE_RANGE:
                    return f"the range {{{ref.list_name}}} has over {MAX_INLINE_RANGE} numbers"
                continue
            if ref.list_name in lists:
                continue
            return (
                f"slot list {{{ref.list_name}}} is not defined: add it to slot_lists "
                f"(the device provides {', '.join(sorted(DEVICE_LISTS))} and the lists of "
                "home-assistant-intents)"
            )
        if ref.rule_name not in rules:
            return f"expansion rule <{ref.rule_name}> is not one of home-assistant-intents'"
    return None


def validate(draft: Draft) -> None:
    """Raise TemplatesInvalid naming every template the device could not load."""
    found = language_names(draft.language)
    if found is None:
        raise TemplatesInvalid(
            [
                {
                    "path": "language",
                    "message": f"home-assistant-intents has no sentences for {draft.language!r}",
                }
            ]
        )
    ha_lists, rules = found
    lists = DEVICE_LISTS | ha_lists | frozenset(draft.slot_lists)
    details = [
        {"path": f"sentences.{intent}[{n}]", "message": problem}
        for intent, templates in draft.sentences.items()
        for n, template in enumerate(templates)
        if (problem := template_problem(template, lists, rules)) is not None
    ]
    if details:
        raise TemplatesInvalid(details)


# ------------------------------------------------------------------ storage
def _draft(body: str) -> Draft:
    data = json.loads(body)
    return Draft(
        language=data["language"],
        sentences=data["sentences"],
        slot_lists=data["slot_lists"],
        wake_words=tuple((w["model"], float(w["threshold"])) for w in data["wake_words"]),
    )


_SELECT: Final = """SELECT tenant_id, revision, body, created_at, created_by, published_at
    FROM voice_configs WHERE """


class VoiceConfigs:
    """The revisions of each tenant's voice config, in the hub database (its schema is
    ``konak.hub.database``'s)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def _row(self, where: str, args: tuple[Any, ...]) -> Revision | None:
        # ``where`` is always one of this class's own literals, never input.
        row = self._db.execute(_SELECT + where, args).fetchone()
        if row is None:
            return None
        return Revision(row[0], row[1], _draft(row[2]), row[3], row[4], row[5])

    def latest(self, tenant_id: str) -> Revision:
        """The newest revision, or revision 0 (empty) when none was saved."""
        found = self._row("tenant_id = ? ORDER BY revision DESC LIMIT 1", (tenant_id,))
        return found if found is not None else Revision(tenant_id, 0, Draft())

    def get(self, tenant_id: str, revision: int) -> Revision:
        """One revision; NotFound when the tenant has no such revision."""
        found = self._row("tenant_id = ? AND revision = ?", (tenant_id, revision))
        if found is None:
            raise NotFound(f"no voice config revision {revision} in this tenant")
        return found

    def published(self, tenant_id: str) -> Revision | None:
        """The revision published last (what devices enrolled now receive), or None."""
        return self._row(
            "tenant_id = ? AND published_at IS NOT NULL ORDER BY published_at DESC, "
            "revision DESC LIMIT 1",
            (tenant_id,),
        )

    def save(self, tenant_id: str, base_revision: int, draft: Draft, by: str) -> Revision:
        """Store ``draft`` as the revision after ``base_revision``, which must be the latest
        (Conflict otherwise: someone saved in between). Validated first."""
        validate(draft)
        body = json.dumps(draft.as_dict(), separators=(",", ":"))
        now = time.time()
        with transaction(self._db):
            row = self._db.execute(
                "SELECT coalesce(max(revision), 0) FROM voice_configs WHERE tenant_id = ?",
                (tenant_id,),
            ).fetchone()
            if int(row[0]) != base_revision:
                raise Conflict(
                    f"revision {row[0]} was saved since revision {base_revision}: reload, "
                    "apply your change to it and save again",
                    code="revision_conflict",
                )
            revision = base_revision + 1
            self._db.execute(
                """INSERT INTO voice_configs (tenant_id, revision, body, created_at,
                       created_by) VALUES (?, ?, ?, ?, ?)""",
                (tenant_id, revision, body, now, by),
            )
        logger.info("tenant %s saved voice config revision %d", tenant_id, revision)
        return Revision(tenant_id, revision, draft, now, by)

    def revisions(self, tenant_id: str, limit: int) -> list[Revision]:
        """The newest ``limit`` revisions, newest first."""
        rows = self._db.execute(
            _SELECT + "tenant_id = ? ORDER BY revision DESC LIMIT ?",
            (tenant_id, min(limit, MAX_REVISIONS_PAGE)),
        )
        return [Revision(r[0], r[1], _draft(r[2]), r[3], r[4], r[5]) for r in rows]

    def mark_published(self, revision: Revision) -> Revision:
        """Note that ``revision`` was published now."""
        now = time.time()
        self._db.execute(
            "UPDATE voice_configs SET published_at = ? WHERE tenant_id = ? AND revision = ?",
            (now, revision.tenant_id, revision.revision),
        )
        return Revision(
            revision.tenant_id,
            revision.revision,
            revision.draft,
            revision.created_at,
            revision.created_by,
            now,
        )
