package hub_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/member/node"
)

// simRegion is an in-process member (region rN) with a node.Fleet of
// simulated nodes; kill takes the whole region down at once, as a lost
// region: the member stops heartbeating and its replicas are gone.
type simRegion struct {
	name   string
	member *member.Member
	kill   context.CancelFunc
}

// startSimRegions starts members r1..rN on e, each with nodesPer sim
// nodes (4 CPUs, 8 GiB) whose Ready replicas go to onReady, and waits
// until the hub sees every member Ready with its capacity.
func startSimRegions(b *testing.B, e *env, members, nodesPer int, onReady func(cluster, replica string, at time.Time)) []*simRegion {
	b.Helper()
	join := e.joinToken("j", api.TokenSpec{})
	var out []*simRegion
	for i := 1; i <= members; i++ {
		name := fmt.Sprintf("r%d", i)
		ctx, cancel := context.WithCancel(context.Background())
		b.Cleanup(cancel)
		m, err := member.New(member.Config{JoinToken: join, Name: name, Region: name, DataDir: b.TempDir(), NATSListen: "127.0.0.1:0", Logger: benchLogger()})
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = m.Run(ctx) }()
		waitFor(b, name+"'s first heartbeat ack", 30*time.Second, func() bool { return !m.LastAck().IsZero() })
		sims := make([]node.SimNode, nodesPer)
		for k := range sims {
			sims[k] = node.SimNode{Name: fmt.Sprintf("%s-n%03d", name, k), Zone: fmt.Sprintf("z%d", k%3), MilliCPU: 4000, Memory: 8 << 30}
		}
		fleet, err := node.NewFleet(node.FleetConfig{MemberURL: m.NATSURL(), Auth: m.AdminOption(), Nodes: sims, DataDir: b.TempDir(),
			OnReady: func(_, replica string, at time.Time) { onReady(name, replica, at) }})
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = fleet.Run(ctx) }()
		out = append(out, &simRegion{name: name, member: m, kill: cancel})
	}
	for _, r := range out {
		waitFor(b, fmt.Sprintf("%s: %d nodes ready", r.name, nodesPer), 2*time.Minute, func() bool { return r.member.Capacity().NodesReady == nodesPer })
		// The hub must see the member Ready and heard (its capacity in the
		// placement snapshot), else the placer skips it.
		waitFor(b, r.name+" Ready at the hub with capacity", time.Minute, func() bool {
			l, ok := e.server.Monitor().Live(r.name)
			return ok && l.Heard && l.Health == api.HealthReady && l.Capacity.CPUAllocatable > 0
		})
	}
	return out
}

// benchLogger is the members' logger in benchmarks: warnings and worse on
// standard error with ATOLL_BENCH_LOG=1, else nothing.
func benchLogger() *slog.Logger {
	if os.Getenv("ATOLL_BENCH_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
