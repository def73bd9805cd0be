package hub_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/internal/syncbuf"

	"github.com/jackc/pgx/v5"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/secrets"
	"github.com/atollhq/atoll/member/node"
	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/protocol"
)

// rawDatabase is every row of every table of the hub's schema as
// PostgreSQL prints it (bytea in hex), read behind the hub's back: what a
// dump of the database would hold.
func rawDatabase(t *testing.T, e *env) string {
	t.Helper()
	ctx := context.Background()
	rows, err := e.store.Pool().Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) < 5 {
		t.Fatalf("want the schema's tables; got %v, %v", tables, err)
	}
	var out strings.Builder
	for _, tb := range tables {
		rows, err := e.store.Pool().Query(ctx, `SELECT t::text FROM `+pgx.Identifier{tb}.Sanitize()+` t`)
		if err != nil {
			t.Fatalf("read %s: %v", tb, err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("read %s: %v", tb, err)
		}
		for _, s := range texts {
			out.WriteString(tb + ": " + s + "\n")
		}
	}
	return out.String()
}

// leaks says where value shows in text: as is, hex-encoded (bytea) or in
// base64.
func leaks(text, value string) bool {
	return strings.Contains(text, value) || strings.Contains(text, hex.EncodeToString([]byte(value))) ||
		strings.Contains(text, base64.StdEncoding.EncodeToString([]byte(value))[:len(value)])
}

func secretObj(name string, data, binary map[string]string) api.Secret {
	return api.Secret{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Secret"}, Metadata: api.ObjectMeta{Name: name},
		Spec: api.DataSpec{Data: data, BinaryData: binary}}
}

