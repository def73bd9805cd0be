package failover

import (
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/placement"
)

func TestMoveReason(t *testing.T) {
	t.Parallel()
	drain := "tainted: " + api.DrainTaintKey + ":NoExecute (no toleration)"
	drill := "tainted: " + api.DrillTaintKey + "=d1:NoExecute (no toleration)"
	other := "tainted: gpu=yes:NoExecute (no toleration)"
	for _, c := range []struct {
		name      string
		lost      map[string]int32
		filtered  map[string]string
		evicted   map[string]string
		want, typ string
	}{
		{"a drain", map[string]int32{"a": 2}, map[string]string{"a": drain}, map[string]string{"a": placement.ReasonTainted}, MoveDrained, api.EventNormal},
		{"two drains", map[string]int32{"a": 2, "b": 1}, map[string]string{"a": drain, "b": drain}, map[string]string{"a": placement.ReasonTainted, "b": placement.ReasonTainted}, MoveDrained, api.EventNormal},
		{"an evacuate drill", map[string]int32{"a": 2}, map[string]string{"a": drill}, map[string]string{"a": placement.ReasonTainted}, MoveEvacuated, api.EventNormal},
		{"a lost cluster", map[string]int32{"a": 2}, map[string]string{"a": "Unreachable"}, map[string]string{"a": api.HealthUnreachable}, MoveFailedOver, api.EventWarning},
		{"a drain and a lost cluster", map[string]int32{"a": 2, "b": 1}, map[string]string{"a": drain, "b": "Unreachable"}, map[string]string{"a": placement.ReasonTainted, "b": api.HealthUnreachable}, MoveFailedOver, api.EventWarning},
		{"a drain and a drill", map[string]int32{"a": 2, "b": 1}, map[string]string{"a": drain, "b": drill}, map[string]string{"a": placement.ReasonTainted, "b": placement.ReasonTainted}, MoveFailedOver, api.EventWarning},
		{"another NoExecute taint", map[string]int32{"a": 2}, map[string]string{"a": other}, map[string]string{"a": placement.ReasonTainted}, MoveFailedOver, api.EventWarning},
		{"a key that starts like the drain's", map[string]int32{"a": 2}, map[string]string{"a": "tainted: " + api.DrainTaintKey + "-not:NoExecute (no toleration)"}, map[string]string{"a": placement.ReasonTainted}, MoveFailedOver, api.EventWarning},
	} {
		got, typ := MoveReason(c.lost, placement.Decision{Filtered: c.filtered, Evicted: c.evicted})
		if got != c.want || typ != c.typ {
			t.Errorf("%s: MoveReason = %s %s, want %s %s", c.name, got, typ, c.want, c.typ)
		}
	}
}
