"""Turn a tool's result into a short sentence a device can speak: no markup, no URLs."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mcp.types import CallToolResult

MAX_SPOKEN_CHARS: Final = 300
DONE: Final = "Done."

_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")
_TAG = re.compile(r"<[^>]{1,200}>")
_MARKUP = re.compile(r"(```|`|\*\*|__|\*|~~|^#{1,6}\s*|^\s*[-*+>]\s+|^\s*\|)", re.MULTILINE)
_SPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def speakable(text: str, limit: int = MAX_SPOKEN_CHARS) -> str:
    """Strip markup and URLs, collapse whitespace, and cut at a sentence end within limit."""
    text = _LINK.sub(r"\1", text)
    text = _URL.sub("", text)
    text = _TAG.sub("", text)
    text = _MARKUP.sub("", text)
    text = text.replace("|", " ")
    text = _SPACE.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    ends = [m.end() for m in _SENTENCE_END.finditer(cut)]
    if ends:
        return cut[: ends[-1]].strip()
    return cut.rsplit(" ", 1)[0].rstrip(",;:") + "."


def result_text(result: CallToolResult) -> str:
    """The speakable text of a successful tool result ("Done." when it has no text)."""
    from mcp.types import TextContent

    parts = [c.text for c in result.content if isinstance(c, TextContent)]
    spoken = speakable(" ".join(parts))
    return spoken or DONE
