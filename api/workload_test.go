package api

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
)

// validWorkload is a workload that sets most fields, modelled on
// deploy/examples/web.yaml; each call returns a fresh copy to mutate.
func validWorkload() *Workload {
	return &Workload{
		TypeMeta: TypeMeta{APIVersion: Group, Kind: "Workload"},
		Metadata: ObjectMeta{
			Name:            "web",
			Labels:          map[string]string{"app": "web", "tier": "frontend", "example.com/team": "edge"},
			Annotations:     map[string]string{"example.com/owner": "ops"},
			ResourceVersion: "42",
			Finalizers:      []string{"atoll.dev/cleanup"},
		},
		Spec: WorkloadSpec{
			Replicas: 6,
			Template: ReplicaTemplate{
				Driver:        "process",
				Command:       "atoll",
				Args:          []string{"demo-http"},
				Env:           []EnvVar{{Name: "GREETING", Value: "hello from atoll"}, {Name: "_DEBUG", Value: ""}},
				WorkingDir:    "/srv",
				Resources:     Resources{CPU: "100m", Memory: "64Mi"},
				Ports:         []Port{{Name: "http"}, {Name: "metrics", HostPort: 9090, Protocol: "TCP"}},
				Liveness:      &Probe{TCP: &TCPProbe{Port: 9090}, PeriodSeconds: 5},
				Readiness:     &Probe{HTTP: &HTTPProbe{Path: "/healthz"}, PeriodSeconds: 2, FailureThreshold: 3},
				Startup:       &Probe{Exec: &ExecProbe{Command: []string{"true"}}, InitialDelaySeconds: 1},
				RestartPolicy: "Always",
				NodeSelector:  map[string]string{"disk": "ssd"},
				Tolerations: []Toleration{
					{Key: "dedicated", Operator: "Equal", Value: "web", Effect: "NoSchedule"},
					{Operator: "Exists"},
				},
			},
			Placement: &PlacementPolicy{
				ClusterSelector: &LabelSelector{
					MatchLabels:      map[string]string{"env": "prod"},
					MatchExpressions: []Requirement{{Key: "region", Operator: "In", Values: []string{"eu-west", "us-east"}}},
				},
				Clusters:        []string{"eu-1", "us-1"},
				ExcludeClusters: []string{"eu-2"},
				Tolerations:     []Toleration{{Key: "maintenance", Operator: "Exists", Effect: "NoExecute"}},
				Preferences:     []ClusterPreference{{Selector: LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}}},
				ReplicaMode:     "Divided",
				Weights: &WeightPolicy{Type: "static", Static: []StaticWeight{
					{Cluster: "eu-1", Weight: 2},
					{LabelKey: "region", LabelValue: "us-east", Weight: 1},
				}},
				Spread:                []SpreadConstraint{{TopologyKey: "region", MinGroups: 2, MaxGroups: 3}},
				MinReplicasPerCluster: 1,
				MaxReplicasPerCluster: 4,
			},
			Failover: &FailoverPolicy{
				GracePeriod:         "5s",
				Mode:                "stateless",
				Purge:               "graceful",
				Failback:            "auto",
				StabilizationWindow: "30s",
				FailbackRate:        10,
			},
			Update: &UpdateStrategy{
				MaxSurge:         IntOrPercentOf("1"),
				MaxUnavailable:   IntOrPercentOf("25%"),
				ProgressDeadline: "10m",
			},
		},
	}
}

// fieldPaths lists the distinct field paths of errors, sorted.
func fieldPaths(fe FieldErrors) []string {
	var paths []string
	for _, e := range fe {
		paths = append(paths, e.Field)
	}
	slices.Sort(paths)
	return slices.Compact(paths)
}

func TestWorkloadValidateValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(w *Workload)
	}{
		{"full", func(*Workload) {}},
		{"minimal sim", func(w *Workload) {
			*w = Workload{Metadata: ObjectMeta{Name: "a"}, Spec: WorkloadSpec{Template: ReplicaTemplate{Driver: "sim"}}}
		}},
		{"sim with settings", func(w *Workload) {
			w.Spec.Template = ReplicaTemplate{Driver: "sim", Sim: &SimSpec{StartLatency: "200ms", FailureRate: 1}}
		}},
		{"zero replicas", func(w *Workload) { w.Spec.Replicas = 0 }},
		{"cpu in cores", func(w *Workload) { w.Spec.Template.Resources.CPU = "0.5" }},
		{"memory in bytes", func(w *Workload) { w.Spec.Template.Resources.Memory = "1048576" }},
		{"dynamic weights", func(w *Workload) { w.Spec.Placement.Weights = &WeightPolicy{Type: "dynamic"} }},
		{"duplicated without weights", func(w *Workload) {
			w.Spec.Placement.ReplicaMode = "Duplicated"
			w.Spec.Placement.Weights = nil
		}},
		{"spread without max", func(w *Workload) { w.Spec.Placement.Spread[0].MaxGroups = 0 }},
		{"only maxSurge 0", func(w *Workload) { w.Spec.Update.MaxSurge = IntOrPercentOf("0") }},
		{"only maxUnavailable 0%", func(w *Workload) { w.Spec.Update.MaxUnavailable = IntOrPercentOf("0%") }},
		{"empty update", func(w *Workload) { w.Spec.Update = &UpdateStrategy{} }},
		{"budget minAvailable count", func(w *Workload) { w.Spec.DisruptionBudget = &DisruptionBudget{MinAvailable: IntOrPercentOf("2")} }},
		{"budget maxUnavailable percentage", func(w *Workload) {
			w.Spec.DisruptionBudget = &DisruptionBudget{MaxUnavailable: IntOrPercentOf("25%")}
		}},
		{"budget maxUnavailable 0", func(w *Workload) { w.Spec.DisruptionBudget = &DisruptionBudget{MaxUnavailable: IntOrPercentOf("0")} }},
		{"name of 63 characters", func(w *Workload) { w.Metadata.Name = strings.Repeat("a", 63) }},
		{"no apiVersion and kind", func(w *Workload) { w.TypeMeta = TypeMeta{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := validWorkload()
			tt.mutate(w)
			if fe := w.Validate(); fe != nil {
				t.Errorf("Validate: want no errors, got %v", fe)
			}
		})
	}
}

func TestWorkloadValidateInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(w *Workload)
		want   []string // every field path reported, sorted
	}{
		{"apiVersion mismatch", func(w *Workload) { w.APIVersion = "v1" }, []string{"apiVersion"}},
		{"kind mismatch", func(w *Workload) { w.Kind = "Token" }, []string{"kind"}},
		{"name missing", func(w *Workload) { w.Metadata.Name = "" }, []string{"metadata.name"}},
		{"name upper-case", func(w *Workload) { w.Metadata.Name = "Web" }, []string{"metadata.name"}},
		{"name with dot", func(w *Workload) { w.Metadata.Name = "web.1" }, []string{"metadata.name"}},
		{"name ends with dash", func(w *Workload) { w.Metadata.Name = "web-" }, []string{"metadata.name"}},
		{"name too long", func(w *Workload) { w.Metadata.Name = strings.Repeat("a", 64) }, []string{"metadata.name"}},
		{"label key invalid", func(w *Workload) { w.Metadata.Labels["-app"] = "x" }, []string{"metadata.labels"}},
		{"label value invalid", func(w *Workload) { w.Metadata.Labels["app"] = "web!" }, []string{"metadata.labels.app"}},
		{"annotation key invalid", func(w *Workload) { w.Metadata.Annotations["a b"] = "x" }, []string{"metadata.annotations"}},
		{"annotations too large", func(w *Workload) {
			w.Metadata.Annotations["big"] = strings.Repeat("x", 256*1024)
		}, []string{"metadata.annotations"}},
		{"finalizer invalid", func(w *Workload) { w.Metadata.Finalizers = append(w.Metadata.Finalizers, "no way") }, []string{"metadata.finalizers[1]"}},
		{"resourceVersion not a number", func(w *Workload) { w.Metadata.ResourceVersion = "abc" }, []string{"metadata.resourceVersion"}},
		{"negative replicas", func(w *Workload) { w.Spec.Replicas = -1 }, []string{"spec.replicas"}},
		{"driver missing", func(w *Workload) { w.Spec.Template.Driver = "" }, []string{"spec.template.driver"}},
		{"driver unknown", func(w *Workload) { w.Spec.Template.Driver = "docker" }, []string{"spec.template.driver"}},
		{"process driver without command", func(w *Workload) { w.Spec.Template.Command = "" }, []string{"spec.template.command"}},
		{"process driver with blank command", func(w *Workload) { w.Spec.Template.Command = "  " }, []string{"spec.template.command"}},
		{"process driver with sim settings", func(w *Workload) { w.Spec.Template.Sim = &SimSpec{} }, []string{"spec.template.sim"}},
		{"sim start latency invalid", func(w *Workload) {
			w.Spec.Template = ReplicaTemplate{Driver: "sim", Sim: &SimSpec{StartLatency: "soon"}}
		}, []string{"spec.template.sim.startLatency"}},
		{"sim failure rate above 1", func(w *Workload) {
			w.Spec.Template = ReplicaTemplate{Driver: "sim", Sim: &SimSpec{FailureRate: 1.5}}
		}, []string{"spec.template.sim.failureRate"}},
		{"bad cpu", func(w *Workload) { w.Spec.Template.Resources.CPU = "lots" }, []string{"spec.template.resources.cpu"}},
		{"negative cpu", func(w *Workload) { w.Spec.Template.Resources.CPU = "-100m" }, []string{"spec.template.resources.cpu"}},
		{"bad memory", func(w *Workload) { w.Spec.Template.Resources.Memory = "1.5Gi" }, []string{"spec.template.resources.memory"}},
		{"memory in milli", func(w *Workload) { w.Spec.Template.Resources.Memory = "100m" }, []string{"spec.template.resources.memory"}},
		{"duplicate env", func(w *Workload) {
			w.Spec.Template.Env = append(w.Spec.Template.Env, EnvVar{Name: "GREETING", Value: "again"})
		}, []string{"spec.template.env[2].name"}},
		{"invalid env name", func(w *Workload) { w.Spec.Template.Env[1].Name = "1ST" }, []string{"spec.template.env[1].name"}},
		{"empty env name", func(w *Workload) { w.Spec.Template.Env[0].Name = "" }, []string{"spec.template.env[0].name"}},
		{"host port too large", func(w *Workload) { w.Spec.Template.Ports[1].HostPort = 70000 }, []string{"spec.template.ports[1].hostPort"}},
		{"port protocol unknown", func(w *Workload) { w.Spec.Template.Ports[1].Protocol = "SCTP" }, []string{"spec.template.ports[1].protocol"}},
		{"port name invalid", func(w *Workload) { w.Spec.Template.Ports[1].Name = "Metrics" }, []string{"spec.template.ports[1].name"}},
		{"port name twice", func(w *Workload) { w.Spec.Template.Ports[1].Name = "http" }, []string{"spec.template.ports[1].name"}},
		{"probe with two handlers", func(w *Workload) {
			w.Spec.Template.Readiness.TCP = &TCPProbe{}
		}, []string{"spec.template.readinessProbe"}},
		{"probe with no handler", func(w *Workload) { w.Spec.Template.Liveness = &Probe{} }, []string{"spec.template.livenessProbe"}},
		{"probe path relative", func(w *Workload) { w.Spec.Template.Readiness.HTTP.Path = "healthz" }, []string{"spec.template.readinessProbe.http.path"}},
		{"probe port too large", func(w *Workload) { w.Spec.Template.Liveness.TCP.Port = 65536 }, []string{"spec.template.livenessProbe.tcp.port"}},
		{"probe exec without command", func(w *Workload) { w.Spec.Template.Startup.Exec.Command = nil }, []string{"spec.template.startupProbe.exec.command"}},
		{"probe negative period", func(w *Workload) { w.Spec.Template.Readiness.PeriodSeconds = -1 }, []string{"spec.template.readinessProbe.periodSeconds"}},
		{"restart policy unknown", func(w *Workload) { w.Spec.Template.RestartPolicy = "Sometimes" }, []string{"spec.template.restartPolicy"}},
		{"node selector key invalid", func(w *Workload) { w.Spec.Template.NodeSelector["x y"] = "z" }, []string{"spec.template.nodeSelector"}},
		{"toleration operator unknown", func(w *Workload) { w.Spec.Template.Tolerations[0].Operator = "In" }, []string{"spec.template.tolerations[0].operator"}},
		{"toleration effect unknown", func(w *Workload) { w.Spec.Template.Tolerations[0].Effect = "PreferNoSchedule" }, []string{"spec.template.tolerations[0].effect"}},
		{"toleration without key", func(w *Workload) { w.Spec.Template.Tolerations[0].Key = "" }, []string{"spec.template.tolerations[0].key"}},
		{"toleration Exists with value", func(w *Workload) { w.Spec.Template.Tolerations[1].Value = "x" }, []string{"spec.template.tolerations[1].value"}},
		{"placement selector operator unknown", func(w *Workload) {
			w.Spec.Placement.ClusterSelector.MatchExpressions[0].Operator = "Equals"
		}, []string{"spec.placement.clusterSelector.matchExpressions[0].operator"}},
		{"placement selector In without values", func(w *Workload) {
			w.Spec.Placement.ClusterSelector.MatchExpressions[0].Values = nil
		}, []string{"spec.placement.clusterSelector.matchExpressions[0].values"}},
		{"placement selector Exists with values", func(w *Workload) {
			w.Spec.Placement.ClusterSelector.MatchExpressions[0].Operator = "Exists"
		}, []string{"spec.placement.clusterSelector.matchExpressions[0].values"}},
		{"placement selector key invalid", func(w *Workload) {
			w.Spec.Placement.ClusterSelector.MatchExpressions[0].Key = "_region"
		}, []string{"spec.placement.clusterSelector.matchExpressions[0].key"}},
		{"placement selector value invalid", func(w *Workload) {
			w.Spec.Placement.ClusterSelector.MatchExpressions[0].Values[1] = "us east"
		}, []string{"spec.placement.clusterSelector.matchExpressions[0].values[1]"}},
		{"placement match label invalid", func(w *Workload) {
			w.Spec.Placement.ClusterSelector.MatchLabels["env"] = "-prod"
		}, []string{"spec.placement.clusterSelector.matchLabels.env"}},
		{"placement cluster name invalid", func(w *Workload) { w.Spec.Placement.Clusters[1] = "US_1" }, []string{"spec.placement.clusters[1]"}},
		{"placement excluded cluster invalid", func(w *Workload) { w.Spec.Placement.ExcludeClusters[0] = "" }, []string{"spec.placement.excludeClusters[0]"}},
		{"placement toleration invalid", func(w *Workload) { w.Spec.Placement.Tolerations[0].Effect = "Never" }, []string{"spec.placement.tolerations[0].effect"}},
		{"preference selector invalid", func(w *Workload) {
			w.Spec.Placement.Preferences[0].Selector.MatchExpressions = []Requirement{{Key: "zone", Operator: "Near"}}
		}, []string{"spec.placement.preferences[0].selector.matchExpressions[0].operator"}},
		{"replica mode unknown", func(w *Workload) { w.Spec.Placement.ReplicaMode = "Spread" }, []string{"spec.placement.replicaMode"}},
		{"weights static without entries", func(w *Workload) { w.Spec.Placement.Weights.Static = nil }, []string{"spec.placement.weights.static"}},
		{"weights dynamic with entries", func(w *Workload) { w.Spec.Placement.Weights.Type = "dynamic" }, []string{"spec.placement.weights.static"}},
		{"weights type unknown", func(w *Workload) { w.Spec.Placement.Weights.Type = "random" }, []string{"spec.placement.weights.type"}},
		{"weights with Duplicated", func(w *Workload) { w.Spec.Placement.ReplicaMode = "Duplicated" }, []string{"spec.placement.weights"}},
		{"weight with cluster and label", func(w *Workload) {
			w.Spec.Placement.Weights.Static[0].LabelKey = "region"
			w.Spec.Placement.Weights.Static[0].LabelValue = "eu-west"
		}, []string{"spec.placement.weights.static[0]"}},
		{"weight with neither cluster nor label", func(w *Workload) {
			w.Spec.Placement.Weights.Static[0].Cluster = ""
		}, []string{"spec.placement.weights.static[0]"}},
		{"weight with label key only", func(w *Workload) {
			w.Spec.Placement.Weights.Static[1].LabelValue = ""
		}, []string{"spec.placement.weights.static[1]"}},
		{"weight cluster invalid", func(w *Workload) { w.Spec.Placement.Weights.Static[0].Cluster = "EU" }, []string{"spec.placement.weights.static[0].cluster"}},
		{"weight label key invalid", func(w *Workload) { w.Spec.Placement.Weights.Static[1].LabelKey = "re gion" }, []string{"spec.placement.weights.static[1].labelKey"}},
		{"weight negative", func(w *Workload) { w.Spec.Placement.Weights.Static[1].Weight = -1 }, []string{"spec.placement.weights.static[1].weight"}},
		{"spread min above max", func(w *Workload) { w.Spec.Placement.Spread[0].MinGroups = 4 }, []string{"spec.placement.spread[0]"}},
		{"spread topology key missing", func(w *Workload) { w.Spec.Placement.Spread[0].TopologyKey = "" }, []string{"spec.placement.spread[0].topologyKey"}},
		{"spread negative min", func(w *Workload) { w.Spec.Placement.Spread[0].MinGroups = -1 }, []string{"spec.placement.spread[0].minGroups"}},
		{"spread negative max", func(w *Workload) { w.Spec.Placement.Spread[0].MaxGroups = -1 }, []string{"spec.placement.spread[0].maxGroups"}},
		{"replicas per cluster min above max", func(w *Workload) { w.Spec.Placement.MinReplicasPerCluster = 5 }, []string{"spec.placement"}},
		{"replicas per cluster negative min", func(w *Workload) { w.Spec.Placement.MinReplicasPerCluster = -1 }, []string{"spec.placement.minReplicasPerCluster"}},
		{"replicas per cluster negative max", func(w *Workload) { w.Spec.Placement.MaxReplicasPerCluster = -1 }, []string{"spec.placement.maxReplicasPerCluster"}},
		{"failover grace period invalid", func(w *Workload) { w.Spec.Failover.GracePeriod = "5" }, []string{"spec.failover.gracePeriod"}},
		{"failover grace period negative", func(w *Workload) { w.Spec.Failover.GracePeriod = "-5s" }, []string{"spec.failover.gracePeriod"}},
		{"failover stabilization window invalid", func(w *Workload) { w.Spec.Failover.StabilizationWindow = "30 seconds" }, []string{"spec.failover.stabilizationWindow"}},
		{"failover mode unknown", func(w *Workload) { w.Spec.Failover.Mode = "active" }, []string{"spec.failover.mode"}},
		{"failover purge unknown", func(w *Workload) { w.Spec.Failover.Purge = "lazy" }, []string{"spec.failover.purge"}},
		{"failover failback unknown", func(w *Workload) { w.Spec.Failover.Failback = "never" }, []string{"spec.failover.failback"}},
		{"failover negative rate", func(w *Workload) { w.Spec.Failover.FailbackRate = -1 }, []string{"spec.failover.failbackRate"}},
		{"maxSurge 150%", func(w *Workload) { w.Spec.Update.MaxSurge = IntOrPercentOf("150%") }, []string{"spec.update.maxSurge"}},
		{"maxSurge negative", func(w *Workload) { w.Spec.Update.MaxSurge = IntOrPercentOf("-1") }, []string{"spec.update.maxSurge"}},
		{"maxUnavailable not a number", func(w *Workload) { w.Spec.Update.MaxUnavailable = IntOrPercentOf("half") }, []string{"spec.update.maxUnavailable"}},
		{"maxSurge and maxUnavailable 0", func(w *Workload) {
			w.Spec.Update.MaxSurge = IntOrPercentOf("0")
			w.Spec.Update.MaxUnavailable = IntOrPercentOf("0%")
		}, []string{"spec.update"}},
		{"maxSurge and maxUnavailable 0 written differently", func(w *Workload) {
			w.Spec.Update.MaxSurge = IntOrPercentOf("00")
			w.Spec.Update.MaxUnavailable = IntOrPercentOf("-0%")
		}, []string{"spec.update"}},
		{"progress deadline invalid", func(w *Workload) { w.Spec.Update.ProgressDeadline = "10" }, []string{"spec.update.progressDeadline"}},
		{"budget empty", func(w *Workload) { w.Spec.DisruptionBudget = &DisruptionBudget{} }, []string{"spec.disruptionBudget"}},
		{"budget both", func(w *Workload) {
			w.Spec.DisruptionBudget = &DisruptionBudget{MinAvailable: IntOrPercentOf("1"), MaxUnavailable: IntOrPercentOf("1")}
		}, []string{"spec.disruptionBudget"}},
		{"budget minAvailable 150%", func(w *Workload) {
			w.Spec.DisruptionBudget = &DisruptionBudget{MinAvailable: IntOrPercentOf("150%")}
		}, []string{"spec.disruptionBudget.minAvailable"}},
		{"budget maxUnavailable negative", func(w *Workload) {
			w.Spec.DisruptionBudget = &DisruptionBudget{MaxUnavailable: IntOrPercentOf("-1")}
		}, []string{"spec.disruptionBudget.maxUnavailable"}},
		{"several problems", func(w *Workload) {
			w.Metadata.Name = ""
			w.Spec.Replicas = -1
			w.Spec.Template.Resources.CPU = "x"
		}, []string{"metadata.name", "spec.replicas", "spec.template.resources.cpu"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := validWorkload()
			tt.mutate(w)
			fe := w.Validate()
			if got := fieldPaths(fe); !slices.Equal(got, tt.want) {
				t.Errorf("Validate: want errors at %q, got %q (%v)", tt.want, got, fe)
			}
			for _, e := range fe {
				if e.Message == "" {
					t.Errorf("Validate: error at %q has no message", e.Field)
				}
				if !strings.HasPrefix(e.Error(), e.Field+": ") {
					t.Errorf("FieldError.Error() = %q, want it to start with the field %q", e.Error(), e.Field)
				}
			}
			if fe != nil && !strings.Contains(fe.Error(), tt.want[0]) {
				t.Errorf("FieldErrors.Error() = %q, want it to mention %q", fe.Error(), tt.want[0])
			}
		})
	}
}

