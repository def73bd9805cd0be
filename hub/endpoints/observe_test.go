package endpoints

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/internal/syncbuf"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/protocol"
)

// syncBuffer collects the table's log lines.
type syncBuffer struct{ syncbuf.Buffer }

func (s *syncBuffer) lines() int {
	return strings.Count(s.String(), "endpoint report refused")
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
