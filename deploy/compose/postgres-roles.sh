#!/bin/sh
# The database roles of docker-compose.yml (SECURITY.md, "Database roles"):
#
#   atoll_owner  owns the database "atoll" and its schema; only the one-shot
#                nats-config connects as it, to run the migrations (which
#                grant atoll_hub the tables)
#   atoll_hub    what the hubs connect as: not a superuser, cannot create
#                databases, roles or tables
#
# The postgres image runs it once, when it initialises an empty volume
# (/docker-entrypoint-initdb.d). It is idempotent: for a volume made
# before the roles existed, run it by hand once,
#
#   docker compose exec postgres sh /docker-entrypoint-initdb.d/10-atoll-roles.sh
#
# which also hands the existing tables to atoll_owner. Passwords come from
# ATOLL_OWNER_PASSWORD and ATOLL_HUB_PASSWORD (the compose file's defaults
# are for a laptop); psql reads them as variables, so no password is part of
# a command line. Outside Docker, run it with PGHOST, PGPORT, PGPASSWORD,
# POSTGRES_USER (a superuser) and POSTGRES_DB set.
set -eu
: "${ATOLL_OWNER_PASSWORD:?set ATOLL_OWNER_PASSWORD}"
: "${ATOLL_HUB_PASSWORD:?set ATOLL_HUB_PASSWORD}"
export PGOPTIONS="-c client_min_messages=warning"

psql -v ON_ERROR_STOP=1 -X -q --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	-v owner_password="$ATOLL_OWNER_PASSWORD" -v hub_password="$ATOLL_HUB_PASSWORD" \
	-v dbname="$POSTGRES_DB" <<'SQL'
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'atoll_owner') AS make_owner,
       NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'atoll_hub') AS make_hub \gset
\if :make_owner
CREATE ROLE atoll_owner;
\endif
\if :make_hub
CREATE ROLE atoll_hub;
\endif
ALTER ROLE atoll_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'owner_password';
ALTER ROLE atoll_hub LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'hub_password';
ALTER DATABASE :"dbname" OWNER TO atoll_owner;
ALTER SCHEMA public OWNER TO atoll_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- A volume of an earlier version: its tables belong to the superuser.
-- Tables first: a sequence of a table's column moves with its table.
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.oid::regclass AS rel, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relowner <> 'atoll_owner'::regrole LOOP
    EXECUTE format('ALTER TABLE %s OWNER TO atoll_owner', r.rel);
  END LOOP;
  FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind = 'S' AND c.relowner <> 'atoll_owner'::regrole LOOP
    EXECUTE format('ALTER SEQUENCE %s OWNER TO atoll_owner', r.rel);
  END LOOP;
END
$$;
SQL
echo "atoll roles: atoll_owner owns database $POSTGRES_DB; atoll_hub may log in"
