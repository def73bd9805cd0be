package api

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Workload is a set of identical replicas the hub places over member
// clusters.
type Workload struct {
	TypeMeta
	Metadata ObjectMeta     `json:"metadata"`
	Spec     WorkloadSpec   `json:"spec"`
	Status   WorkloadStatus `json:"status,omitzero" readOnly:"true"`
}

// WorkloadList is a page of workloads.
type WorkloadList struct {
	TypeMeta
	Metadata ListMeta   `json:"metadata"`
	Items    []Workload `json:"items"`
}

// WorkloadSpec is what the user asks for.
type WorkloadSpec struct {
	Replicas  int32            `json:"replicas" minimum:"0" maximum:"100000" doc:"Desired replicas: in total when placement.replicaMode is Divided, per selected cluster when Duplicated."`
	Template  ReplicaTemplate  `json:"template"`
	Placement *PlacementPolicy `json:"placement,omitempty"`
	Failover  *FailoverPolicy  `json:"failover,omitempty"`
	Update    *UpdateStrategy  `json:"update,omitempty"`
	// Rollout takes a new template revision to the clusters wave by
	// wave, each held to health gates for a bake time.
	Rollout *ProgressiveRollout `json:"rollout,omitempty" doc:"A progressive rollout across clusters: waves of clusters, health gates that must hold for a bake time, automatic rollback. Without it a template change reaches every cluster at once."`
	// RevisionHistoryLimit is how many revisions of the template the hub
	// keeps (the current one included); nil means DefaultRevisionHistoryLimit.
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty" minimum:"1" maximum:"100" doc:"How many template revisions the hub keeps, the current one included (rollout history and undo). Default 10."`
	// DisruptionBudget bounds what planned disruptions (a drain, an
	// evacuate drill) may take away at once.
	DisruptionBudget *DisruptionBudget `json:"disruptionBudget,omitempty" doc:"How many replicas planned disruptions (atoll cluster drain, evacuate drills) must leave available: exactly one of minAvailable and maxUnavailable, as in a Kubernetes PodDisruptionBudget. A drain or evacuate drill whose plan breaks it is refused unless forced."`
	// Overrides change the template per cluster, region or cluster labels
	// (api/override.go).
	Overrides []Override `json:"overrides,omitempty" doc:"Per-cluster changes, applied in order to the clusters each selects (by name, region or labels): replicas, command, args, env, resources, node selector. atoll describe workload W --cluster C shows the result."`
}

// DisruptionBudget is a workload's disruption budget: exactly one of
// MinAvailable and MaxUnavailable is set.
type DisruptionBudget struct {
	MinAvailable   IntOrPercent `json:"minAvailable,omitzero" doc:"Replicas that must stay placed through a planned disruption: a count (at most the desired replicas count), or a percentage of the desired replicas (rounded up)."`
	MaxUnavailable IntOrPercent `json:"maxUnavailable,omitzero" doc:"Replicas a planned disruption may leave without a place: a count, or a percentage of the desired replicas (rounded up)."`
}

// Floor is the fewest of desired replicas the budget lets a planned
// disruption leave available. Percentages round up, as Kubernetes does
// for a PodDisruptionBudget; a budget asks no more than the desired
// replicas (a workload scaled to 0 needs none); a nil budget allows
// everything (0).
func (b *DisruptionBudget) Floor(desired int32) int32 {
	switch {
	case b == nil:
		return 0
	case b.MinAvailable.Set():
		return int32(min(int(desired), b.MinAvailable.Resolve(int(desired), true, 0)))
	case b.MaxUnavailable.Set():
		return desired - int32(min(int(desired), b.MaxUnavailable.Resolve(int(desired), true, int(desired))))
	}
	return 0
}

// String is the budget in words: "minAvailable 2" or "maxUnavailable 25%".
func (b *DisruptionBudget) String() string {
	switch {
	case b == nil:
		return ""
	case b.MinAvailable.Set():
		return "minAvailable " + b.MinAvailable.String()
	case b.MaxUnavailable.Set():
		return "maxUnavailable " + b.MaxUnavailable.String()
	}
	return ""
}

