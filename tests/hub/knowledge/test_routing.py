"""Semantic tool routing: the nearest description or example, destructive tools never."""

from __future__ import annotations

from konak.hub.knowledge.routing import (
    EXAMPLES_COLLECTION,
    ToolInfo,
    ToolRouter,
    fill_arguments,
    tool_text,
)

from .voice_fakes import FakeKnowledge, fake_vector

TOOLS = (
    ToolInfo("fleet", "list_devices", "List the devices and their state", read_only=True),
    ToolInfo("fleet", "announce", "Speak a message on a device", required=("text",)),
    ToolInfo("home", "HassTurnOff", "Turn off every light in the house", destructive=True),
)


def test_a_tools_text_is_its_name_in_words_and_its_description() -> None:
    assert tool_text(TOOLS[2]) == "hass turn off: Turn off every light in the house"
    assert tool_text(ToolInfo("s", "get_device-status", "")) == "get device status"


def test_arguments_are_filled_by_name_or_not_at_all() -> None:
    context = {"text": "hello", "device": "pi"}
    assert fill_arguments(("text",), context) == {"text": "hello"}
    assert fill_arguments((), context) == {}
    assert fill_arguments(("text", "volume"), context) is None


async def test_the_tool_with_the_nearest_description_is_chosen() -> None:
    knowledge = FakeKnowledge()
    router = ToolRouter(knowledge.embed, knowledge)

    choice = await router.nearest("acme", fake_vector("list the devices"), TOOLS)

    assert choice is not None
    assert (choice.tool.name, round(choice.score, 3)) == (
        "list_devices",
        round(float(fake_vector("list the devices") @ fake_vector(tool_text(TOOLS[0]))), 3),
    )


async def test_a_tenants_example_lifts_its_tool_and_stays_with_that_tenant() -> None:
    knowledge = FakeKnowledge()
    knowledge.add("acme", EXAMPLES_COLLECTION, "e1", "who is home", tool="list_devices")
    knowledge.add("acme", EXAMPLES_COLLECTION, "e2", "say hi", tool="nope")
    router = ToolRouter(knowledge.embed, knowledge)

    acme = await router.nearest("acme", fake_vector("who is home"), TOOLS)
    globex = await router.nearest("globex", fake_vector("who is home"), TOOLS)

    assert acme is not None
    assert (acme.tool.name, round(acme.score, 4)) == ("list_devices", 1.0)
    assert globex is not None
    assert globex.score < 0.5
    assert ("globex", (EXAMPLES_COLLECTION,)) in knowledge.searches


async def test_a_destructive_tool_is_never_chosen_by_similarity() -> None:
    knowledge = FakeKnowledge()
    router = ToolRouter(knowledge.embed, knowledge)

    choice = await router.nearest("acme", fake_vector("hass turn off every light"), TOOLS)

    assert choice is not None
    assert choice.tool.name != "HassTurnOff"
    assert await router.nearest("acme", fake_vector("x"), TOOLS[2:]) is None
