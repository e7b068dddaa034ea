"""Konak's own MCP servers: konak-home (lights and switches over Zigbee2MQTT) and
konak-fleet (the hub's fleet, served by the hub over Streamable HTTP)."""
