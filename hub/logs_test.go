package hub_test

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/member/node"
)

// TestLogsThroughTheMember: replica logs are read hub -> member -> node
// agent, whole and followed.
func TestLogsThroughTheMember(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err := member.New(member.Config{JoinToken: e.joinToken("j", api.TokenSpec{}), Name: "r1", Region: "eu", DataDir: t.TempDir(), NATSListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = m.Run(ctx) }()
	waitFor(t, "the member's leaf link", 20*time.Second, func() bool { return !m.LastAck().IsZero() })
	a, err := node.New(node.Config{MemberURL: m.NATSURL(), JoinToken: m.NodeJoinToken(), Name: "n1", DataDir: t.TempDir(), MilliCPU: 2000, Memory: 2 << 30, Interval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.Run(ctx) }()
	waitFor(t, "the node", 10*time.Second, func() bool { return m.Capacity().NodesReady == 1 })

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
	} {
		if r := e.do("GET", c.path, c.token, "", nil); r.status != c.status {
			t.Errorf("GET %s: want %d, got %d %s", c.path, c.status, r.status, r.body)
		}
	}
}
