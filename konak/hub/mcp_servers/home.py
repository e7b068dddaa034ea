"""konak-home: lights and switches that speak MQTT in the Zigbee2MQTT convention.

Tools are named like the Home Assistant intents (HassTurnOn, HassTurnOff, HassLightSet,
HassGetState) and take the same slots (``name``, ``area``, ``brightness``, ``color``), so a
device's recognised intents map onto them directly. A command goes to
``<base>/<friendly name>/set`` (``{"state": "ON"}``); state is read from ``<base>/<name>``.

A command is reported done only once the device's state echo shows it (Zigbee2MQTT
publishes the new state after each ``/set``); when none comes within
``state_timeout_seconds`` the answer says so. The broker link is supervised: lost, it is
reconnected with back-off, and a call made while it is down answers ``isError`` at once.

One process serves one tenant: ``python -m konak.hub.mcp_servers.home --config home.toml``
(stdio). The broker password comes from the environment variable named by
``password_env`` (default ``KONAK_HOME_MQTT_PASSWORD``), never from the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import AfterValidator, AliasPath, Field, ValidationInfo, model_validator
from pydantic.dataclasses import dataclass

from konak.config import SETTINGS, Float, Port, SettingError, load_toml, unknown_keys
from konak.errors import ConfigError, KonakError

if TYPE_CHECKING:
    import aiomqtt
    from mcp.server.mcpserver import MCPServer

logger = logging.getLogger(__name__)

SERVER_NAME: Final = "konak-home"
PASSWORD_ENV: Final = "KONAK_HOME_MQTT_PASSWORD"  # noqa: S105 - the variable's name, not a secret
STATE_TIMEOUT_SECONDS: Final = 2.0
RECONNECT_INITIAL_SECONDS: Final = 0.5
RECONNECT_MAX_SECONDS: Final = 10.0
# A call made while the broker link is being made waits this long for it, no longer.
LINK_WAIT_SECONDS: Final = 2.0
UNREACHABLE_TEXT: Final = "I can't reach the home's devices right now."
COLORS: Final = {
    "red": "#FF0000",
    "green": "#00FF00",
    "blue": "#0000FF",
    "white": "#FFFFFF",
    "yellow": "#FFFF00",
    "orange": "#FFA500",
    "purple": "#800080",
    "pink": "#FFC0CB",
}


def _topic_prefix(value: str) -> str:
    if not value or any(c in value for c in "+#"):
        raise ValueError("must be a plain topic prefix")
    return value


@dataclass(frozen=True, slots=True, config=SETTINGS)
class Entity:
    """A light or switch known by its Zigbee2MQTT friendly name."""

    name: str
    kind: Literal["light", "switch"] = "light"
    area: str | None = None
    friendly_name: str = ""

    def __post_init__(self) -> None:
        if not self.name or any(c in self.z2m_name for c in "+#/"):
            raise ValueError(f"entity name {self.name!r} cannot be used in a topic")

    @property
    def z2m_name(self) -> str:
        """The Zigbee2MQTT friendly name (the spoken name unless configured)."""
        return self.friendly_name or self.name


def _mqtt(key: str) -> AliasPath:
    return AliasPath("mqtt", key)


@dataclass(frozen=True, slots=True, config=SETTINGS)
class HomeSettings:
    """Broker and entities of one tenant's home: the ``[mqtt]`` table and ``[[entities]]``."""

    host: str = Field(default="127.0.0.1", validation_alias=_mqtt("host"))
    port: Port = Field(default=1883, validation_alias=_mqtt("port"))
    username: str | None = Field(default=None, validation_alias=_mqtt("username"))
    # From the environment variable named by [mqtt] password_env, never from the file.
    password: str | None = Field(default=None, repr=False, validation_alias=_mqtt("password"))
    base_topic: Annotated[str, AfterValidator(_topic_prefix)] = Field(
        default="zigbee2mqtt", validation_alias=_mqtt("base_topic")
    )
    entities: tuple[Entity, ...] = ()
    state_timeout_seconds: Annotated[Float, Field(gt=0, le=60)] = Field(
        default=STATE_TIMEOUT_SECONDS, validation_alias=_mqtt("state_timeout_seconds")
    )

    @model_validator(mode="before")
    @classmethod
    def _from_file(cls, data: Any, info: ValidationInfo) -> Any:
        """The password from the environment (validation context ``environ``)."""
        if not isinstance(data, dict):
            return data
        known = ("host", "port", "username", "base_topic", "state_timeout_seconds")
        unknown_keys(data, {"mqtt": (*known, "password_env")})
        mqtt = dict(data.get("mqtt", {}))
        name = mqtt.pop("password_env", PASSWORD_ENV)
        if not isinstance(name, str):
            raise SettingError("mqtt.password_env", "must be the name of an environment variable")
        environ = (info.context or {}).get("environ")
        environ = os.environ if environ is None else environ
        mqtt["password"] = environ.get(name)
        return {**data, "mqtt": mqtt}

    def __post_init__(self) -> None:
        names = [e.name.casefold() for e in self.entities]
        if len(names) != len(set(names)):
            raise ConfigError("entities: two entities share a name")


