package gateway

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/protocol"
)

// TestTCPConnectionBound: a tcp service port proxies at most
// MaxTCPConns connections at once; one more is closed at once (it holds
// no connection to an endpoint), and a slot freed is taken again.
func TestTCPConnectionBound(t *testing.T) {
	t.Parallel()
	echo := echoServer(t)
	port := freePort(t)
	g := New(Config{Listen: "127.0.0.1:0", Cluster: "us-1", Region: "us", MaxTCPConns: 2, LocalPeers: true})
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	ep := protocol.Endpoint{Cluster: "us-1", Region: "us", Replica: "e", Host: "127.0.0.1", Ports: map[string]int{"db": echo.Addr().(*net.TCPAddr).Port}}
	g.Update(table(1, protocol.ServiceEndpoints{Name: "db", Spec: api.ServiceSpec{Workload: "db", Ports: []api.ServicePort{{Name: "db", Protocol: "tcp", Port: int32(port)}}},
		Endpoints: []protocol.Endpoint{ep}}))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// ping dials and answers whether the echo came back (false: the
	// gateway closed the connection).
	ping := func() (net.Conn, bool) {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial the gateway's tcp port: %v", err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = c.Write([]byte("ping"))
		buf := make([]byte, 4)
		_, err = io.ReadFull(c, buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("no echo and no close in 10s")
		}
		return c, err == nil && string(buf) == "ping"
	}
	a, ok := ping()
	if !ok {
		t.Fatal("first connection: want the echo")
	}
	b, ok := ping()
	if !ok {
		t.Fatal("second connection: want the echo")
	}
	defer b.Close()
	c, ok := ping()
	c.Close()
	if ok {
		t.Fatal("third connection at a bound of 2: want it closed; it was proxied")
	}
	a.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, ok := ping()
		c.Close()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("after closing a connection: want its slot taken again; still refused after 10s")
		}
	}
}
