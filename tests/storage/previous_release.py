"""The schemas the release at commit 291f9f0 (the last before ``konak.storage``) created,
copied verbatim, with a few rows: the databases an upgrade meets in the field.

Never edit these to match the code: they are what is on disk out there.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Final

# konak/hub/store.py, SCHEMA (every hub opened it).
HUB_STORE: Final = """
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
# konak/hub/auth/db.py, SCHEMA (a hub with [auth] enabled).
HUB_AUTH: Final = """
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
# konak/provisioning/claims.py, SCHEMA (opened with the auth tables).
CLAIMS: Final = """
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
# konak/hub/mcp_registry.py, SCHEMA (created by the registry on the auth connection).
MCP_REGISTRY: Final = """
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
# konak/daemon/outbox.py: version 0 (the first release), then its steps to version 2.
OUTBOX_V0: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    turn_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
)
"""
OUTBOX_DEAD_LETTERS: Final = """
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    turn_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    queued_at REAL,
    expires_at REAL,
    reason TEXT NOT NULL,
    reason_code INTEGER,
    detail TEXT NOT NULL,
    dead_at REAL NOT NULL
)
"""

# Version 0 of the hub database could lack this column (tokens before they named a device).
CLAIMS_BEFORE_FOR_DEVICE: Final = CLAIMS.replace(
    "device_id TEXT,\n    for_device TEXT", "device_id TEXT"
)


def hub_database(path: Path, *, auth: bool = True, claims: str = CLAIMS) -> None:
    """A hub database as that release left it (no version), with a few rows in each table;
    without ``auth`` only the store's tables exist (a hub that never enabled [auth])."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(HUB_STORE)
        db.execute(
            "INSERT INTO devices VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("acme", "kitchen-pi", "Kitchen", "kitchen", "en", '{"konak": "0.1"}',
             '["vosk-small-en"]', '["wake"]', "online", None, 100.0, 90.0, 0),
        )  # fmt: skip
        db.execute(
            "INSERT INTO telemetry VALUES ('acme', 'kitchen-pi', 100.0, ?)",
            ('{"uptime_seconds": 5.0}',),
        )
        db.executemany(
            "INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                ("acme", "t-old-000001", "kitchen-pi", "done", "ok", "Done.", 99.0),
                ("acme", "t-old-000002", "kitchen-pi", "claimed", None, None, 99.5),
            ],
        )
        if not auth:
            return
        db.executescript(HUB_AUTH)
        db.executescript(claims)
        db.executescript(MCP_REGISTRY)
        db.execute("INSERT INTO tenants VALUES ('acme', 'acme', 1.0)")
        db.execute(
            "INSERT INTO users VALUES ('u-1', 'ann@example.com', '$argon2id$v=19$x', 0, 0, 1.0)"
        )
        db.execute("INSERT INTO memberships VALUES ('acme', 'u-1', 'admin')")
        db.execute("INSERT INTO token_families VALUES ('f-1', 'u-1', 1.0, NULL, NULL)")
        db.execute("INSERT INTO refresh_tokens VALUES (?, 'f-1', 1.0, 4e9, NULL)", ("ab" * 32,))
        db.execute(
            "INSERT INTO audit_log (at, tenant_id, actor, action, target, ip, outcome, status)"
            " VALUES (1.0, 'acme', 'u-1', 'login', 'u-1', '127.0.0.1', 'ok', 200)"
        )
        db.execute(
            "INSERT INTO claim_tokens (token_sha256, tenant_id, created_by, created_at,"
            " expires_at) VALUES (?, 'acme', 'u-1', 1.0, 4e9)",
            ("cd" * 32,),
        )
        db.execute(
            "INSERT INTO enrolled_devices VALUES"
            " ('acme', 'kitchen-pi', 'Kitchen', 'kitchen', 'acme.kitchen-pi', 1.0, NULL)"
        )
        db.execute(
            "INSERT INTO tenant_mcp_servers VALUES ('acme', 'weather',"
            " 'https://weather.example.com/mcp', '{\"Authorization\": \"Bearer x\"}', 10.0,"
            " '[\"forecast\"]', 1.0)"
        )


def outbox(path: Path) -> None:
    """An intent queue as that release left it (version 2): one intent waiting, one sent
    and unanswered, one dead letter."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(OUTBOX_V0)
        db.execute("ALTER TABLE outbox ADD COLUMN queued_at REAL")
        db.execute("ALTER TABLE outbox ADD COLUMN expires_at REAL")
        db.execute(OUTBOX_DEAD_LETTERS)
        db.execute("ALTER TABLE outbox ADD COLUMN sent_at REAL")
        db.execute("PRAGMA user_version = 2")
        db.executemany(
            "INSERT INTO outbox (turn_id, topic, payload, queued_at, expires_at, sent_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("t-queued-01", "konak/v1/acme/pi/intent", b"{}", 10.0, 4e9, None),
                ("t-sent-0001", "konak/v1/acme/pi/intent", b"{1}", 11.0, None, 12.0),
            ],
        )
        db.execute(
            "INSERT INTO dead_letters (turn_id, topic, payload, queued_at, expires_at, reason,"
            " reason_code, detail, dead_at) VALUES ('t-dead-0001', 'konak/v1/acme/pi/intent',"
            " x'7b7d', 1.0, 2.0, 'expired', NULL, '', 3.0)"
        )
