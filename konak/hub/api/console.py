"""The web console: the hub serves its built files (``make console`` writes them to
``konak/hub/console_dist/``). ``/assets/*`` are content-hashed, so cached for a year; every
other path that is not the API's is the single-page app's ``index.html`` (never cached, so
a new build is picked up at once). Every answer carries the console's Content Security
Policy. A file is served only from inside the dist folder: a path that resolves outside it,
or to anything but a regular file, is a 404."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from aiohttp import web

from konak.hub.api.http import declare
from konak.hub.security.rbac import Action

logger = logging.getLogger(__name__)

DIST: Final = Path(__file__).resolve().parents[1] / "console_dist"
DIST_KEY: Final = web.AppKey("konak_console_dist", Path)
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
ASSET_CACHE: Final = "public, max-age=31536000, immutable"
INDEX_CACHE: Final = "no-cache"
# Paths that are the hub's own, never the console's (an unknown one stays a 404).
NOT_CONSOLE: Final = ("/api/", "/metrics/", "/healthz/")
NOT_BUILT: Final = (
    "<!doctype html><title>Konak</title><p>The Konak web console is not built: run "
    "<code>make console</code> and reload this page. The API is at /api/openapi.json.</p>\n"
)


def _headers(cache: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": cache,
    }


def _inside(root: Path, relative: str) -> Path | None:
    """The regular file ``relative`` names under ``root``, or None (missing, a folder, or
    anywhere outside ``root``: ``..``, an absolute path, a symlink out)."""
    if not relative or "\x00" in relative or "\\" in relative:
        return None
    try:
        base = root.resolve(strict=True)
        found = (base / relative).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, unreadable, a symlink loop
        return None
    if not found.is_relative_to(base) or not found.is_file():
        return None
    return found


def _index(root: Path) -> web.StreamResponse:
    index = _inside(root, "index.html")
    if index is None:
        return web.Response(
            text=NOT_BUILT, status=503, content_type="text/html", headers=_headers("no-store")
        )
    return web.FileResponse(index, headers=_headers(INDEX_CACHE))


@declare(Action.PUBLIC)
async def asset(request: web.Request) -> web.StreamResponse:
    """A built asset (content-hashed name: cached for a year)."""
    root = request.app[DIST_KEY]
    found = _inside(root / "assets", request.match_info["path"])
    if found is None:
        raise web.HTTPNotFound(text="no such asset", headers=_headers("no-store"))
    return web.FileResponse(found, headers=_headers(ASSET_CACHE))


@declare(Action.PUBLIC)
async def page(request: web.Request) -> web.StreamResponse:
    """The console's ``index.html`` for any of its pages; a file at the top of the build
    (``favicon.ico``) as itself."""
    path = request.match_info.get("path", "")
    if request.path.startswith(NOT_CONSOLE):
        raise web.HTTPNotFound()
    root = request.app[DIST_KEY]
    if path and "/" not in path:
        found = _inside(root, path)
        if found is not None:
            return web.FileResponse(found, headers=_headers(INDEX_CACHE))
    return _index(root)


def setup_console(app: web.Application, dist: Path = DIST) -> None:
    """Serve the console from ``dist`` (added last: every route before it wins)."""
    app[DIST_KEY] = dist
    app.router.add_get("/assets/{path:.+}", asset, name="console_asset")
    app.router.add_get("/", page, name="console")
    # Not /api/...: an unknown API path stays a JSON-less 404, never a page or a 405.
    app.router.add_get("/{path:(?!api/).+}", page, name="console_page")
