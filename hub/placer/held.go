package placer

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/atollhq/atoll/hub/pgstore"
)

// Why the leader's placement rows are read whole from the table again
// (the reason attribute of placement.held.reloads).
const (
	reloadTerm     = "term"     // a term of its own begins (the first pass included)
	reloadUnknown  = "unknown"  // a write of placement rows failed: it may have committed or not
	reloadPeriodic = "periodic" // the safety net: what the table holds, compared with what is held
)

// heldReloadEvery is how often the leader reads its placement rows whole
// again although nothing asked for it, and counts what differed.
const heldReloadEvery = time.Minute

// held is the placement rows as the leader placer holds them: the
// authority for its passes while it leads (see the package doc). Only
// the pass goroutine reads and changes it: a delivery takes copies of
// the rows it sends (startDelivery), and the pass goroutine may store
// other chunks' rows while it runs.
type held struct {
	// rows: each workload's rows, a run of one slice per workload (the
	// rows of a whole read share its backing array; the key is the rows'
	// Workload string, and each cluster's name one string for all rows).
	rows     map[string][]pgstore.Placement
	clusters map[string]string
	valid    bool
	why      string // why the next pass reads the rows whole (while !valid)
	term     int64  // the leader epoch they were read under
	loadedAt time.Time
	n        atomic.Int64 // rows held (read by the gauge's callback)
}

func newHeld() *held {
	return &held{rows: map[string][]pgstore.Placement{}, clusters: map[string]string{}, why: reloadTerm}
}

// invalidate makes the next pass read the rows whole, for why (the first
// reason given stands).
func (h *held) invalidate(why string) {
	if h.valid {
		h.valid, h.why = false, why
	}
}

// drop forgets every row (leadership lost: a hub that does not lead
// holds none); the next term reads them whole.
func (h *held) drop() {
	if !h.valid && len(h.rows) == 0 && h.why == reloadTerm {
		return // nothing held already (a follower's every pass)
	}
	h.rows, h.clusters = map[string][]pgstore.Placement{}, map[string]string{}
	h.valid, h.why = false, reloadTerm
	h.n.Store(0)
}

// load takes rows, as the store returns a whole read (sorted by
// workload), as the rows held.
func (h *held) load(rows []pgstore.Placement, term int64, at time.Time) {
	h.rows = groupByWorkload(rows)
	h.clusters = map[string]string{}
	for _, r := range rows {
		h.clusters[r.Cluster] = r.Cluster // already one string per cluster in a read
	}
	h.valid, h.why, h.term, h.loadedAt = true, "", term, at
	h.n.Store(int64(len(rows)))
}

// of is one workload's rows (not to be changed by the caller).
func (h *held) of(workload string) []pgstore.Placement { return h.rows[workload] }

// find is the index of workload's row on cluster in rs, or -1.
func find(rs []pgstore.Placement, cluster string) int {
	for i := range rs {
		if rs[i].Cluster == cluster {
			return i
		}
	}
	return -1
}

// put applies a committed Tx.PutPlacements of rows at epoch: each row
// replaced or added, to be delivered (delivered epoch 0).
func (h *held) put(rows []pgstore.Placement, epoch int64) {
	for _, r := range rows {
		c, ok := h.clusters[r.Cluster]
		if !ok {
			c = r.Cluster
			h.clusters[c] = c
		}
		r.Cluster, r.Epoch, r.DeliveredEpoch = c, epoch, 0
		rs := h.rows[r.Workload]
		if len(rs) > 0 {
			r.Workload = rs[0].Workload // the name held once
		}
		if i := find(rs, c); i >= 0 {
			rs[i] = r
			continue
		}
		// rs is capped (groupByWorkload): append copies it rather than
		// write over the next workload's rows.
		h.rows[r.Workload] = append(rs, r)
		h.n.Add(1)
	}
}

// remove applies a committed Tx.DeletePlacements.
func (h *held) remove(workload string) {
	h.n.Add(-int64(len(h.rows[workload])))
	delete(h.rows, workload)
}

// delivered applies a written MarkDeliveredAll of workload's row on
// cluster at epoch: as the SQL does, only where the row is still at
// that epoch.
func (h *held) delivered(cluster, workload string, epoch int64) {
	rs := h.rows[workload]
	if i := find(rs, cluster); i >= 0 && rs[i].Epoch == epoch {
		rs[i].DeliveredEpoch = max(rs[i].DeliveredEpoch, epoch)
	}
}

// undelivered applies a written MarkUndelivered.
func (h *held) undelivered(cluster, workload string) {
	rs := h.rows[workload]
	if i := find(rs, cluster); i >= 0 {
		rs[i].DeliveredEpoch = 0
	}
}

