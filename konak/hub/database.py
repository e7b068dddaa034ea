"""The hub database file: its one schema, with its migrations, and how it is opened.

The hub's tables share one SQLite file (``[hub] database_path``): the store's (devices,
telemetry, turns), the auth tables (tenants, users, tokens, audit log), the claim tokens
and enrolled devices of ``konak.provisioning.claims``, the MCP servers tenants add
(``mcp_registry``) and the revisions of each tenant's voice config (``voice_config``).
The store and the HTTP API each open a connection of their own, so the file has ONE
schema owner, this module: one version (``PRAGMA user_version``) and one ordered list of
steps for every table, whichever connection opens the file first applies the missing
steps (under the write lock, so the other sees them done). Tables refer to each other (an
MCP server to its tenant), which separate version keys per store could not order. A
schema change is a new step appended to ``STEPS``; a released step never changes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from konak.hub.errors import HubError
from konak.storage.sqlite import Schema, Step, statements
from konak.storage.sqlite import connect as _connect


class StoreError(HubError):
    """The database could not be opened or written."""

    code = "store_error"


# The tables as the releases before schema versions created them (at version 0 a file
# may hold any subset of these: the auth tables appear only once auth is enabled).
_STORE_TABLES: Final = """
CREATE TABLE IF NOT EXISTS devices (
    tenant_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    name TEXT, area TEXT, language TEXT,
    versions TEXT NOT NULL DEFAULT '{}',
    models TEXT NOT NULL DEFAULT '[]',
    capabilities TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL,
    error TEXT,
    last_seen REAL NOT NULL,
    state_since REAL NOT NULL,
    alerted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, device_id)
);
CREATE TABLE IF NOT EXISTS telemetry (
    tenant_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    received_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS telemetry_device
    ON telemetry (tenant_id, device_id, received_at);
CREATE TABLE IF NOT EXISTS turns (
    tenant_id TEXT NOT NULL,
    turn_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    reply_text TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, turn_id)
);
"""
_AUTH_TABLES: Final = """
CREATE TABLE IF NOT EXISTS tenants (
    tenant_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    superadmin INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS memberships (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id),
    user_id TEXT NOT NULL REFERENCES users (user_id),
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'member', 'readonly')),
    PRIMARY KEY (tenant_id, user_id)
);
CREATE TABLE IF NOT EXISTS token_families (
    family_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    created_at REAL NOT NULL,
    revoked_at REAL,
    revoked_reason TEXT
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_sha256 TEXT PRIMARY KEY,
    family_id TEXT NOT NULL REFERENCES token_families (family_id),
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE TABLE IF NOT EXISTS password_resets (
    token_sha256 TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE TABLE IF NOT EXISTS invitations (
    token_sha256 TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id),
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'member', 'readonly')),
    invited_by TEXT NOT NULL,
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE INDEX IF NOT EXISTS invitations_address ON invitations (tenant_id, email);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    tenant_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    ip TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_tenant ON audit_log (tenant_id, id);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""
_CLAIM_TABLES: Final = """
CREATE TABLE IF NOT EXISTS claim_tokens (
    token_sha256 TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL,
    device_id TEXT,
    for_device TEXT
);
CREATE TABLE IF NOT EXISTS enrolled_devices (
    tenant_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    name TEXT NOT NULL,
    area TEXT,
    username TEXT NOT NULL,
    enrolled_at REAL NOT NULL,
    revoked_at REAL,
    PRIMARY KEY (tenant_id, device_id)
);
"""
_MCP_TABLES: Final = """
CREATE TABLE IF NOT EXISTS tenant_mcp_servers (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id),
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    headers TEXT NOT NULL,
    timeout_seconds REAL NOT NULL,
    read_only_tools TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
"""


def _to_v1(db: sqlite3.Connection) -> None:
    """Adopt a file from before versions (or a new one): every table, created if missing,
    and the claim tokens' ``for_device`` column that older files lack."""
    for script in (_STORE_TABLES, _AUTH_TABLES, _CLAIM_TABLES, _MCP_TABLES):
        for statement in statements(script):
            db.execute(statement)
    columns = {row[1] for row in db.execute("PRAGMA table_info(claim_tokens)")}
    if "for_device" not in columns:
        db.execute("ALTER TABLE claim_tokens ADD COLUMN for_device TEXT")


def _to_v2(db: sqlite3.Connection) -> None:
    """A turn keeps its intent's expiry: a reply the device can no longer use is not sent."""
    db.execute("ALTER TABLE turns ADD COLUMN expires_at REAL")


# The revisions of each tenant's voice config (``konak.hub.voice_config``): ``body`` is the
# JSON of its language, sentences, slot lists and wake words.
_VOICE_CONFIG_TABLES: Final = """
CREATE TABLE voice_configs (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id),
    revision INTEGER NOT NULL CHECK (revision > 0),
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    published_at REAL,
    PRIMARY KEY (tenant_id, revision)
);
"""

# STEPS[n] takes the file from version n to n + 1.
STEPS: Final[tuple[Step, ...]] = (_to_v1, _to_v2, _VOICE_CONFIG_TABLES)
SCHEMA: Final = Schema("the hub database", STEPS, StoreError)


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the hub database at ``path``, its schema brought up to date."""
    db = _connect(path, SCHEMA)
    db.row_factory = sqlite3.Row
    return db
