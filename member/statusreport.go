package member

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/member/controller"
	"github.com/atollhq/atoll/protocol"
)

// Status reporting's pace: the status is looked at every statusTick,
// something is sent at least every statusEvery (the hub stamps when it
// last heard of the cluster), the whole status goes again at least every
// statusResendEvery when the hub takes deltas, and at most once per
// statusResendMin on hubs' requests.
const (
	statusEvery       = 2 * time.Second
	statusTick        = statusEvery / 8
	statusResendEvery = time.Minute
	statusResendMin   = time.Second
)

// reportStatus sends the region's per-workload status to the hub (which
// folds it into Workload.status): what changed, as StatusDelta, while the
// leader's acks say it takes them; else the whole StatusReport whenever
// it changed. Checked every statusTick, so the hub sees a replica turn
// Ready within a fraction of a second.
func (m *Member) reportStatus(ctx context.Context, ctl *controller.Controller) {
	var asked atomic.Bool
	sub, err := m.conn.Subscribe(protocol.StatusFullSubject(m.cfg.Name), func(*nats.Msg) { asked.Store(true) })
	if err != nil {
		m.log.ErrorContext(ctx, "subscribing to the hub's status requests failed: hubs that miss a status delta wait for the next whole report", "err", err)
	} else {
		defer func() { _ = sub.Unsubscribe() }()
	}
	r := newStatusReporter()
	wholeSubject, deltaSubject := protocol.StatusSubject(m.cfg.Name), protocol.StatusDeltaSubject(m.cfg.Name)
	t := time.NewTicker(statusTick)
	defer t.Stop()
	// The controller's status as last taken, and its generation: a tick
	// with neither it nor the fence's holds changed, and nothing due by
	// the clock or asked for, looks at nothing (image presence, read from
	// the nodes, goes with the next report: within statusEvery).
	var status []protocol.WorkloadStatus
	var gen uint64
	var held []string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if m.drill.cutOff(now) {
			continue
		}
		if asked.Swap(false) {
			r.ask()
		}
		deltas := m.hubDeltas.Load()
		st, g, fresh := ctl.StatusSince(gen)
		if fresh {
			status, gen = st, g
		}
		h := m.fence.held(now)
		if !fresh && slices.Equal(h, held) && r.idle(now, deltas) {
			continue
		}
		held = h
		images := m.standby.presence(m.nodes.Snapshot(now))
		for _, msg := range r.next(now, m.cfg.Name, withFence(status, held), images, deltas) {
			subject := wholeSubject
			if msg.delta {
				subject = deltaSubject
			}
			if err := m.conn.Publish(subject, msg.data); err != nil {
				r.failed() // the hub may have missed it: all again next time
				break
			}
		}
	}
}

// toldStatus is a workload's status as told, and the look that last saw
// the workload.
type toldStatus struct {
	status protocol.WorkloadStatus
	seen   uint64
}

// statusMsg is one report to publish: a StatusDelta, or else a whole
// StatusReport.
type statusMsg struct {
	delta bool
	data  []byte
}

// statusReporter decides what status reports to send (no I/O, no clock of
// its own): deltas numbered in one session, or whole reports to a hub
// that takes no deltas.
type statusReporter struct {
	session string
	seq     uint64
	// told is each workload's status as the hub was last told it in
	// this session, and toldImages the image presence; synced says the
	// session's first resend went out.
	told       map[string]toldStatus
	toldImages []protocol.ImagePresence
	pass       uint64 // counts next's looks, to find what is no longer there
	synced     bool
	asked      bool // a hub asked for a resend
	lastSent   time.Time
	lastResend time.Time
	// whole is the last whole report sent to a hub that takes no deltas.
	whole []byte
}

func newStatusReporter() *statusReporter {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &statusReporter{session: hex.EncodeToString(b[:]), told: map[string]toldStatus{}}
}

// ask notes a hub's request for the whole status.
func (r *statusReporter) ask() { r.asked = true }

