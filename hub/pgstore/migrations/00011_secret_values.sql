-- +goose Up
-- The values of Secret objects, apart from the objects table (whose spec
-- and change log never hold them): envelope encryption. `sealed` is the
-- secret's data encrypted under a data key of its own (AES-256-GCM, bound
-- to the object's uid); `data_key` is that data key sealed by the
-- key-encryption key `key_id` names (package hub/keyring), which is kept
-- outside the database. Rotating the key-encryption key rewraps
-- `data_key` alone. The row goes with its object.
CREATE TABLE secret_values (
    uid      uuid  PRIMARY KEY REFERENCES objects (uid) ON DELETE CASCADE,
    key_id   text  NOT NULL,
    data_key bytea NOT NULL,
    sealed   bytea NOT NULL
);

-- +goose Down
DROP TABLE secret_values;
