package protocol

import (
	"hash/maphash"
	"reflect"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// TestWorkloadStatusEqualSeesEveryField: changing any one field of a
// status (or of its conditions, examples and problems) makes it unequal,
// so a field added later cannot be forgotten by Equal unnoticed.
func TestWorkloadStatusEqualSeesEveryField(t *testing.T) {
	at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	code := 1
	base := func() WorkloadStatus {
		return WorkloadStatus{Workload: "w", States: map[string]int32{StateReady: 1},
			Conditions: []api.Condition{{Type: "Progressing", Status: "True", LastTransitionTime: &at}},
			Examples:   []ReplicaSummary{{Replica: "w-1", ExitCode: &code, StartedAt: at, NextStartAt: at}},
			Problems:   []ReplicaProblem{{Reason: ProblemReplicaFailed}}}
	}
	if !base().Equal(base()) {
		t.Fatal("a status is not equal to its copy")
	}
	same := base()
	same.States, same.Conditions = map[string]int32{StateReady: 1}, nil
	other := base()
	other.Conditions = []api.Condition{}
	if !same.Equal(other) || hashOf(&same) != hashOf(&other) {
		t.Error("no conditions and an empty list differ")
	}
	local := at.In(time.FixedZone("x", 3600))
	other = base()
	other.Conditions = []api.Condition{{Type: "Progressing", Status: "True", LastTransitionTime: &local}}
	if b := base(); !b.Equal(other) || hashOf(&b) != hashOf(&other) {
		t.Error("one instant in two zones differs")
	}
	two := base()
	two.States = map[string]int32{StateReady: 1, StateBackOff: 2}
	other = base()
	other.States = map[string]int32{StateBackOff: 2, StateReady: 1}
	if hashOf(&two) != hashOf(&other) {
		t.Error("one map's entries in two orders differ")
	}
	other.States = map[string]int32{StateBackOff: 1, StateReady: 2}
	if hashOf(&two) == hashOf(&other) {
		t.Error("two maps with their counts swapped hash alike")
	}

	// Every field of the status, then of each nested element.
	check := func(name string, change func(s *WorkloadStatus) reflect.Value) {
		t.Helper()
		typ := change(&WorkloadStatus{}).Type()
		for i := range typ.NumField() {
			s := base()
			mutate(change(&s).Field(i))
			b := base()
			if b.Equal(s) {
				t.Errorf("%s.%s changed, yet Equal", name, typ.Field(i).Name)
			}
			if hashOf(&b) == hashOf(&s) {
				t.Errorf("%s.%s changed, yet the same Hash", name, typ.Field(i).Name)
			}
		}
	}
	check("WorkloadStatus", func(s *WorkloadStatus) reflect.Value { return reflect.ValueOf(s).Elem() })
	check("Condition", func(s *WorkloadStatus) reflect.Value {
		if len(s.Conditions) == 0 {
			return reflect.ValueOf(&api.Condition{}).Elem()
		}
		return reflect.ValueOf(&s.Conditions[0]).Elem()
	})
	check("ReplicaSummary", func(s *WorkloadStatus) reflect.Value {
		if len(s.Examples) == 0 {
			return reflect.ValueOf(&ReplicaSummary{}).Elem()
		}
		return reflect.ValueOf(&s.Examples[0]).Elem()
	})
	check("ReplicaProblem", func(s *WorkloadStatus) reflect.Value {
		if len(s.Problems) == 0 {
			return reflect.ValueOf(&ReplicaProblem{}).Elem()
		}
		return reflect.ValueOf(&s.Problems[0]).Elem()
	})
}

// mutate changes v to another value of its type.
func mutate(v reflect.Value) {
	if t, ok := v.Interface().(time.Time); ok {
		v.Set(reflect.ValueOf(t.Add(time.Second)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
			return
		}
		n := reflect.New(v.Type().Elem())
		n.Elem().Set(v.Elem())
		mutate(n.Elem())
		v.Set(n)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for _, k := range v.MapKeys() {
			m.SetMapIndex(k, v.MapIndex(k))
		}
		m.SetMapIndex(reflect.ValueOf("other"), reflect.Zero(v.Type().Elem()))
		v.Set(m)
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
	default:
		panic("mutate: no way to change a " + v.Type().String())
	}
}

var testSeed = maphash.MakeSeed()

// hashOf is s's Hash.
func hashOf(s *WorkloadStatus) uint64 {
	var h maphash.Hash
	h.SetSeed(testSeed)
	s.Hash(&h)
	return h.Sum64()
}
