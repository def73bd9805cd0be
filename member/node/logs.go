package node

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/protocol"
)

// maxFollow bounds a followed log stream nobody stopped.
const maxFollow = 30 * time.Minute

// serveLogs answers log requests for this node's replicas: whole lines,
// in messages of up to 32 KiB, then an end marker.
func serveLogs(ctx context.Context, nc *nats.Conn, node string, r *runtime.Runtime) (*nats.Subscription, error) {
	return nc.Subscribe(protocol.NodeLogsSubject(node), func(msg *nats.Msg) {
		req, err := protocol.DecodeLogsRequest(msg.Data)
		if err == nil && req.Replica == "" {
			err = errors.New("a node serves one replica's logs at a time")
		}
		if err != nil {
			endStream(nc, msg.Reply, err.Error(), "")
			return
		}
		// Listen for the stop before anything else, in the handler, so an
		// early stop is never missed; the stream runs on its own.
		sctx, cancel := context.WithTimeout(ctx, maxFollow)
		var stop *nats.Subscription
		if req.Stop != "" {
			stop, _ = nc.Subscribe(req.Stop, func(*nats.Msg) { cancel() })
		}
		go func() {
			defer cancel()
			if stop != nil {
				defer stop.Unsubscribe()
			}
			streamLogs(sctx, nc, msg.Reply, req, r)
		}()
	})
}

func streamLogs(ctx context.Context, nc *nats.Conn, reply string, req protocol.LogsRequest, r *runtime.Runtime) {
	stream := req.Stream
	if stream == "" {
		stream = "stdout"
	}
	rc, err := r.Logs(req.Replica, stream, logOptions(req))
	if err != nil {
		endStream(nc, reply, err.Error(), "")
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { <-ctx.Done(); rc.Close() }() // unblocks a follower's read
	sent, err := copyLines(nc, reply, req.Replica, rc)
	switch {
	case errors.Is(err, runtime.ErrNoPreviousRun):
		endStream(nc, reply, "replica "+req.Replica+": "+err.Error(), protocol.LogEndNoPrevious)
	case ctx.Err() != nil:
		endStream(nc, reply, "ok", "")
	case err != nil:
		endStream(nc, reply, err.Error(), "")
	case sent == 0 && !req.Follow && (req.Tail == nil || *req.Tail > 0):
		endStream(nc, reply, noOutput(req, r), "")
	default:
		endStream(nc, reply, "ok", "")
	}
}

// logOptions are the runtime's options for req (a version 4 request has
// none: all of the current run).
func logOptions(req protocol.LogsRequest) runtime.LogOptions {
	o := runtime.LogOptions{Follow: req.Follow, Tail: -1, Timestamps: req.Timestamps, Previous: req.Previous, SayWhy: true}
	if req.Tail != nil {
		o.Tail = *req.Tail
	}
	if req.Since != nil {
		o.Since = *req.Since
	}
	return o
}

// noOutput says why a read found no lines.
func noOutput(req protocol.LogsRequest, r *runtime.Runtime) string {
	switch {
	case req.Previous:
		return "replica " + req.Replica + " wrote nothing in its previous run"
	case req.Since != nil:
		return "replica " + req.Replica + " wrote nothing since " + req.Since.UTC().Format(time.RFC3339)
	}
	if why := r.NoOutputReason(req.Replica); why != "" {
		return why
	}
	return "replica " + req.Replica + " wrote nothing"
}

// copyLines sends whole lines, batched up to 32 KiB per message, and
// counts the bytes sent.
func copyLines(nc *nats.Conn, reply, replica string, rc io.Reader) (int, error) {
	br := bufio.NewReaderSize(rc, 64<<10)
	var batch []byte
	sent := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		sent += len(batch)
		m := nats.NewMsg(reply)
		m.Header.Set(protocol.LogReplicaHeader, replica)
		m.Data = batch
		batch = nil
		return nc.PublishMsg(m)
	}
	for {
		line, err := br.ReadSlice('\n')
		batch = append(batch, line...)
		if len(batch) >= 32<<10 || (err == nil && br.Buffered() == 0) {
			if ferr := flush(); ferr != nil {
				return sent, ferr
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrClosedPipe), errors.Is(err, io.ErrUnexpectedEOF):
			err = flush()
			return sent, err
		default:
			if ferr := flush(); ferr != nil {
				return sent, ferr
			}
			return sent, err
		}
	}
}

// endStream ends a stream with reason ("ok" or why it ended early) and
// the kind of end (protocol.LogEndCodeHeader) when there is one.
func endStream(nc *nats.Conn, reply, reason, code string) {
	if reply == "" {
		return
	}
	m := nats.NewMsg(reply)
	m.Header.Set(protocol.LogEndHeader, reason)
	m.Header.Set(protocol.LogVersionHeader, strconv.Itoa(protocol.Version))
	if code != "" {
		m.Header.Set(protocol.LogEndCodeHeader, code)
	}
	_ = nc.PublishMsg(m)
}
