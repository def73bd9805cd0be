package describe

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// now is the fixed clock every case is described at.
var now = time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time {
	t := now.Add(d)
	return &t
}

func ptr[T any](v T) *T { return &v }

func brokenWorkload() *api.Workload {
	code := 127
	msg := `exec: "nope": executable file not found in $PATH`
	return &api.Workload{
		Metadata: api.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}, Generation: 3, CreationTimestamp: at(-time.Hour),
			Annotations: map[string]string{api.AnnotationRebalanceRequestedAt: "2026-12-05T05:58:00Z"}},
		Spec: api.WorkloadSpec{
			Replicas: 4,
			Template: api.ReplicaTemplate{
				Driver: "process", Command: "nope", Args: []string{"--port", "8080", "hello world"},
				Env:       []api.EnvVar{{Name: "GREETING", Value: "hi"}},
				Resources: api.Resources{CPU: "500m", Memory: "256Mi"},
				Ports:     []api.Port{{Name: "http"}},
				Readiness: &api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz"}, PeriodSeconds: 5},
				Liveness:  &api.Probe{Exec: &api.ExecProbe{Command: []string{"check", "--fast"}}, FailureThreshold: 1},
			},
			Placement: &api.PlacementPolicy{
				ClusterSelector: &api.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}},
				ExcludeClusters: []string{"ap-south"},
				Spread:          []api.SpreadConstraint{{TopologyKey: "region", MinGroups: 2}},
			},
			Failover:         &api.FailoverPolicy{Mode: "exclusive", Purge: "graceful", FailbackRate: 2},
			DisruptionBudget: &api.DisruptionBudget{MinAvailable: api.IntOrPercentOf("50%")},
			Update:           &api.UpdateStrategy{MaxSurge: api.IntOrPercentOf("1"), ProgressDeadline: "5m0s"},
		},
		Status: api.WorkloadStatus{
			ObservedGeneration: 2, ReadyReplicas: 0,
			Conditions: []api.Condition{
				{Type: "Placed", Status: "True", Reason: "Placed", Message: "4 replicas placed", LastTransitionTime: at(-10 * time.Minute)},
				{Type: "Available", Status: "False", Reason: "ReplicasNotReady", Message: "0/4 ready", LastTransitionTime: at(-90 * time.Second)},
			},
			Placement: &api.PlacementStatus{
				Epoch: 12, Clusters: map[string]int32{"us-east": 2, "eu-west": 2}, Unplaced: 1, Reason: "ap-south is excluded",
				Filtered:       map[string]string{"ap-south": "excluded by spec.placement.excludeClusters"},
				Explanation:    []string{"2 clusters match tier=prod", "divided 2/2 by weight"},
				FailedOverFrom: map[string]int32{"us-west": 1}, FailingBack: map[string]int32{"us-west": 1},
				Rebalanced: "2026-12-05T05:00:00Z",
			},
			Clusters: []api.ClusterReplicas{{
				Cluster: "eu-west", Region: "eu", Desired: 2, Restarts: 8, States: map[string]int32{"BackOff": 2},
				Problems: []api.ReplicaProblem{{Reason: "ReplicaFailed", Replicas: 2, Replica: "web-a", Node: "n1", Message: msg}},
				Examples: []api.ReplicaInfo{{Replica: "web-a", Node: "n1", State: "BackOff", Restarts: 4, ExitCode: &code, Message: msg}},
			}},
		},
	}
}

func healthyCluster() *api.Cluster {
	return &api.Cluster{
		Metadata: api.ObjectMeta{Name: "us-east", Labels: map[string]string{api.LabelRegion: "us", api.LabelZone: "us-east-1a"}, CreationTimestamp: at(-48 * time.Hour)},
		Spec:     api.ClusterSpec{Unschedulable: true, Taints: []api.Taint{{Key: "dedicated", Value: "gpu", Effect: "NoSchedule", TimeAdded: at(-5 * time.Minute)}}},
		Status: api.ClusterStatus{
			Health: api.HealthReady, LastHeartbeatTime: at(-2 * time.Second), MemberVersion: "v0.9.0", ProtocolVersion: 4, Identity: "UABC",
			RegisteredAt: at(-48 * time.Hour),
			Capacity: &api.ClusterCapacity{NodesReady: 2, NodesTotal: 3, CPUAllocatable: 4000, CPUAllocated: 1500,
				MemoryAllocatable: 16 << 30, MemoryAllocated: 3 << 30, Replicas: 8, ReplicasReady: 6},
			Conditions: []api.Condition{{Type: "Ready", Status: "True", Reason: "Heartbeating", Message: "heartbeats arrive", LastTransitionTime: at(-time.Hour)}},
		},
	}
}

