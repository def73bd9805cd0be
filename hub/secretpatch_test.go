package hub_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// TestSecretPatch: a merge patch of a secret changes labels without
// touching its values (no new version), sets and removes keys with the
// others' values kept though nobody read them, honours a resourceVersion
// precondition, refuses bad shapes at their field without quoting a
// value, needs an operator, and its audit rows name keys, never values.
func TestSecretPatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	const pw, pw2, user = "pw-Jq8Lx3Vz", "pw2-Mw5Rt9Ye", "usr-Hd2Kp7Qa"
	var s api.Secret
	if err := e.admin.Create(ctx, "secrets", secretObj("db", map[string]string{"password": pw, "user": user}, nil), &s); err != nil {
		t.Fatal(err)
	}
	patch := func(token, body string) response {
		return e.do("PATCH", "/api/v1/secrets/db", token, "application/merge-patch+json", []byte(body))
	}
	reveal := func() api.Secret {
		t.Helper()
		r := e.do("GET", "/api/v1/secrets/db/data", adminSecret, "", nil)
		var out api.Secret
		if r.status != 200 || json.Unmarshal(r.body, &out) != nil {
			t.Fatalf("reveal: %d %s", r.status, r.body)
		}
		return out
	}

	r := patch(adminSecret, `{"metadata":{"labels":{"team":"db"}}}`)
	var got api.Secret
	_ = json.Unmarshal(r.body, &got)
	if r.status != 200 || got.Metadata.Labels["team"] != "db" || got.Status.Version != 1 || got.Spec.Data != nil {
		t.Fatalf("a label patch: want 200, the label, version 1 and no values; got %d %s", r.status, r.body)
	}
	if v := reveal(); v.Spec.Data["password"] != pw || v.Spec.Data["user"] != user {
		t.Errorf("a label patch kept the values? got keys %v", slices.Sorted(maps.Keys(v.Spec.Data)))
	}

	r = patch(adminSecret, `{"metadata":{"resourceVersion":"`+got.Metadata.ResourceVersion+`"},"spec":{"data":{"password":"`+pw2+`","user":null},"binaryData":{"cert":"AAEC"}}}`)
	_ = json.Unmarshal(r.body, &got)
	if r.status != 200 || got.Status.Version != 2 || len(got.Status.Keys) != 2 || leaks(string(r.body), pw2) {
		t.Fatalf("set a key, remove one, add a binary one: want 200 at version 2 with 2 keys and no value in the answer; got %d %s", r.status, r.body)
	}
	v := reveal()
	if v.Spec.Data["password"] != pw2 || v.Spec.Data["user"] != "" || v.Spec.BinaryData["cert"] != "AAEC" {
		t.Errorf("want password changed, user removed, cert added; got %d text and %d binary keys", len(v.Spec.Data), len(v.Spec.BinaryData))
	}

	if r := patch(adminSecret, `{"metadata":{"resourceVersion":"1"},"spec":{"data":{"password":"x"}}}`); r.status != http.StatusConflict {
		t.Errorf("a stale resourceVersion: want 409; got %d %s", r.status, r.body)
	}
	if r := patch(adminSecret, `{"spec":{"data":{"password":7,"ok":"`+pw+`"}}}`); r.status != http.StatusUnprocessableEntity || !hasLocation(r.problem, "body.spec.data[password]") || leaks(string(r.body), pw) {
		t.Errorf("a value that is not a string: want 422 at body.spec.data[password], quoting no value; got %d %s", r.status, r.body)
	}
	if r := patch(adminSecret, `{"spec":{"binaryData":{"../k":"`+pw+`"}}}`); r.status != http.StatusUnprocessableEntity || leaks(string(r.body), pw) {
		t.Errorf("a bad key and bad base64: want 422 quoting no value; got %d %s", r.status, r.body)
	}
	if r := patch(e.token("vic", api.RoleViewer), `{"spec":{"data":{"password":"x"}}}`); r.status != http.StatusForbidden {
		t.Errorf("a viewer's patch: want 403; got %d", r.status)
	}
	if v := reveal(); v.Spec.Data["password"] != pw2 || v.Status.Version != 2 {
		t.Errorf("refused patches changed the secret: version %d", v.Status.Version)
	}

	rows, err := e.store.AuditQuery(ctx, pgstore.AuditFilter{Kind: "Secret", Name: "db", Verb: pgstore.VerbPatch})
	if err != nil {
		t.Fatal(err)
	}
	named := false
	for _, row := range rows {
		js, _ := json.Marshal(row)
		for _, val := range []string{pw, pw2, user} {
			if leaks(string(js), val) {
				t.Errorf("an audit row of a patch quotes a value: %s", js)
			}
		}
		named = named || (row.Result == "ok" && strings.Contains(row.Detail, "set [cert password], removed [user]"))
	}
	if !named {
		t.Errorf("want the values patch's audit row to name the keys set and removed; got %+v", rows)
	}
}
