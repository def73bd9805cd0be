//go:build linux

package tests

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/atollhq/atoll/hub/pgserver"
)

// TestComposeBootstrapSteps runs, against a real hub, the steps that
// docker-compose.yml's services take in an image without a shell: the
// healthcheck (`atoll probe`), the one-shot that makes the members' join
// token from the hub's admin-token file (twice, as at every `up`), and a
// member that joins from the token file.
func TestComposeBootstrapSteps(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	d.checkReady(t)
	// Only what the compose services have: files and flags.
	env := []string{"ATOLL_TOKEN=", "ATOLL_SERVER="}

	if r := d.atoll(t, env, "", "probe", d.url+"/readyz"); r.code != 0 || !strings.Contains(r.stdout, "200") {
		t.Errorf("want the healthcheck to pass on a ready hub, saying 200; got %s", r)
	}

	secret := filepath.Join(t.TempDir(), "join-token")
	name := uniqueName("compose-members")
	create := []string{"token", "create", name, "--join", "--uses=1", "--ttl=1h",
		"--server=" + d.url, "--token-file=" + filepath.Join(d.dataDir, "admin-token"), "--secret-file=" + secret}
	r := d.atoll(t, env, "", create...)
	if r.code != 0 {
		t.Fatalf("want the join token created into %s; got %s", secret, r)
	}
	b, err := os.ReadFile(secret)
	token := strings.TrimSpace(string(b))
	if err != nil || !strings.HasPrefix(token, "atollj_") {
		t.Fatalf("want a join token (atollj_...) in %s; got %q, %v", secret, b, err)
	}
	if strings.Contains(r.stdout+r.stderr, token) {
		t.Errorf("want the secret only in the file, not printed; got %s", r)
	}
	if fi, err := os.Stat(secret); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("want %s with mode 0600; got %v, %v", secret, fi.Mode().Perm(), err)
	}
	// The next `docker compose up` runs the one-shot again.
	if r := d.atoll(t, env, "", create...); r.code != 0 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("want a second run to succeed without creating a token (the file exists); got %s", r)
	}
	if b2, _ := os.ReadFile(secret); string(b2) != string(b) {
		t.Errorf("want %s unchanged by the second run; got %q, was %q", secret, b2, b)
	}
	if status, body, err := d.request(http.MethodGet, "/api/v1/tokens/"+name, d.token, nil); err != nil || status != http.StatusOK {
		t.Errorf("want token %s on the hub; got %d %s (%v)", name, status, body, err)
	}
	if r := d.atoll(t, env, "", "get", "clusters", "--server="+d.url, "--token-file="+filepath.Join(t.TempDir(), "missing")); r.code != 1 || !strings.Contains(r.stderr, "--token-file") {
		t.Errorf("want a missing --token-file refused, naming the flag; got %s", r)
	}

	cluster := uniqueName("compose-m")
	// Registered before the member starts, so it runs after the member is killed.
	t.Cleanup(func() {
		status, body, err := d.request(http.MethodDelete, "/api/v1/clusters/"+cluster+"?force=true", d.token, nil)
		if err != nil || (status/100 != 2 && status != http.StatusNotFound) {
			t.Errorf("want cluster %s deregistered after the test; got %d %s (%v)", cluster, status, body, err)
		}
	})
	m := startProc(t, t, cluster, "member", "--name", cluster, "--region", memberRegion,
		"--data-dir", filepath.Join(t.TempDir(), cluster), "--nats-listen", "127.0.0.1:0", "--join-token-file", secret)
	d.waitHealth(t, m, cluster, "Ready", healthTimeout)
}

