package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/natsbus"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

type logsInput struct {
	Name       string `path:"name" maxLength:"63"`
	Replica    string `query:"replica" maxLength:"128" doc:"Only this replica."`
	Cluster    string `query:"cluster" maxLength:"63" doc:"Only replicas in this cluster (default: every cluster)."`
	Follow     bool   `query:"follow" doc:"Keep streaming new lines."`
	Stream     string `query:"stream" enum:"stdout,stderr" doc:"Default stdout."`
	Tail       int    `query:"tail" default:"-1" minimum:"-1" doc:"Only the last N lines of each replica (-1: all)."`
	Since      string `query:"since" maxLength:"40" doc:"Only lines written since this time (RFC 3339) or for this long (a duration like 10m or 1h30m)."`
	Timestamps bool   `query:"timestamps" doc:"Prefix each line with the time it was written (RFC 3339, UTC)."`
	Previous   bool   `query:"previous" doc:"The run before each replica's last restart instead of the current one (not with follow)."`
}

// parseSince reads the since parameter: an RFC 3339 time, or a positive
// duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return time.Time{}, errors.New("must be an RFC 3339 time (2026-01-02T15:04:05Z) or a duration (10m, 1h30m)")
	}
	if d <= 0 {
		return time.Time{}, errors.New("a duration must be positive")
	}
	return now.Add(-d), nil
}

// logsRequest checks in and makes the request members are asked with.
func logsRequest(in *logsInput, now time.Time) (protocol.LogsRequest, *problem) {
	req := protocol.LogsRequest{Version: protocol.Version, Workload: in.Name, Replica: in.Replica, Stream: in.Stream,
		Follow: in.Follow, Timestamps: in.Timestamps, Previous: in.Previous}
	if in.Tail >= 0 {
		tail := in.Tail
		req.Tail = &tail
	}
	if in.Since != "" {
		t, err := parseSince(in.Since, now)
		if err != nil {
			return req, located(http.StatusUnprocessableEntity, api.CodeInvalid, "invalid since", "query.since", err.Error())
		}
		req.Since = &t
	}
	if in.Previous && in.Follow {
		return req, located(http.StatusUnprocessableEntity, api.CodeInvalid, "previous and follow together", "query.previous",
			"the previous run has ended and cannot be followed: leave out follow")
	}
	return req, nil
}

// logOptionNames lists the options of req an older member would ignore.
func logOptionNames(req protocol.LogsRequest) string {
	var names []string
	if req.Tail != nil {
		names = append(names, "tail")
	}
	if req.Since != nil {
		names = append(names, "since")
	}
	if req.Timestamps {
		names = append(names, "timestamps")
	}
	if req.Previous {
		names = append(names, "previous")
	}
	return strings.Join(names, ", ")
}

// logCluster is a cluster logs are read from, and the protocol version
// its member speaks (0: not known).
type logCluster struct {
	name    string
	version int
}

func logClusterOf(rec *pgstore.Record) logCluster {
	var st api.ClusterStatus
	_ = json.Unmarshal(rec.Status, &st)
	return logCluster{name: rec.Meta.Name, version: st.ProtocolVersion}
}

// clustersHolding names the clusters a workload's replicas may be in:
// those its placement rows give replicas (what members are sent), those
// its placement status does, and those that report it (replicas still
// stopping where it moved from). Only they are asked for its logs: the
// others have none, and one whose member is gone would leave the read
// incomplete for nothing. The rows count because the placer commits them
// before the status that tells of them, in another transaction: a member
// may run a replica the status does not place yet.
func clustersHolding(rec *pgstore.Record, rows []pgstore.Placement) map[string]bool {
	var st api.WorkloadStatus
	_ = json.Unmarshal(rec.Status, &st)
	out := map[string]bool{}
	for _, r := range rows {
		if r.Replicas > 0 && !r.Deleted {
			out[r.Cluster] = true
		}
	}
	if st.Placement != nil {
		for c, n := range st.Placement.Clusters {
			if n > 0 {
				out[c] = true
			}
		}
	}
	for _, cr := range st.Clusters {
		out[cr.Cluster] = true
	}
	return out
}

