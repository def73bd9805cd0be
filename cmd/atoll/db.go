package main

import (
	"errors"
	"os"

	"github.com/spf13/pflag"

	"github.com/atollhq/atoll/hub/pgstore"
)

// dbFlags are the PostgreSQL URLs of a command that opens the store.
type dbFlags struct {
	url, migrateURL string
}

func (d *dbFlags) add(f *pflag.FlagSet) {
	f.StringVar(&d.url, "database-url", "", "PostgreSQL URL the hub works with (or ATOLL_DATABASE_URL): a role that is not a superuser, granted the tables by the migrations (SECURITY.md, \"Database roles\")")
	f.StringVar(&d.migrateURL, "migrate-database-url", "", "PostgreSQL URL of the schema's owner, used only to apply migrations and grant --database-url's role its tables (or ATOLL_MIGRATE_DATABASE_URL); default: --database-url, which then needs to own the schema")
}

// resolve fills the URLs from the environment where the flags are empty.
func (d *dbFlags) resolve() error {
	if d.url == "" {
		d.url = os.Getenv("ATOLL_DATABASE_URL")
	}
	if d.migrateURL == "" {
		d.migrateURL = os.Getenv("ATOLL_MIGRATE_DATABASE_URL")
	}
	if d.url == "" {
		return errors.New("--database-url (or ATOLL_DATABASE_URL) is required; for a self-contained hub, run 'atoll dev'")
	}
	return nil
}

func (d *dbFlags) config() pgstore.Config {
	return pgstore.Config{DatabaseURL: d.url, MigrateURL: d.migrateURL}
}