// TestSecretValuesStayHidden: a secret's values go in through the API and
// come back only to an admin who asks for them; the database (every table,
// as a dump would hold it), the object's reads, lists and watches, the
// audit log, events, the console's pages and the hub's log lines never
// hold them.
func TestSecretValuesStayHidden(t *testing.T) {
	t.Parallel()
	logs := &syncbuf.Buffer{}
	e := newEnvWith(t, newHubDatabase(t), nil, members.HealthConfig{}, false, func(c *hub.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := context.Background()
	operator := client.New(e.url, e.token("ops", api.RoleOperator), nil)
	viewer := client.New(e.url, e.token("view", api.RoleViewer), nil)
	const password = "pw-Zq8rT1vX9kLm2sNe"
	cert := []byte("-----CERT 7f3a91c0d2e4-----\x00\x01\xfe")

	events := make(chan client.Event, 16)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_ = viewer.Watch(wctx, "secrets", "", "", func(ev client.Event) error { events <- ev; return nil })
	}()

	var created api.Secret
	if err := operator.Create(ctx, "secrets", secretObj("db", map[string]string{"password": password},
		map[string]string{"tls.crt": base64.StdEncoding.EncodeToString(cert)}), &created); err != nil {
		t.Fatalf("want an operator to create a secret; got %v", err)
	}
	if created.Spec.Data != nil || created.Spec.BinaryData != nil || created.Status.Version != 1 || len(created.Status.Keys) != 2 ||
		created.Status.Keys[0] != (api.DataKey{Name: "password", Bytes: len(password)}) || created.Status.Keys[1] != (api.DataKey{Name: "tls.crt", Bytes: len(cert), Binary: true}) {
		t.Fatalf("want the answer to create without values, naming keys and sizes at version 1; got %+v", created)
	}
	ev := next(t, events)
	if ev.Type != api.Added || leaks(string(ev.Object), password) || !strings.Contains(string(ev.Object), `"password"`) {
		t.Errorf("want the watch to see the secret added with its key names, no values; got %s %s", ev.Type, ev.Object)
	}

	// Reads, lists: keys only, to everyone who reads.
	for _, c := range []*client.Client{viewer, operator, e.admin} {
		var got api.Secret
		var list api.SecretList
		if err := c.Get(ctx, "secrets", "db", &got); err != nil || got.Spec.Data != nil || got.Status.Version != 1 {
			t.Errorf("want a read without values; got %+v, %v", got, err)
		}
		if err := c.List(ctx, "secrets", client.ListOptions{}, &list); err != nil || len(list.Items) != 1 || list.Items[0].Spec.Data != nil {
			t.Errorf("want a list without values; got %+v, %v", list, err)
		}
	}
	// The values: admins only, audited.
	for _, tok := range []string{e.token("view2", api.RoleViewer), e.token("ops2", api.RoleOperator)} {
		if r := e.do("GET", "/api/v1/secrets/db/data", tok, "", nil); r.status != http.StatusForbidden || leaks(string(r.body), password) {
			t.Errorf("want a non-admin refused the values (403); got %d %s", r.status, r.body)
		}
	}
	r := e.do("GET", "/api/v1/secrets/db/data", adminSecret, "", nil)
	var revealed api.Secret
	_ = json.Unmarshal(r.body, &revealed)
	got, _ := base64.StdEncoding.DecodeString(revealed.Spec.BinaryData["tls.crt"])
	if r.status != 200 || revealed.Spec.Data["password"] != password || !bytes.Equal(got, cert) || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("want an admin to read the values (no-store); got %d %s (Cache-Control %q)", r.status, r.body, r.header.Get("Cache-Control"))
	}

	// An update with the same values changes nothing; new values are the
	// next version.
	var same, changed api.Secret
	if err := operator.Update(ctx, "secrets", "db", secretObj("db", map[string]string{"password": password},
		map[string]string{"tls.crt": base64.StdEncoding.EncodeToString(cert)}), &same); err != nil || same.Status.Version != 1 || same.Metadata.ResourceVersion != created.Metadata.ResourceVersion {
		t.Errorf("want the same values to change nothing (version 1, resourceVersion %s); got %+v, %v", created.Metadata.ResourceVersion, same.Metadata, err)
	}
	const password2 = "pw2-Hh4Jc7Wq0Pz3Ty"
	if err := operator.Update(ctx, "secrets", "db", secretObj("db", map[string]string{"password": password2}, nil), &changed); err != nil ||
		changed.Status.Version != 2 || len(changed.Status.Keys) != 1 || changed.Spec.Data != nil {
		t.Fatalf("want new values as version 2 with one key; got %+v, %v", changed, err)
	}
	// What a client that read the secret sends back (atoll edit, a new
	// label) has no values: it keeps them.
	changed.Metadata.Labels = map[string]string{"team": "db"}
	var labelled api.Secret
	if err := operator.Update(ctx, "secrets", "db", changed, &labelled); err != nil || labelled.Status.Version != 2 || labelled.Metadata.Labels["team"] != "db" {
		t.Errorf("want a labels-only update to keep the values (version 2); got %+v, %v", labelled, err)
	}
	_ = next(t, events) // the label's MODIFIED
	r = e.do("GET", "/api/v1/secrets/db/data", adminSecret, "", nil)
	if !strings.Contains(string(r.body), password2) || leaks(string(r.body), password) {
		t.Errorf("want the new value read back, the old gone; got %s", r.body)
	}
	_ = next(t, events) // the update's MODIFIED

	// Refused writes: a JSON patch (its test operation would compare
	// values), a patch as a dry run, a dry run.
	if r := e.do("PATCH", "/api/v1/secrets/db", adminSecret, "application/json-patch+json", []byte(`[{"op":"test","path":"/spec/data/password","value":"x"}]`)); r.status != http.StatusUnsupportedMediaType {
		t.Errorf("want JSON patches of secrets refused (415); got %d %s", r.status, r.body)
	}
	if r := e.do("PATCH", "/api/v1/secrets/db?dryRun=All", adminSecret, "application/merge-patch+json", []byte(`{"spec":{"data":{"password":"x"}}}`)); r.status != http.StatusUnprocessableEntity || !hasLocation(r.problem, "query.dryRun") {
		t.Errorf("want a dry-run patch of a secret refused (422 at query.dryRun); got %d %s", r.status, r.body)
	}
	body, _ := json.Marshal(secretObj("dry", map[string]string{"k": password}, nil))
	if r := e.do("POST", "/api/v1/secrets?dryRun=All", adminSecret, "application/json", body); r.status != http.StatusUnprocessableEntity || leaks(string(r.body), password) {
		t.Errorf("want dry runs of secrets refused (422); got %d %s", r.status, r.body)
	}
	// A refused write's audit row and answer do not quote values.
	body, _ = json.Marshal(secretObj("bad", map[string]string{"../k": password, "b": password}, map[string]string{"b": password}))
	if r := e.do("POST", "/api/v1/secrets", adminSecret, "application/json", body); r.status != http.StatusUnprocessableEntity || leaks(string(r.body), password) ||
		!hasLocation(r.problem, "body.spec.data[../k]") || !hasLocation(r.problem, "body.spec.binaryData[b]") {
		t.Errorf("want a bad key, a key twice and bad base64 refused (422) at their fields without quoting values; got %d %s", r.status, r.body)
	}
	body, _ = json.Marshal(secretObj("bad", map[string]string{"ok": "bad\x00" + password}, nil))
	if r := e.do("POST", "/api/v1/secrets", adminSecret, "application/json", body); r.status != http.StatusBadRequest || leaks(string(r.body), password) {
		t.Errorf("want NUL in a text value refused (400) without quoting it; got %d %s", r.status, r.body)
	}

	// Nowhere else.
	var audit struct{ Items []json.RawMessage }
	if err := e.admin.Raw(ctx, "GET", "/api/v1/audit", nil, nil, &audit); err != nil {
		t.Fatal(err)
	}
	var auditText string
	for _, it := range audit.Items {
		auditText += string(it) + "\n"
	}
	if !strings.Contains(auditText, `"verb":"reveal"`) {
		t.Errorf("want the reads of values audited (verb reveal); got %s", auditText)
	}
	var evs api.EventList
	if err := e.admin.List(ctx, "events", client.ListOptions{}, &evs); err != nil {
		t.Fatal(err)
	}
	evText, _ := json.Marshal(evs)
	if !strings.Contains(string(evText), "SecretCreated") || !strings.Contains(string(evText), "values at version 2, keys: password") {
		t.Errorf("want events for the secret's creation and its new values; got %s", evText)
	}
	console := ""
	cookie := signIn(t, e.url, adminSecret)
	for _, path := range []string{"/secrets", "/secrets/db"} {
		console += getPage(t, e, cookie, path)
	}
	dump := rawDatabase(t, e)
	if !strings.Contains(dump, "secret_values") {
		t.Fatal("want the dump to include the secret_values table")
	}
	for _, v := range []string{password, password2, string(cert[:16])} {
		for where, text := range map[string]string{"the database": dump, "the audit log": auditText, "events": string(evText), "the hub's log": logs.String(), "the console": console} {
			if leaks(text, v) {
				t.Errorf("a secret value shows in %s", where)
			}
		}
	}
	if !strings.Contains(console, "password") {
		t.Errorf("want the console to name the secret's keys; got %s", console)
	}

	// Deleted: the value row goes with the object.
	if err := operator.Delete(ctx, "secrets", "db", nil); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := e.store.Pool().QueryRow(ctx, `SELECT count(*) FROM secret_values`).Scan(&n); err != nil || n != 0 {
		t.Errorf("want no value left once the secret is deleted; got %d, %v", n, err)
	}
}