// ReplicaTemplate describes one replica.
type ReplicaTemplate struct {
	Driver        string            `json:"driver" enum:"process,sim,oci" doc:"process runs a real OS process; oci runs a container from an OCI image (runc); sim simulates a replica for scale tests."`
	Image         string            `json:"image,omitempty" doc:"OCI image reference (oci driver): by tag (registry.example/app:1.2) or digest (registry.example/app@sha256:...)."`
	Command       string            `json:"command,omitempty" doc:"Executable to run (process driver). Found on the node's PATH when not absolute. For oci: replaces the image's entrypoint."`
	Args          []string          `json:"args,omitempty" doc:"Arguments. For oci: replace the image's cmd."`
	Env           []EnvVar          `json:"env,omitempty"`
	WorkingDir    string            `json:"workingDir,omitempty" doc:"For oci: inside the container (default: the image's)."`
	User          string            `json:"user,omitempty" doc:"oci driver: uid[:gid] (or a user name of the image) the container runs as. Default: the image's user when it is not root, else 65534 (nobody)."`
	ReadOnlyRoot  bool              `json:"readOnlyRootFilesystem,omitempty" doc:"oci driver: mount the container's root filesystem read-only (/tmp stays writable)."`
	Resources     Resources         `json:"resources,omitzero"`
	Ports         []Port            `json:"ports,omitempty"`
	Liveness      *Probe            `json:"livenessProbe,omitempty"`
	Readiness     *Probe            `json:"readinessProbe,omitempty"`
	Startup       *Probe            `json:"startupProbe,omitempty"`
	RestartPolicy string            `json:"restartPolicy,omitempty" enum:"Always,OnFailure,Never" doc:"Default Always."`
	NodeSelector  map[string]string `json:"nodeSelector,omitempty" doc:"Node labels a node must have to run a replica."`
	Tolerations   []Toleration      `json:"tolerations,omitempty" doc:"Node taints the replicas tolerate."`
	Sim           *SimSpec          `json:"sim,omitempty" doc:"Behaviour of simulated replicas (sim driver)."`
	// Annotations are part of the template: changing one rolls the
	// replicas (atoll rollout restart sets AnnotationRestartedAt).
	Annotations map[string]string `json:"annotations,omitempty" doc:"Key/value pairs of the template; changing them rolls the replicas (atoll rollout restart sets atoll.dev/restartedAt)."`
	// Files are whole Configs or Secrets as files the replica reads.
	Files []FileSource `json:"files,omitempty" doc:"Whole Configs or Secrets as folders of files, one per key, under the replica's files folder ($ATOLL_FILES)."`
	// ImagePullSecret is a key of a Secret holding a docker config.json
	// ({"auths": {"<registry>": {"auth": base64(user:password)}}}).
	ImagePullSecret *KeyRef `json:"imagePullSecret,omitempty" doc:"oci driver: a Secret's key holding registry credentials as a docker config.json ({\"auths\": {\"registry.example\": {\"auth\": \"base64(user:password)\"}}}); the nodes use it for this workload's pulls, before their own credentials file. Checked at apply like every secret reference; never logged or shown."`
}

// EnvVar is one environment variable of a replica: a value, or a key of a
// Config or a Secret (valueFrom).
type EnvVar struct {
	Name      string     `json:"name" minLength:"1"`
	Value     string     `json:"value"`
	ValueFrom *EnvSource `json:"valueFrom,omitempty" doc:"Take the value from a key of a Config or a Secret instead (value must then be empty)."`
}

// Resources are what one replica requests (scheduling) and is limited to.
type Resources struct {
	CPU    string `json:"cpu,omitempty" doc:"CPU request in cores: '500m', '0.5' or '2'."`
	Memory string `json:"memory,omitempty" doc:"Memory request: '256Mi', '1Gi', '512M' or bytes."`
}

// Quantities is the request in base units: millicores and bytes (0 for
// what is not set; validation refuses what does not parse).
func (r Resources) Quantities() (milliCPU, memory int64) {
	if r.CPU != "" {
		milliCPU, _ = ParseCPU(r.CPU)
	}
	if r.Memory != "" {
		memory, _ = ParseMemory(r.Memory)
	}
	return milliCPU, memory
}

// Port is a port a replica listens on.
type Port struct {
	Name     string `json:"name,omitempty"`
	HostPort int32  `json:"hostPort,omitempty" minimum:"0" maximum:"65535" doc:"Fixed port on the node; 0 lets the node allocate one, passed as PORT."`
	// ContainerPort maps the port: the container gets a network of its
	// own and the node forwards HostPort to it.
	ContainerPort int32  `json:"containerPort,omitempty" minimum:"0" maximum:"65535" doc:"oci driver: the port the container listens on inside a network namespace of its own; the node forwards the host port (hostPort, or one it allocates for the first port) to it, and PORT is this port. Set on every port or on none (none: the container shares the node's network)."`
	Protocol      string `json:"protocol,omitempty" enum:"TCP,UDP" doc:"Default TCP."`
}

// PortsMapped reports whether the template's ports map container ports
// to host ports (oci: the container gets a network of its own).
func (t *ReplicaTemplate) PortsMapped() bool {
	return len(t.Ports) > 0 && t.Ports[0].ContainerPort > 0
}

// MappedPort is the index of the port that maps container port cp, -1
// when none does.
func (t *ReplicaTemplate) MappedPort(cp int32) int {
	for i, p := range t.Ports {
		if p.ContainerPort == cp {
			return i
		}
	}
	return -1
}

// Probe checks a replica. Exactly one of http, tcp and exec is set.
// Until a run first passes its readiness or startup probe, a failed http
// or tcp check is retried after 50 ms, doubling up to every 250 ms, for
// the run's first 10 s: a replica is ready soon after it answers, not a
// period later. Those retries never count toward failureThreshold.
type Probe struct {
	HTTP                *HTTPProbe `json:"http,omitempty"`
	TCP                 *TCPProbe  `json:"tcp,omitempty"`
	Exec                *ExecProbe `json:"exec,omitempty"`
	InitialDelaySeconds int32      `json:"initialDelaySeconds,omitempty" minimum:"0"`
	PeriodSeconds       int32      `json:"periodSeconds,omitempty" minimum:"0" doc:"Default 10. Before the first pass, a failed http or tcp readiness or startup check is also retried sooner (from 50 ms up to every 250 ms, in the run's first 10 s), uncounted."`
	TimeoutSeconds      int32      `json:"timeoutSeconds,omitempty" minimum:"0" doc:"Default 1."`
	SuccessThreshold    int32      `json:"successThreshold,omitempty" minimum:"0" doc:"Default 1."`
	FailureThreshold    int32      `json:"failureThreshold,omitempty" minimum:"0" doc:"Default 3."`
}

