package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
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
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// BenchmarkScale is issue 20's scale harness: a stated fraction f of the
// issue's scale (100 clusters of 1,000 sim nodes, 100,000 workloads,
// 1,000,000 replicas), at three fractions so that the growth of each cost
// shows. At fraction f it runs 100,000·f sim nodes in members of 100
// (1000·f members: ten times the clusters of the full scale, each a
// tenth of its size; ATOLL_SCALE_NODES=1000 gives the shape, 100·f
// members of 1,000), and 100,000·f workloads of 10 sim replicas
// (50m/32Mi, 50 ms start, Divided, failover grace 0s), created by 16
// clients through the API while 100 clients watch workloads.
//
// Each part runs in its own OS processes: the hub is the real `atoll hub`
// binary (built from cmd/atoll at the start) on a private PostgreSQL; the
// members and their sim node fleets run in ATOLL_SCALE_FLEETS processes
// (default 3: this test binary run again, see scaleprocs_test.go), and
// the 10% of the clusters (at least one) that the region loss stops run
// in one more, which is SIGKILLed; the watchers run in a process of
// their own (scalewatch_test.go); the benchmark process itself is only
// the creating clients. It records:
//
//   - the creates' rate and the time from the first create to every
//     replica Ready (from the fleets' OnReady hooks, timed in the fleets);
//
//   - CPU seconds over that span of the hub process, of the fleet
//     processes, of PostgreSQL (its postmaster and backends) and of the
//     clients; the hub's RSS before the first create and at all Ready
//     (and its peak), and the fleets' RSS per 1,000 sim nodes;
//
//   - the PostgreSQL database's size;
//
//   - the watchers' lag: for every watcher and workload, from the create
//     call returning to that watcher's ADDED event (p50, p99, max);
//
//   - console page time: the overview (/) and the workloads page, each
//     fetched 5 times after all are Ready, signed in with a session;
//
//   - a region loss: the loss process is SIGKILLed with its clusters
//     (10%, at least one; those whose names sort first, see below);
//     detection (to the last of them Unreachable in the hub's API) and RTO
//     (from detection until the workloads they held have as many replicas
//     Ready on the others, started after the loss, as they lost there;
//     percentiles too).
//
//     go test ./hub -run '^$' -bench BenchmarkScale -benchtime 1x -timeout 60m
//
// ATOLL_SCALE_FRACTIONS sets the fractions (default "0.002,0.004,0.008");
// ATOLL_SCALE_WATCHERS the watchers (default 100); ATOLL_SCALE_NODES the
// sim nodes per member (default 100); ATOLL_SCALE_FLEETS the fleet
// processes besides the loss's (default 3). ATOLL_SCALE_PROFILE=dir
// writes CPU profiles of the span from the first create to all Ready:
// the fleets' (pprof) and, when perf is installed, the hub's (perf
// record; `perf report -i dir/hub-*.perf`), and the hub's heap profiles
// (after a GC, from the hub's --debug-listen) before the first create,
// at all Ready and once settled (the watchers caught up):
// dir/hub-heap-{before-,,settled-}*.pprof, and its CPU profile over the
// 15 s from the region loss's kill, dir/hub-loss-cpu-*.pprof, and the
// surviving fleets' from the kill to all Ready, dir/fleet*-loss-*.pprof;
// read them with `go tool pprof
// -sample_index=inuse_space -top [-diff_base before] profile`. The hub's
// Go heap (in use, and live after a GC, from its MemStats) is reported
// next to its RSS, each also per workload; ATOLL_SCALE_HUB_ENV adds to
// the hub's environment alone (e.g. "GOGC=50 GOMEMLIMIT=300MiB"),
// ATOLL_SCALE_HUB_ARGS to its flags (e.g. "--leaf-compression off").
// ATOLL_SCALE_FLEET_NICE=n runs the fleet processes at nice n: the hub
// and PostgreSQL then take the CPU first, as on machines apart from the
// members'.
func BenchmarkScale(b *testing.B) {
	fractions := []float64{0.002, 0.004, 0.008}
	if v := os.Getenv("ATOLL_SCALE_FRACTIONS"); v != "" {
		fractions = fractions[:0]
		for _, f := range strings.Split(v, ",") {
			x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || x <= 0 || x > 1 {
				b.Fatalf("ATOLL_SCALE_FRACTIONS: %q is no fraction in (0, 1]", f)
			}
			fractions = append(fractions, x)
		}
	}
	cfg := scaleConfig{
		watchers:  envInt("ATOLL_SCALE_WATCHERS", 100),
		nodesPer:  envInt("ATOLL_SCALE_NODES", 100),
		fleets:    envInt("ATOLL_SCALE_FLEETS", 3),
		profile:   os.Getenv("ATOLL_SCALE_PROFILE"),
		fleetNice: envInt("ATOLL_SCALE_FLEET_NICE", 0),
		atoll:     buildAtoll(b, b.TempDir()),
	}
	for _, f := range fractions {
		c := cfg
		c.clusters = max(2, int(100000*f/float64(c.nodesPer)+0.5)) // a loss needs somewhere to go
		c.workloads = max(1, int(100000*f+0.5))
		c.perWorkload = 10
		c.label = fmt.Sprintf("f%g", f)
		b.Run(fmt.Sprintf("f=%g/clusters=%d/nodes=%d/replicas=%d", f, c.clusters, c.clusters*c.nodesPer, c.workloads*c.perWorkload), func(b *testing.B) {
			for range b.N {
				scaleOnce(b, c)
			}
		})
	}
}