// TestComposeKeyAndRoles runs, against a real PostgreSQL, what
// docker-compose.yml's postgres and one-shot services do about secrets:
// the key one-shot (`atoll hub gen-key --output`, twice, as at every
// `up`), the roles script the postgres image runs on a new volume (and by
// hand, twice, on a volume of an earlier version whose superuser owns
// the tables), then nats-config migrating as atoll_owner and the hub's
// URL working as atoll_hub, which is not a superuser.
func TestComposeKeyAndRoles(t *testing.T) {
	t.Parallel()
	psql := findPsql(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key", "atoll.key")
	if err := os.Mkdir(filepath.Dir(keyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		out, err := exec.Command(atollBin, "hub", "gen-key", "--output="+keyFile).CombinedOutput()
		if err != nil || (i == 1 && !strings.Contains(string(out), "exists")) {
			t.Fatalf("run %d: want the key one-shot to succeed (the second keeping the file); got %v\n%s", i+1, err, out)
		}
	}

	for _, older := range []bool{false, true} {
		pgDir := filepath.Join(dir, fmt.Sprintf("pg-%v", older))
		if err := os.Mkdir(pgDir, 0o755); err != nil {
			t.Fatal(err)
		}
		pg := startPostgres(t, pgDir)
		asPostgresImage(t, pg)
		su, err := url.Parse(pg.SuperuserURL("atoll"))
		if err != nil {
			t.Fatal(err)
		}
		if older {
			// An earlier compose file: everything as the superuser.
			if out, err := exec.Command(atollBin, "hub", "nats-config", "--database-url="+su.String(), "--key-file="+keyFile).CombinedOutput(); err != nil {
				t.Fatalf("want an earlier version's setup (superuser) to work; got %v\n%s", err, out)
			}
		}
		pw, _ := su.User.Password()
		env := append(os.Environ(), "PATH="+filepath.Dir(psql)+":"+os.Getenv("PATH"), "PGHOST=127.0.0.1", "PGPORT="+su.Port(), "PGPASSWORD="+pw,
			"POSTGRES_USER=atoll", "POSTGRES_DB=atoll", "ATOLL_OWNER_PASSWORD=owner-secret", "ATOLL_HUB_PASSWORD=hub 'secret'")
		for i := range 2 {
			cmd := exec.Command("sh", "../deploy/compose/postgres-roles.sh")
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("older volume %v, run %d: want deploy/compose/postgres-roles.sh to succeed; got %v\n%s", older, i+1, err, out)
			}
		}
		roleURL := func(role, password string) string {
			u := *su
			u.User = url.UserPassword(role, password)
			return u.String()
		}
		hubURL, ownerURL := roleURL("atoll_hub", "hub 'secret'"), roleURL("atoll_owner", "owner-secret")
		out, err := exec.Command(atollBin, "hub", "nats-config", "--database-url="+hubURL, "--migrate-database-url="+ownerURL, "--key-file="+keyFile).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "operator:") {
			t.Fatalf("older volume %v: want nats-config to migrate as atoll_owner and read the keys as atoll_hub; got %v\n%s", older, err, out)
		}
		hub := connect(t, hubURL)
		var super bool
		var n int
		if err := hub.QueryRow(t.Context(), `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil || super {
			t.Errorf("older volume %v: want atoll_hub not a superuser; got %v, %v", older, super, err)
		}
		if err := hub.QueryRow(t.Context(), `SELECT count(*) FROM nats_keys WHERE sealed IS NOT NULL`).Scan(&n); err != nil || n != 1 {
			t.Errorf("older volume %v: want atoll_hub to read the one sealed nats_keys row; got %d, %v", older, n, err)
		}
		if _, err := hub.Exec(t.Context(), `CREATE TABLE mine (id int)`); err == nil {
			t.Errorf("older volume %v: want atoll_hub refused CREATE TABLE", older)
		}
	}
}

// asPostgresImage makes pgserver's fresh database look like the postgres
// image's: the database and schema the superuser's, no Atoll roles.
func asPostgresImage(t *testing.T, pg *pgserver.Server) {
	t.Helper()
	admin := connect(t, pg.SuperuserURL("atoll"))
	for _, sql := range []string{
		`ALTER DATABASE atoll OWNER TO atoll`,
		`ALTER SCHEMA public OWNER TO pg_database_owner`,
		`DROP OWNED BY atoll_hub, atoll_owner`,
		`DROP ROLE atoll_hub`,
		`DROP ROLE atoll_owner`,
	} {
		if _, err := admin.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	admin.Close(t.Context())
}

// findPsql finds psql on PATH or in the newest /usr/lib/postgresql/*/bin
// (Debian's postgresql package, which tests/deps.sh installs).
func findPsql(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("psql"); err == nil {
		return p
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
	if len(matches) == 0 {
		t.Fatal("want psql (apt-get install postgresql-client) to run deploy/compose/postgres-roles.sh")
	}
	slices.Sort(matches)
	return matches[len(matches)-1]
}
