"""A JSGF grammar for the STT engine, generated from the same hassil sentences as intents.

hassil's expression tree (sequences, alternatives, optionals, permutations, rule and
list references) maps one to one onto JSGF; list references become the slot values the
hub delivered. A branch with a word the recogniser's dictionary lacks, or a wildcard,
is dropped, so the grammar only holds what the device can actually recognise.

Pieces of one word written apart in a template (``timer[s]``, ``( |-)hour[s]``) are
joined before they become words: ``timer[s]`` is ``( timer | timers )``, not ``timer``
followed by the letter ``s``. :class:`GrammarLimits` keeps the grammar as small as the
device needs (MODELS.md note 6: the search cost and the errors grow with it).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

MAX_RANGE_VALUES: Final = 60
MAX_DEPTH: Final = 40
MAX_GLUED_STRINGS: Final = 64
# Numbers people set timers to (and say for other ranges): every one up to twelve, then
# the round ones. A range list keeps those within its bounds (GrammarLimits.numbers).
COMMON_NUMBERS: Final = (*range(1, 13), 15, 20, 25, 30, 40, 45, 50, 60, 90)
_WORD = re.compile(r"[a-z0-9']+")


def words_of(text: str) -> list[str]:
    """Lowercase words without punctuation, as the recogniser spells them."""
    return _WORD.findall(text.lower().replace("-", " "))


@dataclass(frozen=True)
class GrammarLimits:
    """How much of the sentences' variety the grammar keeps.

    ``numbers``: the values a range list (timer minutes, brightness) may take; None keeps
    the first ``MAX_RANGE_VALUES`` of the range. ``max_alternatives``: at most this many
    alternatives of each alternation inside an expansion rule (hassil's ``<turn>``,
    ``<light>``...; Home Assistant lists the usual word first); None keeps them all.
    """

    numbers: tuple[int, ...] | None = COMMON_NUMBERS
    max_alternatives: int | None = None


FULL: Final = GrammarLimits(numbers=None)
# What the daemon builds (measured in docs/daemon.md: size against accuracy and speed).
DEVICE_LIMITS: Final = GrammarLimits()


class JsgfBuilder:
    """Turns hassil sentences into one JSGF grammar with a public ``<command>`` rule."""

    def __init__(
        self,
        *,
        slot_lists: Mapping[str, Any],
        expansion_rules: Mapping[str, Any],
        known_word: Callable[[str], bool],
        language: str,
        limits: GrammarLimits = FULL,
    ) -> None:
        self.slot_lists = slot_lists
        self.expansion_rules = expansion_rules
        self.known_word = known_word
        self.language = language
        self.limits = limits
        self._rules: dict[str, str | None] = {}
        # While one block of sentences is built: the domains its {name} may resolve to.
        self._name_domains: frozenset[str] | None = None
        self._domain_sets: dict[frozenset[str], int] = {}
        self._in_rule = 0

    def _rule(self, name: str, build: Callable[[], str | None]) -> str | None:
        if self._name_domains is not None:
            # Rules under a block whose {name} is limited to some domains are its own copies.
            index = self._domain_sets.setdefault(self._name_domains, len(self._domain_sets) + 1)
            name += f"_d{index}"
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

    def _numbers(self, slot_list: Any) -> list[int]:
        if self.limits.numbers is None:
            return list(slot_list.get_numbers())[:MAX_RANGE_VALUES]
        step = slot_list.step or 1
        return [
            n
            for n in self.limits.numbers
            if slot_list.start <= n <= slot_list.stop and (n - slot_list.start) % step == 0
        ]

    def _list(self, name: str) -> str | None:
        from hassil.intents import RangeSlotList, TextSlotList

        slot_list = self.slot_lists.get(name)
        if isinstance(slot_list, TextSlotList):
            values = slot_list.values
            if name == "name" and self._name_domains is not None:
                domains = self._name_domains
                values = [v for v in values if (v.context or {}).get("domain", "") in domains]
            return _alternatives([self.expression(v.text_in, 0) for v in values])
        if isinstance(slot_list, RangeSlotList):
            from hassil.numbers import get_rbnf_engine

            engine = get_rbnf_engine(slot_list.words_language or self.language)
            numbers = self._numbers(slot_list)
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
            items = exp.items
            cap = self.limits.max_alternatives
            if self._in_rule and cap is not None and not exp.is_optional:
                items = items[:cap]
            options = [self.expression(item, depth + 1) for item in items]
            if exp.is_optional:
                body = _alternatives([a for a in options if a])
                return f"[ {body} ]" if body else ""
            return _alternatives(options)
        if isinstance(exp, Sequence):
            parts = [self._group(group, depth + 1) for group in _word_groups(exp.items)]
            if any(p is None for p in parts):
                return None
            return " ".join(p for p in parts if p)
        if isinstance(exp, RuleReference):
            rule = self.expansion_rules.get(exp.rule_name)
            if rule is None:
                return None
            return self._rule("x_" + exp.rule_name, lambda: self._in_expansion(rule, depth))
        if isinstance(exp, ListReference):
            return self._rule("l_" + exp.list_name, lambda: self._list(exp.list_name))
        return None

    def _in_expansion(self, rule: Any, depth: int) -> str | None:
        self._in_rule += 1
        try:
            return self.expression(rule.expression, depth + 1)
        finally:
            self._in_rule -= 1

    def _group(self, group: list[Any], depth: int) -> str | None:
        """One item of a sequence, or several written as one word (``timer[s]``)."""
        if len(group) == 1:
            return self.expression(group[0], depth)
        strings = [""]
        for item in group:
            pieces = _strings(item)
            assert pieces is not None  # _word_groups only glues expandable items
            strings = [a + b for a, b in itertools.product(strings, pieces)]
        return _alternatives([self._text(s) if s.strip() else "" for s in strings])

    def build(
        self,
        blocks: Iterable[tuple[list[Any], Collection[str] | None]],
        prefixes: tuple[str, ...] = (),
    ) -> str:
        """The grammar for blocks of hassil ``Sentence`` objects, each with the domains
        its ``{name}`` may resolve to (None: any name), optionally preceded by one of
        ``prefixes`` (the wake word in the pre-roll)."""
        alts: list[str | None] = []
        for sentences, name_domains in blocks:
            self._name_domains = None if name_domains is None else frozenset(name_domains)
            alts.extend(self.expression(s.expression, 0) for s in sentences)
        self._name_domains = None
        body = _alternatives(alts)
        if body is None:
            raise ValueError("no sentence could be expressed with the recogniser's words")
        head = _alternatives([self._text(p) for p in prefixes])
        command = f"[ {head} ] <body>" if head else "<body>"
        rules = [f"<{name}> = {text};" for name, text in self._rules.items() if text]
        return "\n".join(
            [
                "#JSGF V1.0;",
                "grammar konak;",
                f"public <command> = {command};",
                f"<body> = {body};",
                *rules,
                "",
            ]
        )


def _strings(exp: Any) -> list[str] | None:
    """Every text a small, purely textual expression can be, or None."""
    from hassil.expression import Alternative, Sequence, TextChunk

    if isinstance(exp, TextChunk):
        return [exp.text]
    if isinstance(exp, Alternative):
        out: list[str] = []
        for item in exp.items:
            sub = _strings(item)
            if sub is None:
                return None
            out.extend(sub)
        if exp.is_optional:
            out.append("")
        return out if len(out) <= MAX_GLUED_STRINGS else None
    if isinstance(exp, Sequence):
        acc = [""]
        for item in exp.items:
            sub = _strings(item)
            if sub is None:
                return None
            acc = [a + b for a, b in itertools.product(acc, sub)]
            if len(acc) > MAX_GLUED_STRINGS:
                return None
        return acc
    return None


def _word_groups(items: list[Any]) -> list[list[Any]]:
    """Consecutive textual items with no space between them go into one group."""
    groups: list[list[Any]] = []
    previous: list[str] | None = None
    for item in items:
        strings = _strings(item)
        glued = (
            groups
            and previous is not None
            and strings is not None
            and any(s and not s[-1].isspace() for s in previous)
            and any(s and not s[0].isspace() for s in strings)
        )
        if glued:
            groups[-1].append(item)
            assert previous is not None
            assert strings is not None
            previous = [a + b for a, b in itertools.product(previous, strings)]
        else:
            groups.append([item])
            previous = strings
    return groups


def _alternatives(items: Iterable[str | None]) -> str | None:
    alts = list(items)
    found = {a for a in alts if a is not None and a != ""}
    # "whats" beside "what's" is the same sound twice: keep the spelling with the apostrophe.
    usable = sorted(found - {a.replace("'", "") for a in found if "'" in a})
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


def inlined_size(jsgf: str) -> int:
    """How many words the grammar holds once every rule reference is inlined (as the
    recogniser compiles it): a measure of its search cost."""
    rules = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^(?:public )?<(\w+)> = (.*);$", jsgf, re.MULTILINE)
    }
    sizes: dict[str, int] = {}

    def size(name: str, depth: int) -> int:
        if name not in sizes:
            if depth > MAX_DEPTH:
                raise ValueError(f"rule <{name}> nests too deeply")
            total = 0
            for token in rules.get(name, "").split():
                if token.startswith("<"):
                    total += size(token[1:-1], depth + 1)
                elif token not in ("(", ")", "[", "]", "|"):
                    total += 1
            sizes[name] = total
        return sizes[name]

    return size("command", 0)
