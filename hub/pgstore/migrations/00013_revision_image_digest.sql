-- +goose Up
-- The digest an oci template's image tag resolved to, once per revision
-- (package hub/imagepin): every cluster is delivered the revision's image
-- pinned to it, so a tag moved later changes nothing the revision runs.
-- Empty until resolved, and for templates that name a digest or run no
-- image.
ALTER TABLE workload_revisions ADD COLUMN image_digest text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE workload_revisions DROP COLUMN image_digest;
