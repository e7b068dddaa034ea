"""The hub: MQTT ingest, fleet monitoring, MCP host, users and tenants, metrics, console."""
