package scheduler

import (
	"testing"

	"github.com/atollhq/atoll/api"
)

const gib = 1 << 30

// TestFilters places one replica on a one-node region: each case either
// lands on the node or is left pending for exactly one reason.
func TestFilters(t *testing.T) {
	t.Parallel()
	ready := Node{Name: "n1", Ready: true, Allocatable: Resources{4000, 8 * gib}, Labels: map[string]string{"disk": "ssd", "zone": "a"}}
	with := func(f func(n *Node)) Node {
		n := ready
		n.Labels = map[string]string{"disk": "ssd", "zone": "a"}
		f(&n)
		return n
	}
	taint := func(key, value, effect string) func(n *Node) {
		return func(n *Node) { n.Taints = append(n.Taints, api.Taint{Key: key, Value: value, Effect: effect}) }
	}
	bound := func(cpu, mem int64, ports ...Port) []Binding {
		return []Binding{{Replica: "old", Workload: "other", Node: "n1", Requests: Resources{cpu, mem}, HostPorts: ports}}
	}

	tests := []struct {
		name     string
		node     Node
		bindings []Binding
		replica  Replica
		want     string // the reason, or "" for placed
	}{
		{"ready node", ready, nil, Replica{}, ""},
		{"not ready", with(func(n *Node) { n.Ready = false }), nil, Replica{}, ReasonNotReady},
		{"not ready beats cordoned", with(func(n *Node) { n.Ready = false; n.Unschedulable = true }), nil, Replica{}, ReasonNotReady},
		{"cordoned", with(func(n *Node) { n.Unschedulable = true }), nil, Replica{}, ReasonCordoned},

		{"node selector matches", ready, nil, Replica{NodeSelector: map[string]string{"disk": "ssd"}}, ""},
		{"node selector other value", ready, nil, Replica{NodeSelector: map[string]string{"disk": "hdd"}}, ReasonNodeSelector},
		{"node selector missing label", ready, nil, Replica{NodeSelector: map[string]string{"gpu": "true"}}, ReasonNodeSelector},
		{"node selector with empty value needs the label", ready, nil, Replica{NodeSelector: map[string]string{"gpu": ""}}, ReasonNodeSelector},
		{"node selector beats taint", with(taint("k", "v", "NoSchedule")), nil, Replica{NodeSelector: map[string]string{"disk": "hdd"}}, ReasonNodeSelector},

		{"affinity In matches", ready, nil, Replica{Required: &api.LabelSelector{MatchExpressions: []api.Requirement{{Key: "zone", Operator: "In", Values: []string{"a", "b"}}}}}, ""},
		{"affinity In mismatch", ready, nil, Replica{Required: &api.LabelSelector{MatchExpressions: []api.Requirement{{Key: "zone", Operator: "In", Values: []string{"b"}}}}}, ReasonAffinity},
		{"affinity NotIn", ready, nil, Replica{Required: &api.LabelSelector{MatchExpressions: []api.Requirement{{Key: "disk", Operator: "NotIn", Values: []string{"ssd"}}}}}, ReasonAffinity},
		{"affinity DoesNotExist", ready, nil, Replica{Required: &api.LabelSelector{MatchExpressions: []api.Requirement{{Key: "disk", Operator: "DoesNotExist"}}}}, ReasonAffinity},
		{"affinity matchLabels", ready, nil, Replica{Required: &api.LabelSelector{MatchLabels: map[string]string{"disk": "hdd"}}}, ReasonAffinity},
		{"empty affinity matches all", ready, nil, Replica{Required: &api.LabelSelector{}}, ""},

		{"NoSchedule taint", with(taint("dedicated", "batch", "NoSchedule")), nil, Replica{}, ReasonTainted},
		{"NoExecute taint", with(taint("dedicated", "batch", "NoExecute")), nil, Replica{}, ReasonTainted},
		{"PreferNoSchedule does not filter", with(taint("dedicated", "batch", "PreferNoSchedule")), nil, Replica{}, ""},
		{"tolerated taint", with(taint("dedicated", "batch", "NoSchedule")), nil,
			Replica{Tolerations: []api.Toleration{{Key: "dedicated", Value: "batch"}}}, ""},
		{"one of two taints untolerated", with(func(n *Node) {
			taint("dedicated", "batch", "NoSchedule")(n)
			taint("gpu", "", "NoExecute")(n)
		}), nil, Replica{Tolerations: []api.Toleration{{Key: "dedicated", Operator: "Exists"}}}, ReasonTainted},
		{"taint beats host port", with(taint("k", "", "NoSchedule")), bound(0, 0, Port{80, "TCP"}), Replica{HostPorts: []Port{{80, "TCP"}}}, ReasonTainted},

		{"host port free", ready, bound(0, 0, Port{80, "TCP"}), Replica{HostPorts: []Port{{81, "TCP"}}}, ""},
		{"host port taken", ready, bound(0, 0, Port{80, "TCP"}), Replica{HostPorts: []Port{{80, "TCP"}}}, ReasonHostPort},
		{"host port TCP is the default protocol", ready, bound(0, 0, Port{80, ""}), Replica{HostPorts: []Port{{80, "TCP"}}}, ReasonHostPort},
		{"host port other protocol", ready, bound(0, 0, Port{80, "TCP"}), Replica{HostPorts: []Port{{80, "UDP"}}}, ""},
		{"host port 0 is none", ready, bound(0, 0, Port{0, "TCP"}), Replica{HostPorts: []Port{{0, "TCP"}}}, ""},
		{"host port beats resources", ready, bound(4000, 0, Port{80, "TCP"}), Replica{Requests: Resources{MilliCPU: 1}, HostPorts: []Port{{80, "TCP"}}}, ReasonHostPort},

		{"fits exactly", ready, bound(1000, 2*gib), Replica{Requests: Resources{3000, 6 * gib}}, ""},
		{"insufficient cpu", ready, bound(1000, 0), Replica{Requests: Resources{MilliCPU: 3001}}, ReasonInsufficientCPU},
		{"insufficient memory", ready, bound(0, 2*gib), Replica{Requests: Resources{Memory: 6*gib + 1}}, ReasonInsufficientMemory},
		{"cpu beats memory", ready, nil, Replica{Requests: Resources{5000, 9 * gib}}, ReasonInsufficientCPU},
		{"zero request fits a full node", ready, bound(4000, 8*gib), Replica{}, ""},
		{"zero request fits an over-committed node", ready, bound(5000, 9*gib), Replica{}, ""},
		{"no allocatable", with(func(n *Node) { n.Allocatable = Resources{} }), nil, Replica{Requests: Resources{MilliCPU: 1}}, ReasonInsufficientCPU},
		{"negative request counts as zero", ready, bound(4000, 8*gib), Replica{Requests: Resources{-1, -1}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.replica.ID = "r1"
			s := New(Snapshot{Nodes: []Node{tc.node}, Bindings: tc.bindings})
			plan := s.Schedule(Request{Workload: "web", Replicas: []Replica{tc.replica}})
			if tc.want == "" {
				if len(plan.Bindings) != 1 || plan.Bindings[0].Node != "n1" {
					t.Fatalf("want the replica placed on n1, got %+v", plan)
				}
				return
			}
			want := "0/1 nodes: 1 " + tc.want
			if len(plan.Pending) != 1 || plan.Pending[0].Reason != want {
				t.Fatalf("want pending %q, got %+v", want, plan)
			}
			if got := plan.Pending[0].Counts; len(got) != 1 || got[tc.want] != 1 {
				t.Fatalf("want counts {%s: 1}, got %v", tc.want, got)
			}
		})
	}
}