// HTTPProbe succeeds on a 2xx or 3xx answer.
type HTTPProbe struct {
	Path string `json:"path,omitempty" doc:"Default /."`
	Port int32  `json:"port,omitempty" minimum:"0" maximum:"65535" doc:"0 means the replica's allocated PORT."`
}

// TCPProbe succeeds when a connection opens.
type TCPProbe struct {
	Port int32 `json:"port,omitempty" minimum:"0" maximum:"65535" doc:"0 means the replica's allocated PORT."`
}

// ExecProbe succeeds when the command exits 0.
type ExecProbe struct {
	Command []string `json:"command" minItems:"1"`
}

// SimSpec tunes simulated replicas.
type SimSpec struct {
	StartLatency Duration `json:"startLatency,omitempty" doc:"How long a simulated replica takes to become ready, e.g. 200ms."`
	FailureRate  float64  `json:"failureRate,omitempty" minimum:"0" maximum:"1" doc:"Probability that a start fails."`
}

// Toleration lets replicas (or workloads, for cluster taints) run despite a
// taint.
type Toleration struct {
	Key      string `json:"key,omitempty"`
	Operator string `json:"operator,omitempty" enum:"Equal,Exists" doc:"Default Equal."`
	Value    string `json:"value,omitempty"`
	Effect   string `json:"effect,omitempty" enum:"NoSchedule,NoExecute" doc:"Empty tolerates every effect."`
}

// PlacementPolicy says which clusters may run the workload and how replicas
// are divided between them.
type PlacementPolicy struct {
	ClusterSelector       *LabelSelector      `json:"clusterSelector,omitempty" doc:"Only clusters whose labels match."`
	Clusters              []string            `json:"clusters,omitempty" doc:"Only these clusters (by name)."`
	ExcludeClusters       []string            `json:"excludeClusters,omitempty" doc:"Never these clusters."`
	Tolerations           []Toleration        `json:"tolerations,omitempty" doc:"Cluster taints the workload tolerates."`
	Preferences           []ClusterPreference `json:"preferences,omitempty" doc:"Ordered: clusters matching the first are filled first, overflow goes to the next."`
	ReplicaMode           string              `json:"replicaMode,omitempty" enum:"Divided,Duplicated" doc:"Default Divided."`
	Weights               *WeightPolicy       `json:"weights,omitempty"`
	Spread                []SpreadConstraint  `json:"spread,omitempty"`
	MinReplicasPerCluster int32               `json:"minReplicasPerCluster,omitempty" minimum:"0"`
	MaxReplicasPerCluster int32               `json:"maxReplicasPerCluster,omitempty" minimum:"0" doc:"0 means no limit."`
}

// ClusterPreference is one tier of preferred clusters.
type ClusterPreference struct {
	Selector LabelSelector `json:"selector"`
}

// WeightPolicy divides replicas between clusters.
type WeightPolicy struct {
	Type   string         `json:"type" enum:"static,dynamic" doc:"static: by the weights below; dynamic: by free capacity."`
	Static []StaticWeight `json:"static,omitempty"`
}

// StaticWeight gives a weight to one cluster, or to every cluster whose
// label labelKey has the value labelValue.
type StaticWeight struct {
	Cluster    string `json:"cluster,omitempty"`
	LabelKey   string `json:"labelKey,omitempty"`
	LabelValue string `json:"labelValue,omitempty"`
	Weight     int32  `json:"weight" minimum:"0"`
}

// SpreadConstraint bounds how many distinct values of a cluster label
// (region, zone, provider or any other) the placement covers.
type SpreadConstraint struct {
	TopologyKey string `json:"topologyKey" minLength:"1" doc:"Cluster label, e.g. region."`
	MinGroups   int32  `json:"minGroups,omitempty" minimum:"0"`
	MaxGroups   int32  `json:"maxGroups,omitempty" minimum:"0" doc:"0 means no limit."`
}

// FailoverPolicy says what happens when a cluster running the workload is
// lost.
type FailoverPolicy struct {
	GracePeriod         Duration `json:"gracePeriod,omitempty" doc:"How long a cluster may stay Unreachable before its replicas are re-placed. Default 5s."`
	Mode                string   `json:"mode,omitempty" enum:"stateless,exclusive" doc:"exclusive: never run in two clusters at once (fenced). Default stateless."`
	Purge               string   `json:"purge,omitempty" enum:"immediate,graceful" doc:"graceful keeps old replicas until the new ones are ready. Default immediate."`
	Failback            string   `json:"failback,omitempty" enum:"auto,manual" doc:"Default auto."`
	StabilizationWindow Duration `json:"stabilizationWindow,omitempty" doc:"How long a returned cluster must stay Ready before failback. Default 30s."`
	FailbackRate        int32    `json:"failbackRate,omitempty" minimum:"0" doc:"Replicas moved back per minute; 0 means no limit."`
	Rebalance           string   `json:"rebalance,omitempty" enum:"manual,auto" doc:"auto: move replicas toward a fresh split whenever it differs from where they run over clusters Ready for the stabilization window (a cluster came back or joined), at failbackRate, make-before-break. manual: only when asked (atoll rebalance). Default manual."`
}

// UpdateStrategy governs rolling updates inside each member.
type UpdateStrategy struct {
	MaxSurge         IntOrPercent `json:"maxSurge,omitzero"`
	MaxUnavailable   IntOrPercent `json:"maxUnavailable,omitzero"`
	ProgressDeadline Duration     `json:"progressDeadline,omitempty" doc:"Default 10m."`
}

