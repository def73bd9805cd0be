// Package node is the node agent of a member cluster: it runs on each
// machine of a region, heartbeats to its member over the region's NATS
// with what the machine can hold and how its replicas are doing, and runs
// exactly the replicas the member binds to it (through package runtime).
//
// It is level-triggered: whenever a binding of this node changes, and
// every resync period anyway, it reads all of its bindings and hands the
// whole set to the runtime, which starts what is missing and stops what is
// no longer bound. A status change is reported at once, not at the next
// heartbeat.
package node

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	rt "runtime"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/image"
	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/protocol"
)

// Config configures a node agent. Zero values mean the defaults.
type Config struct {
	// MemberURL is the region's NATS (the member's --nats-listen).
	MemberURL string
	// JoinToken is the member's node join token: the agent enrolls its key
	// with it the first time (the key is kept in DataDir), and connects
	// with the key afterwards. Empty: the key must be enrolled already.
	JoinToken string
	// Name is the node's name (a DNS-1123 label); Zone and Labels describe
	// it to the scheduler.
	Name, Zone string
	Labels     map[string]string
	Taints     []api.Taint
	// MilliCPU and Memory override what is read from the machine.
	MilliCPU, Memory int64
	// DataDir holds the runtime's state and replica logs.
	DataDir string
	// Interval is the heartbeat interval; default 500ms.
	Interval time.Duration
	// Runtime tunes the replica runtime (DataDir is set from DataDir).
	Runtime runtime.Config
	// Images configures the image cache oci replicas pull through, when
	// Runtime.Images is nil (Dir defaults to <DataDir>/images).
	Images image.Config
	// KeepReplicasOnExit lets replica processes outlive the agent (a
	// restarted agent adopts them). By default they die with it, so a lost
	// agent never leaves replicas running unsupervised while the member
	// places them elsewhere.
	KeepReplicasOnExit bool
	// RevokedAfter is how long the member must refuse the node's key on
	// reconnects before the agent stops with ErrRevoked; default 30s (a
	// restarting member refuses its nodes for a moment).
	RevokedAfter time.Duration
	// Version is the agent's software version.
	Version string
	Logger  *slog.Logger
	// Host is the address other machines reach this node's replicas at
	// (gateways proxy to it); empty: 127.0.0.1.
	Host string
}

// ErrRevoked says the member refused this node's key: it was revoked
// ('atoll member revoke-node'), so the agent stops instead of knocking
// forever. To come back, the node joins again with a new key (delete
// node.nk in its data folder and start it with the node join token).
var ErrRevoked = errors.New("the member has refused this node's key for a while: it was revoked ('atoll member revoke-node'); to join again, an admin forgets it ('atoll member revoke-node --forget NAME') and the node starts without its node.nk, with --join-token-file")

// Agent is a running node agent.
type Agent struct {
	cfg         Config
	log         *slog.Logger
	runtime     *runtime.Runtime
	ready       chan struct{}
	refused     chan struct{} // the member refused the key on reconnects for revokedAfter
	reconnected chan struct{} // the connection came back: bindings may have changed meanwhile
	// revokedAfter is how long the member must refuse the key on
	// reconnects before the agent takes it as revoked and stops.
	revokedAfter time.Duration
	// replicas numbers the heartbeats' replica lists (the main loop's).
	replicas listSeq
	started  time.Time
}

