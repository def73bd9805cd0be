//go:build linux

package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atollhq/atoll/api"
)

const (
	// stalledGapBound is what the test asserts of the healthy hub's
	// longest gap between acknowledged writes while the other hub is
	// stopped: the target is 1 s (issue 20; the stopped hub's sessions are
	// ended after 1 s idle), the bound leaves room for a busy two-core
	// machine, and the write path this replaced gave 10-40 s.
	stalledGapBound = 3 * time.Second
	// stalledFor is how long the stopped hub stays stopped: past the 1 s
	// after which PostgreSQL ends its sessions, with room to see the
	// healthy hub's writes go on after that. It must exceed
	// stalledGapBound: a window no longer than the bound would pass a
	// healthy hub that acknowledged nothing at all in it.
	stalledFor = stalledGapBound + 2*time.Second
	// stalledWriters is how many clients write through the hub that is
	// stopped, so that about that many writes are in flight when it stops.
	stalledWriters = 8
)

// TestStalledHubDelaysNoOtherHub: two `atoll hub` processes on one
// PostgreSQL; eight clients write through one of them, which is then
// SIGSTOPped with their writes in flight, while two clients write through
// the other. The other hub's writes go on: its longest gap between
// acknowledged writes stays under stalledGapBound (the figure goes in
// BENCHMARKS.md); a watch through it sees every acknowledged write, in
// increasing resourceVersions; the stopped hub, resumed, writes again.
func TestStalledHubDelaysNoOtherHub(t *testing.T) {
	// Not parallel: it measures a bound that other tests' processes on two
	// cores would only blur.
	dir, pg, keyFile := hubsDatabase(t, "atoll-e2e-stalled-")
	startOne := func(name string) *hubProc {
		addr := freeAddr(t)
		return startHub(t, t, name, addr, filepath.Join(dir, name), "hub", "--listen", addr, "--data-dir", filepath.Join(dir, name),
			"--name", name, "--nats-listen", "127.0.0.1:0", "--leaf-listen", "127.0.0.1:0",
			"--database-url", pg.HubURL(), "--migrate-database-url", pg.OwnerURL(), "--key-file", keyFile)
	}
	healthy := startOne("hub-healthy")
	tok, err := os.ReadFile(filepath.Join(dir, "hub-healthy", "admin-token"))
	if err != nil {
		t.Fatalf("want the first hub on the database to write its admin token; got %v", err)
	}
	healthy.api.token = strings.TrimSpace(string(tok))
	stalled := startOne("hub-stalled")
	stalled.api.token = healthy.api.token

	// A watch through the healthy hub, from before any write.
	var list api.WorkloadList
	status, body, err := healthy.api.request(http.MethodGet, "/api/v1/workloads", healthy.api.token, nil)
	if err == nil && status == http.StatusOK {
		err = json.Unmarshal(body, &list)
	}
	if err != nil || status != http.StatusOK {
		t.Fatalf("want GET workloads through %s to answer 200; got %d (%v)", healthy.name, status, err)
	}
	events := watchEvents(t, healthy, list.Metadata.ResourceVersion)

	// The stopped hub's clients each update a workload of their own, as
	// fast as it answers.
	for i := range stalledWriters {
		writeWorkload(t, stalled, fmt.Sprintf("stalled-%d", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var stalledAcks sync.Map // client -> count
	for i := range stalledWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("stalled-%d", i)
			for n := 0; ctx.Err() == nil; n++ {
				patch := []byte(fmt.Sprintf(`{"metadata":{"labels":{"n":"%d"}}}`, n))
				if st, _, err := patchRequest(ctx, stalled, name, patch); err == nil && st == http.StatusOK {
					c, _ := stalledAcks.LoadOrStore(i, new(int))
					*c.(*int)++
				}
			}
		}()
	}
	// The healthy hub's two clients create workloads; every answer is
	// timed.
	var mu sync.Mutex
	var acks []time.Time
	var created []string
	for c := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				name := fmt.Sprintf("healthy-%d-%d", c, n)
				if err := createWorkload(ctx, healthy, name); err != nil {
					if ctx.Err() == nil {
						t.Errorf("want every create through %s to succeed while %s is stopped; %s: %v", healthy.name, stalled.name, name, err)
					}
					return
				}
				mu.Lock()
				acks = append(acks, time.Now())
				created = append(created, name)
				mu.Unlock()
			}
		}()
	}
	// Both hubs are writing before the stop.
	waitFor(t, 2*multiHubTimeout, "writes through both hubs", func() bool {
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		k := 0
		stalledAcks.Range(func(_, _ any) bool { k++; return true })
		return n >= 20 && k == stalledWriters
	})

	if err := syscall.Kill(-stalled.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("want SIGSTOP delivered to %s; got %v", stalled.name, err)
	}
	stopped := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(-stalled.cmd.Process.Pid, syscall.SIGCONT)
		}
	}()
	inTx := idleInTransaction(t, pg.HubURL(), 900*time.Millisecond)
	for time.Since(stopped) < stalledFor {
		time.Sleep(pollEvery) // the healthy hub's clients write meanwhile; this only paces the window
	}
	mu.Lock()
	window := slices.Clone(acks)
	mu.Unlock()
	if err := syscall.Kill(-stalled.cmd.Process.Pid, syscall.SIGCONT); err != nil {
		t.Fatalf("want SIGCONT delivered to %s; got %v", stalled.name, err)
	}
	resumed = true
	gap, during := longestGap(window, stopped, stopped.Add(stalledFor))
	t.Logf("%s stopped %s with %d of its sessions idle in a transaction (%d clients writing); %s acknowledged %d creates meanwhile, longest gap %s",
		stalled.name, stalledFor, inTx, stalledWriters, healthy.name, during, gap.Round(time.Millisecond))
	if gap > stalledGapBound {
		t.Errorf("want %s's longest gap between acknowledged writes under %s while %s is stopped; it was %s", healthy.name, stalledGapBound, stalled.name, gap)
	}

	// The resumed hub writes again.
	waitFor(t, multiHubTimeout, "a write through the resumed hub", func() bool {
		st, _, err := patchRequest(context.Background(), stalled, "stalled-0", []byte(`{"metadata":{"labels":{"resumed":"yes"}}}`))
		return err == nil && st == http.StatusOK
	})
	cancel()
	wg.Wait()

	// Every acknowledged create reaches the watch, in order.
	mu.Lock()
	want := slices.Clone(created)
	mu.Unlock()
	seen := map[string]bool{}
	var last int64
	deadline := time.After(multiHubTimeout)
	for len(seen) < len(want) {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the watch through %s ended after %d of %d creates", healthy.name, len(seen), len(want))
			}
			if ev.rv <= last {
				t.Fatalf("the watch through %s sent version %d after %d", healthy.name, ev.rv, last)
			}
			last = ev.rv
			if ev.typ == api.Added && strings.HasPrefix(ev.name, "healthy-") {
				seen[ev.name] = true
			}
		case <-deadline:
			var missing []string
			for _, n := range want {
				if !seen[n] {
					missing = append(missing, n)
				}
			}
			t.Fatalf("want every create acknowledged by %s on its watch within %s; %d missing, e.g. %v", healthy.name, multiHubTimeout, len(missing), missing[:min(5, len(missing))])
		}
	}
}