type scaleConfig struct {
	clusters, nodesPer, workloads, perWorkload, watchers, fleets int
	fleetNice                                                    int
	profile, atoll, label                                        string
}

func scaleOnce(b *testing.B, c scaleConfig) {
	b.StopTimer()
	b.Logf("load at the start: %s", loadAverage())
	ctx := context.Background()
	db := pgtest.NewDatabaseRoles(b)
	h := startScaleHub(b, c.atoll, db)
	admin := client.New(h.url, h.token, nil)
	store, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: db.Hub, MaxConns: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	postmaster := postgresPID(b, db.Admin)

	total := c.workloads * c.perWorkload
	var mu sync.Mutex
	ready := make(map[string]bool, total) // replicas that became Ready
	allReady := make(chan time.Time, 1)
	lost := map[string]bool{} // clusters stopped for the region loss
	// owed is, for each workload the loss took replicas of, how many; a
	// replica of it Ready on another cluster after the loss counts, up to
	// that many (the members' own replacements of other workloads, on a
	// starved host, do not).
	owed := map[string]int{}
	var replaced []time.Time // Ready times on the others after the loss
	up := map[string]bool{}
	watchState := "" // the watchers' last line
	// gap is the longest a fleet went without a heartbeat of one of its
	// nodes (reported when over 1 s), reset at each phase below.
	var gap time.Duration
	takeGap := func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		g := gap
		gap = 0
		return g
	}
	var fleetErr error
	onLine := func(line string) {
		rest, ok := strings.CutPrefix(line, scaleLinePrefix)
		if !ok {
			return
		}
		f := strings.Fields(rest)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case len(f) == 4 && f[0] == "ready":
			ns, _ := strconv.ParseInt(f[3], 10, 64)
			at := time.Unix(0, ns)
			if len(lost) > 0 {
				w := f[2][:max(strings.LastIndexByte(f[2], '-'), 0)]
				if !lost[f[1]] && owed[w] > 0 {
					owed[w]--
					replaced = append(replaced, at)
				}
				return
			}
			if ready[f[2]] {
				return
			}
			ready[f[2]] = true
			if len(ready) == total {
				allReady <- at
			}
		case len(f) > 0 && (f[0] == "connected" || f[0] == "watched"):
			watchState = rest
		case len(f) == 2 && f[0] == "up":
			up[f[1]] = true
		case len(f) == 3 && f[0] == "gap":
			ms, _ := strconv.Atoi(f[2])
			gap = max(gap, time.Duration(ms)*time.Millisecond)
		case len(f) > 0 && f[0] == "error":
			fleetErr = errors.New(rest)
		}
	}

	// The fleets: the survivors round-robin over c.fleets processes, the
	// clusters of the loss in one more.
	var join api.Token
	if err := admin.Create(ctx, "tokens", api.Token{Metadata: api.ObjectMeta{Name: "scale"}, Spec: api.TokenSpec{Type: api.TokenJoin}}, &join); err != nil {
		b.Fatal(err)
	}
	// The loss takes the clusters whose names sort first: placement breaks
	// ties by name, so with more clusters than a workload's 10 replicas
	// those are the ones that hold replicas.
	nLost := max(1, c.clusters/10)
	nFleets := min(c.fleets, c.clusters-nLost)
	names := make([]string, c.clusters)
	for i := range names {
		names[i] = fmt.Sprintf("r%d", i+1)
	}
	slices.Sort(names)
	groups := make([][]string, nFleets+1)
	for i, name := range names {
		if i < nLost {
			groups[nFleets] = append(groups[nFleets], name)
			lost[name] = true
		} else {
			groups[(i-nLost)%nFleets] = append(groups[(i-nLost)%nFleets], name)
		}
	}
	lostNames := maps.Clone(lost)
	clear(lost) // filled again at the loss
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	fleets := make([]*scaleProc, len(groups))
	for i, g := range groups {
		spec, _ := json.Marshal(scaleFleetSpec{JoinToken: join.Status.Secret, Members: g, NodesPer: c.nodesPer, DataDir: b.TempDir()})
		name := fmt.Sprintf("fleet%d", i+1)
		if i == nFleets {
			name = "fleet-loss"
		}
		path, args := exe, []string(nil)
		if c.fleetNice != 0 {
			// The members stand in for clusters on machines of their own:
			// niced, they leave the hub and PostgreSQL the CPU first.
			path, args = "nice", []string{"-n", strconv.Itoa(c.fleetNice), exe}
		}
		fleets[i] = startScaleProc(b, name, path, args, []string{scaleFleetEnv + "=" + string(spec)}, onLine)
	}
	checkProcs := func() {
		b.Helper()
		mu.Lock()
		err := fleetErr
		mu.Unlock()
		if err != nil {
			b.Fatalf("a fleet failed: %v", err)
		}
		for _, p := range append([]*scaleProc{h.scaleProc}, fleets...) {
			if err := p.alive(); err != nil {
				b.Fatal(err)
			}
		}
	}
	waitFor(b, fmt.Sprintf("%d members with %d sim nodes each up", c.clusters, c.nodesPer), 10*time.Minute, func() bool {
		checkProcs()
		mu.Lock()
		defer mu.Unlock()
		return len(up) == c.clusters
	})
	// The hub must see every member Ready with its capacity, else the
	// placer skips it.
	waitFor(b, "every member Ready at the hub with its nodes", 2*time.Minute, func() bool {
		var list api.ClusterList
		if err := admin.List(ctx, "clusters", client.ListOptions{}, &list); err != nil {
			return false
		}
		n := 0
		for _, cl := range list.Items {
			if cl.Status.Health == api.HealthReady && cl.Status.Capacity != nil && cl.Status.Capacity.NodesReady == c.nodesPer {
				n++
			}
		}
		return n == c.clusters
	})

	workloadNames := make([]string, c.workloads)
	for k := range workloadNames {
		workloadNames[k] = fmt.Sprintf("sc-%06d", k)
	}
	accepted := make([]time.Time, c.workloads) // by index; written before wg.Wait
	// The watchers, in a process of their own (scalewatch_test.go): each
	// records when it saw every workload ADDED. They are connected once
	// they saw a workload of no replicas made for that.
	watch := startScaleProc(b, "watchers", exe, nil, []string{scaleWatchEnv + "=" + mustJSONString(b, scaleWatchSpec{URL: h.url, Token: h.token,
		Watchers: c.watchers, Workloads: c.workloads, Out: filepath.Join(b.TempDir(), "seen.json")})}, onLine)
	if err := admin.Create(ctx, "workloads", api.Workload{Metadata: api.ObjectMeta{Name: "sc-warm"},
		Spec: api.WorkloadSpec{Replicas: 0, Template: api.ReplicaTemplate{Driver: "sim"}}}, nil); err != nil {
		b.Fatal(err)
	}
	waitFor(b, fmt.Sprintf("%d watchers connected", c.watchers), 2*time.Minute, func() bool {
		checkProcs()
		if err := watch.alive(); err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return watchState == "connected"
	})

	// Before: the hub's memory with every member joined and nothing placed.
	hub0, err := readProcUsage(h.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	heap0 := h.heap(b, true)
	if c.profile != "" {
		h.saveHeapProfile(b, filepath.Join(c.profile, fmt.Sprintf("hub-heap-before-%s.pprof", c.label)))
	}
	fleet0 := make([]procUsage, len(fleets))
	var fleetRSS0 int64
	for i, p := range fleets {
		fleet0[i], _ = readProcUsage(p.cmd.Process.Pid)
		fleetRSS0 += fleet0[i].rss
	}
	pg0, self0 := postgresCPU(postmaster), processCPU()
	watch0, _ := readProcUsage(watch.cmd.Process.Pid)
	stopProfiles := startScaleProfiles(b, c, h, fleets)

	tmpl := api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "50m", Memory: "32Mi"}, Sim: &api.SimSpec{StartLatency: "50ms"}}
	b.StartTimer()
	start := time.Now()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for k := range c.workloads {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			w := api.Workload{Metadata: api.ObjectMeta{Name: workloadNames[k]}, Spec: api.WorkloadSpec{Replicas: int32(c.perWorkload), Template: tmpl,
				Placement: &api.PlacementPolicy{ReplicaMode: "Divided"}, Failover: &api.FailoverPolicy{GracePeriod: "0s"}}}
			if err := admin.Create(ctx, "workloads", w, nil); err != nil {
				b.Errorf("create %s: %v", w.Metadata.Name, err)
				return // the run fails; its watchers are not asked for it
			}
			accepted[k] = time.Now()
		})
	}
	wg.Wait()
	created := time.Since(start)
	var done time.Time
	for deadline := time.Now().Add(20 * time.Minute); done.IsZero(); {
		select {
		case done = <-allReady:
		case <-time.After(time.Second):
			checkProcs()
			if time.Now().After(deadline) {
				mu.Lock()
				n := len(ready)
				mu.Unlock()
				b.Fatalf("%d of %d replicas Ready after 20m", n, total)
			}
		}
	}
	b.StopTimer()
	took := done.Sub(start)
	stopProfiles()
	// CPU up to now (a little past all Ready: the time to notice it).
	pgCPU, selfCPU := postgresCPU(postmaster)-pg0, processCPU()-self0
	watch1, _ := readProcUsage(watch.cmd.Process.Pid)
	hub1, err := readProcUsage(h.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	heap1 := h.heap(b, false) // as it stands, garbage and all
	live1 := h.heap(b, true)  // what survives a collection
	if c.profile != "" {
		h.saveHeapProfile(b, filepath.Join(c.profile, fmt.Sprintf("hub-heap-%s.pprof", c.label)))
	}
	var fleetCPU time.Duration
	var fleetRSS int64
	for i, p := range fleets {
		u, err := readProcUsage(p.cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		fleetCPU += u.cpu - fleet0[i].cpu
		fleetRSS += u.rss
	}
	var dbBytes int64
	if err := store.Pool().QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&dbBytes); err != nil {
		b.Errorf("database size: %v", err)
	}
	// What every copy of a workload costs (the change feed's entries, the
	// placer's cache, watch events): its stored JSON, status apart.
	var wlBytes, wlStatus float64
	if err := store.Pool().QueryRow(ctx, `SELECT coalesce(avg(length(spec::text) + length(status::text) + length(labels::text) + length(annotations::text)), 0),
		coalesce(avg(length(status::text)), 0) FROM objects WHERE kind = 'Workload' AND name LIKE 'sc-%'`).Scan(&wlBytes, &wlStatus); err != nil {
		b.Errorf("workloads' size: %v", err)
	}

	// The watchers' lag (they end by themselves once they saw every workload).
	var seenPath string
	waitFor(b, fmt.Sprintf("the %d watchers to see every workload (2m after all Ready)", c.watchers), 2*time.Minute, func() bool {
		if err := watch.alive(); err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		seenPath = strings.TrimPrefix(watchState, "watched ")
		return strings.HasPrefix(watchState, "watched ")
	})
	var seen [][]int64
	if data, err := os.ReadFile(seenPath); err != nil || json.Unmarshal(data, &seen) != nil || len(seen) != c.watchers {
		b.Fatalf("the watchers' times: %v", err)
	}
	var lags []float64
	missed := 0
	for i := range seen {
		for k, at := range seen[i] {
			if accepted[k].IsZero() {
				continue
			}
			if at == 0 {
				missed++
				continue
			}
			lags = append(lags, max(0, time.Unix(0, at).Sub(accepted[k]).Seconds()))
		}
	}
	if missed > 0 {
		b.Errorf("watchers missed %d ADDED events", missed)
	}
	slices.Sort(lags)

	// Settled: the watchers caught up, the members' reports no longer
	// queued; what the hub holds for its workloads, without the work in
	// flight at all Ready.
	settled := h.heap(b, true)
	if c.profile != "" {
		h.saveHeapProfile(b, filepath.Join(c.profile, fmt.Sprintf("hub-heap-settled-%s.pprof", c.label)))
	}
	hub2, _ := readProcUsage(h.cmd.Process.Pid)

	// Console pages, signed in.
	pages := consolePageTimes(b, h.url, h.token, []string{"/", "/workloads"}, 5)

	// Region loss: the loss process dies with its clusters.
	rows, err := store.Placements(ctx)
	if err != nil {
		b.Fatal(err)
	}
	lostReplicas := 0
	lostBy := map[string]int{} // the lost replicas by workload
	perCluster := map[string]int{}
	for _, r := range rows {
		if !r.Deleted {
			perCluster[r.Cluster] += int(r.Replicas)
		}
		if lostNames[r.Cluster] && !r.Deleted {
			lostReplicas += int(r.Replicas)
			lostBy[r.Workload] += int(r.Replicas)
		}
	}
	// What the lost workloads hold on the other clusters before the loss:
	// the failover's rows must add what they lost there.
	elsewhere := 0
	for _, r := range rows {
		if lostBy[r.Workload] > 0 && !lostNames[r.Cluster] && !r.Deleted {
			elsewhere += int(r.Replicas)
		}
	}
	lostOf := maps.Clone(lostBy) // owed counts down; this stays
	spread := slices.Sorted(maps.Values(perCluster))
	placed := 0
	for _, n := range spread {
		placed += n
	}
	b.Logf("replicas per cluster as placed: %d clusters hold some, fewest %d, most %d; %d of %d placed; %d replicas were Ready at some time",
		len(spread), spread[0], spread[len(spread)-1], placed, total, len(ready))
	if lostReplicas == 0 {
		b.Fatalf("the %d clusters of the region loss hold no replicas: nothing to measure", nLost)
	}
	// A member that missed its heartbeats (an overloaded host) went
	// Unreachable and, failover grace 0s, its replicas moved: the
	// churn above.
	unreachable := 0
	if err := pgstore.Each(ctx, store, "Event", func(rec *pgstore.Record) error {
		var ev api.Event
		if rec.Decode(&ev) == nil && ev.Reason == "ClusterUnreachable" {
			unreachable++
		}
		return nil
	}); err != nil {
		b.Errorf("events: %v", err)
	}
	b.Logf("before the loss: %d ClusterUnreachable events", unreachable)
	restProfiled := make(chan struct{})
	go func() { // the hub's profile at rest ends before its profile of the loss begins
		defer close(restProfiled)
		if c.profile == "" {
			return
		}
		if err := h.saveProfile("profile?seconds=10", filepath.Join(c.profile, fmt.Sprintf("hub-rest-cpu-%s.pprof", c.label))); err != nil {
			b.Error(err)
		}
	}()
	if c.profile != "" {
		for i, p := range fleets[:nFleets] {
			p.send(fmt.Sprintf("profile %s", filepath.Join(c.profile, fmt.Sprintf("fleet%d-rest-%s.pprof", i+1, c.label))))
		}
	}
	lostBefore, gapBefore := nodesLost(fleets), takeGap()
	rest := atRest(b, h.cmd.Process.Pid, postmaster, fleets[:nFleets], 10*time.Second)
	lostRested, gapRested := nodesLost(fleets), takeGap()
	if c.profile != "" {
		for _, p := range fleets[:nFleets] {
			p.send("profile-stop")
		}
	}
	<-restProfiled
	b.Logf("at rest before the loss (%s): hub %.2f cores, surviving fleets %.2f cores (%.3f per 1,000 sim nodes), PostgreSQL %.2f cores; load %s",
		rest.over, rest.hub, rest.fleets, rest.fleets*1000/float64((c.clusters-nLost)*c.nodesPer), rest.pg, loadAverage())
	b.Logf("sim nodes their members found lost (silent beyond the grace, their replicas moved): %s before the rest, %s at rest; members behind reading their nodes' heartbeats (judgements held) %d times so far; the longest a fleet went without one node's heartbeat: %v before the rest, %v at rest (0: under 1 s)",
		silences(lostSince(nil, lostBefore)), silences(lostSince(lostBefore, lostRested)), heldLate(fleets), gapBefore, gapRested)
	mu.Lock()
	maps.Copy(lost, lostNames)
	owed = lostBy
	replaced = replaced[:0] // only Ready after the stop counts
	killedAt := time.Now()
	mu.Unlock()
	fleets[nFleets].kill()
	lossProfiled := make(chan struct{})
	if c.profile != "" {
		for i, p := range fleets[:nFleets] {
			p.send(fmt.Sprintf("profile %s", filepath.Join(c.profile, fmt.Sprintf("fleet%d-loss-%s.pprof", i+1, c.label))))
		}
	}
	go func() {
		defer close(lossProfiled)
		if c.profile == "" {
			return
		}
		if err := h.saveProfile("profile?seconds=15", filepath.Join(c.profile, fmt.Sprintf("hub-loss-cpu-%s.pprof", c.label))); err != nil {
			b.Error(err)
		}
	}()
	defer func() { <-lossProfiled }()
	waitFor(b, fmt.Sprintf("%d clusters Unreachable at the hub", nLost), 2*time.Minute, func() bool {
		var list api.ClusterList
		if err := admin.List(ctx, "clusters", client.ListOptions{}, &list); err != nil {
			return false
		}
		n := 0
		for _, cl := range list.Items {
			if lostNames[cl.Metadata.Name] && cl.Status.Health == api.HealthUnreachable {
				n++
			}
		}
		return n == nLost
	})
	detected := time.Now()
	// The hub's part of the recovery, apart from the members': when the
	// placement rows give the lost workloads their lost replicas on the
	// others, and when the members acknowledged them (the rows, summed
	// by PostgreSQL every 250 ms: reading them all, 1,000,000 at the
	// full scale, took a share of the CPU the recovery needs).
	var placedAt, deliveredAt time.Time
	rowsDone, rowsStop := make(chan struct{}), make(chan struct{})
	rowsConn, err := pgx.Connect(ctx, db.Hub)
	if err != nil {
		b.Fatal(err)
	}
	defer rowsConn.Close(context.Background())
	lostWorkloads, lostClusters := slices.Collect(maps.Keys(lostOf)), slices.Collect(maps.Keys(lostNames))
	go func() {
		defer close(rowsDone)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-rowsStop:
				return
			case <-tick.C:
			}
			var placed, delivered int
			if err := rowsConn.QueryRow(ctx, `SELECT coalesce(sum(replicas), 0), coalesce(sum(replicas) FILTER (WHERE delivered_epoch >= epoch), 0)
				FROM placements WHERE NOT deleted AND workload = ANY($1) AND NOT cluster = ANY($2)`, lostWorkloads, lostClusters).Scan(&placed, &delivered); err != nil {
				continue
			}
			now := time.Now()
			if placedAt.IsZero() && placed >= elsewhere+lostReplicas {
				placedAt = now
			}
			if deliveredAt.IsZero() && delivered >= elsewhere+lostReplicas {
				deliveredAt = now
				return
			}
		}
	}()
	waitFor(b, fmt.Sprintf("%d lost replicas Ready on the other clusters", lostReplicas), 5*time.Minute, func() bool {
		for _, p := range fleets[:nFleets] {
			if err := p.alive(); err != nil {
				b.Fatal(err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return len(replaced) >= lostReplicas
	})
	rto := func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		slices.SortFunc(replaced, time.Time.Compare)
		return replaced[lostReplicas-1].Sub(detected)
	}()
	lostInRecovery, gapInRecovery := lostSince(lostRested, nodesLost(fleets)), takeGap()
	close(rowsStop) // every lost replica is Ready: its rows were written and acknowledged, or counted otherwise
	<-rowsDone
	if c.profile != "" {
		for _, p := range fleets[:nFleets] {
			p.send("profile-stop")
		}
	}

	nodes := c.clusters * c.nodesPer
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	b.ReportMetric(float64(c.workloads)/created.Seconds(), "creates/s")
	b.ReportMetric(took.Seconds(), "s-to-all-Ready")
	b.ReportMetric((hub1.cpu - hub0.cpu).Seconds(), "hub-CPU-s")
	b.ReportMetric(fleetCPU.Seconds(), "fleets-CPU-s")
	b.ReportMetric(pgCPU.Seconds(), "postgres-CPU-s")
	b.ReportMetric(selfCPU.Seconds(), "clients-CPU-s")
	b.ReportMetric((watch1.cpu - watch0.cpu).Seconds(), "watchers-CPU-s")
	b.ReportMetric(mib(hub1.rss), "hub-RSS-MiB")
	b.ReportMetric(mib(hub1.hwm), "hub-peak-RSS-MiB")
	b.ReportMetric(mib(heap1.inuse), "hub-heap-inuse-MiB")
	b.ReportMetric(mib(live1.alloc), "hub-heap-live-MiB")
	b.ReportMetric(float64(hub1.rss-hub0.rss)/1024/float64(c.workloads), "hub-RSS-KiB/workload")
	b.ReportMetric(float64(live1.alloc-heap0.alloc)/1024/float64(c.workloads), "hub-live-heap-KiB/workload")
	b.ReportMetric(float64(settled.alloc-heap0.alloc)/1024/float64(c.workloads), "hub-settled-heap-KiB/workload")
	b.ReportMetric(mib(fleetRSS)*1000/float64(nodes), "member-RSS-MiB/1000-nodes")
	b.ReportMetric(mib(dbBytes), "db-MiB")
	b.ReportMetric(1000*lags[len(lags)/2], "watch-lag-p50-ms")
	b.ReportMetric(1000*lags[len(lags)*99/100], "watch-lag-p99-ms")
	b.ReportMetric(1000*pages["/"], "overview-ms")
	b.ReportMetric(1000*pages["/workloads"], "workloads-page-ms")
	b.ReportMetric(detected.Sub(killedAt).Seconds(), "loss-detection-s")
	b.ReportMetric(rto.Seconds(), "loss-RTO-s")
	b.ReportMetric(rest.fleets*1000/float64((c.clusters-nLost)*c.nodesPer), "rest-fleet-cores/1000-nodes")
	b.Logf("load at the end: %s", loadAverage())
	b.Logf("%d clusters x %d sim nodes in %d fleet processes, %d workloads x %d replicas: creates %.1f s (%.0f/s), all %d Ready %.1f s after the first create",
		c.clusters, c.nodesPer, len(fleets), c.workloads, c.perWorkload, created.Seconds(), float64(c.workloads)/created.Seconds(), total, took.Seconds())
	b.Logf("CPU over that span: hub %.1f s, fleets %.1f s, PostgreSQL %.1f s, creating clients %.1f s, watchers %.1f s; hub RSS %.0f MiB before the creates, %.0f MiB at all Ready (peak %.0f MiB); fleets %.0f MiB before, %.0f MiB at all Ready (%.1f MiB per 1,000 sim nodes); PostgreSQL %.0f MiB",
		(hub1.cpu - hub0.cpu).Seconds(), fleetCPU.Seconds(), pgCPU.Seconds(), selfCPU.Seconds(), (watch1.cpu - watch0.cpu).Seconds(), mib(hub0.rss), mib(hub1.rss), mib(hub1.hwm),
		mib(fleetRSS0), mib(fleetRSS), mib(fleetRSS)*1000/float64(nodes), mib(dbBytes))
	b.Logf("hub memory: RSS %.0f -> %.0f MiB (%.1f KiB per workload); Go heap in use %.0f MiB of %.0f MiB obtained (%.0f MiB released to the OS), live after a GC %.0f -> %.0f MiB (%.1f KiB per workload); %d GCs",
		mib(hub0.rss), mib(hub1.rss), float64(hub1.rss-hub0.rss)/1024/float64(c.workloads), mib(heap1.inuse), mib(heap1.sys), mib(heap1.released),
		mib(heap0.alloc), mib(live1.alloc), float64(live1.alloc-heap0.alloc)/1024/float64(c.workloads), heap1.gcs)
	b.Logf("a workload as stored: %.0f bytes of JSON (its status %.0f)", wlBytes, wlStatus)
	b.Logf("hub memory settled (watchers caught up): live heap %.0f MiB (%.1f KiB per workload over before the creates), RSS %.0f MiB",
		mib(settled.alloc), float64(settled.alloc-heap0.alloc)/1024/float64(c.workloads), mib(hub2.rss))
	b.Logf("%d watchers: lag p50 %.0f ms, p99 %.0f ms, max %.0f ms over %d events; console / %.0f ms, /workloads %.0f ms (median of 5)",
		c.watchers, 1000*lags[len(lags)/2], 1000*lags[len(lags)*99/100], 1000*lags[len(lags)-1], len(lags), 1000*pages["/"], 1000*pages["/workloads"])
	b.Logf("region loss: %d of %d clusters with %d replicas SIGKILLed; detection %.1f s; all Ready elsewhere %.1f s after detection; sim nodes the surviving members found lost meanwhile: %s; the longest a fleet went without one node's heartbeat: %v",
		nLost, c.clusters, lostReplicas, detected.Sub(killedAt).Seconds(), rto.Seconds(), silences(lostInRecovery), gapInRecovery)
	mu.Lock()
	at := func(q float64) float64 { return replaced[int(q*float64(lostReplicas-1))].Sub(detected).Seconds() }
	b.Logf("the lost replicas Ready elsewhere after detection: 10%% %.1f s, 50%% %.1f s, 90%% %.1f s, 99%% %.1f s, all %.1f s",
		at(0.1), at(0.5), at(0.9), at(0.99), at(1))
	mu.Unlock()
	since := func(t time.Time) string {
		if t.IsZero() {
			return "not seen before every lost replica was Ready"
		}
		return fmt.Sprintf("%.1f s", t.Sub(detected).Seconds())
	}
	b.Logf("the hub's part (placement rows read every 250 ms): the lost replicas placed on the others %s after detection, acknowledged by their members %s",
		since(placedAt), since(deliveredAt))
	// With ATOLL_SCALE_HUB_ARGS="--log-level info": when the hub judged
	// clusters' health, and what its failover passes took.
	for _, line := range h.lines("cluster health changed", "failover pass", "placement pass failed") {
		b.Logf("the hub logged: %s", line)
	}
}

// startScaleProfiles starts CPU profiles of the hub (perf record, when
// perf is installed) and of the fleets when c.profile names a folder; the
// function it returns stops them.
func startScaleProfiles(b *testing.B, c scaleConfig, h *scaleHub, fleets []*scaleProc) func() {
	if c.profile == "" {
		return func() {}
	}
	if err := os.MkdirAll(c.profile, 0o755); err != nil {
		b.Fatal(err)
	}
	for i, p := range fleets {
		p.send(fmt.Sprintf("profile %s", filepath.Join(c.profile, fmt.Sprintf("fleet%d-%s.pprof", i+1, c.label))))
	}
	var perf *exec.Cmd
	if path, err := exec.LookPath("perf"); err == nil {
		perf = exec.Command(path, "record", "-F", "199", "-g", "-p", strconv.Itoa(h.cmd.Process.Pid),
			"-o", filepath.Join(c.profile, fmt.Sprintf("hub-%s.perf", c.label)))
		perf.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := perf.Start(); err != nil {
			b.Logf("perf record: %v (no hub profile)", err)
			perf = nil
		}
	}
	return func() {
		for _, p := range fleets {
			p.send("profile-stop")
		}
		if perf != nil {
			_ = perf.Process.Signal(syscall.SIGINT)
			_ = perf.Wait()
		}
	}
}

// loadAverage is /proc/loadavg's three figures.
func loadAverage() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// errWatchDone ends a watcher that saw what it waited for.
var errWatchDone = errors.New("seen every workload")

// consolePageTimes signs in to the console with the admin token and
// fetches each path n times; it returns each path's median, in seconds.
func consolePageTimes(b *testing.B, base, token string, paths []string, n int) map[string]float64 {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	req, _ := http.NewRequest(http.MethodPost, base+"/signin", strings.NewReader(url.Values{"token": {token}, "next": {"/"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatalf("console sign-in: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	out := map[string]float64{}
	for _, p := range paths {
		var ts []float64
		for range n {
			t0 := time.Now()
			resp, err := hc.Get(base + p)
			if err != nil {
				b.Fatalf("console %s: %v", p, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("<html")) {
				b.Fatalf("console %s: want a page; got %d %.200s", p, resp.StatusCode, body)
			}
			ts = append(ts, time.Since(t0).Seconds())
		}
		slices.Sort(ts)
		out[p] = ts[len(ts)/2]
	}
	return out
}

// processCPU is the test process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mustJSONString(b *testing.B, v any) string {
	b.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return string(data)
}

// restUsage is the CPU a settled system takes, in cores (CPU seconds a
// second).
type restUsage struct {
	over            time.Duration
	hub, fleets, pg float64
}

// atRest samples the CPU of the hub, the fleets and PostgreSQL over d:
// what the settled system takes before a region loss asks for more (on
// this machine the surviving fleets share its cores with the recovery).
func atRest(b *testing.B, hub, postmaster int, fleets []*scaleProc, d time.Duration) restUsage {
	sample := func() (h, f, pg time.Duration) {
		if u, err := readProcUsage(hub); err == nil {
			h = u.cpu
		}
		for _, p := range fleets {
			if u, err := readProcUsage(p.cmd.Process.Pid); err == nil {
				f += u.cpu
			}
		}
		return h, f, postgresCPU(postmaster)
	}
	h0, f0, pg0 := sample()
	start := time.Now()
	time.Sleep(d) // a measurement's span, not a wait for a condition
	h1, f1, pg1 := sample()
	over := time.Since(start)
	cores := func(a, b time.Duration) float64 { return (b - a).Seconds() / over.Seconds() }
	return restUsage{over: over.Round(10 * time.Millisecond), hub: cores(h0, h1), fleets: cores(f0, f1), pg: cores(pg0, pg1)}
}