// each calls fn with every row held (fn must not keep r past the call).
func (h *held) each(fn func(r *pgstore.Placement)) {
	for _, rs := range h.rows {
		for i := range rs {
			fn(&rs[i])
		}
	}
}

// differences compares a whole read (rows) with what is held: the
// number of rows that differ, missing on either side included, up to
// five of them in words, and their workloads.
func (h *held) differences(rows []pgstore.Placement) (int, []string, map[string]bool) {
	n, matched := 0, 0
	var examples []string
	workloads := map[string]bool{}
	note := func(workload, format string, args ...any) {
		n++
		workloads[workload] = true
		if len(examples) < 5 {
			examples = append(examples, fmt.Sprintf(format, args...))
		}
	}
	for _, r := range rows {
		rs := h.rows[r.Workload]
		i := find(rs, r.Cluster)
		if i < 0 {
			note(r.Workload, "%s on %s: held none, table %+v", r.Workload, r.Cluster, r)
			continue
		}
		matched++
		if rs[i] != r {
			note(r.Workload, "%s on %s: held %+v, table %+v", r.Workload, r.Cluster, rs[i], r)
		}
	}
	if extra := int(h.n.Load()) - matched; extra > 0 {
		in := make(map[[2]string]bool, len(rows))
		for _, r := range rows {
			in[[2]string{r.Workload, r.Cluster}] = true
		}
		h.each(func(r *pgstore.Placement) {
			if !in[[2]string{r.Workload, r.Cluster}] {
				note(r.Workload, "%s on %s: held %+v, table none", r.Workload, r.Cluster, *r)
			}
		})
	}
	return n, examples, workloads
}

// heldMetrics are the held rows' instruments.
type heldMetrics struct {
	reloads metric.Int64Counter
	drift   metric.Int64Counter
}

func newHeldMetrics(meter metric.Meter, h *held) heldMetrics {
	var m heldMetrics
	m.reloads, _ = meter.Int64Counter("placement.held.reloads", metric.WithUnit("{reload}"),
		metric.WithDescription("Whole reads of the placement rows by the leader placer, by reason: term (a term of its own begins), unknown (a write of them failed), periodic (the safety net)."))
	m.drift, _ = meter.Int64Counter("placement.held.drift", metric.WithUnit("{row}"),
		metric.WithDescription("Placement rows the periodic read found different from what the leader held (expected 0: anything else is a bug, or a previous leader's late mark)."))
	_, _ = meter.Int64ObservableGauge("placement.held.rows", metric.WithUnit("{row}"),
		metric.WithDescription("Placement rows the leader placer holds in memory (0 on a hub that does not lead)."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(h.n.Load())
			return nil
		}))
	return m
}

// holdRows makes the rows held current before a pass decides: read whole
// at the start of a term of its own (term), after a write whose outcome
// is unknown, and every heldReloadEvery (then compared with what was
// held: the workloads whose rows differed are returned, to be decided
// again); else the acknowledgements recorded since the last pass are
// applied (waitMarks).
func (p *Placer) holdRows(ctx context.Context, term int64) (map[string]bool, error) {
	h := p.held
	why := ""
	switch {
	case !h.valid:
		why = h.why
	case h.term != term:
		why = reloadTerm
	case p.now().Sub(h.loadedAt) >= heldReloadEvery:
		why = reloadPeriodic
	}
	if why == "" {
		p.waitMarks(len(p.marks)) // those written: applied
		return nil, nil
	}
	// Every acknowledgement of this hub's written and applied first: the
	// table and the rows held then differ only by what another writer did.
	p.waitMarks(0)
	ctx, span := p.tracer.Start(ctx, "placer.holdRows", trace.WithAttributes(attribute.String("reason", why), attribute.Int64("leader.epoch", term)))
	defer span.End()
	rows, err := p.db.Placements(ctx)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		h.invalidate(why)
		return nil, fmt.Errorf("read placement rows: %w", err)
	}
	var drifted map[string]bool
	if why == reloadPeriodic && h.valid {
		var n int
		var examples []string
		if n, examples, drifted = h.differences(rows); n > 0 {
			p.heldMetrics.drift.Add(ctx, int64(n))
			p.log.WarnContext(ctx, "placement rows held differ from the table; the table's taken", "rows", n, "examples", examples)
			span.SetAttributes(attribute.Int("drift", n))
		}
	}
	h.load(rows, term, p.now())
	span.SetAttributes(attribute.Int("rows", len(rows)))
	p.heldMetrics.reloads.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", why)))
	return drifted, nil
}
