"""Intents to replies: exactly once per turn id, arbitrated per area, routed to MCP tools."""

from __future__ import annotations

import asyncio
import logging
import string
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from konak.hub.arbitration import Arbiter
from konak.hub.errors import PublishError, ToolError
from konak.hub.knowledge.routing import fill_arguments
from konak.hub.mcp_host import ToolRef
from konak.hub.metrics import HubMetrics
from konak.hub.quotas import LIMIT_TEXT, Quotas
from konak.hub.settings import TenantSettings, ToolCall
from konak.hub.speakable import DONE, result_text
from konak.hub.store import Store, Turn
from konak.protocol import Intent, Reply

if TYPE_CHECKING:
    from mcp.types import CallToolResult

    from konak.hub.knowledge.answer import VoiceKnowledge

logger = logging.getLogger(__name__)

NO_ROUTE_TEXT: Final = "I can't do that yet."
NOT_UNDERSTOOD_TEXT: Final = "Sorry, I didn't understand that."
FAILED_TEXT: Final = "Sorry, that didn't work. Please try again later."
PARTLY_FAILED_TEXT: Final = "Sorry, part of that didn't work."
MISSING_TEXT: Final = "Sorry, I need more details to do that."
NOT_KNOWN_TEXT: Final = "Sorry, I don't know that."
# A custom intent that asks the tenant's knowledge (its question in a slot, see
# konak.hub.knowledge.answer.QUESTION_SLOTS), unless the tenant binds it to a tool.
KNOWLEDGE_INTENT: Final = "HassGetKnowledge"
INTERRUPTED_TEXT: Final = ""
EXPIRED_TEXT: Final = "That came too late, so I didn't do it."
# A turn the hub did not finish (it crashed, or a stop outlasted its grace): the tool may
# or may not have run.
STOPPED_TEXT: Final = "Sorry, the hub restarted while doing that. Please check and try again."
# A tool call is not started this close to the intent's expiry: it reaches the tool a little
# later, and must start before the expiry, not at it.
START_MARGIN_SECONDS: Final = 0.5
# How long a turn waits for MCP servers that are still making their first connection.
STARTUP_WAIT_SECONDS: Final = 10.0

Publish = Callable[[Reply], Awaitable[None]]
# Told (tenant, turn id) once a turn's reply is with the broker (the console's live turns).
Finished = Callable[[str, str], None]


