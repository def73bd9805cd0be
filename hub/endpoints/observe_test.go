package endpoints

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/protocol"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), "endpoint report refused")
}

// TestRefusedReportsLogSparingly: a member sending refused reports
// without end gets one log line a minute, not one per report.
func TestRefusedReportsLogSparingly(t *testing.T) {
	var logs syncBuffer
	now := time.Unix(1_000_000, 0)
	tb := New(nil, nil, nil, nil, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return now }})
	bad := &nats.Msg{Subject: protocol.EndpointsSubject("eu-1"), Data: []byte(`{"v":999}`)}
	for range 1000 {
		tb.Observe(bad)
	}
	if n := logs.lines(); n != 1 {
		t.Fatalf("1000 refused reports of one member within a minute: want 1 log line; got %d", n)
	}
	tb.Observe(&nats.Msg{Subject: protocol.EndpointsSubject("us-1"), Data: []byte("garbage")})
	if n := logs.lines(); n != 2 {
		t.Errorf("a refused report of another member: want its own line (2 in all); got %d", n)
	}
	now = now.Add(time.Minute)
	tb.Observe(bad)
	if n := logs.lines(); n != 3 {
		t.Errorf("a minute later: want the member's refusals logged again (3 lines); got %d", n)
	}
}
