"""konak-home: lights and switches that speak MQTT in the Zigbee2MQTT convention.

Tools are named like the Home Assistant intents (HassTurnOn, HassTurnOff, HassLightSet,
HassGetState) and take the same slots (``name``, ``area``, ``brightness``, ``color``), so a
device's recognised intents map onto them directly. A command goes to
``<base>/<friendly name>/set`` (``{"state": "ON"}``); state is read from ``<base>/<name>``.

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
import tomllib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from konak.errors import KonakError

if TYPE_CHECKING:
    import aiomqtt
    from mcp.server.mcpserver import MCPServer

logger = logging.getLogger(__name__)

SERVER_NAME: Final = "konak-home"
STATE_WAIT_SECONDS: Final = 2.0
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


class HomeConfigError(KonakError):
    """konak-home's configuration is invalid."""

    code = "home_config"


@dataclass(frozen=True, slots=True)
class Entity:
    """A light or switch known by its Zigbee2MQTT friendly name."""

    name: str
    kind: Literal["light", "switch"] = "light"
    area: str | None = None
    friendly_name: str = ""

    @property
    def z2m_name(self) -> str:
        """The Zigbee2MQTT friendly name (the spoken name unless configured)."""
        return self.friendly_name or self.name


@dataclass(frozen=True, slots=True)
class HomeSettings:
    """Broker and entities of one tenant's home."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    base_topic: str = "zigbee2mqtt"
    entities: tuple[Entity, ...] = ()

    def __post_init__(self) -> None:
        names = [e.name.casefold() for e in self.entities]
        if len(names) != len(set(names)):
            raise HomeConfigError("two entities share a name")
        if not self.base_topic or any(c in self.base_topic for c in "+#"):
            raise HomeConfigError("base_topic must be a plain topic prefix")
        for e in self.entities:
            if not e.name or any(c in e.z2m_name for c in "+#/"):
                raise HomeConfigError(f"entity name {e.name!r} cannot be used in a topic")
            if e.kind not in ("light", "switch"):
                raise HomeConfigError(f"entity {e.name!r}: kind must be light or switch")


def load_home_settings(path: Path) -> HomeSettings:
    """Read konak-home's TOML file: ``[mqtt]`` and ``[[entities]]``."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise HomeConfigError(f"{path}: cannot read it: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise HomeConfigError(f"{path}: not valid TOML: {exc}") from exc
    mqtt = dict(data.get("mqtt", {}))
    password_env = mqtt.pop("password_env", "KONAK_HOME_MQTT_PASSWORD")
    try:
        entities = tuple(Entity(**e) for e in data.get("entities", []))
        return HomeSettings(
            host=mqtt.pop("host", "127.0.0.1"),
            port=int(mqtt.pop("port", 1883)),
            username=mqtt.pop("username", None),
            password=os.environ.get(password_env),
            base_topic=mqtt.pop("base_topic", "zigbee2mqtt"),
            entities=entities,
        )
    except (TypeError, ValueError) as exc:
        raise HomeConfigError(f"{path}: {exc}") from exc


class Home:
    """The entities, their last known states and the broker link."""

    def __init__(self, settings: HomeSettings) -> None:
        self.settings = settings
        self.states: dict[str, dict[str, Any]] = {}
        self._changed = asyncio.Condition()
        self.client: aiomqtt.Client | None = None

    def find(self, name: str | None, area: str | None) -> list[Entity]:
        """Entities matching a spoken name and/or area (case-insensitive)."""
        found = list(self.settings.entities)
        if name:
            found = [e for e in found if e.name.casefold() == name.strip().casefold()]
        if area:
            found = [e for e in found if (e.area or "").casefold() == area.strip().casefold()]
        return found if (name or area) else []

    async def set(self, entity: Entity, payload: dict[str, Any]) -> None:
        """Publish a command on ``<base>/<name>/set``."""
        assert self.client is not None
        topic = f"{self.settings.base_topic}/{entity.z2m_name}/set"
        await self.client.publish(topic, json.dumps(payload), qos=1)

    async def listen(self, client: aiomqtt.Client) -> None:
        """Track ``<base>/<name>`` state messages."""
        await client.subscribe(f"{self.settings.base_topic}/+", qos=1)
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
                    self._changed.notify_all()

    async def state(self, entity: Entity) -> dict[str, Any] | None:
        """The entity's last state; asks the device (``/get``) when none is known yet."""
        if entity.z2m_name not in self.states and self.client is not None:
            topic = f"{self.settings.base_topic}/{entity.z2m_name}/get"
            await self.client.publish(topic, json.dumps({"state": ""}), qos=1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STATE_WAIT_SECONDS), self._changed:
                    await self._changed.wait_for(lambda: entity.z2m_name in self.states)
        return self.states.get(entity.z2m_name)


def _label(entities: list[Entity]) -> str:
    return entities[0].name if len(entities) == 1 else f"{len(entities)} devices"


def build_home_server(home: Home) -> MCPServer:
    """The konak-home MCP server over ``home``."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[None]:
        import aiomqtt

        s = home.settings
        async with aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=s.password,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        ) as client:
            home.client = client
            listener = asyncio.create_task(home.listen(client))
            try:
                yield
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
                home.client = None

    server: MCPServer = MCPServer(SERVER_NAME, lifespan=lifespan)

    def targets(name: str | None, area: str | None, kinds: tuple[str, ...]) -> list[Entity]:
        found = [e for e in home.find(name, area) if e.kind in kinds]
        if not found:
            what = name or (f"lights in the {area}" if area else "a device name or area")
            raise ToolError(f"I don't know {what}.")
        return found

    @server.tool(name="HassTurnOn")
    async def turn_on(name: str | None = None, area: str | None = None) -> str:
        """Turn on a light or switch by name, or every one in an area."""
        found = targets(name, area, ("light", "switch"))
        for entity in found:
            await home.set(entity, {"state": "ON"})
        return f"Turned on the {_label(found)}."

    @server.tool(name="HassTurnOff")
    async def turn_off(name: str | None = None, area: str | None = None) -> str:
        """Turn off a light or switch by name, or every one in an area."""
        found = targets(name, area, ("light", "switch"))
        for entity in found:
            await home.set(entity, {"state": "OFF"})
        return f"Turned off the {_label(found)}."

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
        for entity in found:
            await home.set(entity, payload)
        return f"Set the {_label(found)}."

    @server.tool(
        name="HassGetState", annotations=ToolAnnotations(readOnlyHint=True, destructiveHint=False)
    )
    async def get_state(name: str | None = None, area: str | None = None) -> str:
        """Say whether a light or switch is on or off."""
        found = targets(name, area, ("light", "switch"))
        parts = []
        for entity in found:
            state = await home.state(entity)
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
    except HomeConfigError as exc:
        print(f"konak-home: {exc.message}", file=sys.stderr)
        return 1
    asyncio.run(build_home_server(Home(settings)).run_stdio_async())
    return 0


if __name__ == "__main__":
    sys.exit(main())
