-- +goose Up
-- A workload's revisions go with its row through a trigger on deletes
-- instead of the foreign key: the key's check ran on every revision
-- written (a workload's first with its create), a query and a row lock
-- of the workload's own row, about a fifth of PostgreSQL's work for a
-- create (BENCHMARKS.md, issue 20). Nothing is lost by it: a revision is
-- written only in the transaction that writes its workload, holding the
-- workload's row (package pgstore's SpecHook), so it never names a
-- workload that is not there.
ALTER TABLE workload_revisions DROP CONSTRAINT workload_revisions_workload_uid_fkey;

-- +goose StatementBegin
CREATE FUNCTION delete_workload_revisions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM workload_revisions WHERE workload_uid = OLD.uid;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER objects_delete_workload_revisions AFTER DELETE ON objects
    FOR EACH ROW WHEN (OLD.kind = 'Workload') EXECUTE FUNCTION delete_workload_revisions();

-- +goose Down
DROP TRIGGER objects_delete_workload_revisions ON objects;
DROP FUNCTION delete_workload_revisions();
DELETE FROM workload_revisions r WHERE NOT EXISTS (SELECT 1 FROM objects o WHERE o.uid = r.workload_uid);
ALTER TABLE workload_revisions ADD FOREIGN KEY (workload_uid) REFERENCES objects (uid) ON DELETE CASCADE;