func finishedDrill() *api.Drill {
	start := now.Add(-10 * time.Minute)
	return &api.Drill{
		Metadata: api.ObjectMeta{Name: "outage-us", CreationTimestamp: at(-11 * time.Minute)},
		Spec: api.DrillSpec{Kind: api.DrillOutage, Target: api.DrillTarget{Region: "us"}, Duration: "90s",
			SLO: &api.DrillSLO{MaxRTO: "20s", MaxUnavailableReplicas: ptr(int32(4))}},
		Status: api.DrillStatus{
			Phase: api.DrillCompleted, Verdict: api.DrillVerdictFailed, Targets: []string{"us-east"},
			StartedAt: &start, EndedAt: at(-8*time.Minute - 30*time.Second), FinishedAt: at(-7 * time.Minute),
			Plan: &api.DrillPlan{Targets: []string{"us-east"}, Absorbed: true, AffectedWorkloads: 2, AffectedReplicas: 6,
				Warnings: []api.DrillWarning{{Type: api.WarnAlreadyUnavailable, Workload: "broken", Message: "broken has 0/2 ready before the fault"}},
				Notes:    []string{"ledger is exclusive: it stops before it starts elsewhere"}},
			Report: &api.DrillReport{
				DetectionSeconds: ptr(5.2), FirstReplacementSeconds: ptr(7.0), RTOSeconds: nil, PeakUnavailableReplicas: 6,
				FailbackSeconds: ptr(31.5), Failback: "complete", AffectedWorkloads: 2, AffectedReplicas: 6,
				Workloads: []api.DrillWorkloadReport{
					{Workload: "broken", OnTargets: 2, UnavailableBefore: true, BlockedBy: []api.DrillBlocker{{Cluster: "eu-west", Reason: api.BlockedNotReady, Message: "0/2 ready"}}},
					{Workload: "web", OnTargets: 4, RTOSeconds: ptr(12.25)},
				},
				SLOs: []api.SLOResult{{Name: "maxRTO", Target: "20s", Actual: "not recovered", Passed: false},
					{Name: "maxUnavailableReplicas", Target: "4", Actual: "6", Passed: false}},
				Missed: []string{"maxRTO not recovered (target 20s)", "maxUnavailableReplicas 6 (target 4)"},
				Notes:  []string{"broken was unavailable before the fault"},
			},
			Timeline: []api.DrillEvent{
				{At: start.Add(-2 * time.Second), Type: api.DrillEventCreated, Message: "created"},
				{At: start.Add(-20 * time.Millisecond), Type: api.DrillEventAbortRequested, Message: "just before"},
				{At: start, Type: api.DrillEventStarted, Message: "us-east went dark"},
				{At: start.Add(5200 * time.Millisecond), Type: api.DrillEventDetected, Message: "us-east Unreachable"},
			},
		},
	}
}

func describeJSON(t *testing.T, kind string, obj any) string {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := Object(&b, kind, raw, now); err != nil {
		t.Fatalf("describe %s: %v", kind, err)
	}
	return b.String()
}

// line is a pattern matching one whole line whose words are these,
// however many spaces align them: "Name: web" matches "Name:    web".
func line(words string) *regexp.Regexp {
	parts := strings.Fields(words)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`(?m)^\s*` + strings.Join(parts, `\s+`) + `\s*$`)
}