// registerLogs serves replica logs, read through each member from its node
// agents. Lines are prefixed with [cluster/replica] unless one replica was
// asked for; problems with a cluster end the text as lines starting "# ".
// A replica that no cluster has (or, with previous, whose previous run no
// cluster has) is a 404, sent once every cluster answered.
func registerLogs(s *API, hapi huma.API) {
	huma.Register(hapi, huma.Operation{
		OperationID: "workload-logs", Method: http.MethodGet, Path: "/api/v1/workloads/{name}/logs",
		Summary: "Read (or follow) a workload's replica logs", Tags: []string{"Workloads"}, Security: bearer,
		Description: "By default the current (or last) run of each replica's process; previous reads the run before its last restart. " +
			"The clusters asked are the one named, else those the workload's placement gives replicas and those that report it. " +
			"Members older than protocol 5 cannot honour tail, since, timestamps or previous: their clusters are not read, and the text says so. " +
			"The answer ends with the trailer Atoll-Logs-Unread: how many clusters could not be read (its lines starting \"# \" say why); " +
			"a replica no cluster has is a 404, or, when a slow cluster said so after the lines' 200 was out, the trailer Atoll-Logs-Refused (the problem, as JSON).",
		// Logs can hold what a viewer should not see: operators and above.
		Metadata: opMeta(api.RoleOperator, "", "Workload"), Errors: []int{401, 403, 404, 422, 503},
		Responses: map[string]*huma.Response{"200": {Description: "Log lines", Content: map[string]*huma.MediaType{"text/plain": {}}}},
	}, func(ctx context.Context, in *logsInput) (*huma.StreamResponse, error) {
		req, bad := logsRequest(in, s.now())
		if bad != nil {
			return nil, toProblem(ctx, bad)
		}
		if s.bus == nil {
			return nil, toProblem(ctx, api.Errorf(api.CodeUnavailable, "this hub runs without NATS: no member can be asked"))
		}
		wrec, err := s.store.Get(ctx, "Workload", in.Name)
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		var clusters []logCluster
		if in.Cluster != "" {
			rec, err := s.store.Get(ctx, "Cluster", in.Cluster)
			if err != nil {
				return nil, toProblem(ctx, err)
			}
			clusters = []logCluster{logClusterOf(rec)}
		} else {
			res, err := s.store.List(ctx, "Cluster", pgstore.ListOptions{Limit: -1})
			if err != nil {
				return nil, toProblem(ctx, err)
			}
			rows, err := s.store.PlacementsOf(ctx, in.Name)
			if err != nil {
				return nil, toProblem(ctx, err)
			}
			holding := clustersHolding(wrec, rows)
			for _, c := range res.Items {
				if holding[c.Meta.Name] {
					clusters = append(clusters, logClusterOf(c))
				}
			}
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			sctx, span := s.tel.Tracer.Tracer("github.com/atollhq/atoll/hub/httpapi").Start(hctx.Context(), "logs.read",
				trace.WithAttributes(attribute.String("workload", in.Name), attribute.String("replica", in.Replica),
					attribute.Int("clusters", len(clusters)), attribute.Bool("follow", in.Follow), attribute.Bool("previous", in.Previous)))
			defer span.End()
			w := &lineWriter{out: hctx.BodyWriter(), flush: flusher{hctx.BodyWriter()}, prefix: in.Replica == ""}
			w.begin = func() {
				hctx.SetHeader("Content-Type", "text/plain; charset=utf-8")
				hctx.SetHeader("X-Accel-Buffering", "no")
				hctx.SetHeader("Trailer", api.LogsUnreadTrailer+", "+api.LogsRefusedTrailer)
				hctx.SetStatus(http.StatusOK)
			}
			// The answer starts with the first line, or once every cluster
			// answered (a replica none has is then a 404), or after a
			// while all the same: a follower sees its headers within a
			// moment, and a slow cluster does not run a client's
			// request timeout out.
			wait := 10 * time.Second
			if in.Follow {
				wait = 2 * time.Second
			}
			t := time.AfterFunc(wait, w.start)
			defer t.Stop()
			sum := s.streamLogs(sctx, w, clusters, req)
			span.SetAttributes(attribute.Int("lines", w.lines), attribute.Int("problems", len(sum.problems)))
			s.metrics.logReads.Add(sctx, 1, metric.WithAttributes(attribute.String("outcome", sum.outcome(w.lines))))
			if p := sum.refusal(req, len(clusters)); p != nil {
				refused := w.instead(func() {
					p.Instance = hctx.URL().Path
					hctx.SetHeader("Content-Type", "application/problem+json")
					hctx.SetStatus(p.Status)
					_ = json.NewEncoder(hctx.BodyWriter()).Encode(p.Problem)
				})
				if refused {
					return
				}
				// The lines' 200 is out (a slow cluster): the refusal
				// goes in a trailer, after the text that says it.
				if b, err := json.Marshal(p.Problem); err == nil {
					defer hctx.SetHeader(api.LogsRefusedTrailer, string(b))
				}
			}
			sum.finish(w, in.Name, len(clusters))
			hctx.SetHeader(api.LogsUnreadTrailer, strconv.Itoa(sum.missing(req)))
		}}, nil
	})
}

