"""The hub app's state: one typed ``AppKey`` per resource. Each is set by its cleanup
context (``konak.hub.resources``) at start-up, or by ``create_app``, and never changes while
the app runs; the settings a SIGHUP re-reads are swapped inside their holder."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from konak.hub.alerts import AlertLog
from konak.hub.events import EventBroker
from konak.hub.fleet import FleetMonitor
from konak.hub.ingest import Ingest
from konak.hub.knowledge.service import KnowledgeService
from konak.hub.live import LiveFleet
from konak.hub.mcp_host import McpHost
from konak.hub.metrics import HubMetrics
from konak.hub.security.state import AuthState
from konak.hub.settings import HubSettings, TenantSettings
from konak.hub.store import Store
from konak.hub.turns import TurnProcessor


@dataclass
class LiveSettings:
    """The settings the hub runs with: a reload replaces ``current`` in one step."""

    current: HubSettings

    def tenants(self) -> Mapping[str, TenantSettings]:
        """The tenants of the current settings."""
        return self.current.tenants

    def fleet_tokens(self) -> dict[str, str]:
        """konak-fleet token hashes -> tenant id."""
        return {
            t.fleet_token_sha256: tid
            for tid, t in self.current.tenants.items()
            if t.fleet_token_sha256 is not None
        }


SETTINGS = web.AppKey("konak_settings", LiveSettings)
METRICS = web.AppKey("konak_metrics", HubMetrics)
AUTH = web.AppKey("konak_auth", AuthState)  # only when [auth] keys are configured
STORE = web.AppKey("konak_store", Store)
MCP = web.AppKey("konak_mcp", McpHost)
FLEET = web.AppKey("konak_fleet", FleetMonitor)
TURNS = web.AppKey("konak_turns", TurnProcessor)
INGEST = web.AppKey("konak_ingest", Ingest)
FLEET_MCP_PORT = web.AppKey("konak_fleet_mcp_port", int)  # only when konak-fleet serves
EVENTS = web.AppKey("konak_events", EventBroker)  # the console's live events
ALERTS = web.AppKey("konak_alerts", AlertLog)
LIVE = web.AppKey("konak_live", LiveFleet)  # the console's fleet views
KNOWLEDGE = web.AppKey("konak_knowledge", KnowledgeService)  # only when [knowledge] enabled
