"""The voice config endpoints on a real SQLite file (no broker here: publishing to a real
one is tests/integration/hub/test_voice_config.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hub.api.conftest import Api

URL = "/api/tenants/acme/voice-config"
CONFIG: dict[str, Any] = {
    "language": "en",
    "sentences": {
        "HassTurnOn": ["switch on [the] {name}", "<turn> on {name} in {area}"],
        "MakeCoffee": ["make [me] a {drink}", "brew {drink} at {0..10:cups} cups"],
    },
    "slot_lists": {"drink": ["espresso", "latte"], "name": ["kitchen light"]},
    "wake_words": [{"model": "hey_jarvis", "threshold": 0.6}],
}


async def save(api: Api, headers: dict[str, str], base: int, **changes: Any) -> Any:
    return await api.client.put(
        URL, json={**CONFIG, **changes, "base_revision": base}, headers=headers
    )


async def test_an_operator_saves_revisions_that_members_and_readonly_users_read(api: Api) -> None:
    operator = await api.token("operator@acme.test")
    readonly = await api.token("readonly@acme.test")

    empty = await (await api.client.get(URL, headers=readonly)).json()
    first = await save(api, operator, 0)
    second = await save(api, operator, 1, slot_lists={**CONFIG["slot_lists"], "drink": ["tea"]})
    latest = await (await api.client.get(URL, headers=readonly)).json()
    revisions = await api.client.get(f"{URL}/revisions?limit=1", headers=readonly)

    assert empty == {
        "revision": 0,
        "language": "en",
        "sentences": {},
        "slot_lists": {},
        "wake_words": [],
        "created_at": None,
        "created_by": None,
        "published_at": None,
    }
    assert first.status == 200, await first.text()
    assert (await first.json())["revision"] == 1
    assert second.status == 200
    assert latest["revision"] == 2
    assert latest["slot_lists"]["drink"] == ["tea"]
    assert latest["sentences"] == CONFIG["sentences"]
    assert latest["wake_words"] == [{"model": "hey_jarvis", "threshold": 0.6}]
    assert latest["created_by"] == "operator@acme.test"
    assert latest["published_at"] is None
    [only] = (await revisions.json())["revisions"]
    assert set(only) == {"revision", "created_at", "created_by", "published_at"}
    assert only["revision"] == 2


async def test_saving_from_a_stale_revision_is_a_conflict_and_stores_nothing(api: Api) -> None:
    operator = await api.token("operator@acme.test")
    assert (await save(api, operator, 0)).status == 200

    stale = await save(api, operator, 0)
    ahead = await save(api, operator, 7)

    for resp in (stale, ahead):
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "revision_conflict"
    assert (await (await api.client.get(URL, headers=operator)).json())["revision"] == 1


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("turn on {name", "Unable to find end of list"),
        ("(on|off", "Unable to find end of group"),
        ("brew a {coffee}", "slot list {coffee} is not defined"),
        ("brew <nonsense_rule>", "expansion rule <nonsense_rule>"),
        ("(" * 40 + "a" + ")" * 40, "nests more than 16 groups deep"),
        ("count {1..99999999:n}", "has over 1000 numbers"),
        ("   ", "the template is empty"),
    ],
    ids=["list", "group", "unknown-list", "unknown-rule", "deep", "range", "blank"],
)
async def test_a_template_the_device_could_not_load_is_refused_with_its_path(
    api: Api, template: str, says: str
) -> None:
    operator = await api.token("operator@acme.test")
    sentences = {"HassTurnOn": ["switch on {name}"], "MakeCoffee": ["make tea", template]}

    resp = await save(api, operator, 0, sentences=sentences)

    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "sentence_invalid"
    [detail] = error["details"]
    assert detail["path"] == "sentences.MakeCoffee[1]"
    assert says in detail["message"]
    assert (await (await api.client.get(URL, headers=operator)).json())["revision"] == 0


async def test_every_invalid_template_is_named_and_an_unknown_language_is_refused(
    api: Api,
) -> None:
    operator = await api.token("operator@acme.test")
    sentences = {"A": ["ok", "{x"], "B": ["[y"]}

    many = await save(api, operator, 0, sentences=sentences)
    language = await save(api, operator, 0, language="xx")

    assert [d["path"] for d in (await many.json())["error"]["details"]] == [
        "sentences.A[1]",
        "sentences.B[0]",
    ]
    assert (await language.json())["error"]["details"][0]["path"] == "language"


@pytest.mark.parametrize(
    "changes",
    [
        {"wake_words": [{"model": "hey_jarvis", "threshold": 1.0}]},
        {"wake_words": [{"model": "hey_jarvis", "threshold": 0}]},
        {"wake_words": [{"model": "hey_jarvis", "threshold": -3}]},
        {"sentences": {"HassTurnOn": ["x" * 501]}},
        {"sentences": {f"I{n}": ["x"] for n in range(101)}},
        {"sentences": {"HassTurnOn": []}},
        {"sentences": {"bad name!": ["x"]}},
        {"slot_lists": {"drink": ["a\nb"]}},
        {"slot_lists": {"drink": ["x" * 129]}},
        {"language": "../../etc"},
        {"volume": 0.5},
    ],
    ids=[
        "threshold-1", "threshold-0", "threshold-negative", "huge-template", "many-intents",
        "no-templates", "intent-name", "control-char", "long-value", "language", "unknown-field",
    ],
)  # fmt: skip
async def test_out_of_bounds_values_are_refused_with_the_field(
    api: Api, changes: dict[str, Any]
) -> None:
    operator = await api.token("operator@acme.test")

    resp = await save(api, operator, 0, **changes)

    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_body"


async def test_a_huge_body_is_refused_before_it_is_parsed(api: Api) -> None:
    operator = await api.token("operator@acme.test")
    templates = ["turn on the light number " + str(n) for n in range(100)]
    sentences = {f"Intent{n}": templates for n in range(100)}

    resp = await save(api, operator, 0, sentences=sentences)

    assert resp.status == 413


async def test_readonly_and_members_may_not_save_or_publish(api: Api) -> None:
    for who in ("readonly@acme.test", "member@acme.test"):
        headers = await api.token(who)
        saved = await save(api, headers, 0)
        published = await api.client.post(f"{URL}/publish", json={}, headers=headers)
        assert (saved.status, published.status) == (403, 403), who


async def test_another_tenants_admin_neither_reads_nor_writes_the_voice_config(
    api: Api,
) -> None:
    operator = await api.token("operator@acme.test")
    assert (await save(api, operator, 0)).status == 200
    intruder = await api.token("admin@globex.test")

    answers = [
        await api.client.get(URL, headers=intruder),
        await api.client.get(f"{URL}/revisions", headers=intruder),
        await save(api, intruder, 1),
        await api.client.post(f"{URL}/publish", json={"revision": 1}, headers=intruder),
    ]
    own = await (await api.client.get("/api/tenants/globex/voice-config", headers=intruder)).json()

    assert [r.status for r in answers] == [404, 404, 404, 404]
    assert own["revision"] == 0  # globex's own config is untouched and separate


async def test_publishing_without_a_broker_link_or_a_revision_is_a_clear_error(
    api: Api,
) -> None:
    operator = await api.token("operator@acme.test")

    nothing = await api.client.post(f"{URL}/publish", json={}, headers=operator)
    assert (await save(api, operator, 0)).status == 200
    missing = await api.client.post(f"{URL}/publish", json={"revision": 9}, headers=operator)
    no_link = await api.client.post(f"{URL}/publish", json={}, headers=operator)

    assert (nothing.status, (await nothing.json())["error"]["code"]) == (422, "nothing_to_publish")
    assert missing.status == 404
    assert no_link.status == 503
