-- +goose Up
-- One global sequence orders every change to every object: it is the
-- resourceVersion clients see, and watches resume from it.
CREATE SEQUENCE resource_version_seq;

-- Every resource kind lives in one table: metadata in columns, spec and
-- status as JSON documents.
CREATE TABLE objects (
    kind               text        NOT NULL,
    name               text        NOT NULL,
    uid                uuid        NOT NULL UNIQUE,
    resource_version   bigint      NOT NULL,
    generation         bigint      NOT NULL,
    labels             jsonb       NOT NULL DEFAULT '{}',
    annotations        jsonb       NOT NULL DEFAULT '{}',
    finalizers         text[]      NOT NULL DEFAULT '{}',
    spec               jsonb       NOT NULL,
    status             jsonb       NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL,
    deletion_timestamp timestamptz,
    PRIMARY KEY (kind, name)
);
CREATE INDEX objects_labels ON objects USING gin (labels jsonb_path_ops);

-- The change log: one row per mutation, written in the mutation's
-- transaction. Watches read it; LISTEN/NOTIFY only wakes them.
CREATE TABLE changes (
    resource_version bigint      PRIMARY KEY,
    kind             text        NOT NULL,
    name             text        NOT NULL,
    type             text        NOT NULL CHECK (type IN ('ADDED', 'MODIFIED', 'DELETED')),
    object           json        NOT NULL, -- json, not jsonb: sent to watchers as written
    at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX changes_kind ON changes (kind, resource_version);

-- Watches that ask for versions at or below compacted_rv get 410 Gone.
CREATE TABLE watch_horizon (
    id           int    PRIMARY KEY CHECK (id = 1),
    compacted_rv bigint NOT NULL
);
INSERT INTO watch_horizon VALUES (1, 0);

-- Who did what to which object, and how it ended.
CREATE TABLE audit_log (
    id               bigserial   PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT now(),
    actor            text        NOT NULL,
    verb             text        NOT NULL,
    kind             text        NOT NULL,
    name             text        NOT NULL,
    resource_version bigint,
    result           text        NOT NULL,
    detail           text        NOT NULL DEFAULT '',
    request_id       text        NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at);

-- Token secrets are kept only as SHA-256 hashes.
CREATE TABLE token_hashes (
    hash bytea PRIMARY KEY,
    uid  uuid  NOT NULL UNIQUE REFERENCES objects (uid) ON DELETE CASCADE
);

-- +goose Down
DROP TABLE token_hashes;
DROP TABLE audit_log;
DROP TABLE watch_horizon;
DROP TABLE changes;
DROP TABLE objects;
DROP SEQUENCE resource_version_seq;
