-- +goose Up
-- Hub leadership (package hub/leader). The leader holds a session advisory
-- lock on a dedicated connection; this row records its term. Every takeover
-- bumps epoch, and leader-only writes check it inside their transaction
-- (SELECT ... FOR KEY SHARE), so an old leader that lost the lock cannot
-- write. The holder refreshes heartbeat_at; a follower that finds it older
-- than the lease terminates backend pid (the holder's dedicated connection)
-- and takes over.
CREATE TABLE leader_epoch (
    id           int         PRIMARY KEY CHECK (id = 1),
    epoch        bigint      NOT NULL,
    holder       text        NOT NULL,
    pid          int         NOT NULL,
    acquired_at  timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
);
INSERT INTO leader_epoch VALUES (1, 0, '', 0, now(), now());

-- +goose Down
DROP TABLE leader_epoch;
