"""Wake arbitration: of several devices in one area that heard the same utterance, only
the one with the highest wake score answers.

The rule: intents from devices of the same tenant and area whose arrival falls within
``window_seconds`` of the first one are one utterance. When the window closes, the
intent with the highest ``wake_score`` wins (a missing score counts as 0); ties go to
the intent that arrived first. The winner is routed; every other device gets a
``stand_down`` reply and speaks nothing.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from konak.protocol import Intent


@dataclass
class _Contest:
    entries: list[tuple[float, int, str]] = field(default_factory=list)
    decided: asyncio.Future[str] | None = None


class Arbiter:
    """Collects intents per (tenant, area) for one window and names the winner."""

    def __init__(self, window_seconds: float) -> None:
        self.window_seconds = window_seconds
        self._contests: dict[tuple[str, str], _Contest] = {}
        self._seq = itertools.count()

    async def wins(self, intent: Intent, area: str) -> bool:
        """Wait for the window of this intent's area to close; whether it won."""
        key = (intent.tenant, area)
        contest = self._contests.get(key)
        loop = asyncio.get_running_loop()
        if contest is None:
            contest = _Contest(decided=loop.create_future())
            self._contests[key] = contest
            loop.call_later(self.window_seconds, self._decide, key, contest)
        entry_id = f"{intent.device}/{intent.turn_id}"
        contest.entries.append((intent.wake_score or 0.0, -next(self._seq), entry_id))
        assert contest.decided is not None
        winner = await contest.decided
        return winner == entry_id

    def _decide(self, key: tuple[str, str], contest: _Contest) -> None:
        if self._contests.get(key) is contest:
            del self._contests[key]
        assert contest.decided is not None
        if not contest.decided.done():
            contest.decided.set_result(max(contest.entries)[2])
