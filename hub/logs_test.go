package hub_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/protocol"
)

// TestLogsThroughTheMember: replica logs are read hub -> member -> node
// agent, whole and followed.
func TestLogsThroughTheMember(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	ctx := t.Context()
	m := runMemberWithNode(t, e, runtime.Config{Backoff: runtime.BackoffConfig{Initial: 500 * time.Millisecond, Max: time.Second}})

	tmpl := api.ReplicaTemplate{Driver: "process", Command: "/bin/sh", Args: []string{"-c", `echo "hello from $ATOLL_REPLICA"; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done`}}
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "talker"}, Spec: api.WorkloadSpec{Replicas: 1, Template: tmpl}}) // the hub places it on r1
	waitFor(t, "the replica running", 10*time.Second, func() bool { return workloadStatus(m, "talker").Running == 1 })

	read := func(opts client.LogsOptions) (io.ReadCloser, error) { return e.admin.Logs(ctx, "talker", opts) }
	rc, err := read(client.LogsOptions{Cluster: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(body), "[r1/talker-") || !strings.Contains(string(body), "] hello from talker-") {
		t.Errorf("logs: want a prefixed hello line, got:\n%s", body)
	}
	// Following: new ticks keep coming.
	fctx, fcancel := context.WithCancel(ctx)
	rc, err = e.admin.Logs(fctx, "talker", client.LogsOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(rc)
	ticks := 0
	deadline := time.AfterFunc(15*time.Second, fcancel)
	for sc.Scan() && ticks < 3 {
		if strings.Contains(sc.Text(), "tick ") {
			ticks++
		}
	}
	deadline.Stop()
	fcancel()
	rc.Close()
	if ticks < 3 {
		t.Errorf("following: want 3 new tick lines, got %d", ticks)
	}
	// The options: the replica's name from the prefixed read.
	_, rest, _ := strings.Cut(string(body), "[r1/")
	replica, _, _ := strings.Cut(rest, "]")
	text := func(opts client.LogsOptions) string {
		t.Helper()
		rc, err := read(opts)
		if err != nil {
			t.Fatalf("logs %+v: %v", opts, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Errorf("logs %+v: every cluster was read, yet the read ended with %v", opts, err)
		}
		return string(b)
	}
	two := 2
	if got := text(client.LogsOptions{Replica: replica, Tail: &two}); strings.Count(got, "\n") != 2 || !strings.HasPrefix(got, "tick ") {
		t.Errorf("tail 2: want two tick lines, got:\n%s", got)
	}
	got := text(client.LogsOptions{Replica: replica, Timestamps: true, Since: "1h"})
	first, _, _ := strings.Cut(got, "\n")
	ts, line, _ := strings.Cut(first, " ")
	if at, err := time.Parse(time.RFC3339Nano, ts); err != nil || time.Since(at) > time.Minute || line != "hello from "+replica {
		t.Errorf("timestamps: want a recent time and the hello line first, got %q (%v)", first, err)
	}
	if got := text(client.LogsOptions{Replica: replica, Since: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}); !strings.Contains(got, "# replica "+replica+" on node n1: replica "+replica+" wrote nothing since") {
		t.Errorf("since an hour from now: want a line saying nothing was written since, got:\n%s", got)
	}
	// No previous run, and a replica that does not exist: 404s (the CLI
	// exits non-zero).
	if _, err := read(client.LogsOptions{Replica: replica, Previous: true}); api.ErrorCode(err) != api.CodeNotFound || !strings.Contains(err.Error(), "no previous run") {
		t.Errorf("previous of a replica that never restarted: want a not-found error, got %v", err)
	}
	if _, err := read(client.LogsOptions{Replica: "talker-nope"}); api.ErrorCode(err) != api.CodeNotFound || !strings.Contains(err.Error(), "no replica talker-nope") {
		t.Errorf("a replica that does not exist: want a not-found error, got %v", err)
	}

	// A replica that restarts: --previous is the run before.
	count := t.TempDir() + "/count"
	crash := api.ReplicaTemplate{Driver: "process", Command: "/bin/sh", Args: []string{"-c", `n=$(cat ` + count + ` 2>/dev/null || echo 0); n=$((n+1)); echo $n > ` + count + `; echo "run $n"; sleep 0.3; exit 3`}}
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "crasher"}, Spec: api.WorkloadSpec{Replicas: 1, Template: crash}})
	waitFor(t, "the crasher restarted twice", 30*time.Second, func() bool { return workloadStatus(m, "crasher").Restarts >= 2 })
	waitFor(t, "the previous run one behind the current", 30*time.Second, func() bool {
		cur, err := e.admin.Logs(ctx, "crasher", client.LogsOptions{Cluster: "r1"})
		if err != nil {
			return false
		}
		cb, _ := io.ReadAll(cur)
		cur.Close()
		prev, err := e.admin.Logs(ctx, "crasher", client.LogsOptions{Cluster: "r1", Previous: true})
		if err != nil {
			return false
		}
		pb, _ := io.ReadAll(prev)
		prev.Close()
		var c, p int
		_, cerr := fmt.Sscanf(after(string(cb), "] "), "run %d", &c)
		_, perr := fmt.Sscanf(after(string(pb), "] "), "run %d", &p)
		return cerr == nil && perr == nil && p == c-1
	})

	// No logs say why: a command that does not exist, a simulated replica.
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "broken"}, Spec: api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "process", Command: "/no/such/command"}}})
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "simmy"}, Spec: api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "sim"}}})
	waitFor(t, "the broken replica's reason", 30*time.Second, func() bool {
		out := readWorkload(ctx, e, "broken")
		return strings.Contains(out, "never started") && strings.Contains(out, "/no/such/command")
	})
	waitFor(t, "the simulated replica's reason", 30*time.Second, func() bool {
		return strings.Contains(readWorkload(ctx, e, "simmy"), "is simulated")
	})

	// Refusals.
	viewer := e.token("v", api.RoleViewer)
	for _, c := range []struct {
		path, token string
		status      int
	}{
		{"/api/v1/workloads/talker/logs", viewer, 403},
		{"/api/v1/workloads/nothing/logs", adminSecret, 404},
		{"/api/v1/workloads/talker/logs?cluster=nowhere", adminSecret, 404},
		{"/api/v1/workloads/talker/logs?stream=stdin", adminSecret, 422},
		{"/api/v1/workloads/talker/logs?tail=-2", adminSecret, 422},
		{"/api/v1/workloads/talker/logs?tail=many", adminSecret, 422},
		{"/api/v1/workloads/talker/logs?since=yesterday", adminSecret, 422},
		{"/api/v1/workloads/talker/logs?since=-5m", adminSecret, 422},
		{"/api/v1/workloads/talker/logs?previous=true&follow=true", adminSecret, 422},
	} {
		r := e.do("GET", c.path, c.token, "", nil)
		if r.status != c.status {
			t.Errorf("GET %s: want %d, got %d %s", c.path, c.status, r.status, r.body)
		}
		if c.status == 422 {
			_, q, _ := strings.Cut(c.path, "?")
			field, _, _ := strings.Cut(q, "=")
			if !strings.Contains(string(r.body), `"location":"query.`+field+`"`) {
				t.Errorf("GET %s: want the field path query.%s, got %s", c.path, field, r.body)
			}
		}
	}

	// A replica no cluster has, one of them slow to say so: the lines'
	// 200 is out (2 s, following) before the refusal could be sent, so it
	// ends the read (a trailer), and the client returns it.
	slow, _ := json.Marshal(api.ClusterStatus{Health: api.HealthReady, Identity: "Uslow", ProtocolVersion: protocol.Version})
	if _, err := e.store.Create(ctx, pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Cluster",
		Meta: api.ObjectMeta{Name: "slowpoke", Labels: map[string]string{api.LabelRegion: "eu"}}, Spec: []byte("{}"), Status: slow}); err != nil {
		t.Fatal(err)
	}
	holdIn(t, e, "talker", "slowpoke")
	headers := make(chan struct{}) // closed once the client has the lines' 200
	sub, err := e.bus.Conn().Subscribe(protocol.LogsSubject("slowpoke"), func(m *nats.Msg) {
		select { // answer only after the 2 s a follower waits for its headers
		case <-headers:
		case <-time.After(time.Minute):
		}
		end := nats.NewMsg(m.Reply)
		end.Header.Set(protocol.LogEndHeader, "no replica talker-nope here")
		end.Header.Set(protocol.LogEndCodeHeader, protocol.LogEndNotFound)
		_ = e.bus.Conn().PublishMsg(end)
	})
	if err != nil {
		t.Fatal(err)
	}
	rc, err = read(client.LogsOptions{Replica: "talker-nope", Follow: true})
	close(headers)
	if err != nil {
		t.Fatalf("the lines' 200 was expected before the slow cluster answered: %v", err)
	}
	body, err = io.ReadAll(rc)
	rc.Close()
	if api.ErrorCode(err) != api.CodeNotFound || !strings.Contains(err.Error(), "no replica talker-nope") {
		t.Errorf("a replica no cluster has, found late: want the not-found problem at the end, got %v and:\n%s", err, body)
	}
	_ = sub.Unsubscribe()
	if _, _, err := e.store.Delete(ctx, pgstore.Actor{Name: "test"}, "Cluster", "slowpoke", ""); err != nil {
		t.Fatal(err)
	}

	// A cluster whose member is gone: not asked while it holds nothing of
	// the workload; once it does, a read of the workload lacks it, and a
	// read of the replica, served by r1, does not.
	status, _ := json.Marshal(api.ClusterStatus{Health: api.HealthReady, Identity: "Ughost", ProtocolVersion: protocol.Version})
	if _, err := e.store.Create(ctx, pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Cluster",
		Meta: api.ObjectMeta{Name: "ghost", Labels: map[string]string{api.LabelRegion: "eu"}}, Spec: []byte("{}"), Status: status}); err != nil {
		t.Fatal(err)
	}
	if got := text(client.LogsOptions{Tail: &two}); strings.Contains(got, "ghost") {
		t.Errorf("a cluster that holds nothing of the workload was asked:\n%s", got)
	}
	holdIn(t, e, "talker", "ghost")
	text(client.LogsOptions{Replica: replica, Tail: &two})
	rc, err = read(client.LogsOptions{Tail: &two})
	if err != nil {
		t.Fatal(err)
	}
	body, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, client.ErrLogsIncomplete) || !strings.Contains(string(body), "# cluster ghost did not answer") || !strings.Contains(string(body), "tick ") {
		t.Errorf("a read of the workload with a cluster silent: want r1's lines, the ghost's line and ErrLogsIncomplete; got %v and:\n%s", err, body)
	}
}

