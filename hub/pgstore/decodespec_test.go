package pgstore_test

import (
	"reflect"
	"testing"

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