func TestDescribe(t *testing.T) {
	expired := &api.Token{Metadata: api.ObjectMeta{Name: "old"}, Spec: api.TokenSpec{Role: api.RoleViewer, ExpiresAt: at(-48 * time.Hour)},
		Status: api.TokenStatus{Prefix: "atoll_zz"}}
	unreachable := healthyCluster()
	unreachable.Spec = api.ClusterSpec{Taints: []api.Taint{{Key: api.DrainTaintKey, Effect: "NoExecute"}}}
	unreachable.Status.Health, unreachable.Status.LastHeartbeatTime = api.HealthUnreachable, at(-20*time.Second)

	for _, c := range []struct {
		name, kind string
		obj        any
		want       []string // whole lines, spaces aside
		wantIn     []string // substrings
		not        []string // substrings that must not appear
	}{{
		name: "workload spec in words", kind: "Workload", obj: brokenWorkload(),
		want: []string{
			"Name: web", "Kind: Workload", "Labels: app=web",
			"Created: 2026-12-05T05:00:00Z (60m ago)",
			"Desired: 4 in total, divided over the clusters; 0 ready, 0 available, 0 updated",
			"Generation: 3 (rolling out: some clusters still run generation 2)",
			"Driver: process (a real OS process on a node)",
			`Command: nope --port 8080 "hello world"`,
			"Environment: GREETING=hi",
			"Resources: 500m CPU, 256 MiB per replica",
			"Ports: http node-allocated (PORT)/TCP",
			"Readiness probe: HTTP GET /healthz on the replica's PORT, every 5s, timeout 1s, failing after 3 failures",
			"Liveness probe: exec check --fast, every 10s, timeout 1s, failing after 1 failure",
			"Clusters: only clusters labelled tier=prod; never ap-south",
			"Spread: over the values of region: at least 2",
			"Replica mode: Divided: the replicas are split over the clusters (default)",
			"Mode: exclusive: never runs in two clusters at once (fenced: stopped, then started elsewhere)",
			"Grace period: 5s (default): Unreachable that long, a cluster's replicas are placed elsewhere",
			"Purge: graceful: a lost cluster's replicas are kept until their replacements are ready",
			"Stabilization: 30s (default): how long a returned cluster must stay Ready before replicas move back to it",
			"Failback rate: 2 replicas a minute: how fast replicas move back (failback and rebalance)",
			"Failback: auto (default): back to a returned cluster after the stabilization window, make-before-break",
			"Disruption budget: minAvailable 50%: planned disruptions (drains, evacuate drills) leave at least 2 of 4 replicas",
			"Rollout: rolling in each cluster: maxSurge 1, maxUnavailable 25% (default), progress deadline 5m",
		},
	}, {
		name: "workload status in words", kind: "Workload", obj: brokenWorkload(),
		want: []string{
			"Health: Unavailable: ap-south is excluded",
			"TYPE STATUS REASON AGE MESSAGE",
			"Placed True Placed 10m 4 replicas placed",
			"Available False ReplicasNotReady 90s 0/4 ready",
			"Clusters: eu-west: 2, us-east: 2",
			"Unplaced: 1 replica: ap-south is excluded",
			"Failed over: 1 replica off us-west, not moved back yet",
			"Failing back: 1 replica to us-west, not ready there yet (the replicas they replace run until then)",
			"Rebalance: asked for at 2026-12-05T05:58:00Z (2m ago), not carried out yet; the last one answered was asked for at 2026-12-05T05:00:00Z (60m ago)",
			"ap-south: excluded by spec.placement.excludeClusters",
			"2 clusters match tier=prod",
			// cli/replicas' part follows.
			"eu-west (region eu): 0/2 ready; 2 BackOff; 8 restarts",
		},
		wantIn: []string{"127 (command not found)", "\nPlacement:\n", "\nReplicas:\n"},
		not:    []string{"spec:", "status:", "readyReplicas", "{"},
	}, {
		name: "a container's image", kind: "Workload",
		obj: &api.Workload{Metadata: api.ObjectMeta{Name: "box"}, Spec: api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "oci",
			Image: "registry.example/app:1.2", User: "1000", ReadOnlyRoot: true,
			ImagePullSecret: &api.KeyRef{Name: "regcred", Key: "config.json"},
			Ports:           []api.Port{{Name: "http", ContainerPort: 8080}, {Name: "admin", HostPort: 9001, ContainerPort: 9000}}}}},
		want: []string{"Driver: oci (a container from an OCI image, run with runc)", "Image: registry.example/app:1.2", "User: 1000",
			"Root filesystem: read-only (/tmp writable)", "Pull credentials: secret regcred, key config.json",
			"Ports: http node-allocated (PORT)/TCP -> container 8080, admin 9001/TCP -> container 9000",
			"Network: its own (loopback only); the node forwards each host port to the container port"},
	}, {
		name: "a container's warm standby", kind: "Workload",
		obj: &api.Workload{Metadata: api.ObjectMeta{Name: "box"}, Spec: api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "oci", Image: "r.example/app:1"}},
			Status: api.WorkloadStatus{Images: []api.ClusterImage{
				{Cluster: "eu", Image: "r.example/app:1@sha256:ab", Wanted: 2, Present: 2},
				{Cluster: "us", Image: "r.example/app:1@sha256:ab", Wanted: 2, Present: 0, Pulling: 1, Failed: 1, Message: "n1: MANIFEST_UNKNOWN"},
			}}},
		wantIn: []string{"Warm standby:", "warm: 2 of 2 node(s) hold r.example/app:1@sha256:ab",
			"cold: 0 of 2 node(s) hold r.example/app:1@sha256:ab, 1 pulling, 1 failed: n1: MANIFEST_UNKNOWN"},
	}, {
		name: "workload with default policies", kind: "Workload",
		obj: &api.Workload{Metadata: api.ObjectMeta{Name: "idle"}, Spec: api.WorkloadSpec{Replicas: 2, Template: api.ReplicaTemplate{Driver: "sim", Sim: &api.SimSpec{StartLatency: "200ms", FailureRate: 0.1}}}},
		want: []string{
			"Health: Progressing: waiting for placement",
			"Resources: none requested (scheduled anywhere, not limited)",
			"Simulation: ready after 200ms; 10% of starts fail",
			"Clusters: any Ready cluster that fits",
			"Mode: stateless (default): replacements start elsewhere while the lost cluster's replicas may still run",
			"Rebalance: manual (default): only when asked (atoll rebalance workload)",
			"Failback rate: no limit (default): how fast replicas move back (failback and rebalance)",
			"Disruption budget: none",
			"not placed yet: the hub's leader places a workload within seconds of a change",
			"no cluster reports this workload yet",
		},
		not: []string{"Command:", "Failed over:"},
	}, {
		name: "duplicated workload", kind: "Workload",
		obj: &api.Workload{Metadata: api.ObjectMeta{Name: "dup"}, Spec: api.WorkloadSpec{Replicas: 2, Template: api.ReplicaTemplate{Driver: "sim"},
			Placement: &api.PlacementPolicy{ReplicaMode: "Duplicated", Clusters: []string{"us-east", "eu-west"}, MaxReplicasPerCluster: 3,
				Preferences: []api.ClusterPreference{{Selector: api.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}}}}},
			Status: api.WorkloadStatus{ReadyReplicas: 4, Placement: &api.PlacementStatus{Clusters: map[string]int32{"us-east": 2, "eu-west": 2}}}},
		want: []string{
			"Desired: 2 in each selected cluster (4 in all); 4 ready, 0 available, 0 updated",
			"Clusters: only clusters named us-east, eu-west",
			"Preferred: clusters labelled tier=gold (filled first, overflow to the next)",
			"Replica mode: Duplicated: 2 replicas in every selected cluster",
			"Per cluster: at most 3 replicas",
		},
	}, {
		name: "cluster in human units", kind: "Cluster", obj: healthyCluster(),
		want: []string{
			"Region: us", "Zone: us-east-1a",
			"Health: Ready: last heartbeat 2 s ago",
			"Scheduling: cordoned: nothing new is placed here; what runs stays (atoll cluster uncordon ends it)",
			"dedicated=gpu:NoSchedule NoSchedule: nothing new placed 5m",
			"Nodes: 2/3 ready", "Replicas: 6/8 ready",
			"CPU: 1.5 of 4 cores allocated (38%)",
			"Memory: 3 GiB of 16 GiB allocated (19%)",
			"Version: v0.9.0, protocol 4",
			"Ready True Heartbeating 60m heartbeats arrive",
		},
		not: []string{"last known", "cpuAllocatableMillis", "Millis"},
	}, {
		name: "unreachable cluster is last known", kind: "Cluster", obj: unreachable,
		want: []string{
			"Health: Unreachable: last heartbeat 20 s ago",
			"Last known: the cluster is Unreachable: its capacity, nodes and replicas below are last known, 20 s ago",
			"Scheduling: draining: nothing new is placed here and its replicas move elsewhere (atoll cluster uncordon ends it)",
			"Nodes: 2/3 ready (last known, 20 s ago)",
			"atoll.dev/drain:NoExecute NoExecute: replicas moved off -",
			"Memory: 3 GiB of 16 GiB allocated (19%) (last known, 20 s ago)",
		},
	}, {
		name: "drill plan, report and timeline", kind: "Drill", obj: finishedDrill(),
		want: []string{
			"Fault: outage of region us (us-east): the targets go dark, as if their region died",
			"Duration: 1m30s, then 3m at most to fail back",
			"Objectives: every affected replica ready elsewhere within 20s; at most 4 replicas unavailable at any moment; no exclusive workload ready in two clusters at once",
			"Phase: Completed: ran to its end",
			"Verdict: Failed: missed maxRTO not recovered (target 20s), maxUnavailableReplicas 6 (target 4)",
			"Warning: AlreadyUnavailable: broken has 0/2 ready before the fault",
			"Note: ledger is exclusive: it stops before it starts elsewhere",
			"Detection: 5.200s", "First replacement: 7.000s", "RTO: not reached",
			"Failback: 31.500s (complete)",
			"broken 2 not reached (unavailable before the fault: not counted) NotReady (eu-west: 0/2 ready)",
			"web 4 12.250s -",
			"maxUnavailableReplicas 4 6 MISSED",
			"-2.0s Created created", "+0.0s AbortRequested just before", "+0.0s Started us-east went dark", "+5.2s Detected us-east Unreachable",
		},
		not: []string{"Replicas now:"},
	}, {
		name: "pending drill", kind: "Drill",
		obj: &api.Drill{Metadata: api.ObjectMeta{Name: "evac"}, Spec: api.DrillSpec{Kind: api.DrillEvacuate, Target: api.DrillTarget{Cluster: "eu-west"}}},
		want: []string{
			"Fault: evacuate of cluster eu-west: the targets are tainted NoExecute and drained",
			"Duration: 1m, then 3m at most to fail back",
			"Objectives: no exclusive workload ready in two clusters at once",
			"Phase: Pending: waiting for the leader hub to start it",
		},
		not: []string{"Verdict:", "Report:"},
	}, {
		name: "api token never shows its secret", kind: "Token",
		obj: &api.Token{Metadata: api.ObjectMeta{Name: "ci"}, Spec: api.TokenSpec{Role: api.RoleOperator, Description: "the CI's", ExpiresAt: at(72 * time.Hour)},
			Status: api.TokenStatus{Prefix: "atoll_ab", Secret: "atoll_abcdefSECRET"}},
		want: []string{
			"Type: api: a bearer token for the API and the console",
			"Role: operator: reads, writes workloads, cordons and drains clusters, runs drills",
			"Description: the CI's",
			"Expires: 2026-12-08T06:00:00Z (in 3d)",
		},
		wantIn: []string{"atoll_ab… (the first characters only"},
		not:    []string{"SECRET"},
	}, {
		name: "join token uses", kind: "Token",
		obj:  &api.Token{Metadata: api.ObjectMeta{Name: "join-eu"}, Spec: api.TokenSpec{Type: api.TokenJoin, Region: "eu", Uses: 5}, Status: api.TokenStatus{Used: 2}},
		want: []string{"Type: join: registers new members, nothing else", "Region: eu", "Uses: 2 registrations made, of 5 allowed", "Expires: never"},
	}, {
		name: "data versions per cluster", kind: "Workload",
		obj: &api.Workload{Metadata: api.ObjectMeta{Name: "app", Generation: 2},
			Spec:   api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Annotations: map[string]string{api.AnnotationData: "Secret/db=40"}}},
			Status: api.WorkloadStatus{Clusters: []api.ClusterReplicas{{Cluster: "eu", Data: "Secret/db=40"}, {Cluster: "us", Data: "Secret/db=31"}}}},
		want: []string{"Template pins: Secret/db=40", "eu: Secret/db=40", "us: Secret/db=31 (not the template's: rolling, or an older revision of the rollout)"},
	}, {
		name: "expired token", kind: "Token", obj: expired,
		want: []string{"Expires: expired: 2026-12-03T06:00:00Z (2d ago)"},
	}, {
		name: "event", kind: "Event",
		obj: &api.Event{Metadata: api.ObjectMeta{Name: "web.abc"}, InvolvedObject: api.ObjectReference{Kind: "Workload", Name: "web"},
			Type: api.EventWarning, Reason: "BackOff", Message: "restarting\nin 4s", Source: "hub/status", Cluster: "eu-west",
			EventTime: at(-5 * time.Second), Count: 8, FirstTimestamp: at(-10 * time.Minute)},
		want: []string{"Object: workload/web", "Type: Warning", "Reason: BackOff", "Message: restarting in 4s", "Cluster: eu-west",
			"Count: 8 times, first 2026-12-05T05:50:00Z (10m ago)"},
	}} {
		t.Run(c.name, func(t *testing.T) {
			got := describeJSON(t, c.kind, c.obj)
			for _, w := range c.want {
				if !line(w).MatchString(got) {
					t.Errorf("want a line %q; got:\n%s", w, got)
				}
			}
			for _, w := range c.wantIn {
				if !strings.Contains(got, w) {
					t.Errorf("want %q; got:\n%s", w, got)
				}
			}
			for _, w := range c.not {
				if strings.Contains(got, w) {
					t.Errorf("want no %q; got:\n%s", w, got)
				}
			}
		})
	}
}

