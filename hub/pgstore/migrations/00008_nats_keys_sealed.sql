-- +goose Up
-- The NATS signing seeds are no longer stored in clear: `sealed` holds
-- them (one JSON document, AES-256-GCM, package hub/keyring) under the
-- key-encryption key `key_id` names, which is kept outside the database
-- (a key file or ATOLL_KEY). The clear columns remain only for a row an
-- earlier version wrote: the first hub that starts with a key seals it and
-- empties them (Store.NATSKeys). A row is sealed or clear, never both.
ALTER TABLE nats_keys
    ADD COLUMN sealed bytea,
    ADD COLUMN key_id text,
    ALTER COLUMN operator_seed DROP NOT NULL,
    ALTER COLUMN system_seed DROP NOT NULL,
    ALTER COLUMN account_seed DROP NOT NULL,
    ADD CONSTRAINT nats_keys_sealed_or_clear CHECK (
        (sealed IS NOT NULL AND key_id IS NOT NULL
         AND operator_seed IS NULL AND system_seed IS NULL AND account_seed IS NULL)
        OR
        (sealed IS NULL AND key_id IS NULL
         AND operator_seed IS NOT NULL AND system_seed IS NOT NULL AND account_seed IS NOT NULL));

-- +goose Down
-- SQL cannot unseal: going down fails (NOT NULL) while a sealed row
-- exists, rather than losing the keys.
ALTER TABLE nats_keys
    DROP CONSTRAINT nats_keys_sealed_or_clear,
    ALTER COLUMN operator_seed SET NOT NULL,
    ALTER COLUMN system_seed SET NOT NULL,
    ALTER COLUMN account_seed SET NOT NULL,
    DROP COLUMN key_id,
    DROP COLUMN sealed;
