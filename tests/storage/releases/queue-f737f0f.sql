-- A daemon's intent queue (version 1): intents waiting, one dead letter.
-- Made by the release at commit f737f0f (its own code, on a new file), dumped with sqlite3 .dump.
-- What is on disk in the field: never edit it to match the code.
PRAGMA user_version = 1;
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    turn_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
, queued_at REAL, expires_at REAL);
INSERT INTO outbox VALUES(1,'t-queued-01','konak/v1/acme/kitchen-pi/intent',X'7b227475726e223a20317d',10.0,4000000000.0);
INSERT INTO outbox VALUES(2,'t-sent-0001','konak/v1/acme/kitchen-pi/intent',X'7b227475726e223a20327d',10.0,NULL);
CREATE TABLE dead_letters (
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
);
INSERT INTO dead_letters VALUES(1,'t-dead-0001','konak/v1/acme/kitchen-pi/intent',X'7b227475726e223a20337d',10.0,5.0,'expired',NULL,'',10.0);
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('outbox',3);
INSERT INTO sqlite_sequence VALUES('dead_letters',1);
COMMIT;
