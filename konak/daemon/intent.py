"""Intent recognition with hassil over home-assistant-intents plus the hub's sentences."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from konak.daemon.errors import EngineError
from konak.daemon.grammar import DEVICE_LIMITS, GrammarLimits, JsgfBuilder

logger = logging.getLogger(__name__)

# Lists HA's sentences refer to that a device without a home model leaves empty.
BUILTIN_LISTS: Final = ("name", "area", "floor")
MAX_MISSING_LISTS: Final = 20

SlotValue = str | int | float | bool


@dataclass(frozen=True)
class Recognized:
    """The intent a transcript matched and its slots."""

    name: str
    slots: dict[str, SlotValue] = field(default_factory=dict)


def _slot_value(value: Any) -> SlotValue:
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


# HA's sentences match a device name only in the context of its domain; the hub sends
# bare names, so the domain is inferred from the name's last word.
DOMAIN_WORDS: Final = {
    "light": "light", "lights": "light", "lamp": "light", "fan": "fan",
    "door": "cover", "blind": "cover", "blinds": "cover", "curtain": "cover",
    "curtains": "cover", "shade": "cover", "shutter": "cover", "lock": "lock",
}  # fmt: skip


def _names(values: Sequence[str]) -> Any:
    from hassil.intents import TextSlotList, TextSlotValue

    def value(name: str) -> Any:
        last = name.lower().split()[-1] if name.strip() else ""
        domain = DOMAIN_WORDS.get(last, "switch")
        return TextSlotValue.from_tuple((name, name, {"domain": domain}))

    return TextSlotList(name="name", values=[value(v) for v in values])


def check_sentences(sentences: Mapping[str, Sequence[str]]) -> None:
    """Parse every custom template now: hassil compiles them only at the first recognition,
    where one broken template would fail every turn. Names the first broken one."""
    from hassil.parse_expression import parse_sentence

    for name, texts in sentences.items():
        for index, text in enumerate(texts):
            try:
                parse_sentence(text)
            except Exception as exc:  # hassil raises several parse error types
                raise EngineError(
                    f"sentences.{name}[{index}] {text!r} does not parse: {exc}"
                ) from exc


class IntentRecognizer:
    """hassil over the device language's intents, the configured custom sentences and
    slot lists; the same sentences generate the STT grammar."""

    def __init__(
        self,
        language: str,
        *,
        intent_names: Sequence[str],
        sentences: Mapping[str, Sequence[str]],
        slot_lists: Mapping[str, Sequence[str]],
    ) -> None:
        import home_assistant_intents
        from hassil import Intents, TextSlotList
        from hassil.util import merge_dict

        check_sentences(sentences)
        data = home_assistant_intents.get_intents(language)
        if data is None:
            raise EngineError(f"home-assistant-intents has no sentences for language {language!r}")
        custom = {
            "language": language,
            "intents": {
                name: {"data": [{"sentences": list(texts)}]} for name, texts in sentences.items()
            },
        }
        merge_dict(data, custom)
        try:
            self.intents = Intents.from_dict(data)
        except Exception as exc:  # hassil raises many parse error types
            raise EngineError(f"the custom sentences do not parse: {exc}") from exc
        self.language = language
        self.intent_names = frozenset(intent_names) | frozenset(sentences)
        self.slot_lists: dict[str, Any] = {
            name: TextSlotList.from_strings([]) for name in BUILTIN_LISTS
        }
        self.slot_lists.update(
            {name: TextSlotList.from_strings(list(values)) for name, values in slot_lists.items()}
        )
        if "name" in slot_lists:
            self.slot_lists["name"] = _names(slot_lists["name"])

    def recognize(self, text: str) -> Recognized | None:
        """The best intent for ``text`` among the device's intents, or None."""
        from hassil import recognize_all
        from hassil.errors import MissingListError
        from hassil.intents import TextSlotList

        for _ in range(MAX_MISSING_LISTS):
            try:
                results = list(recognize_all(text, self.intents, slot_lists=self.slot_lists))
                break
            except MissingListError as exc:
                missing = str(exc).split("{")[-1].rstrip("}")
                self.slot_lists[missing] = TextSlotList.from_strings([])
        else:
            return None
        for result in results:
            if result.intent.name in self.intent_names:
                slots = {k: _slot_value(v.value) for k, v in result.entities.items()}
                return Recognized(result.intent.name, slots)
        return None

    def grammar(
        self,
        known_word: Callable[[str], bool],
        prefixes: tuple[str, ...] = (),
        limits: GrammarLimits = DEVICE_LIMITS,
    ) -> str:
        """A JSGF grammar of the sentences of the device's intents that this recogniser
        can match: blocks that need context the device never passes (``requires_context``
        beyond the name's domain) or a domain none of its names has are left out, and a
        ``{name}`` only stands for the names of the block's domains."""
        builder = JsgfBuilder(
            slot_lists={**self.intents.slot_lists, **self.slot_lists},
            expansion_rules=self.intents.expansion_rules,
            known_word=known_word,
            language=self.language,
            limits=limits,
        )
        domains = self.domains()
        blocks: list[tuple[list[Any], frozenset[str] | None]] = []
        for name in sorted(self.intent_names):
            intent = self.intents.intents.get(name)
            if intent is None:
                logger.warning("intent %s has no sentences in language %s", name, self.language)
                continue
            for data in intent.data:
                if set(data.requires_context) - {"domain"}:
                    continue  # e.g. the satellite's area: never in the device's context
                if data.domains and not data.domains & domains:
                    continue
                required = data.requires_context.get("domain")
                name_domains = None if required is None else frozenset(_as_list(required))
                blocks.append((list(data.sentences), name_domains))
        try:
            return builder.build(blocks, prefixes)
        except ValueError as exc:
            raise EngineError(f"cannot build the STT grammar: {exc}") from exc

    def domains(self) -> frozenset[str]:
        """The domains the device's names belong to; lights always."""
        names = self.slot_lists.get("name")
        found = {"light"}
        for value in getattr(names, "values", []):
            domain = (value.context or {}).get("domain")
            if isinstance(domain, str):
                found.add(domain)
        return frozenset(found)


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]