// getPage reads a console page with a session cookie.
func getPage(t *testing.T, e *env, cookie, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.Header.Set("Cookie", cookie)
	req.Header.Set("Accept", "text/html")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if resp.StatusCode != 200 {
		t.Errorf("console %s: want 200; got %d %s", path, resp.StatusCode, b.String())
	}
	return b.String()
}

// TestDataLimits: sizes and key counts past the limits are 422s at their
// field; configs keep their data in clear, versioned by generation.
func TestDataLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	big := strings.Repeat("x", api.MaxDataBytes)
	for _, plural := range []string{"configs", "secrets"} {
		kind := map[string]string{"configs": "Config", "secrets": "Secret"}[plural]
		body, _ := json.Marshal(map[string]any{"apiVersion": api.Group, "kind": kind, "metadata": map[string]string{"name": "big"},
			"spec": map[string]any{"data": map[string]string{"a": big}}})
		if r := e.do("POST", "/api/v1/"+plural, adminSecret, "application/json", body); r.status != http.StatusUnprocessableEntity || !hasLocation(r.problem, "body.spec") {
			t.Errorf("%s: want more than %d bytes refused (422 at body.spec); got %d %.300s", plural, api.MaxDataBytes, r.status, r.body)
		}
		many := map[string]string{}
		for i := range api.MaxDataKeys + 1 {
			many[fmt.Sprint("k", i)] = "v"
		}
		body, _ = json.Marshal(map[string]any{"apiVersion": api.Group, "kind": kind, "metadata": map[string]string{"name": "many"},
			"spec": map[string]any{"data": many, "binaryData": map[string]string{"k1": "dg=="}}})
		if r := e.do("POST", "/api/v1/"+plural, adminSecret, "application/json", body); r.status != http.StatusUnprocessableEntity ||
			!hasLocation(r.problem, "body.spec") || !hasLocation(r.problem, "body.spec.binaryData[k1]") {
			t.Errorf("%s: want too many keys and a key in both maps refused at their fields; got %d %.300s", plural, r.status, r.body)
		}
	}
	var c api.Config
	if err := e.admin.Create(ctx, "configs", api.Config{Metadata: api.ObjectMeta{Name: "app"}, Spec: api.DataSpec{Data: map[string]string{"region": "eu"}}}, &c); err != nil {
		t.Fatal(err)
	}
	c.Spec.Data["region"] = "us"
	if err := e.admin.Update(ctx, "configs", "app", c, &c); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.Get(ctx, "configs", "app", &c); err != nil || c.Spec.Data["region"] != "us" || c.Status.Version != 2 || len(c.Status.Keys) != 1 || c.Status.Keys[0].Name != "region" {
		t.Errorf("want a config's data in clear, version 2 after a change; got %+v, %v", c, err)
	}
}

