-- +goose Up
-- Workload revisions (package hub/revisions): every change of a workload's
-- template is the next number, written in the transaction of the change.
-- Keyed by the workload's uid, so the revisions of a deleted workload go
-- with its row, and a workload made again under the same name starts
-- over at 1.
CREATE TABLE workload_revisions (
    workload_uid  uuid        NOT NULL REFERENCES objects (uid) ON DELETE CASCADE,
    number        bigint      NOT NULL CHECK (number > 0),
    template_hash text        NOT NULL,
    template      jsonb       NOT NULL,
    generation    bigint      NOT NULL,
    actor         text        NOT NULL,
    change_cause  text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (workload_uid, number)
);

-- +goose Down
DROP TABLE workload_revisions;
