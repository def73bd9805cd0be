-- +goose Up
-- resourceVersions are drawn from the writing transaction's id, no longer
-- from a sequence under a global lock (package pgstore's documentation,
-- "Writes"). Every version a transaction id gives is above every version
-- the sequence gave (the sequence drew one per object written, and the
-- transactions that wrote them each had an id of their own, below the
-- ones to come: ids shifted by 20 bits outrun it unless a transaction
-- wrote a million objects). The sequence goes so that a hub of an earlier version
-- still running against this database fails its writes loudly instead of
-- writing versions below the new ones, which watches would skip.
DROP SEQUENCE resource_version_seq;

-- +goose Down
CREATE SEQUENCE resource_version_seq;
SELECT setval('resource_version_seq', greatest(
    (SELECT coalesce(max(resource_version), 0) FROM changes),
    (SELECT coalesce(max(resource_version), 0) FROM objects),
    (SELECT compacted_rv FROM watch_horizon), 1));