// BenchmarkSecretRead is decrypt-on-read from PostgreSQL: the value row
// read, its data key unwrapped by the key-encryption key, its data
// opened (one secret of two keys, 64 bytes each).
func BenchmarkSecretRead(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	var s api.Secret
	if err := e.admin.Create(ctx, "secrets", secretObj("bench", map[string]string{"user": strings.Repeat("u", 64), "password": strings.Repeat("p", 64)}, nil), &s); err != nil {
		b.Fatal(err)
	}
	vault := secrets.New(testKeys)
	b.Run("database+decrypt", func(b *testing.B) {
		for b.Loop() {
			if _, err := vault.Read(ctx, e.store, s.Metadata.UID); err != nil {
				b.Fatal(err)
			}
		}
	})
	sv, err := e.store.SecretValue(ctx, testKeys, s.Metadata.UID)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decrypt", func(b *testing.B) {
		for b.Loop() {
			if _, err := secrets.Open(sv.DataKey, s.Metadata.UID, sv.Sealed); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestImagePullSecretChecked: an oci template's imagePullSecret names a
// secret and a key that exist, or the write is a 422 at its field; the
// workload's answer never holds the credentials.
func TestImagePullSecretChecked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	auth := `{"auths":{"registry.example":{"auth":"dTpzM2NyZXQ="}}}`
	if err := e.admin.Create(ctx, "secrets", secretObj("regcred", map[string]string{"config.json": auth}, nil), nil); err != nil {
		t.Fatal(err)
	}
	w := workload("app", 1, nil)
	w.Spec.Template = api.ReplicaTemplate{Driver: "oci", Image: "registry.example/app:1", ImagePullSecret: &api.KeyRef{Name: "nope", Key: "config.json"}}
	if r := e.json("POST", "/api/v1/workloads", w); r.status != http.StatusUnprocessableEntity || !hasLocation(r.problem, "body.spec.template.imagePullSecret.name") {
		t.Errorf("a missing pull secret: want 422 at spec.template.imagePullSecret.name; got %d %s", r.status, r.body)
	}
	w.Spec.Template.ImagePullSecret = &api.KeyRef{Name: "regcred", Key: ".dockerconfigjson"}
	if r := e.json("POST", "/api/v1/workloads", w); r.status != http.StatusUnprocessableEntity || !hasLocation(r.problem, "body.spec.template.imagePullSecret.key") {
		t.Errorf("a missing key of the pull secret: want 422 at spec.template.imagePullSecret.key; got %d %s", r.status, r.body)
	}
	w.Spec.Template.ImagePullSecret.Key = "config.json"
	r := e.json("POST", "/api/v1/workloads", w)
	if r.status != http.StatusCreated {
		t.Fatalf("want the workload with its pull secret created; got %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "dTpzM2NyZXQ=") {
		t.Errorf("the workload's answer holds the credentials: %s", r.body)
	}
}

// TestWorkloadReferencesChecked: a workload's env and files name configs,
// secrets and keys that exist, or its create, update, patch or dry run is
// a 422 at the reference's field.
func TestWorkloadReferencesChecked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if err := e.admin.Create(ctx, "secrets", secretObj("db", map[string]string{"password": "pw"}, nil), nil); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.Create(ctx, "configs", api.Config{Metadata: api.ObjectMeta{Name: "app"}, Spec: api.DataSpec{Data: map[string]string{"region": "eu"}}}, nil); err != nil {
		t.Fatal(err)
	}
	w := workload("web", 1, nil)
	w.Spec.Template.Env = []api.EnvVar{
		{Name: "PASSWORD", ValueFrom: &api.EnvSource{Secret: &api.KeyRef{Name: "db", Key: "nope"}}},
		{Name: "REGION", ValueFrom: &api.EnvSource{Config: &api.KeyRef{Name: "gone", Key: "region"}}},
	}
	w.Spec.Template.Files = []api.FileSource{{Secret: "missing", Dir: "db"}}
	for _, path := range []string{"/api/v1/workloads", "/api/v1/workloads?dryRun=All"} {
		r := e.json("POST", path, w)
		if r.status != http.StatusUnprocessableEntity || !hasLocation(r.problem, "body.spec.template.env[0].valueFrom.secret.key") ||
			!hasLocation(r.problem, "body.spec.template.env[1].valueFrom.config.name") || !hasLocation(r.problem, "body.spec.template.files[0].secret") ||
			!strings.Contains(string(r.body), `has no key \"nope\" (its keys: password)`) {
			t.Errorf("POST %s: want the three bad references refused (422) at their fields; got %d %s", path, r.status, r.body)
		}
	}
	w.Spec.Template.Env[0].ValueFrom.Secret.Key = "password"
	w.Spec.Template.Env[1].ValueFrom.Config.Name = "app"
	w.Spec.Template.Files[0].Secret = "db"
	if r := e.json("POST", "/api/v1/workloads", w); r.status != http.StatusCreated {
		t.Fatalf("want a workload with good references created; got %d %s", r.status, r.body)
	}
	r := e.do("PATCH", "/api/v1/workloads/web", adminSecret, "application/merge-patch+json", []byte(`{"spec":{"template":{"files":[{"config":"nope","dir":"x"}]}}}`))
	if r.status != http.StatusUnprocessableEntity || !hasLocation(r.problem, "body.spec.template.files[0].config") {
		t.Errorf("want a patch to a missing config refused at its field; got %d %s", r.status, r.body)
	}
	// Shapes: value and valueFrom, both sources, a folder escaping.
	bad := workload("bad", 1, nil)
	bad.Spec.Template.Env = []api.EnvVar{{Name: "A", Value: "x", ValueFrom: &api.EnvSource{Secret: &api.KeyRef{Name: "db", Key: "password"}, Config: &api.KeyRef{Name: "app", Key: "region"}}}}
	bad.Spec.Template.Files = []api.FileSource{{Secret: "db", Dir: "../etc"}}
	r = e.json("POST", "/api/v1/workloads", bad)
	if r.status != http.StatusUnprocessableEntity || !hasLocation(r.problem, "body.spec.template.env[0].value") ||
		!hasLocation(r.problem, "body.spec.template.env[0].valueFrom") || !hasLocation(r.problem, "body.spec.template.files[0].dir") {
		t.Errorf("want bad reference shapes refused at their fields; got %d %s", r.status, r.body)
	}
}

// TestSecretReachesReplica: a secret's value reaches a real process on a
// real node as an env var and as a file (0400), through the hub's
// delivery to the one member that needs it; the member's JetStream holds
// it sealed; a key the replica needs that is gone stops its next start
// with a reason naming it; and once no workload of the cluster uses the
// secret, the member gives it back.
func TestSecretReachesReplica(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	ctx := t.Context()
	memberDir := t.TempDir()
	m, _ := runMember(t, e.joinToken("j", api.TokenSpec{}), "r1", memberDir)
	a, err := node.New(node.Config{MemberURL: m.NATSURL(), JoinToken: m.NodeJoinToken(), Name: "n1", DataDir: t.TempDir(),
		MilliCPU: 2000, Memory: 2 << 30, Interval: 200 * time.Millisecond,
		Runtime: runtime.Config{Backoff: runtime.BackoffConfig{Initial: 200 * time.Millisecond, Max: 500 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	nctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(nctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the node", 10*time.Second, func() bool { return m.Capacity().NodesReady == 1 })
	const password = "pw-Rn7Qe2Kd5Vx"
	if err := e.admin.Create(ctx, "secrets", secretObj("db", map[string]string{"password": password, "user": "app"}, nil), nil); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.Create(ctx, "configs", api.Config{Metadata: api.ObjectMeta{Name: "unused"}, Spec: api.DataSpec{Data: map[string]string{"k": "v"}}}, nil); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	script := `printf %s "$PASSWORD" > ` + out + `/env.tmp && mv ` + out + `/env.tmp ` + out + `/env; ` +
		`cat "$ATOLL_FILES/db/password" > ` + out + `/file.tmp && mv ` + out + `/file.tmp ` + out + `/file; ` +
		`stat -c %a "$ATOLL_FILES/db/password" > ` + out + `/mode.tmp && mv ` + out + `/mode.tmp ` + out + `/mode; exec sleep 600`
	tmpl := api.ReplicaTemplate{Driver: "process", Command: "/bin/sh", Args: []string{"-c", script},
		Env:   []api.EnvVar{{Name: "PASSWORD", ValueFrom: &api.EnvSource{Secret: &api.KeyRef{Name: "db", Key: "password"}}}},
		Files: []api.FileSource{{Secret: "db", Dir: "db"}}}
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "app"}, Spec: api.WorkloadSpec{Replicas: 1, Template: tmpl}})
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(out, name))
		return strings.TrimSpace(string(b))
	}
	waitFor(t, "the replica to write what it got", 30*time.Second, func() bool { return read("mode") != "" })
	if read("env") != password || read("file") != password || read("mode") != "400" {
		t.Fatalf("want the secret as env and as a 0400 file; got env %q, file %q, mode %q", read("env"), read("file"), read("mode"))
	}
	// The member holds it sealed: no JetStream file of its data folder
	// holds the value, and it holds only what its workloads use.
	held := dataHeld(t, e, "r1")
	if len(held) != 1 || held["Secret/db"] == 0 {
		t.Errorf("want the member to hold the secret alone (not the unused config); got %v", held)
	}
	if dirHolds(t, memberDir, password) {
		t.Error("a file of the member's data folder (its JetStream) holds the secret's value in clear")
	}

	// A new value rolls the replica: its successor gets it, and the
	// workload's status names the secret's version the cluster runs.
	const password2 = "pw2-Lc4Tz8Hw1"
	var updated api.Secret
	if err := e.admin.Update(ctx, "secrets", "db", secretObj("db", map[string]string{"password": password2, "user": "app"}, nil), &updated); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rolled replica to get the new value", 30*time.Second, func() bool { return read("env") == password2 && read("file") == password2 })
	// Without spec.rollout every cluster rolls at once, and the change is
	// still a revision, its cause the secret's new version.
	var revs api.RevisionList
	if err := e.admin.Raw(ctx, "GET", "/api/v1/workloads/app/revisions", nil, nil, &revs); err != nil {
		t.Fatal(err)
	}
	if n := len(revs.Items); n != 2 || revs.Items[1].ChangeCause != "secret db v2" || revs.Items[1].Actor != "token:bootstrap-admin" {
		t.Errorf("want the new value recorded as revision 2 by the secret's writer, cause %q; got %d revisions, the last %q by %q", "secret db v2", len(revs.Items), revs.Items[len(revs.Items)-1].ChangeCause, revs.Items[len(revs.Items)-1].Actor)
	}
	want := "Secret/db=" + updated.Metadata.ResourceVersion
	waitFor(t, "the status to name the version r1 runs", 30*time.Second, func() bool {
		var w api.Workload
		if err := e.admin.Get(ctx, "workloads", "app", &w); err != nil {
			t.Fatal(err)
		}
		return len(w.Status.Clusters) == 1 && w.Status.Clusters[0].Data == want && w.Status.Clusters[0].Updated == 1
	})

	// The key it reads is taken out of the secret: the successor the new
	// version rolls in cannot start, and says which key it misses; the
	// running replica stays (the update needs the new one ready first).
	if err := e.admin.Update(ctx, "secrets", "db", secretObj("db", map[string]string{"user": "app"}, nil), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a replica held for its missing key", 30*time.Second, func() bool {
		var l api.ReplicaInfoList
		if err := e.admin.Raw(ctx, "GET", "/api/v1/replicas", url.Values{"workload": {"app"}}, nil, &l); err != nil {
			t.Fatal(err)
		}
		for _, r := range l.Items {
			if r.Reason == runtime.ReasonMissingData && strings.Contains(r.Message, `secret "db" has no key "password"`) {
				return true
			}
		}
		return false
	})
	if read("env") != password2 {
		t.Errorf("want the running replica kept while its successor cannot start; its value is now %q", read("env"))
	}

	// The workload no longer uses it: the member gives it back.
	// (A patch: the status folder writes the workload meanwhile.)
	if err := e.admin.Patch(ctx, "workloads", "app", []byte(`{"spec":{"template":{"env":null,"files":null,"args":["-c","exec sleep 600"]}}}`), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the member to drop the secret", 30*time.Second, func() bool { return len(dataHeld(t, e, "r1")) == 0 })
}

// dataHeld asks a member what configs and secrets it holds.
func dataHeld(t *testing.T, e *env, cluster string) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := e.bus.Request(ctx, cluster, protocol.DataSubject(cluster), []byte(`{"v":5}`))
	if err != nil {
		t.Fatalf("ask %s what it holds: %v", cluster, err)
	}
	var h protocol.DataHeld
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.Held
}