func TestTokenValidate(t *testing.T) {
	t.Parallel()
	valid := func() *Token {
		return &Token{
			TypeMeta: TypeMeta{APIVersion: Group, Kind: "Token"},
			Metadata: ObjectMeta{Name: "ci"},
			Spec:     TokenSpec{Role: RoleOperator, Description: "CI deploys", TTL: "720h"},
		}
	}
	tests := []struct {
		name   string
		mutate func(tok *Token)
		want   []string // every field path reported, sorted; nil means valid
	}{
		{"valid", func(*Token) {}, nil},
		{"viewer without ttl", func(tok *Token) { tok.Spec = TokenSpec{Role: RoleViewer} }, nil},
		{"admin", func(tok *Token) { tok.Spec.Role = RoleAdmin }, nil},
		{"role missing", func(tok *Token) { tok.Spec.Role = "" }, []string{"spec.role"}},
		{"role invalid", func(tok *Token) { tok.Spec.Role = "root" }, []string{"spec.role"}},
		{"role wrong case", func(tok *Token) { tok.Spec.Role = "Admin" }, []string{"spec.role"}},
		{"ttl invalid", func(tok *Token) { tok.Spec.TTL = "30 days" }, []string{"spec.ttl"}},
		{"ttl in days", func(tok *Token) { tok.Spec.TTL = "30d" }, nil},
		{"ttl negative", func(tok *Token) { tok.Spec.TTL = "-1h" }, []string{"spec.ttl"}},
		{"ttl zero", func(tok *Token) { tok.Spec.TTL = "0s" }, []string{"spec.ttl"}},
		{"join token", func(tok *Token) { tok.Spec = TokenSpec{Type: TokenJoin, Region: "eu-west", Uses: 3, TTL: "1h"} }, nil},
		{"join token with a role", func(tok *Token) { tok.Spec.Type = TokenJoin }, []string{"spec.role"}},
		{"join token region invalid", func(tok *Token) { tok.Spec = TokenSpec{Type: TokenJoin, Region: "EU West"} }, []string{"spec.region"}},
		{"join token negative uses", func(tok *Token) { tok.Spec = TokenSpec{Type: TokenJoin, Uses: -1} }, []string{"spec.uses"}},
		{"api token with join fields", func(tok *Token) { tok.Spec.Region = "eu-west" }, []string{"spec"}},
		{"member token", func(tok *Token) { tok.Spec = TokenSpec{Type: TokenMember} }, []string{"spec.type"}},
		{"type unknown", func(tok *Token) { tok.Spec.Type = "session" }, []string{"spec.type"}},
		{"cluster set", func(tok *Token) { tok.Spec.Cluster = "eu-1" }, []string{"spec.cluster"}},
		{"description too long", func(tok *Token) { tok.Spec.Description = strings.Repeat("x", 1025) }, []string{"spec.description"}},
		{"name invalid", func(tok *Token) { tok.Metadata.Name = "CI" }, []string{"metadata.name"}},
		{"kind mismatch", func(tok *Token) { tok.Kind = "Workload" }, []string{"kind"}},
		{"apiVersion mismatch", func(tok *Token) { tok.APIVersion = "atoll.dev/v2" }, []string{"apiVersion"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := valid()
			tt.mutate(tok)
			fe := tok.Validate()
			if got := fieldPaths(fe); !slices.Equal(got, tt.want) {
				t.Errorf("Validate: want errors at %q, got %q (%v)", tt.want, got, fe)
			}
		})
	}
}