// logsSummary is how each cluster's stream ended.
type logsSummary struct {
	problems   []string
	notFound   int // clusters without the replica (or any of the workload's)
	noPrevious int // clusters whose replica has no previous run
	tooOld     int // clusters whose member cannot honour the options
	unread     int // clusters not read: too old, no answer, an error
	served     int // clusters whose stream ended as it should
}

// missing is how many clusters the read lacks: those not read, unless a
// replica was asked for and a cluster served it (a replica runs in one
// cluster: the others' silence takes nothing from the read).
func (sum *logsSummary) missing(req protocol.LogsRequest) int {
	if req.Replica != "" && sum.served > 0 {
		return 0
	}
	return sum.unread
}

// refusal is the error answer a read that found nothing gets: the replica
// is in no cluster, or has no previous run. nil when the text answers.
//
// No cluster to ask is a 404 too: the clusters asked are all those that
// may hold the workload's replicas (or the one named), so none means the
// replica is nowhere (a workload not placed yet has none).
func (sum *logsSummary) refusal(req protocol.LogsRequest, clusters int) *problem {
	if req.Replica == "" || sum.notFound+sum.noPrevious < clusters || sum.tooOld > 0 {
		return nil
	}
	if clusters == 0 {
		return newProblem(http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("workload %s has no replica %s: no cluster holds any of its replicas", req.Workload, req.Replica))
	}
	if sum.noPrevious > 0 {
		return newProblem(http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("replica %s of %s has no previous run: it has not restarted (or that run's output was rotated away)", req.Replica, req.Workload))
	}
	where := "any cluster"
	if clusters == 1 {
		where = "that cluster"
	}
	return newProblem(http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("workload %s has no replica %s in %s", req.Workload, req.Replica, where))
}

func (sum *logsSummary) outcome(lines int) string {
	switch {
	case lines > 0:
		return "lines"
	case sum.tooOld > 0:
		return "member_too_old"
	case len(sum.problems) > 0:
		return "problem"
	}
	return "empty"
}

// finish writes the problems and, when nothing was read, says so.
func (sum *logsSummary) finish(w *lineWriter, workload string, clusters int) {
	w.mu.Lock()
	said := w.lines > 0 || w.notes > 0 // members' notes say why there are no lines
	w.mu.Unlock()
	for _, p := range sum.problems {
		_ = w.write("", "", []byte("# "+p+"\n"))
	}
	if !said && len(sum.problems) == 0 {
		if sum.notFound == clusters {
			_ = w.write("", "", []byte(fmt.Sprintf("# no replica of %s runs in any of %d cluster(s): nothing to read\n", workload, clusters)))
		} else {
			_ = w.write("", "", []byte(fmt.Sprintf("# no logs of %s were found in %d cluster(s)\n", workload, clusters)))
		}
	}
	w.start()
}

