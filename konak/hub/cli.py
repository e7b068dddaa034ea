"""``konak hub``: run the hub, or check a configuration file."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
from pathlib import Path
from typing import Final

from konak.hub.errors import ConfigError
from konak.hub.settings import HttpSettings, HubSettings, load_settings
from konak.sdnotify import notify as sd_notify

logger = logging.getLogger(__name__)

DEFAULT_CONFIG: Final = Path("/etc/konak/hub.toml")
BROKER_WAIT_SECONDS: Final = 10.0


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``run`` and ``check-config`` under ``konak hub``."""
    sub = parser.add_subparsers(dest="hub_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run the hub (MQTT ingest, MCP host, metrics, konak-fleet)")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="hub TOML file")
    run.set_defaults(handler=_run)
    check = sub.add_parser("check-config", help="validate a hub TOML file and exit")
    check.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="hub TOML file")
    check.set_defaults(handler=_check)
    from konak.hub.security import admin_cli

    admin_cli.register(sub, str(DEFAULT_CONFIG))


def tls_context(http: HttpSettings, context: ssl.SSLContext | None = None) -> ssl.SSLContext | None:
    """The server TLS context of ``[http]`` (None without a certificate); loading into an
    existing ``context`` swaps the certificate for new connections (a renewal + SIGHUP)."""
    if http.tls_cert_file is None or http.tls_key_file is None:
        return None
    if context is None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(http.tls_cert_file, http.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ConfigError(
            f"[http] tls_cert_file/tls_key_file: cannot load {http.tls_cert_file} with "
            f"{http.tls_key_file}: {reason}"
        ) from exc
    return context


def _check(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    tls_context(settings.http)
    servers = sum(len(t.mcp_servers) for t in settings.tenants.values())
    print(f"{args.config}: ok ({len(settings.tenants)} tenant(s), {servers} MCP server(s))")
    return 0


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    from konak.hub.logs import configure_logging

    configure_logging(settings.log_level, settings.log_file)
    asyncio.run(serve(settings, args.config))
    return 0


async def serve(settings: HubSettings, config_path: Path | None = None) -> None:
    """Run the hub until SIGTERM/SIGINT (intake stops at once, turns running get
    ``stop_grace_seconds``); SIGHUP re-reads the configuration."""
    from aiohttp import web

    from konak.hub.app import create_app, reload_hub
    from konak.hub.keys import INGEST

    context = tls_context(settings.http)
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.http_host, settings.http_port, ssl_context=context)
        await site.start()
    except BaseException:
        await runner.cleanup()  # stop whatever did start
        raise
    ingest = app[INGEST]
    scheme = "https" if context is not None else "http"
    logger.info("hub listening on %s://%s:%d", scheme, settings.http_host, settings.http_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def reload() -> None:
        if config_path is None:
            return
        try:
            new = load_settings(config_path)
            tls_context(new.http)  # a certificate that does not load refuses the reload
            await reload_hub(app, new)
            if context is not None:
                tls_context(new.http, context)  # a renewed certificate, for new connections
        except ConfigError as exc:
            logger.error("configuration not reloaded: %s", exc.message)
        else:
            logger.info("configuration reloaded from %s", config_path)
        sd_notify("READY=1")

    reloads: set[asyncio.Task[None]] = set()

    def on_hup() -> None:
        sd_notify("RELOADING=1")
        task = loop.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        await asyncio.wait_for(ingest.connected.wait(), BROKER_WAIT_SECONDS)
        sd_notify("READY=1\nSTATUS=serving")
    except TimeoutError:
        # Ready anyway: the hub serves /metrics and keeps reconnecting to the broker.
        sd_notify("READY=1\nSTATUS=serving; waiting for the MQTT broker")
    try:
        await stop.wait()
    finally:
        sd_notify("STOPPING=1")
        # No new intents from here; the turns running get [hub] stop_grace_seconds in the
        # cleanup (after HTTP requests in flight), with the broker link still up.
        ingest.stop_intake()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
