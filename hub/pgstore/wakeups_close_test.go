package pgstore

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/internal/syncbuf"

	"github.com/atollhq/atoll/hub/pgtest"
)

// TestCloseStopsTheWakeupSender: Close waits for a wake-up sender that
// is waiting for a connection (the pool's only one is taken) before it
// closes the pool, and a wake-up noted after Close (a write that
// committed as the store closed) starts no sender on the closed pool.
func TestCloseStopsTheWakeupSender(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	var logs syncbuf.Buffer
	s, err := Open(t.Context(), Config{DatabaseURL: r.Hub, MigrateURL: r.Owner, MaxConns: 1,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	held, err := s.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s.wakeups.add(map[string]int64{"Workload": 1}) // its sender waits for the connection held
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	held.Release()
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Fatal("Close did not return within a minute")
	}
	sending := func() bool {
		s.wakeups.mu.Lock()
		defer s.wakeups.mu.Unlock()
		return s.wakeups.sending
	}
	if sending() {
		t.Error("Close returned while the wake-up sender still ran")
	}
	s.wakeups.add(map[string]int64{"Workload": 2})
	if sending() {
		t.Error("a wake-up noted after Close started a sender on the closed pool")
	}
	s.wakeups.sender.Wait() // whatever ran (before the mend) is done with its warning
	if l := logs.String(); strings.Contains(l, "closed pool") {
		t.Errorf("a wake-up was sent on the closed pool: %s", l)
	}
}
