"""The voice config's rules: what the hub accepts the daemon loads and recognises with, and
revisions are numbered per tenant."""

from __future__ import annotations

from pathlib import Path

import pytest

from konak.daemon.intent import BUILTIN_LISTS, IntentRecognizer
from konak.hub import database
from konak.hub.security.errors import Conflict
from konak.hub.voice_config import DEVICE_LISTS, Draft, TemplatesInvalid, VoiceConfigs, validate

DRAFT = Draft(
    language="en",
    sentences={"MakeCoffee": ["make [me] [a] {drink}", "brew {0..4:cups} cups of {drink}"]},
    slot_lists={"drink": ["espresso", "flat white"]},
    wake_words=(("hey_jarvis", 0.4),),
)


def test_the_lists_the_hub_allows_are_the_ones_the_daemon_provides() -> None:
    assert frozenset(BUILTIN_LISTS) == DEVICE_LISTS


def test_a_config_the_hub_accepts_is_loaded_and_recognised_by_the_daemons_recogniser() -> None:
    validate(DRAFT)

    recognizer = IntentRecognizer(
        "en", intent_names=(), sentences=DRAFT.sentences, slot_lists=DRAFT.slot_lists
    )

    made = recognizer.recognize("make me a flat white")
    brewed = recognizer.recognize("brew 3 cups of espresso")
    assert made is not None
    assert (made.name, made.slots) == ("MakeCoffee", {"drink": "flat white"})
    assert brewed is not None
    assert brewed.slots == {"cups": 3, "drink": "espresso"}


def test_a_broken_template_is_refused_before_the_daemon_would_refuse_it() -> None:
    broken = Draft(sentences={"MakeCoffee": ["make {drink"]}, slot_lists={"drink": ["tea"]})

    with pytest.raises(TemplatesInvalid) as refused:
        validate(broken)

    assert refused.value.details[0]["path"] == "sentences.MakeCoffee[0]"


def test_revisions_are_numbered_per_tenant_and_the_published_one_is_remembered(
    tmp_path: Path,
) -> None:
    db = database.connect(tmp_path / "hub.sqlite3")
    for tenant in ("acme", "globex"):
        db.execute("INSERT INTO tenants VALUES (?, ?, 0)", (tenant, tenant))
    configs = VoiceConfigs(db)

    first = configs.save("acme", 0, DRAFT, "ops@acme.test")
    second = configs.save("acme", 1, Draft(), "ops@acme.test")
    other = configs.save("globex", 0, DRAFT, "ops@globex.test")
    configs.mark_published(first)

    assert (first.revision, second.revision, other.revision) == (1, 2, 1)
    assert configs.latest("acme").revision == 2
    published = configs.published("acme")
    assert published is not None
    assert published.revision == 1
    assert published.draft == DRAFT
    assert configs.published("globex") is None
    with pytest.raises(Conflict):
        configs.save("acme", 1, DRAFT, "ops@acme.test")
    message = published.message("kitchen", "Kitchen " * 40, "")
    assert (message.revision, message.area, len(message.name or "")) == (1, None, 128)
    assert message.slot_lists == {"drink": ["espresso", "flat white"]}
    db.close()