// TestTolerates is Kubernetes' ToleratesTaint.
func TestTolerates(t *testing.T) {
	t.Parallel()
	taint := api.Taint{Key: "dedicated", Value: "batch", Effect: "NoSchedule"}
	tests := []struct {
		name string
		tol  api.Toleration
		want bool
	}{
		{"equal key and value", api.Toleration{Key: "dedicated", Value: "batch"}, true},
		{"explicit Equal", api.Toleration{Key: "dedicated", Operator: "Equal", Value: "batch"}, true},
		{"other value", api.Toleration{Key: "dedicated", Value: "web"}, false},
		{"Equal with no value", api.Toleration{Key: "dedicated"}, false},
		{"Exists with no value", api.Toleration{Key: "dedicated", Operator: "Exists"}, true},
		{"Exists ignores a value", api.Toleration{Key: "dedicated", Operator: "Exists", Value: "web"}, true},
		{"Exists other key", api.Toleration{Key: "gpu", Operator: "Exists"}, false},
		{"empty key with Exists tolerates everything", api.Toleration{Operator: "Exists"}, true},
		{"same effect", api.Toleration{Key: "dedicated", Operator: "Exists", Effect: "NoSchedule"}, true},
		{"other effect", api.Toleration{Key: "dedicated", Operator: "Exists", Effect: "NoExecute"}, false},
		{"empty key and other effect", api.Toleration{Operator: "Exists", Effect: "NoExecute"}, false},
		{"unknown operator", api.Toleration{Key: "dedicated", Operator: "Gt", Value: "batch"}, false},
	}
	for _, tc := range tests {
		if got := tc.tol.Tolerates(taint); got != tc.want {
			t.Errorf("%s: tolerates(%+v, %+v) = %v, want %v", tc.name, tc.tol, taint, got, tc.want)
		}
	}
}

// TestReasonCounts charges each node to its first failing filter, across
// nodes failing for different reasons.
func TestReasonCounts(t *testing.T) {
	t.Parallel()
	nodes := []Node{
		{Name: "a", Ready: true, Allocatable: Resources{1000, 1 * gib}},
		{Name: "b", Ready: true, Allocatable: Resources{1000, 1 * gib}},
		{Name: "c", Ready: true, Allocatable: Resources{8000, 1 * gib}},
		{Name: "d", Ready: true, Allocatable: Resources{8000, 8 * gib}, Taints: []api.Taint{{Key: "k", Effect: "NoSchedule"}}},
		{Name: "e", Ready: true, Allocatable: Resources{8000, 8 * gib}, Taints: []api.Taint{{Key: "k", Effect: "NoExecute"}}},
	}
	s := New(Snapshot{Nodes: nodes})
	plan := s.Schedule(Request{Workload: "web", Replicas: []Replica{{ID: "r", Requests: Resources{2000, 2 * gib}}}})
	want := "0/5 nodes: 2 insufficient cpu, 2 tainted (no toleration), 1 insufficient memory"
	if len(plan.Pending) != 1 || plan.Pending[0].Reason != want {
		t.Fatalf("want pending %q, got %+v", want, plan)
	}
}