// TestGeneric: a kind without a summary of its own reads as key: value
// lines in the hub's order, never as YAML or JSON.
func TestGeneric(t *testing.T) {
	raw := json.RawMessage(`{"apiVersion":"atoll.dev/v1","kind":"Service","metadata":{"name":"front","uid":"u-1","resourceVersion":"42","creationTimestamp":"2026-12-05T05:00:00Z"},
		"spec":{"workload":"web","ports":[{"name":"http","port":80},{"name":"https","port":443}],"selector":{"app":"web"},"hosts":["a","b"],"memoryBytes":268435456,"cpuAllocatableMillis":1500,"sticky":true},
		"status":{"lastSyncTime":"2026-12-05T05:59:30Z","zero":{},"none":null}}`)
	var b strings.Builder
	if err := Object(&b, "Service", raw, now); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, w := range []string{
		"Name: front", "Kind: Service", "UID: u-1", "Resource version: 42", "Created: 2026-12-05T05:00:00Z (60m ago)",
		"Spec:", "Workload: web", "Ports:", "- Name: http", "Port: 80", "- Name: https", "Selector: app=web", "Hosts: a, b",
		"Memory bytes: 256 MiB", "CPU allocatable millis: 1.5 cores", "Sticky: yes",
		"Status:", "Last sync time: 2026-12-05T05:59:30Z (30s ago)",
	} {
		if !line(w).MatchString(got) {
			t.Errorf("want a line %q; got:\n%s", w, got)
		}
	}
	if strings.Index(got, "Workload:") > strings.Index(got, "Ports:") {
		t.Errorf("want the fields in the hub's order (workload, then ports); got:\n%s", got)
	}
	for _, w := range []string{"Zero", "None", "{", "apiVersion"} {
		if strings.Contains(got, w) {
			t.Errorf("want no %q; got:\n%s", w, got)
		}
	}
	if err := Object(&b, "Service", json.RawMessage(`{"metadata":`), now); err == nil {
		t.Error("want an error for an object that is not JSON")
	}
}