// dirHolds says whether any file under dir holds value (as is, in hex
// or in base64).
func dirHolds(t *testing.T, dir, value string) bool {
	t.Helper()
	found := false
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err == nil && leaks(string(b), value) {
			found = true
		}
		return nil
	})
	return found
}

// BenchmarkSecretUpdateToReplica is update-to-rolling latency end to
// end: a secret's new value, through the API, the hub's delivery to the
// member, the member's rolling of the replica that uses it, the node's
// start of its successor, until the new process has read the value (one
// member, one node, one replica of the process driver).
func BenchmarkSecretUpdateToReplica(b *testing.B) {
	e := newMemberEnv(b, members.HealthConfig{})
	ctx := context.Background()
	m, _ := runMember(b, e.joinToken("j", api.TokenSpec{}), "r1", b.TempDir())
	a, err := node.New(node.Config{MemberURL: m.NATSURL(), JoinToken: m.NodeJoinToken(), Name: "n1", DataDir: b.TempDir(),
		MilliCPU: 2000, Memory: 2 << 30, Interval: 200 * time.Millisecond,
		Runtime: runtime.Config{Backoff: runtime.BackoffConfig{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}}})
	if err != nil {
		b.Fatal(err)
	}
	nctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(nctx) }()
	defer func() { cancel(); <-done }()
	if err := e.admin.Create(ctx, "secrets", secretObj("db", map[string]string{"password": "v0"}, nil), nil); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(b.TempDir(), "env")
	tmpl := api.ReplicaTemplate{Driver: "process", Command: "/bin/sh",
		Args: []string{"-c", `printf %s "$PASSWORD" > ` + out + `.$$ && mv ` + out + `.$$ ` + out + `; exec sleep 600`},
		Env:  []api.EnvVar{{Name: "PASSWORD", ValueFrom: &api.EnvSource{Secret: &api.KeyRef{Name: "db", Key: "password"}}}}}
	// A new replica may start before the old one stops (surge 1).
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "app"}, Spec: api.WorkloadSpec{Replicas: 1, Template: tmpl}})
	wait := func(want string) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			if got, _ := os.ReadFile(out); string(got) == want {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("the replica did not get %q within 60s", want)
			}
			time.Sleep(2 * time.Millisecond) // polling the file the replica writes
		}
	}
	wait("v0")
	b.ResetTimer()
	for i := range b.N {
		v := fmt.Sprint("v", i+1)
		if err := e.admin.Update(ctx, "secrets", "db", secretObj("db", map[string]string{"password": v}, nil), nil); err != nil {
			b.Fatal(err)
		}
		wait(v)
	}
}