class ToolHost(Protocol):
    """Where tools are found and called (the MCP host; a fake in unit tests)."""

    def find_tool(self, tenant_id: str, tool: str, server: str | None = None) -> ToolRef | None:
        """The server offering ``tool`` to the tenant, if any."""
        ...

    async def wait_first_connect(self, tenant_id: str, timeout_seconds: float) -> bool:
        """Wait, bounded, for servers still making their first connection; whether any were."""
        ...

    async def call(
        self, tenant_id: str, server: str, tool: str, arguments: dict[str, Any]
    ) -> CallToolResult:
        """Call a tool; raises ToolError when it fails."""
        ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a turn came to."""

    outcome: str
    text: str


class _MissingSlot(KeyError):
    pass


class _Slots(dict[str, Any]):
    def __missing__(self, key: str) -> Any:
        raise _MissingSlot(key)


def render_arguments(templates: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, Any]:
    """Fill a binding's argument templates; a lone ``{slot}`` keeps the slot's type."""
    slots = _Slots(context)
    out: dict[str, Any] = {}
    for key, template in templates.items():
        parsed = list(string.Formatter().parse(template))
        if len(parsed) == 1 and parsed[0][0] == "" and parsed[0][1] and not parsed[0][2]:
            out[key] = slots[parsed[0][1]]
        else:
            out[key] = template.format_map(slots)
    return out


class TurnProcessor:
    """Handles each intent once: dedupe, arbitrate, route, reply."""

    def __init__(
        self,
        store: Store,
        host: ToolHost,
        arbiter: Arbiter,
        metrics: HubMetrics,
        publish: Publish,
        tenants: Callable[[], Mapping[str, TenantSettings]],
        quotas: Quotas | None = None,
        clock: Callable[[], float] = time.time,
        on_finished: Finished | None = None,
        knowledge: VoiceKnowledge | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.host = host
        self.arbiter = arbiter
        self.metrics = metrics
        self.publish = publish
        self.tenants = tenants
        self.quotas = quotas
        self.on_finished = on_finished
        self.knowledge = knowledge

    async def handle(self, intent: Intent, claimed: Callable[[], None] = lambda: None) -> None:
        """Process one intent message (possibly a redelivery) and publish its reply.

        ``claimed`` is called once the turn's claim (or the earlier one) is committed: from
        then on a crash leaves a claimed turn, failed and answered at the next start."""
        arrived = time.monotonic()
        earlier = self.store.claim_turn(intent.tenant, intent.turn_id, intent.device, intent)
        claimed()
        if earlier is not None:
            await self._redelivered(intent, earlier)
            return
        # A turn cancelled or killed from here on stays claimed and is never run again
        # (executing at most once beats twice); take_unanswered fails and answers it.
        # An expired turn is claimed too, so a redelivery of it is a duplicate, never run.
        area = self._area(intent)
        if self._expired(intent):
            result = Outcome("expired", EXPIRED_TEXT)
        elif self.quotas is not None and not self.quotas.admit_intent(intent.tenant):
            logger.info("turn %s/%s: intents_per_minute reached", intent.tenant, intent.turn_id)
            result = Outcome("limit", LIMIT_TEXT)
        elif area is not None and not await self.arbiter.wins(intent, area):
            result = Outcome("stand_down", "")
        else:
            result = await self.route(intent)
        self.store.finish_turn(intent.tenant, intent.turn_id, result.outcome, result.text)
        # Until replied, a crash leaves the turn to be answered at the next start, and the
        # device sending the intent again gets the reply again.
        sent = await self._reply(intent, result)
        self.metrics.turns.labels(intent.tenant, intent.device, result.outcome).inc()
        self.metrics.intent_seconds.labels(intent.tenant).observe(time.monotonic() - arrived)
        if sent:
            self._replied(intent.tenant, intent.turn_id)

    async def _redelivered(self, intent: Intent, earlier: Turn) -> None:
        """An intent that arrived again: never executed twice. The device sends it again
        until it hears a reply, so a finished turn's reply is sent again (``repeat``); a
        turn still running sends its reply when it finishes."""
        if earlier.state == "claimed":
            logger.info(
                "turn %s/%s arrived again while it runs; its reply follows",
                intent.tenant,
                intent.turn_id,
            )
            self.metrics.intents.labels("duplicate").inc()
            return
        logger.info(
            "turn %s/%s arrived again; not executed again, its reply is sent again",
            intent.tenant,
            intent.turn_id,
        )
        outcome = Outcome(earlier.outcome or "error", earlier.reply_text or INTERRUPTED_TEXT)
        if await self._reply(intent, outcome, repeat=True) and earlier.state == "answering":
            self._replied(intent.tenant, intent.turn_id)

    def take_unanswered(self) -> list[Turn]:
        """The turns whose reply was never confirmed; those never finished are failed.
        Call only while no turn runs: at start-up, or at a stop once the rest are cancelled."""
        turns = self.store.unanswered_turns("error", STOPPED_TEXT, self.clock())
        unfinished = sum(1 for t in turns if t.state == "claimed")
        if turns:
            logger.warning(
                "%d turn(s) were not answered (%d never finished); answering them now",
                len(turns),
                unfinished,
            )
        return turns

    async def answer(self, turns: list[Turn]) -> None:
        """Send the replies of turns from ``take_unanswered``."""
        for turn in turns:
            if turn.state == "claimed":
                self.metrics.intents.labels("interrupted").inc()
            await self.publish(
                Reply(
                    tenant=turn.tenant_id,
                    device=turn.device_id,
                    turn_id=turn.turn_id,
                    text=turn.reply_text or "",
                    outcome=turn.outcome or "error",  # type: ignore[arg-type]
                )
            )
            self._replied(turn.tenant_id, turn.turn_id)

    def _replied(self, tenant_id: str, turn_id: str) -> None:
        """Note a finished turn's reply as sent, and tell ``on_finished``."""
        self.store.replied(tenant_id, turn_id, self.clock())
        if self.on_finished is not None:
            self.on_finished(tenant_id, turn_id)

    def _expired(self, intent: Intent, margin_seconds: float = 0.0) -> bool:
        """Whether the intent is past its ``expires_at`` (by the hub's clock), or within
        ``margin_seconds`` of it."""
        if intent.expires_at is None:
            return False
        late_seconds = self.clock() + margin_seconds - intent.expires_at
        if late_seconds < 0:
            return False
        logger.warning(
            "turn %s/%s from %s is %.1fs past its expiry (or too close to it); not executed",
            intent.tenant,
            intent.turn_id,
            intent.device,
            late_seconds,
        )
        return True

    def _area(self, intent: Intent) -> str | None:
        """The area to arbitrate in, or None when no other device there could compete."""
        if intent.continued:
            return None
        device = self.store.device(intent.tenant, intent.device)
        area = intent.area or (device.area if device else None)
        if area is None:
            return None
        others = [
            d
            for d in self.store.devices(intent.tenant, area=area)
            if d.device_id != intent.device and d.state == "online"
        ]
        return area if others else None

    async def route(self, intent: Intent) -> Outcome:
        """Find the tool call(s) for an intent and run them in parallel."""
        if intent.intent is None:
            return await self._unmatched(intent)
        tenant = self.tenants().get(intent.tenant)
        binding = tenant.bindings.get(intent.intent) if tenant else None
        if binding is None and intent.intent == KNOWLEDGE_INTENT and self.knowledge is not None:
            return await self._question(intent)
        if binding is not None:
            context = self._context(intent)
            try:
                calls = [(c, render_arguments(c.arguments, context)) for c in binding.calls]
            except _MissingSlot as exc:
                logger.info("turn %s: binding needs slot %s", intent.turn_id, exc)
                return Outcome("error", MISSING_TEXT)
        else:
            calls = [(ToolCall(tool=intent.intent), dict(intent.slots))]
        resolved = []
        for call, arguments in calls:
            ref = self.host.find_tool(intent.tenant, call.tool, call.server)
            if ref is None and await self.host.wait_first_connect(
                intent.tenant, STARTUP_WAIT_SECONDS
            ):
                # Just after the hub started, the tool's server may still be connecting.
                ref = self.host.find_tool(intent.tenant, call.tool, call.server)
            if ref is None:
                logger.info("turn %s: no tool for intent %s", intent.turn_id, intent.intent)
                return Outcome("no_route", NO_ROUTE_TEXT)
            resolved.append((ref.server, ref.name, arguments))
        return await self._run(intent, resolved)

    @staticmethod
    def _context(intent: Intent) -> dict[str, Any]:
        """What argument templates (and semantic routing) may fill arguments from."""
        return {
            "device": intent.device,
            "area": intent.area or "",
            "text": intent.text,
            "language": intent.language,
            **intent.slots,
        }

    async def _question(self, intent: Intent) -> Outcome:
        """A HassGetKnowledge-style intent: answered from the nearest passage, or not known."""
        from konak.hub.knowledge.answer import question_slot

        assert self.knowledge is not None
        question = question_slot(intent.slots, intent.text)
        decision = await self.knowledge.for_turn(intent, question, route_tools=False)
        if decision.kind != "answer":
            return Outcome("no_route", NOT_KNOWN_TEXT)
        return Outcome("ok", decision.text)

    async def _unmatched(self, intent: Intent) -> Outcome:
        """A transcript no intent matched: a passage, a tool by similarity, or not understood."""
        if self.knowledge is None:
            return Outcome("no_route", NOT_UNDERSTOOD_TEXT)
        decision = await self.knowledge.for_turn(intent, intent.text)
        if decision.kind == "none":
            return Outcome("no_route", NOT_UNDERSTOOD_TEXT)
        if decision.kind == "answer":
            return Outcome("ok", decision.text)
        assert decision.tool is not None
        tool = decision.tool.tool
        arguments = fill_arguments(tool.required, self._context(intent))
        if arguments is None:
            logger.info(
                "turn %s: routed to %s/%s, whose arguments %s the turn cannot fill",
                intent.turn_id,
                tool.server,
                tool.name,
                list(tool.required),
            )
            return Outcome("no_route", MISSING_TEXT)
        return await self._run(intent, [(tool.server, tool.name, arguments)])

    async def _run(
        self, intent: Intent, resolved: list[tuple[str, str, dict[str, Any]]]
    ) -> Outcome:
        """Run resolved tool calls in parallel, within the expiry and the tenant's quota."""
        if self._expired(intent, margin_seconds=START_MARGIN_SECONDS):
            # Valid when it arrived, but arbitration or a server's first connection took
            # long enough: a tool must not start after the intent's expiry.
            return Outcome("expired", EXPIRED_TEXT)
        quotas = self.quotas
        if quotas is not None and not quotas.start_calls(intent.tenant, len(resolved)):
            logger.info(
                "turn %s/%s: max_concurrent_tool_calls reached", intent.tenant, intent.turn_id
            )
            return Outcome("limit", LIMIT_TEXT)
        try:
            results = await asyncio.gather(
                *(self._call(intent, server, tool, args) for server, tool, args in resolved)
            )
        finally:
            if quotas is not None:
                quotas.end_calls(intent.tenant, len(resolved))
        texts = [text for text in results if text is not None]
        if not texts:
            return Outcome("error", FAILED_TEXT)
        if len(texts) < len(results):
            return Outcome("error", PARTLY_FAILED_TEXT)
        spoken = " ".join(t for t in texts if t != DONE) or DONE
        return Outcome("ok", spoken)

    async def _call(
        self, intent: Intent, server: str, tool: str, arguments: dict[str, Any]
    ) -> str | None:
        try:
            result = await self.host.call(intent.tenant, server, tool, arguments)
        except ToolError as exc:
            logger.warning(
                "tool_error tenant=%s device=%s turn=%s server=%s tool=%s code=%s: %s",
                intent.tenant,
                intent.device,
                intent.turn_id,
                server,
                tool,
                exc.code,
                exc.message,
            )
            return None
        if result.is_error:
            logger.warning(
                "tool_error tenant=%s turn=%s server=%s tool=%s code=tool_reported_error",
                intent.tenant,
                intent.turn_id,
                server,
                tool,
            )
            return None
        return result_text(result)

    async def _reply(self, intent: Intent, result: Outcome, *, repeat: bool = False) -> bool:
        """Publish the reply; False when the broker did not take it in time (the turn
        stays unanswered: the device's next copy of the intent, or the next start,
        sends it)."""
        self.metrics.intents.labels("duplicate" if repeat else result.outcome).inc()
        reply = Reply(
            tenant=intent.tenant,
            device=intent.device,
            turn_id=intent.turn_id,
            text=result.text,
            outcome=result.outcome,  # type: ignore[arg-type]
            repeat=repeat,
        )
        try:
            await self.publish(reply)
        except PublishError as exc:
            logger.warning("turn %s/%s: reply not sent yet: %s", intent.tenant, intent.turn_id, exc)
            return False
        return True