// WorkloadStatus is what the hub observed. Clients cannot write it.
type WorkloadStatus struct {
	ObservedGeneration int64       `json:"observedGeneration,omitempty" doc:"The oldest generation any cluster runs."`
	Replicas           int32       `json:"replicas,omitempty"`
	ReadyReplicas      int32       `json:"readyReplicas,omitempty"`
	AvailableReplicas  int32       `json:"availableReplicas,omitempty"`
	UpdatedReplicas    int32       `json:"updatedReplicas,omitempty"`
	Conditions         []Condition `json:"conditions,omitempty"`
	// Clusters breaks the replicas down per cluster, as the members report.
	Clusters []ClusterReplicas `json:"clusters,omitempty"`
	// Placement is the hub's latest placement decision and why.
	Placement *PlacementStatus `json:"placement,omitempty"`
	// Rollout is a progressive rollout's progress (spec.rollout).
	Rollout *RolloutStatus `json:"rollout,omitempty"`
	// Images says, per cluster that may take the workload's replicas in
	// a failover without running any now, whether its nodes hold the
	// current revision's image ahead of need (warm standby).
	Images []ClusterImage `json:"images,omitempty" doc:"Warm standby: per cluster the placement allows but that runs no replica now, whether its nodes hold the current revision's image."`
}

// ClusterImage is a cluster's warm standby of a workload's image.
type ClusterImage struct {
	Cluster    string     `json:"cluster"`
	Image      string     `json:"image" doc:"The image, pinned to the revision's digest."`
	Generation int64      `json:"generation,omitempty"`
	Wanted     int32      `json:"wanted" doc:"Nodes asked to hold it: those the member's scheduler would pick for the replicas a failover could bring."`
	Present    int32      `json:"present" doc:"Of those, the nodes that hold it."`
	Pulling    int32      `json:"pulling,omitempty"`
	Failed     int32      `json:"failed,omitempty"`
	Message    string     `json:"message,omitempty" doc:"The last failure to pull it, with the registry's answer."`
	ReportedAt *time.Time `json:"reportedAt,omitempty"`
}

// Warm says whether every node asked holds the image (a cluster whose
// scheduler picked no node is not warm).
func (c ClusterImage) Warm() bool { return c.Wanted > 0 && c.Present >= c.Wanted }

// Image resolution: the ImageResolved condition of a workload whose oci
// image is named by a tag.
const (
	ConditionImageResolved = "ImageResolved"
	ReasonImageResolved    = "Resolved"
	ReasonResolveFailed    = "ResolveFailed"
)

// PlacementStatus explains where the hub placed a workload's replicas.
type PlacementStatus struct {
	Epoch       int64             `json:"epoch"`
	Clusters    map[string]int32  `json:"clusters"`
	Unplaced    int32             `json:"unplaced,omitempty"`
	Reason      string            `json:"reason,omitempty" doc:"Why replicas are unplaced."`
	Filtered    map[string]string `json:"filtered,omitempty" doc:"Why each cluster left out was left out."`
	Explanation []string          `json:"explanation,omitempty"`
	// FailedOverFrom counts, per cluster, the replicas failover moved off
	// it that have not moved back yet (failback).
	FailedOverFrom map[string]int32 `json:"failedOverFrom,omitempty" doc:"Replicas failed over off each cluster and not moved back yet."`
	// FailingBack counts, per cluster, replicas failback moved back to it
	// that are not ready there yet: the clusters they came from keep
	// theirs until they are (make-before-break).
	FailingBack map[string]int32 `json:"failingBack,omitempty" doc:"Replicas moved back to each cluster and not ready there yet; the clusters they left keep theirs until then."`
	// Rebalanced is the last rebalance request carried out (the value of
	// the atoll.dev/rebalance-requested-at annotation it answered).
	Rebalanced string `json:"rebalanced,omitempty" doc:"The last rebalance request carried out: the atoll.dev/rebalance-requested-at value it answered."`
}

