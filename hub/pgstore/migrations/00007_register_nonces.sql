-- +goose Up
-- Registration challenges (package members): a nonce a member signs with
-- its NATS key to prove it holds it. Each is good once, for the token that
-- asked for it (by the token's uid, so a token deleted and made again
-- under the same name does not inherit it) and the cluster it named, until
-- it expires. Only the nonce's SHA-256 is kept. In the database, not in a
-- hub's memory, so that a member may ask one hub and register through
-- another behind the same load balancer.
CREATE TABLE register_nonces (
    nonce_hash bytea       PRIMARY KEY,
    token_uid  text        NOT NULL,
    cluster    text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX register_nonces_expires ON register_nonces (expires_at);
CREATE INDEX register_nonces_token ON register_nonces (token_uid, created_at);

-- +goose Down
DROP TABLE register_nonces;
