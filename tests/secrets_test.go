//go:build linux

package tests

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atollhq/atoll/hub/keyring"
	"github.com/atollhq/atoll/hub/pgserver"
	"github.com/atollhq/atoll/hub/pgstore"
)

// devSuperuser connects to the running dev stack's PostgreSQL as the
// superuser, from the password file beside its data folder and the port
// in its postmaster.pid: what someone with the data folder could do,
// not something the hub does.
func devSuperuser(t *testing.T, d *devStack) *pgx.Conn {
	t.Helper()
	pw, err := os.ReadFile(d.pgDataDir() + ".password")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := os.ReadFile(filepath.Join(d.pgDataDir(), "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(pid), "\n")
	if len(lines) < 4 {
		t.Fatalf("want a port on line 4 of postmaster.pid; got %q", pid)
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err != nil {
		t.Fatal(err)
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword("atoll", strings.TrimSpace(string(pw))),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Path: "/atoll", RawQuery: "sslmode=disable"}
	conn, err := pgx.Connect(t.Context(), u.String())
	if err != nil {
		t.Fatalf("want a superuser connection to atoll dev's PostgreSQL; got %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// storedNATSKeys is the nats_keys row as the database holds it.
type storedNATSKeys struct {
	keyID   *string
	sealed  []byte
	inClear bool
}

func readNATSKeys(t *testing.T, conn *pgx.Conn) storedNATSKeys {
	t.Helper()
	var r storedNATSKeys
	err := conn.QueryRow(t.Context(), `SELECT key_id, sealed, operator_seed IS NOT NULL OR system_seed IS NOT NULL OR account_seed IS NOT NULL
		FROM nats_keys WHERE id = 1`).Scan(&r.keyID, &r.sealed, &r.inClear)
	if err != nil {
		t.Fatalf("read nats_keys: %v", err)
	}
	return r
}

// TestDevSecretsAndRoles: `atoll dev` made its key-encryption key (mode
// 0600) and the NATS signing keys in its database are sealed with it,
// nothing in clear; every session the hub holds on its database is
// atoll_hub, which is not a superuser.
func TestDevSecretsAndRoles(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	d.checkReady(t)

	keyFile := filepath.Join(d.dataDir, "atoll.key")
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("want atoll dev's key-encryption key in %s with mode 0600; got %v, %v", keyFile, fi, err)
	}
	key, err := keyring.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}

	conn := devSuperuser(t, d)
	row := readNATSKeys(t, conn)
	if row.inClear || row.keyID == nil || *row.keyID != key.ID() || len(row.sealed) == 0 {
		t.Errorf("want the NATS signing keys sealed with key %s and nothing in clear; got key %v, %d sealed bytes, in clear %v",
			key.ID(), row.keyID, len(row.sealed), row.inClear)
	}

	rows, err := conn.Query(t.Context(), `SELECT a.usename, a.application_name, r.rolsuper
		FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename
		WHERE a.datname = 'atoll' AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()`)
	if err != nil {
		t.Fatal(err)
	}
	var user, app string
	var super bool
	var sessions, elector int
	_, err = pgx.ForEachRow(rows, []any{&user, &app, &super}, func() error {
		sessions++
		if user != string(pgserver.Hub) || super {
			t.Errorf("want every session of the hub on its database as atoll_hub, not a superuser; got %s (superuser %v, application %q)", user, super, app)
		}
		if strings.HasPrefix(app, "atoll-leader ") {
			elector++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if sessions == 0 || elector != 1 {
		t.Errorf("want the hub's sessions on the database, its elector's among them; got %d sessions, %d of the elector", sessions, elector)
	}
}

// TestDevUpgradesOlderDataFolder: a data folder written before the
// signing keys were sealed and before the roles (the NATS signing keys in
// clear, everything owned by the superuser, no key file) is converted at
// the next start: a key is made, the keys are sealed with it and stay the
// same (the regions, which kept their credentials, come back Ready), and
// the hub connects as atoll_hub. Then, with the key file gone, the next
// start stops with a clear error and leaves the database as it was.
func TestDevUpgradesOlderDataFolder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := startDevT(t, dir, "127.0.0.1:0", "--no-demo")
	d.checkReady(t)
	d.waitHealth(t, nil, "us-east", "Ready", healthTimeout)
	before, _, err := d.cluster("us-east")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}

	makeOlder(t, dir)

	restart := time.Now()
	d2 := startDevT(t, dir, d.addr, "--no-demo")
	d2.checkReady(t)
	key, err := keyring.ReadFile(filepath.Join(dir, "atoll.key"))
	if err != nil {
		t.Fatalf("want a new key-encryption key made by the start; got %v", err)
	}
	row := readNATSKeys(t, devSuperuser(t, d2))
	if row.inClear || row.keyID == nil || *row.keyID != key.ID() {
		t.Errorf("want the clear NATS signing keys sealed with the new key %s; got key %v, in clear %v", key.ID(), row.keyID, row.inClear)
	}
	// Only the NATS signing keys the region's credentials were signed with
	// let it connect and heartbeat again.
	for _, region := range []string{"us-east", "eu-west", "ap-south"} {
		c := d2.waitFor(t, nil, region, "Ready with a heartbeat after the restart", healthTimeout, func(c clusterView) bool {
			return c.Status.Health == "Ready" && c.Status.LastHeartbeatTime != nil && c.Status.LastHeartbeatTime.After(restart)
		})
		if region == "us-east" && (c.Metadata.UID != before.Metadata.UID || c.Status.Identity != before.Status.Identity) {
			t.Errorf("want us-east the same cluster with the same identity (no new registration); got uid %s identity %s, was %s %s",
				c.Metadata.UID, c.Status.Identity, before.Metadata.UID, before.Status.Identity)
		}
	}
	if err := d2.stop(); err != nil {
		t.Fatal(err)
	}

	// The key file lost: the start stops, saying which key it needs.
	if err := os.Remove(filepath.Join(dir, "atoll.key")); err != nil {
		t.Fatal(err)
	}
	d3, err := startDev(dir, d.addr, "--no-demo")
	if err == nil {
		d3.stop()
		t.Fatal("want atoll dev refused without the key its database's NATS signing keys are sealed with")
	}
	if msg := err.Error(); !strings.Contains(msg, "sealed with a key-encryption key this hub was not given") || !strings.Contains(msg, key.ID()) || strings.Contains(msg, "panic") {
		t.Errorf("want a clear error naming the key needed (%s); got %v", key.ID(), err)
	}
	pg := startPostgresIn(t, filepath.Join(dir, "postgres"))
	if again := readNATSKeys(t, connect(t, pg.SuperuserURL("atoll"))); again.keyID == nil || *again.keyID != key.ID() {
		t.Errorf("want the sealed row left as it was by the refused start; got key %v", again.keyID)
	}
}

// makeOlder turns a stopped dev data folder into one an earlier version
// left: the NATS signing keys in clear, no key file, no atoll_owner or
// atoll_hub, everything owned by the superuser.
func makeOlder(t *testing.T, dir string) {
	t.Helper()
	pg := startPostgresIn(t, filepath.Join(dir, "postgres"))
	key, err := keyring.ReadFile(filepath.Join(dir, "atoll.key"))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.New(key)
	if err != nil {
		t.Fatal(err)
	}
	store, err := pgstore.Open(t.Context(), pgstore.Config{DatabaseURL: pg.SuperuserURL("atoll")})
	if err != nil {
		t.Fatal(err)
	}
	seeds, err := store.NATSKeys(t.Context(), ring, func() (pgstore.NATSSeeds, error) {
		t.Fatal("want the dev stack's NATS signing keys there already")
		return pgstore.NATSSeeds{}, nil
	})
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	admin := connect(t, pg.SuperuserURL("atoll"))
	steps := []string{
		`UPDATE nats_keys SET sealed = NULL, key_id = NULL, operator_seed = '` + seeds.Operator + `', system_seed = '` + seeds.System + `', account_seed = '` + seeds.Account + `'`,
		`ALTER DATABASE atoll OWNER TO atoll`,
		`ALTER SCHEMA public OWNER TO atoll`,
	}
	rows, err := admin.Query(t.Context(), `SELECT format('ALTER %s %I OWNER TO atoll', CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND (c.relkind = 'r' OR (c.relkind = 'S' AND NOT EXISTS (
			SELECT 1 FROM pg_depend dp WHERE dp.objid = c.oid AND dp.deptype IN ('a', 'i'))))`)
	if err != nil {
		t.Fatal(err)
	}
	more, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	steps = append(steps, more...)
	// The migrations' functions too (a trigger's), as an older folder
	// had them.
	rows, err = admin.Query(t.Context(), `SELECT format('ALTER FUNCTION %s OWNER TO atoll', p.oid::regprocedure)
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	more, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	steps = append(steps, more...)
	steps = append(steps, `DROP OWNED BY atoll_hub`, `DROP OWNED BY atoll_owner`, `DROP ROLE atoll_hub`, `DROP ROLE atoll_owner`)
	for _, sql := range steps {
		if _, err := admin.Exec(t.Context(), sql); err != nil {
			t.Fatalf("make an older data folder: %s: %v", sql, err)
		}
	}
	admin.Close(t.Context())
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "atoll.key")); err != nil {
		t.Fatal(err)
	}
}

// startPostgresIn starts the PostgreSQL of a stopped dev data folder, for
// the test's own look, and stops it when the test ends.
func startPostgresIn(t *testing.T, dataDir string) *pgserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	pg, err := pgserver.Start(ctx, pgserver.Config{DataDir: dataDir, Durable: true})
	if err != nil {
		t.Fatalf("want the data folder's PostgreSQL; got %v", err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	return pg
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