// ClusterReplicas is one cluster's share of a workload.
type ClusterReplicas struct {
	Cluster    string `json:"cluster"`
	Region     string `json:"region,omitempty"`
	Epoch      int64  `json:"epoch,omitempty"`
	Generation int64  `json:"generation,omitempty"`
	Desired    int32  `json:"desired"`
	Scheduled  int32  `json:"scheduled"`
	Ready      int32  `json:"ready"`
	Updated    int32  `json:"updated"`
	Restarts   int32  `json:"restarts,omitempty"`
	Present    int32  `json:"present,omitempty" doc:"Replicas whose process may still run in the cluster, stopping ones included."`
	// UpdatedReady and UpdatedRestarts count only the replicas of the
	// generation's template (a progressive rollout's gates judge them).
	UpdatedReady    int32       `json:"updatedReady,omitempty" doc:"Ready replicas of this generation's template (not the old ones a rolling update keeps)."`
	UpdatedRestarts int32       `json:"updatedRestarts,omitempty" doc:"Restarts of this generation's template's replicas, a replica waiting to restart after a failure counting its restart to come."`
	Pending         string      `json:"pending,omitempty"`
	Conditions      []Condition `json:"conditions,omitempty"`
	// Data names the versions of the Configs and Secrets the cluster's
	// up-to-date replicas run with (api.AnnotationData).
	Data string `json:"data,omitempty" doc:"The versions of the configs and secrets the cluster's updated replicas were given, e.g. Config/app=12,Secret/db=40 (resourceVersions)."`
	// States counts the cluster's replicas by state; Examples are a
	// bounded sample of them, the most troubled first; Problems one entry
	// per warning reason (ReplicaFailed, BackOff, ProbeFailed, Fenced, PullFailed).
	States   map[string]int32 `json:"states,omitempty" doc:"Replicas by state: Pending, Pulling, Starting, Running, Ready, BackOff, Failed, Succeeded, Stopping, Unknown."`
	Examples []ReplicaInfo    `json:"examples,omitempty" doc:"At most 10 replicas, the most troubled first."`
	Problems []ReplicaProblem `json:"problems,omitempty"`
	// ReportedAt is when the hub last heard the cluster's report of the
	// workload (as of the status's last write: it is written again when
	// the cluster's health changes).
	ReportedAt *time.Time `json:"reportedAt,omitempty" doc:"When the hub last heard this cluster report the workload."`
	// ClusterHealth is the cluster's health when it is not Ready: these
	// figures are then last known, as of ReportedAt.
	ClusterHealth string `json:"clusterHealth,omitempty" enum:"Suspect,Unreachable,Unknown" doc:"Set when the cluster is not Ready: the figures are last known, as of reportedAt."`
}

// ReplicaInfo is one replica as its member reports it.
type ReplicaInfo struct {
	Replica     string     `json:"replica"`
	Workload    string     `json:"workload,omitempty"`
	Cluster     string     `json:"cluster,omitempty"`
	Node        string     `json:"node"`
	State       string     `json:"state"`
	Restarts    int32      `json:"restarts,omitempty"`
	ExitCode    *int       `json:"exitCode,omitempty" doc:"The last run's exit code; 128+n when signal n killed it."`
	Reason      string     `json:"reason,omitempty" doc:"The kind of the last failure: ExecFailed, Exited, Signaled, OOMKilled, ProbeFailed, Fenced, InvalidSpec, PullFailed, MissingData (a config or secret, or a key of one, it uses is not in its cluster)."`
	Message     string     `json:"message,omitempty" doc:"What is wrong, in words."`
	StartedAt   *time.Time `json:"startedAt,omitempty"`
	NextStartAt *time.Time `json:"nextStartAt,omitempty" doc:"When a replica backing off starts again."`
}

// ReplicaProblem is one kind of trouble of a workload's replicas in a
// cluster.
type ReplicaProblem struct {
	Reason   string `json:"reason"`
	Replicas int32  `json:"replicas"`
	Restarts int32  `json:"restarts,omitempty"`
	Replica  string `json:"replica,omitempty" doc:"One replica that has it."`
	Node     string `json:"node,omitempty"`
	Message  string `json:"message"`
}

// GetTypeMeta implements Object.
func (w *Workload) GetTypeMeta() *TypeMeta { return &w.TypeMeta }

// GetMetadata implements Object.
func (w *Workload) GetMetadata() *ObjectMeta { return &w.Metadata }

