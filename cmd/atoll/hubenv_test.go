package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub"
	"github.com/atollhq/atoll/hub/keyring"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/hub/tokens"
	"github.com/atollhq/atoll/telemetry"
)

const testAdminSecret = "atoll_testadminsecret0123456789abcdef"

// testHub is a real hub on its own private database, served over HTTP,
// for the client verbs' tests.
type testHub struct {
	url   string
	store *pgstore.Store
	admin *client.Client
}

// startHub starts a hub (without NATS: API only) on a fresh database
// migrated by its owner, as `atoll dev` prepares it.
func startHub(t *testing.T) *testHub {
	t.Helper()
	ctx := context.Background()
	r := pgtest.NewDatabaseRoles(t)
	mig, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: r.Hub, MigrateURL: r.Owner, MaxConns: 1})
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	mig.Close()
	tel, err := telemetry.Setup(ctx, "atoll-cli-test", "test")
	if err != nil {
		t.Fatal(err)
	}
	store, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: r.Hub, MaxConns: 4, Tracer: tel.Tracer, Meter: tel.Meter})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Bootstrap(ctx, store, t.TempDir(), testAdminSecret); err != nil {
		t.Fatal(err)
	}
	// Watches send keepalives every second, so a test's watch sees its
	// first bytes soon.
	keys, err := keyring.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	s := hub.New(hub.Config{Store: store, Telemetry: tel, Version: "v9.9.9-test", WatchKeepalive: time.Second, Keys: ring})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		s.Stop()
		ts.Close()
		store.Close()
	})
	return &testHub{url: ts.URL, store: store, admin: client.New(ts.URL, testAdminSecret, nil)}
}

// run runs atoll against the hub as admin.
func (h *testHub) run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	return runAtoll(t, append(args, "--server", h.url, "--token", testAdminSecret)...)
}

// runIn runs atoll with stdin.
func (h *testHub) runIn(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	root := newRoot()
	var stdout, stderr strings.Builder
	root.SetArgs(append(args, "--server", h.url, "--token", testAdminSecret))
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	err := root.ExecuteContext(t.Context())
	return stdout.String(), stderr.String(), err
}

// must runs atoll and fails the test on an error.
func (h *testHub) must(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := h.run(t, args...)
	if err != nil {
		t.Fatalf("atoll %s: %v (stderr %q)", strings.Join(args, " "), err, stderr)
	}
	return out
}

// sameOutput fails the test when got is not want, showing both.
func sameOutput(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("output differs\n--- want\n%s\n--- got\n%s", want, got)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// listNames lists the names of a kind's objects as the hub has them.
func listNames(t *testing.T, h *testHub, plural string) []string {
	t.Helper()
	var page struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"items"`
	}
	if err := h.admin.List(t.Context(), plural, client.ListOptions{}, &page); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range page.Items {
		names = append(names, it.Metadata.Name)
	}
	return names
}

// mustIn runs atoll with stdin and fails the test on an error.
func (h *testHub) mustIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, stderr, err := h.runIn(t, stdin, args...)
	if err != nil {
		t.Fatalf("atoll %s: %v (stderr %q)", strings.Join(args, " "), err, stderr)
	}
	return out
}
