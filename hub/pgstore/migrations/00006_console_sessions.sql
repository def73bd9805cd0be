-- +goose Up
-- Console sign-ins (package web), keyed by a hash of the session id that
-- only the browser's cookie holds. The API token a session acts with is
-- sealed with a key derived from that id, so the database alone (a backup,
-- say) yields no usable token. Every hub reads them: a load balancer may
-- send one user's requests to any hub, and a hub restart signs nobody out.
CREATE TABLE console_sessions (
    id_hash    bytea       PRIMARY KEY,
    sealed     bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- +goose Down
DROP TABLE console_sessions;