func TestRoleRank(t *testing.T) {
	t.Parallel()
	if !(RoleRank("") < RoleRank(RoleViewer) && RoleRank(RoleViewer) < RoleRank(RoleOperator) && RoleRank(RoleOperator) < RoleRank(RoleAdmin)) {
		t.Errorf("want unknown < viewer < operator < admin, got %d, %d, %d, %d",
			RoleRank(""), RoleRank(RoleViewer), RoleRank(RoleOperator), RoleRank(RoleAdmin))
	}
	if RoleRank("root") != RoleRank("") {
		t.Errorf("RoleRank(%q) = %d, want the rank of an unknown role %d", "root", RoleRank("root"), RoleRank(""))
	}
}

func TestDurationGet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    Duration
		want string
	}{
		{"", "7s"},
		{"1m30s", "1m30s"},
		{"500ms", "500ms"},
		{"soon", "7s"},
	}
	for _, tt := range tests {
		if got := tt.d.Get(7e9).String(); got != tt.want {
			t.Errorf("Duration(%q).Get(7s) = %s, want %s", tt.d, got, tt.want)
		}
	}
}

func TestDisruptionBudgetFloor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		budget  *DisruptionBudget
		desired int32
		want    int32
	}{
		{"no budget", nil, 4, 0},
		{"minAvailable count", &DisruptionBudget{MinAvailable: IntOrPercentOf("3")}, 4, 3},
		{"minAvailable above desired", &DisruptionBudget{MinAvailable: IntOrPercentOf("6")}, 4, 4},
		{"scaled to 0", &DisruptionBudget{MinAvailable: IntOrPercentOf("1")}, 0, 0},
		{"minAvailable beyond int32", &DisruptionBudget{MinAvailable: IntOrPercentOf("3000000000")}, 4, 4},
		{"maxUnavailable beyond int32", &DisruptionBudget{MaxUnavailable: IntOrPercentOf("3000000000")}, 4, 0},
		{"minAvailable percentage rounds up", &DisruptionBudget{MinAvailable: IntOrPercentOf("50%")}, 3, 2},
		{"maxUnavailable count", &DisruptionBudget{MaxUnavailable: IntOrPercentOf("1")}, 4, 3},
		{"maxUnavailable above desired", &DisruptionBudget{MaxUnavailable: IntOrPercentOf("9")}, 4, 0},
		{"maxUnavailable percentage rounds up", &DisruptionBudget{MaxUnavailable: IntOrPercentOf("25%")}, 3, 2},
		{"maxUnavailable 0", &DisruptionBudget{MaxUnavailable: IntOrPercentOf("0")}, 5, 5},
		{"empty budget", &DisruptionBudget{}, 4, 0},
	}
	for _, tt := range tests {
		if got := tt.budget.Floor(tt.desired); got != tt.want {
			t.Errorf("%s: Floor(%d) = %d, want %d", tt.name, tt.desired, got, tt.want)
		}
	}
}

func TestOCITemplateValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		tpl  ReplicaTemplate
		want string // a field path in the errors, "" for none
	}{
		{"tag", ReplicaTemplate{Driver: "oci", Image: "registry.example:5000/team/app:1.2"}, ""},
		{"digest", ReplicaTemplate{Driver: "oci", Image: "app@sha256:" + strings.Repeat("ab", 32), User: "1000:1000", ReadOnlyRoot: true}, ""},
		{"missing image", ReplicaTemplate{Driver: "oci"}, "spec.template.image"},
		{"bad reference", ReplicaTemplate{Driver: "oci", Image: "Not A//Ref:"}, "spec.template.image"},
		{"bad digest", ReplicaTemplate{Driver: "oci", Image: "app@sha256:123"}, "spec.template.image"},
		{"bad user", ReplicaTemplate{Driver: "oci", Image: "app", User: "a b"}, "spec.template.user"},
		{"image on process", ReplicaTemplate{Driver: "process", Command: "x", Image: "app"}, "spec.template.image"},
		{"pull secret", ReplicaTemplate{Driver: "oci", Image: "app", ImagePullSecret: &KeyRef{Name: "regcred", Key: ".dockerconfigjson"}}, ""},
		{"pull secret on process", ReplicaTemplate{Driver: "process", Command: "x", ImagePullSecret: &KeyRef{Name: "regcred", Key: "k"}}, "spec.template.imagePullSecret"},
		{"pull secret bad name", ReplicaTemplate{Driver: "oci", Image: "app", ImagePullSecret: &KeyRef{Name: "Reg", Key: "k"}}, "spec.template.imagePullSecret.name"},
		{"pull secret bad key", ReplicaTemplate{Driver: "oci", Image: "app", ImagePullSecret: &KeyRef{Name: "regcred", Key: "a/b"}}, "spec.template.imagePullSecret.key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := Workload{Metadata: ObjectMeta{Name: "w"}, Spec: WorkloadSpec{Replicas: 1, Template: tc.tpl}}
			errs := w.Validate()
			got := fmt.Sprint(errs)
			if tc.want == "" && errs != nil {
				t.Fatalf("valid template refused: %v", errs)
			}
			if tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("want an error on %s, got %v", tc.want, got)
			}
		})
	}
}