def load_home_settings(path: Path, environ: Mapping[str, str] | None = None) -> HomeSettings:
    """Read konak-home's TOML file: ``[mqtt]`` and ``[[entities]]``."""
    return load_toml(path, HomeSettings, context={"environ": environ})


class HomeUnavailable(KonakError):
    """The broker link is down: nothing can be switched or read now."""

    code = "home_unavailable"


class Home:
    """The entities, their last known states and the supervised broker link."""

    def __init__(self, settings: HomeSettings) -> None:
        self.settings = settings
        self.states: dict[str, dict[str, Any]] = {}
        # State messages received per device: an echo is one that came after the command.
        self._received: dict[str, int] = {}
        self._changed = asyncio.Condition()  # states, _received and client
        self.client: aiomqtt.Client | None = None
        self.connects = 0

    def find(self, name: str | None, area: str | None) -> list[Entity]:
        """Entities matching a spoken name and/or area (case-insensitive)."""
        found = list(self.settings.entities)
        if name:
            found = [e for e in found if e.name.casefold() == name.strip().casefold()]
        if area:
            found = [e for e in found if (e.area or "").casefold() == area.strip().casefold()]
        return found if (name or area) else []

    async def run_link(self) -> None:
        """Stay connected to the broker, reconnecting with back-off, until cancelled."""
        import aiomqtt

        s = self.settings
        backoff = RECONNECT_INITIAL_SECONDS
        while True:
            try:
                async with aiomqtt.Client(
                    s.host,
                    s.port,
                    username=s.username,
                    password=s.password,
                    socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                ) as client:
                    # A new connection has no subscriptions; retained states come again.
                    await client.subscribe(f"{s.base_topic}/+", qos=1)
                    async with self._changed:
                        self.client = client
                        self.connects += 1
                        self._changed.notify_all()
                    backoff = RECONNECT_INITIAL_SECONDS
                    logger.info("connected to the broker at %s:%d", s.host, s.port)
                    await self.listen(client)
            except aiomqtt.MqttError as exc:
                logger.warning("broker link lost (%s); reconnecting in %.1fs", exc, backoff)
            except Exception:  # supervisor: whatever broke the link, make a new one
                logger.exception("broker link failed; reconnecting in %.1fs", backoff)
            finally:
                async with self._changed:
                    self.client = None
                    self._changed.notify_all()
            await asyncio.sleep(backoff)  # reconnect back-off, not coordination
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)

    async def listen(self, client: aiomqtt.Client) -> None:
        """Track ``<base>/<name>`` state messages."""
        async for message in client.messages:
            name = str(message.topic).rsplit("/", 1)[-1]
            raw = message.payload
            try:
                if not isinstance(raw, bytes | bytearray | str):
                    raise TypeError(type(raw).__name__)
                state = json.loads(raw)
            except (TypeError, ValueError):
                logger.warning("ignored a non-JSON state for %s", name)
                continue
            if isinstance(state, dict):
                async with self._changed:
                    self.states[name] = state
                    self._received[name] = self._received.get(name, 0) + 1
                    self._changed.notify_all()

    async def _link(self) -> aiomqtt.Client:
        """The connected client; waits briefly while the link is being made."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LINK_WAIT_SECONDS), self._changed:
                await self._changed.wait_for(lambda: self.client is not None)
        if self.client is None:
            raise HomeUnavailable("not connected to the broker")
        return self.client

    async def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        import aiomqtt

        client = await self._link()
        try:
            # Bounded: a link that died unnoticed must not hold the call past the hub's timeout.
            await client.publish(topic, json.dumps(payload), qos=1, timeout=LINK_WAIT_SECONDS)
        except aiomqtt.MqttError as exc:
            raise HomeUnavailable(f"publish to {topic} failed: {exc}") from exc

    async def command(self, entities: Sequence[Entity], payload: dict[str, Any]) -> list[Entity]:
        """Publish a command on each ``<base>/<name>/set`` and wait, bounded, for the
        devices' state echoes; returns the entities that did not confirm it."""
        expected = {k: payload[k] for k in ("state", "brightness") if k in payload}
        before = {e.z2m_name: self._received.get(e.z2m_name, 0) for e in entities}

        def confirmed(entity: Entity) -> bool:
            name = entity.z2m_name
            state = self.states.get(name)
            return (
                self._received.get(name, 0) > before[name]
                and state is not None
                and all(_same(state.get(k), v) for k, v in expected.items())
            )

        for entity in entities:
            await self._publish(f"{self.settings.base_topic}/{entity.z2m_name}/set", payload)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.state_timeout_seconds), self._changed:
                await self._changed.wait_for(lambda: all(confirmed(e) for e in entities))
        return [e for e in entities if not confirmed(e)]

    async def state(self, entity: Entity) -> dict[str, Any] | None:
        """The entity's last state; asks the device (``/get``) when none is known yet."""
        if entity.z2m_name not in self.states:
            topic = f"{self.settings.base_topic}/{entity.z2m_name}/get"
            await self._publish(topic, {"state": ""})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.state_timeout_seconds), self._changed:
                    await self._changed.wait_for(lambda: entity.z2m_name in self.states)
        return self.states.get(entity.z2m_name)


