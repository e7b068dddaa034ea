"""The hub's layers: the security core never imports HTTP code, and the hub core never imports
the HTTP API or the app that composes them (read from the source, and checked at import)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import konak.hub

HUB = Path(konak.hub.__file__).parent
# The package of the security core (roles, tokens, passwords, limits, their settings).
SECURITY = ("security",)
# What composes the hub over HTTP: the API, the app factory, its AppKeys and contexts, the CLI.
HTTP_SIDE = ("konak.hub.api", "konak.hub.app", "konak.hub.keys", "konak.hub.resources")
COMPOSITION = {"app.py", "keys.py", "resources.py", "cli.py"}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in packages)


def _security_modules() -> list[Path]:
    return sorted(p for package in SECURITY for p in (HUB / package).rglob("*.py"))


def _core_modules() -> list[Path]:
    top = [p for p in HUB.glob("*.py") if p.name not in COMPOSITION]
    return sorted(top + list((HUB / "mcp_servers").rglob("*.py")) + _security_modules())


@pytest.mark.parametrize("path", _security_modules(), ids=lambda p: p.name)
def test_a_security_core_module_imports_neither_aiohttp_nor_the_http_side(path: Path) -> None:
    http = {
        name for name in _imports(path) if _within(name, ("aiohttp", *HTTP_SIDE, "konak.hub.api"))
    }

    assert http == set()


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(HUB)))
def test_a_hub_core_module_never_imports_the_http_api_or_the_app(path: Path) -> None:
    upward = {name for name in _imports(path) if _within(name, HTTP_SIDE)}

    assert upward == set()


def test_importing_the_whole_security_core_loads_no_http_code() -> None:
    names = [
        ".".join(p.relative_to(HUB.parent.parent).with_suffix("").parts)
        for p in _security_modules()
    ]
    names = [n.removesuffix(".__init__") for n in names]
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'aiohttp'"
        " or m.startswith(('konak.hub.api', 'konak.hub.app', 'konak.hub.keys'))]\n"
        "print(loaded)\n"
    )

    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )

    assert run.stdout.strip() == "[]"