// Validate implements Object.
func (w *Workload) Validate() FieldErrors {
	var e errs
	validateTypeMeta(&e, w.TypeMeta, "Workload")
	validateMeta(&e, &w.Metadata)
	s := &w.Spec
	if s.Replicas < 0 {
		e.addValue("spec.replicas", s.Replicas, "must be 0 or more")
	}
	if l := s.RevisionHistoryLimit; l != nil && (*l < 1 || *l > MaxRevisionHistoryLimit) {
		e.addValue("spec.revisionHistoryLimit", *l, "must be between 1 and %d (the current revision is always kept)", MaxRevisionHistoryLimit)
	}
	validateTemplate(&e, "spec.template", &s.Template)
	validateOverrides(&e, s)
	if p := s.Placement; p != nil {
		validatePlacement(&e, "spec.placement", p)
	}
	if f := s.Failover; f != nil {
		validateDuration(&e, "spec.failover.gracePeriod", f.GracePeriod)
		validateDuration(&e, "spec.failover.stabilizationWindow", f.StabilizationWindow)
		oneOf(&e, "spec.failover.mode", f.Mode, "stateless", "exclusive")
		oneOf(&e, "spec.failover.purge", f.Purge, "immediate", "graceful")
		oneOf(&e, "spec.failover.failback", f.Failback, "auto", "manual")
		oneOf(&e, "spec.failover.rebalance", f.Rebalance, RebalanceManual, RebalanceAuto)
		if f.Rebalance == RebalanceAuto && f.Mode == "exclusive" {
			e.addValue("spec.failover.rebalance", f.Rebalance, "an exclusive workload never moves while it runs (moving it stops it): rebalance must be manual")
		}
		if f.FailbackRate < 0 {
			e.addValue("spec.failover.failbackRate", f.FailbackRate, "must be 0 or more")
		}
	}
	if r := s.Rollout; r != nil {
		validateProgressive(&e, "spec.rollout", r)
	}
	if b := s.DisruptionBudget; b != nil {
		if err := b.MinAvailable.Check(); err != nil {
			e.addValue("spec.disruptionBudget.minAvailable", b.MinAvailable.String(), "%v", err)
		}
		if err := b.MaxUnavailable.Check(); err != nil {
			e.addValue("spec.disruptionBudget.maxUnavailable", b.MaxUnavailable.String(), "%v", err)
		}
		if b.MinAvailable.Set() == b.MaxUnavailable.Set() {
			e.add("spec.disruptionBudget", "set exactly one of minAvailable and maxUnavailable")
		}
	}
	if u := s.Update; u != nil {
		validateDuration(&e, "spec.update.progressDeadline", u.ProgressDeadline)
		if err := u.MaxSurge.Check(); err != nil {
			e.addValue("spec.update.maxSurge", u.MaxSurge.String(), "%v", err)
		}
		if err := u.MaxUnavailable.Check(); err != nil {
			e.addValue("spec.update.maxUnavailable", u.MaxUnavailable.String(), "%v", err)
		}
		if u.MaxSurge.IsZeroCount() && u.MaxUnavailable.IsZeroCount() && (u.MaxSurge.Set() || u.MaxUnavailable.Set()) {
			e.add("spec.update", "maxSurge and maxUnavailable cannot both be 0: the update could never progress")
		}
	}
	return e.result()
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func validateTemplate(e *errs, path string, t *ReplicaTemplate) {
	switch t.Driver {
	case "process":
		if strings.TrimSpace(t.Command) == "" {
			e.add(path+".command", "is required for the process driver")
		}
		if t.Sim != nil {
			e.add(path+".sim", "only applies to the sim driver")
		}
	case "oci":
		if strings.TrimSpace(t.Image) == "" {
			e.add(path+".image", "is required for the oci driver")
		} else if err := CheckImageRef(t.Image); err != nil {
			e.addValue(path+".image", t.Image, "%v", err)
		}
		if t.Sim != nil {
			e.add(path+".sim", "only applies to the sim driver")
		}
		if t.User != "" && !userSpec.MatchString(t.User) {
			e.addValue(path+".user", t.User, "must be uid, uid:gid or a user name")
		}
	case "sim":
		if t.Sim != nil {
			validateDuration(e, path+".sim.startLatency", t.Sim.StartLatency)
			if t.Sim.FailureRate < 0 || t.Sim.FailureRate > 1 {
				e.addValue(path+".sim.failureRate", t.Sim.FailureRate, "must be between 0 and 1")
			}
		}
	case "":
		e.add(path+".driver", "is required: process, oci or sim")
	default:
		e.addValue(path+".driver", t.Driver, "must be process, oci or sim")
	}
	if t.Driver != "oci" {
		if t.Image != "" {
			e.add(path+".image", "only applies to the oci driver")
		}
		if t.User != "" {
			e.add(path+".user", "only applies to the oci driver")
		}
		if t.ReadOnlyRoot {
			e.add(path+".readOnlyRootFilesystem", "only applies to the oci driver")
		}
		if t.ImagePullSecret != nil {
			e.add(path+".imagePullSecret", "only applies to the oci driver")
		}
	}
	seenEnv := map[string]bool{}
	for i, v := range t.Env {
		p := fmt.Sprintf("%s.env[%d].name", path, i)
		if !envName.MatchString(v.Name) {
			e.addValue(p, v.Name, "must be a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
		} else if seenEnv[v.Name] {
			e.addValue(p, v.Name, "is set twice")
		}
		seenEnv[v.Name] = true
	}
	validateDataRefs(e, path, t)
	if t.Resources.CPU != "" {
		if _, err := ParseCPU(t.Resources.CPU); err != nil {
			e.addValue(path+".resources.cpu", t.Resources.CPU, "%v", err)
		}
	}
	if t.Resources.Memory != "" {
		if _, err := ParseMemory(t.Resources.Memory); err != nil {
			e.addValue(path+".resources.memory", t.Resources.Memory, "%v", err)
		}
	}
	validatePorts(e, path, t)
	validateProbe(e, path+".livenessProbe", t.Liveness)
	validateProbe(e, path+".readinessProbe", t.Readiness)
	validateProbe(e, path+".startupProbe", t.Startup)
	if t.PortsMapped() {
		for _, pr := range []struct {
			field string
			p     *Probe
		}{{"livenessProbe", t.Liveness}, {"readinessProbe", t.Readiness}, {"startupProbe", t.Startup}} {
			validateMappedProbe(e, path+"."+pr.field, t, pr.p)
		}
	}
	oneOf(e, path+".restartPolicy", t.RestartPolicy, "Always", "OnFailure", "Never")
	validateLabels(e, path+".nodeSelector", t.NodeSelector)
	validateTolerations(e, path+".tolerations", t.Tolerations)
	validateAnnotations(e, path+".annotations", t.Annotations)
}

// validatePorts checks a template's ports: ranges, names, host ports and
// container ports used twice (per protocol), and port mapping (oci only,
// on every port or none, TCP only, a fixed host port for every port but
// the first).
func validatePorts(e *errs, path string, t *ReplicaTemplate) {
	seenName := map[string]bool{}
	seenHost := map[string]int{}
	seenContainer := map[string]int{}
	mapped := t.PortsMapped()
	for i, p := range t.Ports {
		pp := fmt.Sprintf("%s.ports[%d]", path, i)
		proto := p.Protocol
		if proto == "" {
			proto = "TCP"
		}
		if p.HostPort < 0 || p.HostPort > 65535 {
			e.addValue(pp+".hostPort", p.HostPort, "must be between 0 and 65535")
		} else if p.HostPort > 0 {
			k := fmt.Sprintf("%s/%d", proto, p.HostPort)
			if j, dup := seenHost[k]; dup {
				e.addValue(pp+".hostPort", p.HostPort, "is also the host port of %s.ports[%d]", path, j)
			} else {
				seenHost[k] = i
			}
		}
		oneOf(e, pp+".protocol", p.Protocol, "TCP", "UDP")
		if p.Name != "" {
			if !isDNSLabel(p.Name) {
				e.addValue(pp+".name", p.Name, "must be a DNS-1123 label")
			} else if seenName[p.Name] {
				e.addValue(pp+".name", p.Name, "is used twice")
			}
			seenName[p.Name] = true
		}
		switch {
		case p.ContainerPort < 0 || p.ContainerPort > 65535:
			e.addValue(pp+".containerPort", p.ContainerPort, "must be between 1 and 65535")
			continue
		case p.ContainerPort == 0 && mapped:
			e.add(pp+".containerPort", "is required: %s.ports[0] maps a container port, so every port must (the container has a network of its own)", path)
			continue
		case p.ContainerPort == 0:
			continue
		case t.Driver != "oci":
			e.add(pp+".containerPort", "only applies to the oci driver (a process shares the node's network)")
			continue
		case !mapped:
			e.add(pp+".containerPort", "set containerPort on %s.ports[0] too, or on no port: a container either has a network of its own or shares the node's", path)
			continue
		case proto != "TCP":
			e.addValue(pp+".protocol", p.Protocol, "must be TCP when containerPort is set: the node forwards TCP only")
		case i > 0 && p.HostPort == 0:
			e.add(pp+".hostPort", "is required when containerPort is set on a port after the first (only the first port's host port is allocated)")
		}
		k := fmt.Sprintf("%s/%d", proto, p.ContainerPort)
		if j, dup := seenContainer[k]; dup {
			e.addValue(pp+".containerPort", p.ContainerPort, "is also the container port of %s.ports[%d]", path, j)
		} else {
			seenContainer[k] = i
		}
	}
}

// validateMappedProbe checks that an http or tcp probe of a container
// with mapped ports names a container port that is mapped (0, the
// default, is the first port): the node probes through the host port.
func validateMappedProbe(e *errs, path string, t *ReplicaTemplate, p *Probe) {
	if p == nil {
		return
	}
	var port int32
	var field string
	switch {
	case p.HTTP != nil:
		port, field = p.HTTP.Port, path+".http.port"
	case p.TCP != nil:
		port, field = p.TCP.Port, path+".tcp.port"
	default:
		return
	}
	if port == 0 {
		return
	}
	if t.MappedPort(port) < 0 {
		e.addValue(field, port, "must be one of the template's container ports: the node probes a mapped container through its host port")
	}
}

func validateProbe(e *errs, path string, p *Probe) {
	if p == nil {
		return
	}
	n := 0
	if p.HTTP != nil {
		n++
		if p.HTTP.Path != "" && !strings.HasPrefix(p.HTTP.Path, "/") {
			e.addValue(path+".http.path", p.HTTP.Path, "must start with /")
		}
		checkPort(e, path+".http.port", p.HTTP.Port)
	}
	if p.TCP != nil {
		n++
		checkPort(e, path+".tcp.port", p.TCP.Port)
	}
	if p.Exec != nil {
		n++
		if len(p.Exec.Command) == 0 || p.Exec.Command[0] == "" {
			e.add(path+".exec.command", "needs at least the program to run")
		}
	}
	if n != 1 {
		e.add(path, "set exactly one of http, tcp and exec (found %d)", n)
	}
	for _, f := range []struct {
		name string
		v    int32
	}{{"initialDelaySeconds", p.InitialDelaySeconds}, {"periodSeconds", p.PeriodSeconds}, {"timeoutSeconds", p.TimeoutSeconds}, {"successThreshold", p.SuccessThreshold}, {"failureThreshold", p.FailureThreshold}} {
		if f.v < 0 {
			e.addValue(path+"."+f.name, f.v, "must be 0 or more")
		}
	}
}

func checkPort(e *errs, path string, port int32) {
	if port < 0 || port > 65535 {
		e.addValue(path, port, "must be between 0 and 65535")
	}
}

func validatePlacement(e *errs, path string, p *PlacementPolicy) {
	if p.ClusterSelector != nil {
		validateSelector(e, path+".clusterSelector", p.ClusterSelector)
	}
	for i, c := range p.Clusters {
		if !isDNSLabel(c) {
			e.addValue(fmt.Sprintf("%s.clusters[%d]", path, i), c, "must be a cluster name (DNS-1123 label)")
		}
	}
	for i, c := range p.ExcludeClusters {
		if !isDNSLabel(c) {
			e.addValue(fmt.Sprintf("%s.excludeClusters[%d]", path, i), c, "must be a cluster name (DNS-1123 label)")
		}
	}
	validateTolerations(e, path+".tolerations", p.Tolerations)
	for i := range p.Preferences {
		validateSelector(e, fmt.Sprintf("%s.preferences[%d].selector", path, i), &p.Preferences[i].Selector)
	}
	oneOf(e, path+".replicaMode", p.ReplicaMode, "Divided", "Duplicated")
	if w := p.Weights; w != nil {
		switch w.Type {
		case "static":
			if len(w.Static) == 0 {
				e.add(path+".weights.static", "needs at least one weight when type is static")
			}
		case "dynamic":
			if len(w.Static) > 0 {
				e.add(path+".weights.static", "only applies when type is static")
			}
		default:
			e.addValue(path+".weights.type", w.Type, "must be static or dynamic")
		}
		if p.ReplicaMode == "Duplicated" {
			e.add(path+".weights", "only applies when replicaMode is Divided")
		}
		for i, sw := range w.Static {
			wp := fmt.Sprintf("%s.weights.static[%d]", path, i)
			byCluster, byLabel := sw.Cluster != "", sw.LabelKey != "" || sw.LabelValue != ""
			switch {
			case byCluster == byLabel:
				e.add(wp, "set either cluster, or labelKey and labelValue")
			case byCluster && !isDNSLabel(sw.Cluster):
				e.addValue(wp+".cluster", sw.Cluster, "must be a cluster name (DNS-1123 label)")
			case byLabel && (sw.LabelKey == "" || sw.LabelValue == ""):
				e.add(wp, "labelKey and labelValue go together")
			case byLabel:
				if err := checkLabelKey(sw.LabelKey); err != nil {
					e.addValue(wp+".labelKey", sw.LabelKey, "%v", err)
				}
			}
			if sw.Weight < 0 {
				e.addValue(wp+".weight", sw.Weight, "must be 0 or more")
			}
		}
	}
	for i, s := range p.Spread {
		sp := fmt.Sprintf("%s.spread[%d]", path, i)
		if err := checkLabelKey(s.TopologyKey); err != nil {
			e.addValue(sp+".topologyKey", s.TopologyKey, "%v", err)
		}
		if s.MinGroups < 0 {
			e.addValue(sp+".minGroups", s.MinGroups, "must be 0 or more")
		}
		if s.MaxGroups < 0 {
			e.addValue(sp+".maxGroups", s.MaxGroups, "must be 0 or more")
		}
		if s.MaxGroups > 0 && s.MinGroups > s.MaxGroups {
			e.add(sp, "minGroups (%d) is above maxGroups (%d)", s.MinGroups, s.MaxGroups)
		}
	}
	if p.MinReplicasPerCluster < 0 {
		e.addValue(path+".minReplicasPerCluster", p.MinReplicasPerCluster, "must be 0 or more")
	}
	if p.MaxReplicasPerCluster < 0 {
		e.addValue(path+".maxReplicasPerCluster", p.MaxReplicasPerCluster, "must be 0 or more")
	}
	if p.MaxReplicasPerCluster > 0 && p.MinReplicasPerCluster > p.MaxReplicasPerCluster {
		e.add(path, "minReplicasPerCluster (%d) is above maxReplicasPerCluster (%d)", p.MinReplicasPerCluster, p.MaxReplicasPerCluster)
	}
}

func validateTolerations(e *errs, path string, ts []Toleration) {
	for i, t := range ts {
		tp := fmt.Sprintf("%s[%d]", path, i)
		oneOf(e, tp+".operator", t.Operator, "Equal", "Exists")
		oneOf(e, tp+".effect", t.Effect, "NoSchedule", "NoExecute")
		if t.Key != "" {
			if err := checkLabelKey(t.Key); err != nil {
				e.addValue(tp+".key", t.Key, "%v", err)
			}
		} else if t.Operator != "Exists" {
			e.add(tp+".key", "may be empty only with operator Exists")
		}
		if t.Operator == "Exists" && t.Value != "" {
			e.add(tp+".value", "must be empty with operator Exists")
		}
	}
}

func validateTypeMeta(e *errs, tm TypeMeta, kind string) {
	if tm.APIVersion != "" && tm.APIVersion != Group {
		e.addValue("apiVersion", tm.APIVersion, "must be %s", Group)
	}
	if tm.Kind != "" && tm.Kind != kind {
		e.addValue("kind", tm.Kind, "must be %s", kind)
	}
}

func validateMeta(e *errs, m *ObjectMeta) {
	if m.Name == "" {
		e.add("metadata.name", "is required")
	} else if !isDNSLabel(m.Name) {
		e.addValue("metadata.name", m.Name, "must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters")
	}
	validateLabels(e, "metadata.labels", m.Labels)
	validateAnnotations(e, "metadata.annotations", m.Annotations)
	for i, f := range m.Finalizers {
		if err := checkLabelKey(f); err != nil {
			e.addValue(fmt.Sprintf("metadata.finalizers[%d]", i), f, "%v", err)
		}
	}
	if m.ResourceVersion != "" {
		if _, err := strconv.ParseInt(m.ResourceVersion, 10, 64); err != nil {
			e.addValue("metadata.resourceVersion", m.ResourceVersion, "is not a resourceVersion this hub issued")
		}
	}
}

func oneOf(e *errs, path, v string, allowed ...string) {
	if v == "" {
		return
	}
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	e.addValue(path, v, "must be one of %s", strings.Join(allowed, ", "))
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func isDNSLabel(s string) bool { return len(s) <= 63 && dnsLabel.MatchString(s) }

// IsDNSLabel reports whether s is a valid object name.
func IsDNSLabel(s string) bool { return isDNSLabel(s) }

// validateAnnotations checks annotation keys and their total size.
func validateAnnotations(e *errs, path string, ann map[string]string) {
	size := 0
	for k, v := range ann {
		if err := checkLabelKey(k); err != nil {
			e.addValue(path, k, "%v", err)
		}
		size += len(k) + len(v)
	}
	if size > 256*1024 {
		e.add(path, "total size %d bytes is above the 262144-byte limit", size)
	}
}
