package node

import (
	"bufio"
	"context"
	"errors"
	"io"
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
			endStream(nc, msg.Reply, err.Error())
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
	rc, err := r.Logs(req.Replica, stream, req.Follow)
	if err != nil {
		endStream(nc, reply, err.Error())
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { <-ctx.Done(); rc.Close() }() // unblocks a follower's read
	err = copyLines(nc, reply, req.Replica, rc)
	switch {
	case err == nil, ctx.Err() != nil:
		endStream(nc, reply, "ok")
	default:
		endStream(nc, reply, err.Error())
	}
}

// copyLines sends whole lines, batched up to 32 KiB per message.
func copyLines(nc *nats.Conn, reply, replica string, rc io.Reader) error {
	br := bufio.NewReaderSize(rc, 64<<10)
	var batch []byte
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
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
				return ferr
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrClosedPipe), errors.Is(err, io.ErrUnexpectedEOF):
			return flush()
		default:
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return err
		}
	}
}

func endStream(nc *nats.Conn, reply, reason string) {
	if reply == "" {
		return
	}
	m := nats.NewMsg(reply)
	m.Header.Set(protocol.LogEndHeader, reason)
	_ = nc.PublishMsg(m)
}
