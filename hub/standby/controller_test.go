package standby

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// store serves fixed workloads, clusters and placements.
type store struct {
	records map[string][]*pgstore.Record
	rows    []pgstore.Placement
}

func (s *store) List(_ context.Context, kind string, _ pgstore.ListOptions) (*pgstore.ListResult, error) {
	return &pgstore.ListResult{Items: s.records[kind], ResourceVersion: "1"}, nil
}

// Changes: the records never change.
func (s *store) Changes(context.Context, string, int64, int) ([]pgstore.Change, error) {
	return nil, nil
}

func (s *store) PlacementsFor(_ context.Context, workloads []string) ([]pgstore.Placement, error) {
	var out []pgstore.Placement
	for _, r := range s.rows {
		if slices.Contains(workloads, r.Workload) {
			out = append(out, r)
		}
	}
	return out, nil
}

var digest = "sha256:" + strings.Repeat("a", 64)

// pins pins every tag to one digest.
type pins struct{}

func (pins) Pin(_ context.Context, _ api.Workload, _ int64, t api.ReplicaTemplate) (api.ReplicaTemplate, bool, error) {
	t.Image += "@" + digest
	return t, true, nil
}

// bus is the members: each holds a list as a member does (or answers
// nothing when silent).
type bus struct {
	mu     sync.Mutex
	held   map[string]protocol.StandbyList
	silent map[string]bool
	sent   map[string]int // full lists received
	checks map[string]int
}

func (b *bus) Request(_ context.Context, cluster, _ string, data []byte) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.silent[cluster] {
		return nil, errors.New("no reply")
	}
	var l protocol.StandbyList
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, err
	}
	if err := l.Validate(); err != nil {
		return json.Marshal(protocol.StandbyAck{Reason: err.Error()})
	}
	if l.Check {
		b.checks[cluster]++
	} else {
		b.sent[cluster]++
		b.held[cluster] = l
	}
	h := b.held[cluster]
	if h.Digest == "" {
		h.Digest = protocol.StandbyDigest(nil)
	}
	return json.Marshal(protocol.StandbyAck{Accepted: true, Epoch: h.Epoch, Digest: h.Digest})
}

type health map[string]string

func (h health) Live(c string) (failover.Live, bool) {
	s, ok := h[c]
	return failover.Live{Health: s, Heard: true, Seen: time.Now(), Since: time.Now().Add(-time.Hour)}, ok
}

func record(t *testing.T, kind string, obj any) *pgstore.Record {
	t.Helper()
	var v struct {
		Metadata api.ObjectMeta  `json:"metadata"`
		Spec     json.RawMessage `json:"spec"`
	}
	b, _ := json.Marshal(obj)
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &pgstore.Record{Kind: kind, Meta: v.Metadata, Spec: v.Spec, Status: []byte("{}")}
}

// TestControllerDelivers: each Ready member gets its list once, then
// only digest checks; a member that lost its list (restarted) gets it
// again at the next check; a silent member is asked again only after
// the check period; a member not Ready is sent nothing.
func TestControllerDelivers(t *testing.T) {
	now := time.Now()
	st := &store{records: map[string][]*pgstore.Record{}, rows: []pgstore.Placement{{Workload: "web", Cluster: "a", Replicas: 2, Epoch: 1}}}
	for _, c := range []string{"a", "b", "c", "d"} {
		st.records["Cluster"] = append(st.records["Cluster"], record(t, "Cluster", api.Cluster{Metadata: api.ObjectMeta{Name: c, Labels: map[string]string{api.LabelRegion: c}}}))
	}
	st.records["Workload"] = []*pgstore.Record{record(t, "Workload", oci("web", 2, nil))}
	b := &bus{held: map[string]protocol.StandbyList{}, silent: map[string]bool{"c": true}, sent: map[string]int{}, checks: map[string]int{}}
	c := New(st, pins{}, b, health{"a": api.HealthReady, "b": api.HealthReady, "c": api.HealthReady, "d": api.HealthSuspect}, nil,
		Config{Now: func() time.Time { return now }, CheckEvery: 10 * time.Second})
	ctx := context.Background()
	if err := c.RunOnce(ctx); err == nil {
		t.Error("a silent member: want the pass to say so")
	}
	if b.sent["a"] != 1 || b.sent["b"] != 1 || b.sent["d"] != 0 {
		t.Fatalf("first pass: lists sent %v; want a and b once (d is not Ready)", b.sent)
	}
	if got := b.held["b"].Images; len(got) != 1 || got[0].Workload != "web" || got[0].Image != "r.example/web:v1@"+digest {
		t.Errorf("b's list: %+v; want web's pinned image", got)
	}
	if len(b.held["a"].Images) != 0 {
		t.Errorf("a runs web, yet holds %+v", b.held["a"].Images)
	}
	// Within the check period: nothing is asked, the silent member neither.
	now = now.Add(time.Second)
	if err := c.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if b.sent["b"] != 1 || b.checks["b"] != 0 {
		t.Errorf("second pass: sent %v, checks %v; want nothing new", b.sent, b.checks)
	}
	// b restarts and loses its list; c comes back: the next check repairs.
	b.mu.Lock()
	delete(b.held, "b")
	b.silent["c"] = false
	b.mu.Unlock()
	now = now.Add(15 * time.Second)
	if err := c.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if b.checks["b"] != 1 || b.sent["b"] != 2 || b.sent["c"] != 1 {
		t.Errorf("after the check period: checks %v, sent %v; want b checked and sent its list again, c sent its list", b.checks, b.sent)
	}
}