// TestLogsOptionsAndAnOlderMember: a member of protocol 4 would ignore
// the options, so its cluster is not asked with them, and the text says so.
func TestLogsOptionsAndAnOlderMember(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	status, _ := json.Marshal(api.ClusterStatus{Health: api.HealthReady, Identity: "Uold", ProtocolVersion: protocol.LogOptionsSince - 1})
	if _, err := e.store.Create(context.Background(), pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Cluster",
		Meta: api.ObjectMeta{Name: "old", Labels: map[string]string{api.LabelRegion: "eu"}}, Spec: []byte("{}"), Status: status}); err != nil {
		t.Fatal(err)
	}
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "sim"}}})
	holdIn(t, e, "web", "old")
	ten := 10
	rc, err := e.admin.Logs(context.Background(), "web", client.LogsOptions{Tail: &ten, Timestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	want := fmt.Sprintf("# cluster old was not read: its member speaks protocol %d and cannot honour tail, timestamps", protocol.LogOptionsSince-1)
	if !strings.Contains(string(body), want) {
		t.Errorf("want %q, got:\n%s", want, body)
	}
	if !errors.Is(err, client.ErrLogsIncomplete) || !strings.Contains(err.Error(), "1 cluster(s) could not be read") {
		t.Errorf("a read one cluster could not serve ended with %v; want ErrLogsIncomplete for 1 cluster", err)
	}
	// A replica no cluster that answered holds, and one cluster silent:
	// not a 404 (the silent one may hold it), and not a success either.
	rc, err = e.admin.Logs(context.Background(), "web", client.LogsOptions{Replica: "web-nope"})
	if err != nil {
		t.Fatal(err)
	}
	body, err = io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(body), "# cluster old did not answer") || !errors.Is(err, client.ErrLogsIncomplete) {
		t.Errorf("a replica not found where answered, a cluster silent: got %v and:\n%s", err, body)
	}
}

// holdIn makes a workload's stored status say cluster reports it (a
// logs read asks only the clusters that may hold the workload).
func holdIn(t *testing.T, e *env, workload, cluster string) {
	t.Helper()
	err := e.store.InTx(t.Context(), pgstore.Actor{Name: "test"}, func(tx *pgstore.Tx) error {
		_, err := tx.Mutate(t.Context(), "status", "Workload", workload, func(cur *pgstore.Record) error {
			var st api.WorkloadStatus
			_ = json.Unmarshal(cur.Status, &st)
			st.Clusters = append(st.Clusters, api.ClusterReplicas{Cluster: cluster, Desired: 1})
			b, err := json.Marshal(st)
			cur.Status = b
			return err
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// after is what follows the first sep in s ("" without it).
func after(s, sep string) string {
	_, a, _ := strings.Cut(s, sep)
	return a
}

// readWorkload reads a workload's logs whole, as text.
func readWorkload(ctx context.Context, e *env, name string) string {
	rc, err := e.admin.Logs(ctx, name, client.LogsOptions{})
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}