// idle says whether nothing is due at now but what changed: the status
// as last given needs no look (no resend due or asked for, the last
// report newer than statusEvery).
func (r *statusReporter) idle(now time.Time, deltas bool) bool {
	if !deltas {
		return r.whole != nil && now.Sub(r.lastSent) < statusEvery
	}
	return r.synced && !r.asked && now.Sub(r.lastResend) < statusResendEvery && now.Sub(r.lastSent) < statusEvery
}

// failed notes a report that may not have gone out: the next sends
// everything again.
func (r *statusReporter) failed() {
	r.synced = false
	r.whole = nil
}

// next is what to send at now, given the status, the image presence and
// whether the hub takes deltas.
func (r *statusReporter) next(now time.Time, cluster string, status []protocol.WorkloadStatus, images []protocol.ImagePresence, deltas bool) []statusMsg {
	if !deltas {
		r.synced = false // back to deltas later: a resend first
		data, _ := json.Marshal(protocol.StatusReport{Version: protocol.Version, Cluster: cluster, Workloads: status, Images: images})
		if bytes.Equal(data, r.whole) && now.Sub(r.lastSent) < statusEvery {
			return nil
		}
		r.whole, r.lastSent = data, now
		return []statusMsg{{data: data}}
	}
	r.whole = nil
	if !r.synced || now.Sub(r.lastResend) >= statusResendEvery || (r.asked && now.Sub(r.lastResend) >= statusResendMin) {
		return r.resend(now, cluster, status, images)
	}
	var changed []protocol.WorkloadStatus
	var removed []string
	r.pass++
	for _, ws := range status {
		old, ok := r.told[ws.Workload]
		if !ok || !old.status.Equal(ws) {
			changed = append(changed, ws)
			old.status = ws
		}
		old.seen = r.pass
		r.told[ws.Workload] = old
	}
	if len(r.told) > len(status) {
		for w, old := range r.told {
			if old.seen != r.pass {
				removed = append(removed, w)
				delete(r.told, w)
			}
		}
		slices.Sort(removed)
	}
	imagesChanged := !slices.Equal(images, r.toldImages)
	if len(changed) == 0 && len(removed) == 0 && !imagesChanged && now.Sub(r.lastSent) < statusEvery {
		return nil
	}
	var out []statusMsg
	for first := true; first || len(changed) > 0 || len(removed) > 0; first = false {
		d := r.delta(cluster)
		n := min(len(changed), protocol.MaxStatusDeltaWorkloads)
		d.Workloads, changed = changed[:n], changed[n:]
		k := min(len(removed), protocol.MaxStatusDeltaWorkloads-n)
		d.Removed, removed = removed[:k], removed[k:]
		if first && imagesChanged {
			d.ImagesSet, d.Images = true, images
			r.toldImages = images
		}
		out = append(out, r.encode(d))
	}
	r.lastSent = now
	return out
}

// resend is the whole status as a run of deltas (Reset on the first, More
// on all but the last).
func (r *statusReporter) resend(now time.Time, cluster string, status []protocol.WorkloadStatus, images []protocol.ImagePresence) []statusMsg {
	clear(r.told)
	var out []statusMsg
	for i := 0; i == 0 || i < len(status); i += protocol.MaxStatusDeltaWorkloads {
		d := r.delta(cluster)
		d.Reset = i == 0
		d.Workloads = status[i:min(len(status), i+protocol.MaxStatusDeltaWorkloads)]
		d.More = i+protocol.MaxStatusDeltaWorkloads < len(status)
		if !d.More {
			d.ImagesSet, d.Images = true, images
		}
		for _, ws := range d.Workloads {
			r.told[ws.Workload] = toldStatus{status: ws}
		}
		out = append(out, r.encode(d))
	}
	r.toldImages = images
	r.synced, r.asked = true, false
	r.lastSent, r.lastResend = now, now
	return out
}

func (r *statusReporter) delta(cluster string) protocol.StatusDelta {
	r.seq++
	return protocol.StatusDelta{Version: protocol.Version, Cluster: cluster, Session: r.session, Seq: r.seq}
}

func (r *statusReporter) encode(d protocol.StatusDelta) statusMsg {
	data, _ := json.Marshal(d)
	return statusMsg{delta: true, data: data}
}
