package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/atollhq/atoll/api"
)

func TestClusterOf(t *testing.T) {
	t.Parallel()
	for subject, want := range map[string]string{
		"atoll.m.eu-west.hb":      "eu-west",
		"atoll.m.eu-west.r.abc":   "eu-west",
		"atoll.m.eu-west":         "",
		"atoll.h.eu-west.desired": "",
		"atoll.m.":                "",
		"x":                       "",
	} {
		if got := ClusterOf(subject); got != want {
			t.Errorf("ClusterOf(%q) = %q, want %q", subject, got, want)
		}
	}
}

func TestDecodeHeartbeat(t *testing.T) {
	t.Parallel()
	good, _ := json.Marshal(Heartbeat{Version: Version, Cluster: "a", Seq: 1})
	future, _ := json.Marshal(Heartbeat{Version: Version + 1, Cluster: "a"})
	other, _ := json.Marshal(Heartbeat{Version: Version, Cluster: "b"})
	cases := []struct {
		name    string
		subject string
		data    []byte
		want    error
	}{
		{"good", HeartbeatSubject("a"), good, nil},
		{"garbage", HeartbeatSubject("a"), []byte("\x00{"), ErrMalformed},
		{"newer protocol", HeartbeatSubject("a"), future, ErrVersion},
		{"names another cluster", HeartbeatSubject("a"), other, ErrWrongCluster},
		{"not a member subject", "atoll.h.a.hb", good, ErrWrongCluster},
	}
	for _, c := range cases {
		_, err := DecodeHeartbeat(c.subject, c.data)
		if !errors.Is(err, c.want) && !(c.want == nil && err == nil) {
			t.Errorf("%s: want %v, got %v", c.name, c.want, err)
		}
	}
}

func TestDecodeDesired(t *testing.T) {
	t.Parallel()
	ok := DesiredWorkload{Version: Version, Workload: "web", Epoch: 1, Replicas: 2, Template: api.ReplicaTemplate{Driver: "sim"}}
	cases := []struct {
		name   string
		mutate func(d *DesiredWorkload)
		valid  bool
	}{
		{"valid", func(*DesiredWorkload) {}, true},
		{"tombstone needs no template", func(d *DesiredWorkload) { d.Deleted, d.Template = true, api.ReplicaTemplate{} }, true},
		{"zero epoch", func(d *DesiredWorkload) { d.Epoch = 0 }, false},
		{"bad name", func(d *DesiredWorkload) { d.Workload = "Web!" }, false},
		{"negative replicas", func(d *DesiredWorkload) { d.Replicas = -1 }, false},
		{"bad template", func(d *DesiredWorkload) { d.Template.Driver = "docker" }, false},
		{"unknown strategy", func(d *DesiredWorkload) { d.Scheduling.Strategy = "random" }, false},
		{"old protocol", func(d *DesiredWorkload) { d.Version = 0 }, false},
	}
	for _, c := range cases {
		d := ok
		c.mutate(&d)
		data, _ := json.Marshal(d)
		_, err := DecodeDesired(data)
		if (err == nil) != c.valid {
			t.Errorf("%s: valid=%v, got err %v", c.name, c.valid, err)
		}
	}
	if _, err := DecodeDesired([]byte("[")); !errors.Is(err, ErrMalformed) {
		t.Errorf("garbage: want ErrMalformed, got %v", err)
	}
}