def _same(reported: Any, expected: Any) -> bool:
    """Whether a reported state value shows the commanded one (``ON`` = ``on``)."""
    if isinstance(expected, str) and isinstance(reported, str):
        return reported.casefold() == expected.casefold()
    return bool(reported == expected)


def _report(found: list[Entity], unconfirmed: list[Entity], done: str, asked: str) -> str:
    """What to say after a command: done only where the device's state showed it."""
    if not unconfirmed:
        return f"{done} the {_label(found)}."
    if len(found) == 1:
        return f"I asked the {found[0].name} to {asked}, but it did not confirm."
    names = ", ".join(e.name for e in unconfirmed)
    confirmed = len(found) - len(unconfirmed)
    return f"{done} {confirmed} of {len(found)} devices; no confirmation from the {names}."


def _label(entities: list[Entity]) -> str:
    return entities[0].name if len(entities) == 1 else f"{len(entities)} devices"


def build_home_server(home: Home) -> MCPServer:
    """The konak-home MCP server over ``home``."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[None]:
        # The tools are served while the broker is away; calls then answer isError.
        link = asyncio.create_task(home.run_link(), name="konak-home-broker")
        try:
            yield
        finally:
            link.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await link

    server: MCPServer = MCPServer(SERVER_NAME, lifespan=lifespan)

    def targets(name: str | None, area: str | None, kinds: tuple[str, ...]) -> list[Entity]:
        found = [e for e in home.find(name, area) if e.kind in kinds]
        if not found:
            what = name or (f"lights in the {area}" if area else "a device name or area")
            raise ToolError(f"I don't know {what}.")
        return found

    async def command(found: list[Entity], payload: dict[str, Any]) -> list[Entity]:
        try:
            return await home.command(found, payload)
        except HomeUnavailable as exc:
            logger.warning("%s", exc.message)
            raise ToolError(UNREACHABLE_TEXT) from exc

    @server.tool(name="HassTurnOn")
    async def turn_on(name: str | None = None, area: str | None = None) -> str:
        """Turn on a light or switch by name, or every one in an area."""
        found = targets(name, area, ("light", "switch"))
        unconfirmed = await command(found, {"state": "ON"})
        return _report(found, unconfirmed, "Turned on", "turn on")

    @server.tool(name="HassTurnOff")
    async def turn_off(name: str | None = None, area: str | None = None) -> str:
        """Turn off a light or switch by name, or every one in an area."""
        found = targets(name, area, ("light", "switch"))
        unconfirmed = await command(found, {"state": "OFF"})
        return _report(found, unconfirmed, "Turned off", "turn off")

    @server.tool(name="HassLightSet")
    async def light_set(
        name: str | None = None,
        area: str | None = None,
        brightness: int | None = None,
        color: str | None = None,
    ) -> str:
        """Set a light's brightness (percent) and/or color by name or area."""
        found = targets(name, area, ("light",))
        payload: dict[str, Any] = {"state": "ON"}
        if brightness is not None:
            if not 0 <= brightness <= 100:
                raise ToolError("Brightness must be between 0 and 100 percent.")
            payload["brightness"] = round(brightness * 254 / 100)
        if color is not None:
            hex_color = COLORS.get(color.strip().casefold())
            if hex_color is None:
                raise ToolError(f"I don't know the color {color}.")
            payload["color"] = {"hex": hex_color}
        unconfirmed = await command(found, payload)
        return _report(found, unconfirmed, "Set", "change")

    @server.tool(
        name="HassGetState", annotations=ToolAnnotations(readOnlyHint=True, destructiveHint=False)
    )
    async def get_state(name: str | None = None, area: str | None = None) -> str:
        """Say whether a light or switch is on or off."""
        found = targets(name, area, ("light", "switch"))
        parts = []
        for entity in found:
            try:
                state = await home.state(entity)
            except HomeUnavailable as exc:
                logger.warning("%s", exc.message)
                raise ToolError(UNREACHABLE_TEXT) from exc
            value = str(state.get("state", "")).lower() if state else ""
            parts.append(
                f"The {entity.name} is {value}."
                if value in ("on", "off")
                else f"I don't know whether the {entity.name} is on."
            )
        return " ".join(parts)

    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Run konak-home over stdio."""
    parser = argparse.ArgumentParser(prog="konak-home", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="konak-home TOML file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        settings = load_home_settings(args.config)
    except ConfigError as exc:
        print(f"konak-home: {exc.message}", file=sys.stderr)
        return 1
    asyncio.run(build_home_server(Home(settings)).run_stdio_async())
    return 0


if __name__ == "__main__":
    sys.exit(main())