// longestGap is the longest time between consecutive acknowledgements
// within [from, to], counting from `from` to the first and from the last
// to `to`, and how many fell within.
func longestGap(acks []time.Time, from, to time.Time) (time.Duration, int) {
	slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
	prev, gap, n := from, time.Duration(0), 0
	for _, a := range acks {
		if a.Before(from) || a.After(to) {
			continue
		}
		gap = max(gap, a.Sub(prev))
		prev = a
		n++
	}
	return max(gap, to.Sub(prev)), n
}

// idleInTransaction is the most sessions of the database seen idle inside
// a transaction for over 100 ms (a stopped hub's) within d.
func idleInTransaction(t *testing.T, url string, d time.Duration) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Logf("count sessions idle in a transaction: %v", err)
		return -1
	}
	defer conn.Close(context.Background())
	most := 0
	for ctx.Err() == nil {
		var n int
		if conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND state = 'idle in transaction' AND now() - state_change > interval '100 ms'`).Scan(&n) == nil {
			most = max(most, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return most
}

func writeWorkload(t *testing.T, h *hubProc, name string) {
	t.Helper()
	if err := createWorkload(context.Background(), h, name); err != nil {
		t.Fatalf("want workload %s created through %s; got %v", name, h.name, err)
	}
}

// createWorkload creates a workload placed nowhere (a cluster that does
// not exist): the write alone is measured.
func createWorkload(ctx context.Context, h *hubProc, name string) error {
	w := api.Workload{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Workload"}, Metadata: api.ObjectMeta{Name: name},
		Spec: api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "sim"},
			Placement: &api.PlacementPolicy{Clusters: []string{"nowhere"}}}}
	body, _ := json.Marshal(w)
	st, resp, err := doRequest(ctx, h, http.MethodPost, "/api/v1/workloads", "application/json", body)
	if err == nil && st != http.StatusCreated {
		err = fmt.Errorf("POST answered %d %s", st, resp)
	}
	return err
}

func patchRequest(ctx context.Context, h *hubProc, name string, patch []byte) (int, []byte, error) {
	return doRequest(ctx, h, http.MethodPatch, "/api/v1/workloads/"+name, "application/merge-patch+json", patch)
}

func doRequest(ctx context.Context, h *hubProc, method, path, contentType string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cliTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, h.api.url+path, strings.NewReader(string(body)))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+h.api.token)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, err = bufio.NewReader(resp.Body).WriteTo(&b)
	return resp.StatusCode, []byte(b.String()), err
}

type watchEvent struct {
	rv   int64
	typ  string
	name string
}

// watchEvents streams a watch of workloads through h from version from;
// the channel closes when the stream ends (at the test's end).
func watchEvents(t *testing.T, h *hubProc, from string) <-chan watchEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.api.url+"/api/v1/watch/workloads?resourceVersion="+from, nil)
	req.Header.Set("Authorization", "Bearer "+h.api.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("want a watch through %s; got %v (%v)", h.name, resp, err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	out := make(chan watchEvent, 4096)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		var ev watchEvent
		for sc.Scan() {
			line := sc.Text()
			if id, ok := strings.CutPrefix(line, "id: "); ok {
				ev.rv, _ = strconv.ParseInt(id, 10, 64)
			}
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			var we struct {
				Type   string `json:"type"`
				Object struct {
					Metadata api.ObjectMeta `json:"metadata"`
				} `json:"object"`
			}
			if json.Unmarshal([]byte(data), &we) == nil {
				ev.typ, ev.name = we.Type, we.Object.Metadata.Name
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// waitFor polls cond until it holds, for at most timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("want %s within %s", what, timeout)
		}
		time.Sleep(pollEvery)
	}
}
