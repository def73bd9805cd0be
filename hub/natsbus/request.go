package natsbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/protocol"
)

// requester sends requests to members and matches their replies, which
// come back on atoll.m.<cluster>.r.<id> (see protocol.ReplySubject).
type requester struct {
	conn *nats.Conn
	sub  *nats.Subscription

	mu       sync.Mutex
	pending  map[string]chan *nats.Msg
	streams  map[string]bool // pending entries that take many messages
	overflow map[string]bool // streams that lost a message
}

func newRequester(conn *nats.Conn) (*requester, error) {
	r := &requester{conn: conn, pending: map[string]chan *nats.Msg{}, streams: map[string]bool{}, overflow: map[string]bool{}}
	sub, err := conn.Subscribe(protocol.ReplyWildcard, r.dispatch)
	if err != nil {
		return nil, fmt.Errorf("subscribe to member replies: %w", err)
	}
	r.sub = sub
	return r, conn.Flush()
}

func (r *requester) dispatch(msg *nats.Msg) {
	// atoll.m.<cluster>.r.<id>: a reply counts only from the cluster the
	// request went to, so one member cannot answer for another.
	key := protocol.ClusterOf(msg.Subject) + "/" + msg.Subject[lastDot(msg.Subject)+1:]
	r.mu.Lock()
	ch, ok := r.pending[key]
	stream := r.streams[key]
	r.mu.Unlock()
	if !ok {
		return
	}
	select {
	case ch <- msg:
	default:
		if stream {
			// Never stall the other replies: a stream whose reader fell this
			// far behind is ended instead, with an error, not silently cut.
			r.mu.Lock()
			r.overflow[key] = true
			r.mu.Unlock()
		}
	}
}

func lastDot(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

// ErrNoReply is returned when a member does not answer in time.
var ErrNoReply = errors.New("the member did not answer")

// Request sends data to a member's subject and waits for its reply until
// ctx ends.
func (b *Bus) Request(ctx context.Context, cluster, subject string, data []byte) ([]byte, error) {
	r := b.req
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	id := hex.EncodeToString(raw[:]) // unguessable: nobody can answer a request they did not see
	key := cluster + "/" + id
	ch := make(chan *nats.Msg, 1)
	r.mu.Lock()
	r.pending[key] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, key)
		r.mu.Unlock()
	}()
	if err := r.conn.PublishRequest(subject, protocol.ReplySubject(cluster, id), data); err != nil {
		return nil, fmt.Errorf("request %s: %w", subject, err)
	}
	select {
	case msg := <-ch:
		if len(msg.Data) == 0 && msg.Header.Get("Status") == "503" {
			return nil, fmt.Errorf("request %s: %w: nobody listens there", subject, ErrNoReply)
		}
		return msg.Data, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("request %s: %w (%w)", subject, ErrNoReply, ctx.Err())
	}
}

// ErrStreamEnded wraps the reason a member gave for ending a stream early.
var ErrStreamEnded = errors.New("the member ended the stream")

// StreamEndError is a stream's early end: the member's reason and the
// headers of its end message (errors.Is ErrStreamEnded).
type StreamEndError struct {
	Reason string
	Header nats.Header
}

func (e *StreamEndError) Error() string { return ErrStreamEnded.Error() + ": " + e.Reason }

// Unwrap makes errors.Is(e, ErrStreamEnded) true.
func (e *StreamEndError) Unwrap() error { return ErrStreamEnded }

// Stream sends a request whose answer is a stream of messages ending with
// one that carries the header endHeader. build makes the request body
// given the subject that stops the stream early (published when ctx ends
// first). Each message before the end goes to fn.
func (b *Bus) Stream(ctx context.Context, cluster, subject, endHeader string, build func(stop string) []byte, fn func(*nats.Msg) error) error {
	r := b.req
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	key := cluster + "/" + id
	ch := make(chan *nats.Msg, 256) // up to 256 messages of 32 KiB in flight
	r.mu.Lock()
	r.pending[key] = ch
	r.streams[key] = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, key)
		delete(r.streams, key)
		delete(r.overflow, key)
		r.mu.Unlock()
	}()
	stop := protocol.LogsStopSubject(cluster, id)
	if err := r.conn.PublishRequest(subject, protocol.ReplySubject(cluster, id), build(stop)); err != nil {
		return fmt.Errorf("request %s: %w", subject, err)
	}
	for {
		select {
		case msg := <-ch:
			if len(msg.Data) == 0 && msg.Header.Get("Status") == "503" {
				return fmt.Errorf("request %s: %w: nobody listens there", subject, ErrNoReply)
			}
			if end := msg.Header.Get(endHeader); end != "" {
				if end == "ok" {
					return nil
				}
				return &StreamEndError{Reason: end, Header: msg.Header}
			}
			if err := fn(msg); err != nil {
				_ = r.conn.Publish(stop, nil)
				return err
			}
			r.mu.Lock()
			lost := r.overflow[key]
			r.mu.Unlock()
			if lost && len(ch) == 0 {
				_ = r.conn.Publish(stop, nil)
				return fmt.Errorf("%w: the reader fell behind and lines were lost", ErrStreamEnded)
			}
		case <-ctx.Done():
			_ = r.conn.Publish(stop, nil)
			return ctx.Err()
		}
	}
}