func TestPortMappingValidation(t *testing.T) {
	t.Parallel()
	oci := func(ports ...Port) ReplicaTemplate {
		return ReplicaTemplate{Driver: "oci", Image: "app:1", Ports: ports}
	}
	withProbe := func(tpl ReplicaTemplate, p *Probe) ReplicaTemplate { tpl.Readiness = p; return tpl }
	for _, tc := range []struct {
		name string
		tpl  ReplicaTemplate
		want []string // every field path reported, sorted; nil: valid
	}{
		{"mapped, host port allocated", oci(Port{ContainerPort: 8080}), nil},
		{"mapped, second port fixed", oci(Port{ContainerPort: 8080}, Port{Name: "admin", ContainerPort: 9000, HostPort: 19000}), nil},
		{"host network", oci(Port{HostPort: 8080}, Port{}), nil},
		{"probe on a container port", withProbe(oci(Port{ContainerPort: 8080}, Port{ContainerPort: 9000, HostPort: 19000}), &Probe{TCP: &TCPProbe{Port: 9000}}), nil},
		{"container port too large", oci(Port{ContainerPort: 70000}), []string{"spec.template.ports[0].containerPort"}},
		{"negative container port", oci(Port{ContainerPort: -1}), []string{"spec.template.ports[0].containerPort"}},
		{"container port on process", ReplicaTemplate{Driver: "process", Command: "x", Ports: []Port{{ContainerPort: 80}}}, []string{"spec.template.ports[0].containerPort"}},
		{"only a later port mapped", oci(Port{}, Port{ContainerPort: 80, HostPort: 8080}), []string{"spec.template.ports[1].containerPort"}},
		{"a later port not mapped", oci(Port{ContainerPort: 80}, Port{HostPort: 9000}), []string{"spec.template.ports[1].containerPort"}},
		{"later mapped port without host port", oci(Port{ContainerPort: 80}, Port{ContainerPort: 81}), []string{"spec.template.ports[1].hostPort"}},
		{"udp mapped", oci(Port{ContainerPort: 53, Protocol: "UDP"}), []string{"spec.template.ports[0].protocol"}},
		{"container port twice", oci(Port{ContainerPort: 80}, Port{ContainerPort: 80, HostPort: 9000}), []string{"spec.template.ports[1].containerPort"}},
		{"host port twice", oci(Port{ContainerPort: 80, HostPort: 9000}, Port{ContainerPort: 81, HostPort: 9000}), []string{"spec.template.ports[1].hostPort"}},
		{"host port twice, host network", ReplicaTemplate{Driver: "process", Command: "x", Ports: []Port{{HostPort: 9000}, {HostPort: 9000}}}, []string{"spec.template.ports[1].hostPort"}},
		{"same host port, tcp and udp", ReplicaTemplate{Driver: "process", Command: "x", Ports: []Port{{HostPort: 9000}, {HostPort: 9000, Protocol: "UDP"}}}, nil},
		{"probe on an unmapped port", withProbe(oci(Port{ContainerPort: 8080}), &Probe{HTTP: &HTTPProbe{Port: 9999}}), []string{"spec.template.readinessProbe.http.port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := Workload{Metadata: ObjectMeta{Name: "w"}, Spec: WorkloadSpec{Replicas: 1, Template: tc.tpl}}
			var got []string
			for _, fe := range w.Validate() {
				got = append(got, fe.Field)
			}
			sort.Strings(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("errors on %v, want on %v: %v", got, tc.want, w.Validate())
			}
		})
	}
}
