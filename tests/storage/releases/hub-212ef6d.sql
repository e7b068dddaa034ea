-- A hub database at schema version 1 (before turns kept their expiry).
-- Made by the release at commit 212ef6d: it opened hub-f737f0f.sql (upgrading it) and claimed a turn; dumped with sqlite3 .dump.
-- What is on disk in the field: never edit it to match the code.
BEGIN TRANSACTION;
CREATE TABLE audit_log (
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
INSERT INTO "audit_log" VALUES(1,1.0,'acme','u-1','login','u-1','127.0.0.1','ok',200);
CREATE TABLE claim_tokens (
    token_sha256 TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL,
    device_id TEXT
, for_device TEXT);
INSERT INTO "claim_tokens" VALUES('cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd','acme','u-1',1.0,4000000000.0,NULL,NULL,NULL);
CREATE TABLE devices (
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
INSERT INTO "devices" VALUES('acme','kitchen-pi','Kitchen','kitchen','en','{"konak": "0.1"}','["vosk-small-en"]','["wake"]','online',NULL,100.0,100.0,0);
CREATE TABLE enrolled_devices (
    tenant_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    name TEXT NOT NULL,
    area TEXT,
    username TEXT NOT NULL,
    enrolled_at REAL NOT NULL,
    revoked_at REAL,
    PRIMARY KEY (tenant_id, device_id)
);
INSERT INTO "enrolled_devices" VALUES('acme','kitchen-pi','Kitchen','kitchen','acme.kitchen-pi',1.0,NULL);
CREATE TABLE invitations (
    token_sha256 TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id),
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'member', 'readonly')),
    invited_by TEXT NOT NULL,
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE TABLE memberships (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id),
    user_id TEXT NOT NULL REFERENCES users (user_id),
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'member', 'readonly')),
    PRIMARY KEY (tenant_id, user_id)
);
INSERT INTO "memberships" VALUES('acme','u-1','admin');
CREATE TABLE password_resets (
    token_sha256 TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE TABLE refresh_tokens (
    token_sha256 TEXT PRIMARY KEY,
    family_id TEXT NOT NULL REFERENCES token_families (family_id),
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
INSERT INTO "refresh_tokens" VALUES('abababababababababababababababababababababababababababababababab','f-1',1.0,4000000000.0,NULL);
CREATE TABLE telemetry (
    tenant_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    received_at REAL NOT NULL,
    body TEXT NOT NULL
);
INSERT INTO "telemetry" VALUES('acme','kitchen-pi',100.0,'{"ts":1796083363.7474892,"uptime_seconds":5.0,"cpu_percent":1.0,"rss_bytes":1,"temperature_celsius":null,"queue_depth":0,"dead_letters":0,"expired_intents":0,"dropped_audio_chunks":0,"stage_latency_ms":{},"model_load_seconds":{}}');
CREATE TABLE tenant_mcp_servers (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id),
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    headers TEXT NOT NULL,
    timeout_seconds REAL NOT NULL,
    read_only_tools TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
INSERT INTO "tenant_mcp_servers" VALUES('acme','weather','https://weather.example.com/mcp','{"Authorization": "Bearer x"}',10.0,'["forecast"]',1.0);
CREATE TABLE tenants (
    tenant_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at REAL NOT NULL
);
INSERT INTO "tenants" VALUES('acme','acme',1.0);
CREATE TABLE token_families (
    family_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    created_at REAL NOT NULL,
    revoked_at REAL,
    revoked_reason TEXT
);
INSERT INTO "token_families" VALUES('f-1','u-1',1.0,NULL,NULL);
CREATE TABLE turns (
    tenant_id TEXT NOT NULL,
    turn_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    reply_text TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, turn_id)
);
INSERT INTO "turns" VALUES('acme','t-old-000001','kitchen-pi','done','ok','Done.',1.79608336374760293964e+09);
INSERT INTO "turns" VALUES('acme','t-old-000002','kitchen-pi','claimed',NULL,NULL,1.79608336374764299397e+09);
INSERT INTO "turns" VALUES('acme','t-v1-0000003','kitchen-pi','claimed',NULL,NULL,1.79609329346906828879e+09);
CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    superadmin INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
INSERT INTO "users" VALUES('u-1','ann@example.com','$argon2id$v=19$x',0,0,1.0);
CREATE INDEX telemetry_device
    ON telemetry (tenant_id, device_id, received_at);
CREATE INDEX audit_tenant ON audit_log (tenant_id, id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE INDEX invitations_address ON invitations (tenant_id, email);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('audit_log',1);
COMMIT;
PRAGMA user_version=1;
