"""A JSGF grammar for the STT engine, generated from the same hassil sentences as intents.

hassil's expression tree (sequences, alternatives, optionals, permutations, rule and
list references) maps one to one onto JSGF; list references become the slot values the
hub delivered. A branch with a word the recogniser's dictionary lacks, or a wildcard,
is dropped, so the grammar only holds what the device can actually recognise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

MAX_RANGE_VALUES: Final = 60
MAX_DEPTH: Final = 40
_WORD = re.compile(r"[a-z0-9']+")


def words_of(text: str) -> list[str]:
    """Lowercase words without punctuation, as the recogniser spells them."""
    return _WORD.findall(text.lower().replace("-", " "))


class JsgfBuilder:
    """Turns hassil sentences into one JSGF grammar with a public ``<command>`` rule."""

    def __init__(
        self,
        *,
        slot_lists: Mapping[str, Any],
        expansion_rules: Mapping[str, Any],
        known_word: Callable[[str], bool],
        language: str,
    ) -> None:
        self.slot_lists = slot_lists
        self.expansion_rules = expansion_rules
        self.known_word = known_word
        self.language = language
        self._rules: dict[str, str | None] = {}

    def _rule(self, name: str, build: Callable[[], str | None]) -> str | None:
        key = "r" + re.sub(r"[^A-Za-z0-9_]", "_", name)
        if key not in self._rules:
            self._rules[key] = None  # guards recursion
            self._rules[key] = build()
        return f"<{key}>" if self._rules[key] is not None else None

    def _text(self, text: str) -> str | None:
        words = words_of(text)
        if not all(self.known_word(w) for w in words):
            return None
        return " ".join(words)

    def _list(self, name: str) -> str | None:
        from hassil.intents import RangeSlotList, TextSlotList

        slot_list = self.slot_lists.get(name)
        if isinstance(slot_list, TextSlotList):
            alts = [self.expression(v.text_in, 0) for v in slot_list.values]
            return _alternatives(alts)
        if isinstance(slot_list, RangeSlotList):
            from hassil.numbers import get_rbnf_engine

            engine = get_rbnf_engine(slot_list.words_language or self.language)
            numbers = list(slot_list.get_numbers())[:MAX_RANGE_VALUES]
            texts = {t for n in numbers for t in engine.format_number(n).text_by_ruleset.values()}
            return _alternatives([self._text(t) for t in sorted(texts)])
        return None  # wildcards and unknown lists cannot be recognised from a grammar

    def expression(self, exp: Any, depth: int) -> str | None:
        """JSGF for one hassil expression, or None when it cannot be recognised."""
        from hassil.expression import (
            Alternative,
            ListReference,
            Permutation,
            RuleReference,
            Sequence,
            TextChunk,
        )

        if depth > MAX_DEPTH:
            return None
        if isinstance(exp, TextChunk):
            return self._text(exp.text) if exp.text.strip() else ""
        if isinstance(exp, Permutation):
            alts: list[str | None] = []
            for item, rest in exp.iterate_permutations():
                first, others = self.expression(item, depth + 1), self.expression(rest, depth + 1)
                if first is not None and others is not None:
                    alts.append(f"{first} {others}".strip())
            return _alternatives(alts)
        if isinstance(exp, Alternative):
            options = [self.expression(item, depth + 1) for item in exp.items]
            if exp.is_optional:
                body = _alternatives([a for a in options if a])
                return f"[ {body} ]" if body else ""
            return _alternatives(options)
        if isinstance(exp, Sequence):
            parts = [self.expression(item, depth + 1) for item in exp.items]
            if any(p is None for p in parts):
                return None
            return " ".join(p for p in parts if p)
        if isinstance(exp, RuleReference):
            rule = self.expansion_rules.get(exp.rule_name)
            if rule is None:
                return None
            return self._rule(
                "x_" + exp.rule_name, lambda: self.expression(rule.expression, depth + 1)
            )
        if isinstance(exp, ListReference):
            return self._rule("l_" + exp.list_name, lambda: self._list(exp.list_name))
        return None

    def build(self, sentences: list[Any], prefixes: tuple[str, ...] = ()) -> str:
        """The grammar for ``sentences`` (hassil ``Sentence`` objects), optionally
        preceded by one of ``prefixes`` (the wake word's tail in the pre-roll)."""
        alts = [self.expression(s.expression, 0) for s in sentences]
        body = _alternatives(alts)
        if body is None:
            raise ValueError("no sentence could be expressed with the recogniser's words")
        head = _alternatives([self._text(p) for p in prefixes])
        command = f"[ {head} ] {body}" if head else body
        rules = [f"<{name}> = {text};" for name, text in self._rules.items() if text]
        return "\n".join(
            ["#JSGF V1.0;", "grammar konak;", f"public <command> = {command};", *rules, ""]
        )


def _alternatives(items: Iterable[str | None]) -> str | None:
    alts = list(items)
    usable = sorted({a for a in alts if a is not None and a != ""})
    if not usable:
        return "" if any(a == "" for a in alts) else None
    inner = " | ".join(usable)
    empty = any(a == "" for a in alts)
    if empty:
        return f"[ {inner} ]"
    return f"( {inner} )" if len(usable) > 1 else usable[0]


def wake_prefixes(wake_words: list[str]) -> tuple[str, ...]:
    """What of each wake word may open the pre-roll: the phrase and its last word."""
    out: set[str] = set()
    for word in wake_words:
        parts = words_of(word.replace("_", " "))
        if parts:
            out.update({" ".join(parts), parts[-1]})
    return tuple(sorted(out))


def strip_prefix(text: str, prefixes: tuple[str, ...]) -> str:
    """``text`` without a leading wake word phrase."""
    for prefix in sorted(prefixes, key=len, reverse=True):
        if text == prefix:
            return ""
        if text.startswith(prefix + " "):
            return text[len(prefix) + 1 :]
    return text


def grammar_words(jsgf: str) -> list[str]:
    """Every word a JSGF grammar (as built here) can produce, sorted."""
    body = "\n".join(line.split("=", 1)[1] for line in jsgf.splitlines() if "=" in line)
    body = re.sub(r"<[^>]*>", " ", body)
    return sorted(set(_WORD.findall(body)))
