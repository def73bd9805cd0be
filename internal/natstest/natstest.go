// Package natstest starts a bare in-process NATS server with JetStream for
// tests and benchmarks that stand in for a region's NATS without a member.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// JetStream starts a JetStream-enabled NATS on a random loopback port,
// storing under tb.TempDir(), and connects to it in-process. Both end
// when tb does; callers may shut them down sooner.
func JetStream(tb testing.TB) (*server.Server, *nats.Conn) {
	tb.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: tb.TempDir(), NoSigs: true})
	if err != nil {
		tb.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		tb.Fatal("in-process NATS is not ready within 10s")
	}
	tb.Cleanup(s.Shutdown)
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return s, nc
}
