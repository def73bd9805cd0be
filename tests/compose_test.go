//go:build linux

package tests

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		status, body, err := d.request(http.MethodDelete, "/api/v1/clusters/"+cluster, d.token, nil)
		if err != nil || (status/100 != 2 && status != http.StatusNotFound) {
			t.Errorf("want cluster %s deregistered after the test; got %d %s (%v)", cluster, status, body, err)
		}
	})
	m := startProc(t, t, cluster, "member", "--name", cluster, "--region", memberRegion,
		"--data-dir", filepath.Join(t.TempDir(), cluster), "--nats-listen", "127.0.0.1:0", "--join-token-file", secret)
	d.waitHealth(t, m, cluster, "Ready", healthTimeout)
}
