package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/natsbus"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

type logsInput struct {
	Name    string `path:"name" maxLength:"63"`
	Replica string `query:"replica" maxLength:"128" doc:"Only this replica."`
	Cluster string `query:"cluster" maxLength:"63" doc:"Only replicas in this cluster (default: every cluster)."`
	Follow  bool   `query:"follow" doc:"Keep streaming new lines."`
	Stream  string `query:"stream" enum:"stdout,stderr" doc:"Default stdout."`
}

// registerLogs serves replica logs, read through each member from its node
// agents. Lines are prefixed with [cluster/replica] unless one replica was
// asked for; problems with a cluster end the text as lines starting "# ".
func registerLogs(s *API, hapi huma.API) {
	huma.Register(hapi, huma.Operation{
		OperationID: "workload-logs", Method: http.MethodGet, Path: "/api/v1/workloads/{name}/logs",
		Summary: "Read (or follow) a workload's replica logs", Tags: []string{"Workloads"}, Security: bearer,
		// Logs can hold what a viewer should not see: operators and above.
		Metadata: opMeta(api.RoleOperator, "", "Workload"), Errors: []int{401, 403, 404, 422, 503},
		Responses: map[string]*huma.Response{"200": {Description: "Log lines", Content: map[string]*huma.MediaType{"text/plain": {}}}},
	}, func(ctx context.Context, in *logsInput) (*huma.StreamResponse, error) {
		if s.bus == nil {
			return nil, toProblem(ctx, api.Errorf(api.CodeUnavailable, "this hub runs without NATS: no member can be asked"))
		}
		if _, err := s.store.Get(ctx, "Workload", in.Name); err != nil {
			return nil, toProblem(ctx, err)
		}
		var clusters []string
		if in.Cluster != "" {
			if _, err := s.store.Get(ctx, "Cluster", in.Cluster); err != nil {
				return nil, toProblem(ctx, err)
			}
			clusters = []string{in.Cluster}
		} else {
			res, err := s.store.List(ctx, "Cluster", pgstore.ListOptions{Limit: -1})
			if err != nil {
				return nil, toProblem(ctx, err)
			}
			for _, c := range res.Items {
				clusters = append(clusters, c.Meta.Name)
			}
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			hctx.SetHeader("Content-Type", "text/plain; charset=utf-8")
			hctx.SetHeader("X-Accel-Buffering", "no")
			hctx.SetStatus(http.StatusOK)
			w := &lineWriter{out: hctx.BodyWriter(), flush: flusher{hctx.BodyWriter()}, prefix: in.Replica == ""}
			s.streamLogs(hctx.Context(), w, clusters, in)
		}}, nil
	})
}

func (s *API) streamLogs(ctx context.Context, w *lineWriter, clusters []string, in *logsInput) {
	req := protocol.LogsRequest{Version: protocol.Version, Workload: in.Name, Replica: in.Replica, Stream: in.Stream, Follow: in.Follow}
	var problems []string
	var mu sync.Mutex
	one := func(cluster string) {
		cctx := ctx
		if !in.Follow {
			var cancel context.CancelFunc
			cctx, cancel = context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
		}
		err := s.bus.Stream(cctx, cluster, protocol.LogsSubject(cluster), protocol.LogEndHeader,
			func(stop string) []byte {
				r := req
				r.Stop = stop
				b, _ := json.Marshal(r)
				return b
			},
			func(msg *nats.Msg) error {
				return w.write(cluster, msg.Header.Get(protocol.LogReplicaHeader), msg.Data)
			})
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.Is(err, natsbus.ErrStreamEnded) && len(clusters) > 1:
			// "no replica here" from a cluster not asked for by name is no news.
		case errors.Is(err, natsbus.ErrNoReply):
			problems = append(problems, fmt.Sprintf("cluster %s did not answer (is its member running?)", cluster))
		default:
			problems = append(problems, fmt.Sprintf("cluster %s: %v", cluster, err))
		}
	}
	if in.Follow {
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
	for _, p := range problems {
		_ = w.write("", "", []byte("# "+p+"\n"))
	}
	if w.lines == 0 && len(problems) == 0 {
		_ = w.write("", "", []byte(fmt.Sprintf("# no logs of %s were found in %d cluster(s)\n", in.Name, len(clusters))))
	}
}

// lineWriter writes whole lines, prefixed with their source when several
// replicas share the stream, one writer at a time.
type lineWriter struct {
	mu     sync.Mutex
	out    io.Writer
	flush  flusher
	prefix bool
	lines  int
}

func (w *lineWriter) write(cluster, replica string, data []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
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
		}
	}
	if _, err := w.out.Write(buf.Bytes()); err != nil {
		return err
	}
	w.flush.Flush()
	return nil
}