func TestDecodeDesiredBatch(t *testing.T) {
	t.Parallel()
	one := func(name string) DesiredWorkload {
		return DesiredWorkload{Version: Version, Workload: name, Epoch: 1, Replicas: 1, Template: api.ReplicaTemplate{Driver: "sim"}}
	}
	full := DesiredBatch{Version: Version}
	for i := range MaxDesiredBatch + 1 {
		full.Workloads = append(full.Workloads, one(fmt.Sprintf("w%d", i)))
	}
	cases := []struct {
		name  string
		batch DesiredBatch
		want  error
	}{
		{"valid", DesiredBatch{Version: Version, Workloads: []DesiredWorkload{one("a"), one("b")}}, nil},
		// An invalid entry is the receiver's to refuse alone.
		{"one bad entry", DesiredBatch{Version: Version, Workloads: []DesiredWorkload{one("a"), {Version: Version, Workload: "Bad!"}}}, nil},
		{"old protocol", DesiredBatch{Version: 0, Workloads: []DesiredWorkload{one("a")}}, ErrVersion},
		{"same workload twice", DesiredBatch{Version: Version, Workloads: []DesiredWorkload{one("a"), one("a")}}, ErrMalformed},
		{"too many", full, ErrMalformed},
	}
	for _, c := range cases {
		data, _ := json.Marshal(c.batch)
		_, err := DecodeDesiredBatch(data)
		if !errors.Is(err, c.want) && !(c.want == nil && err == nil) {
			t.Errorf("%s: want %v, got %v", c.name, c.want, err)
		}
	}
	if _, err := DecodeDesiredBatch([]byte(`{"v":`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("garbage: want ErrMalformed, got %v", err)
	}
}

func TestSpokenWith(t *testing.T) {
	t.Parallel()
	for peer, want := range map[int]int{0: Version, MinVersion - 1: Version, MinVersion: MinVersion, Version: Version, Version + 1: Version} {
		if got := SpokenWith(peer); got != want {
			t.Errorf("SpokenWith(%d): want %d, got %d", peer, want, got)
		}
	}
}

func TestReplicaStateOf(t *testing.T) {
	for _, c := range []struct {
		phase string
		ready bool
		want  string
	}{
		{"Running", true, StateReady}, {"Running", false, StateRunning}, {"Backoff", false, StateBackOff},
		{"Pending", false, StatePending}, {"Starting", false, StateStarting}, {"Failed", false, StateFailed},
		{"Succeeded", false, StateSucceeded}, {"Stopping", false, StateStopping}, {"", false, StatePending}, {"Weird", false, StateUnknown},
	} {
		if got := ReplicaStateOf(c.phase, c.ready); got != c.want {
			t.Errorf("ReplicaStateOf(%q, %v) = %s, want %s", c.phase, c.ready, got, c.want)
		}
	}
}

func TestDecodeReplicasQuery(t *testing.T) {
	for _, c := range []struct {
		in      string
		ok      bool
		wantLim int
	}{
		{`{"v":6}`, true, MaxReplicasListed},
		{`{"v":6,"workload":"web","node":"n1","limit":5}`, true, 5},
		{`{"v":6,"limit":999999}`, true, MaxReplicasListed},
		{`{"v":6,"workload":"../x"}`, false, 0},
		{`{"v":6,"node":"A B"}`, false, 0},
		{`{"v":99}`, false, 0},
		{`nope`, false, 0},
	} {
		q, err := DecodeReplicasQuery([]byte(c.in))
		if (err == nil) != c.ok || (c.ok && q.Limit != c.wantLim) {
			t.Errorf("%s: %+v, %v", c.in, q, err)
		}
	}
}

// TestDecodeStatusReport: a whole report is refused, with the reason its
// drop is counted under, when garbled, of another version or about
// another cluster than its subject's, or naming a workload by no name a
// workload can have.
func TestDecodeStatusReport(t *testing.T) {
	t.Parallel()
	report := func(version int, cluster string) []byte {
		b, _ := json.Marshal(StatusReport{Version: version, Cluster: cluster, Workloads: []WorkloadStatus{{Workload: "w", Ready: 1}}})
		return b
	}
	for _, c := range []struct {
		name, subject string
		data          []byte
		reason        string // "": taken
	}{
		{"good", StatusSubject("a"), report(Version, "a"), ""},
		{"garbage", StatusSubject("a"), []byte("{"), "malformed"},
		{"newer protocol", StatusSubject("a"), report(Version+1, "a"), "version"},
		{"names another cluster", StatusSubject("a"), report(Version, "b"), "wrong_cluster"},
		{"a workload name no DNS label", StatusSubject("a"), []byte(`{"v":` + strconv.Itoa(Version) + `,"cluster":"a","workloads":[{"workload":"w"},{"workload":"../x"}]}`), "malformed"},
	} {
		r, err := DecodeStatusReport(c.subject, c.data)
		switch {
		case c.reason == "" && (err != nil || r.Cluster != "a" || len(r.Workloads) != 1):
			t.Errorf("%s: want it taken; got %+v, %v", c.name, r, err)
		case c.reason != "" && (err == nil || DropReason(err) != c.reason):
			t.Errorf("%s: want refused as %s; got %v", c.name, c.reason, err)
		}
	}
}

// TestDecodeStatusDelta: a delta is refused, with the reason its drop is
// counted under, when garbled, of another version or cluster than its
// subject's, without a session (or with one too long to keep), numbered
// zero, beyond its bound of workloads, or naming a workload, changed or
// removed, by no name a workload can have.
func TestDecodeStatusDelta(t *testing.T) {
	t.Parallel()
	delta := func(change func(d *StatusDelta)) []byte {
		d := StatusDelta{Version: Version, Cluster: "a", Session: "s1", Seq: 1,
			Workloads: []WorkloadStatus{{Workload: "w", Ready: 1}}, Removed: []string{"v"}}
		if change != nil {
			change(&d)
		}
		b, _ := json.Marshal(d)
		return b
	}
	many := make([]WorkloadStatus, MaxStatusDeltaWorkloads)
	for i := range many {
		many[i].Workload = fmt.Sprintf("w%d", i)
	}
	for _, c := range []struct {
		name   string
		data   []byte
		reason string // "": taken
	}{
		{"good", delta(nil), ""},
		{"at its bound", delta(func(d *StatusDelta) { d.Workloads, d.Removed = many, nil }), ""},
		{"garbage", []byte("{"), "malformed"},
		{"newer protocol", delta(func(d *StatusDelta) { d.Version = Version + 1 }), "version"},
		{"names another cluster", delta(func(d *StatusDelta) { d.Cluster = "b" }), "wrong_cluster"},
		{"no session", delta(func(d *StatusDelta) { d.Session = "" }), "malformed"},
		{"a session too long", delta(func(d *StatusDelta) { d.Session = string(make([]byte, 65)) }), "malformed"},
		{"seq zero", delta(func(d *StatusDelta) { d.Seq = 0 }), "malformed"},
		{"beyond its bound", delta(func(d *StatusDelta) { d.Workloads = many }), "malformed"},
		{"a changed workload no DNS label", delta(func(d *StatusDelta) { d.Workloads[0].Workload = "../x" }), "malformed"},
		{"a removed workload no DNS label", delta(func(d *StatusDelta) { d.Removed = []string{"v", "A_B"} }), "malformed"},
	} {
		d, err := DecodeStatusDelta(StatusDeltaSubject("a"), c.data)
		switch {
		case c.reason == "" && (err != nil || d.Cluster != "a" || d.Seq != 1):
			t.Errorf("%s: want it taken; got %+v, %v", c.name, d, err)
		case c.reason != "" && (err == nil || DropReason(err) != c.reason):
			t.Errorf("%s: want refused as %s; got %v", c.name, c.reason, err)
		}
	}
}