func (s *API) streamLogs(ctx context.Context, w *lineWriter, clusters []logCluster, req protocol.LogsRequest) *logsSummary {
	sum := &logsSummary{}
	var mu sync.Mutex
	one := func(c logCluster) {
		cluster := c.name
		if req.HasOptions() && c.version > 0 && c.version < protocol.LogOptionsSince {
			mu.Lock()
			sum.tooOld++
			sum.unread++
			sum.problems = append(sum.problems, fmt.Sprintf("cluster %s was not read: its member speaks protocol %d and cannot honour %s (upgrade it to protocol %d, or ask without them)",
				cluster, c.version, logOptionNames(req), protocol.LogOptionsSince))
			mu.Unlock()
			return
		}
		cctx := ctx
		if !req.Follow {
			var cancel context.CancelFunc
			cctx, cancel = context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
		}
		err := s.bus.Stream(cctx, cluster, protocol.LogsSubject(cluster), protocol.LogEndHeader,
			func(stop string) []byte {
				r := req
				r.Version = protocol.SpokenWith(c.version)
				r.Stop = stop
				b, _ := json.Marshal(r)
				return b
			},
			func(msg *nats.Msg) error {
				return w.write(cluster, msg.Header.Get(protocol.LogReplicaHeader), msg.Data)
			})
		if errors.Is(err, context.Canceled) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			sum.served++
			return
		}
		var end *natsbus.StreamEndError
		switch {
		case errors.As(err, &end) && (end.Header.Get(protocol.LogEndCodeHeader) == protocol.LogEndNotFound || strings.HasPrefix(end.Reason, "no replica of ")):
			// "no replica here" (a version 4 member says so in words).
			sum.notFound++
			if len(clusters) == 1 && req.Replica == "" {
				sum.problems = append(sum.problems, end.Reason)
			}
		case errors.As(err, &end) && end.Header.Get(protocol.LogEndCodeHeader) == protocol.LogEndNoPrevious:
			sum.noPrevious++
			sum.problems = append(sum.problems, fmt.Sprintf("cluster %s: %s", cluster, end.Reason))
		case errors.Is(err, natsbus.ErrNoReply):
			sum.unread++
			sum.problems = append(sum.problems, fmt.Sprintf("cluster %s did not answer (is its member running?)", cluster))
		default:
			sum.unread++
			sum.problems = append(sum.problems, fmt.Sprintf("cluster %s: %v", cluster, err))
		}
	}
	if req.Follow {
		var wg sync.WaitGroup
		for _, c := range clusters {
			wg.Add(1)
			go func() { defer wg.Done(); one(c) }()
		}
		wg.Wait()
	} else {
		for _, c := range clusters {
			one(c)
		}
	}
	return sum
}

// lineWriter writes whole lines, prefixed with their source when several
// replicas share the stream, one writer at a time.
type lineWriter struct {
	mu     sync.Mutex
	out    io.Writer
	flush  flusher
	prefix bool
	lines  int    // lines of replicas
	notes  int    // lines about the read ("# ..."), from members
	begin  func() // sends the headers, before the first write
	begun  bool
}

// start sends the headers if they were not sent yet.
func (w *lineWriter) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.startLocked()
}

func (w *lineWriter) startLocked() {
	if !w.begun {
		w.begun = true
		if w.begin != nil {
			w.begin()
		}
		w.flush.Flush()
	}
}

// instead answers with answer rather than lines, if nothing was sent yet.
func (w *lineWriter) instead(answer func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.begun {
		return false
	}
	w.begun = true
	answer()
	return true
}

func (w *lineWriter) write(cluster, replica string, data []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.startLocked()
	var buf bytes.Buffer
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if w.prefix && replica != "" {
			fmt.Fprintf(&buf, "[%s/%s] ", cluster, replica)
		}
		buf.Write(line)
		if replica != "" {
			w.lines++
		} else {
			w.notes++
		}
	}
	if _, err := w.out.Write(buf.Bytes()); err != nil {
		return err
	}
	w.flush.Flush()
	return nil
}
