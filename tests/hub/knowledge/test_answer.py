"""Answering from knowledge: the nearest passage's best sentence, the cache, the tool that
beats a passage by its margin, and nothing below the thresholds."""

from __future__ import annotations

from konak.hub.knowledge.answer import VoiceKnowledge, question_slot, sentences
from konak.hub.knowledge.routing import EXAMPLES_COLLECTION, ToolInfo
from konak.hub.knowledge.settings import KnowledgeSettings

from .voice_fakes import FakeKnowledge

WIFI_NOTE = (
    "# Guests\n\nThe guest network is called Konak-Guest. "
    "The guest wifi password is blue-otter-42. Please do not share it with the neighbours "
    "or post it anywhere online, because the router is old."
)
TOOLS = (ToolInfo("fleet", "list_devices", "List the devices and their state"),)


def _voice(
    knowledge: FakeKnowledge, tools: tuple[ToolInfo, ...] = (), **settings: float
) -> VoiceKnowledge:
    s = KnowledgeSettings(
        **{"answer_threshold": 0.4, "routing_threshold": 0.4, "cache_threshold": 0.95, **settings}
    )
    return VoiceKnowledge(knowledge, lambda: s, lambda tenant: tools)


def test_a_passage_is_split_into_speakable_sentences() -> None:
    assert sentences(WIFI_NOTE)[:3] == [
        "Guests",
        "The guest network is called Konak-Guest.",
        "The guest wifi password is blue-otter-42.",
    ]
    assert sentences("- one\n- two [link](http://x.y)") == ["one", "two link"]
    assert sentences("Our vet is Dr. Aydin, phone 555. J. R. R. Tolkien wrote it. Bye.") == [
        "Our vet is Dr. Aydin, phone 555.",
        "J. R. R. Tolkien wrote it.",
        "Bye.",
    ]


def test_the_question_comes_from_the_slot_else_the_transcript() -> None:
    assert question_slot({"question": " bin day "}, "ask my notes") == "bin day"
    assert question_slot({"name": 3}, "ask my notes") == "ask my notes"


async def test_a_question_is_answered_with_the_passages_nearest_sentence_and_its_neighbour() -> (
    None
):
    knowledge = FakeKnowledge()
    knowledge.add("acme", "notes", "wifi", WIFI_NOTE)
    voice = _voice(knowledge)

    decision = await voice.decide("acme", "what is the guest wifi password")

    assert (decision.kind, decision.source, decision.collection) == ("answer", "passage", "notes")
    assert decision.text == (
        "The guest network is called Konak-Guest. The guest wifi password is blue-otter-42."
    )


async def test_a_question_in_a_faq_passage_is_not_the_answer() -> None:
    knowledge = FakeKnowledge()
    knowledge.add("acme", "faq", "bins", "When are the bins collected? On Tuesday mornings, early.")
    voice = _voice(knowledge)

    decision = await voice.decide("acme", "when are the bins collected")

    assert decision.text == "On Tuesday mornings, early."


async def test_the_second_ask_is_cached_until_a_write_to_the_tenants_collections() -> None:
    knowledge = FakeKnowledge()
    knowledge.add("acme", "notes", "wifi", WIFI_NOTE)
    voice = _voice(knowledge)

    first = await voice.decide("acme", "what is the guest wifi password")
    second = await voice.decide("acme", "what is the guest wifi password")
    knowledge.add("acme", "other", "x", "The guest wifi password is now red-fox-7.")
    third = await voice.decide("acme", "what is the guest wifi password")

    assert (first.source, second.source, third.source) == ("passage", "cache", "passage")
    assert second.text == first.text
    assert third.text == "The guest wifi password is now red-fox-7."


async def test_another_tenants_passages_and_cache_are_never_used() -> None:
    knowledge = FakeKnowledge()
    knowledge.add("acme", "notes", "wifi", WIFI_NOTE)
    voice = _voice(knowledge)
    await voice.decide("acme", "what is the guest wifi password")

    decision = await voice.decide("globex", "what is the guest wifi password")

    assert decision.kind == "none"
    assert all(tenant == "acme" for tenant, _ in knowledge.searches)


async def test_nothing_answers_below_both_thresholds() -> None:
    knowledge = FakeKnowledge()
    knowledge.add("acme", "notes", "wifi", WIFI_NOTE)
    voice = _voice(knowledge, TOOLS)

    assert (await voice.decide("acme", "tell me a joke")).kind == "none"


async def test_a_tool_wins_over_a_passage_by_its_margin_over_its_threshold() -> None:
    knowledge = FakeKnowledge()
    knowledge.add("acme", "notes", "devices", "The devices are in the hall and the kitchen.")
    question = "list the devices and their state"

    by_tool = await _voice(knowledge, TOOLS).decide("acme", question)
    by_passage = await _voice(knowledge, TOOLS, routing_threshold=0.9).decide("acme", question)
    no_tools = await _voice(knowledge, TOOLS).decide("acme", question, route_tools=False)

    assert by_tool.kind == "tool"
    assert by_tool.tool is not None
    assert by_tool.tool.tool.name == "list_devices"
    assert by_passage.kind == no_tools.kind == "answer"


async def test_the_tool_examples_collection_never_answers_a_question() -> None:
    knowledge = FakeKnowledge()
    knowledge.add("acme", EXAMPLES_COLLECTION, "e", "who is home", tool="list_devices")
    voice = _voice(knowledge)

    assert (await voice.decide("acme", "who is home")).kind == "none"