func TestUnits(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{CPU(500), "500m CPU"}, {CPU(2000), "2 CPU"}, {CPU(1500), "1.5 CPU"}, {CPU(0), "0m CPU"},
		{Cores(4000), "4"}, {Cores(250), "0.25"},
		{Memory(256 << 20), "256 MiB"}, {Memory(3 << 29), "1.5 GiB"}, {Memory(512e6), "488.3 MiB"}, {Memory(512), "512 B"}, {Memory(0), "0 B"},
		{Duration(time.Minute), "1m"}, {Duration(90 * time.Second), "1m30s"}, {Duration(time.Hour), "1h"}, {Duration(90 * time.Minute), "1h30m"},
		{Duration(500 * time.Millisecond), "500ms"}, {Duration(30 * 24 * time.Hour), "30d"}, {Duration(5 * time.Second), "5s"},
		{Title("lastHeartbeatTime"), "Last heartbeat time"}, {Title("maxRTO"), "Max RTO"}, {Title("uid"), "UID"}, {Title("HTTPPort"), "HTTP port"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestEvents(t *testing.T) {
	var evs []api.Event
	for i := range 12 {
		evs = append(evs, api.Event{Type: api.EventNormal, Reason: "Step" + string(rune('A'+i)), Message: "step", EventTime: at(-time.Duration(12-i) * time.Minute)})
	}
	evs[11].Count, evs[11].FirstTimestamp, evs[11].Type = 8, at(-30*time.Minute), api.EventWarning
	evs[0], evs[11] = evs[11], evs[0] // out of order
	var b strings.Builder
	if err := Events(&b, evs, now); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	if !line("60s Warning StepL step (x8 over 30m)").MatchString(got) || strings.Contains(got, "StepA") || strings.Contains(got, "StepB") {
		t.Errorf("want the latest 10 events, the deduplicated one with its count; got:\n%s", got)
	}
	if strings.Index(got, "StepC") > strings.Index(got, "StepL") {
		t.Errorf("want oldest first; got:\n%s", got)
	}
	b.Reset()
	_ = Events(&b, nil, now)
	if b.String() != "Events:\n  <none>\n" {
		t.Errorf("no events: %q", b.String())
	}
}

// TestDescribeDrillProbe: a drill's probe, its request objectives and
// the requests it counted are described in words.
func TestDescribeDrillProbe(t *testing.T) {
	d := finishedDrill()
	d.Spec.Probe = &api.DrillProbe{Service: "web", Rate: 50, Through: []string{"eu-west", "global"}}
	d.Spec.SLO.MaxFailedRequests, d.Spec.SLO.MinSuccessRatio = ptr(int64(0)), ptr(0.999)
	d.Status.Report.Probe = &api.DrillProbeReport{Service: "web", Rate: 50,
		Fault: api.DrillProbeStats{Requests: 900, Succeeded: 899, Failed: 1, SuccessRatio: 899.0 / 900, P50Millis: 1.25, P99Millis: 8}}
	var b strings.Builder
	if err := Drill(&b, d, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"50 requests/s to service web/ through eu-west, global, from 2s before the fault",
		"at most 0 probe requests failed while the fault was in", "at least 99.90% of probe requests succeeded",
		"1 of 900 while the fault was in (99.889% succeeded; p50 1.2ms, p99 8.0ms)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("want %q in\n%s", want, b.String())
		}
	}
}

// TestTraffic: a service's traffic as rows per region and a total, then
// per revision when two answered; none says so.
func TestTraffic(t *testing.T) {
	t.Parallel()
	st := api.ServiceTraffic{Service: "web", Window: "1m0s",
		Total:     api.TrafficRow{Requests: 120, Errors: 6, ErrorRatio: 0.05, RequestsPerSecond: 2, P50Millis: 3.2, P99Millis: 41},
		Regions:   []api.TrafficRow{{Region: "eu", Requests: 60, Errors: 6, ErrorRatio: 0.1, RequestsPerSecond: 1, P50Millis: 3, P99Millis: 41}, {Region: "us", Requests: 60, RequestsPerSecond: 1, P50Millis: 3.4, P99Millis: 9}},
		Revisions: []api.TrafficRow{{Region: "eu", Revision: 3, Requests: 6, Errors: 6, ErrorRatio: 1}, {Region: "eu", Revision: 2, Requests: 54}}}
	var b strings.Builder
	if err := Traffic(&b, &st); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"Traffic (last 1m0s, through every gateway):", "eu      60        1.0         6       10.00%", "(all)   120", "Traffic per revision:", "eu      3         6", "100.00%"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
	b.Reset()
	if err := Traffic(&b, &api.ServiceTraffic{Window: "1m0s"}); err != nil || !strings.Contains(b.String(), "<no request>") {
		t.Errorf("want no traffic said; got %q (%v)", b.String(), err)
	}
}
