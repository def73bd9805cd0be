-- +goose Up
-- The versions of Configs' and Secrets' values a workload revision may
-- still pin (issue 21 with issue 18: a change of a referenced secret rolls
-- out as a revision, cluster by cluster, and a rollback returns to the old
-- values). A version is the resourceVersion of the write that set the
-- values: unique across deletions and recreations, unmoved by a change of
-- labels. Older versions are kept while a kept revision's template names
-- them (atoll.dev/data) and go with their object.
ALTER TABLE secret_values ADD COLUMN version bigint;
UPDATE secret_values v SET version = o.resource_version FROM objects o WHERE o.uid = v.uid;
ALTER TABLE secret_values ALTER COLUMN version SET NOT NULL;
ALTER TABLE secret_values DROP CONSTRAINT secret_values_pkey;
ALTER TABLE secret_values ADD PRIMARY KEY (uid, version);

-- A Config's values by version, in clear as its object holds them.
CREATE TABLE config_values (
    uid     uuid   NOT NULL REFERENCES objects (uid) ON DELETE CASCADE,
    version bigint NOT NULL,
    spec    jsonb  NOT NULL,
    PRIMARY KEY (uid, version)
);
INSERT INTO config_values (uid, version, spec) SELECT uid, resource_version, spec FROM objects WHERE kind = 'Config';

-- +goose Down
DROP TABLE config_values;
DELETE FROM secret_values v WHERE version < (SELECT max(version) FROM secret_values w WHERE w.uid = v.uid);
ALTER TABLE secret_values DROP CONSTRAINT secret_values_pkey;
ALTER TABLE secret_values ADD PRIMARY KEY (uid);
ALTER TABLE secret_values DROP COLUMN version;
