package pgstore_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// TestDecodeSpecIsDecodesSpec: DecodeSpec gives what Decode puts in a
// typed object's Spec, for a full spec and for none.
func TestDecodeSpecIsDecodesSpec(t *testing.T) {
	for _, spec := range []string{
		`{"replicas":3,"template":{"driver":"sim","env":[{"name":"A","valueFrom":{"secretKeyRef":{"name":"s","key":"k"}}}]}}`,
		``,
	} {
		rec := &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: "w"}, Spec: []byte(spec)}
		var whole api.Workload
		if err := rec.Decode(&whole); err != nil {
			t.Fatal(err)
		}
		var alone api.WorkloadSpec
		if err := rec.DecodeSpec(&alone); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(alone, whole.Spec) {
			t.Errorf("spec %q: DecodeSpec gave %+v, Decode's Spec %+v", spec, alone, whole.Spec)
		}
		if spec != "" && alone.Replicas != 3 {
			t.Errorf("spec %q: want 3 replicas decoded; got %+v", spec, alone)
		}
	}
}

// TestDecodeObjectIsDecode: DecodeObject answers what Decode does, as the
// API renders it, with and without status, labels and timestamps, and
// for a kind whose spec is inline.
func TestDecodeObjectIsDecode(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 123456000, time.UTC)
	full := api.ObjectMeta{Name: "w", UID: "0b5e8c5e-8f3a-4c1e-9b7a-2d7f1c9e4a10", ResourceVersion: "1099511627776",
		Generation: 2, Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"a": "b"},
		CreationTimestamp: &now, Finalizers: []string{"f"}}
	for _, c := range []struct {
		rec *pgstore.Record
		obj func() api.Object
	}{
		{&pgstore.Record{Kind: "Workload", Meta: full, Spec: []byte(`{"replicas":3,"template":{"driver":"sim"}}`),
			Status: []byte(`{"readyReplicas":2}`)}, func() api.Object { return &api.Workload{} }},
		{&pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: "w", Labels: map[string]string{}}, Spec: []byte(`{"replicas":1}`),
			Status: []byte(`{}`)}, func() api.Object { return &api.Workload{} }},
		{&pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: "w"}}, func() api.Object { return &api.Workload{} }},
		{&pgstore.Record{Kind: "Event", Meta: full, Spec: []byte(`{"reason":"R","message":"m"}`)}, func() api.Object { return &api.Event{} }},
	} {
		want, got := c.obj(), c.obj()
		if err := c.rec.Decode(want); err != nil {
			t.Fatal(err)
		}
		if err := c.rec.DecodeObject(got); err != nil {
			t.Fatal(err)
		}
		w, _ := json.Marshal(want)
		g, _ := json.Marshal(got)
		if string(w) != string(g) {
			t.Errorf("%s %s: DecodeObject renders\n%s\nDecode\n%s", c.rec.Kind, c.rec.Spec, g, w)
		}
		if got.GetMetadata().Name != "w" || got.GetTypeMeta().Kind != c.rec.Kind {
			t.Errorf("%s: want the name and kind set; got %+v %+v", c.rec.Kind, got.GetMetadata(), got.GetTypeMeta())
		}
	}
}
