"""Fleet monitoring: the device registry from status and telemetry, and alerts.

An alert is a log line, a POST of Slack-compatible JSON (``{"text": ...}``) to the
configured webhook and an entry in the alert log the console shows (``konak.hub.alerts``),
raised when a device reports an error or stays offline longer than
``offline_alert_seconds``, when an MCP server's circuit opens and when a tenant's quota
refuses work. Each alert is sent once per state change, the same kind for the
same device at most once per ``alert_repeat_seconds``, and at most ``alerts_per_minute``
per tenant; what a device names itself is escaped for Slack's markup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any, Final

from konak.hub.alerts import AlertKind, AlertLog
from konak.hub.errors import HubError
from konak.hub.metrics import HubMetrics
from konak.hub.settings import FleetSettings
from konak.hub.store import Device, Store
from konak.protocol import Cmd, Message, Status, Telemetry

if TYPE_CHECKING:
    import aiohttp

    from konak.hub.live import LiveFleet

logger = logging.getLogger(__name__)

MAX_REMEMBERED_ALERTS: Final = 100_000  # bound on the de-duplication memory
ALERT_RATE_WINDOW_SECONDS: Final = 60.0  # alerts_per_minute counts over this sliding window
_SLACK_ESCAPES: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


class NoTargets(HubError):
    """An announcement names a device or area the tenant has no (seen) device in."""

    code = "device_not_found"


def device_commands(
    store: Store, tenant: str, device: str | None, area: str | None, **fields: Any
) -> list[Cmd]:
    """One command (``fields``: its action and arguments) for one device, or for every device
    of an area (give exactly one); raises NoTargets when there is none."""
    if device is not None:
        targets = [d for d in [store.device(tenant, device)] if d is not None]
    else:
        targets = store.devices(tenant, area=area)
    if not targets:
        raise NoTargets("no such device" if device else f"no devices in area {area!r}")
    return [
        Cmd(
            tenant=tenant,
            device=target.device_id,
            command_id=f"c-{secrets.token_hex(8)}",
            **fields,
        )
        for target in targets
    ]


def announcements(
    store: Store, tenant: str, text: str, device: str | None, area: str | None
) -> list[Cmd]:
    """The announce commands that speak ``text`` on one device, or on every device of an
    area (give exactly one); raises NoTargets when there is none."""
    return device_commands(store, tenant, device, area, action="announce", text=text)


def slack_escape(text: str) -> str:
    """Text as Slack shows it literally: ``<!channel>`` and ``<url|label>`` stay plain text."""
    return text.translate(_SLACK_ESCAPES)


class FleetMonitor:
    """Keeps the registry current and raises alerts."""

    def __init__(
        self,
        store: Store,
        settings: FleetSettings,
        metrics: HubMetrics,
        http: aiohttp.ClientSession | None = None,
        *,
        alerts: AlertLog | None = None,
        live: LiveFleet | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.http = http
        self.alerts = alerts  # kept for the console
        self.live = live  # the console's live events
        self._pending: set[asyncio.Task[None]] = set()
        self._last_alert: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._tenant_alerts: dict[str, deque[float]] = {}  # when each recent alert was sent
        self.suppressed = 0  # alerts de-duplicated or over a tenant's rate
        self._updates: dict[tuple[str, str], str] = {}  # the last update_models reported

    def on_status(self, status: Status, now: float | None = None) -> None:
        """Record a status (also the broker's last will) and alert on a new error."""
        before, after = self.store.upsert_status(status, time.time() if now is None else now)
        self.refresh_gauge()
        if self.live is not None and (before is None or _shown(before) != _shown(after)):
            self.live.device_changed(after)
        if after.state == "error" and (
            before is None or before.state != "error" or before.error != after.error
        ):
            self.alert(after, "device_error", f"reported error {after.error or 'unknown'}", now)
            self.store.mark_alerted(after.tenant_id, after.device_id)
        elif before is not None and before.state != after.state:
            logger.info("device %s/%s is now %s", after.tenant_id, after.device_id, after.state)
        self._models_update(status)

    def _models_update(self, status: Status) -> None:
        """Log a device's update_models result once (its status repeats it)."""
        update = status.models_update
        key = (status.tenant, status.device)
        if update is None or self._updates.get(key) == update.command_id:
            return
        self._updates[key] = update.command_id
        if update.outcome == "failed":
            logger.warning(
                "device %s/%s: update_models %s failed [%s]: %s; it runs the models it had",
                status.tenant,
                status.device,
                update.command_id,
                update.error,
                update.detail,
            )
        else:
            logger.info(
                "device %s/%s: update_models %s %s: %s",
                status.tenant,
                status.device,
                update.command_id,
                update.outcome,
                ", ".join(f"{m} {d}" for m, d in sorted(update.models.items())),
            )

    def on_seen(self, msg: Message, now: float | None = None) -> None:
        """Note that a device was heard from (any message but status, which sets it)."""
        self.store.touch(msg.tenant, msg.device, time.time() if now is None else now)

    def on_telemetry(self, telemetry: Telemetry, now: float | None = None) -> None:
        """Store a telemetry sample within the retention bounds."""
        now = time.time() if now is None else now
        self.store.add_telemetry(
            telemetry,
            now,
            retention_seconds=self.settings.telemetry_retention_seconds,
            max_rows=self.settings.telemetry_max_rows_per_device,
        )

    def refresh_gauge(self) -> None:
        """Set the devices-online gauge for every tenant."""
        counts = self.store.count_online()
        for tenant in self.store.tenants_with_devices():
            self.metrics.devices_online.labels(tenant).set(counts.get(tenant, 0))

    def sweep(self, now: float | None = None) -> list[Device]:
        """Alert for devices offline longer than the threshold; returns them."""
        now = time.time() if now is None else now
        alerted = []
        for tenant in self.store.tenants_with_devices():
            for device in self.store.devices(tenant):
                overdue = now - device.state_since >= self.settings.offline_alert_seconds
                if device.state == "offline" and overdue and not device.alerted:
                    minutes = (now - device.state_since) / 60
                    # Held back (tenant rate, repeat window): tried again at a later sweep.
                    detail = f"offline for {minutes:.1f} min"
                    if self.alert(device, "device_offline", detail, now):
                        self.store.mark_alerted(tenant, device.device_id)
                        alerted.append(device)
        return alerted

    async def run(self) -> None:
        """Sweep periodically until cancelled."""
        while True:
            await asyncio.sleep(self.settings.check_interval_seconds)  # periodic sweep
            try:
                self.sweep()
            except Exception:  # supervisor: a failed sweep must not end monitoring
                logger.exception("fleet sweep failed")

    def _allowed(self, tenant: str, subject: str, kind: str, now: float) -> bool:
        """De-duplicate (one alert of a kind per device, server or quota per window) and
        rate-limit per tenant (a sliding minute); what is held back is counted and logged
        at debug level."""
        key = (tenant, subject, kind)
        last = self._last_alert.get(key)
        sent = self._tenant_alerts.setdefault(tenant, deque())
        while sent and now - sent[0] >= ALERT_RATE_WINDOW_SECONDS:
            sent.popleft()
        if last is not None and now - last < self.settings.alert_repeat_seconds:
            reason = "repeated"
        elif len(sent) >= self.settings.alerts_per_minute:
            reason = "tenant rate"
        else:
            sent.append(now)
            self._last_alert.pop(key, None)
            self._last_alert[key] = now
            if len(self._last_alert) > MAX_REMEMBERED_ALERTS:
                self._last_alert.popitem(last=False)
            return True
        self.suppressed += 1
        logger.debug("alert %s for %s/%s held back (%s)", kind, tenant, subject, reason)
        return False

    def alert(self, device: Device, kind: AlertKind, detail: str, now: float | None = None) -> bool:
        """Log an alert about a device, keep it and post it to the webhook (in the
        background), unless the same alert was raised recently or the tenant is over its
        alert rate (then False)."""
        label = slack_escape(device.name or device.device_id)
        return self._raise(
            device.tenant_id,
            kind,
            device.device_id,
            f"device {label} ({device.device_id}) {slack_escape(detail)}",
            detail,
            {"device": device.device_id, "area": device.area},
            now,
        )

    def tenant_alert(
        self, tenant: str, kind: AlertKind, subject: str, detail: str, now: float | None = None
    ) -> bool:
        """An alert about a tenant's service (an MCP server, a quota) rather than a device;
        ``subject`` names it for the de-duplication."""
        return self._raise(
            tenant, kind, subject, slack_escape(detail), detail, {"device": None}, now, device=False
        )

    def _raise(
        self,
        tenant: str,
        kind: AlertKind,
        subject: str,
        text: str,
        detail: str,
        fields: dict[str, Any],
        now: float | None,
        *,
        device: bool = True,
    ) -> bool:
        now = time.time() if now is None else now
        if not self._allowed(tenant, subject, kind, now):
            return False
        logger.warning("alert %s tenant=%s subject=%s: %s", kind, tenant, subject, detail)
        self.metrics.alerts.labels(kind).inc()
        if self.alerts is not None:
            kept = self.alerts.add(tenant, kind, subject if device else None, detail, now)
            if self.live is not None:
                self.live.alert_raised(kept)
        if self.settings.webhook_url is None or self.http is None:
            return True
        body = {"text": f"Konak alert [{tenant}]: {text}", "kind": kind, "tenant": tenant, **fields}
        task = asyncio.get_running_loop().create_task(self._post(body))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return True

    async def _post(self, body: dict[str, Any]) -> None:
        import aiohttp

        assert self.http is not None
        assert self.settings.webhook_url is not None
        try:
            async with self.http.post(
                self.settings.webhook_url,
                json=body,
                timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout_seconds),
            ) as resp:
                if resp.status >= 300:
                    logger.warning("alert webhook answered HTTP %d", resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("alert webhook failed: %s", type(exc).__name__)

    async def close(self) -> None:
        """Wait briefly for alerts still being posted."""
        if self._pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*self._pending, return_exceptions=True),
                    self.settings.webhook_timeout_seconds,
                )


def _shown(device: Device) -> tuple[object, ...]:
    """What the console shows of a device and a status can change (not ``last_seen``)."""
    return (
        device.state,
        device.error,
        device.name,
        device.area,
        device.versions,
        device.models,
        device.config_revision,
    )