// New checks the configuration.
func New(cfg Config) (*Agent, error) {
	if !api.IsDNSLabel(cfg.Name) {
		return nil, fmt.Errorf("--name %q: must be a DNS-1123 label", cfg.Name)
	}
	if cfg.DataDir == "" {
		return nil, errors.New("--data-dir is required: the agent keeps replica state and logs there")
	}
	if cfg.MemberURL == "" {
		return nil, errors.New("--member is required: the region's NATS URL")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	if cfg.MilliCPU <= 0 {
		cfg.MilliCPU = int64(rt.NumCPU()) * 1000
	}
	if cfg.Memory <= 0 {
		cfg.Memory = machineMemory()
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, ready: make(chan struct{}), refused: make(chan struct{}, 1), reconnected: make(chan struct{}, 1), revokedAfter: cfg.RevokedAfter,
		started: time.Now()}
	if a.revokedAfter <= 0 {
		a.revokedAfter = 30 * time.Second
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("node", cfg.Name)
	return a, nil
}

// machineMemory reads MemTotal from /proc/meminfo (0 when unknown).
func machineMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// Ready is closed once the agent runs.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Runtime is the agent's replica runtime (valid after Ready).
func (a *Agent) Runtime() *runtime.Runtime { return a.runtime }

// Run heartbeats and runs the bound replicas until ctx ends. On return the
// replicas are stopped, unless KeepReplicasOnExit (then a restarted agent
// adopts them).
func (a *Agent) Run(ctx context.Context) error {
	nc, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	changed := make(chan struct{}, 1)
	notes, err := nc.Subscribe(protocol.NodeChangedSubject(a.cfg.Name), func(*nats.Msg) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe to binding changes: %w", err)
	}
	defer notes.Unsubscribe()
	rcfg := a.cfg.Runtime
	rcfg.DataDir, rcfg.Logger = a.cfg.DataDir, a.log
	rcfg.DieWithAgent = !a.cfg.KeepReplicasOnExit
	if rcfg.Images == nil {
		icfg := a.cfg.Images
		icfg.Dir = cmp.Or(icfg.Dir, filepath.Join(a.cfg.DataDir, "images"))
		icfg.Logger = cmp.Or(icfg.Logger, a.log)
		if rcfg.Images, err = image.Open(icfg); err != nil {
			return err
		}
	}
	r, err := runtime.New(rcfg)
	if err != nil {
		return err
	}
	// The runtime outlives ctx (a runtime stops supervising when its
	// context ends) until the deferred StopAll below has stopped the
	// replicas gracefully, and Stop ends it.
	if err := r.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	defer r.Stop()
	if !a.cfg.KeepReplicasOnExit {
		// An agent that ends (in-process, or shut down) stops its replicas:
		// the member places them elsewhere, so they must not run on.
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			defer cancel()
			if err := r.StopAll(sctx); err != nil {
				a.log.Warn("stopping replicas on exit", "err", err)
			}
		}()
	}
	a.runtime = r
	logs, err := serveLogs(ctx, nc, a.cfg.Name, r)
	if err != nil {
		return err
	}
	defer logs.Unsubscribe()
	close(a.ready)
	a.log.InfoContext(ctx, "node agent running", "cpu_millis", a.cfg.MilliCPU, "memory", a.cfg.Memory)
	var lease nodeLease
	var applied leaseView
	var bs []protocol.Binding
	images := rcfg.Images
	apply := func(reread bool) {
		if reread {
			nb, err := a.bindings(ctx, nc)
			if err != nil {
				a.log.WarnContext(ctx, "reading bindings failed", "err", err)
				return
			}
			bs = nb.Bindings
			// Warm standby: images of workloads that may fail over here,
			// pulled in the background (and kept from GC) before any
			// replica needs them.
			images.Prepull(ctx, nb.Prepull)
		}
		now := time.Now()
		if v := lease.view(now); applied.valid && !v.valid {
			a.log.WarnContext(ctx, "lease on the hub ran out: exclusive replicas stop")
		}
		applied = lease.view(now)
		r.Apply(lease.allowed(bs, now))
		if ids := lease.expired(bs, now); len(ids) > 0 && !lease.until.IsZero() {
			r.Kill(ids) // the lease is over: no waiting out a stop grace
		}
	}
	apply(true)
	beat := time.NewTicker(a.cfg.Interval)
	defer beat.Stop()
	resync := time.NewTicker(10 * time.Second)
	defer resync.Stop()
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	for {
		sent := time.Now()
		if ack, ok := a.heartbeat(ctx, nc, r, images.Warm()); ok {
			lease.update(ack, sent)
		}
		// What may run changed (a hold, a drill, a lease regained or run
		// out while the heartbeat waited): apply at once.
		if now := time.Now(); lease.view(now) != applied || (!lease.until.IsZero() && !now.Before(lease.until)) {
			apply(false)
		}
		expiry.Reset(lease.untilExpiry(time.Now()))
		select {
		case <-ctx.Done():
			return nil
		case <-a.refused:
			return ErrRevoked
		case <-changed:
			apply(true)
		case <-a.reconnected:
			apply(true)
		case <-resync.C:
			apply(true)
		case <-expiry.C:
			apply(false)
		case <-r.Changes():
		case <-beat.C:
		}
	}
}

// bindings asks the member for the replicas bound to this node and the
// images it should hold ahead of need.
func (a *Agent) bindings(ctx context.Context, nc *nats.Conn) (protocol.NodeBindings, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg, err := nc.RequestWithContext(rctx, protocol.NodeBindingsSubject(a.cfg.Name), nil)
	if err != nil {
		return protocol.NodeBindings{}, fmt.Errorf("ask the member for this node's bindings: %w", err)
	}
	var nb protocol.NodeBindings
	if err := json.Unmarshal(msg.Data, &nb); err != nil {
		return protocol.NodeBindings{}, fmt.Errorf("read this node's bindings: %w", err)
	}
	if len(nb.Prepull) > protocol.MaxNodeImages {
		nb.Prepull = nb.Prepull[:protocol.MaxNodeImages]
	}
	return nb, nil
}

func (a *Agent) heartbeat(ctx context.Context, nc *nats.Conn, r *runtime.Runtime, warm []image.WarmImage) (protocol.NodeAck, bool) {
	hb := protocol.NodeHeartbeat{Version: protocol.Version, Node: a.cfg.Name, Zone: a.cfg.Zone, Labels: a.cfg.Labels, Taints: a.cfg.Taints,
		Allocatable: protocol.Resources{MilliCPU: a.cfg.MilliCPU, Memory: a.cfg.Memory}, AgentVersion: a.cfg.Version, LimitsEnforced: true, Host: a.cfg.Host}
	for _, w := range warm {
		hb.Images = append(hb.Images, protocol.NodeImage{Image: w.Ref, State: w.State, Message: w.Message})
	}
	var list []protocol.ReplicaState
	for _, s := range r.Status() {
		rs := replicaState(s)
		if s.Pid != 0 && !s.LimitsEnforced { // a real process without its cgroup
			rs.Limits, hb.LimitsEnforced = s.LimitsMessage, false
		}
		list = append(list, rs)
	}
	conn := nc.Stats().Reconnects // an ack counts only on the connection it came by
	a.replicas.fill(&hb, list, a.started, conn)
	data, _ := json.Marshal(hb)
	rctx, cancel := context.WithTimeout(ctx, a.cfg.Interval)
	defer cancel()
	msg, err := nc.RequestWithContext(rctx, protocol.NodeHeartbeatSubject(a.cfg.Name), data)
	if err != nil {
		if ctx.Err() == nil {
			a.log.DebugContext(ctx, "node heartbeat not acked", "err", err)
		}
		return protocol.NodeAck{}, false
	}
	var ack protocol.NodeAck
	if json.Unmarshal(msg.Data, &ack) != nil {
		a.replicas.acked(0, conn) // unreadable: the list goes whole next time
		return ack, false
	}
	a.replicas.acked(ack.ReplicasSeq, conn)
	return ack, true
}

// logNATSErrors sends the connection's asynchronous errors (a write to a
// member that went away, a slow consumer) to the log, as structured lines;
// by default the NATS client prints them raw on standard error.
func logNATSErrors(log *slog.Logger) nats.Option {
	return nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) { logNATSError(log, sub, err) })
}

func logNATSError(log *slog.Logger, sub *nats.Subscription, err error) {
	if sub != nil {
		log.Warn("nats", "subject", sub.Subject, "err", err)
		return
	}
	log.Warn("nats", "err", err)
}

// replicaState is what a heartbeat says of one replica the runtime runs.
func replicaState(s runtime.ReplicaStatus) protocol.ReplicaState {
	rs := protocol.ReplicaState{ID: s.ID, Workload: s.Workload, Generation: s.Generation,
		Phase: s.Phase, Ready: s.Ready, Restarts: s.Restarts, Message: s.Message,
		Reason: s.Reason, LastError: s.LastError, StartedAt: s.StartedAt, NextStartAt: s.NextStartAt, Port: s.Port}
	if !s.FinishedAt.IsZero() {
		code := s.ExitCode
		rs.ExitCode = &code
	}
	return rs
}