// TestSecretReplaceRefusesDryRun: a dry run of a secret's replace (the
// client's DryRun sends one) is refused (the route takes no dryRun: an
// unknown parameter), never taken as a real write of the values.
func TestSecretReplaceRefusesDryRun(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, newHubDatabase(t), nil, members.HealthConfig{}, false)
	ctx := context.Background()
	operator := client.New(e.url, e.token("ops", api.RoleOperator), nil)
	if err := operator.Create(ctx, "secrets", secretObj("db", map[string]string{"password": "kept"}, nil), nil); err != nil {
		t.Fatal(err)
	}
	err := operator.DryRun().Update(ctx, "secrets", "db", secretObj("db", map[string]string{"password": "replaced"}, nil), nil)
	if api.ErrorCode(err) != api.CodeInvalid {
		t.Errorf("dry run of a secret's replace: want it refused (Invalid); got %v", err)
	}
	r := e.do("GET", "/api/v1/secrets/db/data", adminSecret, "", nil)
	var got api.Secret
	_ = json.Unmarshal(r.body, &got)
	if r.status != 200 || got.Spec.Data["password"] != "kept" || got.Status.Version != 1 {
		t.Errorf("after a dry run of a replace: want the stored value kept at version 1; got %d %s", r.status, r.body)
	}
}
