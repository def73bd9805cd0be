-- +goose Up
-- The NATS signing keys every hub shares: operator, system account and the
-- ATOLL account that hubs and members talk in. Seeds are secrets: this
-- table must be protected like the rest of the database.
CREATE TABLE nats_keys (
    id              int         PRIMARY KEY CHECK (id = 1),
    operator_seed   text        NOT NULL,
    system_seed     text        NOT NULL,
    account_seed    text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Member user keys whose JWTs issued up to revoked_at are no longer valid.
CREATE TABLE nats_revocations (
    user_key   text        PRIMARY KEY,
    cluster    text        NOT NULL,
    revoked_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE nats_revocations;
DROP TABLE nats_keys;
