-- A hub database of a hub that never enabled [auth]: the store's tables only.
-- Made by the release at commit 291f9f0 (its own code, on a new file), dumped with sqlite3 .dump.
-- What is on disk in the field: never edit it to match the code.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
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
INSERT INTO devices VALUES('acme','kitchen-pi','Kitchen','kitchen','en','{"konak": "0.1"}','["vosk-small-en"]','["wake"]','online',NULL,100.0,100.0,0);
CREATE TABLE telemetry (
    tenant_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    received_at REAL NOT NULL,
    body TEXT NOT NULL
);
INSERT INTO telemetry VALUES('acme','kitchen-pi',100.0,'{"ts":1796083355.600336,"uptime_seconds":5.0,"cpu_percent":1.0,"rss_bytes":1,"temperature_celsius":null,"queue_depth":0,"dead_letters":0,"expired_intents":0,"dropped_audio_chunks":0,"stage_latency_ms":{},"model_load_seconds":{}}');
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
INSERT INTO turns VALUES('acme','t-old-000001','kitchen-pi','done','ok','Done.',1796083355.6004633903);
INSERT INTO turns VALUES('acme','t-old-000002','kitchen-pi','claimed',NULL,NULL,1796083355.6005244255);
CREATE INDEX telemetry_device
    ON telemetry (tenant_id, device_id, received_at);
COMMIT;
